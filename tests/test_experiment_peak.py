"""The peak chapter's reproduction check: each claim's threshold on small hand-made results."""

import pandas as pd
import pytest
import torch

from racecar_core import report
from racecar_core.experiments import peak

WHERE = report.Setting("peak", "smoke", (0, 1, 2), "generated peak images", "1e-06")
BLACK = {"ssim": 0.26, "psnr": 10.0}


def frame(rr: dict, others: dict | None = None) -> pd.DataFrame:
    """Three seeds; RR gets ``rr`` (per-seed lists or a value), Std and Ort ``others``."""
    base = {"stamp_energy_v1": 0.1, "ssim": 0.3, "psnr": 11.0, "rec_cos_test": 0.1, "peaks_cos_test": 0.0,
            "own_peak_share": 0.5}
    rows = []
    for variant in ("Std", "Ort", "RR"):
        values = {**base, **(others or {}), **(rr if variant == "RR" else {})}
        for seed in range(3):
            rows.append({"variant": variant, "seed": seed,
                         **{k: v[seed] if isinstance(v, list) else v for k, v in values.items()}})
    return pd.DataFrame(rows)


def verdicts(f):
    return {c.key: c.verdict for c in peak.claims(f, BLACK, WHERE)}


CLEAR = {"stamp_energy_v1": 0.3, "ssim": 0.5, "psnr": 12.0, "rec_cos_test": 0.6, "peaks_cos_test": 0.4,
         "own_peak_share": 0.9}


def test_rr_ahead_in_every_seed_on_every_measure_reproduces_every_claim():
    f = frame(CLEAR)
    assert verdicts(f) == dict.fromkeys(("stamp", "reconstruction", "peak", "own_peak"), "reproduced")
    claims = peak.claims(f, BLACK, WHERE)
    assert all(c.chapter == "peak" and c.seeds == (0, 1, 2) for c in claims)
    sources = {c.key: c.source for c in claims}
    assert sources["stamp"].startswith("Fig. 3") and sources["peak"].startswith("Fig. 3")
    assert "not verified" in sources["reconstruction"] and sources["own_peak"] == report.OUR_EXTRAPOLATION


def test_one_losing_seed_is_enough_to_fail_a_claim():
    f = frame({**CLEAR, "stamp_energy_v1": [0.3, 0.3, 0.05], "peaks_cos_test": [0.4, 0.4, -0.1]})
    assert verdicts(f) == {"stamp": "not reproduced", "reconstruction": "reproduced", "peak": "not reproduced",
                           "own_peak": "reproduced"}


@pytest.mark.parametrize(("shares", "expected"), [
    ([0.8, 0.8, 1.0], "reproduced"),            # the threshold itself counts
    ([0.9, 0.9, 0.7], "partly reproduced"),     # one seed below 0.8, above chance on average
    ([0.6, 0.5, 0.5], "partly reproduced"),
    ([0.5, 0.5, 0.5], "not reproduced"),        # chance: a reconstruction unrelated to the class
    ([0.1, 0.2, 0.0], "not reproduced"),        # the other class's peak brighter
])
def test_own_peak_needs_the_share_in_every_seed_and_partly_above_chance(shares, expected):
    f = frame({**CLEAR, "own_peak_share": shares}, {"own_peak_share": 1.0})
    claim = next(c for c in peak.claims(f, BLACK, WHERE) if c.key == "own_peak")
    assert claim.verdict == expected
    assert f"≥ {peak.OWN_PEAK_SHARE}" in claim.test and "Std 1" in claim.measured  # Std's share does not enter


def test_reconstruction_is_partly_reproduced_when_only_some_measures_favour_rr():
    f = frame({**CLEAR, "ssim": 0.2})
    claim = next(c for c in peak.claims(f, BLACK, WHERE) if c.key == "reconstruction")
    assert claim.verdict == "partly reproduced" and "ssim no, psnr yes, rec_cos_test yes" in claim.test
    assert "all-black image: SSIM 0.26" in claim.measured


def test_claims_refuse_a_missing_arm():
    with pytest.raises(KeyError, match="Ort"):
        peak.claims(frame({})[lambda d: d.variant != "Ort"], BLACK, WHERE)


def test_lambda_claims_judge_each_row_on_its_own_seeds_and_fill_the_map():
    rows = {1e-7: frame({**CLEAR, "own_peak_share": 0.3}), 1e-6: frame(CLEAR),
            1e-5: frame({**CLEAR, "ssim": 0.2})[lambda d: d.seed < 2]}
    by_lambda = peak.lambda_claims(rows, BLACK, WHERE)
    table = report.verdict_map(by_lambda)
    assert list(table.columns) == ["1e-07", "1e-06", "1e-05"]
    assert table.loc["own_peak", "1e-07"] == "not reproduced" and table.loc["reconstruction", "1e-05"] == "partly reproduced"
    assert by_lambda[1e-5][0].seeds == (0, 1) and by_lambda[1e-5][0].lambda_rr == "1e-05"
    headline = report.with_lambda_map(peak.claims(frame(CLEAR), BLACK, WHERE), by_lambda)
    assert dict(next(c for c in headline if c.key == "own_peak").across_lambda)["1e-07"] == "not reproduced"


def test_bn_update_comparison_labels_the_arms_and_keeps_the_updated_seeds():
    main = frame(CLEAR).assign(test_acc=1.0)
    updated = main[(main.variant == "RR") & (main.seed < 2)].assign(test_acc=0.5)
    table = peak.bn_update_comparison(main, updated)
    assert set(table.seed) == {0, 1}
    assert list(dict.fromkeys(table.variant)) == ["Std", peak.BN_ARMS[False], peak.BN_ARMS[True]]
    assert table[table.variant == peak.BN_ARMS[True]].test_acc.tolist() == [0.5, 0.5]


def test_own_peak_share_and_spread_on_hand_made_reconstructions():
    from racecar_core.data.peak import stamp_box

    images = torch.zeros(4, 28, 28)
    for i, (bright, dim) in enumerate([(0, 1), (0, 1), (1, 0), (0, 1)]):  # brighter region per image
        images[i][stamp_box(bright)] = 10.0
        images[i][stamp_box(dim)] = 5.0
    rec = images.reshape(4, -1)
    labels = torch.tensor([0, 1, 1, 1])  # own brighter in images 0 and 2
    assert peak.own_peak_share(rec, labels) == 0.5
    own, other = peak.own_and_other_peak(rec, labels)
    assert own.tolist() == [10.0, 5.0, 10.0, 5.0] and other.tolist() == [5.0, 10.0, 5.0, 10.0]
    assert peak.peak_brightness(rec)[0].tolist() == [10.0, 5.0]
    assert peak.spread(rec[:2]) == 0.0 and peak.spread(rec) == 5.0
