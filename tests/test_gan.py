"""The DCGAN, its reverse passes and the GAN objective in the training loop (tiny widths, a few steps)."""

import copy

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from reverse_helpers import adjoint
from torch import nn

import racecar_core as rc
from racecar_core.batches import TensorBatches
from racecar_core.gan import (
    GANObjective,
    arm_objective,
    dcgan,
    dcgan_config,
    dcgan_discriminator,
    dcgan_generator,
    sample_snapshots,
)
from racecar_core.reverse import is_weight_layer
from racecar_core.training import NonFiniteLossError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def real_images(n=24, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g) * 2 - 1, torch.randint(0, 10, (n,), generator=g)


def tiny_gan(seed=0, **kw):
    torch.manual_seed(seed)
    return dcgan(width=2, z_dim=8, **kw)


# --------------------------------------------------------------------------------------------------
# Networks and their reverse passes
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("kernel_size,upsampling", [(4, "transposed"), (3, "transposed"), (5, "transposed"),
                                                    (3, "nearest"), (5, "nearest")])
def test_shapes_and_output_range(kernel_size, upsampling):
    gan = tiny_gan(kernel_size=kernel_size, upsampling=upsampling)
    image = gan(torch.randn(5, 8) * 10)
    assert image.shape == (5, 1, 28, 28) and image.abs().max() <= 1
    assert gan.discriminator(image).shape == (5, 1)


def test_odd_kernels_use_output_padding():
    convs = [m for m in dcgan_generator(2, 8, kernel_size=5) if isinstance(m, nn.ConvTranspose2d)]
    assert [c.output_padding for c in convs] == [(1, 1), (1, 1)]


@pytest.mark.parametrize("bad", [dict(width=0), dict(z_dim=1.5), dict(kernel_size=7), dict(upsampling="bilinear"),
                                 dict(kernel_size=4, upsampling="nearest")])
def test_bad_architecture_arguments_are_refused(bad):
    with pytest.raises(ValueError):
        dcgan(**{"width": 2, "z_dim": 8, **bad})


@pytest.mark.parametrize("upsampling,kernel_size", [("transposed", 4), ("transposed", 5), ("nearest", 3)])
def test_both_networks_are_exact_transposes_once_linearised(float64, upsampling, kernel_size):
    """With every pointwise layer replaced by the identity and no biases, the reverse walk through the
    generator (Linear, Unflatten, ConvTranspose / Upsample + Conv) and the discriminator (Conv, Flatten,
    Linear) is the adjoint of the forward map."""
    for net, x in ((dcgan_generator(2, 8, kernel_size=kernel_size, upsampling=upsampling), torch.randn(3, 8)),
                   (dcgan_discriminator(2, kernel_size=kernel_size), torch.randn(3, 1, 28, 28))):
        linear = nn.Sequential(*[m if is_weight_layer(m) or isinstance(m, (nn.Unflatten, nn.Flatten, nn.Upsample))
                                 else nn.Identity() for m in net])
        for m in linear.modules():
            if getattr(m, "bias", None) is not None:
                nn.init.zeros_(m.bias)
        y = torch.randn_like(linear(x))
        x_adj = adjoint(linear, x, y)
        assert x_adj.shape == x.shape
        assert torch.allclose((linear(x) * y).sum(), (x * x_adj).sum())


def test_generator_reverse_pass_matches_hand_written_formula():
    gan = tiny_gan()
    fc, _, bn1, _, ct1, bn2, _, ct2, _ = gan.generator
    z = torch.randn(6, 8)
    image = gan.generator(z)

    def bn(layer, t):  # the reverse batch's own statistics, running statistics untouched
        return F.batch_norm(t, None, None, layer.weight, layer.bias, True, 0.0, layer.eps)

    h2_rec = F.relu(bn(bn2, F.conv2d(image - ct2.bias.view(1, -1, 1, 1), ct2.weight, stride=2, padding=1)))
    h1_rec = F.relu(bn(bn1, F.conv2d(h2_rec, ct1.weight, stride=2, padding=1)))
    z_rec = h1_rec.flatten(1) @ fc.weight
    pairs = rc.reverse_pass(gan.generator, z)
    assert [d.shape for d, _ in pairs] == [(6, 8), (6, 8, 7, 7), (6, 4, 14, 14)]
    for (_, got), want in zip(pairs, (z_rec, h1_rec, h2_rec)):
        assert torch.allclose(got, want, atol=1e-6)


