"""The "peak" data set of Xie & Thuerey (2022): generated in code, or read from the authors' PNG folders.

Images are 28x28 uint8 intensities (0 = background, 255 = full ink); labels are int64 in {0, 1}.
Class 0 carries :data:`PEAK_STAMP` at rows 5-10, cols 4-9; class 1 carries the stamp flipped vertically
(rows reversed) at rows 19-24, cols 19-24. Every image also carries one random stroke of clutter, one of
:data:`STROKE_KINDS`, drawn as an anti-aliased pen line 1.5 px wide.

Stroke model (calibrated by eye and by statistics on the authors' 110 originals): a shape is built from
polylines in a unit frame (smooth random curves, straight, crossing or zigzag lines and stars, ellipses,
curls and figures of eight, triangles of which some small ones are filled, and letters from the small
stroke font :data:`FONT`), often with one extra line or curve across it, bent by a gentle random warp so
that it looks hand-drawn, rotated, sheared and scaled to a half-size of 2-15 px. It is drawn with a round
pen of :data:`STROKE_WIDTH` px: a pixel's coverage depends on its centre's distance to the pen's centre
line, overlapping parts of the pen do not add up, and the coverage is blurred with a Gaussian of 0.55 px,
the fit to the originals' cross-section of straight strokes (about 50, 200, 120, 15 across four pixels).

Overlap rule: in all 110 originals the stamp is intact and no stroke pixel lies inside the 6x6 stamp box;
most strokes keep a visible gap (nearest stroke pixel 3-6 px from the box, 1 px in only 6 of 110). The
generator therefore never puts a non-zero stroke pixel inside the box, and draws for each image a
required gap of 1-6 px (see _GAP_P) so that the gaps are distributed much like the originals'. Stamp
pixels are always exactly the stamp. As in the originals, the clutter lies away from the stamp (mean
centre of mass near row 17, col 17 for class 0 and row 10, col 12 for class 1), so the clutter's position
correlates with the class just as it does there.
"""

from __future__ import annotations

import numbers
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from ._png import read_gray_png

PEAK_STAMP = np.array(
    [
        [3, 84, 179, 181, 87, 3],
        [84, 239, 255, 255, 241, 84],
        [182, 255, 255, 255, 255, 182],
        [183, 255, 255, 255, 255, 183],
        [87, 241, 255, 255, 243, 87],
        [3, 84, 179, 181, 87, 3],
    ],
    dtype=np.uint8,
)
PEAK_STAMP.setflags(write=False)
STAMP_ORIGINS = ((5, 4), (19, 19))  # (row, col) of the stamp's top-left pixel, per class
STROKE_KINDS = ("curve", "line", "loop", "triangle", "letter")
STROKE_WIDTH = 1.5  # px

_SIZE = 28
_BLUR_SIGMA = 0.55  # px
_KIND_P = (0.2, 0.2, 0.2, 0.15, 0.25)
_HALF_SIZE = {  # px, range of the half-size of each kind of shape
    "curve": (9, 15), "line": (7, 14), "loop": (6, 13), "letter": (7, 14), "triangle": (7, 13), "filled": (2, 3.5)
}
_FILLED_P = 0.2  # probability that a triangle is filled
_FLOURISH_P = {"curve": 0.4, "line": 0.2, "loop": 0.5, "letter": 0.5, "triangle": 0.5}  # extra stroke across
# (row, col) around which the clutter's centre is drawn, per class: a little closer to the stamp than the
# originals' mean centres of mass, (17, 17) and (10, 12), because rejected placements push clutter outward.
_CENTRE = ((16.0, 15.5), (11.0, 13.5))
_CENTRE_SPREAD = 2.5  # px, standard deviation of the clutter's centre
_BATCH, _MAX_ROUNDS = 32, 20  # candidate centres per round, rounds before giving up
_MIN_GAP = 1.75  # px: a centre line closer than this to a region lights a pixel inside it
_GAP_P = (0.1, 0.15, 0.25, 0.25, 0.15, 0.1)  # probabilities of a required gap of 1, 2, ... px to the stamp


