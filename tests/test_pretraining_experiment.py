"""The pretraining experiments' library half: MLP arms after Erhan et al., convolutional arms after Dong et al."""

import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from racecar_core.conv_autoencoder import SkipAutoencoder, conv_encoder
from racecar_core.corruption import Corruption
from racecar_core.experiments import pretraining as P
from racecar_core.metrics import function_spread
from racecar_core.training import seed_everything

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TINY_MLP = P.MLPSettings(width=8, steps=4, batch_size=10, eval_every=2, pretrain_steps=3)
TINY_CONV = P.ConvSettings(channels=(2, 4), pretrain_steps=2, pretrain_batch=8, steps=3, batch_size=8, eval_every=3)


@pytest.fixture(scope="module")
def mlp_data():
    return P.load_mlp_data("mnist5k", train_per_class=3, test_per_class=2, val_per_class=2)


@pytest.fixture(scope="module")
def conv_data():
    return P.load_conv_data("mnist5k", labels_per_class=2, test_per_class=2)


def test_mlp_data_is_flat_balanced_and_disjoint(mlp_data):
    d = mlp_data
    assert d.x_train.shape == (30, 784) and d.x_test.shape == (20, 784) and d.x_val.shape == (20, 784)
    assert d.x_train.dtype == torch.float32 and 0 <= float(d.x_train.min()) and float(d.x_train.max()) <= 1
    assert torch.bincount(d.y_train).tolist() == [3] * 10 and torch.bincount(d.y_test).tolist() == [2] * 10
    rows = lambda x: {tuple(r.tolist()) for r in x}  # noqa: E731
    assert not rows(d.x_train) & rows(d.x_val) and not rows(d.x_train) & rows(d.x_test)
    assert set(d.splits()) == {"train", "test", "val"}
    assert set(P.load_mlp_data("mnist5k", 1, 1).splits()) == {"train", "test"}
    with pytest.raises(ValueError, match="at most 400"):
        P.load_mlp_data("mnist5k", train_per_class=390, val_per_class=20)
    with pytest.raises(ValueError, match="dataset must be"):
        P.load_mlp_data("cifar10")


def test_arms_of_one_seed_start_from_the_same_weights_and_log_nll(mlp_data):
    runs = {arm: P.train_mlp(arm, 2, 5, mlp_data, TINY_MLP) for arm in P.MLP_ARMS}
    first = {arm: run.result.history.iloc[0] for arm, run in runs.items()}
    assert first["Std"]["train_nll"] == first["RR"]["train_nll"]  # same initial weights
    assert first["DAE"]["train_nll"] != first["Std"]["train_nll"]  # pretrained before supervised training
    history = runs["RR"].result.history
    assert list(history.step) == [0, 2, 4]
    assert {"train_nll", "test_nll", "val_nll", "train_acc", "test_acc", "rr"} <= set(history.columns)
    assert "rr" not in runs["Std"].result.history.columns
    pre = runs["DAE"].pretrain_history
    assert sorted(pre.layer.unique()) == [0, 1] and pre.step.max() == 3  # the hidden layers only
    assert runs["DAE"].seconds["pretrain_cpu"] > 0 and runs["Std"].seconds["pretrain_cpu"] == 0
    assert runs["Std"].test_probabilities.shape == (20, 10)
    assert torch.allclose(runs["Std"].test_probabilities.sum(1), torch.ones(20))
    with pytest.raises(ValueError, match="arm must be one of"):
        P.train_mlp("Pre", 1, 0, mlp_data, TINY_MLP)


def test_run_mlp_tables_and_reload(mlp_data, tmp_path):
    results = P.run_mlp(mlp_data, TINY_MLP, seeds=[0, 1], hidden_layers=(1, 3), run_dir=tmp_path, progress=False)
    assert len(results.runs) == 12
    traj = results.trajectories()
    assert len(traj) == 12 * 3 and list(traj.columns[:4]) == ["hidden_layers", "arm", "seed", "step"]
    spread = results.spread()
    assert len(spread) == 6 and (spread.seeds == 2).all()
    probs = torch.stack([results.runs[(3, "DAE", s)].test_probabilities for s in (0, 1)])
    row = spread[(spread.hidden_layers == 3) & (spread.arm == "DAE")].iloc[0]
    assert row.disagreement == pytest.approx(function_spread(probs)["disagreement"])
    assert results.summary().shape == (6, 6)
    assert (tmp_path / "L3" / "DAE-seed1" / "pretrain" / "layer2" / "model.pt").exists()
    again = P.run_mlp(mlp_data, TINY_MLP, seeds=[0, 1], hidden_layers=(1, 3), run_dir=tmp_path, progress=False)
    assert all(r.result.resumed_from > 0 for r in again.runs.values())
    pd.testing.assert_frame_equal(again.trajectories(), traj)
    with pytest.raises(ValueError, match="unknown arms"):
        P.run_mlp(mlp_data, TINY_MLP, seeds=[0], arms=("Std", "SRIP"))


def test_conv_data_has_few_labels_and_all_images_unlabelled(conv_data):
    d = conv_data
    assert d.x_unlabelled.shape == (4000, 32, 32, 3) and d.x_train.shape == (20, 32, 32, 3)
    assert d.x_test.shape == (20, 32, 32, 3) and np.bincount(d.y_train).tolist() == [2] * 10
    assert "CIFAR" not in d.name and "20 labels" in d.name and not d.flip
    x = d.tensor(d.x_unlabelled[:500])
    assert x.shape == (500, 3, 32, 32) and abs(float(x.mean())) < 0.2
    with pytest.raises(ValueError, match="labels_per_class must be in 1..400"):
        P.load_conv_data("mnist5k", labels_per_class=401)


