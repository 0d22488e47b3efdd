"""Seed replicates on a real sqlite MLflow store with known answers: grouping over seeds, Student-t
intervals (checked against scipy on the same numbers), bootstrap frontier membership over seeds and
evaluation images, and the sweep's pooled within-variant noise."""

from __future__ import annotations

import io
import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from analysis.query import select_lambda
from analysis.replicates import (P_FRONTIER, SEEDS_AND_IMAGES, SEEDS_ONLY, frontier_probability, load_eval_tables,
                                 noise_estimate, query_replicates, render_replicates, replicate_frontier,
                                 replicate_runs, summarise_replicates, t_interval)
from rdc import names
from tests.analysis.conftest import RunLogger

LMBDA = 0.0125
SCALE = LMBDA * 255**2
IMAGES = ("kodim01", "kodim02", "kodim03", "kodim04")
DIFFICULTY = np.array([-0.2, -0.05, 0.05, 0.2])  # every run's RD loss moves by these per image
IMAGE_BPP = np.array([0.1, 0.15, 0.2, 0.25])
FLAT = (0.0, 0.0, 0.0, 0.0)
# variant: (decode kFLOPs/px, RD loss, {seed: offset}, the variant's own per-image offsets (mean 0))
VARIANTS = {
    "cheap": (100.0, 1.20, {0: 0.0, 1: 0.01, 2: -0.01}, FLAT),  # cheapest: never dominated
    "dominated": (300.0, 1.50, {0: 0.02, 1: -0.02, 2: 0.0}, FLAT),  # worse than cheap on every image and seed
    "amb1": (200.0, 0.80, {0: 0.03, 1: -0.03, 2: 0.0}, (0.01, -0.01, 0.02, -0.02)),
    "amb2": (200.0, 0.80, {0: 0.02, 1: -0.01, 2: 0.005}, (-0.01, 0.01, -0.02, 0.02)),  # amb1's rival at equal cost
    "top": (400.0, 0.50, {0: 0.0, 1: 0.02, 2: -0.02}, FLAT),  # best RD loss: never dominated
    "single": (500.0, 0.60, {0: 0.0}, FLAT),  # one seed, dominated by top
}


def per_image_rd(variant: str, seed: int) -> np.ndarray:
    _, loss, offsets, own = VARIANTS[variant]
    return loss + offsets[seed] + DIFFICULTY + np.array(own)


def logged_rd(variant: str, seed: int) -> float:
    """The run-level RD loss as jobs/evaluate logs it: lambda 255^2 mean(mse) + mean(bpp)."""
    mse = (per_image_rd(variant, seed) - IMAGE_BPP) / SCALE
    return SCALE * mse.mean() + IMAGE_BPP.mean()


def eval_table(rd: np.ndarray, lmbda: float = LMBDA) -> pd.DataFrame:
    """The per-image table jobs/evaluate writes, made to give these per-image RD losses."""
    mse = (rd - IMAGE_BPP) / (lmbda * 255**2)
    return pd.DataFrame({"name": IMAGES, "height": 512, "width": 768, "num_bytes": (IMAGE_BPP * 512 * 768 / 8).round(),
                         "header_bytes": 8, "bpp": IMAGE_BPP, "bpp_est": IMAGE_BPP * 0.98, "mse": mse,
                         "psnr": 10 * np.log10(1 / mse)})


def copy_store(known_store: str, target: Path) -> str:
    """A copy of the session's migrated store (creating a fresh one costs seconds of migrations)."""
    source = sqlite3.connect(known_store[len("sqlite:///"):])
    copy = sqlite3.connect(target)
    with copy:
        source.backup(copy)
    source.close()
    copy.close()
    return f"sqlite:///{target}"


