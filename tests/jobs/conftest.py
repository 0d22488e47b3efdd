"""One torch thread for the jobs tests: the machine's two cores are shared, and two threads
contending with other processes made a 3 s training loop take minutes."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True, scope="session")
def one_torch_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
