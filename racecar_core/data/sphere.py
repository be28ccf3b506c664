"""Spherical harmonic transforms of ``torch-harmonics``, applied in batches for the CPU.

``torch_harmonics.RealSHT`` and its siblings contract the Legendre tables with one ``einsum`` per real
and imaginary part, which on the CPU runs as many tiny matrix products (about 10 ms per vector
transform on a 32×64 grid, too slow for a two-year simulation of thousands of steps). :class:`Transforms`
takes the tables (quadrature and Legendre functions) from the library's own modules and applies each
transform as one batched matrix product over the zonal wavenumber ``m``: the same operator, about
3–6× faster here. ``tests/test_data_shallow_water.py`` checks it against the library's modules to
rounding error.

Grids and spectra follow torch-harmonics: fields ``(..., nlat, nlon)`` with the first row nearest the
North Pole and longitudes ``2π j / nlon`` from 0; spectra ``(..., lmax, mmax)`` complex, orthonormal
spherical harmonics, no Condon–Shortley phase (``csphase=False``, as in its shallow-water example).
"""

from __future__ import annotations

import numpy as np
import torch
import torch_harmonics as th
from torch import Tensor
from torch_harmonics.legendre import legpoly
from torch_harmonics.quadrature import legendre_gauss_weights


class Transforms:
    """Scalar and vector spherical harmonic transforms on a Gaussian grid of ``nlat × nlon`` points.

    ``lmax`` (= ``mmax``) is the number of degrees kept: triangular truncation T(lmax−1).
    ``sht``/``isht``: scalar fields ``(..., nlat, nlon)`` to spectra ``(..., lmax, mmax)`` and back;
    ``vsht``/``ivsht``: vector fields ``(..., 2, nlat, nlon)`` (the library's component order) to the
    spectra of their two potentials and back. ``lats``: latitudes in radians, north to south.
    """

    def __init__(self, nlat: int, nlon: int, lmax: int, dtype: torch.dtype = torch.float64):
        if not (1 <= lmax <= nlat and lmax <= nlon // 2 + 1):
            raise ValueError(f"lmax must be in [1, min(nlat, nlon/2 + 1)], got {lmax} for a {nlat}x{nlon} grid")
        self.nlat, self.nlon, self.lmax = nlat, nlon, lmax
        self.dtype, self.ctype = dtype, (torch.complex128 if dtype == torch.float64 else torch.complex64)
        kw = dict(lmax=lmax, mmax=lmax, grid="legendre-gauss", csphase=False)
        self.library = {"sht": th.RealSHT(nlat, nlon, **kw), "isht": th.InverseRealSHT(nlat, nlon, **kw),
                        "vsht": th.RealVectorSHT(nlat, nlon, **kw), "ivsht": th.InverseRealVectorSHT(nlat, nlon, **kw)}
        cos_colat, _ = legendre_gauss_weights(nlat, -1, 1)
        self.lats = -torch.arcsin(cos_colat)  # as torch_harmonics' ShallowWaterSolver: north to south
        # tables with m as the batch dimension: forward (m, l, k), inverse (m, k, l)
        self._fwd = self.library["sht"].weights.to(dtype)
        self._inv = self.library["isht"].pct.transpose(1, 2).to(dtype).contiguous()
        w0, w1 = self.library["vsht"].weights
        d0, d1 = (t.transpose(1, 2) for t in self.library["ivsht"].dpct)
        # the library's vector transforms, written as complex 2x2 blocks: [[A0, iA1], [iA1, -A0]]
        self._vfwd = self._real_blocks(w0, w1)
        self._vinv = self._real_blocks(d0, d1)

    def _real_blocks(self, a0: Tensor, a1: Tensor) -> Tensor:
        """The complex block operator [[a0, i a1], [i a1, -a0]] as a real operator on (re, im) stacked rows."""
        z = torch.zeros_like(a0)
        rows = [  # inputs ordered (x0.re, x0.im, x1.re, x1.im), outputs (y0.re, y0.im, y1.re, y1.im)
            [a0, z, z, -a1],
            [z, a0, a1, z],
            [z, -a1, -a0, z],
            [a1, z, z, -a0],
        ]
        return torch.cat([torch.cat(r, dim=2) for r in rows], dim=1).to(self.dtype).contiguous()

    # ---- contractions over the Legendre index, batched over m ----

    def _apply(self, table: Tensor, x: Tensor) -> Tensor:
        """``table`` (m, a, b) real applied to complex ``x`` (..., b, m) -> (..., a, m)."""
        lead, b, m = x.shape[:-2], x.shape[-2], x.shape[-1]
        xr = torch.view_as_real(x.reshape(-1, b, m))  # (N, b, m, 2)
        xr = xr.permute(2, 1, 0, 3).reshape(m, b, -1)  # (m, b, N·2)
        out = torch.bmm(table, xr).reshape(m, table.shape[1], -1, 2).permute(2, 1, 0, 3)
        return torch.view_as_complex(out.contiguous()).reshape(*lead, table.shape[1], m)

    def _apply_vector(self, table: Tensor, x: Tensor) -> Tensor:
        """Block ``table`` (m, 4a, 4b) applied to complex ``x`` (..., 2, b, m) -> (..., 2, a, m)."""
        lead, b, m = x.shape[:-3], x.shape[-2], x.shape[-1]
        xr = torch.view_as_real(x.reshape(-1, 2, b, m))  # (N, 2, b, m, 2)
        xr = xr.permute(3, 1, 4, 2, 0).reshape(m, 4 * b, -1)  # rows (component, re/im, b)
        a = table.shape[1] // 4
        out = torch.bmm(table, xr).reshape(m, 2, 2, a, -1).permute(4, 1, 3, 0, 2)  # (N, 2, a, m, 2)
        return torch.view_as_complex(out.contiguous()).reshape(*lead, 2, a, m)

    def _rfft(self, x: Tensor) -> Tensor:
        return 2.0 * torch.pi * torch.fft.rfft(x, dim=-1, norm="forward")[..., : self.lmax]

    def _irfft(self, f: Tensor, nlon: int) -> Tensor:
        f = torch.nn.functional.pad(f, (0, nlon // 2 + 1 - f.shape[-1]))
        f[..., 0].imag = 0.0
        return torch.fft.irfft(f, n=nlon, dim=-1, norm="forward")

    # ---- the transforms ----

    def sht(self, x: Tensor) -> Tensor:
        return self._apply(self._fwd, self._rfft(x))

    def isht(self, c: Tensor) -> Tensor:
        return self._irfft(self._apply(self._inv, c), self.nlon)

    def vsht(self, v: Tensor) -> Tensor:
        return self._apply_vector(self._vfwd, self._rfft(v))

    def ivsht(self, c: Tensor) -> Tensor:
        return self._irfft(self._apply_vector(self._vinv, c), self.nlon)

    def evaluate(self, c: Tensor, lat_deg, nlon: int) -> Tensor:
        """Scalar spectra ``(..., lmax, mmax)`` evaluated at latitudes ``lat_deg`` (degrees, any order) and
        ``nlon`` longitudes ``360° j / nlon``: ``(..., len(lat_deg), nlon)``. Exact for the truncated field."""
        colat = torch.as_tensor(np.deg2rad(90.0 - np.asarray(lat_deg, dtype=np.float64)))
        table = legpoly(self.lmax, self.lmax, torch.cos(colat), norm="ortho", inverse=True, csphase=False)
        return self._irfft(self._apply(table.transpose(1, 2).to(self.dtype).contiguous(), c), nlon)


__all__ = ["Transforms"]