class ReplicateLogger:
    def __init__(self, uri: str, folder: Path, experiment: str):
        self.log = RunLogger(uri)
        self.folder = folder
        self.experiment_id = self.log.client.create_experiment(experiment, artifact_location=(folder / "artifacts").as_uri())

    def run(self, variant: str, seed: int | None, kflops: float, rd: np.ndarray, *, lmbda: float = LMBDA,
            status: str = "FINISHED", table: bool = True, shuffle: bool = False) -> str:
        frame = eval_table(rd, lmbda)
        metrics = {names.DECODE_KFLOPS_PER_PX: kflops, names.BPP: frame["bpp"].mean(), names.MSE: frame["mse"].mean(),
                   names.PSNR: frame["psnr"].mean(),
                   names.RD_LOSS: lmbda * 255**2 * frame["mse"].mean() + frame["bpp"].mean()}
        run_id = self.log.run(self.experiment_id, f"{variant}-{seed}", variant_id=variant, lmbda=lmbda,
                              metrics=metrics, status=status)
        if seed is not None:
            self.log.client.set_tag(run_id, names.TAG_SEED, str(seed))
        if table:
            path = self.folder / run_id / names.EVAL_TABLE
            path.parent.mkdir(parents=True)
            (frame.iloc[::-1] if shuffle else frame).to_csv(path, index=False)
            self.log.client.log_artifact(run_id, str(path))
        return run_id


@pytest.fixture(scope="module")
def replicate_store(known_store, tmp_path_factory) -> str:
    folder = tmp_path_factory.mktemp("replicates")
    uri = copy_store(known_store, folder / "mlflow.db")
    log = ReplicateLogger(uri, folder, "replicates")
    # Logged first, so older: the later run of cheap seed 0 replaces it (it would win if counted).
    log.run("cheap", 0, 100.0, per_image_rd("cheap", 0) - 0.5)
    for variant, (kflops, _, offsets, _) in VARIANTS.items():
        for seed in offsets:
            log.run(variant, seed, kflops, per_image_rd(variant, seed), shuffle=variant == "top" and seed == 1)
    log.run("amb1", 3, 200.0, per_image_rd("amb1", 0) - 0.5, status="FAILED")  # failed: never counted
    log.run("cheap", 0, 100.0, per_image_rd("cheap", 0) - 0.8, lmbda=0.0067)  # another lambda: another point
    log.run("legacy", None, 600.0, np.full(4, 2.0))  # a run from before seeds: its own replicate
    return uri


@pytest.fixture(scope="module")
def compared(replicate_store) -> tuple[pd.DataFrame, dict]:
    """The runs at the lambda most runs used, and their per-image tables read from MLflow."""
    frame, _, _ = select_lambda(replicate_runs("replicates", replicate_store), None)
    return frame, load_eval_tables(frame["run_id"], replicate_store)


def test_runs_group_by_variant_over_seeds(replicate_store):
    result = query_replicates("replicates", tracking_uri=replicate_store, draws=50, all_variants=True, images=False)
    table = result.table.set_index(names.TAG_VARIANT_ID)
    assert set(table.index) == {*VARIANTS, "legacy"}
    assert table["n_seeds"].to_dict() == {"cheap": 3, "dominated": 3, "amb1": 3, "amb2": 3, "top": 3, "single": 1,
                                          "legacy": 1}
    assert table.loc["cheap", "seeds"] == "0,1,2" and table.loc["legacy", "seeds"] == "?"
    assert (table["train.lmbda"] == LMBDA).all()
    for variant, (_, _, offsets, _) in VARIANTS.items():
        assert table.loc[variant, "rd_loss_mean"] == pytest.approx(np.mean([logged_rd(variant, s) for s in offsets]),
                                                                   abs=1e-12)
        assert table.loc[variant, "decode_kflops_per_px_mean"] == VARIANTS[variant][0]
    assert len(result.runs) == 3 * 5 + 1 + 1  # one run per (variant, seed) at the lambda compared
    assert any("1 earlier run(s)" in n and "cheap seed 0" in n for n in result.notes), result.notes
    assert any("train.lmbda=0.0125" in n for n in result.notes), result.notes
    # The frontier of the means: cheap, the better of the ambiguous pair on average, top.
    on_front = table[table["pareto_rank"] == 1]
    assert set(on_front.index) == {"cheap", "amb1", "top"}
    assert on_front.sort_values("label")["label"].to_dict() == {"top": "A", "amb1": "B", "cheap": "C"}


