"""Replay of early-stopping policies over learning curves read back from a real sqlite MLflow store."""

from __future__ import annotations

import pandas as pd
import pytest

from analysis.replay import Curve, Suite, curves_from_mlflow, curves_from_table, main, replay, replay_all
from analysis.stopping import AshaRule
from rdc.stopping import FrontierRule, Margin
from rdc import names
from rdc.errors import UserError

STEPS = 100
EVAL_STEPS = list(range(10, STEPS + 1, 10))
# variant: (decode kFLOPs/px, loss at the end, how much higher the curve starts)
VARIANTS = {
    "a": (10.0, 1.0, 1.0),
    "b": (20.0, 1.5, 1.0),  # costs more than a, worse at every step: stopped at the first rung
    "c": (5.0, 1.5, 1.0),  # worse than a but cheaper: on the frontier, kept
    "d": (40.0, 0.8, 1.0),  # costs most, best: on the frontier, kept
}


def loss_at(variant: str, step: int) -> float:
    _, final, start = VARIANTS[variant]
    return final + start * (STEPS - step) / STEPS


def log_sweep(uri: str, experiment: str, *, order: list[str], seeds=(0,), killed: str | None = None) -> None:
    """One run per (variant, seed) with its eval/rd_loss history; evaluations timestamped in the
    order trials would have reported: `order` lists the variants in the order they start, all
    training side by side (a trial that starts later logs each step later)."""
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.create_experiment(experiment)
    for offset, variant in enumerate(order):
        kflops, final, _ = VARIANTS[variant]
        for seed in seeds:
            run = client.create_run(exp, run_name=f"{variant}-{seed}").info.run_id
            wobble = 0.01 * seed
            history = [Metric(names.EVAL_RD_LOSS, loss_at(variant, s) + wobble, 1_000_000 + 1000 * s + 10 * offset + seed, s)
                       for s in EVAL_STEPS if not (variant == killed and s > 30)]
            finals = [] if variant == killed else [Metric(names.RD_LOSS, final + wobble, 2_000_000, STEPS),
                                                   Metric(names.BPP, 0.5, 2_000_000, STEPS),  # what a report needs
                                                   Metric(names.PSNR, 32.0 - final, 2_000_000, STEPS)]
            client.log_batch(run, metrics=history + finals + [Metric(names.DECODE_KFLOPS_PER_PX, kflops, 0, 0)],
                             params=[Param(names.TRAIN_PARAM_PREFIX + "steps", str(STEPS)),
                                     Param(names.TRAIN_PARAM_PREFIX + "lmbda", "0.01")],
                             tags=[RunTag(names.TAG_VARIANT_ID, variant), RunTag(names.TAG_SEED, str(seed)),
                                   RunTag(names.TAG_SWEEP, experiment)])
            client.set_terminated(run, status=names.STOPPED_STATUS if variant == killed else "FINISHED")


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('replay') / 'mlflow.db'}"
    log_sweep(uri, "side-by-side", order=["a", "b", "c", "d"])
    log_sweep(uri, "b-first", order=["b", "a", "c", "d"])
    log_sweep(uri, "replicates", order=["a", "b", "c", "d"], seeds=(0, 1, 2))
    log_sweep(uri, "one-killed", order=["a", "b", "c", "d"], killed="b")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    bare = client.create_run(client.create_experiment("no-curves")).info.run_id  # trained without eval_every
    client.log_metric(bare, names.RD_LOSS, 1.0)
    client.set_terminated(bare)
    return uri


def test_curves_come_back_from_mlflow_with_flops_finals_seeds_and_times(store):
    curves, max_steps, notes = curves_from_mlflow("side-by-side", store)
    assert max_steps == STEPS and notes == []
    curve = next(c for c in curves if c.variant_id == "b")
    assert curve.steps == tuple(EVAL_STEPS) and curve.kflops == 20.0 and curve.final_rd_loss == 1.5
    assert curve.rd_loss[0] == pytest.approx(loss_at("b", 10)) and curve.seed == 0
    assert list(curve.times) == sorted(curve.times)


def test_the_frontier_rule_stops_the_dominated_variant_and_keeps_the_whole_frontier(store):
    curves, max_steps, _ = curves_from_mlflow("side-by-side", store)
    outcome = replay(curves, FrontierRule(max_steps), max_steps, order="observed")
    stopped = {curves_by_id(curves)[t]: d for t, d in outcome.stops.items()}
    assert list(stopped) == ["b"]
    decision = stopped["b"]
    assert (decision.rung, decision.step) == (0.1, 10) and [d.variant_id for d in decision.dominators] == ["a"]
    assert outcome.total_steps == 10 + 3 * STEPS and outcome.steps_fraction == pytest.approx(310 / 400)
    assert outcome.hypervolume_kept == pytest.approx(1.0) and outcome.lost == []
    # ASHA on loss alone sees c (cheap, worse) as a loser and drops the frontier's cheap end.
    asha = replay(curves, AshaRule(max_steps, 10, 2), max_steps, order="observed")
    lost_to_asha = {curves_by_id(curves)[t] for t in asha.stops}
    assert "c" in lost_to_asha and "c" in asha.lost and asha.hypervolume_kept < 1.0


def curves_by_id(curves: list[Curve]) -> dict[str, str]:
    return {c.trial_id: c.variant_id for c in curves}


def test_the_observed_order_is_the_sweeps_and_decides_who_meets_whom(store):
    curves, max_steps, _ = curves_from_mlflow("b-first", store)
    # b logged each step before a did: judged once on arrival, it never meets a at a rung.
    once = replay(curves, FrontierRule(max_steps, revisit=False), max_steps, order="observed")
    assert once.stops == {}
    # Revisiting: a, arriving after b at the first rung, stops b at b's next report (step 20).
    observed = replay(curves, FrontierRule(max_steps), max_steps, order="observed")
    assert {curves_by_id(curves)[t]: d.step for t, d in observed.stops.items()} == {"b": 20}
    # Side by side in plan order, b (listed after a) meets a at the first rung.
    ordered = sorted(curves, key=lambda c: c.variant_id)
    parallel = replay(ordered, FrontierRule(max_steps), max_steps, order="parallel")
    assert {curves_by_id(curves)[t] for t in parallel.stops} == {"b"}
    # One trial at a time: a finishes, then b is judged against a's values at each rung.
    serial = replay(ordered, FrontierRule(max_steps), max_steps, order="parallel", concurrency=1)
    assert {curves_by_id(curves)[t] for t in serial.stops} == {"b"}


def test_replicates_are_judged_together_and_give_the_noise(store):
    curves, max_steps, _ = curves_from_mlflow("replicates", store)
    assert len(curves) == 12 and sorted({c.seed for c in curves}) == [0, 1, 2]
    from analysis.replay import pooled_noise_sd

    assert pooled_noise_sd(curves) == pytest.approx(0.01)  # seeds 0, 0.01, 0.02 apart: sd 0.01
    outcome = replay(curves, FrontierRule(max_steps, margin=Margin(noise_multiple=2.0, noise_sd=0.01)), max_steps,
                     order="observed")
    assert {curves_by_id(curves)[t] for t in outcome.stops} == {"b"}
    assert len(outcome.stops) == 3  # every seed of b
    assert outcome.hypervolume_kept == pytest.approx(1.0)


def test_a_variant_finished_at_one_lucky_seed_is_scored_on_every_seed(store):
    """A policy that finishes only seed 0 of each variant (the lowest RD loss of the three here)
    finds the whole frontier, and is credited with the frontier's hypervolume: exactly 1, never
    more (its own seed-0 figures would put its frontier beyond the exhaustive one)."""
    from rdc.stopping import CONTINUE, STOP, Decision

    curves, max_steps, _ = curves_from_mlflow("replicates", store)
    lucky = {c.trial_id for c in curves if c.seed == 0}

    class FinishSeedZero:
        name = "seed-zero"

        def describe(self) -> str:
            return "finish seed 0 of every variant"

        def on_report(self, report):
            action = CONTINUE if report.trial_id in lucky else STOP
            return Decision(action, policy=self.name, trial_id=report.trial_id, variant_id=report.variant_id,
                            step=report.step, reason="seed 0" if action == CONTINUE else "another seed",
                            rung_step=None if action == CONTINUE else report.step)

    outcome = replay(curves, FinishSeedZero(), max_steps)
    assert set(outcome.finished) == lucky and not outcome.lost
    assert outcome.hypervolume_kept == pytest.approx(1.0)


def test_a_sweep_with_a_stopped_run_has_no_exhaustive_frontier_to_compare(store):
    curves, max_steps, _ = curves_from_mlflow("one-killed", store)
    outcome = replay(curves, FrontierRule(max_steps), max_steps, order="observed")
    assert outcome.hypervolume_kept is None and "exhaustive frontier is unknown" in outcome.notes[0]


