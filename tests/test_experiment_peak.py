"""The peak chapter's reproduction check: each claim's threshold on small hand-made results."""

import pandas as pd
import pytest

from racecar_core import report
from racecar_core.experiments import peak

WHERE = report.Setting("peak", "smoke", (0, 1, 2), "generated peak images", "1e-06")
BLACK = {"ssim": 0.26, "psnr": 10.0}


def frame(rr: dict, others: dict | None = None) -> pd.DataFrame:
    """Three seeds; RR gets ``rr`` (per-seed lists or a value), Std and Ort ``others``."""
    base = {"stamp_energy_v1": 0.1, "ssim": 0.3, "psnr": 11.0, "rec_cos_test": 0.1, "peak_cos_test": 0.0}
    rows = []
    for variant in ("Std", "Ort", "RR"):
        values = {**base, **(others or {}), **(rr if variant == "RR" else {})}
        for seed in range(3):
            rows.append({"variant": variant, "seed": seed,
                         **{k: v[seed] if isinstance(v, list) else v for k, v in values.items()}})
    return pd.DataFrame(rows)


def verdicts(f):
    return {c.key: c.verdict for c in peak.claims(f, BLACK, WHERE)}


def test_rr_ahead_in_every_seed_on_every_measure_reproduces_every_claim():
    f = frame({"stamp_energy_v1": 0.3, "ssim": 0.5, "psnr": 12.0, "rec_cos_test": 0.6, "peak_cos_test": 0.4})
    assert verdicts(f) == dict.fromkeys(("stamp", "reconstruction", "peak"), "reproduced")
    claims = peak.claims(f, BLACK, WHERE)
    assert all(c.chapter == "peak" and c.source.startswith("Fig. 3") and c.seeds == (0, 1, 2) for c in claims)


def test_one_losing_seed_is_enough_to_fail_a_claim():
    f = frame({"stamp_energy_v1": [0.3, 0.3, 0.05], "ssim": 0.5, "psnr": 12.0, "rec_cos_test": 0.6,
               "peak_cos_test": [0.4, 0.4, -0.1]})
    assert verdicts(f) == {"stamp": "not reproduced", "reconstruction": "reproduced", "peak": "not reproduced"}


def test_reconstruction_is_partly_reproduced_when_only_some_measures_favour_rr():
    f = frame({"stamp_energy_v1": 0.3, "ssim": 0.2, "psnr": 12.0, "rec_cos_test": 0.6, "peak_cos_test": 0.4})
    claim = next(c for c in peak.claims(f, BLACK, WHERE) if c.key == "reconstruction")
    assert claim.verdict == "partly reproduced" and "ssim no, psnr yes, rec_cos_test yes" in claim.test
    assert "all-black image: SSIM 0.26" in claim.measured


def test_claims_refuse_a_missing_arm():
    with pytest.raises(KeyError, match="Ort"):
        peak.claims(frame({})[lambda d: d.variant != "Ort"], BLACK, WHERE)
