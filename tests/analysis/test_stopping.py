"""The early-stopping policies' decisions on scripted reports whose answers are worked out by hand."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from analysis.stopping import AshaRule, FinishChosen, MoAshaRule, ScaledParetoRule, asha_milestones, epsilon_net_order
from rdc.stopping import CONTINUE, STOP, FrontierRule, Margin, Report

STEPS = 1000  # rungs 0.1, 0.25, 0.5 -> steps 100, 250, 500


def report(variant: str, step: int, loss: float, kflops: float | None, seed: int = 0) -> Report:
    return Report(f"{variant}/{seed}", variant, step, loss, kflops)


def run(policy, reports: list[Report]) -> list:
    return [policy.on_report(r) for r in reports]


def test_a_variant_beaten_by_a_cheaper_one_at_a_rung_stops_with_its_evidence():
    rule = FrontierRule(STEPS)
    cheap, costly, cheaper_worse, costly_better = run(rule, [
        report("cheap", 100, 1.0, 10.0),
        report("costly", 100, 1.5, 20.0),  # more FLOPs and worse than cheap: stopped
        report("cheaper-worse", 100, 2.0, 5.0),  # worse, but nobody costs less: kept
        report("costly-better", 100, 0.9, 20.0),  # costs more, but better: kept
    ])
    assert [d.action for d in (cheap, costly, cheaper_worse, costly_better)] == [CONTINUE, STOP, CONTINUE, CONTINUE]
    assert (costly.rung, costly.rung_step, costly.rd_loss, costly.seeds) == (0.1, 100, 1.5, 1)
    assert [(d.variant_id, d.rd_loss, d.kflops, d.margin) for d in costly.dominators] == [("cheap", 1.0, 10.0, 0.0)]
    logged = json.loads(costly.to_json())
    assert logged["rung"] == 0.1 and logged["dominators"][0]["variant_id"] == "cheap" and logged["margin"] == "0"
    # Between rungs nothing is judged; a stopped variant stays stopped.
    assert rule.on_report(report("cheap", 200, 5.0, 10.0)).action == CONTINUE
    assert rule.on_report(report("costly", 200, 0.1, 20.0)).action == STOP


def test_several_dominators_are_listed_best_first_and_later_arrivals_stop_earlier_ones():
    reports = [
        report("x", 100, 3.0, 30.0),  # first at the rung: nobody to lose to yet
        report("a", 100, 1.2, 10.0),  # beats x (cheaper, better)
        report("b", 100, 1.0, 20.0),
        report("c", 100, 2.0, 40.0),
    ]
    rule = FrontierRule(STEPS)
    decisions = run(rule, reports)
    assert [d.action for d in decisions] == [CONTINUE, CONTINUE, CONTINUE, STOP]
    assert [d.variant_id for d in decisions[3].dominators] == ["b", "a"]  # x (3.0) is worse than c
    # a arrived after x and beats it: x stops at its next report, with the evidence at the rung.
    later = rule.on_report(report("x", 150, 2.5, 30.0))
    assert later.action == STOP and later.step == 150 and later.rung == 0.1 and later.rung_step == 100
    assert "a arriving after it" in later.reason and [d.variant_id for d in later.dominators] == ["a"]
    # Without revisiting, an arrival is judged once: x continues to the next rung.
    once = FrontierRule(STEPS, revisit=False)
    run(once, reports)
    assert once.on_report(report("x", 150, 2.5, 30.0)).reason == "no new rung reached"
    assert once.on_report(report("x", 250, 3.0, 30.0)).action == CONTINUE  # nobody else at 250 yet


def test_revisiting_leaves_a_variant_already_past_a_later_rung_to_that_rungs_evidence():
    rule = FrontierRule(STEPS)
    run(rule, [report("early", 100, 3.0, 30.0), report("early", 250, 2.0, 30.0)])
    rule.on_report(report("late", 100, 1.0, 10.0))  # beats early at 100, but early is judged at 250 now
    assert rule.on_report(report("early", 300, 1.9, 30.0)).action == CONTINUE
    assert rule.on_report(report("late", 250, 1.5, 10.0)).action == CONTINUE
    assert rule.on_report(report("early", 350, 1.9, 30.0)).action == STOP  # beaten at 250 by late


def test_relative_and_noise_scaled_margins():
    relative = FrontierRule(STEPS, margin=Margin(relative=0.1))
    kept, stopped = run(relative, [report("a", 100, 1.0, 10.0), report("b", 100, 1.1, 20.0)])[1], \
        relative.on_report(report("c", 100, 1.2, 20.0))
    assert kept.action == CONTINUE  # 1.1 > 1.0 + 0.11 is false
    assert stopped.action == STOP and stopped.dominators[0].margin == pytest.approx(0.12)
    assert stopped.dominators[0].variant_id == "a"  # b (1.1) is within 1.2's margin of c

    noise = Margin(noise_multiple=2.0, noise_sd=0.1)
    assert noise.between(1.0, 1, 1) == pytest.approx(2 * 0.1 * math.sqrt(2))
    assert noise.between(1.0, 3, 3) == pytest.approx(2 * 0.1 * math.sqrt(2 / 3))
    rule = FrontierRule(STEPS, margin=noise)
    decisions = run(rule, [report("a", 100, 1.0, 10.0), report("b", 100, 1.28, 20.0), report("c", 100, 1.29, 20.0)])
    assert [d.action for d in decisions] == [CONTINUE, CONTINUE, STOP]
    assert "noise sd 0.1" in decisions[2].margin
    with pytest.raises(ValueError):
        Margin(noise_multiple=1.0)  # a noise-scaled margin without a measured noise
    with pytest.raises(ValueError):
        Margin(relative=-0.1)


def test_ties_never_stop_and_equal_flops_count_as_no_more():
    rule = FrontierRule(STEPS)
    decisions = run(rule, [
        report("a", 100, 1.0, 10.0),
        report("same", 100, 1.0, 10.0),  # identical: a tie, kept
        report("cheaper-same-loss", 100, 1.0, 5.0),  # same loss, fewer FLOPs: kept
        report("costlier-same-loss", 100, 1.0, 20.0),  # same loss as cheaper ones: a tie in loss, kept
        report("same-flops-worse", 100, 1.01, 10.0),  # equal FLOPs, worse loss: stopped
    ])
    assert [d.action for d in decisions] == [CONTINUE, CONTINUE, CONTINUE, CONTINUE, STOP]
    assert {d.variant_id for d in decisions[4].dominators} == {"a", "same", "cheaper-same-loss"}


def test_missing_flops_never_stop_and_never_dominate():
    rule = FrontierRule(STEPS)
    unknown, costly = run(rule, [report("unknown", 100, 0.1, None), report("costly", 100, 5.0, 100.0)])
    assert unknown.action == CONTINUE and "decode FLOPs unknown" in unknown.reason
    assert costly.action == CONTINUE  # the unknown variant's 0.1 is no evidence: it may cost more
    worse_unknown = rule.on_report(report("nan-flops", 100, 50.0, float("nan")))
    assert worse_unknown.action == CONTINUE and "never stopped" in worse_unknown.reason
    no_loss = rule.on_report(report("no-loss", 100, float("nan"), 1.0))
    assert no_loss.action == CONTINUE and "not judged" in no_loss.reason


def test_late_reporters_are_judged_at_the_rung_step_against_values_at_that_step():
    rule = FrontierRule(STEPS)
    # a has already passed two rungs when b reaches the first: b meets a's value at step 100,
    # not its (much lower) value at step 250.
    run(rule, [report("a", 100, 1.0, 10.0), report("a", 250, 0.2, 10.0)])
    late = rule.on_report(report("b", 100, 0.9, 20.0))
    assert late.action == CONTINUE
    assert rule.on_report(report("b", 250, 0.5, 20.0)).action == STOP  # now against a's 0.2 at 250
    # A trial whose first report is past two rungs is judged once, at the highest.
    jump = rule.on_report(report("c", 300, 0.1, 30.0))
    assert jump.rung == 0.25 and jump.action == CONTINUE
    assert rule.on_report(report("c", 350, 0.1, 30.0)).reason == "no new rung reached"
    # Values at another step than the rung's are not compared ("at a matched step").
    assert rule.on_report(report("d", 300, 5.0, 40.0)).action == STOP  # vs c at 300
    other = FrontierRule(STEPS)
    run(other, [report("a", 110, 1.0, 10.0)])
    assert other.on_report(report("b", 120, 9.0, 20.0)).action == CONTINUE


def test_replicates_decide_together_on_their_mean():
    rule = FrontierRule(STEPS)
    run(rule, [report("a", 100, 1.0, 10.0)])
    first = rule.on_report(report("v", 100, 0.8, 20.0, seed=0))  # a lucky seed: mean 0.8, kept
    second = rule.on_report(report("v", 100, 1.6, 20.0, seed=1))  # mean now 1.2 > 1.0: stopped
    assert (first.action, second.action) == (CONTINUE, STOP)
    assert (second.rd_loss, second.seeds) == (pytest.approx(1.2), 2)
    # The stop is the variant's: seed 0, already past the rung, stops at its next report.
    follow = rule.on_report(report("v", 150, 0.7, 20.0, seed=0))
    assert follow.action == STOP and "the variant's stop, decided on v/1's report" in follow.reason
    assert (follow.rung, follow.rd_loss, follow.dominators[0].variant_id) == (0.1, pytest.approx(1.2), "a")
    # A dominator's mean over its seeds is what others meet, with n in the noise margin.
    noisy = FrontierRule(STEPS, margin=Margin(noise_multiple=1.0, noise_sd=0.3))
    run(noisy, [report("a", 100, 1.0, 10.0, seed=s) for s in range(3)])
    single = noisy.on_report(report("b", 100, 1.3, 20.0))
    assert single.action == CONTINUE  # margin 0.3 * sqrt(1 + 1/3) = 0.346 > 0.3
    assert noisy.on_report(report("c", 100, 1.35, 20.0)).action == STOP


def test_a_window_judges_the_mean_of_the_last_evaluations():
    rule = FrontierRule(STEPS, window=3)
    run(rule, [report("a", 50, 1.0, 10.0), report("a", 75, 1.0, 10.0), report("a", 100, 1.0, 10.0)])
    run(rule, [report("b", 50, 0.9, 20.0), report("b", 75, 0.9, 20.0)])
    spike = rule.on_report(report("b", 100, 1.2, 20.0))  # one bad evaluation: mean 1.0, a tie with a
    assert spike.action == CONTINUE and spike.rd_loss == pytest.approx(1.0)
    single = FrontierRule(STEPS)
    run(single, [report("a", 100, 1.0, 10.0)])
    assert single.on_report(report("b", 100, 1.2, 20.0)).action == STOP
    with pytest.raises(ValueError):
        FrontierRule(STEPS, window=0)


def test_a_curve_noise_margin_spares_differences_the_curves_themselves_jump_by():
    # a's last evaluations jump by 0.5 between steps: one evaluation's sd sqrt(0.25 / 2) = 0.354.
    jumpy = [report("a", s, v, 10.0) for s, v in zip((60, 70, 80, 90, 100), (1.5, 1.0, 1.5, 1.0, 1.5))]
    rule = FrontierRule(STEPS, margin=Margin(curve_multiple=2.0))
    run(rule, jumpy)
    near = rule.on_report(report("b", 100, 2.4, 20.0))  # no curve of its own yet: the pool is a's
    assert near.action == CONTINUE  # 2.4 - 1.5 = 0.9 < 2 x 0.354 x sqrt(2) = 1.0
    far = rule.on_report(report("c", 100, 2.6, 20.0))
    assert far.action == STOP and far.dominators[0].margin == pytest.approx(2 * math.sqrt(0.125) * math.sqrt(2))
    assert "curves' sd" in far.margin
    with pytest.raises(ValueError):
        Margin(curve_multiple=-1.0)


def test_rungs_and_arguments_are_checked():
    assert FrontierRule(2000, (0.1, 0.25, 0.5)).rung_steps == (200, 500, 1000)
    assert FrontierRule(7, (0.1,)).rung_steps == (1,)
    for rungs in [(), (0.5, 0.25), (0.0,), (1.0,)]:
        with pytest.raises(ValueError):
            FrontierRule(100, rungs)


def test_asha_makes_ray_tunes_decisions_on_the_same_results():
    bracket_module = pytest.importorskip("ray.tune.schedulers.async_hyperband")
    rng = np.random.default_rng(3)
    for max_steps, grace, rf in [(100, 10, 3), (81, 1, 3), (100, 10, 4), (50, 5, 2)]:
        assert asha_milestones(max_steps, grace, rf) == [m for m, _ in reversed(bracket_module._Bracket(grace, max_steps, rf, 0)._rungs)]
        bracket = bracket_module._Bracket(grace, max_steps, rf, 0)
        ours = AshaRule(max_steps, grace, rf)
        trials = [type("Trial", (), {"trial_id": f"t{i}"})() for i in range(12)]
        stopped = set()
        # Trials report out of step with each other, as asynchronous trials do.
        events = sorted((int(rng.integers(0, 5)) + step, i, step) for i in range(12) for step in range(5, max_steps, 5))
        for _, i, step in events:
            if i in stopped:
                continue
            loss = float(rng.normal(1.0, 0.3))
            theirs = bracket.on_result(trials[i], step, -loss)
            mine = ours.on_report(Report(f"t{i}", f"t{i}", step, loss, 1.0)).action
            assert mine == theirs, (max_steps, grace, rf, i, step)
            if mine == STOP:
                stopped.add(i)
        assert stopped  # the comparison exercised stops, not only continues


def test_epsilon_net_orders_fronts_then_spreads_inside_each():
    points = np.array([
        [1.0, 10.0],  # 0: front 1, best loss: first
        [2.0, 5.0],  # 1: front 1, middle
        [3.0, 1.0],  # 2: front 1, farthest from 0: second
        [2.5, 6.0],  # 3: front 2
        [9.0, 9.0],  # 4: front 3
    ])
    assert epsilon_net_order(points) == [0, 2, 1, 3, 4]
    assert epsilon_net_order(np.zeros((0, 2))) == []


def test_mo_asha_keeps_a_cheap_trial_that_asha_on_loss_stops():
    reports = [report("good", 10, 1.0, 100.0), report("ok", 10, 1.1, 90.0), report("cheap", 10, 3.0, 1.0)]
    asha = run(AshaRule(100, 10, 3), reports)
    mo = run(MoAshaRule(100, 10, 3), reports)
    assert [d.action for d in asha] == [CONTINUE, STOP, STOP]
    # MO-ASHA: cheap is on the front with good and ok; epsilon-net order good, cheap, ok:
    # cheap at position 1 of 3 (1/3 <= 1/rf) continues; ok at position 1 of 2 stops.
    assert [d.action for d in mo] == [CONTINUE, STOP, CONTINUE]
    dominated = MoAshaRule(100, 10, 3)
    run(dominated, reports[:1] + reports[2:])
    assert dominated.on_report(report("bad", 10, 5.0, 200.0)).action == STOP
    assert dominated.on_report(report("unknown", 10, 5.0, None)).action == CONTINUE


def test_ax_rule_waits_for_min_curves_then_stops_what_the_shrunk_front_dominates():
    rule = ScaledParetoRule(100, min_progression=10, min_curves=2, factor=0.5, kflops_reference=110.0)
    # Two trials complete (their curves cover every step), with losses 1.0 at FLOPs 10 and 2.0 at 5.
    for variant, loss, kflops in [("a", 1.0, 10.0), ("b", 2.0, 5.0)]:
        for step in (10, 50, 100):
            rule.on_report(report(variant, step, loss, kflops))
    early = rule.on_report(report("c", 5, 9.0, 100.0))
    assert early.action == CONTINUE and "min_progression" in early.reason
    # Reference at step 50 over a, b, c: loss 9 + 0.1 x 8 = 9.8, FLOPs 110.
    # c: improvement (0.8, 10); a's halved: (4.4, 50) -> beaten on both: stop.
    stopped = rule.on_report(report("c", 50, 9.0, 100.0))
    assert stopped.action == STOP and {d.variant_id for d in stopped.dominators} == {"a/0", "b/0"}
    # d: loss 3.0 -> ref 9.8 still (c recorded), improvement 6.8 > 4.4: efficient, kept.
    assert rule.on_report(report("d", 50, 3.0, 100.0)).action == CONTINUE
    waiting = ScaledParetoRule(100, min_progression=10, min_curves=5)
    run(waiting, [report("a", 100, 1.0, 10.0), report("c", 50, 9.0, 100.0)])
    assert "min_curves" in waiting.on_report(report("c", 60, 9.0, 100.0)).reason


def test_finish_chosen_stops_the_rest_at_the_stop_step():
    policy = FinishChosen({"a"}, stop_step=100)
    assert [policy.on_report(r).action for r in [report("a", 100, 1.0, 1.0), report("b", 50, 1.0, 1.0),
                                                 report("b", 100, 1.0, 1.0)]] == [CONTINUE, CONTINUE, STOP]


def _epsilon_net_by_definition(points: np.ndarray) -> list[int]:
    """epsilon_net_order's rule written out literally: fronts in turn; inside one, the best first
    objective, then repeatedly the farthest from every point chosen (ties: lower index)."""
    from analysis.frontier import nondominated_ranks

    low, high = points.min(axis=0), points.max(axis=0)
    scaled = (points - low) / np.where(high > low, high - low, 1.0)
    ranks, order = nondominated_ranks(points), []
    for rank in range(1, ranks.max() + 1):
        rest = sorted(int(i) for i in np.flatnonzero(ranks == rank))
        chosen = [min(rest, key=lambda i: (points[i, 0], i))]
        rest.remove(chosen[0])
        while rest:
            far = max(rest, key=lambda i: (min(math.dist(scaled[i], scaled[j]) for j in chosen), -i))
            chosen.append(far)
            rest.remove(far)
        order += chosen
    return order


def test_epsilon_net_order_follows_its_definition_on_random_points_with_ties():
    rng = np.random.default_rng(3)
    for n in (1, 2, 7, 40, 120):
        points = rng.integers(0, 6, size=(n, 2)).astype(float)  # small integers: many exact ties
        assert epsilon_net_order(points) == _epsilon_net_by_definition(points)


class _RevisitEveryone(FrontierRule):
    """The revisit rule by its definition: every variant whose latest rung this is, judged again
    against everyone recorded there (O(n) each), stopped when the newcomer is among its dominators."""

    def _revisit(self, index: int, newcomer: str) -> None:
        values = self._rungs[index]
        for variant in list(values.kflops):
            if variant == newcomer or variant in self.stopped or self._latest.get(variant) != index:
                continue
            dominators = self._dominators(values, variant)
            if any(d.variant_id == newcomer for d in dominators):
                loss, seeds = values.mean(variant)
                self.stopped[variant] = type(
                    "Stop", (), {"reason": "", "trial_id": "", "rung": None, "rung_step": None, "rd_loss": loss,
                                 "seeds": seeds, "kflops": None, "dominators": tuple(dominators)})()


@pytest.mark.parametrize("margin", [Margin(), Margin(relative=0.02), Margin(curve_multiple=1.0)])
def test_revisiting_stops_the_same_variants_as_judging_everyone_again(margin):
    """The revisit only builds the full dominator list of variants the newcomer beats; on random
    sweeps (3 seeds, noisy curves, arrivals in random order) it stops exactly who the definition does."""
    rng = np.random.default_rng(11)
    for _ in range(5):
        reports = []
        for v in range(30):
            kflops, base = float(rng.integers(1, 10)), float(rng.uniform(1, 3))
            for seed in range(3):
                start = int(rng.integers(0, 200))
                reports += [(start + step, report(f"v{v}", step, base + 5 * math.exp(-step / 300) + rng.normal(0, 0.1),
                                                  kflops, seed)) for step in range(50, STEPS + 1, 50)]
        ordered = [r for _, r in sorted(reports, key=lambda pair: (pair[0], pair[1].trial_id))]
        fast, slow = FrontierRule(STEPS, margin=margin, window=3), _RevisitEveryone(STEPS, margin=margin, window=3)
        fast_actions = [fast.on_report(r).action for r in ordered]
        slow_actions = [slow.on_report(r).action for r in ordered]
        assert fast_actions == slow_actions
        assert set(fast.stopped) == set(slow.stopped) and fast.stopped
