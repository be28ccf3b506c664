"""Building blocks that the reverse pass knows how to invert (their rules are in ``reverse_rules``)."""

from __future__ import annotations

from torch import Tensor, nn


class Residual(nn.Module):
    """A residual block ``y = post(branch(x) + shortcut(x))``.

    ``shortcut`` defaults to the identity and ``post`` (an activation applied after the sum) to nothing.
    Reverse rule: ``x' = branch'(s) + shortcut'(s)`` with ``s = post(y')``, the adjoint of the fork.
    """

    def __init__(self, branch: nn.Module, shortcut: nn.Module | None = None, post: nn.Module | None = None):
        super().__init__()
        self.branch = branch
        self.shortcut = shortcut if shortcut is not None else nn.Identity()
        self.post = post if post is not None else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        return self.post(self.branch(x) + self.shortcut(x))
