"""The GAN chapter's experiment: parameters and data checks, the claims' thresholds on hand-made results, the
verdict map across λ, and a tiny real run (arms, shared Std, resume from the run folder)."""

import numpy as np
import pandas as pd
import pytest
import torch

from racecar_core import report
from racecar_core.chapters import MissingDataError, ParameterError
from racecar_core.experiments import gan

pytestmark = pytest.mark.usefixtures("one_torch_thread")

SEEDS = (0, 1, 2)


def rows(arm, lam=0.1, *, frechet=10.0, kernel=1.0, precision=0.5, recall=0.5, class_entropy=3.0,
         g_reverse_error=0.5, d_reverse_error=0.9, jitter=(0.0, 0.01, -0.01)):
    """One arm's final rows over SEEDS; ``jitter`` is added to every metric per seed."""
    return [{"arm": arm, "lambda": 0.0 if arm == "Std" else lam, "seed": s, "frechet": frechet + j,
             "kernel": kernel + j, "precision": precision + j, "recall": recall + j, "class_entropy": class_entropy + j,
             "classes_covered": 10.0, "g_reverse_error": g_reverse_error + j, "d_reverse_error": d_reverse_error + j}
            for s, j in zip(SEEDS, jitter)]


def frame(**arms):
    """Std at the defaults, each named RR arm with the given overrides (``RR_G`` for RR-G, ...)."""
    out = rows("Std")
    for arm in gan.RR_ARMS:
        out += rows(arm, **arms.get(arm.replace("-", "_"), {}))
    return pd.DataFrame(out)


def where(lam=0.1):
    return report.Setting("gan", "smoke", SEEDS, "hand-made", report.format_lambda(lam))


def by_key(claims):
    return {c.key: c for c in claims}


BETTER = {"frechet": 5.0, "kernel": 0.5, "precision": 0.6, "recall": 0.6, "class_entropy": 3.2}
WORSE = {"frechet": 20.0, "kernel": 2.0, "precision": 0.4, "recall": 0.4, "class_entropy": 2.5}


def test_presets_and_parameter_checks():
    cfg = gan.CHAPTER.configure("cpu")
    assert cfg.seeds >= 3 and cfg.dataset == "mnist5k" and gan.lambda_values(cfg) == [0.1, 1.0]
    assert gan.CHAPTER.configure("smoke").steps <= 50
    assert gan.lambda_values(gan.CHAPTER.configure("smoke", lambda_rr=0.3, lambda_grid="1, 0.03,1")) == [0.03, 0.3, 1.0]
    with pytest.raises(ParameterError, match="lambda_rr.*> 0"):
        gan.CHAPTER.configure(lambda_rr=0.0)
    with pytest.raises(ParameterError, match="lambda_grid.*comma-separated"):
        gan.CHAPTER.configure(lambda_grid="0.1,x")
    with pytest.raises(ParameterError, match="lambda_grid.*> 0"):
        gan.CHAPTER.configure(lambda_grid="0.1,-1")
    with pytest.raises(ParameterError, match="samples must be at most 1000"):
        gan.CHAPTER.configure(samples=1001)
    with pytest.raises(ParameterError, match="classifier_per_class must be below 400"):
        gan.CHAPTER.configure(classifier_per_class=400)
    with pytest.raises(ParameterError, match="samples.*k-NN"):
        gan.CHAPTER.configure("smoke", samples=3)
    with pytest.raises(ParameterError, match="one of"):
        gan.CHAPTER.configure(dataset="cifar10")
    with pytest.raises(ParameterError, match="width"):
        gan.CHAPTER.configure(width=0)


def test_missing_data_is_refused_with_instructions(tmp_path):
    with pytest.raises(MissingDataError, match="needs data_dir.*train-images-idx3-ubyte.*mnist5k needs no files"):
        gan.CHAPTER.configure(dataset="mnist")
    with pytest.raises(MissingDataError, match="full MNIST.*data_dir"):  # the paper preset reads the user's files
        gan.CHAPTER.configure("paper")
    with pytest.raises(MissingDataError, match="does not exist"):
        gan.CHAPTER.configure(dataset="mnist", data_dir=str(tmp_path / "nowhere"))
    with pytest.raises(MissingDataError, match="t10k-images-idx3-ubyte.*not found"):
        gan.CHAPTER.configure(dataset="mnist", data_dir=str(tmp_path))
    with pytest.raises(MissingDataError, match="dataset-fashion-mnist"):
        gan.CHAPTER.configure(dataset="fashion", data_dir=str(tmp_path))
    with pytest.raises(ParameterError, match="mnist5k.*reads no folder"):
        gan.CHAPTER.configure(data_dir=str(tmp_path))


