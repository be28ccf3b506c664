"""CIFAR ResNets: shapes, the reverse pass through residual blocks, RR training, the chapter's checks and data."""

from __future__ import annotations

import hashlib
import pickle

import numpy as np
import pytest
import torch
from reverse_helpers import adjoint
from torch import nn

import racecar_core as rc
from racecar_core import cli, metrics
from racecar_core.chapters import MissingDataError, ParameterError
from racecar_core.data import cifar
from racecar_core.experiments import resnet as chapter
from racecar_core.resnet import DEPTHS, blocks_per_stage, cifar_resnet
from racecar_core.reverse import ReverseWalk, find_rule, record

pytestmark = pytest.mark.usefixtures("one_torch_thread")




def linearised(model: nn.Module) -> nn.Module:
    """``model`` with every BatchNorm and ReLU replaced by the identity and no biases: a linear map."""
    for name, child in model.named_children():
        if isinstance(child, (nn.BatchNorm2d, nn.ReLU)):
            setattr(model, name, nn.Identity())
        else:
            linearised(child)
    for m in model.modules():
        if getattr(m, "bias", None) is not None:
            m.bias = None
    return model


# --------------------------------------------------------------------------------------------------
# Models and shapes
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shortcut", ["A", "B"])
@pytest.mark.parametrize("depth", DEPTHS)
def test_every_depth_has_the_right_layers_and_shapes(depth, shortcut):
    torch.manual_seed(0)
    model = cifar_resnet(depth, classes=7, shortcut=shortcut)
    n = blocks_per_stage(depth)
    assert n == (depth - 2) // 6 and [len(getattr(model, f"stage{k}")) for k in (1, 2, 3)] == [n, n, n]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    # depth counts the 3x3 convolutions and the classifier; option B adds two 1x1 projections
    assert sum(c.kernel_size == (3, 3) for c in convs) + 1 == depth
    assert sum(c.kernel_size == (1, 1) for c in convs) == (2 if shortcut == "B" else 0)
    x = torch.randn(2, 3, 8, 8)  # a small input keeps depth 110 fast; stride 2 twice: 8 -> 4 -> 2
    pairs = rc.reverse_pass(model, x)
    assert model(x).shape == (2, 7)
    assert len(pairs) == depth + (2 if shortcut == "B" else 0)
    assert all(d.shape == r.shape for d, r in pairs)
    assert pairs[0][0] is not None and pairs[0][0].shape == x.shape
    assert pairs[-1][0].shape == (2, 64)  # the classifier reads the pooled 64 channels


def test_block_shapes_and_strides():
    model = cifar_resnet(20)
    feats = []
    hooks = [getattr(model, f"stage{k}").register_forward_hook(lambda m, i, o: feats.append(o.shape)) for k in (1, 2, 3)]
    model(torch.randn(1, 3, 32, 32))
    for h in hooks:
        h.remove()
    assert feats == [(1, 16, 32, 32), (1, 32, 16, 16), (1, 64, 8, 8)]
    assert isinstance(model.stage2[0].shortcut, rc.PadShortcut) and isinstance(model.stage2[1].shortcut, nn.Identity)


@pytest.mark.parametrize("depth", [0, 7, 19, 21, 111, "20", 20.0, True])
def test_bad_depth_is_refused(depth):
    with pytest.raises(ValueError, match="6n\\+2"):
        cifar_resnet(depth)


def test_bad_shortcut_and_pad_shortcut_arguments_are_refused():
    with pytest.raises(ValueError, match="shortcut"):
        cifar_resnet(20, shortcut="C")
    with pytest.raises(ValueError, match="out_channels >= in_channels"):
        rc.PadShortcut(8, 4)
    with pytest.raises(ValueError, match="expects 4 channels"):
        rc.PadShortcut(4, 8)(torch.zeros(1, 3, 4, 4))