def test_encoders_of_every_conv_arm_start_alike():
    seed_everything(3)
    fresh = conv_encoder((2, 4))
    seed_everything(3)
    ae = SkipAutoencoder((2, 4), skips=False)
    assert all(torch.equal(p, q) for p, q in zip(fresh.parameters(), ae.encoder.parameters()))


def test_run_conv_trains_every_arm(conv_data, tmp_path):
    results = P.run_conv(conv_data, TINY_CONV, seeds=[0], run_dir=tmp_path, progress=False)
    frame = results.frame
    assert list(frame.arm) == list(P.CONV_ARMS) and frame.test_acc.between(0, 1).all()
    assert (frame.set_index("arm").pretrain_cpu[["AE", "AE+skip"]] > 0).all()
    assert sorted(results.pretraining) == [(False, 0), (True, 0)]
    assert {"mse", "restore_mse"} <= set(results.pretraining[(True, 0)].history.columns)
    assert "rr" in results.runs[("RR", 0)].history.columns and "test_acc" in results.runs[("AE", 0)].history.columns
    # fine-tuning starts from the pretrained encoder: AE and Random begin with different test NLLs
    assert results.runs[("AE", 0)].history.test_nll.iloc[0] != results.runs[("Random", 0)].history.test_nll.iloc[0]
    assert (tmp_path / "pretrain-skip-seed0" / "model.pt").exists()


def test_settings_identity_is_json_like():
    ident = dataclasses.replace(TINY_CONV, corruption=Corruption("block", 8)).identity()
    assert ident["channels"] == [2, 4] and ident["corruption"] == {"kind": "block", "amount": 8.0}


# --------------------------------------------------------------------------------------------------
# Measures: NLL over training, spread of the learned functions
# --------------------------------------------------------------------------------------------------


def test_function_spread_on_a_hand_made_example():
    p = torch.tensor([[[1.0, 0.0], [0.6, 0.4]],  # model 0 on two inputs
                      [[1.0, 0.0], [0.4, 0.6]],  # model 1: disagrees on input 1
                      [[0.0, 1.0], [0.6, 0.4]]])  # model 2: disagrees with 0 on input 0, with 1 on both
    spread = function_spread(p)
    assert spread["disagreement"] == pytest.approx((1 / 2 + 1 / 2 + 1) / 3)
    d = lambda a, b: float((a - b).norm())  # noqa: E731
    pairs = [(0, 1), (0, 2), (1, 2)]
    expected = np.mean([(d(p[i, 0], p[j, 0]) + d(p[i, 1], p[j, 1])) / 2 for i, j in pairs])
    assert spread["distance"] == pytest.approx(expected)
    squared = np.mean([(d(p[i, n], p[j, n]) ** 2) for i, j in pairs for n in (0, 1)])
    assert spread["variance"] == pytest.approx(squared / 2 * 2 / 3)  # half the mean squared distance × (S-1)/S
    assert function_spread(p[[0, 0]]) == {"disagreement": 0.0, "distance": 0.0, "variance": 0.0}
    with pytest.raises(ValueError, match="S >= 2"):
        function_spread(p[:1])


def test_classification_evaluator_gives_nll_and_accuracy_per_split():
    from racecar_core.metrics import classification_evaluator

    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.zero_()
        model.bias.copy_(torch.tensor([0.0, np.log(3.0)]))  # p = (1/4, 3/4) for every input
    x, y = torch.randn(5, 3), torch.tensor([1, 1, 1, 0, 0])
    out = classification_evaluator({"train": (x, y), "test": (x[:2], y[:2])}, batch=2)(model)
    assert out["train_nll"] == pytest.approx((3 * -np.log(0.75) - 2 * np.log(0.25)) / 5)
    assert out["train_acc"] == pytest.approx(0.6) and out["test_acc"] == 1.0
    assert out["test_nll"] == pytest.approx(-np.log(0.75))


def test_conv_data_reads_cifar10_through_the_cifar_loaders(tmp_path, monkeypatch):
    from test_resnet import stand_in_checksums, write_fake_cifar

    write_fake_cifar(tmp_path, per_class=5)
    stand_in_checksums(tmp_path, monkeypatch)
    data = P.load_conv_data("cifar10", labels_per_class=4, test_per_class=0, root=str(tmp_path))
    assert data.name == "CIFAR-10, 40 labels" and data.flip and data.classes[:2] == ("c0", "c1")
    assert data.x_unlabelled.shape == (250, 32, 32, 3) and data.x_train.shape == (40, 32, 32, 3)
    assert data.x_test.shape == (50, 32, 32, 3)  # test_per_class=0: the whole test split
    with pytest.raises(FileNotFoundError, match="cifar10"):
        P.load_conv_data("cifar10", root=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match="needs root"):
        P.load_conv_data("cifar10")


@pytest.mark.parametrize("make,message", [
    (lambda: P.MLPSettings(steps=0), "MLPSettings.steps must be an int >= 1"),
    (lambda: P.MLPSettings(pretrain_steps=-1), "pretrain_steps must be an int >= 0"),
    (lambda: P.MLPSettings(activation="gelu"), "activation must be one of"),
    (lambda: P.MLPSettings(lr=0.0), "lr must be > 0"),
    (lambda: P.ConvSettings(channels=()), "channels must be one or more"),
    (lambda: P.ConvSettings(lambda_rr=-1.0), "lambda_rr must be >= 0"),
])
def test_bad_settings_are_refused(make, message):
    with pytest.raises(ValueError, match=message):
        make()