def test_a_clear_win_on_every_metric_is_reproduced():
    claims = by_key(gan.claims_at(frame(RR_G=BETTER, RR_D=BETTER, RR_both=BETTER), where()))
    assert {claims[a].verdict for a in gan.RR_ARMS} == {"reproduced"}
    assert claims["mode_collapse"].verdict == "reproduced"
    assert "5/5 hold" in claims["RR-G"].test and claims["RR-G"].source.startswith("abstract")
    assert claims["mode_collapse"].source == report.OUR_EXTRAPOLATION


def test_worse_everywhere_is_not_reproduced_and_a_mixed_result_is_partly():
    mixed = {**BETTER, "recall": 0.4, "class_entropy": 2.5}  # 3 of 5 better
    two = {**WORSE, "frechet": 5.0, "kernel": 0.5}  # 2 of 5 better
    claims = by_key(gan.claims_at(frame(RR_G=WORSE, RR_D=mixed, RR_both=two), where()))
    assert claims["RR-G"].verdict == "not reproduced" and "0/5 hold" in claims["RR-G"].test
    assert claims["RR-D"].verdict == "partly reproduced" and "3/5 hold" in claims["RR-D"].test
    assert claims["RR-both"].verdict == "not reproduced" and "2/5 hold" in claims["RR-both"].test
    assert claims["mode_collapse"].verdict == "not reproduced"


def test_a_better_mean_needs_the_seeds_too():
    """RR-G wins on average through one seed only (1 of 3 < 80 %): no metric holds."""
    lucky = rows("RR-G", frechet=10.0, kernel=1.0, precision=0.5, recall=0.5, class_entropy=3.0, jitter=(0.3, 0.005, -0.005))
    data = pd.DataFrame(rows("Std") + lucky + rows("RR-D") + rows("RR-both"))
    tests = gan.comparisons(data, "RR-G")
    higher = [t for t in tests if not t.lower_is_better]
    assert all(t.subject_values.mean() > t.other_values.mean() for t in higher)
    assert not any(t.holds for t in tests)
    assert gan.arm_verdict([t.holds for t in tests]) == "not reproduced"


def test_lower_is_better_for_the_distances_only():
    directions = {c: lower for c, _, lower in gan.METRICS}
    assert directions == {"frechet": True, "kernel": True, "precision": False, "recall": False, "class_entropy": False}
    assert gan.arm_verdict([True] * 5) == "reproduced" and gan.arm_verdict([True] * 3 + [False] * 2) == "partly reproduced"
    assert gan.arm_verdict([True, True, False, False, False]) == "not reproduced"


def test_reverse_claim_needs_every_seed():
    good = frame(RR_G={"g_reverse_error": 0.1}, RR_D={"d_reverse_error": 0.5})
    assert by_key(gan.claims_at(good, where()))["reverse"].verdict == "reproduced"
    one_bad = good.copy()
    one_bad.loc[(one_bad.arm == "RR-D") & (one_bad.seed == 2), "d_reverse_error"] = 2.0
    assert by_key(gan.claims_at(one_bad, where()))["reverse"].verdict == "partly reproduced"


def test_verdicts_across_lambda_and_the_headline():
    std = rows("Std")
    at_small = pd.DataFrame(std + sum((rows(a, 0.1, **WORSE) for a in gan.RR_ARMS), []))
    at_large = pd.DataFrame(std + sum((rows(a, 1.0, **BETTER) for a in gan.RR_ARMS), []))
    claims = by_key(gan.claims({0.1: at_small, 1.0: at_large}, where(), 0.1))
    assert claims["RR-G"].verdict == "not reproduced" and claims["RR-G"].lambda_rr == "0.1"
    assert dict(claims["RR-G"].across_lambda) == {"0.1": "not reproduced", "1": "reproduced"}
    table = report.verdict_map(gan.claims_by_lambda({0.1: at_small, 1.0: at_large}, where()))
    assert list(table.columns) == ["0.1", "1"] and table.loc["RR-D", "1"] == "reproduced"
    with pytest.raises(KeyError, match="headline"):
        gan.claims({1.0: at_large}, where(), 0.1)
    with pytest.raises(ValueError, match="same seeds"):
        gan.claims_by_lambda({0.1: at_small, 1.0: at_large[at_large.seed < 2]}, where())