def stamp_box(label: int) -> tuple[slice, slice]:
    """(rows, cols) slices of the 6x6 stamp region of class ``label`` (0 or 1)."""
    row, col = STAMP_ORIGINS[_check_label(label)]
    return slice(row, row + 6), slice(col, col + 6)


def stamp_for(label: int) -> np.ndarray:
    """The 6x6 uint8 stamp of class ``label``: :data:`PEAK_STAMP`, rows reversed for class 1."""
    return PEAK_STAMP if _check_label(label) == 0 else PEAK_STAMP[::-1]


# ----------------------------------------------------------------------------------------------- shapes
# A shape is a list of (points, filled): points float [k, 2] as (x, y) with y pointing down.


def _arc(cx, cy, rx, ry, a0, a1):
    """Points on an elliptic arc from angle a0 to a1 (degrees, counter-clockwise as seen on screen)."""
    t = np.radians(np.linspace(a0, a1, max(3, int(abs(a1 - a0) / 15) + 1)))
    return np.stack([cx + rx * np.cos(t), cy - ry * np.sin(t)], axis=1)


def _cat(*parts):
    return np.concatenate([np.asarray(p, dtype=float).reshape(-1, 2) for p in parts])


def _font() -> dict[str, list[np.ndarray]]:
    """A small stroke font: baseline y=1, x-height y=0.4, ascender y=0, descender y=1.5."""
    a = np.asarray
    return {
        "a": [_arc(0.42, 0.7, 0.3, 0.3, 20, 380), a([(0.74, 0.4), (0.76, 1.0)])],
        "b": [a([(0.2, 0.0), (0.2, 1.0)]), _arc(0.48, 0.7, 0.28, 0.3, 180, 540)],
        "c": [_arc(0.5, 0.7, 0.35, 0.3, 45, 315)],
        "d": [_arc(0.45, 0.7, 0.3, 0.3, 0, 360), a([(0.76, 0.0), (0.76, 1.0)])],
        "e": [_cat([(0.15, 0.7)], _arc(0.5, 0.7, 0.35, 0.3, 0, 315))],
        "f": [_cat(_arc(0.62, 0.2, 0.2, 0.2, 20, 180), [(0.42, 1.0)]), a([(0.2, 0.45), (0.7, 0.45)])],
        "g": [_arc(0.45, 0.7, 0.3, 0.3, 0, 360), _cat([(0.75, 0.4)], _arc(0.45, 1.2, 0.3, 0.3, 0, -160))],
        "h": [a([(0.2, 0.0), (0.2, 1.0)]), _cat(_arc(0.5, 0.7, 0.3, 0.3, 180, 0), [(0.8, 1.0)])],
        "k": [a([(0.2, 0.0), (0.2, 1.0)]), a([(0.75, 0.4), (0.2, 0.72), (0.8, 1.0)])],
        "l": [_cat([(0.1, 0.85)], _arc(0.45, 0.2, 0.17, 0.2, -30, 180), [(0.35, 0.95), (0.7, 0.88)])],
        "m": [
            a([(0.1, 0.4), (0.1, 1.0)]),
            _cat(_arc(0.3, 0.6, 0.2, 0.2, 180, 0), [(0.5, 1.0)]),
            _cat(_arc(0.7, 0.6, 0.2, 0.2, 180, 0), [(0.9, 1.0)]),
        ],
        "n": [a([(0.2, 0.4), (0.2, 1.0)]), _cat(_arc(0.5, 0.65, 0.3, 0.25, 180, 0), [(0.8, 1.0)])],
        "o": [_arc(0.5, 0.7, 0.35, 0.3, 90, 450)],
        "s": [_cat(_arc(0.5, 0.55, 0.28, 0.15, 30, 270), _arc(0.5, 0.85, 0.28, 0.15, 90, -150))],
        "u": [_cat([(0.2, 0.4)], _arc(0.5, 0.75, 0.3, 0.25, 180, 360), [(0.8, 0.4)]), a([(0.8, 0.4), (0.8, 1.0)])],
        "v": [a([(0.1, 0.4), (0.5, 1.0), (0.9, 0.4)])],
        "w": [a([(0.0, 0.4), (0.25, 1.0), (0.5, 0.55), (0.75, 1.0), (1.0, 0.4)])],
        "x": [a([(0.1, 0.4), (0.9, 1.0)]), a([(0.9, 0.4), (0.1, 1.0)])],
        "y": [a([(0.1, 0.4), (0.5, 0.95)]), a([(0.9, 0.4), (0.3, 1.5)])],
        "z": [a([(0.1, 0.4), (0.9, 0.4), (0.1, 1.0), (0.9, 1.0)])],
        "A": [a([(0.0, 1.0), (0.5, 0.0), (1.0, 1.0)]), a([(0.25, 0.55), (0.75, 0.55)])],
        "E": [a([(0.9, 0.0), (0.1, 0.0), (0.1, 1.0), (0.9, 1.0)]), a([(0.1, 0.5), (0.7, 0.5)])],
        "F": [a([(0.9, 0.0), (0.1, 0.0), (0.1, 1.0)]), a([(0.1, 0.5), (0.7, 0.5)])],
        "H": [a([(0.1, 0.0), (0.1, 1.0)]), a([(0.9, 0.0), (0.9, 1.0)]), a([(0.1, 0.5), (0.9, 0.5)])],
        "K": [a([(0.1, 0.0), (0.1, 1.0)]), a([(0.9, 0.0), (0.1, 0.55), (0.9, 1.0)])],
        "L": [a([(0.1, 0.0), (0.1, 1.0), (0.8, 1.0)])],
        "M": [a([(0.0, 1.0), (0.1, 0.0), (0.5, 0.6), (0.9, 0.0), (1.0, 1.0)])],
        "N": [a([(0.1, 1.0), (0.1, 0.0), (0.9, 1.0), (0.9, 0.0)])],
        "T": [a([(0.0, 0.0), (1.0, 0.0)]), a([(0.5, 0.0), (0.5, 1.0)])],
        "Y": [a([(0.0, 0.0), (0.5, 0.5), (1.0, 0.0)]), a([(0.5, 0.5), (0.5, 1.0)])],
        "Z": [a([(0.1, 0.0), (0.9, 0.0), (0.1, 1.0), (0.9, 1.0)])],
    }


