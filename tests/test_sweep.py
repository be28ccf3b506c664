"""Parameter sweeps on Dask: the grid, its validation, the summary and figure, and a real 2-worker sweep."""

import json
import os

import pandas as pd
import pytest

from racecar_core import cli, report, sweep
from racecar_core.chapters import ParameterError
from racecar_core.experiments import get_chapter

PEAK = get_chapter("peak")


def test_grid_is_the_product_of_the_values_each_checked_before_any_work():
    grid = sweep.parse_grid(PEAK, ["lambda_rr=1e-6,1e-5", "seeds=1,2"])
    points = sweep.expand(PEAK, "smoke", grid)
    assert [p.values for p in points] == [{"lambda_rr": 1e-6, "seeds": 1}, {"lambda_rr": 1e-6, "seeds": 2},
                                          {"lambda_rr": 1e-5, "seeds": 1}, {"lambda_rr": 1e-5, "seeds": 2}]
    assert points[0].name == "lambda_rr=1e-06-seeds=1" and points[0].texts == {"lambda_rr": "1e-6", "seeds": "1"}
    assert sweep.expand(PEAK, "smoke", {})[0].name == "default"


@pytest.mark.parametrize("pairs,message", [
    (["lambda_rr=1e-6,-1"], "must be >= 0.0"),
    (["lambdaa=1"], "no parameter 'lambdaa'"),
    (["lambda_rr="], "comma-separated values"),
    (["lambda_rr=1,,2"], "empty or repeated"),
    (["lambda_rr=1,1"], "empty or repeated"),
    (["lambda_rr=1", "lambda_rr=2"], "given twice"),
    (["steps=ten"], "expects int"),
])
def test_bad_grids_are_refused(pairs, message):
    with pytest.raises(ParameterError, match=message):
        sweep.expand(PEAK, "smoke", sweep.parse_grid(PEAK, pairs))


def test_cli_refuses_a_bad_sweep_before_any_work(capsys):
    before = sorted(sweep.SWEEPS.rglob("*")) if sweep.SWEEPS.exists() else []
    assert cli.main(["sweep", "peak", "-p", "lambda_rr", "1e-6,-1e-5", "--preset", "smoke"]) == 2
    assert "must be >= 0.0" in capsys.readouterr().err
    assert cli.main(["sweep", "peak", "--workers", "0"]) == 2
    assert cli.main(["sweep", "peak", "-p", "seeds", "1,2", "--seeds", "3"]) == 2
    assert "not both" in capsys.readouterr().err
    assert (sorted(sweep.SWEEPS.rglob("*")) if sweep.SWEEPS.exists() else []) == before


def write_point(folder, point, lam, acc, verdict):
    where = report.Setting("peak", "smoke", (0,), "data")
    claims = [where.claim("stamp", "c", source="s", measured="m", verdict=verdict, test="t")]
    report.save_run(str(folder / "points" / point.name), "peak", {"lambda_rr": lam}, claims, headline={"test_acc RR": acc})


def test_summary_has_parameters_status_headline_and_verdicts(tmp_path):
    points = sweep.expand(PEAK, "smoke", {"lambda_rr": ["1e-6", "1e-5", "1e-4"]})
    write_point(tmp_path, points[0], 1e-6, 0.9, "reproduced")
    write_point(tmp_path, points[2], 1e-4, 0.8, "partly reproduced")
    frame = sweep.summary(points, tmp_path, {points[1].name: "failed"})
    assert frame.status.tolist() == ["finished", "failed", "finished"]
    assert frame["test_acc RR"].iloc[[0, 2]].tolist() == [0.9, 0.8] and pd.isna(frame["test_acc RR"].iloc[1])
    assert frame["verdict:stamp"].iloc[[0, 2]].tolist() == ["reproduced", "partly reproduced"]
    assert sweep.failed_points(frame) == [points[1].name]
    fig = sweep.summary_figure(frame, ["lambda_rr"], "peak")
    assert fig is not None and fig.axes[0].get_xscale() == "log" and fig.axes[0].get_title() == "test_acc RR"
    assert sweep.summary_figure(frame.drop(columns=["test_acc RR"]), ["lambda_rr"], "peak") is None


@pytest.mark.notebooks
def test_a_two_worker_sweep_reports_a_failure_finishes_the_rest_and_resumes(capsys):
    """A real sweep on a 2-worker local Dask cluster: λ = 1e40 makes the loss non-finite (the point fails), the
    other point finishes; a second run skips the finished point and retries the failed one."""
    name = f"test-{os.getpid()}"
    argv = ["sweep", "mnist", "-p", "lambda_rr", "1e-5,1e40", "--preset", "smoke", "--workers", "2", "--name", name,
            "--no-progress"]
    folder = sweep.SWEEPS / f"mnist-{name}"
    try:
        assert cli.main(argv) == 1
        out = capsys.readouterr()
        assert "Dask dashboard http://" in out.out and "lambda_rr=1e+40 failed" in out.out + out.err
        frame = pd.read_csv(folder / "summary.csv")
        assert dict(zip(frame.point, frame.status)) == {"lambda_rr=1e-05": "finished", "lambda_rr=1e+40": "failed"}
        assert set(frame.columns) >= {"lambda_rr", "verdict:rowspace", "verdict:leading", "verdict:reconstruction"}
        finished = folder / "points" / "lambda_rr=1e-05" / "metrics.json"
        stamp = finished.stat().st_mtime_ns
        assert "non-finite loss" in (folder / "points" / "lambda_rr=1e+40" / sweep.LOG_NAME).read_text()
        assert json.loads((folder / "sweep.json").read_text())["grid"] == {"lambda_rr": ["1e-5", "1e40"]}
        assert cli.main(argv) == 1  # again: the finished point is skipped, the failed one retried (and fails again)
        assert "2 points, 1 already finished" in capsys.readouterr().out
        assert finished.stat().st_mtime_ns == stamp
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)