# --------------------------------------------------------------------------------------------------
# The reverse pass through residual blocks: adjoint identities
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("channels,stride,size", [((16, 32), 2, 8), ((3, 8), 2, 9), ((4, 4), 1, 5), ((2, 5), 3, 7)])
def test_pad_shortcut_rule_is_exact_adjoint(float64, channels, stride, size):
    layer = rc.PadShortcut(*channels, stride=stride)
    x = torch.randn(2, channels[0], size, size)
    out = layer(x)
    assert out.shape == (2, channels[1], -(-size // stride), -(-size // stride))
    y = torch.randn_like(out)
    x_adj = adjoint(layer, x, y)
    assert x_adj.shape == x.shape
    assert torch.allclose((out * y).sum(), (x * x_adj).sum())


def test_pad_shortcut_keeps_channels_in_the_middle():
    layer = rc.PadShortcut(3, 8)
    x = torch.arange(1.0, 1 + 3 * 16).reshape(1, 3, 4, 4)
    out = layer(x)
    assert torch.equal(out[:, 2:5], x[:, :, ::2, ::2]) and out[:, :2].abs().sum() == 0 and out[:, 5:].abs().sum() == 0


def test_projection_shortcut_rule_is_exact_adjoint(float64):
    proj = nn.Conv2d(16, 32, 1, stride=2, bias=False)
    x = torch.randn(3, 16, 9, 9)
    y = torch.randn_like(proj(x))
    assert torch.allclose((proj(x) * y).sum(), (x * adjoint(proj, x, y)).sum())


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_whole_resnet_without_bn_and_relu_is_reversed_by_its_exact_transpose(float64, shortcut):
    model = linearised(cifar_resnet(14, classes=5, shortcut=shortcut))
    x = torch.randn(2, 3, 12, 12)
    out = model(x)
    y = torch.randn_like(out)
    x_adj = adjoint(model, x, y)
    assert x_adj.shape == x.shape
    assert torch.allclose((out * y).sum(), (x * x_adj).sum())
    # and it is the transpose autograd computes (the vector-Jacobian product of a linear map)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad((model(x) * y).sum(), x)
    assert torch.allclose(grad, x_adj)


def test_block_reverse_sums_branch_and_shortcut_after_the_post_activation(float64):
    block = rc.resnet.basic_block(4, 8, stride=2, shortcut="A").eval()
    x = torch.randn(2, 4, 6, 6)
    y = torch.randn_like(block(x))
    s = torch.relu(y)
    branch, short = block.branch, block.shortcut
    t = torch.nn.functional.conv_transpose2d(branch.bn2(s), branch.conv2.weight, padding=1)
    t = branch.relu(branch.bn1(t))
    from_branch = torch.nn.functional.conv_transpose2d(t, branch.conv1.weight, stride=2, padding=1, output_padding=1)
    from_short = torch.zeros_like(x)
    from_short[:, :, ::2, ::2] = s[:, short.pad_front : short.pad_front + 4]
    _, tape = record(block, x)
    walk = ReverseWalk(tape)
    walk.at_output = False  # as inside a network: the post activation did not produce the model output
    assert torch.allclose(find_rule(block).fn(block, y, walk), from_branch + from_short)


# --------------------------------------------------------------------------------------------------
# Gradients and RR training
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("shortcut", ["A", "B"])
def test_rr_loss_sends_gradient_into_every_weight(shortcut):
    torch.manual_seed(0)
    model = cifar_resnet(8, classes=3, shortcut=shortcut)
    rc.rr_loss(model, torch.randn(4, 3, 8, 8), reduction="mean").backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    # the classifier's bias cancels exactly: the reverse pass starts from (output - bias) = W h
    assert missing == ["fc.bias"]


def test_short_rr_training_reduces_every_layers_reconstruction_error():
    torch.manual_seed(0)
    model = cifar_resnet(8, classes=3, shortcut="B")
    x = torch.randn(32, 3, 8, 8)
    y = torch.randint(0, 3, (32,))
    model.train()
    before = metrics.layer_errors(model, x)
    config = rc.TrainConfig(steps=60, lr=3e-3, lambda_rr=1.0, rr_reduction="mean", eval_every=60)
    rc.train(model, (x, y), config, progress=False, device="cpu")
    after = metrics.layer_errors(model, x)
    assert len(before) == len(after) == 7 + 1 + 2  # 3x3 convolutions, classifier, projections
    assert all(a < 0.9 * b for a, b in zip(after, before)), list(zip(before, after))


def test_layer_errors_leave_the_batchnorm_statistics_alone():
    torch.manual_seed(0)
    model = cifar_resnet(8).eval()
    state = {k: v.clone() for k, v in model.state_dict().items()}
    metrics.layer_errors(model, torch.randn(4, 3, 8, 8))
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())
    assert not model.training and not any(m.training for m in model.modules())


# --------------------------------------------------------------------------------------------------
# The chapter: parameters, data checks (before any work), data pipeline
# --------------------------------------------------------------------------------------------------


def _rows(images):
    return images.transpose(0, 3, 1, 2).reshape(len(images), 3072)


def write_fake_cifar(root, per_class: int = 3):
    """CIFAR-10 and CIFAR-100 folders in the python format with ``per_class`` images per class and split."""
    rng = np.random.default_rng(0)
    ten, hundred = root / "cifar-10-batches-py", root / "cifar-100-python"
    ten.mkdir(parents=True)
    hundred.mkdir(parents=True)
    for name in [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]:
        labels = np.repeat(np.arange(10), per_class)
        images = rng.integers(0, 256, (len(labels), 32, 32, 3), dtype=np.uint8)
        (ten / name).write_bytes(pickle.dumps({b"labels": labels.tolist(), b"data": _rows(images)}))
    (ten / "batches.meta").write_bytes(pickle.dumps({b"label_names": [f"c{k}".encode() for k in range(10)]}))
    for name in ("train", "test"):
        fine = np.repeat(np.arange(100), per_class)
        images = rng.integers(0, 256, (len(fine), 32, 32, 3), dtype=np.uint8)
        (hundred / name).write_bytes(pickle.dumps({b"data": _rows(images), b"fine_labels": fine.tolist(),
                                                   b"coarse_labels": (fine // 5).tolist()}))
    (hundred / "meta").write_bytes(pickle.dumps({b"fine_label_names": [f"f{k}".encode() for k in range(100)],
                                                 b"coarse_label_names": [f"k{k}".encode() for k in range(20)]}))


def test_presets_are_as_documented():
    cpu = chapter.CHAPTER.configure("cpu")
    assert cpu.depth == 20 and cpu.seeds >= 3 and cpu.dataset == "mnist5k"
    spec = chapter.CHAPTER.presets["paper"]
    assert (spec["dataset"], spec["depth"], spec["epochs"]) == ("cifar10", 110, 164)
    defaults = {p.name: p.default for p in chapter.CHAPTER.params}
    assert (defaults["lr"], defaults["weight_decay"], spec["batch_size"]) == (0.1, 1e-4, 128)
    assert spec["warmup_steps"] > 0


@pytest.mark.parametrize("values,error,message", [
    ({"depth": 21}, ParameterError, "6n\\+2"),
    ({"n_train": 400, "n_val": 50}, ParameterError, "n_train \\+ n_val"),
    ({"transfer_labels": 401}, ParameterError, "transfer_labels"),
    ({"lambda_grid": "0.1,x"}, ParameterError, "comma-separated"),
    ({"lambda_grid": "0.1,-1"}, ParameterError, "> 0"),
    ({"dataset": "cifar10"}, MissingDataError, "needs data_dir.*download_cifar"),
    ({"dataset": "cifar10", "data_dir": "/no/such/cifar"}, MissingDataError, "does not exist"),
])
def test_bad_settings_fail_in_configure(values, error, message):
    with pytest.raises(error, match=message):
        chapter.CHAPTER.configure("cpu", **values)


def test_paper_preset_without_cifar_files_says_how_to_get_them(tmp_path):
    with pytest.raises(MissingDataError, match="download_cifar"):
        chapter.CHAPTER.configure("paper")
    with pytest.raises(MissingDataError, match="cifar-10"):
        chapter.CHAPTER.configure("paper", data_dir=str(tmp_path))  # the folder exists but holds no CIFAR
    with pytest.raises(MissingDataError, match="fashion-mnist"):
        chapter.CHAPTER.configure("cpu", dataset="fashion", data_dir=str(tmp_path))


def test_cli_refuses_missing_cifar_before_writing_anything(tmp_path, capsys):
    out = tmp_path / "run"
    assert cli.main(["run", "resnet", "--preset", "paper", "-p", "data_dir", str(tmp_path), "--out", str(out)]) == 2
    assert "CIFAR" in capsys.readouterr().err
    assert not out.exists()


def stand_in_checksums(root, monkeypatch):
    """Stand-ins for the official CIFAR files: their own md5s play the published ones, so the check runs and passes."""
    monkeypatch.setattr(cifar, "OFFICIAL_MD5", {
        name: {p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in (root / folder).iterdir()}
        for name, folder in (("cifar10", "cifar-10-batches-py"), ("cifar100", "cifar-100-python"))})


def test_cifar_folder_gives_cifar10_source_and_cifar100_target(tmp_path, monkeypatch):
    write_fake_cifar(tmp_path)
    stand_in_checksums(tmp_path, monkeypatch)
    cfg = chapter.CHAPTER.configure("smoke", dataset="cifar10", data_dir=str(tmp_path), n_train=10, n_val=5,
                                    n_test=3, transfer_labels=2)
    data = chapter.load_data(cfg)
    assert "CIFAR-10" in data.name and data.flip
    assert data.source.x_train.shape == (100, 32, 32, 3) and data.source.x_val.shape == (50, 32, 32, 3)
    assert data.source.x_test.shape == (30, 32, 32, 3) and len(data.source.classes) == 10
    assert data.target.x_train.shape == (200, 32, 32, 3) and len(data.target.classes) == 100
    assert set(data.target.y_test) == set(range(100))


def test_mnist_stand_in_is_named_as_such_and_splits_are_disjoint():
    cfg = chapter.CHAPTER.configure("cpu")
    data = chapter.load_data(cfg)
    assert "CIFAR" not in data.name and "MNIST" in data.name and not data.flip
    src, tgt = data.source, data.target
    assert src.x_train.shape == (5 * cfg.n_train, 32, 32, 3) and src.x_val.shape == (5 * cfg.n_val, 32, 32, 3)
    assert src.x_test.shape == (5 * cfg.n_test, 32, 32, 3) and tgt.x_train.shape == (5 * cfg.transfer_labels, 32, 32, 3)
    assert set(src.y_train) == set(tgt.y_train) == set(range(5)) and src.classes != tgt.classes
    seen = {a.tobytes() for a in src.x_train}
    assert not seen & {a.tobytes() for a in src.x_val} and not seen & {a.tobytes() for a in src.x_test}
    assert src.x_train[:, :2].max() == 0 and (src.x_train[..., 0] == src.x_train[..., 2]).all()  # padded, grey


def test_batches_are_normalised_augmented_and_reproducible():
    cfg = chapter.CHAPTER.configure("cpu")
    data = chapter.load_data(cfg)
    plain = data.tensor(data.source.x_train)
    assert plain.dtype == torch.float32 and plain.shape == (5 * cfg.n_train, 3, 32, 32)
    assert torch.allclose(plain.mean((0, 2, 3)), torch.zeros(3), atol=1e-4)
    assert torch.allclose(plain.std((0, 2, 3), unbiased=False), torch.ones(3), atol=1e-3)
    source = data.batches(data.source, cfg.batch_size, seed=0)
    assert len(source) == (5 * cfg.n_train) // cfg.batch_size
    (x0, y0), (x1, _) = next(source.batches(0)), next(source.batches(1))
    assert x0.shape == (cfg.batch_size, 3, 32, 32) and y0.dtype == torch.int64 and not torch.equal(x0, x1)
    again = next(data.batches(data.source, cfg.batch_size, seed=0).batches(0))[0]
    assert torch.equal(x0, again)
    assert not torch.equal(x0, next(data.batches(data.source, cfg.batch_size, seed=1).batches(0))[0])
    # augmentation only shifts the images (4-pixel pad and crop, no flips for digits): the same pixels
    # at a shifted position, zero (the normalised black) where the crop leaves the image
    assert not source.dataset.flip and source.dataset.pad == 4
    background = float(plain.amin())
    assert x0.amin() >= background - 1e-5


def test_choose_lambda_takes_best_validation_accuracy_and_smaller_on_ties():
    import pandas as pd

    frame = pd.DataFrame({"variant": ["Std", "a", "b", "c"], "lambda_rr": [0.0, 0.01, 0.1, 1.0],
                          "val_acc": [0.99, 0.8, 0.9, 0.9]})
    assert chapter.choose_lambda(frame) == 0.1
    assert chapter.lambda_grid(" 0.01, 1 ,") == [0.01, 1.0]