FONT = _font()  # glyph -> list of polylines [k, 2] as (x, y), y down


def _chaikin(points: np.ndarray, rounds: int = 3) -> np.ndarray:
    """Smooth an open polyline by corner cutting, keeping its end points."""
    for _ in range(rounds):
        p, q = points[:-1], points[1:]
        cut = np.stack([0.75 * p + 0.25 * q, 0.25 * p + 0.75 * q], axis=1).reshape(-1, 2)
        points = np.concatenate([points[:1], cut, points[-1:]])
    return points


def _walk(rng, n: int, turn: float) -> np.ndarray:
    """A smooth random curve: a walk of n-1 steps turning by up to ``turn`` radians, corners cut."""
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.uniform(-turn, turn, n - 1))
    steps = rng.uniform(0.6, 1.4, n - 1)[:, None] * np.stack([np.cos(heading), np.sin(heading)], axis=1)
    return _chaikin(np.concatenate([np.zeros((1, 2)), np.cumsum(steps, axis=0)]))


def _curve(rng) -> list:
    """A wave, hook or scribble: a smooth random curve through 5 to 11 points."""
    return [(_walk(rng, int(rng.integers(5, 12)), rng.uniform(1.5, 3.0)), False)]


def _line(rng) -> list:
    """Straight strokes: one line, two crossing lines, an asterisk, a zigzag or a five-pointed star."""
    variant = rng.choice(5, p=(0.3, 0.25, 0.1, 0.2, 0.15))
    angle = rng.uniform(0, np.pi)
    if variant == 0:
        return [(_segment(angle), False)]
    if variant == 1:
        shift = rng.uniform(-0.3, 0.3, 2)
        return [(_segment(angle), False), (_segment(angle + rng.uniform(0.5, 2.6)) * 0.8 + shift, False)]
    if variant == 2:
        return [(_segment(angle + k * np.pi / 3 + rng.normal(0, 0.15)), False) for k in range(3)]
    if variant == 3:
        n = int(rng.integers(3, 6))
        x = np.linspace(-1, 1, n) + rng.normal(0, 0.08, n)
        y = rng.uniform(0.4, 1.0) * (-1.0) ** np.arange(n) * rng.choice([-1.0, 1.0])
        return [(np.stack([x, y], axis=1), False)]
    angles = np.radians(90 + 144 * np.arange(6) + rng.normal(0, 6, 6))
    return [(np.stack([np.cos(angles), -np.sin(angles)], axis=1), False)]