def test_confidence_intervals_are_student_t_over_seeds(replicate_store):
    result = query_replicates("replicates", tracking_uri=replicate_store, draws=10, images=False)
    row = result.ranked.set_index(names.TAG_VARIANT_ID).loc["cheap"]
    values = [logged_rd("cheap", s) for s in (0, 1, 2)]
    mean, sd = np.mean(values), np.std(values, ddof=1)
    low, high = stats.t.interval(0.95, df=2, loc=mean, scale=sd / math.sqrt(3))
    assert row["rd_loss_sd"] == pytest.approx(sd, rel=1e-9)
    assert (row["rd_loss_ci_low"], row["rd_loss_ci_high"]) == pytest.approx((low, high), rel=1e-9)
    # t(0.975, 2) = 4.302652729...: the interval is wide with three seeds, as it should be.
    assert row["rd_loss_ci_high"] - mean == pytest.approx(4.302652729911275 * sd / math.sqrt(3), rel=1e-9)
    single = result.ranked.set_index(names.TAG_VARIANT_ID).loc["single"]
    assert math.isnan(single["rd_loss_sd"]) and math.isnan(single["rd_loss_ci_low"])


def test_t_interval_by_hand():
    values = [1.0, 1.5, 2.0, 4.0]  # mean 2.125; squares about it 1.265625 + 0.390625 + 0.015625 + 3.515625
    n, mean, sd, low, high = t_interval(np.array(values + [math.nan]))
    assert (n, mean) == (4, 2.125) and sd == pytest.approx(math.sqrt(5.1875 / 3))
    half = 3.182446305284263 * sd / 2  # t(0.975, 3) * sd / sqrt(4)
    assert (low, high) == pytest.approx((2.125 - half, 2.125 + half))
    assert (low, high) == pytest.approx(stats.t.interval(0.95, 3, loc=mean, scale=sd / 2))
    n90, *_, low90, high90 = t_interval(np.array(values), confidence=0.9)
    assert (low90, high90) == pytest.approx(stats.t.interval(0.9, 3, loc=mean, scale=sd / 2))
    assert t_interval(np.array([3.0]))[:2] == (1, 3.0) and all(math.isnan(v) for v in t_interval(np.array([3.0]))[2:])


def test_every_metric_is_summarised_per_variant():
    frame = pd.DataFrame({"run_id": list("abcde"), names.TAG_VARIANT_ID: ["v", "v", "v", "w", "w"],
                          names.TAG_FAMILY: "Conv/Hyperprior:Conv", names.TAG_SEED: [0, 1, 2, 0, 1],
                          names.RD_LOSS: [1.0, 1.5, 2.0, 3.0, math.nan], names.BPP: [0.1, 0.2, 0.3, 0.4, 0.5]})
    summary = summarise_replicates(frame).set_index([names.TAG_VARIANT_ID, "metric"])
    assert set(summary.index) == {("v", "rd_loss"), ("v", "bpp"), ("w", "rd_loss"), ("w", "bpp")}
    assert summary.loc[("v", "rd_loss"), "n"] == 3 and summary.loc[("w", "rd_loss"), "n"] == 1
    assert summary.loc[("w", "bpp"), "mean"] == pytest.approx(0.45)
    low, high = stats.t.interval(0.95, 2, loc=1.5, scale=0.5 / math.sqrt(3))
    assert (summary.loc[("v", "rd_loss"), "ci_low"], summary.loc[("v", "rd_loss"), "ci_high"]) == pytest.approx((low, high))