def test_rdc_replay_prints_every_policy(store, capsys):
    assert main(["--experiment", "side-by-side", "--tracking-uri", store, "--format", "csv", "--draws", "20"]) == 0
    out, err = capsys.readouterr()
    table = pd.read_csv(__import__("io").StringIO(out))
    # Each curve ends at its final RD loss here: they rank alike at the end (notes go to stderr with csv).
    assert "the held-out curve ranks the final RD loss with Spearman rho" in err and "at its last point 1.00" in err
    assert {"exhaustive", "frontier", "asha", "mo-asha", "ax-scaled-pareto", "random", "optuna-tpe"} <= set(table["policy"])
    frontier = table[table["policy"] == "frontier"].iloc[0]
    assert frontier["steps_fraction"] == pytest.approx(310 / 400) and frontier["hypervolume_kept"] == pytest.approx(1.0)
    with pytest.raises(UserError, match="no run has a eval/rd_loss history"):
        main(["--experiment", "no-curves", "--tracking-uri", store])
    with pytest.raises(UserError, match="--concurrency"):
        main(["--experiment", "side-by-side", "--tracking-uri", store, "--concurrency", "0"])
    for noise in ("-0.1", "nan", "inf"):  # a margin from a negative or undefined noise would stop at random
        with pytest.raises(UserError, match="^--noise-sd"):
            main(["--experiment", "side-by-side", "--tracking-uri", store, "--noise-sd", noise])
    with pytest.raises(UserError, match=r"^--order: invalid choice: 'sideways'"):  # argparse's refusal, one line
        main(["--experiment", "side-by-side", "--order", "sideways"])


def test_rdc_replay_plots_hypervolume_against_steps_for_every_policy(store, tmp_path, capsys):
    out = tmp_path / "figures" / "replay_hv"
    assert main(["--experiment", "side-by-side", "--tracking-uri", store, "--draws", "20", "--plot", str(out)]) == 0
    png, svg = out.with_suffix(".png"), out.with_suffix(".svg")
    assert png.stat().st_size > 0 and f"wrote {png} and {svg}" in capsys.readouterr().err
    drawn = svg.read_text()  # text stays text: each policy's legend entry is in the drawing
    for policy in ("exhaustive", "frontier", "asha", "mo-asha", "ax-scaled-pareto", "random", "optuna-tpe"):
        assert f">{policy}<" in drawn, policy
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    with pytest.raises(UserError) as err:  # refused before replaying, nothing written
        main(["--experiment", "side-by-side", "--tracking-uri", store, "--plot", str(blocked / "hv")])
    assert err.value.key == "--plot" and blocked.read_text() == ""


def test_the_report_shows_what_each_policy_would_have_kept(store, tmp_path):
    from analysis.report import ReportOptions, write_report

    page = write_report(ReportOptions("side-by-side", tmp_path / "report", tracking_uri=store, codecs=[]))
    html = page.read_text()
    assert "Early stopping: what each policy would have kept" in html and "early_stopping_hv.png" in html
    assert "What any policy could know: the held-out curve ranks the final RD loss" in html
    table = pd.read_csv(page.parent / "early_stopping.csv")
    assert {"exhaustive", "frontier", "asha", "mo-asha", "ax-scaled-pareto", "random"} <= set(table["policy"])
    frontier = table[table["policy"] == "frontier"].iloc[0]  # as rdc replay found it (the observed order)
    assert frontier["hypervolume_kept"] == pytest.approx(1.0) and frontier["steps_fraction"] < 1.0
    assert (page.parent / "early_stopping_hv.svg").stat().st_size > 0
    # No exhaustive frontier (a run was stopped): no section, and the notes say why.
    page = write_report(ReportOptions("one-killed", tmp_path / "killed", tracking_uri=store, codecs=[]))
    assert "Early stopping:" not in page.read_text() and "the exhaustive frontier is unknown" in page.read_text()