def test_discriminator_reverse_pass_maps_the_logit_to_an_image():
    gan = tiny_gan()
    x, _ = real_images(5)
    pairs = rc.reverse_pass(gan.discriminator, x)
    assert [d.shape for d, _ in pairs] == [(5, 1, 28, 28), (5, 4, 14, 14), (5, 8 * 7 * 7)]
    assert all(r.shape == d.shape for d, r in pairs)


def test_latent_and_sample():
    gan = tiny_gan()
    assert torch.equal(gan.latent(4, seed=3), gan.latent(4, seed=3))
    z = gan.latent(7, seed=3)
    gan.eval()
    assert torch.allclose(gan.sample(z, batch_size=3), gan.generator(z))


# --------------------------------------------------------------------------------------------------
# The objective
# --------------------------------------------------------------------------------------------------


def run(arm, steps=3, lam=0.5, seed=0, **kw):
    x, y = real_images()
    config = kw.pop("config", None) or dcgan_config(steps, eval_every=1, **kw)
    return rc.train(tiny_gan(seed), TensorBatches(x, y, 8, seed=3), config, objective=arm_objective(arm, lam, lam),
                    progress=False)


@pytest.mark.parametrize("arm,expected", [("Std", set()), ("RR-G", {"rr_g"}), ("RR-D", {"rr_d"}), ("RR-both", {"rr_g", "rr_d"})])
def test_logged_terms_per_arm(arm, expected):
    h = run(arm).history
    terms = {"loss_d", "loss_g", "d_real", "d_fake", "rr_g", "rr_d"}
    assert terms & set(h.columns) == {"loss_d", "loss_g", "d_real", "d_fake"} | expected
    logged = h.dropna(subset=["loss_d"])
    assert len(logged) == 3 and logged[["d_real", "d_fake"]].stack().between(0, 1).all()


def count_calls(module):
    calls = {"n": 0}
    module.register_forward_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    return calls


@pytest.mark.parametrize("arm", ["Std", "RR-both"])
def test_one_forward_pass_per_network_per_use(arm):
    gan = tiny_gan()
    g_calls, d_calls = count_calls(gan.generator), count_calls(gan.discriminator)
    x, y = real_images()
    rc.train(gan, (x, y), dcgan_config(2, eval_every=10), objective=arm_objective(arm, 0.5, 0.5), progress=False)
    assert g_calls["n"] == 2  # G(z) once per step
    assert d_calls["n"] == 6  # D(x), D(G(z)) for D's update, D(G(z)) for G's update after D changed


def test_rr_terms_are_the_reverse_pass_of_the_recorded_batches():
    gan = tiny_gan()
    start = copy.deepcopy(gan)
    x, y = real_images(8)
    torch.manual_seed(123)
    h = rc.train(gan, (x, y), dcgan_config(1, eval_every=1), objective=GANObjective(0.5, 0.5), progress=False).history
    torch.manual_seed(123)
    z = torch.randn(8, 8)  # the step's latent batch: the first draw from the global RNG
    start.train()
    with torch.no_grad():
        assert h["rr_g"].iloc[-1] == pytest.approx(float(rc.rr_loss(start.generator, z, reduction="mean")), rel=1e-5)
        assert h["rr_d"].iloc[-1] == pytest.approx(float(rc.rr_loss(start.discriminator, x, reduction="mean")), rel=1e-5)
        logit_real, logit_fake = start.discriminator(x), start.discriminator(start.generator(z))
        assert h["d_real"].iloc[-1] == pytest.approx(float(torch.sigmoid(logit_real).mean()), rel=1e-5)
        expected_d = F.softplus(-logit_real).mean() + F.softplus(logit_fake).mean()
        assert h["loss_d"].iloc[-1] == pytest.approx(float(expected_d), rel=1e-5)


