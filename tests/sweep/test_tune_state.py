"""sweep.tune_state: trial statuses read from a real Tune experiment folder without unpickling;
a planted pickle is never executed; a cut-off state file is reported, not raised.

The fast tests read a state file real Tune wrote (tune_state/, two trials: one finished, one
failed); the slow one runs Tune again and checks the reader still reads what it writes
(RDC_REGEN_GOLDEN=1 rewrites the file after a Ray upgrade).
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path

import pytest

from sweep.tune_state import read_tune_state, state_file

GOLDEN = Path(__file__).resolve().parent / "tune_state" / "experiment_state-2026-12-01_10-00-00.json"


def _trial(config):
    if config["name"] == "bad":
        raise ValueError("this trial fails")
    from ray import tune

    tune.report({"score": 1.0})


def run_real_tune(storage: Path) -> Path:
    """A real Tune experiment of two trials (one finished, one failed); its folder."""
    import ray
    from ray import tune

    ray.init(address="local", num_cpus=1, include_dashboard=False, _node_ip_address="127.0.0.1",
             log_to_driver=False, logging_level="ERROR")
    try:
        tune.Tuner(
            _trial,
            param_space={"name": tune.grid_search(["good", "bad"])},
            tune_config=tune.TuneConfig(trial_dirname_creator=lambda t: t.config["name"],
                                        trial_name_creator=lambda t: t.config["name"]),
            run_config=tune.RunConfig(name="sweep", storage_path=str(storage), verbose=0,
                                      failure_config=tune.FailureConfig(max_failures=0)),
        ).fit()
    finally:
        ray.shutdown()
    return storage / "sweep"


@pytest.fixture
def copy_of(tmp_path: Path) -> Path:
    (tmp_path / "sweep").mkdir()
    shutil.copy(GOLDEN, tmp_path / "sweep" / GOLDEN.name)
    return tmp_path / "sweep"


def test_statuses_of_a_real_tune_experiment(copy_of: Path):
    state = read_tune_state(copy_of)
    assert state is not None and state.damaged is None
    assert state.statuses == {"good": "TERMINATED", "bad": "ERROR"}
    assert state.unfinished == []


@pytest.mark.slow
def test_the_reader_reads_what_this_ray_writes(tmp_path: Path):
    folder = run_real_tune(tmp_path)
    state = read_tune_state(folder)
    assert state.damaged is None and state.statuses == {"good": "TERMINATED", "bad": "ERROR"}
    if os.environ.get("RDC_REGEN_GOLDEN") == "1":
        shutil.copy(state.path, GOLDEN)


class _Plant:
    """Unpickling this creates a marker file: what a planted state file would do to the driver."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_planted_pickle_is_never_executed(copy_of: Path, tmp_path: Path):
    marker = tmp_path / "code-ran"
    genuine = json.loads(state_file(copy_of).read_text())
    trial = json.loads(genuine["trial_data"][0][0])
    trial["results"] = pickle.dumps(_Plant(marker)).hex()  # a field Tune itself unpickles on restore
    trial["status"] = "RUNNING"
    genuine["trial_data"][0][0] = json.dumps(trial)
    (copy_of / "experiment_state-9999-12-31_23-59-59.json").write_text(json.dumps(genuine))

    state = read_tune_state(copy_of)
    assert state.path.name.startswith("experiment_state-9999")  # the planted file is the newest
    assert state.unfinished == [trial["custom_dirname"]]
    assert not marker.exists()
    # The plant is real: Tune's own reader (what resume and ExperimentAnalysis use) runs it.
    from ray.tune.experiment.trial import Trial

    Trial.from_json_state(genuine["trial_data"][0][0], stub=True)
    assert marker.exists()


def test_cut_off_state_is_reported_as_damaged(copy_of: Path):
    path = state_file(copy_of)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # what a full disk or Ctrl-C mid-write leaves
    state = read_tune_state(copy_of)
    assert state.statuses == {} and "is damaged (JSONDecodeError" in state.damaged


def test_state_of_the_wrong_shape_is_damaged(copy_of: Path):
    state_file(copy_of).write_text('{"trial_data": [["{\\"status\\": 3}", "{}"]]}')
    assert "damaged" in read_tune_state(copy_of).damaged


def test_no_state(tmp_path: Path):
    assert read_tune_state(tmp_path / "absent") is None
    assert read_tune_state(tmp_path) is None
    (tmp_path / "file").write_text("x")
    assert read_tune_state(tmp_path / "file") is None