def test_metric_table_has_every_arm_and_the_floor():
    table = gan.metric_table(frame(RR_G=BETTER), {"frechet": 1.5, "kernel": 0.01, "precision": 0.9})
    assert list(table.index) == [*gan.ARM_NAMES, "real vs real (floor)"]
    assert table.loc["real vs real (floor)", "frechet"] == "1.5" and table.loc["real vs real (floor)", "recall"] == "–"
    assert table.loc["RR-G", "frechet"].startswith("5.0") and table.loc["Std", "n"] == 3


def test_split_train_is_disjoint_and_per_class():
    labels = torch.tensor([0, 1, 0, 1, 0, 1, 2, 2])
    first, rest = gan.split_train(labels, 2)
    assert sorted(first.tolist()) == [0, 1, 2, 3, 6, 7] and sorted(rest.tolist()) == [4, 5]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    cfg = gan.CHAPTER.configure("smoke", seeds=2, steps=4, snapshot_every=2, samples=50, classifier_steps=5,
                                lambda_grid="1")
    run_dir = tmp_path_factory.mktemp("gan")
    data = gan.load_data(cfg)
    space = gan.feature_space(cfg, data, run_dir=str(run_dir))
    return cfg, data, space, run_dir, gan.run(cfg, data, space, run_dir=str(run_dir), progress=False)


def test_run_trains_std_once_and_every_rr_arm_at_every_lambda(tiny):
    cfg, _, space, run_dir, grid = tiny
    assert grid.lambdas == [0.1, 1.0] and 0 <= space.accuracy <= 1
    f = grid.frame
    assert len(f) == 2 * (1 + 3 * 2) and set(f[f.arm == "Std"]["lambda"]) == {0.0}
    assert sorted(p.name for p in run_dir.iterdir() if p.name.startswith("Std")) == ["Std-seed0", "Std-seed1"]
    at = grid.at(1.0)
    assert sorted(at.arm.unique()) == sorted(gan.ARM_NAMES) and set(at[at.arm != "Std"]["lambda"]) == {1.0}
    history = grid.history()
    assert sorted(history.step.unique()) == [0, 2, 4] and np.isfinite(history.frechet).all()
    frames = grid.sample_frames(0)
    assert [s for s, _ in frames["RR-G"]] == [0, 2, 4] and frames["Std"][0][1].shape == (gan.N_SHOW, 28, 28)
    # the same seed starts every arm from the same generator: identical samples at step 0
    assert np.array_equal(frames["Std"][0][1], frames["RR-both"][0][1])
    claims = gan.claims(grid.by_lambda(), gan.setting(cfg, gan.data_name(cfg), space.accuracy), cfg.lambda_rr)
    assert {c.key for c in claims} == {"RR-G", "RR-D", "RR-both", "mode_collapse", "reverse"}
    assert all(len(c.across_lambda) == 2 for c in claims) and "not FID" in claims[0].data


def test_a_second_run_loads_the_trained_runs(tiny):
    cfg, data, space, run_dir, grid = tiny
    again = gan.run(cfg, data, space, run_dir=str(run_dir), progress=False)
    pd.testing.assert_frame_equal(again.frame, grid.frame)
    assert all(r.resumed_from > 0 for r in again.runs.values())  # loaded, not trained again


def test_figures_and_reverse_measures(tiny):
    import matplotlib.pyplot as plt

    cfg, _, space, _, grid = tiny
    rows_ = gan.interpolations(grid, seed=0, pairs=1, points=5)
    assert set(rows_) == {f"{a} #1" for a in gan.ARM_NAMES} and rows_["Std #1"].shape == (5, 28, 28)
    z, z_rec = gan.latent_reconstruction(grid.model("RR-G"))
    assert z.shape == z_rec.shape == (256 * cfg.z_dim,)
    rec = gan.discriminator_reconstructions(grid, space.reference_images[:4])
    assert set(rec) == {"real", "Std", "RR-D", "RR-both"} and rec["RR-D"].shape == (4, 28, 28)
    for fig in (gan.latent_figure(grid), gan.metrics_over_training_figure(grid.history(), space.floor, "t")):
        plt.close(fig)