def _segment(angle: float) -> np.ndarray:
    d = np.array([np.cos(angle), np.sin(angle)])
    return np.stack([-d, d])


def _loop(rng) -> list:
    """A wobbly ellipse that overshoots its start, a curl with one to four loops, or a figure of eight."""
    variant = rng.choice(3, p=(0.45, 0.4, 0.15))
    if variant == 0:
        t = np.linspace(0, 2 * np.pi * rng.uniform(1.0, 1.15), 40) + rng.uniform(0, 2 * np.pi)
        r = 1 + 0.08 * np.sin(2 * t + rng.uniform(0, 2 * np.pi))
        return [(np.stack([r * np.cos(t), rng.uniform(0.35, 1.0) * r * np.sin(t)], axis=1), False)]
    if variant == 1:
        turns = int(rng.integers(1, 5))
        t = np.linspace(-0.5 * np.pi, (2 * turns + 0.5) * np.pi, 16 * turns + 8)
        b = rng.uniform(0.8, 1.4)
        return [(np.stack([t * rng.uniform(0.25, 0.5) - b * np.sin(t), -b * np.cos(t)], axis=1), False)]
    t = np.linspace(0, 2 * np.pi, 33)
    return [(np.stack([np.sin(t), np.sin(t) * np.cos(t) * rng.uniform(0.6, 1.2)], axis=1), False)]


def _triangle(rng, filled: bool) -> list:
    """A closed triangle (outline or filled) with corners jittered around an equilateral one."""
    angles = np.radians(90 + 120 * np.arange(3) + rng.normal(0, 15, 3))
    corners = rng.uniform(0.6, 1.0, 3)[:, None] * np.stack([np.cos(angles), -np.sin(angles)], axis=1)
    return [(np.concatenate([corners, corners[:1]]), filled)]


def _letter(rng) -> list:
    """A glyph of :data:`FONT`, slanted like handwriting."""
    glyph = FONT[sorted(FONT)[int(rng.integers(len(FONT)))]]
    slant = np.array([[1.0, -rng.normal(0.2, 0.15)], [0.0, 1.0]])
    return [(p @ slant.T, False) for p in glyph]


def _flourish(paths: list, rng) -> list:
    """An extra stroke across an (unfilled) shape: a straight line or a short curve, as in many originals."""
    allp = np.concatenate([p for p, _ in paths])
    centre, size = allp.mean(axis=0), np.abs(allp - allp.mean(axis=0)).max()
    if rng.random() < 0.5:
        extra = _segment(rng.uniform(0, np.pi)) * size * rng.uniform(0.7, 1.3)
    else:
        walk = _walk(rng, int(rng.integers(3, 6)), 1.5)
        extra = (walk - walk.mean(axis=0)) / max(np.abs(walk - walk.mean(axis=0)).max(), 1e-6) * size
    return paths + [(extra + centre + rng.normal(0, 0.3 * size, 2), False)]


def _shape(kind: str, rng) -> tuple[list, float]:
    """Polylines of one stroke of ``kind`` centred on 0 with half-extent 1, and its half-size in px."""
    if kind == "triangle":
        filled = bool(rng.random() < _FILLED_P)
        paths, half = _triangle(rng, filled), rng.uniform(*_HALF_SIZE["filled" if filled else kind])
    else:
        filled = False
        paths = {"curve": _curve, "line": _line, "loop": _loop, "letter": _letter}[kind](rng)
        half = rng.uniform(*_HALF_SIZE[kind])
    if not filled and rng.random() < _FLOURISH_P[kind]:
        paths = _flourish(paths, rng)
    paths = [(_densify(p), f) for p, f in paths]
    angle = rng.normal(0, 0.25) if kind == "letter" else rng.uniform(0, 2 * np.pi)
    paths = _wobble(_rotate(paths, angle, rng.normal(0, 0.15)), rng)
    return _normalise(paths), half


