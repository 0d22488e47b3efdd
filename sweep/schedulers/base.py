"""The interface every trial scheduler implements, and what it is given."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar, Mapping

from rdc import names
from rdc.errors import UserError
from sweep.variant import Variant

# What a trial reports while it trains, for schedulers to rank trials by (lower is better): its
# held-out RD loss (jobs.heldout, the fixed crops of the evaluation images) at every
# train.eval_every step, reported after every metric up to that step is in MLflow. Not the
# training loss: on random crops it swings by orders of magnitude from one step to the next.
PROGRESS_METRIC = "progress_rd_loss"
PROGRESS_SOURCE = names.EVAL_RD_LOSS
TIME_ATTR = "step"
# The key of a trainable's last report: how the trial ended ("finished", "failed", "skipped"). A
# trial Tune completed without it was stopped by its scheduler.
OUTCOME = "outcome"
# The OUTCOME of a trial that found the disk full, with the reason under FULL_DISK_DETAIL: the
# driver ends the launch there (sweep.full_disk_stop) instead of letting Tune retry the trial.
FULL_DISK = "disk_full"
FULL_DISK_DETAIL = "disk_full_detail"


def stopped_step(trial) -> int | None:
    """The step a completed Tune trial was stopped at by its scheduler; None if it ended by itself."""
    result = trial.last_result or {}
    if result.get(OUTCOME) or "step" not in result:
        return None
    return int(result["step"])


@dataclass(frozen=True)
class SchedulerContext:
    """What a scheduler knows of a round before it starts."""

    steps: int  # train.steps: every trial's time axis (TIME_ATTR) ends there
    variants: tuple[Variant, ...] = ()  # the round's trials, one per variant
    # variant_id -> the plan's decode kFLOPs/px at the reference size (jobs.profile): exact and
    # known before training; filled only for a scheduler whose class sets needs_costs.
    decode_kflops: Mapping[str, float] = field(default_factory=dict)
    metric: str = PROGRESS_METRIC
    mode: str = "min"
    time_attr: str = TIME_ATTR


class TrialSchedulerFactory:
    """A named trial scheduler with its options from YAML (conf/scheduler/<name>.yaml).

    Subclasses set `name`, `options` (option -> default) and implement `create`; `check` may
    refuse option values beyond their type. The options are checked when the config is loaded,
    before anything starts, so a bad one is a UserError naming `scheduler.<option>`.
    """

    name: ClassVar[str]
    options: ClassVar[dict[str, Any]] = {}
    needs_costs: ClassVar[bool] = False  # whether create() reads SchedulerContext.decode_kflops
    # Whether it ranks all trials on one scale: RD losses at different train.lmbdas are not
    # comparable, so such a scheduler refuses a sweep with several.
    one_scale: ClassVar[bool] = False

    def __init__(self, given: dict, steps: int):
        unknown = sorted(set(given) - set(self.options))
        if unknown:
            raise UserError(f"scheduler.{unknown[0]}", given[unknown[0]], reason=f"not an option of scheduler={self.name}",
                            allowed=", ".join(["name", *self.options]))
        self.values = {**self.options, **given}
        self.steps = steps
        self.check(self.values, steps)

    def check(self, values: dict, steps: int) -> None:
        """UserError for an option value this scheduler cannot use with train.steps=`steps`."""

    @property
    def active(self) -> bool:
        """Whether trials must report PROGRESS_METRIC while they train."""
        return True

    def judged_steps(self) -> tuple[int, ...]:
        """The steps where this scheduler judges trials (its rungs). Every trial also takes a
        held-out point there, so a stop comes at the rung, not up to train.eval_every steps later."""
        return ()

    def create(self, context: SchedulerContext):
        """The Ray Tune TrialScheduler for one round (None: Tune's FIFO, nothing stopped). If it
        has a method `stop_tags(trial) -> dict[str, str]`, a run it stops gets those tags too."""
        raise NotImplementedError


def positive_int(values: dict, key: str, *, allow_none: bool = False, minimum: int = 1) -> None:
    value = values[key]
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"scheduler.{key}", value, allowed=("null or " if allow_none else "") + f"an integer >= {minimum}")
