#!/usr/bin/env bash
# System packages some tests need: headless Chromium (the HTML report test) and iproute2
# (the network-namespace test cluster). Installed from Debian's packages when missing and
# when we are root; otherwise those tests skip and say why.
set -u
need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v ip >/dev/null 2>&1 || need+=(iproute2)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "test-deps: not root or no apt-get; tests needing ${need[*]} will skip" >&2
  exit 0
fi
echo "test-deps: installing ${need[*]} from Debian's packages" >&2
export DEBIAN_FRONTEND=noninteractive
(apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}") >/dev/null 2>&1 \
  || echo "test-deps: apt-get failed; tests needing ${need[*]} will skip" >&2
exit 0
