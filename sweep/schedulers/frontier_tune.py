"""The Ray Tune TrialScheduler of `scheduler=frontier`: every progress report goes to a FrontierRule.

The rule (rdc.stopping) decides; this class only translates Tune's results into the rule's
reports and its decisions into Tune's CONTINUE/STOP, so replaying the sweep's logged curves in
the order they were reported (`rdc replay`) stops the same trials. A stopped trial's decision
(rung, step, dominating variants, margin) is kept for its run's names.TAG_STOP_DECISION tag.
"""

from __future__ import annotations

import copy

from ray.tune.schedulers import FIFOScheduler

from rdc.stopping import STOP, Decision, FrontierRule, Report
from rdc import names
from sweep.trials import trial_of
from sweep.variant import variant_of


class FrontierScheduler(FIFOScheduler):
    """A Ray Tune TrialScheduler that asks a FrontierRule about every progress report.

    Trials run in the order Tune starts them (FIFO); only results carrying both the time
    attribute and the metric are reports (a trial's checkpoint and final results are not).
    RD losses at different lambdas weigh rate and distortion differently: trials are judged
    only against trials of their own lambda (train.lmbdas), each lambda by a copy of `rule`;
    seeds of one variant are its replicates, judged together by the rule.
    """

    def __init__(self, rule: FrontierRule, decode_kflops, metric: str, time_attr: str):
        super().__init__()
        self.rule, self.decode_kflops = rule, dict(decode_kflops)
        self.rules: dict[float | None, FrontierRule] = {}  # lambda -> the rule judging its trials
        self._blank = copy.deepcopy(rule)  # before any report: the start of every other lambda's rule
        self._progress_metric, self._time_attr = metric, time_attr  # TrialScheduler.metric is Tune's own
        self.decisions: dict[str, Decision] = {}  # trial_id -> the decision that stopped it

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        if self._progress_metric not in result or self._time_attr not in result:
            return self.CONTINUE
        variant_id = variant_of(trial.config).variant_id
        entry = trial_of(trial.config)
        lmbda = entry.point.lmbda if entry is not None else None
        if lmbda not in self.rules:
            self.rules[lmbda] = self.rule if not self.rules else copy.deepcopy(self._blank)
        decision = self.rules[lmbda].on_report(Report(trial.trial_id, variant_id, int(result[self._time_attr]),
                                              float(result[self._progress_metric]), self.decode_kflops.get(variant_id)))
        if decision.action == STOP:
            self.decisions[trial.trial_id] = decision
            return self.STOP
        return self.CONTINUE

    def stop_tags(self, trial) -> dict[str, str]:
        """Tags for a trial this scheduler stopped: names.TAG_STOP_DECISION, the decision as JSON."""
        decision = self.decisions.get(trial.trial_id)
        return {} if decision is None else {names.TAG_STOP_DECISION: decision.to_json()}

    def debug_string(self) -> str:
        return f"FrontierScheduler: {self.rule.describe()}; {len(self.decisions)} stopped"
