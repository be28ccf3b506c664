"""Input corruptions for denoising autoencoders, drawn from a caller's ``torch.Generator``.

A denoising autoencoder (Vincent et al., 2008) encodes a corrupted copy ``x̃`` of its input and is trained
to reconstruct the clean ``x``. The corruptions here:

* ``"gaussian"``: ``x̃ = x + σ·ε`` with ``ε ~ N(0, 1)`` per element; ``amount`` is σ, in the units of ``x``.
* ``"masking"``: in every example a fraction ``amount`` of its elements, chosen at random without
  replacement (``round(amount · D)`` of its ``D`` elements), is set to 0: Vincent et al.'s masking noise,
  which Erhan et al. (2010) used for their stacked denoising autoencoders.
* ``"block"``: in every image ``[C, H, W]`` one square of ``amount × amount`` pixels at a uniformly random
  position is set to 0 in all channels (block masking as in Dong et al., 2017; the size, the number of
  blocks and the fill value 0 are our choices: for normalised images 0 is the data set's mean colour).
* ``"none"``: ``x`` unchanged.

All randomness comes from the generator passed in, so a run that saves and restores the generator's state
(as :class:`racecar_core.Objective` subclasses do in their checkpoints) corrupts exactly as an uninterrupted one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

KINDS = ("none", "gaussian", "masking", "block")
Kind = Literal["none", "gaussian", "masking", "block"]


@dataclass(frozen=True)
class Corruption:
    """One corruption: ``kind`` (see the module docstring) and its ``amount`` (σ, a fraction, or pixels)."""

    kind: Kind = "none"
    amount: float = 0.0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"corruption kind must be one of {KINDS}, got {self.kind!r}")
        amount = float(self.amount)
        if self.kind == "gaussian" and not amount >= 0:
            raise ValueError(f"gaussian corruption: amount (the noise's standard deviation) must be >= 0, "
                             f"got {self.amount}")
        if self.kind == "masking" and not 0 <= amount <= 1:
            raise ValueError(f"masking corruption: amount (the fraction of elements set to 0) must be in [0, 1], "
                             f"got {self.amount}")
        if self.kind == "block" and not (amount >= 0 and amount == int(amount)):
            raise ValueError(f"block corruption: amount (the block's side in pixels) must be a whole number >= 0, "
                             f"got {self.amount}")
        object.__setattr__(self, "amount", amount)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """A corrupted copy of the batch ``x`` (first dimension: examples); ``x`` itself is not changed."""
        if self.kind == "gaussian":
            return gaussian_noise(x, self.amount, generator)
        if self.kind == "masking":
            return masking_noise(x, self.amount, generator)
        if self.kind == "block":
            return block_mask(x, int(self.amount), generator)
        return x

    def describe(self) -> str:
        """A short label, e.g. ``"masking 25%"``."""
        return {"none": "no corruption", "gaussian": f"Gaussian σ={self.amount:g}",
                "masking": f"masking {self.amount:.0%}", "block": f"{int(self.amount)}×{int(self.amount)} block"}[self.kind]


def gaussian_noise(x: Tensor, std: float, generator: torch.Generator) -> Tensor:
    """``x + std · ε``, ``ε ~ N(0, 1)`` element-wise."""
    if std == 0:
        return x.clone()
    return x + std * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def masking_noise(x: Tensor, fraction: float, generator: torch.Generator) -> Tensor:
    """``x`` with ``round(fraction · D)`` randomly chosen elements of each example set to 0 (``D`` elements per example)."""
    flat = x.reshape(len(x), -1)
    k = round(fraction * flat.shape[1])
    if k == 0:
        return x.clone()
    scores = torch.rand(flat.shape, generator=generator, device=x.device)
    keep = torch.ones_like(flat, dtype=torch.bool).scatter_(1, scores.topk(k, dim=1).indices, False)
    return (flat * keep).reshape(x.shape)


def block_mask(x: Tensor, size: int, generator: torch.Generator) -> Tensor:
    """Images ``x [B, C, H, W]`` with one ``size × size`` square per image, at a random position, set to 0."""
    if x.dim() != 4:
        raise ValueError(f"block masking needs images [B, C, H, W], got shape {tuple(x.shape)}")
    b, _, h, w = x.shape
    if size > min(h, w):
        raise ValueError(f"block masking: a {size}×{size} block does not fit into {h}×{w} images")
    if size == 0:
        return x.clone()
    top = torch.randint(0, h - size + 1, (b, 1), generator=generator, device=x.device)
    left = torch.randint(0, w - size + 1, (b, 1), generator=generator, device=x.device)
    rows, cols = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_rows = (rows >= top) & (rows < top + size)  # [B, H]
    in_cols = (cols >= left) & (cols < left + size)  # [B, W]
    hole = in_rows[:, :, None] & in_cols[:, None, :]  # [B, H, W]
    return x * (~hole)[:, None].to(x.dtype)


__all__ = ["Corruption", "KINDS", "block_mask", "gaussian_noise", "masking_noise"]
