"""`rdc sweep [overrides]`: validate everything, then train one trial per variant.

Order matters: the config, the space, the image folders, the tracking store and the cluster
are all checked before the first MLflow write or trial, so bad input leaves nothing behind.
MLflow is the record of what happened: variants already FINISHED there are skipped (unless
force=true), and the end-of-sweep summary is read back from it.
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rdc.arguments import ArgumentParser
from rdc.errors import UserError

INTERRUPTED = 130  # the shell's code for a command stopped by Ctrl-C


def parse_args(argv: list[str], prog: str, description: str) -> argparse.Namespace:
    parser = ArgumentParser(prog=prog, description=description)
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
    try:
        return run_sweep(cfg)
    except UserError:
        raise  # already the one line
    except Exception as err:  # noqa: BLE001 - only a full disk is turned into one line here
        from rdc.diskfull import DiskFull, disk_full_error, out_of_space

        where = f"runs_dir={cfg['runs_dir']!r} or the store {cfg['tracking']['uri']}"
        full = disk_full_error(err, where)
        if full is None:
            written = [cfg["runs_dir"], cfg["cluster"].get("storage_path"), _store_folder(cfg["tracking"]["uri"])]
            left = out_of_space([p for p in written if p])
            full = DiskFull(where, f"no space left on device: {left}") if left else None
        if full is None:
            raise
        raise full from None


def _store_folder(uri: str) -> str | None:
    return str(Path(uri[len("sqlite:///"):]).parent) if uri.startswith("sqlite:///") else None


def sweep_settings(cfg: dict) -> dict:
    """The plain settings every trial receives: the config without the space, plus names."""
    from sweep.space import SPACE_NAME
    from sweep.trainable import FAULT_ENV, NonFiniteFault

    # Only an absent name means the space's (an empty one is refused with every empty value).
    sweep_name = cfg["search_space"]["name"] if cfg["sweep_name"] is None else cfg["sweep_name"]
    if not isinstance(sweep_name, str) or not SPACE_NAME.fullmatch(sweep_name):
        raise UserError("sweep_name", sweep_name,
                        allowed="letters, digits, '.', '_' and '-' (a folder and MLflow experiment name), "
                                "at most 100, not starting with '.', '_' or '-'; leave it out for the space's name")
    settings = {k: v for k, v in cfg.items() if k != "search_space"}
    settings["sweep_name"] = sweep_name
    settings["experiment"] = sweep_name
    fault = os.environ.get(FAULT_ENV)
    if fault:
        NonFiniteFault.parse(fault)
        print(f"rdc sweep: fault injection on: {FAULT_ENV}={fault} (for tests and drills)", file=sys.stderr, flush=True)
        settings["fault_nonfinite"] = fault
    return settings


def check_outputs(cfg: dict) -> None:
    """Where the sweep will write, checked before anything starts; nothing is created here.
    The store: a sqlite file that is an MLflow store or will be created in a writable folder,
    a server that answers within seconds, a database whose driver is installed."""
    from rdc.paths import check_writable_folder, check_writable_location
    from rdc.stores import check_tracking_uri

    check_writable_folder(cfg["runs_dir"], key="runs_dir")
    if cfg["cluster"].get("storage_path"):
        check_writable_folder(cfg["cluster"]["storage_path"], key="cluster.storage_path")
    check_writable_location(cfg["tracking"].get("artifact_root"), key="tracking.artifact_root")
    check_tracking_uri(cfg["tracking"]["uri"], key="tracking.uri", may_create=True)


def run_sweep(cfg: dict) -> int:
    from jobs.crops import RandomCrops, TrainingSet
    from jobs.data import load_images
    from sweep import launch, tracking
    from sweep.schedulers import scheduler_for
    from sweep.search import strategy_for
    from sweep.cost_bound import BoundedCosts, check_cost_bound
    from sweep.space import expand
    from sweep.relocate import relocate_moved_artifacts
    from sweep.sweep_run import end_sweep_run, open_sweep_run, publish
    from sweep.trials import TrialGrid

    if cfg["resume"] and cfg["force"]:
        raise UserError("force", True, reason="resume=true continues the interrupted sweep as it was launched",
                        allowed="force=true or resume=true, not both")
    launch.check_cluster(cfg["cluster"])
    # First: the settings read the space's name. The training-memory bound is checked before a
    # budget constraint costs a variant (BoundedCosts) and before anything starts.
    variants = expand(cfg["search_space"], costs=BoundedCosts(cfg))
    check_cost_bound(variants, cfg)
    strategy = strategy_for(cfg["search"], variants, force=cfg["force"])
    scheduler = scheduler_for(cfg["scheduler"], cfg["train"]["steps"])
    settings = sweep_settings(cfg)
    check_outputs(cfg)
    # Training images are checked from their headers (a folder may hold thousands of large
    # photographs); evaluation images are decoded, as every trial will.
    train = cfg["train"]
    limit = cfg["data"]["max_pixels"]
    RandomCrops(TrainingSet.scan(cfg["data"]["train_dir"], verify=True, max_pixels=limit), train["crop"],
                train["batch_size"], train["seed"])
    load_images(cfg["data"]["eval_dir"], split="eval", key="data.eval_dir", max_pixels=limit)
    record = tracking.SweepRecord.of(settings)
    name, uri = record.sweep, record.uri
    grid = TrialGrid(settings)

    launch.configure_ray_import(cfg["cluster"])
    with launch.sweep_lock(settings):
        # Under the lock: a running driver's half-written state is not "damaged", it is busy.
        plan = _plan_invocation(cfg, settings, grid, variants, strategy)
        if plan is None:
            return 0

        launch.start_ray(cfg["cluster"], log=launch.ray_log_path(settings))
        try:
            launch.check_capacity(cfg["cluster"])
            if cfg["cluster"]["mode"] != "local":
                launch.check_nodes_reach(uri)
            # Everything is checked: from here on the sweep writes.
            moved = relocate_moved_artifacts(uri, name, cfg["tracking"].get("artifact_root"))
            if moved:
                print(f"sweep {name!r}: {moved}", flush=True)
            tracking.ensure_experiment(uri, name, cfg["tracking"].get("artifact_root"))
            sweep_run = open_sweep_run(record)
            grid.attach(sweep_run)
            _link(grid, variants, plan.reused)
            results = list(_resume(plan.statuses, settings, grid, variants, scheduler)) if plan.resume else []
            results += _rounds(strategy, scheduler, settings, grid, variants, plan.launched, evaluate=bool(plan.stale))
            # Tune returns early on Ctrl-C, with trials left unfinished: they are resumable, not failed.
            statuses = launch.trial_statuses(settings) or {}
            if not any(status in launch.UNFINISHED for status in statuses.values()):
                launch.clear_set_aside(settings)
        finally:
            launch.stop_ray()
    unfinished = sum(status in launch.UNFINISHED for status in statuses.values())
    if unfinished:
        end_sweep_run(sweep_run, record, "KILLED")  # its artifacts are refreshed when the sweep ends
        print(f"sweep {name!r} stopped with {unfinished} trial(s) unfinished; continue it with the same "
              "overrides and resume=true", flush=True)
        return INTERRUPTED
    status = summarise(results, plan.launched, grid)
    for line in publish(sweep_run, record, cfg, variants, report=cfg["tracking"]["sweep_report"],
                        status="FINISHED" if status == 0 else "FAILED"):
        print(f"sweep {name!r}: sweep run {sweep_run}: {line}", flush=True)
    return status


@dataclass
class Invocation:
    """What this `rdc sweep` does, decided under the sweep's lock before Ray starts: resume the
    interrupted launch (its trials' statuses), or start fresh, linking runs reused from other
    sweeps and evaluating again the finished runs measured on other images (`stale`), then the
    search strategy's rounds. `launched`: the trial keys already launched in this sweep."""

    resume: bool
    statuses: dict = field(default_factory=dict)
    launched: list = field(default_factory=list)
    stale: list = field(default_factory=list)
    reused: dict = field(default_factory=dict)


def _plan_invocation(cfg: dict, settings: dict, grid, variants: list, strategy) -> "Invocation | None":
    """The Invocation, printing what it will do; None when nothing is left to train or evaluate
    (runs reused from other sweeps are then linked here, without Ray)."""
    from rdc import names
    from sweep import launch, tracking
    from sweep.reevaluate import eval_set_label
    from sweep.reuse import reusable
    from sweep.tracking import RunState

    name, uri = grid.name, settings["tracking"]["uri"]
    lost = launch.damaged_state(settings)
    if lost:  # what MLflow holds is enough to go on: FINISHED variants are kept, the rest trained
        print(f"sweep {name!r}: the earlier launch's Tune state is damaged ({lost}); its checkpoints are not "
              "used: variants FINISHED in MLflow are kept, the others train from the start", flush=True)
    if cfg["resume"] and not lost:
        statuses = launch.check_resumable(settings)
        print(f"sweep {name!r}: resuming {sum(s in launch.UNFINISHED for s in statuses.values())} unfinished "
              f"of {len(statuses)} trials; MLflow {uri}", flush=True)
        return Invocation(resume=True, statuses=statuses, launched=list(statuses))
    launch.check_fresh(settings)  # first: an interrupted round's variants count as tried
    states = grid.trial_states()
    reused = {} if cfg["force"] else reusable(grid.trials(variants), states, eval_set_label(cfg["data"]))
    if reused:
        sources = sorted({r.data.tags.get(names.TAG_SWEEP, "?") for r in reused.values()})
        print(f"sweep {name!r}: {len(reused)} trial(s) finished with the same training in other sweeps "
              f"({', '.join(sources)}) are reused: linked, not trained again (force=true trains them)", flush=True)
    # As they will be once linked (after every check, below).
    runs = grid.variant_states(variants, {**states, **{k: RunState("FINISHED", {}) for k in reused}})
    print(f"sweep {name!r}{strategy.describe(runs)}{grid.describe()}; MLflow {uri}", flush=True)
    stale = grid.evaluated_elsewhere(grid.trials(variants), states, cfg["data"])
    if stale:
        sets = sorted({states[t.key].eval_images for t in stale})
        print(f"sweep {name!r}: {len(stale)} finished trial(s) were evaluated on other images ({', '.join(sets)}) "
              f"than {eval_set_label(cfg['data'])}: evaluating them on these, not training them again", flush=True)
    if not strategy.left(runs) and not stale:
        if reused:  # nothing to train: link them without starting Ray
            tracking.ensure_experiment(uri, name, cfg["tracking"].get("artifact_root"))
            _link(grid, variants, reused)
        return None
    return Invocation(resume=False, stale=stale, reused=reused)


def _link(grid, variants: list, reused: dict) -> None:
    """Copy each reused run into this sweep (sweep.reuse.link)."""
    from sweep.reuse import link

    for trial in grid.trials(variants):
        if trial.key in reused:
            link(trial, reused[trial.key])


def _resume(statuses: dict[str, str], settings: dict, grid, variants: list, scheduler) -> list:
    """Train again the trials the interrupted launch left unfinished (or errored), rebuilt from
    today's config (check_resumable made sure it trains the same); a trial of that launch that
    is no longer in the space is said and left."""
    from sweep import launch

    wanted = {key for key, status in statuses.items() if status in launch.RESUMED}
    trials = [t for t in grid.trials(variants) if t.key in wanted]
    gone = sorted(wanted - {t.key for t in trials})
    if gone:
        print(f"sweep {grid.name!r}: {len(gone)} unfinished trial(s) of the interrupted launch are no longer in the "
              f"space and are left: {', '.join(gone[:5])}{' ...' if len(gone) > 5 else ''}", flush=True)
    return launch.resume_trials(trials, settings, scheduler) if trials else []


def _rounds(strategy, scheduler, settings: dict, grid, variants: list, launched: list[str], *,
            evaluate: bool = False) -> list:
    """The strategy's rounds, each trained as a Tune experiment of its own, until it proposes
    nothing or a round is interrupted (resume=true continues that round). Each proposed variant
    trains the points it lacks (all of them with force=true). `launched` gains each round's
    trial keys; a trial is launched once per invocation, so a round with nothing new ends it.
    `evaluate`: the first round also takes the finished trials evaluated on other images."""
    from sweep import launch, tracking

    results = []
    slots = launch.trial_slots(settings["cluster"])
    states = grid.trial_states()
    runs = grid.variant_states(variants, states)
    if launched and not launch.unfinished(settings):  # a resumed round finished: where the sweep stands now
        print(f"sweep {grid.name!r}{strategy.describe(runs)}{grid.describe()}", flush=True)
    pending = grid.evaluated_elsewhere(grid.trials(variants), states, settings["data"]) if evaluate else []
    while not launch.unfinished(settings):
        picks = strategy.propose(runs, slots, launched)
        trials = grid.trials(picks) if strategy.force else grid.unsettled(grid.trials(picks), states)
        trials += [t for t in pending if t.key not in {x.key for x in trials}]
        pending = []
        trials = [t for t in trials if t.key not in launched]
        if not trials:
            break
        if strategy.round_line(picks):
            print(strategy.round_line(picks), flush=True)
        launch.start_fresh(settings)
        if strategy.force:
            for point_record in grid.records.values():
                tracking.discard_runs(point_record, {v.variant_id for v in picks})
        launched += [t.key for t in trials]
        results += list(launch.run_trials(trials, settings, scheduler))
        states = grid.trial_states()
        runs = grid.variant_states(variants, states)
        if strategy.round_line(picks) and not launch.unfinished(settings):
            print(f"sweep {grid.name!r}{strategy.describe(runs)}{grid.describe()}", flush=True)
    return results


def summarise(results, launched: list[str], grid) -> int:
    """Print what became of every trial of this launch, from MLflow; 1 if any failed.
    A trial a scheduler stopped is a result, not a failure: counted apart."""
    from sweep import launch, tracking
    from sweep.trials import trial_of

    labels = {}
    for result in results:
        trial = trial_of(result.config)
        if trial is None:  # restored from a sweep launched before trials travelled
            continue
        labels[trial.key] = trial.describe()
        if result.error is not None:  # Ray gave up on the trial: its run must not stay RUNNING
            tracking.mark_failed(trial.record, trial.variant.variant_id, "trial error: " + launch.last_line(result.error))
    states = grid.trial_states()
    failed, stopped = [], []
    for key in launched:
        state = states.get(key)
        if state is None:
            failed.append((key, "the trial never opened its MLflow run"))
        elif state.stopped:
            stopped.append((key, state))
        elif not state.finished:
            failed.append((key, state.failure or state.status))
    total = len(launched)
    what = "trials" if len(grid.points) > 1 else "variants"
    also = f", {len(stopped)} stopped early" if stopped else ""
    print(f"finished {total - len(failed) - len(stopped)}/{total} {what}{also}", flush=True)
    for key, state in stopped:
        print(f"  stopped {key} {labels.get(key, '')}: by {state.stopped_by} at step {state.stopped_at}", flush=True)
    for key, reason in failed:
        print(f"  failed {key} {labels.get(key, '')}: {reason}", flush=True)
    return 1 if failed else 0