def _densify(points: np.ndarray, step: float = 0.15) -> np.ndarray:
    """Resample a polyline so that consecutive points are at most ``step`` apart (corners kept)."""
    gaps = np.linalg.norm(np.diff(points, axis=0), axis=1)
    parts = np.maximum(1, np.ceil(gaps / step)).astype(int)
    seg = np.repeat(np.arange(len(gaps)), parts)
    t = (np.arange(parts.sum()) - np.repeat(np.cumsum(parts) - parts, parts)) / np.repeat(parts, parts)
    inner = points[seg] + (points[seg + 1] - points[seg]) * t[:, None]
    return np.concatenate([inner, points[-1:]])


def _rotate(paths, angle, log_aspect):
    c, s = np.cos(angle), np.sin(angle)
    m = np.array([[c, -s], [s, c]]) @ np.diag([np.exp(log_aspect), np.exp(-log_aspect)])
    return [(p @ m.T, f) for p, f in paths]


def _wobble(paths, rng, amplitude: float = 0.05):
    """Bend the whole shape by a smooth random displacement field, as an unsteady hand would."""
    freq, phase = rng.uniform(1.5, 3.5, 2), rng.uniform(0, 2 * np.pi, 2)
    extent = np.abs(np.concatenate([p for p, _ in paths])).max()
    a = amplitude * extent

    def bend(p):
        dx = np.sin(freq[0] * p[:, 1] / extent + phase[0])
        dy = np.sin(freq[1] * p[:, 0] / extent + phase[1])
        return p + a * np.stack([dx, dy], axis=1)

    return [(bend(p), f) for p, f in paths]


def _normalise(paths):
    allp = np.concatenate([p for p, _ in paths])
    lo, hi = allp.min(axis=0), allp.max(axis=0)
    centre, half = (lo + hi) / 2, max((hi - lo).max() / 2, 1e-6)
    return [((p - centre) / half, f) for p, f in paths]


# ------------------------------------------------------------------------------------------- rendering


def _blur_matrix(radius: int = 2) -> np.ndarray:
    """B [28, 28] such that ``B @ image @ B.T`` blurs with a Gaussian of _BLUR_SIGMA px, zero outside."""
    taps = np.arange(-radius, radius + 1)
    kernel = np.exp(-0.5 * (taps / _BLUR_SIGMA) ** 2)
    return sum(w * np.eye(_SIZE, k=int(k)) for k, w in zip(taps, kernel / kernel.sum()))


def _distance(pixels: np.ndarray, points: np.ndarray, reach: float) -> np.ndarray:
    """Distance (px) from each pixel centre [P, 2] to the polyline ``points`` [k, 2], inf beyond ``reach``.

    The polyline is sampled every 0.2 px; near the pen's edge this errs by about 0.01 px.
    """
    from scipy.spatial import cKDTree  # imported here: keeps ``import racecar_core.data`` light

    return cKDTree(_densify(points, 0.2)).query(pixels, distance_upper_bound=reach)[0]


