"""`rdc sweep [overrides]`: validate everything, then train one trial per variant.

Order matters: the config, the space, the image folders, the tracking store and the cluster
are all checked before the first MLflow write or trial, so bad input leaves nothing behind.
MLflow is the record of what happened: variants already FINISHED there are skipped (unless
force=true), and the end-of-sweep summary is read back from it.
"""

from __future__ import annotations

import argparse
import os
import re
import sys

from rdc.errors import UserError

INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C
SWEEP_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")


def parse_args(argv: list[str], prog: str, description: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. search_space=paper train.steps=50")
    parser.add_argument("--cfg", choices=["job"], help="print the composed config and exit")
    parser.add_argument("--config-dir", help="an extra folder of config groups (e.g. your search_space/*.yaml)")
    return parser.parse_intermixed_args(argv)  # options may come between overrides


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv), "rdc sweep",
                      "Train one trial per variant of a search space on Ray; log each to MLflow.")
    from sweep.config import compose, load_config

    if args.cfg:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(compose(args.overrides, args.config_dir)))
        return 0
    cfg = load_config(args.overrides, args.config_dir)
    return run_sweep(cfg)


def sweep_settings(cfg: dict) -> dict:
    """The plain settings every trial receives: the config without the space, plus names."""
    from sweep.trainable import FAULT_ENV, NonFiniteFault

    sweep_name = cfg["sweep_name"] or cfg["search_space"]["name"]
    if not isinstance(sweep_name, str) or not SWEEP_NAME.match(sweep_name):
        raise UserError("sweep_name", sweep_name,
                        allowed="letters, digits, '.', '_' and '-' (a folder and MLflow experiment name), "
                                "at most 100, not starting with '.', '_' or '-'")
    settings = {k: v for k, v in cfg.items() if k != "search_space"}
    settings["sweep_name"] = sweep_name
    settings["experiment"] = sweep_name
    fault = os.environ.get(FAULT_ENV)
    if fault:
        NonFiniteFault.parse(fault)
        print(f"rdc sweep: fault injection on: {FAULT_ENV}={fault} (for tests and drills)", file=sys.stderr, flush=True)
        settings["fault_nonfinite"] = fault
    return settings


def run_sweep(cfg: dict) -> int:
    from jobs.crops import RandomCrops, TrainingSet
    from jobs.data import load_images
    from sweep import launch, tracking
    from sweep.space import expand

    if cfg["resume"] and cfg["force"]:
        raise UserError("force", True, reason="resume=true continues the interrupted sweep as it was launched",
                        allowed="force=true or resume=true, not both")
    searching = cfg["search"]["strategy"] == "optuna"
    if searching and cfg["force"]:
        raise UserError("force", True, reason="search=optuna continues from every run of the sweep",
                        allowed="a new sweep_name to search again from scratch")
    launch.check_cluster(cfg["cluster"])
    variants = expand(cfg["search_space"])  # first: the settings read the space's name
    settings = sweep_settings(cfg)
    # Training images are checked from their headers (a folder may hold thousands of large
    # photographs); evaluation images are decoded, as every trial will.
    train = cfg["train"]
    RandomCrops(TrainingSet.scan(cfg["data"]["train_dir"], verify=True), train["crop"], train["batch_size"], train["seed"])
    load_images(cfg["data"]["eval_dir"], split="eval", key="data.eval_dir")
    uri = cfg["tracking"]["uri"]
    tracking.check_store(uri)
    name = settings["sweep_name"]
    config_id = tracking.train_config_id(cfg["train"], cfg["data"]["train_dir"])

    launch.configure_ray_import(cfg["cluster"])
    with launch.sweep_lock(settings):
        if cfg["resume"]:
            statuses = launch.check_resumable(settings)
            launched = list(statuses)
            print(f"sweep {name!r}: resuming {sum(s in launch.UNFINISHED for s in statuses.values())} unfinished "
                  f"of {len(statuses)} trials; MLflow {uri}", flush=True)
        elif searching:
            launched = []  # chosen round by round
            launch.check_fresh(settings)  # first: an interrupted round's variants count as tried
            runs = tracking.results(uri, name, name, config_id)
            if not _search_left(cfg["search"], variants, runs):
                _say_search(cfg["search"], variants, runs, name)
                return 0
        else:
            finished = set() if cfg["force"] else tracking.finished_variant_ids(uri, name, name, config_id)
            todo = [v for v in variants if v.variant_id not in finished]
            launched = [v.variant_id for v in todo]
            print(f"sweep {name!r}: {len(variants)} variants, {len(variants) - len(todo)} already finished, "
                  f"{len(todo)} to train; MLflow {uri}", flush=True)
            if not todo:
                return 0
            launch.check_fresh(settings)

        launch.start_ray(cfg["cluster"])
        try:
            launch.check_capacity(cfg["cluster"])
            if cfg["cluster"]["mode"] != "local":
                launch.check_nodes_reach(uri)
            # Everything is checked: from here on the sweep writes.
            tracking.ensure_experiment(uri, name, cfg["tracking"].get("artifact_root"))
            if not cfg["resume"] and not searching:
                launch.start_fresh(settings)
            if cfg["force"]:
                tracking.discard_runs(uri, name, name, config_id, set(launched))
            if searching:
                results = list(launch.restore_trials(settings)) if cfg["resume"] else []
                if not launch.unfinished(settings):
                    results += _search_rounds(cfg["search"], variants, settings, config_id, launched,
                                              launch.trial_slots(cfg["cluster"]))
            else:
                results = launch.restore_trials(settings) if cfg["resume"] else launch.run_trials(todo, settings)
            # Tune returns early on Ctrl-C, with trials left unfinished: they are resumable, not failed.
            statuses = launch.trial_statuses(settings) or {}
        finally:
            launch.stop_ray()
    unfinished = sum(status in launch.UNFINISHED for status in statuses.values())
    if unfinished:
        print(f"sweep {name!r} stopped with {unfinished} trial(s) unfinished; continue it with the same "
              "overrides and resume=true", flush=True)
        return INTERRUPTED
    return summarise(results, launched, uri, name, config_id)