def test_bootstrap_membership_over_seeds_and_images(replicate_store, compared):
    frame, tables = compared
    assert len(tables) == len(frame) == 3 * 5 + 1 + 1 + 1  # every finished run's, the replaced duplicate's too
    result = query_replicates("replicates", tracking_uri=replicate_store, draws=400, all_variants=True,
                              eval_tables=tables)
    assert result.bootstrap == SEEDS_AND_IMAGES
    assert not any("do not average" in n for n in result.notes), result.notes  # tables agree with the metrics
    p = result.ranked.set_index(names.TAG_VARIANT_ID)[P_FRONTIER]
    assert p["cheap"] == 1.0 and p["top"] == 1.0  # never dominated, in any seed or image
    assert p["dominated"] == 0.0 and p["single"] == 0.0 and p["legacy"] == 0.0  # dominated in every seed and image
    assert 0.0 < p["amb1"] < 1.0 and 0.0 < p["amb2"] < 1.0
    assert p["amb1"] + p["amb2"] >= 1.0  # at equal cost, the better of the two is on the frontier in every draw
    assert p["amb1"] > p["amb2"]  # the better mean
    # Rows shown by default: the frontier of the means and every variant with a chance.
    shown = set(query_replicates("replicates", tracking_uri=replicate_store, draws=50,
                                 eval_tables=tables).table[names.TAG_VARIANT_ID])
    assert shown == {"cheap", "amb1", "amb2", "top"}


def test_bootstrap_is_seeded_and_independent_of_row_order(compared):
    frame, tables = compared
    objectives = {names.DECODE_KFLOPS_PER_PX: "min", names.RD_LOSS: "min"}
    first = replicate_frontier(frame, objectives, eval_tables=tables, draws=300, bootstrap_seed=7)
    again = replicate_frontier(frame.sample(frac=1.0, random_state=3), objectives, eval_tables=tables, draws=300,
                               bootstrap_seed=7)
    pd.testing.assert_frame_equal(first, again)
    other = replicate_frontier(frame, objectives, eval_tables=tables, draws=300, bootstrap_seed=8)
    assert not np.array_equal(first[P_FRONTIER], other[P_FRONTIER])  # another seed, other draws
    assert first.attrs["draws"] == 300 and first.attrs["bootstrap_seed"] == 7


def test_seeds_only_bootstrap_matches_exact_enumeration():
    # Two seeds each, dyadic values (exact sums): a resampled mean of p's {0.5, 1.0} is 0.5, 0.75 or
    # 1.0 with probability 1/4, 1/2, 1/4, and of q's {0.625, 0.875} 0.625, 0.75 or 0.875. At equal
    # cost the lower mean is on the frontier, both on a tie: P(p) = 1/4 (p = 0.5: always)
    # + 1/2 * (1/2 + 1/4) (p = 0.75: q = 0.75 or 0.875) + 0 (p = 1.0) = 5/8, and 5/8 for q by symmetry.
    frame = pd.DataFrame({"run_id": list("abcd"), names.TAG_VARIANT_ID: ["p", "p", "q", "q"],
                          names.TAG_SEED: [0, 1, 0, 1], names.DECODE_KFLOPS_PER_PX: 10.0,
                          names.RD_LOSS: [0.5, 1.0, 0.625, 0.875]})
    objectives = {names.DECODE_KFLOPS_PER_PX: "min", names.RD_LOSS: "min"}
    p, scope, notes = frontier_probability(frame, objectives, draws=4000, bootstrap_seed=1)
    assert scope == SEEDS_ONLY and notes == ["bootstrap over seeds only: per-image tables not read"]
    p = p.set_index(names.TAG_VARIANT_ID)[P_FRONTIER]
    tolerance = 4 * math.sqrt(5 / 8 * 3 / 8 / 4000)  # four standard errors of a share of 4000 draws
    assert abs(p["p"] - 5 / 8) < tolerance and abs(p["q"] - 5 / 8) < tolerance


