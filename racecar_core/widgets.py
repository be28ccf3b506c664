"""Interactive controls for the chapters (they need a live Jupyter kernel; the book shows static figures).

Under batch execution (``racecar run``, ``racecar book``, which set ``RACECAR_STATIC=1``) every control
draws its default view once as a plain figure and returns ``None``: no front end is there to use a
widget, and live widget messages in a headless kernel are a known source of papermill hangs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import ipywidgets as widgets
import matplotlib.pyplot as plt
import numpy as np

from .static import STATIC_ENV, is_static  # noqa: F401 (STATIC_ENV: the switch, named here for the controls' users)


def step_scrubber(frames: Mapping[str, Sequence[tuple[int, np.ndarray]]], draw: Callable[[dict[str, np.ndarray], int], None],
                  description: str = "step") -> widgets.Widget:
    """A slider over the snapshot steps of ``frames`` ({label: [(step, array), ...]}) that calls
    ``draw({label: array_at_step}, step)`` for the chosen step."""
    steps = [s for s, _ in next(iter(frames.values()))]
    if is_static():
        return _draw_once(lambda: draw({label: dict(seq)[steps[-1]] for label, seq in frames.items()}, steps[-1]))
    slider = widgets.SelectionSlider(options=steps, value=steps[-1], description=description, continuous_update=False)

    def show(step: int) -> None:
        draw({label: dict(seq)[step] for label, seq in frames.items()}, step)
        plt.show()

    return widgets.interactive(show, step=slider)


def count_slider(draw: Callable[[int], None], *, maximum: int, value: int, description: str = "vectors") -> widgets.Widget:
    """A slider choosing how many items (e.g. singular vectors) ``draw(k)`` shows."""
    if is_static():
        return _draw_once(lambda: draw(value))
    slider = widgets.IntSlider(min=1, max=maximum, value=value, description=description, continuous_update=False)

    def show(k: int) -> None:
        draw(k)
        plt.show()

    return widgets.interactive(show, k=slider)


def picker(draw: Callable[..., None], *, steps: Callable[[dict], Sequence[int]], **choices: Sequence) -> widgets.Widget:
    """Dropdowns for ``choices`` ({name: options}) and a step slider whose options ``steps(selection)`` depend
    on the chosen values; calls ``draw(step=step, **selection)`` after every change."""
    if is_static():
        default = {name: list(options)[0] for name, options in choices.items()}
        return _draw_once(lambda: draw(step=list(steps(default))[-1], **default))
    dropdowns = {name: widgets.Dropdown(options=list(options), description=name) for name, options in choices.items()}
    selection = lambda: {name: d.value for name, d in dropdowns.items()}  # noqa: E731
    first = list(steps(selection()))
    slider = widgets.SelectionSlider(options=first, value=first[-1], description="step", continuous_update=False)
    out = widgets.Output()

    def redraw(_=None) -> None:
        out.clear_output(wait=True)
        with out:
            draw(step=slider.value, **selection())
            plt.show()

    updating = [False]  # while the slider's options change, one drawing at the end

    def new_options(_=None) -> None:
        options = list(steps(selection()))
        updating[0] = True
        try:
            with slider.hold_trait_notifications():
                slider.options = options
                slider.value = options[-1]
        finally:
            updating[0] = False
        redraw()

    for d in dropdowns.values():
        d.observe(new_options, names="value")
    slider.observe(lambda change: None if updating[0] else redraw(), names="value")
    redraw()
    return widgets.VBox([widgets.HBox(list(dropdowns.values())), slider, out])


def _draw_once(draw: Callable[[], None]) -> None:
    draw()
    plt.show()
