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


class PadShortcut(nn.Module):
    """The parameter-free shortcut of He et al.'s option A: ``x[:, :, ::stride, ::stride]`` with zero channels added.

    ``out_channels - in_channels`` zero channels are split between the front (``pad_front``, half of
    them rounded down) and the back. Its reverse rule is the exact adjoint: keep the original channels
    and put each value back at the pixel it was sampled from (zeros elsewhere).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2):
        super().__init__()
        if out_channels < in_channels or stride < 1:
            raise ValueError(f"PadShortcut needs out_channels >= in_channels and stride >= 1, got "
                             f"{in_channels} -> {out_channels}, stride {stride}")
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.pad_front = (out_channels - in_channels) // 2

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[1] != self.in_channels:
            raise ValueError(f"PadShortcut expects {self.in_channels} channels, got {x.shape[1]}")
        sub = x[:, :, :: self.stride, :: self.stride]
        back = self.out_channels - self.in_channels - self.pad_front
        return nn.functional.pad(sub, (0, 0, 0, 0, self.pad_front, back))

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"
