"""Shared fixtures."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """One torch thread for modules of tiny networks and tensors: they gain nothing from more, and on a busy
    2-core machine OpenMP threads spin-waiting for each other made such tests 10-100x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def float64():
    """float64 as the default dtype (adjoint identities then hold to ~1e-12) and seed 0; the dtype is restored."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(previous)