def test_image_bootstrap_matches_exact_enumeration():
    # One seed each, two images evaluated by both: bpp p = (0.5, 1.0), q = (0.75, 0.75). Drawing the
    # images jointly gives p's mean 0.5, 0.75, 1.0 with probability 1/4, 1/2, 1/4 against q's 0.75:
    # p is on the frontier with probability 3/4 (ties included), and so is q.
    frame = pd.DataFrame({"run_id": ["a", "b"], names.TAG_VARIANT_ID: ["p", "q"], names.TAG_SEED: [0, 0],
                          names.DECODE_KFLOPS_PER_PX: 10.0, names.BPP: [0.75, 0.75]})
    tables = {"a": pd.DataFrame({"name": ["x", "y"], "bpp": [0.5, 1.0]}),
              "b": pd.DataFrame({"name": ["y", "x"], "bpp": [0.75, 0.75]})}
    objectives = {names.DECODE_KFLOPS_PER_PX: "min", names.BPP: "min"}
    p, scope, notes = frontier_probability(frame, objectives, eval_tables=tables, draws=4000, bootstrap_seed=2)
    assert scope == SEEDS_AND_IMAGES and notes == []
    p = p.set_index(names.TAG_VARIANT_ID)[P_FRONTIER]
    tolerance = 4 * math.sqrt(3 / 4 * 1 / 4 / 4000)
    assert abs(p["p"] - 3 / 4) < tolerance and abs(p["q"] - 3 / 4) < tolerance
    # Without p's table, only seeds are resampled (one seed each: no uncertainty left) and it is said.
    p_only, scope, notes = frontier_probability(frame, objectives, eval_tables={"b": tables["b"]}, draws=100)
    assert scope == SEEDS_ONLY and notes == ["bootstrap over seeds only: 1 of 2 runs have no eval_images.csv"]
    assert p_only[P_FRONTIER].tolist() == [1.0, 1.0]  # equal means: both on the frontier
    other_images = {"a": tables["a"], "b": tables["b"].assign(name=["y", "z"])}
    _, scope, notes = frontier_probability(frame, objectives, eval_tables=other_images, draws=10)
    assert scope == SEEDS_ONLY and notes == ["bootstrap over seeds only: the runs were not all evaluated on the same images"]


def test_rd_loss_is_recomputed_from_the_images_as_logged():
    # RD loss from the per-image table: lambda 255^2 mean(mse) + mean(bpp), at each run's own lambda.
    rd = np.array([0.4, 0.5, 0.6, 0.7])
    table = eval_table(rd, lmbda=0.0067)
    frame = pd.DataFrame({"run_id": ["a"], names.TAG_VARIANT_ID: ["v"], names.TAG_SEED: [0], "train.lmbda": [0.0067],
                          names.DECODE_KFLOPS_PER_PX: 1.0, names.RD_LOSS: [rd.mean()]})
    objectives = {names.DECODE_KFLOPS_PER_PX: "min", names.RD_LOSS: "min"}
    _, scope, notes = frontier_probability(frame, objectives, eval_tables={"a": table}, draws=5)
    assert scope == SEEDS_AND_IMAGES and notes == []
    wrong = frame.assign(**{names.RD_LOSS: [rd.mean() + 0.01]})
    _, _, notes = frontier_probability(wrong, objectives, eval_tables={"a": table}, draws=5)
    assert notes == ["rd_loss: the per-image tables of 1 run(s) do not average to the logged metric"
                     " (resampled as the tables say)"]


