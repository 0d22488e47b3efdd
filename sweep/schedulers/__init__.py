"""Trial schedulers: the `scheduler` config group, resolved to a Ray Tune TrialScheduler.

A scheduler watches trials while they train and may stop one early. It plugs in the way Ray's
own `create_scheduler` maps names to classes: a class per scheduler in this package, registered
by name in SCHEDULERS, chosen with `scheduler=<name>` (conf/scheduler/<name>.yaml holds its
options). Adding one is one file, one line below, one YAML file and a test.

What a scheduler sees (SchedulerContext): the time axis (`step`, ending at train.steps), the
metric every trial reports while it trains (PROGRESS_METRIC, minimised), and the round's
Variants with the plan's decode kFLOPs/px of each (known before training; computed only for
schedulers that declare `needs_costs`). A trial it stops ends its MLflow run with status
names.STOPPED_STATUS and tags names.TAG_STOPPED_EARLY (the step) and names.TAG_STOPPED_BY (the
scheduler's name), written by sweep.schedulers.recorder; the summary counts it apart from
failures, and a re-run of the sweep does not train it again.
"""

from __future__ import annotations

from sweep.schedulers.base import PROGRESS_METRIC, PROGRESS_SOURCE, SchedulerContext, TrialSchedulerFactory
from sweep.schedulers.asha import Asha
from sweep.schedulers.frontier import Frontier
from sweep.schedulers.none import NoScheduler
from rdc.errors import UserError

SCHEDULERS: dict[str, type[TrialSchedulerFactory]] = {
    NoScheduler.name: NoScheduler,
    Asha.name: Asha,
    Frontier.name: Frontier,
}

__all__ = ["PROGRESS_METRIC", "PROGRESS_SOURCE", "SCHEDULERS", "SchedulerContext", "TrialSchedulerFactory",
           "scheduler_for"]


def scheduler_for(config: dict | None, steps: int) -> TrialSchedulerFactory:
    """The scheduler a `scheduler` config names, its options checked against train.steps=`steps`;
    UserError otherwise."""
    config = dict(config or {"name": NoScheduler.name})
    name = config.pop("name", None)
    if name not in SCHEDULERS:
        raise UserError("scheduler.name", name, allowed=", ".join(SCHEDULERS))
    return SCHEDULERS[name](config, steps)
