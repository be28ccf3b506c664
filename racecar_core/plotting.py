"""Figures shared by the chapters. Every function returns the matplotlib Figure it drew."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from . import svd

VARIANT_COLORS = {"Std": "#4C72B0", "Ort": "#DD8452", "RR": "#55A868", "Pre": "#8172B3", "RR1": "#C44E52", "lRR": "#937860"}


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
