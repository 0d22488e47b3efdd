"""A real multi-node Ray cluster on one machine, for tests and drills: `python -m tests.cluster.testcluster up|down`.

Ray will not put two nodes on loopback, and this machine may send traffic only to 127.0.0.1
or to hosts it makes itself. So each host is a Linux network namespace with its own address,
joined to the others by a veth pair into a bridge that lives in a switch namespace of its own
(nothing touches the machine's own network):

    <name>-sw      bridge br0, one port p-<host> per host      (the switch)
    <name>-head    10.213.0.2    Ray head (GCS) + a worker node's resources; the driver runs here
    <name>-w1      10.213.0.3    Ray worker node (w2 10.213.0.4, ... with --workers)
    <name>-mlflow  10.213.0.10   MLflow tracking server (sweep.tracking_server), port 5000

Ray uses token authentication (RAY_AUTH_MODE=token) with one token file every node reads, as
a real cluster must (docs/cluster.md). The file system is shared, as NFS would be on a real
cluster: runs_dir (checkpoints) is visible to every node. Needs root and iproute2.

    up      build it and wait until every node and the tracking server answer
    down    kill every process in its namespaces, delete the namespaces and Ray's temp folders
    exec    run a command inside the head namespace with the cluster's environment (the driver)
    cut     take a host's link down (it is cut off, not killed); `mend` brings it back
    status  print the state file

`make cluster-up` / `make cluster-down` call `up` / `down` with the defaults below;
RDC_TESTCLUSTER_NAME and RDC_TESTCLUSTER_DIR pick another name and state folder (tests do).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rdc.errors import UserError

SUBNET = "10.213.0"
HEAD_IP = f"{SUBNET}.2"
MLFLOW_IP = f"{SUBNET}.10"
RAY_PORT = 6379
MLFLOW_PORT = 5000
MAX_WORKERS = 7
OBJECT_STORE_BYTES = 100_000_000  # per node; Ray's minimum is 75 MB
START_TIMEOUT_S = 180.0
STOP_GRACE_S = 3.0  # then SIGKILL: raylets drain for longer than a throwaway cluster deserves
# A cut-off node is declared dead after about 3 s instead of Ray's 30 s: trials move on sooner.
HEAD_SYSTEM_CONFIG = {"health_check_initial_delay_ms": 1000, "health_check_period_ms": 1000,
                      "health_check_timeout_ms": 1000, "health_check_failure_threshold": 3}
NAME_ENV, DIR_ENV = "RDC_TESTCLUSTER_NAME", "RDC_TESTCLUSTER_DIR"
VENV_BIN = Path(sys.executable).parent


@dataclass
class Host:
    role: str  # head, worker, mlflow
    namespace: str
    ip: str
    port: str  # the switch port (veth end in the switch namespace)


@dataclass
class Cluster:
    name: str
    state_dir: str
    hosts: list[Host] = field(default_factory=list)
    pids: dict[str, int] = field(default_factory=dict)  # role/namespace -> pid of the process we started

    @property
    def switch(self) -> str:
        return f"{self.name}-sw"

    @property
    def token_path(self) -> Path:
        return Path(self.state_dir, "auth_token")

    @property
    def ray_address(self) -> str:
        return f"{HEAD_IP}:{RAY_PORT}"

    @property
    def tracking_uri(self) -> str:
        return f"http://{MLFLOW_IP}:{MLFLOW_PORT}"

    def host(self, short: str) -> Host:
        for host in self.hosts:
            if host.namespace == f"{self.name}-{short}" or host.namespace == short:
                return host
        raise UserError("host", short, allowed=", ".join(h.namespace.removeprefix(self.name + "-") for h in self.hosts))

    def ray_env(self) -> dict[str, str]:
        """What every Ray process of the cluster (nodes and driver) needs in its environment."""
        return {
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN_PATH": str(self.token_path),
            # A namespace's own address is no loopback: this is a real cluster (see sweep.launch).
            "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "1",
            "RAY_USAGE_STATS_ENABLED": "0",
        }

    def save(self) -> None:
        Path(self.state_dir).mkdir(parents=True, exist_ok=True)
        data = asdict(self)
        data.update(ray_address=self.ray_address, tracking_uri=self.tracking_uri, token_path=str(self.token_path))
        _state_file(self.state_dir).write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, name: str, state_dir: str) -> "Cluster":
        try:
            data = json.loads(_state_file(state_dir).read_text())
        except (OSError, ValueError):
            return cls(name, state_dir)  # no state: down still finds the namespaces by name
        hosts = [Host(**h) for h in data.get("hosts", [])]
        return cls(data.get("name", name), data.get("state_dir", state_dir), hosts, data.get("pids", {}))


def _state_file(state_dir: str) -> Path:
    return Path(state_dir, "cluster.json")


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


NETNS_DIR = Path("/run/netns")  # where `ip netns add` keeps a named namespace (what `ip netns list` reads)


def namespaces(name: str) -> list[str]:
    """This cluster's namespaces that exist now (readable without root or iproute2)."""
    if not NETNS_DIR.is_dir():
        return []
    return sorted(path.name for path in NETNS_DIR.iterdir() if path.name.startswith(f"{name}-"))


