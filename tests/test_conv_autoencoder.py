"""Dong et al.'s convolutional autoencoder with symmetric shortcuts (a small version), its denoising pretraining,
and the encoder's classifier, whose reverse pass (RR) the rule registry must cover."""

import pytest
import torch
from torch import nn

import racecar_core as rc
from racecar_core.conv_autoencoder import SkipAutoencoder, conv_encoder, encoder_classifier
from racecar_core.corruption import Corruption
from racecar_core.pretrain import Denoising
from racecar_core.reverse import find_rule

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_shapes_strides_and_layers():
    torch.manual_seed(0)
    ae = SkipAutoencoder((4, 6, 8), in_channels=3)
    x = torch.randn(2, 3, 16, 16)
    assert ae(x).shape == x.shape
    assert conv_encoder((4, 6, 8))(x).shape == (2, 8, 2, 2)  # three stride-2 stages: 16 -> 2
    convs = [m for m in ae.encoder.modules() if isinstance(m, nn.Conv2d)]
    assert [c.kernel_size for c in convs] == [(3, 3)] * 6 and [c.stride[0] for c in convs] == [1, 2] * 3
    assert not any(isinstance(m, (nn.MaxPool2d, nn.AvgPool2d)) for m in ae.modules())  # strided convolutions, no pooling
    deconvs = [m for m in ae.decoder.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert len(deconvs) == 6 and sum(isinstance(m, nn.BatchNorm2d) for m in ae.modules()) == 6 + 5
    with pytest.raises(ValueError, match="divisible by 8"):
        ae(torch.randn(2, 3, 12, 12))


def test_shortcuts_add_encoder_features_to_the_mirrored_decoder_layer():
    torch.manual_seed(0)
    ae = SkipAutoencoder((4, 6), in_channels=1, skips=True).eval()
    x = torch.randn(3, 1, 8, 8)
    h1 = ae.encoder.stage1(x)
    g1 = ae.decoder[1](ae.encoder.stage2(h1))
    expected = ae.decoder[0](torch.relu(g1 + h1))
    assert torch.allclose(ae(x), expected, atol=1e-6)
    ae.skips = False
    assert torch.allclose(ae(x), ae.decoder[0](torch.relu(g1)), atol=1e-6)


def test_encoder_classifier_shares_the_encoder_and_is_covered_by_the_reverse_rules():
    torch.manual_seed(0)
    ae = SkipAutoencoder((4, 6, 8))
    model = encoder_classifier(ae.encoder, classes=5)
    assert model.encoder is ae.encoder and model.fc.in_features == 8
    for module in model.modules():
        find_rule(module)  # raises UnsupportedLayerError for a layer type without a rule
    x = torch.randn(4, 3, 16, 16)
    pairs = rc.reverse_pass(model, x)
    shapes = [tuple(d.shape) for d, _ in pairs]
    assert shapes == [(4, 3, 16, 16), (4, 4, 16, 16), (4, 4, 8, 8), (4, 6, 8, 8), (4, 6, 4, 4), (4, 8, 4, 4), (4, 8)]
    assert all(d.shape == r.shape for d, r in pairs)
    loss = rc.rr_loss(model, x, reduction="mean")
    loss.backward()
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert all(c.weight.grad is not None and c.weight.grad.abs().sum() > 0 for c in convs)


def test_reverse_pass_of_the_linear_encoder_is_its_transpose():
    """Without BN and ReLU the classifier is linear, and its reverse pass must be the exact adjoint
    (the decoder with tied weights is the transposed encoder)."""
    torch.manual_seed(0)
    model = encoder_classifier(conv_encoder((3, 4)), classes=4).double()
    for stage in model.encoder:
        stage.bn1, stage.relu1, stage.bn2, stage.relu2 = nn.Identity(), nn.Identity(), nn.Identity(), nn.Identity()
    nn.init.zeros_(model.fc.bias)
    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    d, d_rec = rc.reverse_pass(model, x)[0]
    (vjp,) = torch.autograd.grad(model(x), x, grad_outputs=model(x).detach())
    assert torch.allclose(d_rec, vjp, atol=1e-10)


def test_denoising_pretraining_restores_corrupted_images_and_resumes_exactly(tmp_path):
    torch.manual_seed(0)
    images = torch.rand(32, 1, 8, 8).round()  # binary images: structure to learn
    y = torch.zeros(32, dtype=torch.long)
    config = rc.TrainConfig(steps=24, lr=2e-2, eval_every=6, checkpoint_every=9, seed=3)
    objective = lambda: Denoising(Corruption("gaussian", 0.3))  # noqa: E731

    def model():
        torch.manual_seed(1)
        return SkipAutoencoder((4, 8), in_channels=1)

    source = rc.TensorBatches(images, y, 16, seed=3)
    first = rc.train(model(), source, config, objective=objective(), progress=False)
    mse = first.history.mse.dropna()
    assert mse.iloc[-1] < 0.5 * mse.iloc[0]
    calls = {"n": 0}

    def flaky(m):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return {}

    with pytest.raises(KeyboardInterrupt):
        rc.train(model(), source, config, objective=objective(), evaluate=flaky, run_dir=tmp_path, progress=False)
    resumed = rc.train(model(), source, config, objective=objective(), run_dir=tmp_path, progress=False)
    assert resumed.resumed_from == 12
    assert all(torch.equal(p, q) for p, q in zip(first.model.parameters(), resumed.model.parameters()))


def test_denoising_refuses_a_model_that_changes_the_shape():
    with pytest.raises(ValueError, match="must return its input's shape"):
        rc.train(nn.Linear(4, 3), (torch.rand(8, 4), torch.zeros(8)), rc.TrainConfig(steps=1), objective=Denoising(),
                 progress=False)


@pytest.mark.parametrize("channels,in_channels", [((), 3), ((4, 0), 3), ((4,), 0)])
def test_bad_sizes_are_refused(channels, in_channels):
    with pytest.raises(ValueError, match="channels"):
        SkipAutoencoder(channels, in_channels)