def _inside(pixels: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Even-odd test: which pixel centres [P, 2] lie inside the closed polygon ``points`` [k, 2]."""
    a, b = points, np.roll(points, -1, axis=0)
    x, y = pixels[:, :1], pixels[:, 1:]
    crosses = (a[:, 1] > y) != (b[:, 1] > y)
    x_cross = a[:, 0] + (y - a[:, 1]) * (b[:, 0] - a[:, 0]) / np.where(b[:, 1] == a[:, 1], 1e-12, b[:, 1] - a[:, 1])
    return (crosses & (x < x_cross)).sum(axis=1) % 2 == 1


def render_paths(paths) -> np.ndarray:
    """Draw polylines given in pixel coordinates (x = col, y = row) as a uint8 [28, 28] stroke image.

    ``paths`` is a list of ``(points [k, 2], filled)``; filled paths are also painted inside. The pen is
    STROKE_WIDTH px wide with round ends. A pixel's coverage is ``clip(w/2 + 1/2 - d, 0, 1)`` for the
    distance d of its centre from the nearest pen centre line (exact pixel-area coverage for axis-parallel
    strokes, and the right amount of ink for any direction); overlapping parts of the pen do not add up.
    The coverage is blurred with a Gaussian of _BLUR_SIGMA px and scaled to 0-255.
    """
    rows, cols = np.mgrid[0:_SIZE, 0:_SIZE]
    pixels = np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.float64)
    reach = STROKE_WIDTH / 2 + 0.5
    cover = np.zeros(_SIZE * _SIZE)
    for points, filled in paths:
        points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        pen = np.clip(reach - _distance(pixels, points, reach), 0, 1)
        if filled:
            inside = _inside(pixels, points)
            edge = _distance(pixels, np.concatenate([points, points[:1]]), 1.0)
            pen = np.maximum(pen, np.where(inside, 1.0, np.clip(0.5 - edge, 0, 1)))
        cover = np.maximum(cover, pen)
    blur = _blur_matrix()
    image = blur @ cover.reshape(_SIZE, _SIZE) @ blur.T * 255
    return np.rint(np.clip(image, 0, 255)).astype(np.uint8)


def _clearance(points: np.ndarray, centres: np.ndarray, label: int) -> np.ndarray:
    """Distance (px) from the stamp box's outer edge to the nearest point, for each candidate centre [C, 2]."""
    row, col = STAMP_ORIGINS[label]
    lo, hi = np.array([col, row]) - 0.5, np.array([col, row]) + 5.5  # (x, y) pixel edges of the box
    p = points[None, :, :] + centres[:, None, :]
    gap = np.maximum(np.maximum(lo - p, p - hi), 0)
    return np.sqrt((gap**2).sum(axis=2)).min(axis=1)


def _place(paths, half: float, label: int, gap: int, rng) -> np.ndarray:
    """Scale the unit shape to ``half`` px, place it away from the stamp and render it (uint8 [28, 28]).

    Every non-zero stroke pixel must lie at least ``gap`` px (Chebyshev) from the stamp box, i.e. outside
    the box grown by ``gap - 1``. Candidate centres are drawn around the class's clutter centre; those whose
    centre line is too close to that region to pass are skipped unrendered, rendered strokes are checked
    pixel by pixel, and after each batch without success the shape shrinks by 15%.
    """
    keep_out = tuple(slice(max(s.start - gap + 1, 0), s.stop + gap - 1) for s in stamp_box(label))
    mean = np.array(_CENTRE[label][::-1])  # as (x, y)
    for _ in range(_MAX_ROUNDS):
        scaled = [(p * half, f) for p, f in paths]
        allp = np.concatenate([p for p, _ in scaled])
        low, high = -1 - allp.min(axis=0), _SIZE - allp.max(axis=0)  # keep the extent within [-1, 28] px
        centres = rng.normal(mean, _CENTRE_SPREAD, size=(_BATCH, 2))
        centres = np.where(low <= high, np.clip(centres, low, high), (low + high) / 2)
        for centre in centres[_clearance(allp, centres, label) >= _MIN_GAP + gap - 1]:
            stroke = render_paths([(p + centre, f) for p, f in scaled])
            if not stroke[keep_out].any():
                return stroke
        half *= 0.85
    raise RuntimeError("could not place a stroke away from the stamp")  # not reached in practice


def _image(label: int, rng) -> tuple[np.ndarray, str]:
    kind = STROKE_KINDS[int(rng.choice(len(STROKE_KINDS), p=_KIND_P))]
    paths, half = _shape(kind, rng)
    gap = 1 + int(rng.choice(len(_GAP_P), p=_GAP_P))
    image = _place(paths, half, label, gap, rng)
    image[stamp_box(label)] = stamp_for(label)
    return image, kind


def _generate(n_per_class: int, seed_seq: np.random.SeedSequence):
    images, labels, kinds = [], [], []
    for label, child in enumerate(seed_seq.spawn(2)):  # one stream per class: prefixes do not depend on n
        rng = np.random.default_rng(child)
        for _ in range(n_per_class):
            image, kind = _image(label, rng)
            images.append(image)
            kinds.append(kind)
        labels += [label] * n_per_class
    return np.stack(images), np.array(labels, dtype=np.int64), np.array(kinds)


# ------------------------------------------------------------------------------------------ public API


def make_peak(n_per_class: int = 50, seed: int = 0, *, return_kinds: bool = False):
    """Generate ``n_per_class`` images of each class: ``(images, labels)`` or ``(images, labels, kinds)``.

    images: uint8 [2n, 28, 28]; labels: int64 [2n], the first n are class 0; kinds: str [2n], the stroke
    kind of each image. Deterministic given ``seed``; each class has its own random stream, so the first k
    images of a class do not depend on ``n_per_class``. ``make_peak(n, seed)`` equals the training half of
    ``peak_split(n, ..., seed)``.
    """
    _check_count("n_per_class", n_per_class, 1)
    train_seq, _ = np.random.SeedSequence(_check_seed(seed)).spawn(2)
    images, labels, kinds = _generate(n_per_class, train_seq)
    return (images, labels, kinds) if return_kinds else (images, labels)


def peak_split(n_train: int = 50, n_test: int = 5, seed: int = 0) -> dict[str, np.ndarray]:
    """A train/test split with ``n_train`` and ``n_test`` images per class (the authors used 50 and 5).

    Returns ``x_train`` uint8 [2*n_train, 28, 28], ``y_train`` int64 [2*n_train], ``x_test``, ``y_test``
    likewise; class 0 first in each. Train and test come from two independent streams spawned from
    ``seed``, so the test images do not depend on ``n_train``.
    """
    _check_count("n_train", n_train, 1)
    _check_count("n_test", n_test, 1)
    train_seq, test_seq = np.random.SeedSequence(_check_seed(seed)).spawn(2)
    x_train, y_train, _ = _generate(n_train, train_seq)
    x_test, y_test, _ = _generate(n_test, test_seq)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def load_peak_folder(
    root: str | os.PathLike, train: Iterable[int] = range(50), test: Iterable[int] = range(50, 55)
) -> dict[str, np.ndarray]:
    """Read the authors' peak PNGs ``root/0/{i}.png`` and ``root/1/{i}.png`` (28x28, L or RGBA; channel 0).

    Returns ``x_train`` uint8 [2*len(train), 28, 28], ``y_train`` int64, ``x_test``, ``y_test`` likewise,
    class 0 first; ``train`` and ``test`` are the file numbers used for each split.
    """
    root = Path(root)
    layout = f"expected the authors' layout {root}/0/<i>.png and {root}/1/<i>.png (28x28 PNG files)"
    if not root.is_dir():
        raise FileNotFoundError(f"peak data folder not found: {root}; {layout}")
    out = {}
    for split, indices in (("train", list(train)), ("test", list(test))):
        paths = [root / str(label) / f"{int(i)}.png" for label in (0, 1) for i in indices]
        missing = [str(p) for p in paths if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} peak image(s) missing, e.g. {missing[0]}; {layout}")
        images = [read_gray_png(p) for p in paths]
        out[f"x_{split}"] = np.stack(images) if images else np.zeros((0, _SIZE, _SIZE), np.uint8)
        out[f"y_{split}"] = np.repeat(np.arange(2, dtype=np.int64), len(indices))
    return out


# ---------------------------------------------------------------------------------------------- checks


def _check_count(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _check_seed(seed) -> int:
    return _check_count("seed", seed, 0)


def _check_label(label) -> int:
    if isinstance(label, bool) or not isinstance(label, numbers.Integral) or label not in (0, 1):
        raise ValueError(f"label must be 0 or 1, got {label!r}")
    return int(label)
