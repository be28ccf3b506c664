"""Interactive controls for the chapters (they need a live Jupyter kernel; the book shows static figures)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np


def step_scrubber(frames: Mapping[str, Sequence[tuple[int, np.ndarray]]], draw: Callable[[dict[str, np.ndarray], int], None],
                  description: str = "step") -> widgets.Widget:
    """A slider over the snapshot steps of ``frames`` ({label: [(step, array), ...]}) that calls
    ``draw({label: array_at_step}, step)`` for the chosen step."""
    steps = [s for s, _ in next(iter(frames.values()))]
    slider = widgets.SelectionSlider(options=steps, value=steps[-1], description=description, continuous_update=False)

    def show(step: int) -> None:
        draw({label: dict(seq)[step] for label, seq in frames.items()}, step)
        plt.show()

    return widgets.interactive(show, step=slider)


def count_slider(draw: Callable[[int], None], *, maximum: int, value: int, description: str = "vectors") -> widgets.Widget:
    """A slider choosing how many items (e.g. singular vectors) ``draw(k)`` shows."""
    slider = widgets.IntSlider(min=1, max=maximum, value=value, description=description, continuous_update=False)

    def show(k: int) -> None:
        draw(k)
        plt.show()

    return widgets.interactive(show, k=slider)