def _temp_dir(cluster: Cluster, host: Host) -> Path:
    # Short: Ray's unix socket paths live under it and must stay below 108 characters.
    return Path("/tmp", host.namespace)


# -- up -------------------------------------------------------------------------------------
def up(name: str, state_dir: str, workers: int, cpus: float) -> Cluster:
    _check_can_build(name, workers, cpus)
    cluster = Cluster(name, str(Path(state_dir).resolve()))
    cluster.hosts = [Host("head", f"{name}-head", HEAD_IP, "p-head")]
    cluster.hosts += [Host("worker", f"{name}-w{i}", f"{SUBNET}.{2 + i}", f"p-w{i}") for i in range(1, workers + 1)]
    cluster.hosts += [Host("mlflow", f"{name}-mlflow", MLFLOW_IP, "p-mlflow")]
    Path(cluster.state_dir, "logs").mkdir(parents=True, exist_ok=True)
    cluster.save()
    try:
        _build_network(cluster)
        _write_token(cluster)
        _start_tracking_server(cluster)
        _start_ray_node(cluster, cluster.hosts[0], cpus)
        _wait_ray_nodes(cluster, 1)
        for host in cluster.hosts[1:-1]:
            _start_ray_node(cluster, host, cpus)
        _wait_ray_nodes(cluster, 1 + workers)
        _wait_tracking_server(cluster)
    except Exception:
        down(name, cluster.state_dir)
        raise
    cluster.save()
    return cluster


def _check_can_build(name: str, workers: int, cpus: float) -> None:
    # The arguments first: checking them needs neither root nor iproute2.
    if not name or not name.replace("-", "").isalnum() or len(name) > 8:
        raise UserError("--name", name, allowed="up to 8 letters, digits or '-' (interface names are short)")
    if not 1 <= workers <= MAX_WORKERS:
        raise UserError("--workers", workers, allowed=f"1..{MAX_WORKERS}")
    if cpus <= 0:
        raise UserError("--cpus", cpus, allowed="a positive number of CPUs per node")
    if os.geteuid() != 0:
        raise UserError("user", os.geteuid(), reason="network namespaces need root", allowed="root (CI runs as root)")
    if shutil.which("ip") is None:
        raise UserError("ip", None, reason="iproute2 is not installed", allowed="apt-get install iproute2")
    if namespaces(name):
        raise UserError("--name", name, reason=f"a test cluster of this name is up ({', '.join(namespaces(name))})",
                        allowed="`make cluster-down` first, or another RDC_TESTCLUSTER_NAME")


def _build_network(cluster: Cluster) -> None:
    _ip("netns", "add", cluster.switch)
    _ip("-n", cluster.switch, "link", "add", "br0", "type", "bridge")
    _ip("-n", cluster.switch, "link", "set", "br0", "up")
    for host in cluster.hosts:
        _ip("netns", "add", host.namespace)
        # Both ends are made inside the cluster's namespaces: no name is ever taken on the machine.
        _ip("-n", cluster.switch, "link", "add", host.port, "type", "veth", "peer", "name", "eth0", "netns", host.namespace)
        _ip("-n", cluster.switch, "link", "set", host.port, "master", "br0")
        _ip("-n", cluster.switch, "link", "set", host.port, "up")
        _ip("-n", host.namespace, "link", "set", "lo", "up")
        _ip("-n", host.namespace, "addr", "add", f"{host.ip}/24", "dev", "eth0")
        _ip("-n", host.namespace, "link", "set", "eth0", "up")


