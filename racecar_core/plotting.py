"""Figures shared by the chapters. Every function returns the matplotlib Figure it drew."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from . import svd

VARIANT_COLORS = {"Std": "#4C72B0", "Ort": "#DD8452", "RR": "#55A868", "Pre": "#8172B3", "RR1": "#C44E52", "lRR": "#937860",
                  "Scratch": "#8C8C8C", "DAE": "#8172B3", "Random": "#4C72B0", "AE": "#CCB974", "AE+skip": "#8172B3",
                  "RR-G": "#55A868", "RR-D": "#C44E52", "RR-both": "#8172B3",
                  "Std+dropout": "#4C72B0", "RR+dropout": "#55A868"}
DROPOUT_LINESTYLE = "--"  # the weather chapter's dropout arms: the colour of their arm without dropout, dashed


def variant_style(variant: str) -> dict:
    """Matplotlib line keywords of a variant: its colour, and a dashed line for the "+dropout" arms."""
    return {"color": VARIANT_COLORS.get(variant), "ls": DROPOUT_LINESTYLE if variant.endswith("+dropout") else "-"}


def image_row_grid(rows: Mapping[str, np.ndarray], *, titles: Mapping[str, Sequence[str]] | None = None,
                   cmap: str = "gray", vmin: float | None = None, vmax: float | None = None,
                   suptitle: str | None = None, size: float = 1.1) -> Figure:
    """One row of images per entry of ``rows`` ({label: [k, H, W]}), labelled on the left."""
    ncols = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(rows), ncols, figsize=(size * ncols + 0.8, size * len(rows) + 0.6), squeeze=False)
    for r, (label, images) in enumerate(rows.items()):
        for c in range(ncols):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if c < len(images):
                ax.imshow(images[c], cmap=cmap, vmin=vmin, vmax=vmax)
                if titles and label in titles:
                    ax.set_title(titles[label][c], fontsize=7)
            else:
                ax.axis("off")
        axes[r, 0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=10)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def singular_vectors_figure(weights: Mapping[str, np.ndarray], data: np.ndarray, *, k: int = 10,
                            data_rank: int = 2, shape: tuple[int, int] = (28, 28), suptitle: str | None = None) -> Figure:
    """The top-``k`` right singular vectors of each weight as images, titled with σ and cos² to the data span."""
    rows, titles = {}, {}
    for label, weight in weights.items():
        s, v = svd.right_singular_vectors(weight)
        v = svd.oriented(v[:k], data.mean(axis=0))
        alignment = svd.data_alignment(v, data, data_rank)
        rows[label] = svd.as_images(v, shape)
        titles[label] = [f"σ={a:.2f}\ncos²={b:.2f}" for a, b in zip(s[:k], alignment)]
    return image_row_grid(rows, titles=titles, suptitle=suptitle)


def histories_figure(histories: Mapping[str, pd.DataFrame], columns: Sequence[str], *, logy: Sequence[str] = (),
                     suptitle: str | None = None) -> Figure:
    """Curves of history ``columns`` over steps; ``histories`` maps 'variant' or 'variant/seed' to a history frame."""
    frames = []
    for label, frame in histories.items():
        variant = label.split("/")[0]
        frames.append(frame.assign(variant=variant, run=label))
    data = pd.concat(frames, ignore_index=True)
    fig, axes = plt.subplots(1, len(columns), figsize=(4.2 * len(columns), 3.2), squeeze=False)
    for ax, column in zip(axes[0], columns):
        subset = data.dropna(subset=[column])
        sns.lineplot(subset, x="step", y=column, hue="variant", units="run", estimator=None, ax=ax,
                     palette={v: VARIANT_COLORS.get(v) for v in subset["variant"].unique()}, lw=1, alpha=0.8)
        if column in logy:
            ax.set_yscale("log")
        ax.set_title(column)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def layer_error_figure(layers: pd.DataFrame, *, xlabel: str, title: str) -> Figure:
    """Relative reverse-pass error ‖d'_m − d_m‖ / ‖d_m‖ of every weight layer (``layers``: columns variant, seed,
    layer, rel_err), one line per run, log scale, coloured by variant."""
    fig, ax = plt.subplots(figsize=(8.4, 3.2))
    for (variant, seed), run in layers.groupby(["variant", "seed"], sort=False):
        ax.plot(run.layer, run.rel_err, marker="o", ms=3, lw=1, alpha=0.8, **variant_style(variant),
                label=variant if seed == layers.seed.min() else None)
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    ax.set_xlabel(xlabel)
    ax.set_ylabel("‖d'_m − d_m‖ / ‖d_m‖")
    ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def metric_strip(frame: pd.DataFrame, columns: Sequence[str], *, by: str = "variant", suptitle: str | None = None) -> Figure:
    """Per-seed values of final metrics (points) with their mean (bar), one panel per metric."""
    fig, axes = plt.subplots(1, len(columns), figsize=(3.0 * len(columns), 3.0), squeeze=False)
    order = list(dict.fromkeys(frame[by]))
    palette = {v: VARIANT_COLORS.get(v, "gray") for v in order}
    for ax, column in zip(axes[0], columns):
        sns.barplot(frame, x=by, y=column, order=order, ax=ax, errorbar=None, alpha=0.35, hue=by, palette=palette, legend=False)
        sns.stripplot(frame, x=by, y=column, order=order, ax=ax, hue=by, palette=palette, legend=False, size=5)
        ax.set_xlabel("")
        ax.set_title(column, fontsize=9)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def _plane_axes(ax, planes: Mapping[str, np.ndarray], spread: Mapping[str, np.ndarray] | None,
                h_x: float | None, h_y: float | None, title: str | None) -> None:
    for label, plane in planes.items():
        color = VARIANT_COLORS.get(label.split()[0], None)
        if spread and label in spread:  # every seed, faint
            points = np.asarray(spread[label]).reshape(-1, 2)
            ax.scatter(points[:, 0], points[:, 1], s=6, color=color, alpha=0.25, lw=0)
        plane = np.asarray(plane)
        line, = ax.plot(plane[:, 0], plane[:, 1], "-o", ms=4, lw=1.2, color=color, label=label)
        for m, (x, y) in enumerate(plane, start=1):
            ax.annotate(str(m), (x, y), textcoords="offset points", xytext=(3, -8), fontsize=6, color=line.get_color())
    if h_x is not None:
        ax.axvline(h_x, color="gray", lw=0.6, ls="--")
    if h_y is not None:
        ax.axhline(h_y, color="gray", lw=0.6, ls="--")
    ax.set_xlabel("I(X; d_m) [bits]")
    ax.set_ylabel("I(d_m; Y) [bits]")
    if title:
        ax.set_title(title, fontsize=9)


def information_planes_figure(panels: Mapping[str, Mapping[str, np.ndarray]], *,
                              spread: Mapping[str, Mapping[str, np.ndarray]] | None = None,
                              h_x: float | None = None, h_y: float | Mapping[str, float] | None = None,
                              suptitle: str | None = None, size: float = 3.6) -> Figure:
    """Information planes, one panel per entry of ``panels`` ({title: {label: [L, 2]}}).

    Each label is a line through its layers' points ``(I(X; d_m), I(d_m; Y))`` in bits, ``m = 1 .. L``
    written beside the points; ``spread`` ({title: {label: [seeds, L, 2]}}) adds every seed's points
    faintly. Dashed lines mark the ceilings ``h_x = H(X)`` and ``h_y = H(Y)`` (a number or one per panel).
    """
    fig, axes = plt.subplots(1, len(panels), figsize=(size * len(panels), size), squeeze=False)
    for ax, (title, planes) in zip(axes[0], panels.items()):
        ceiling_y = h_y.get(title) if isinstance(h_y, Mapping) else h_y
        _plane_axes(ax, planes, (spread or {}).get(title), h_x, ceiling_y, title)
    axes[0, -1].legend(fontsize=7, loc="lower left")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def plane_trajectories_figure(trajectories: Mapping[str, tuple[np.ndarray, np.ndarray]], *, h_x: float | None = None,
                              h_y: float | None = None, suptitle: str | None = None, size: float = 3.4) -> Figure:
    """Each layer's path through the information plane over training, one panel per label.

    ``trajectories``: {label: (steps [S], planes [S, L, 2] in bits)}. Points are coloured by step (shared
    colour bar); the last point of every layer is ringed and labelled with the layer number.
    """
    fig, axes = plt.subplots(1, len(trajectories), figsize=(size * len(trajectories) + 0.8, size), squeeze=False)
    last_step = max(float(np.max(steps)) for steps, _ in trajectories.values())
    norm = plt.Normalize(0, last_step)
    scatter = None
    for ax, (label, (steps, planes)) in zip(axes[0], trajectories.items()):
        planes = np.asarray(planes)
        for m in range(planes.shape[1]):
            ax.plot(planes[:, m, 0], planes[:, m, 1], color="gray", lw=0.5, alpha=0.6)
            scatter = ax.scatter(planes[:, m, 0], planes[:, m, 1], c=steps, cmap="viridis", norm=norm, s=9, lw=0)
            ax.scatter(planes[-1, m, 0], planes[-1, m, 1], s=30, facecolors="none", edgecolors="k", lw=0.6)
            ax.annotate(str(m + 1), planes[-1, m], textcoords="offset points", xytext=(3, -8), fontsize=6)
        if h_x is not None:
            ax.axvline(h_x, color="gray", lw=0.6, ls="--")
        if h_y is not None:
            ax.axhline(h_y, color="gray", lw=0.6, ls="--")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("I(X; d_m) [bits]")
    axes[0, 0].set_ylabel("I(d_m; Y) [bits]")
    if scatter is not None:
        fig.colorbar(scatter, ax=axes[0].tolist(), label="training step", fraction=0.02, pad=0.01)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig
