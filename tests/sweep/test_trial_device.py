"""Which device a trial trains on, and whether its runtimes were taken on a shared device."""

from __future__ import annotations

import pytest
import torch

from sweep.trainable import device_is_shared, trial_device


def cluster(**overrides) -> dict:
    return {"trial_cpus": 1, "trial_gpus": 0, "max_concurrent_trials": 0, **overrides}


@pytest.mark.parametrize("config, node_cpus, shared", [
    (cluster(), 2, True),                               # two one-CPU trials fit on a 2-CPU node
    (cluster(), 1, False),                              # the node fits one trial only
    (cluster(trial_cpus=2), 2, False),
    (cluster(trial_cpus=2), 16, True),
    (cluster(max_concurrent_trials=1), 16, False),      # one trial at a time: alone
    (cluster(), None, True),                            # unknown node: assume the worst
    (cluster(trial_gpus=1), 16, False),                 # a whole GPU of its own
    (cluster(trial_gpus=0.25), 16, True),               # packed four to a GPU
])
def test_device_is_shared(config, node_cpus, shared):
    assert device_is_shared(config, node_cpus) is shared


def test_cpu_trials_train_on_the_cpu():
    assert trial_device(cluster()) == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal on a machine without CUDA")
def test_a_gpu_trial_without_cuda_fails_with_a_reason():
    with pytest.raises(RuntimeError, match="torch sees no CUDA device"):
        trial_device(cluster(trial_gpus=1))