def same_weights(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_rr_on_one_network_leaves_the_other_first_update_unchanged():
    std, rr_g, rr_d = (run(arm, steps=1).model for arm in ("Std", "RR-G", "RR-D"))
    assert same_weights(std.discriminator, rr_g.discriminator)  # D is updated before G's RR enters
    assert not same_weights(std.generator, rr_g.generator)
    assert not same_weights(std.discriminator, rr_d.discriminator)


def test_discriminator_trainable_again_after_generator_update():
    gan = run("RR-both", steps=1).model
    assert all(p.requires_grad for p in gan.parameters())


def test_lambda_warmup_ramps_the_rr_weight():
    ramped = run("RR-G", steps=1, lam=0.5, lambda_rr_warmup=4).model
    quarter = run("RR-G", steps=1, lam=0.125).model
    assert same_weights(ramped, quarter)


def test_settings_and_validation():
    assert GANObjective(0.1, 0.0).settings() == {"objective": "gan", "lambda_g": 0.1, "lambda_d": 0.0,
                                                 "rr_mode": "full", "rr_reduction": "mean"}
    for bad in (dict(lambda_g=-1), dict(rr_mode="all"), dict(rr_reduction="max"), dict(lambda_d=float("nan"))):
        with pytest.raises(ValueError):
            GANObjective(**bad)
    with pytest.raises(ValueError, match="needs lambda_g"):
        arm_objective("RR-G", 0.0, 1.0)
    with pytest.raises(ValueError, match="arm must be"):
        arm_objective("RR")
    assert arm_objective("RR-D", 5.0, 1.0).lambda_g == 0.0


def test_objective_refuses_other_models_and_the_supervised_weights():
    x, y = real_images(8)
    with pytest.raises(TypeError, match="GAN"):
        rc.train(nn.Sequential(nn.Flatten(), nn.Linear(784, 1)), (x, y), dcgan_config(1), objective=GANObjective(),
                 progress=False)
    with pytest.raises(ValueError, match="lambda_rr"):
        rc.train(tiny_gan(), (x, y), dcgan_config(1, lambda_rr=1.0), objective=GANObjective(), progress=False)


def test_sample_snapshots_are_stored_at_each_evaluation():
    x, y = real_images()
    z = torch.randn(4, 8)
    result = rc.train(tiny_gan(), (x, y), dcgan_config(4, eval_every=2), objective=GANObjective(),
                      evaluate=sample_snapshots(z), progress=False)
    assert [s for s, _ in result.snapshots] == [0, 2, 4]
    assert result.snapshots[-1][1]["samples"].shape == (4, 1, 28, 28)


# --------------------------------------------------------------------------------------------------
# Checkpoints: exact resume after an interruption and after a NaN stop
# --------------------------------------------------------------------------------------------------

CONFIG = dcgan_config(12, eval_every=3, checkpoint_every=4, lr=1e-3)


def source():
    x, y = real_images()
    return TensorBatches(x, y, 8, seed=3)


def test_resume_after_interruption_equals_uninterrupted_run(tmp_path):
    straight = rc.train(tiny_gan(), source(), CONFIG, objective=GANObjective(0.3, 0.2), progress=False)
    calls = {"n": 0}

    def flaky(model):
        calls["n"] += 1
        if calls["n"] == 3:  # at step 6
            raise KeyboardInterrupt
        return {}

    with pytest.raises(KeyboardInterrupt):
        rc.train(tiny_gan(), source(), CONFIG, objective=GANObjective(0.3, 0.2), evaluate=flaky, run_dir=tmp_path,
                 progress=False)
    resumed = rc.train(tiny_gan(), source(), CONFIG, objective=GANObjective(0.3, 0.2), run_dir=tmp_path, progress=False)
    assert resumed.resumed_from == 6
    assert same_weights(straight.model, resumed.model)
    pd.testing.assert_frame_equal(straight.history, resumed.history, check_exact=False, rtol=1e-6)


class NanOnce(GANObjective):
    """Makes the generator's loss NaN at step ``at`` the first time it is reached (a transient fault)."""

    fired = False

    def __init__(self, at, *args):
        super().__init__(*args)
        self.at = at

    def step(self, model, batch, ctx):
        if ctx.step == self.at and not NanOnce.fired:
            NanOnce.fired = True
            with torch.no_grad():
                model.generator[0].weight[0, 0] = float("nan")
        return super().step(model, batch, ctx)


def test_nan_stop_names_the_update_and_resume_from_checkpoint_is_exact(tmp_path):
    straight = rc.train(tiny_gan(), source(), CONFIG, objective=GANObjective(0.3, 0.2), progress=False)
    NanOnce.fired = False
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at step 9 in the 'discriminator' update .*loss_d=nan"):
        rc.train(tiny_gan(), source(), CONFIG, objective=NanOnce(9, 0.3, 0.2), run_dir=tmp_path, progress=False)
    assert not (tmp_path / "model.pt").exists()
    assert torch.load(tmp_path / "checkpoint.pt", weights_only=True)["step"] == 8
    resumed = rc.train(tiny_gan(), source(), CONFIG, objective=NanOnce(9, 0.3, 0.2), run_dir=tmp_path, progress=False)
    assert resumed.resumed_from == 8
    assert same_weights(straight.model, resumed.model)
