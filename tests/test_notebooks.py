"""A papermill smoke run of every chapter through the `racecar run` command."""

import json

import pytest

from racecar_core import cli, report
from racecar_core.experiments import chapters

pytestmark = pytest.mark.notebooks


@pytest.mark.parametrize("name", list(chapters()))
def test_chapter_runs_with_smoke_preset_and_records_provenance(name, tmp_path):
    out = tmp_path / name
    run = ["run", name, "--preset", "smoke", "--out", str(out), "--no-progress", "--cell-timeout", "600"]
    assert cli.main(run) == 0
    assert (out / f"{name}.ipynb").exists()
    record = json.loads((out / "metrics.json").read_text())
    assert record["chapter"] == name and record["params"]["preset"] == "smoke"
    assert record["code"]["package"] and "torch" in record["environment"]
    claims = [report.Claim.from_record(c) for c in record["results"]["claims"]]  # validates every field
    assert claims and all(c.chapter == name and c.preset == "smoke" and c.seeds for c in claims)
    # the trainings were checkpointed into the run folder; running again reloads them instead of retraining
    finished = sorted(p.parent.name for p in out.rglob("model.pt"))
    assert finished
    assert cli.main(run) == 0
    assert sorted(p.parent.name for p in out.rglob("model.pt")) == finished


def test_a_failing_chapter_leaves_no_notebook_or_metrics(tmp_path, monkeypatch, capsys):
    out = tmp_path / "peak"
    # a valid but impossible setting: NaN training stops the notebook after validation passed
    assert cli.main(["run", "peak", "--preset", "smoke", "-p", "lambda_rr", "1e40",
                     "--out", str(out), "--no-progress"]) == 1
    assert "failed" in capsys.readouterr().err
    assert not (out / "metrics.json").exists() and not (out / "peak.ipynb").exists()