def _write_token(cluster: Cluster) -> None:
    path = cluster.token_path
    path.touch(mode=0o600)
    path.write_text(secrets.token_hex(32))  # 256 bits, as `ray get-auth-token --generate` makes


def _spawn(cluster: Cluster, host: Host, label: str, argv: list[str], env: dict[str, str] | None = None) -> None:
    log = open(Path(cluster.state_dir, "logs", f"{label}.log"), "a")
    full_env = {**os.environ, **(env or {})}
    full_env.pop("RAY_ADDRESS", None)
    process = subprocess.Popen(["ip", "netns", "exec", host.namespace, *argv], stdout=log, stderr=subprocess.STDOUT,
                               env=full_env, start_new_session=True, cwd=cluster.state_dir)
    cluster.pids[label] = process.pid
    cluster.save()


def _start_tracking_server(cluster: Cluster) -> None:
    host = next(h for h in cluster.hosts if h.role == "mlflow")
    _spawn(cluster, host, host.namespace, [sys.executable, "-m", "sweep.tracking_server", "--runs",
                                           str(Path(cluster.state_dir, "mlflow")), "--host", host.ip,
                                           "--port", str(MLFLOW_PORT)])


def _start_ray_node(cluster: Cluster, host: Host, cpus: float) -> None:
    argv = [str(VENV_BIN / "ray"), "start", "--block", f"--node-ip-address={host.ip}", f"--num-cpus={cpus:g}",
            "--num-gpus=0", f"--temp-dir={_temp_dir(cluster, host)}", f"--object-store-memory={OBJECT_STORE_BYTES}",
            "--disable-usage-stats"]
    if host.role == "head":
        argv += ["--head", f"--port={RAY_PORT}", "--include-dashboard=false",
                 f"--system-config={json.dumps(HEAD_SYSTEM_CONFIG)}"]
    else:
        argv += [f"--address={cluster.ray_address}"]
    _spawn(cluster, host, host.namespace, argv, cluster.ray_env())


_COUNT_NODES = """
import sys, time, ray
ray.init(address=sys.argv[1], logging_level="ERROR", log_to_driver=False)
want, give_up = int(sys.argv[2]), time.monotonic() + float(sys.argv[3])
while time.monotonic() < give_up:
    alive = [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]]
    if len(alive) >= want:
        print(" ".join(sorted(alive))); sys.exit(0)
    time.sleep(0.5)
sys.exit(1)
"""


def _wait_ray_nodes(cluster: Cluster, count: int) -> None:
    give_up = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < give_up:
        _check_alive(cluster)
        probe = run_in(cluster, "head", [sys.executable, "-c", _COUNT_NODES, cluster.ray_address, str(count), "30"],
                       capture=True)
        if probe.returncode == 0:
            return
        time.sleep(1)
    raise RuntimeError(f"the Ray cluster did not reach {count} node(s) in {START_TIMEOUT_S:.0f}s "
                       f"(logs in {Path(cluster.state_dir, 'logs')})")


def _wait_tracking_server(cluster: Cluster) -> None:
    script = f"from sweep.tracking_server import wait_until_up; wait_until_up({cluster.tracking_uri!r}, {START_TIMEOUT_S})"
    # Asked from the head: the driver and every trial must reach it over the cluster's network.
    probe = run_in(cluster, "head", [sys.executable, "-c", script], capture=True)
    if probe.returncode != 0:
        raise RuntimeError(f"the tracking server did not answer at {cluster.tracking_uri}: {probe.stderr[-500:]}")


def _check_alive(cluster: Cluster) -> None:
    for label, pid in cluster.pids.items():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            raise RuntimeError(f"{label} exited; see {Path(cluster.state_dir, 'logs', label + '.log')}") from None


def run_in(cluster: Cluster, host: str, argv: list[str], *, capture: bool = False) -> subprocess.CompletedProcess:
    """Run `argv` inside a host's namespace with the cluster's environment; wait for it."""
    env = {**os.environ, **cluster.ray_env()}
    return subprocess.run(["ip", "netns", "exec", cluster.host(host).namespace, *argv], env=env,
                          capture_output=capture, text=True)


