"""Helpers shared by the tests of the reverse rules."""

import torch
from torch import nn

from racecar_core.reverse import ReverseWalk, find_rule, record


def adjoint(module: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``module``'s reverse rule applied to ``y`` after a recorded forward pass on ``x``."""
    _, tape = record(module, x)
    return find_rule(module).fn(module, y, ReverseWalk(tape))
