"""`rdc sweep [overrides]`: validate everything, then train one trial per variant.

Order matters: the config, the space and the image folders are all checked before Ray starts
or MLflow is touched, so bad input leaves nothing behind.
"""

from __future__ import annotations

import argparse
import sys

from rdc.errors import UserError


def parse_args(argv: list[str], prog: str, description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. search_space=paper train.steps=50")
    parser.add_argument("--cfg", choices=["job"], help="print the composed config and exit")
    parser.add_argument("--config-dir", help="an extra folder of config groups (e.g. your search_space/*.yaml)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv), "rdc sweep",
                      "Train one trial per variant of a search space on Ray; log each to MLflow.")
    from sweep.config import compose, load_config

    if args.cfg:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(compose(args.overrides, args.config_dir)))
        return 0
    cfg = load_config(args.overrides, args.config_dir)

    from jobs.data import load_images
    from sweep.space import expand
    from sweep.tracking import ensure_experiment, finished_variant_ids, train_config_id

    variants = expand(cfg["search_space"])
    load_images(cfg["data"]["train_dir"], split="train", key="data.train_dir")
    load_images(cfg["data"]["eval_dir"], split="eval", key="data.eval_dir")

    sweep_name = cfg["sweep_name"] or cfg["search_space"]["name"]
    settings = {k: v for k, v in cfg.items() if k != "search_space"}
    settings["sweep_name"] = sweep_name
    settings["experiment"] = sweep_name
    tracking = cfg["tracking"]

    ensure_experiment(tracking["uri"], sweep_name, tracking.get("artifact_root"))
    if cfg["force"]:
        todo = variants
    else:
        finished = finished_variant_ids(tracking["uri"], sweep_name, sweep_name, train_config_id(cfg["train"]))
        todo = [v for v in variants if v.variant_id not in finished]
    print(f"sweep {sweep_name!r}: {len(variants)} variants, {len(variants) - len(todo)} already finished, "
          f"{len(todo)} to train; MLflow {tracking['uri']}", flush=True)
    if not todo:
        return 0

    from sweep.launch import run_trials, start_ray, stop_ray

    start_ray(cfg["cluster"])
    try:
        results = run_trials(todo, settings)
    finally:
        stop_ray()
    return _summarise(results)


def _summarise(results) -> int:
    failed = []
    for result in results:
        variant = result.config["variant"]
        last = result.metrics or {}
        if result.error is not None:
            failed.append((variant, _last_line(result.error)))
        elif last.get("failed"):
            failed.append((variant, last["failed"]))
    total = len(results)
    print(f"finished {total - len(failed)}/{total} variants", flush=True)
    for variant, reason in failed:
        print(f"  failed {variant['variant_id']} {variant['family']} {variant['label']}: {reason}", flush=True)
    return 1 if failed else 0


def _last_line(error: BaseException) -> str:
    # Ray wraps the trial's exception with its whole traceback; its last line is the reason.
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return (lines[-1] if lines else type(error).__name__)[:300]


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as err:
        print(f"rdc sweep: error: {err}", file=sys.stderr)
        sys.exit(err.exit_code)
