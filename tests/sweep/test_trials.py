"""The seed and lambda axes: one trial and one MLflow run per (variant, lambda, seed), variant_id
the architecture's; a point's run is the run a sweep without the axis would have made, so
widening a sweep trains only the points it lacks. Unit checks on a real sqlite MLflow store,
then one real sweep on a real Ray instance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from rdc import names
from rdc.cli import main
from rdc.errors import UserError
from sweep import tracking
from sweep.commands import sweep_settings
from sweep.config import load_config
from sweep.space import expand
from sweep.trials import TrainPoint, TrialGrid, combine, point_train, train_points
from sweep.tracking import RunState, VariantRun
from tests.cluster.rig import make_root, sweep_args, write_space


def _settings(tmp_path: Path, *overrides: str) -> tuple[dict, list]:
    cfg = load_config([f"runs_dir={tmp_path / 'runs'}", f"tracking.uri=sqlite:///{tmp_path / 'mlflow.db'}",
                       "search_space=demo", *overrides])
    return sweep_settings(cfg), expand(cfg["search_space"])


def test_points_are_lambda_major_and_each_trains_with_its_own_seed_and_lambda_only():
    train = load_config(["train.seeds=[2,0]", "train.lmbdas=[0.01,0.002]"])["train"]
    points = train_points(train)
    assert points == [TrainPoint(0.01, 2), TrainPoint(0.01, 0), TrainPoint(0.002, 2), TrainPoint(0.002, 0)]
    one = point_train(train, points[2])
    assert (one["seed"], one["lmbda"]) == (2, 0.002) and "seeds" not in one and "lmbdas" not in one
    plain = load_config([])["train"]
    assert train_points(plain) == [TrainPoint(plain["lmbda"], plain["seed"])]


def test_a_point_has_the_training_config_id_of_the_sweep_without_the_axes(tmp_path: Path):
    # So widening to more seeds keeps the runs already trained, and old sweeps keep their ids.
    plain, _ = _settings(tmp_path)
    widened, _ = _settings(tmp_path, "train.seeds=[0,1,2]", "train.lmbdas=[0.0125,0.05]")
    other_seed, _ = _settings(tmp_path, "train.seed=1")
    grid = TrialGrid(widened)
    ids = {p: r.train_config_id for p, r in grid.records.items()}
    assert ids[TrainPoint(0.0125, 0)] == tracking.SweepRecord.of(plain).train_config_id
    assert ids[TrainPoint(0.0125, 1)] == tracking.SweepRecord.of(other_seed).train_config_id
    assert len(set(ids.values())) == 6
    # The axes alone change no id: a sweep that lists only its one seed is the plain sweep.
    listed, _ = _settings(tmp_path, "train.seeds=[0]")
    assert tracking.SweepRecord.of(listed) == tracking.SweepRecord.of(plain)


@pytest.mark.parametrize("override, key", [
    ("train.seeds=[]", "train.seeds"), ("train.seeds=[-1]", "train.seeds"), ("train.seeds=[1,1]", "train.seeds"),
    ("train.lmbdas=[0]", "train.lmbdas"), ("train.lmbdas=[0.01,0.01]", "train.lmbdas"),
    ("train.lmbdas=[-0.5]", "train.lmbdas"), ("train.lmbdas=[nan]", "train.lmbdas[0]"),
])
def test_a_bad_axis_is_refused_when_the_config_loads(override: str, key: str):
    with pytest.raises(UserError) as err:
        load_config([override])
    assert err.value.key == key and "\n" not in str(err.value)


def test_asha_refuses_several_lambdas_and_the_frontier_rule_takes_them():
    with pytest.raises(UserError) as err:
        load_config(["scheduler=asha", "train.lmbdas=[0.01,0.02]"])
    assert err.value.key == "scheduler" and "scheduler=frontier" in str(err.value)
    load_config(["scheduler=frontier", "train.lmbdas=[0.01,0.02]"])
    load_config(["scheduler=asha", "train.seeds=[0,1]"])  # seeds share a lambda: one scale


def test_trial_keys_name_the_points_only_when_there_are_several(tmp_path: Path):
    settings, variants = _settings(tmp_path, "train.seeds=[0,1]")
    keys = [t.key for t in TrialGrid(settings).trials(variants[:1])]
    assert keys == [f"{variants[0].variant_id}-s0", f"{variants[0].variant_id}-s1"]
    settings, _ = _settings(tmp_path, "train.seeds=[0,1]", "train.lmbdas=[0.01,0.02]")
    assert TrialGrid(settings).trials(variants[:1])[3].key == f"{variants[0].variant_id}-s1-l0.02"
    settings, _ = _settings(tmp_path)
    assert [t.key for t in TrialGrid(settings).trials(variants[:1])] == [variants[0].variant_id]


def test_states_by_trial_and_by_variant_from_a_real_store(tmp_path: Path):
    settings, variants = _settings(tmp_path, "train.seeds=[0,1,2]")
    record = tracking.SweepRecord.of(settings)
    tracking.ensure_experiment(record.uri, record.experiment, None)
    grid = TrialGrid(settings)
    first, second = variants[:2]
    trials = {t.key: t for t in grid.trials([first, second])}
    for key, finish in ((f"{first.variant_id}-s0", True), (f"{first.variant_id}-s1", True),
                        (f"{first.variant_id}-s2", True), (f"{second.variant_id}-s0", True),
                        (f"{second.variant_id}-s1", False)):
        trial = trials[key]
        run = VariantRun(trial.record, trial.variant, trial.train).open()
        run.log_final(10, {names.RD_LOSS: 1.0 + trial.point.seed})
        if finish:
            run.finish()
    states = grid.trial_states()
    assert set(states) == set(trials) - {f"{second.variant_id}-s2"}
    by_variant = grid.variant_states(variants, states)
    assert set(by_variant) == {first.variant_id, second.variant_id}
    assert by_variant[first.variant_id].finished and by_variant[first.variant_id].metrics[names.RD_LOSS] == 2.0
    assert not by_variant[second.variant_id].settled and by_variant[second.variant_id].missing == 1
    todo = grid.unsettled(list(trials.values()), states)
    assert [t.key for t in todo] == [f"{second.variant_id}-s1", f"{second.variant_id}-s2"]
    # The runs carry their point, and share the architecture's id.
    client = MlflowClient(record.uri)
    runs = client.search_runs([client.get_experiment_by_name(record.experiment).experiment_id],
                              f"tags.{names.TAG_VARIANT_ID} = '{first.variant_id}'")
    assert sorted(r.data.tags[names.TAG_SEED] for r in runs) == ["0", "1", "2"]
    assert {r.data.params["train.seed"] for r in runs} == {"0", "1", "2"}
    assert {r.data.tags[names.TAG_LMBDA] for r in runs} == {f"{settings['train']['lmbda']:g}"}


def variant_runs(client: MlflowClient, experiment: str) -> list:
    return [r for r in client.search_runs([experiment]) if r.data.tags.get(names.TAG_SWEEP_RUN) != "true"]


def _check_sweep_run(client: MlflowClient, experiment: str, variant_runs: list) -> None:
    """One sweep-level run, FINISHED, parent of every variant run, with the config, the plan and
    the report (frontier table, seed replicates and noise, figures in PNG and SVG)."""
    (sweep_run,) = client.search_runs([experiment], f"tags.{names.TAG_SWEEP_RUN} = 'true'")
    assert sweep_run.info.status == "FINISHED" and sweep_run.data.tags[names.TAG_SWEEP] == "axes"
    assert {r.data.tags.get(names.TAG_PARENT_RUN) for r in variant_runs} == {sweep_run.info.run_id}
    folder = Path(client.download_artifacts(sweep_run.info.run_id, ""))
    assert load_config([]).keys() <= yaml.safe_load((folder / "config.yaml").read_text()).keys()
    plan = (folder / "plan.csv").read_text().splitlines()
    assert len(plan) == 3 and names.DECODE_KFLOPS_PER_PX in plan[0]
    report = folder / "report"
    for name in ("report.html", "frontier.csv", "replicates.csv", "noise.json", "fig2_rd_loss_vs_kflops.png",
                 "fig2_rd_loss_vs_kflops.svg"):
        assert (report / name).is_file(), name
    noise = json.loads((report / "noise.json").read_text())
    assert noise["n_variants"] == 2 and noise["n_runs"] == 4 and noise["within_sd"] > 0


def test_combined_state_is_settled_only_when_every_point_is():
    done = RunState("FINISHED", {"rd_loss": 1.0, "bpp": 0.5})
    stopped = RunState(names.STOPPED_STATUS, {}, stopped_at=4, stopped_by="frontier")
    assert combine([done]) is done
    assert combine([done, RunState("FINISHED", {"rd_loss": 3.0})]).metrics == {"rd_loss": 2.0}
    assert combine([done, stopped]).stopped and combine([done, stopped]).stopped_at == 4
    assert combine([done, RunState("FAILED", {}, "diverged")]).failure == "diverged"
    assert not combine([done], missing=1).settled


@pytest.mark.slow
def test_a_sweep_over_lambdas_then_widened_to_seeds_trains_each_point_once(shared_ray, tmp_path: Path, capsys):
    root = make_root(tmp_path)
    write_space(root, "axes", "axes", widths=[4, 8])
    lmbdas = "train.lmbdas=[0.004,0.0125,0.04]"
    base = sweep_args(root, "axes", steps=3, log_every=1, checkpoint_every=3, extra=("train.eval_every=0",))
    assert main([*base, lmbdas]) == 0
    out = capsys.readouterr().out
    assert "2 variants, 0 already finished, 2 to train, each at 3 lambdas (0.004, 0.0125, 0.04)" in out
    assert "finished 6/6 trials" in out
    # Ray's and Tune's start-up lines are in the sweep's Ray log, not in its output.
    for chatter in ("TensorBoard", "Configuration for experiment", "View detailed results"):
        assert chatter not in out
    assert (root / "runs" / "ray" / "axes.ray.log").stat().st_size > 0
    uri = f"sqlite:///{root / 'runs' / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("axes").experiment_id
    runs = variant_runs(client, experiment)
    assert len(runs) == 6 and all(r.info.status == "FINISHED" for r in runs)
    by_variant: dict[str, set] = {}
    for run in runs:
        assert run.data.params["train.lmbda"] == run.data.tags[names.TAG_LMBDA] or \
            float(run.data.params["train.lmbda"]) == float(run.data.tags[names.TAG_LMBDA])
        by_variant.setdefault(run.data.tags[names.TAG_VARIANT_ID], set()).add(float(run.data.params["train.lmbda"]))
    assert list(by_variant.values()) == [{0.004, 0.0125, 0.04}] * 2
    # RD losses weigh distortion by lambda: same model family, different losses per lambda.
    assert len({round(r.data.metrics[names.RD_LOSS], 6) for r in runs}) == 6

    # Widened to two seeds at one of those lambdas: only the two (variant, seed 1) runs are new.
    # This launch also refreshes the sweep-level run with rdc report's output.
    assert main([*base, "train.lmbda=0.0125", "train.seeds=[0,1]", "tracking.sweep_report=true"]) == 0
    out = capsys.readouterr().out
    assert "2 variants, 0 already finished, 2 to train, each at 2 seeds (0, 1)" in out
    assert "finished 2/2 trials" in out and "report not made" not in out
    runs = variant_runs(client, experiment)
    assert len(runs) == 8
    assert sorted((r.data.tags[names.TAG_SEED], r.data.tags[names.TAG_LMBDA]) for r in runs).count(("1", "0.0125")) == 2
    _check_sweep_run(client, experiment, runs)
    # Nothing is left to train at those points.
    assert main([*base, "train.lmbda=0.0125", "train.seeds=[0,1]"]) == 0
    assert "2 already finished, 0 to train" in capsys.readouterr().out