# -- links ------------------------------------------------------------------------------------
def set_link(cluster: Cluster, host: str, state: str) -> None:
    """Take a host's switch port down (cut) or up (mend): the host keeps running, unreachable."""
    _ip("-n", cluster.switch, "link", "set", cluster.host(host).port, state)


# -- down -------------------------------------------------------------------------------------
def down(name: str, state_dir: str) -> list[str]:
    """Stop every process in this cluster's namespaces, delete them; the namespaces removed."""
    cluster = Cluster.load(name, state_dir)
    found = namespaces(cluster.name)
    victims = {pid for ns in found for pid in _pids_in(ns)} | set(cluster.pids.values())
    _signal(victims, signal.SIGTERM)
    give_up = time.monotonic() + STOP_GRACE_S
    while time.monotonic() < give_up and any(_alive(p) for p in victims):
        time.sleep(0.2)
    # Anything still there (or started meanwhile, e.g. a Ray worker) is killed outright.
    victims = {p for p in victims if _alive(p)} | {pid for ns in found for pid in _pids_in(ns)}
    _signal(victims, signal.SIGKILL)
    for ns in found:
        _ip("netns", "del", ns, check=False)
    for host in cluster.hosts:
        shutil.rmtree(_temp_dir(cluster, host), ignore_errors=True)
    cluster.token_path.unlink(missing_ok=True)
    cluster.pids.clear()
    if Path(cluster.state_dir).is_dir():
        cluster.save()
    return found


def _pids_in(namespace: str) -> set[int]:
    out = _ip("netns", "pids", namespace, check=False).stdout
    return {int(p) for p in out.split()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie of ours is dead for this purpose
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _signal(pids: set[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass


# -- command line -------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m tests.cluster.testcluster", description=__doc__.split("\n")[0])
    parser.add_argument("--name", default=os.environ.get(NAME_ENV, "rdc"), help=f"namespace prefix (env {NAME_ENV})")
    parser.add_argument("--state", default=os.environ.get(DIR_ENV, "runs/testcluster"),
                        help=f"state folder: logs, token, the tracking server's store (env {DIR_ENV})")
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("up", help="build the cluster and wait until it answers")
    start.add_argument("--workers", type=int, default=1, help="Ray worker hosts besides the head (default 1)")
    start.add_argument("--cpus", type=float, default=1, help="CPUs each Ray node offers (default 1)")
    commands.add_parser("down", help="remove every namespace and process of the cluster")
    commands.add_parser("status", help="print the cluster's state")
    run = commands.add_parser("exec", help="run a command in a host's namespace with the cluster's environment")
    run.add_argument("--host", default="head")
    run.add_argument("argv", nargs=argparse.REMAINDER)
    for verb in ("cut", "mend"):
        link = commands.add_parser(verb, help=f"{'take down' if verb == 'cut' else 'bring back'} a host's link")
        link.add_argument("host", help="head, w1, w2, ... or mlflow")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.command == "up":
        cluster = up(args.name, args.state, args.workers, args.cpus)
        print(f"test cluster {cluster.name!r} is up: Ray at {cluster.ray_address} "
              f"({1 + args.workers} nodes), MLflow at {cluster.tracking_uri}; state in {cluster.state_dir}")
        print(f"  sweep: {sys.executable} -m tests.cluster.testcluster exec -- {VENV_BIN / 'rdc'} sweep "
              f"cluster=testcluster tracking=testcluster")
        return 0
    if args.command == "down":
        removed = down(args.name, args.state)
        print(f"test cluster {args.name!r} is down ({len(removed)} namespaces removed)")
        return 0
    cluster = Cluster.load(args.name, args.state)
    if not cluster.hosts or not namespaces(cluster.name):
        raise UserError("--name", args.name, reason="no test cluster of this name is up", allowed="make cluster-up first")
    if args.command == "status":
        print(_state_file(cluster.state_dir).read_text())
        return 0
    if args.command == "exec":
        argv = args.argv[1:] if args.argv[:1] == ["--"] else args.argv
        if not argv:
            raise UserError("exec", None, reason="no command given", allowed="exec -- <command> [args]")
        namespace = cluster.host(args.host).namespace
        os.execvpe("ip", ["ip", "netns", "exec", namespace, *argv], {**os.environ, **cluster.ray_env()})
    set_link(cluster, args.host, "down" if args.command == "cut" else "up")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as err:
        print(f"python -m tests.cluster.testcluster: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