def _search_tried(variants: list, runs: dict) -> int:
    return sum(v.variant_id in runs for v in variants)


def _search_left(search: dict, variants: list, runs: dict) -> int:
    """Variants the search may still train: its budget (at most the space) less those with a run."""
    return max(0, min(search["budget"], len(variants)) - _search_tried(variants, runs))


def _say_search(search: dict, variants: list, runs: dict, name: str) -> int:
    """Print where the search stands; the variants it may still train."""
    left = _search_left(search, variants, runs)
    whole = " (the whole space)" if search["budget"] > len(variants) else ""
    print(f"sweep {name!r}, optuna search ({search['sampler']}): {len(variants)} variants, budget {search['budget']}"
          f"{whole}, {_search_tried(variants, runs)} tried, {left} to train", flush=True)
    return left


def _search_rounds(search_cfg: dict, variants: list, settings: dict, config_id: str, launched: list[str],
                   slots: int) -> list:
    """Rounds of Optuna's proposals, each trained as a grid sweep of its own, until the budget
    is spent or a round is interrupted. `launched` gains each round's variants."""
    from sweep import launch, search, tracking

    uri, name = settings["tracking"]["uri"], settings["sweep_name"]
    results = []
    runs = tracking.results(uri, name, name, config_id)
    left = _say_search(search_cfg, variants, runs, name)
    while left > 0:
        picks = search.propose(variants, runs, min(left, search.round_size(search_cfg, slots)),
                               sampler=search_cfg["sampler"], seed=search_cfg["seed"])
        if not picks:
            break
        print(f"search round: {len(picks)} variant(s) proposed by optuna ({search_cfg['sampler']})", flush=True)
        launch.start_fresh(settings)
        launched += [v.variant_id for v in picks]
        results += list(launch.run_trials(picks, settings))
        if launch.unfinished(settings):  # stopped (Ctrl-C): resume=true continues this round
            break
        runs = tracking.results(uri, name, name, config_id)
        left = _say_search(search_cfg, variants, runs, name)
    return results


def summarise(results, launched: list[str], uri: str, name: str, config_id: str) -> int:
    """Print what became of every variant of this launch, from MLflow; 1 if any failed."""
    from sweep import launch, tracking

    labels = {}
    for result in results:
        variant = result.config["variant"]
        labels[variant["variant_id"]] = f"{variant['family']} {variant['label']}"
        if result.error is not None:  # Ray gave up on the trial: its run must not stay RUNNING
            tracking.mark_failed(uri, name, name, config_id, variant["variant_id"], "trial error: " + launch.last_line(result.error))
    states = tracking.outcomes(uri, name, name, config_id)
    failed = []
    for variant_id in launched:
        status, reason = states.get(variant_id, ("NO RUN", "the trial never opened its MLflow run"))
        if status != "FINISHED":
            failed.append((variant_id, reason or status))
    total = len(launched)
    print(f"finished {total - len(failed)}/{total} variants", flush=True)
    for variant_id, reason in failed:
        print(f"  failed {variant_id} {labels.get(variant_id, '')}: {reason}", flush=True)
    return 1 if failed else 0

