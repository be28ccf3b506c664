"""The chapters' controls: live widgets in Jupyter, one static default view under batch execution."""

import ipywidgets
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from racecar_core import cli, static, widgets  # noqa: E402

FRAMES = {"RR": [(0, np.zeros(3)), (10, np.ones(3))]}


def controls(calls):
    return {
        "step_scrubber": lambda: widgets.step_scrubber(FRAMES, lambda images, step: calls.append(("step", step))),
        "count_slider": lambda: widgets.count_slider(lambda k: calls.append(("k", k)), maximum=5, value=3),
        "picker": lambda: widgets.picker(lambda step, variant: calls.append((variant, step)),
                                         steps=lambda sel: [5, 7], variant=["Std", "RR"]),
    }


@pytest.mark.parametrize("name", ["step_scrubber", "count_slider", "picker"])
def test_live_controls_are_widgets(name, monkeypatch):
    monkeypatch.delenv(widgets.STATIC_ENV, raising=False)
    assert not widgets.is_static()
    assert isinstance(controls([])[name](), ipywidgets.Widget)
    plt.close("all")


@pytest.mark.parametrize("name, expected", [("step_scrubber", ("step", 10)), ("count_slider", ("k", 3)),
                                            ("picker", ("Std", 7))])
def test_static_controls_draw_their_default_view_once(name, expected, monkeypatch):
    monkeypatch.setenv(widgets.STATIC_ENV, "1")
    calls = []
    assert controls(calls)[name]() is None
    assert calls == [expected]
    plt.close("all")


def test_the_command_line_and_the_widgets_agree_on_the_switch(monkeypatch):
    assert cli.STATIC_ENV == widgets.STATIC_ENV
    monkeypatch.setenv(widgets.STATIC_ENV, "0")
    assert not widgets.is_static()


def test_progress_bars_are_left_out_under_batch_execution(monkeypatch):
    """A bar saved into an executed notebook is a frozen widget that the book could only show with CDN scripts."""
    monkeypatch.setenv(widgets.STATIC_ENV, "1")
    assert static.progress_bar(range(3)).disable
    monkeypatch.setenv(widgets.STATIC_ENV, "0")
    assert not static.progress_bar(range(3)).disable
    assert static.progress_bar(range(3), enabled=False).disable


def test_library_progress_bars_go_through_the_static_switch():
    """A tqdm bar made directly in a notebook's code path is saved as a widget that the book can only show with
    scripts from a CDN (the weather chapter's simulation once did this): library code uses static.progress_bar.
    The sweep's bar is in the command line's process, not a notebook's, and may use tqdm directly."""
    import re
    from pathlib import Path

    root = Path(static.__file__).parent
    allowed = {root / "static.py", root / "sweep.py"}
    direct = [str(p.relative_to(root)) for p in root.rglob("*.py")
              if p not in allowed and re.search(r"^\s*(from tqdm|import tqdm)", p.read_text(encoding="utf-8"), re.M)]
    assert direct == []
