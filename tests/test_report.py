"""Summary tables, paired comparisons, claims as data, verdict maps, the scorecard and provenance records."""

import json

import numpy as np
import pandas as pd
import pytest

from racecar_core import report, runs

WHERE = report.Setting("peak", "smoke", (0, 1, 2), "generated peak images", "1e-06")


def claim(key="k", verdict="reproduced", **kw):
    return WHERE.claim(key, kw.pop("text", "RR does it"), source=kw.pop("source", "Fig. 4"), measured="m",
                       verdict=verdict, test="t", **kw)


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


def test_headline_means_per_group():
    frame = pd.DataFrame({"variant": ["A", "A", "B"], "x": [1.0, 3.0, 5.0], "y": [0.0, 0.0, 1.0]})
    assert report.headline(frame, ["x", "missing"]) == {"x A": 2.0, "x B": 5.0}


def test_per_variant_pairs_values_by_seed():
    frame = pd.DataFrame({"variant": ["A", "A", "B", "B"], "seed": [1, 0, 0, 1], "x": [10.0, 20.0, 1.0, 2.0]})
    values = report.per_variant(frame, "x")
    assert values["A"].tolist() == [20.0, 10.0] and values["B"].tolist() == [1.0, 2.0]
    with pytest.raises(KeyError, match="no runs of variant 'C'"):
        report.per_variant(frame, "x", ["C"])


def test_comparison_needs_the_mean_and_the_share_of_seeds():
    a, b = np.array([1.0, 1.0, 1.0, 0.0, 0.0]), np.array([0.5, 0.5, 0.5, 0.1, 0.1])
    assert not report.Comparison("q", "RR", "Std", a, b).holds  # 3 of 5 seeds: not every seed
    assert report.Comparison("q", "RR", "Std", a, b, min_share=0.6).holds
    assert report.Comparison("q", "a", "b", np.zeros(3), np.ones(3), lower_is_better=True).holds
    assert not report.Comparison("q", "a", "b", np.array([0.0, 9.0]), np.ones(2), lower_is_better=True,
                                 min_share=0.5).holds  # wins one seed, loses the mean
    with pytest.raises(ValueError, match="paired"):
        report.Comparison("q", "a", "b", np.zeros(3), np.zeros(4))
    with pytest.raises(ValueError, match="min_share"):
        report.Comparison("q", "a", "b", np.zeros(3), np.zeros(3), min_share=0)
    both = report.compare_all("q", {"RR": np.ones(2), "Std": np.zeros(2), "Ort": np.full(2, 2.0)}, "RR", ["Std", "Ort"])
    assert [c.holds for c in both] == [True, False] and report.verdict_of([c.holds for c in both]) == "partly reproduced"
    assert "RR 1 ± 0 vs Std 0 ± 0 (2/2 seeds higher)" in report.measured_text(both)


def test_claims_need_a_known_verdict_and_every_field():
    with pytest.raises(ValueError, match="verdict"):
        claim(verdict="sort of")
    with pytest.raises(ValueError, match="non-empty source"):
        claim(source=" ")
    with pytest.raises(ValueError, match="across λ"):
        claim(across_lambda=[(0.1, "maybe")])
    assert report.verdict(False, partly=True) == "partly reproduced"
    with pytest.raises(ValueError):
        report.verdict_of([])


def test_claim_round_trips_through_json():
    c = claim(paper="0.928", across_lambda=[(0.03, "not reproduced"), (1, "reproduced")], lambda_rr="1")
    again = report.Claim.from_record(json.loads(json.dumps(c.record())))
    assert again == c and again.seeds_text == "0–2 (3)" and again.lambda_text == "0.03: not; 1: reproduced"


def test_claims_markdown_keeps_every_text_whole():
    long = "x" * 300 + " | y"
    text = report.claims_markdown([claim(text=long, verdict="not reproduced")])
    assert "x" * 300 in text and "\\|" in text and "**not reproduced**" in text and "generated peak images" in text
    assert text.count("\n") == 2 and "Across λ" not in text
    assert "Across λ" in report.claims_markdown([claim(across_lambda=[(1, "reproduced")])])


def test_verdict_map_and_headline_across_lambda():
    by_lambda = {0.03: [claim("a", "not reproduced"), claim("b", "reproduced")],
                 1.0: [claim("a", "reproduced"), claim("b", "partly reproduced")]}
    table = report.verdict_map(by_lambda)
    assert list(table.columns) == ["0.03", "1"] and table.loc["a", "1"] == "reproduced"
    headline = report.with_lambda_map([claim("a", "not reproduced"), claim("c")], by_lambda)
    assert headline[0].across_lambda == (("0.03", "not reproduced"), ("1", "reproduced"))
    assert headline[1].across_lambda == ()  # a claim outside the map keeps its single verdict


def test_scorecard_gathers_every_run_in_book_order(tmp_path):
    report.save_run(str(tmp_path / "peak" / "cpu"), "peak", {"seeds": 3}, [claim("a"), claim("b", "not reproduced")])
    other = report.Setting("mnist", "cpu", (0,), "MNIST subset")
    report.save_run(str(tmp_path / "mnist" / "cpu"), "mnist", {}, [other.claim("x", "c", source="Fig. 2", measured="m",
                                                                               verdict="partly reproduced", test="t")])
    (tmp_path / "empty").mkdir()
    runs.save_metrics(tmp_path / "old", "peak", {}, {"acc": 1.0})  # a record without claims is skipped
    card = report.scorecard(tmp_path, chapters=["mnist", "peak"])
    assert [c.chapter for c in card.claims] == ["mnist", "peak", "peak"]
    assert card.counts() == {"reproduced": 1, "partly reproduced": 1, "not reproduced": 1, "not testable here": 0}
    text = card.markdown(link=lambda chapter: f"[{chapter}]({chapter}.html)")
    assert "[peak](peak.html)" in text and "3 claims." in text and "| mnist |" in card.markdown()
    assert list(card.frame().columns) == list(report.SCORECARD_COLUMNS)
    with pytest.raises(FileNotFoundError, match="not a folder"):
        report.scorecard(tmp_path / "nope")


def test_metrics_record_carries_provenance(tmp_path):
    path = runs.save_metrics(tmp_path, "peak", {"seeds": 2}, {"acc": 1.0})
    record = json.loads(path.read_text())
    assert record["params"] == {"seeds": 2} and record["results"] == {"acc": 1.0}
    assert record["code"]["package"] and "git_commit" in record["code"] and record["environment"]["torch"]
    assert runs.save_metrics("", "peak", {}, {}) is None
    assert not list(tmp_path.glob("*.tmp"))