def test_pooled_within_variant_sd_by_hand():
    # a: 1, 2, 3 (squares about the mean 2, 2 degrees of freedom); b: 2, 4 (squares 2, 1 dof); c: 5 alone.
    frame = pd.DataFrame({"run_id": list("abcdef"), names.TAG_VARIANT_ID: list("aaabbc"),
                          names.TAG_SEED: [0, 1, 2, 0, 1, 0], names.RD_LOSS: [1.0, 2.0, 3.0, 2.0, 4.0, 5.0]})
    noise = noise_estimate(frame)
    assert noise.within_sd == pytest.approx(math.sqrt(4 / 3))
    assert (noise.dof, noise.n_variants, noise.n_runs) == (3, 2, 5)
    assert noise.between_sd == pytest.approx(np.std([2.0, 3.0, 5.0], ddof=1))
    assert "pooled within-variant sd 1.155" in noise.describe()
    assert math.isnan(noise_estimate(frame[frame[names.TAG_VARIANT_ID] == "c"]).within_sd)


def test_sweep_noise_from_the_store(replicate_store):
    result = query_replicates("replicates", tracking_uri=replicate_store, draws=10, images=False)
    within = []
    for variant, (_, _, offsets, _) in VARIANTS.items():
        values = np.array([logged_rd(variant, s) for s in offsets])
        within += list(values - values.mean())
    dof = sum(len(o) - 1 for _, _, o, _ in VARIANTS.values())
    assert result.noise.within_sd == pytest.approx(math.sqrt(np.sum(np.square(within)) / dof), rel=1e-9)
    assert result.noise.n_variants == 5 and result.noise.dof == 10


def test_attainment_surfaces_of_the_seeds_fronts(replicate_store):
    from analysis.attainment import attainment_surfaces, seed_fronts

    result = query_replicates("replicates", tracking_uri=replicate_store, draws=10, images=False)
    fronts = seed_fronts(result.runs, result.objectives)
    assert sorted(fronts) == [0, 1, 2]  # the legacy run has no seed: in no seed's front
    assert set(fronts[0][names.TAG_VARIANT_ID]) == {"cheap", "amb2", "top"}  # amb2 is better in seed 0
    assert set(fronts[1][names.TAG_VARIANT_ID]) == {"cheap", "amb1", "top"}
    surfaces = attainment_surfaces(fronts, result.objectives)
    # Per seed (0, 1, 2) at 100 kFLOPs/px 1.20, 1.21, 1.19; at 200 the better of amb1/amb2 0.82, 0.77,
    # 0.80; at 400 0.50, 0.52, 0.48. 50 % of 3 seeds: the 2nd best of each; 90 %: the 3rd.
    expected = pd.DataFrame({"percent": [50] * 3 + [90] * 3, "level": [2] * 3 + [3] * 3, "n_sets": 3,
                             names.DECODE_KFLOPS_PER_PX: [100.0, 200.0, 400.0] * 2,
                             names.RD_LOSS: [1.20, 0.80, 0.50, 1.21, 0.82, 0.52]})
    pd.testing.assert_frame_equal(surfaces, expected, check_dtype=False, atol=1e-12)


def test_skipping_always_dominated_variants_changes_no_answer(monkeypatch):
    import analysis.replicates as replicates

    rng = np.random.default_rng(5)
    kflops = np.repeat(rng.uniform(50, 1000, 40), 3)
    frame = pd.DataFrame({"run_id": [f"r{i}" for i in range(120)], names.TAG_VARIANT_ID: np.repeat(np.arange(40), 3).astype(str),
                          names.TAG_SEED: np.tile([0, 1, 2], 40), names.DECODE_KFLOPS_PER_PX: kflops,
                          names.RD_LOSS: 1.5 - kflops / 1000 + rng.normal(0, 0.1, 120)
                          + np.repeat(np.arange(40) % 2, 3) * 0.6})  # every other variant far behind
    objectives = {names.DECODE_KFLOPS_PER_PX: "min", names.RD_LOSS: "min"}
    skipping, _, _ = frontier_probability(frame, objectives, draws=300, bootstrap_seed=4)
    monkeypatch.setattr(replicates, "_dominated_in_every_draw", lambda worst, best: np.zeros(len(best), dtype=bool))
    every, _, _ = frontier_probability(frame, objectives, draws=300, bootstrap_seed=4)
    pd.testing.assert_frame_equal(skipping, every)
    assert (skipping[P_FRONTIER] == 0).sum() >= 10 and 0 < skipping[P_FRONTIER].sum()  # some were skipped


