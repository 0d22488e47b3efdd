"""What the resume tests share (tests/sweep/test_resume*.py): a tiny sweep's arguments, a
trial caught between two checkpoints, and the check that MLflow holds one complete run per
variant with every step once. Split over files so parallel test workers share them out."""

from __future__ import annotations

import pytest

from rdc import names
from tests.cluster.rig import make_root, steps_of, sweep_args, sweep_runs
from tests.conftest import TEST_SCALE

# 60 steps at CI's scale: a trial checkpoints 6 times, enough to be caught between two of them.
STEPS = max(60, int(60 * TEST_SCALE))
LOG_EVERY, CHECKPOINT_EVERY = 5, 10
LOGGED = list(range(LOG_EVERY, STEPS + 1, LOG_EVERY))
TIMEOUT_S = 420


def args(root, space, *extra, runs=None):
    return sweep_args(root, space, steps=STEPS, log_every=LOG_EVERY, checkpoint_every=CHECKPOINT_EVERY,
                      extra=extra, runs=runs)


@pytest.fixture
def root(tmp_path):
    return make_root(tmp_path)


def uri_of(root) -> str:
    return f"sqlite:///{root / 'runs' / 'mlflow.db'}"


def mid_training(results: list[dict]) -> dict | None:
    """The trial's latest result if it has checkpointed and has more than a checkpoint to go."""
    if not results or results[-1].get("done") or results[-1].get("failed"):
        return None
    last = results[-1]
    return last if CHECKPOINT_EVERY <= last["step"] <= STEPS - 2 * CHECKPOINT_EVERY else None


def assert_one_complete_run_per_variant(uri: str, experiment: str, count: int) -> dict:
    found = sweep_runs(uri, experiment)
    by_variant = {r.data.tags[names.TAG_VARIANT_ID]: r for r in found}
    assert len(found) == len(by_variant) == count, [r.data.tags for r in found]
    for run in found:
        assert run.info.status == "FINISHED", (run.data.tags, run.info.status)
        assert steps_of(uri, run.info.run_id) == LOGGED  # every step once: none lost, none twice
        assert steps_of(uri, run.info.run_id, names.BPP) == [STEPS]
    return by_variant