def test_a_learning_curve_table_replays_like_the_store():
    rows = [{"variant_id": v, "seed": 0, "step": s, "eval_rd_loss": loss_at(v, s), names.DECODE_KFLOPS_PER_PX: VARIANTS[v][0]}
            for v in VARIANTS for s in EVAL_STEPS]
    curves, max_steps = curves_from_table(pd.DataFrame(rows))
    assert max_steps == STEPS and [c.final_rd_loss for c in curves] == [1.0, 1.5, 1.5, 0.8]
    table, _ = replay_all(curves, max_steps, noise_sd=0.01, suite=Suite(draws=20))
    frontier = table[table["policy"] == "frontier"]
    # scheduler=frontier's defaults first; then margins 0, 0.02, 0.05 x loss, 1, 2 x noise and 2 x the curves' sd
    assert len(frontier) == 7 and frontier["setting"].iloc[0].endswith("(scheduler=frontier's defaults)")
    assert "margin 1 x the curves' sd" in frontier["setting"].iloc[0] and "last 3 evaluations" in frontier["setting"].iloc[0]
    assert frontier["steps_fraction"].tolist() == pytest.approx([310 / 400] * 7)
    assert frontier["hypervolume_kept"].tolist() == pytest.approx([1.0] * 7)
    with pytest.raises(ValueError, match="lacks columns"):
        curves_from_table(pd.DataFrame({"variant_id": ["a"]}))


def _finals(points: dict[str, tuple[float, float]]) -> pd.DataFrame:
    return pd.DataFrame([{"variant_id": v, names.RD_LOSS: loss, names.DECODE_KFLOPS_PER_PX: cost}
                         for v, (loss, cost) in points.items()])


def test_the_hindsight_floor_finishes_the_fewest_variants_that_keep_the_share():
    from analysis.replay import fewest_keeping

    # a and d span the frontier; b barely bends it (2.6 % of the hypervolume), c is dominated.
    points = {"a": (1.0, 10.0), "b": (0.99, 12.0), "c": (1.2, 15.0), "d": (0.5, 40.0)}
    assert sorted(fewest_keeping(_finals(points), 0.9)) == ["a", "d"]
    assert sorted(fewest_keeping(_finals(points), 1.0)) == ["a", "b", "d"]
    assert fewest_keeping(_finals({"only": (1.0, 1.0)}), 0.95) == ["only"]
    # One variant best on both: it alone keeps everything.
    assert fewest_keeping(_finals({**points, "e": (0.4, 5.0)}), 1.0) == ["e"]


def test_the_hindsight_floor_is_the_best_of_every_subset_on_random_fronts():
    """The programme against its definition: the smallest subset, among all of them, whose
    hypervolume (analysis.frontier, the exhaustive bounds) reaches the share."""
    import itertools

    import numpy as np

    from analysis.frontier import hypervolume
    from analysis.replay import OBJECTIVES, fewest_keeping

    rng = np.random.default_rng(7)
    for trial in range(30):
        n = int(rng.integers(3, 10))
        cost = np.exp(rng.uniform(0, 3, n))
        loss = 5 - np.log(cost) + rng.normal(0, 0.4, n)
        every = _finals({f"v{i}": (float(loss[i]), float(cost[i])) for i in range(n)})
        whole = hypervolume(every, OBJECTIVES)
        keep = float(rng.choice([0.8, 0.9, 0.95, 0.99, 1.0]))
        chosen = fewest_keeping(every, keep)
        kept = hypervolume(every[every["variant_id"].isin(chosen)], OBJECTIVES, bounds=whole.bounds).value
        assert kept >= keep * whole.value * (1 - 1e-9), trial
        smaller = [subset for subset in itertools.combinations(every["variant_id"], len(chosen) - 1)
                   if subset and hypervolume(every[every["variant_id"].isin(subset)], OBJECTIVES,
                                             bounds=whole.bounds).value >= keep * whole.value * (1 - 1e-9)]
        assert smaller == [], (trial, chosen, smaller)


def test_replay_all_ends_with_the_hindsight_floor_when_the_frontier_is_known(store):
    curves, max_steps, _ = curves_from_mlflow("side-by-side", store)
    table, _ = replay_all(curves, max_steps, suite=Suite(draws=4))
    (floor,) = table[table["policy"] == "oracle"].itertuples()
    # The frontier is c, a, d; c (cheapest, but barely better than a's cost) adds 1.7 % of the
    # hypervolume, so a and d keep 0.983 of it: finished, b and c stopped at the first rung.
    assert floor.hypervolume_kept == pytest.approx(0.808 / 0.822, abs=2e-3) and floor.lost_frontier_variants == "c"
    assert floor.steps_fraction == pytest.approx((2 * STEPS + 2 * 10) / 400) and "finish the 2 variants" in floor.setting
    killed, steps, _ = curves_from_mlflow("one-killed", store)
    assert "oracle" not in set(replay_all(killed, steps, suite=Suite(draws=4))[0]["policy"])