def test_rendered_for_the_command_line(replicate_store, compared):
    _, tables = compared

    result = query_replicates("replicates", tracking_uri=replicate_store, draws=100, eval_tables=tables)
    text, stderr = render_replicates(result, "replicates")
    assert stderr == []
    head, *_ = text.splitlines()
    assert head == ("frontier of 'replicates' over seeds: 3 of 7 variants (17 runs) on the frontier of the means"
                    " (minimise mean decode_kflops_per_px, minimise mean rd_loss)")
    assert "p_frontier" in text and "rd_loss_ci_high" in text and "run_ids" not in text
    assert "pooled within-variant sd" in text and "resampling seeds and evaluation images" in text
    payload = json.loads(render_replicates(result, "replicates", "json")[0])
    assert [r["variant_id"] for r in payload["rows"]] == list(result.table["variant_id"])
    assert payload["noise"]["dof"] == 10 and payload["bootstrap"] == SEEDS_AND_IMAGES
    csv, lines = render_replicates(result, "replicates", "csv")
    assert pd.read_csv(io.StringIO(csv))["n_seeds"].tolist() == result.table["n_seeds"].tolist()
    assert lines[0] == head
    assert render_replicates(result, "replicates", "md")[0].startswith(f"**{head}**")


def test_bad_draws_are_a_user_error(replicate_store):
    from rdc.errors import UserError

    with pytest.raises(UserError, match="--draws"):
        query_replicates("replicates", tracking_uri=replicate_store, draws=0)


def test_rdc_frontier_replicates_prints_the_means_and_membership(replicate_store, capsys):
    from analysis.cli import frontier_main

    assert frontier_main(["--experiment", "replicates", "--tracking-uri", replicate_store, "--replicates",
                          "--draws", "200", "--format", "json"]) == 0
    rows = {row["variant_id"]: row for row in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["cheap"][P_FRONTIER] == 1.0 and rows["top"][P_FRONTIER] == 1.0
    assert rows["cheap"]["n_seeds"] == 3
    assert "dominated" not in rows  # never on the frontier: p = 0, not a row of the table


def test_plain_rdc_frontier_on_replicates_ranks_runs_and_says_how_to_rank_means(replicate_store, capsys):
    """Without --replicates every run is ranked alone (a lucky seed can win): the table says so,
    counting the variants that have several seeds, and names the option that ranks their means."""
    from analysis.cli import frontier_main

    assert frontier_main(["--experiment", "replicates", "--tracking-uri", replicate_store, "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    notes = " ".join(out["notes"])
    replicated = sum(len(offsets) > 1 for _, _, offsets, _ in VARIANTS.values())
    assert f"{replicated} variant(s) have several seeds: each run is ranked on its own" in notes
    assert "--replicates" in notes
    assert len({row["run_id"] for row in out["rows"]}) == len(out["rows"])  # runs, not variants


def test_replicate_options_need_replicates(replicate_store):
    from analysis.cli import frontier_main
    from rdc.errors import UserError

    with pytest.raises(UserError, match="--draws"):
        frontier_main(["--experiment", "replicates", "--tracking-uri", replicate_store, "--draws", "10"])


def test_report_shows_seed_replicates_with_attainment_surfaces(replicate_store, tmp_path):
    from analysis.report import ReportOptions, write_report

    page = write_report(ReportOptions(experiment="replicates", out=str(tmp_path / "report"),
                                      tracking_uri=replicate_store))
    html = page.read_text()
    assert "Seed replicates" in html and "P(on frontier)" in html
    assert (tmp_path / "report" / "fig2_attainment.png").stat().st_size > 0
    assert (tmp_path / "report" / "fig2_attainment.svg").stat().st_size > 0
