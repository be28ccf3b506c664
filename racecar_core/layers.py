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


class PeriodicConv2d(nn.Conv2d):
    """A 2-D convolution on a latitude-longitude grid: periodic padding in longitude, zero padding in latitude.

    Same constructor as :class:`torch.nn.Conv2d`; input ``[N, C, lat, lon]``. ``padding`` (an int, a pair
    ``(lat, lon)``, ``"same"`` or ``"valid"``) is applied as wrapped columns on the longitude axis (the last
    one: the grid closes on itself there) and as zero rows on the latitude axis (the grid ends at the
    poles). ``padding_mode="circular"`` of ``nn.Conv2d`` would also wrap latitude, joining the North Pole
    to the South Pole, so ``padding_mode`` must stay ``"zeros"`` here. Reverse rule: the transposed
    convolution, the wrapped longitude columns added back to the columns they copy, the latitude
    padding dropped (the exact adjoint).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.padding_mode != "zeros":
            raise ValueError(f"PeriodicConv2d pads longitude periodically and latitude with zeros; padding_mode "
                             f"must be 'zeros' (the default), got {self.padding_mode!r}")

    def pads(self) -> list[tuple[int, int]]:
        """``[(north, south), (west, east)]``: rows and columns added on each side before the convolution."""
        if self.padding == "valid":
            return [(0, 0), (0, 0)]
        if self.padding == "same":
            totals = [d * (k - 1) for d, k in zip(self.dilation, self.kernel_size)]
            return [(t // 2, t - t // 2) for t in totals]
        return [(p, p) for p in self.padding]

    def forward(self, x: Tensor) -> Tensor:
        (north, south), (west, east) = self.pads()
        if x.dim() != 4:
            raise ValueError(f"PeriodicConv2d expects [N, C, lat, lon], got shape {tuple(x.shape)}")
        if max(west, east) > x.shape[-1]:
            raise ValueError(f"longitude padding {max(west, east)} exceeds the {x.shape[-1]} longitudes of the input")
        x = nn.functional.pad(x, (west, east, 0, 0), mode="circular") if west or east else x
        if north != south:  # "same" with an even kernel
            x, north = nn.functional.pad(x, (0, 0, north, south)), 0
        return nn.functional.conv2d(x, self.weight, self.bias, self.stride, (north, 0), self.dilation, self.groups)
