"""Summary tables, claims and provenance records."""

import json

import pandas as pd
import pytest

from racecar_core import report, runs


def test_mean_sd_rounds_to_the_precision_of_the_spread():
    assert report.mean_sd([0.2640, 0.2642, 0.2644]) == "0.2642 ± 0.0002"
    assert report.mean_sd([0.26400, 0.26401]) == "0.2640 ± <0.0001"
    assert report.mean_sd([12.6, 12.64, 12.58]) == "12.607 ± 0.031"
    assert report.mean_sd([1.0, 1.0]) == "1 ± 0"
    assert report.mean_sd([0.5]) == "0.5"
    assert report.mean_sd([100.0, 300.0]) == "200 ± 141"


def test_summarize_groups_and_counts():
    frame = pd.DataFrame({"variant": ["A", "A", "B"], "x": [1.0, 3.0, 5.0]})
    table = report.summarize(frame, ["x"])
    assert table.loc["A", "x"] == "2.0 ± 1.4" and table.loc["B", "x"] == "5" and list(table["n"]) == [2, 1]


def test_claims_need_a_known_verdict():
    with pytest.raises(ValueError):
        report.Claim("c", "m", "sort of")
    assert report.verdict(False, partly=True) == "partly reproduced"
    table = report.claims_table([report.Claim("c", "m", "reproduced")])
    assert list(table.columns) == ["Claim", "Measured", "Verdict", "Note"]


def test_metrics_record_carries_provenance(tmp_path):
    path = runs.save_metrics(tmp_path, "peak", {"seeds": 2}, {"acc": 1.0})
    record = json.loads(path.read_text())
    assert record["params"] == {"seeds": 2} and record["results"] == {"acc": 1.0}
    assert record["code"]["package"] and "git_commit" in record["code"] and record["environment"]["torch"]
    assert runs.save_metrics("", "peak", {}, {}) is None
    assert not list(tmp_path.glob("*.tmp"))


def test_claims_markdown_keeps_every_text_whole():
    long = "x" * 300 + " | y"
    text = report.claims_markdown([report.Claim(long, "m", "not reproduced", "n")])
    assert "x" * 300 in text and "\\|" in text and "**not reproduced**" in text
    assert text.count("\n") == 2
