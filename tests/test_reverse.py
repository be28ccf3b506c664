"""The tied reverse pass: every rule against its formula, adjoint identities, modes, gradients, errors."""

import pytest
import torch
import torch.nn.functional as F
from reverse_helpers import adjoint
from torch import nn

import racecar_core as rc
from racecar_core.reverse import record

pytestmark = pytest.mark.usefixtures("float64")


# --------------------------------------------------------------------------------------------------
# Weight layers
# --------------------------------------------------------------------------------------------------


def test_linear_rule_subtracts_bias_then_applies_transpose():
    layer = nn.Linear(5, 3)
    x, s = torch.randn(4, 5), torch.randn(4, 3)
    assert torch.allclose(adjoint(layer, x, s), (s - layer.bias) @ layer.weight)


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", [0, 1, 2])
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("size", [(9, 9), (10, 7)])
def test_conv2d_rule_is_exact_adjoint(stride, padding, groups, size):
    conv = nn.Conv2d(4, 6, 3, stride=stride, padding=padding, groups=groups, bias=False)
    x = torch.randn(2, 4, *size)
    y = torch.randn_like(conv(x))
    x_adj = adjoint(conv, x, y)
    assert x_adj.shape == x.shape
    assert torch.allclose((conv(x) * y).sum(), (x * x_adj).sum())


@pytest.mark.parametrize("padding_mode", ["zeros", "circular", "reflect", "replicate"])
@pytest.mark.parametrize("padding,stride,dilation,kernel",
                         [(1, 1, 1, 3), (2, 2, 1, 5), ("same", 1, 2, 3), ("same", 1, 1, 4), ("valid", 2, 1, 3)])
def test_conv2d_adjoint_for_every_padding_mode(padding_mode, padding, stride, dilation, kernel):
    conv = nn.Conv2d(3, 5, kernel, stride=stride, padding=padding, dilation=dilation, padding_mode=padding_mode, bias=False)
    x = torch.randn(2, 3, 11, 8)
    y = torch.randn_like(conv(x))
    x_adj = adjoint(conv, x, y)
    assert x_adj.shape == x.shape
    assert torch.allclose((conv(x) * y).sum(), (x * x_adj).sum())


def test_conv2d_rule_subtracts_bias_per_channel():
    conv = nn.Conv2d(2, 3, 3, padding=1)
    x, y = torch.randn(1, 2, 5, 5), torch.randn(1, 3, 5, 5)
    expected = F.conv_transpose2d(y - conv.bias.view(1, 3, 1, 1), conv.weight, padding=1)
    assert torch.allclose(adjoint(conv, x, y), expected)


@pytest.mark.parametrize("cls,dims", [(nn.Conv1d, 1), (nn.Conv3d, 3)])
def test_conv1d_conv3d_adjoint(cls, dims):
    conv = cls(2, 3, 3, stride=2, padding=1, bias=False)
    x = torch.randn(2, 2, *([7] * dims))
    y = torch.randn_like(conv(x))
    assert torch.allclose((conv(x) * y).sum(), (x * adjoint(conv, x, y)).sum())


def test_conv_transpose2d_adjoint_is_conv():
    layer = nn.ConvTranspose2d(4, 3, 4, stride=2, padding=1, bias=False)
    x = torch.randn(2, 4, 5, 5)
    y = torch.randn_like(layer(x))
    assert torch.allclose((layer(x) * y).sum(), (x * adjoint(layer, x, y)).sum())


@pytest.mark.parametrize("cls,dims", [(nn.ConvTranspose1d, 1), (nn.ConvTranspose2d, 2), (nn.ConvTranspose3d, 3)])
@pytest.mark.parametrize("kw", [dict(kernel_size=3, stride=2, padding=1, output_padding=1),
                                dict(kernel_size=5, stride=2, padding=2, output_padding=1),
                                dict(kernel_size=3, stride=3, output_padding=2, groups=2),
                                dict(kernel_size=3, stride=1, dilation=2, output_padding=1),  # output_padding >= stride
                                dict(kernel_size=3, stride=2, padding=1, dilation=3, output_padding=2)])
def test_conv_transpose_adjoint_with_output_padding_dilation_groups(cls, dims, kw):
    layer = cls(4, 6, bias=False, **kw)
    x = torch.randn(2, 4, *([5, 6, 4][:dims]))
    y = torch.randn_like(layer(x))
    x_adj = adjoint(layer, x, y)
    assert x_adj.shape == x.shape
    assert torch.allclose((layer(x) * y).sum(), (x * x_adj).sum())


def test_conv_transpose_rule_subtracts_bias_then_convolves():
    layer = nn.ConvTranspose2d(3, 2, 4, stride=2, padding=1)
    x = torch.randn(1, 3, 5, 5)
    y = torch.randn_like(layer(x))
    expected = F.conv2d(y - layer.bias.view(1, 2, 1, 1), layer.weight, stride=2, padding=1)
    assert torch.allclose(adjoint(layer, x, y), expected)


@pytest.mark.parametrize("up,shape", [
    (nn.Upsample(scale_factor=2), (2, 3, 5, 4)),
    (nn.Upsample(scale_factor=3, mode="nearest-exact"), (2, 3, 4, 4)),
    (nn.Upsample(size=(7, 9)), (2, 3, 4, 5)),
    (nn.Upsample(scale_factor=2, mode="bilinear"), (2, 3, 5, 4)),
    (nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True), (2, 3, 5, 4)),
    (nn.Upsample(scale_factor=2, mode="bicubic"), (1, 2, 4, 4)),
    (nn.UpsamplingNearest2d(scale_factor=2), (1, 2, 3, 3)),
    (nn.Upsample(scale_factor=2, mode="linear"), (2, 3, 6)),
    (nn.Upsample(scale_factor=2, mode="trilinear"), (1, 2, 3, 3, 3)),
])
def test_upsample_adjoint_for_every_mode(up, shape):
    x = torch.randn(*shape)
    y = torch.randn_like(up(x))
    x_adj = adjoint(up, x, y)
    assert x_adj.shape == x.shape
    assert torch.allclose((up(x) * y).sum(), (x * x_adj).sum())


def test_nearest_upsample_adjoint_sums_each_block_and_passes_gradients():
    up = nn.Upsample(scale_factor=2)
    x = torch.randn(2, 3, 4, 4)
    y = torch.randn(2, 3, 8, 8, requires_grad=True)
    x_adj = adjoint(up, x, y)
    assert torch.allclose(x_adj, F.avg_pool2d(y, 2) * 4)
    x_adj.pow(2).sum().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0


@pytest.mark.parametrize("pool,size", [(nn.AdaptiveAvgPool2d(1), 8), (nn.AdaptiveAvgPool2d(2), 8), (nn.AvgPool2d(2), 8),
                                       (nn.AvgPool2d(3, stride=2, padding=1), 9)])
def test_average_pooling_adjoint(pool, size):
    x = torch.randn(2, 3, size, size)
    y = torch.randn_like(pool(x))
    x_adj = adjoint(pool, x, y)
    assert x_adj.shape == x.shape
    assert torch.allclose((pool(x) * y).sum(), (x * x_adj).sum())


# --------------------------------------------------------------------------------------------------
# The authors' rule for normalisation + activation, and the pairs
# --------------------------------------------------------------------------------------------------


def peak_like():
    return nn.Sequential(nn.Linear(12, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3), nn.BatchNorm1d(3), nn.ReLU())


def test_bn_and_activation_applied_after_transpose_as_in_authors_code():
    model = peak_like()
    l1, bn1, _, l2, _, _ = model
    x = torch.randn(16, 12)
    pairs = rc.reverse_pass(model, x)
    h1 = model[:3](x)
    out = model(x)
    h1_rec = F.relu(F.batch_norm((out - l2.bias) @ l2.weight, None, None, bn1.weight, bn1.bias, True, 0.0, bn1.eps))
    x_rec = (h1_rec - l1.bias) @ l1.weight
    assert [p[0].shape for p in pairs] == [x.shape, h1.shape]
    assert torch.allclose(pairs[0][0], x) and torch.allclose(pairs[1][0], h1)
    assert torch.allclose(pairs[1][1], h1_rec) and torch.allclose(pairs[0][1], x_rec)


def test_reverse_pass_does_not_touch_bn_running_stats_by_default():
    model = peak_like()
    x = torch.randn(16, 12)
    model(x)  # one forward update
    before = [b.clone() for b in model.buffers()]
    _, tape = record(model, x)
    after_forward = [b.clone() for b in model.buffers()]
    rc.reverse(tape)
    assert all(torch.equal(a, b) for a, b in zip(after_forward, model.buffers()))
    rc.reverse(tape, update_bn_stats=True)
    assert not torch.equal(after_forward[0], model[1].running_mean)
    assert not all(torch.equal(a, b) for a, b in zip(before, after_forward))  # the forward itself did update


def test_eval_mode_reverse_uses_running_statistics():
    model = peak_like()
    for _ in range(3):
        model(torch.randn(16, 12) + 2)
    model.eval()
    l1, bn1, _, l2, _, _ = model
    x = torch.randn(4, 12)
    out = model(x)
    h1_rec = F.relu(bn1((out - l2.bias) @ l2.weight))
    assert torch.allclose(rc.reverse_pass(model, x)[1][1], h1_rec)


def test_output_activation_is_not_reapplied():
    model = nn.Sequential(nn.Linear(4, 3), nn.Tanh())
    x = torch.randn(5, 4)
    out = model(x)
    (d, d_rec), = rc.reverse_pass(model, x)
    assert torch.allclose(d_rec, (out - model[0].bias) @ model[0].weight)


def test_nested_sequential_gives_same_pairs_as_flat():
    flat = peak_like()
    nested = nn.Sequential(nn.Sequential(flat[0], nn.Sequential(flat[1], flat[2])), nn.Sequential(*flat[3:]))
    x = torch.randn(16, 12)
    for (a, ar), (b, br) in zip(rc.reverse_pass(flat, x), rc.reverse_pass(nested, x)):
        assert torch.allclose(a, b) and torch.allclose(ar, br)


def test_flatten_unflatten_and_conv_pairs_have_forward_shapes():
    model = nn.Sequential(nn.Conv2d(1, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 10),
                          nn.ReLU(), nn.Linear(10, 64), nn.Unflatten(1, (4, 4, 4)), nn.Conv2d(4, 2, 1))
    x = torch.randn(3, 1, 7, 7)
    pairs = rc.reverse_pass(model, x)
    assert [tuple(d.shape) for d, _ in pairs] == [(3, 1, 7, 7), (3, 64), (3, 10), (3, 4, 4, 4)]
    assert all(d.shape == r.shape for d, r in pairs)


def test_dropout_is_identity_in_reverse():
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Dropout(0.5), nn.Linear(5, 2))
    model.train()
    x = torch.randn(8, 6)
    _, tape = record(model, x)
    out = tape.output
    h_rec = F.relu((out - model[3].bias) @ model[3].weight)
    assert torch.allclose(rc.reverse(tape)[1][1], h_rec)


def test_modes_first_and_local():
    model = peak_like()
    l1, bn1, _, l2, _, _ = model
    x = torch.randn(16, 12)
    full = rc.reverse_pass(model, x, "full")
    first = rc.reverse_pass(model, x, "first")
    local = rc.reverse_pass(model, x, "local")
    assert len(first) == 1 and torch.allclose(first[0][1], full[0][1])
    h1 = model[:3](x)
    assert torch.allclose(local[0][1], (h1 - l1.bias) @ l1.weight)  # from its own forward output
    assert torch.allclose(local[1][1], full[1][1])  # the top layer starts from the output either way
    assert not torch.allclose(local[0][1], full[0][1])


def test_reconstruction_loss_reductions_match_authors_formula():
    model = peak_like()
    x = torch.randn(16, 12)
    pairs = rc.reverse_pass(model, x)
    expected_sum = sum(0.5 * ((d - r) ** 2).sum() for d, r in pairs)
    expected_mean = sum(0.5 * ((d - r) ** 2).sum() / d.numel() for d, r in pairs)
    assert torch.allclose(rc.rr_loss(model, x), expected_sum)
    assert torch.allclose(rc.rr_loss(model, x, reduction="mean"), expected_mean)
    with pytest.raises(ValueError, match="reduction"):
        rc.rr_loss(model, x, reduction="max")
    with pytest.raises(ValueError, match="mode"):
        rc.rr_loss(model, x, mode="everything")


def hand_made_pairs():
    """Two pairs with known errors: ‖d−d'‖² = 4 and ‖d‖² = 16 (4 elements); ‖d−d'‖² = 1 and ‖d‖² = 4 (2 elements)."""
    d1 = torch.tensor([[2.0, 2.0], [2.0, 2.0]])
    r1 = torch.tensor([[2.0, 0.0], [2.0, 2.0]])
    d2 = torch.tensor([[0.0, 2.0]])
    r2 = torch.tensor([[1.0, 2.0]])
    return [(d1, r1), (d2, r2)]


def test_reconstruction_loss_values_on_hand_made_pairs():
    pairs = hand_made_pairs()
    assert rc.reconstruction_loss(pairs).item() == pytest.approx(0.5 * 4 + 0.5 * 1)
    assert rc.reconstruction_loss(pairs, "mean").item() == pytest.approx(0.5 * 4 / 4 + 0.5 * 1 / 2)
    assert rc.reconstruction_loss(pairs, "relative").item() == pytest.approx(0.5 * 4 / 16 + 0.5 * 1 / 4)
    # an all-zero input is clamped, not divided by zero
    zero = [(torch.zeros(3), torch.ones(3))]
    assert torch.isfinite(rc.reconstruction_loss(zero, "relative"))


def test_sum_and_mean_reductions_unchanged_bit_for_bit():
    """The default and "mean" are the expressions they were before "relative" was added."""
    model = peak_like()
    pairs = rc.reverse_pass(model, torch.randn(16, 12))
    terms = [F.mse_loss(r, d, reduction="sum") for d, r in pairs]
    old_sum = sum([t * 0.5 for t in terms[1:]], terms[0] * 0.5)
    old_mean = sum([t * (0.5 / d.numel()) for t, (d, _) in zip(terms[1:], pairs[1:])], terms[0] * (0.5 / pairs[0][0].numel()))
    assert torch.equal(rc.reconstruction_loss(pairs), old_sum)
    assert torch.equal(rc.reconstruction_loss(pairs, "mean"), old_mean)
    assert rc.TrainConfig(steps=1).rr_reduction == "sum"


def test_relative_reduction_is_half_the_squared_layer_errors():
    from racecar_core.metrics import layer_errors

    model = peak_like().eval()
    x = torch.randn(16, 12)
    errors = layer_errors(model, x, batch_stats=False)
    assert rc.rr_loss(model, x, reduction="relative").item() == pytest.approx(sum(0.5 * e**2 for e in errors), rel=1e-9)


def test_relative_reduction_gradient_is_sum_gradient_over_detached_norm():
    """Per layer, the gradient of "relative" equals that of "sum" divided by ‖d_m‖² (no gradient through the norm)."""
    d = torch.randn(3, 4, requires_grad=True)
    r = torch.randn(3, 4, requires_grad=True)
    grads_rel = torch.autograd.grad(rc.reconstruction_loss([(d, r)], "relative"), (d, r))
    grads_sum = torch.autograd.grad(rc.reconstruction_loss([(d, r)], "sum"), (d, r))
    scale = d.detach().pow(2).sum()
    for g_rel, g_sum in zip(grads_rel, grads_sum):
        assert torch.allclose(g_rel, g_sum / scale)
    # not the gradient of the ratio with the norm differentiated
    ratio = 0.5 * (d - r).pow(2).sum() / d.pow(2).sum()
    assert not torch.allclose(torch.autograd.grad(ratio, d)[0], grads_rel[0])


def test_relative_reduction_in_training_config():
    assert rc.TrainConfig(steps=1, rr_reduction="relative").rr_reduction == "relative"
    with pytest.raises(ValueError, match="rr_reduction"):
        rc.TrainConfig(steps=1, rr_reduction="max")


def test_gradients_reach_every_weight_and_flow_through_both_sides():
    model = peak_like()
    x = torch.randn(16, 12)
    rc.rr_loss(model, x).backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    full_grad = model[0].weight.grad.clone()
    # the same loss with the forward side detached has a different gradient: both sides are trained
    model.zero_grad()
    pairs = rc.reverse_pass(model, x)
    sum(0.5 * ((d.detach() - r) ** 2).sum() for d, r in pairs).backward()
    assert not torch.allclose(model[0].weight.grad, full_grad)


# --------------------------------------------------------------------------------------------------
# Residual blocks
# --------------------------------------------------------------------------------------------------


def test_residual_rule_sums_branch_and_shortcut_after_post():
    conv1, conv2 = nn.Conv2d(3, 3, 3, padding=1), nn.Conv2d(3, 3, 3, padding=1)
    block = rc.Residual(nn.Sequential(conv1, nn.ReLU(), conv2), post=nn.ReLU())
    stem = nn.Conv2d(2, 3, 1)
    model = nn.Sequential(stem, nn.Tanh(), block, nn.Flatten(), nn.Linear(3 * 5 * 5, 4))
    x = torch.randn(2, 2, 5, 5)
    out = model(x)
    fc = model[4]
    s = torch.relu(((out - fc.bias) @ fc.weight).reshape(2, 3, 5, 5))  # block.post applied to the block's reverse input
    t = torch.relu(F.conv_transpose2d(s - conv2.bias.view(1, 3, 1, 1), conv2.weight, padding=1))
    block_in_rec = torch.tanh(F.conv_transpose2d(t - conv1.bias.view(1, 3, 1, 1), conv1.weight, padding=1) + s)
    x_rec = F.conv_transpose2d(block_in_rec - stem.bias.view(1, 3, 1, 1), stem.weight)
    pairs = rc.reverse_pass(model, x)
    assert len(pairs) == 4  # stem, conv1, conv2, fc
    assert torch.allclose(pairs[1][1], block_in_rec)  # conv1 reconstructs the block input (sum of both paths)
    assert torch.allclose(pairs[0][1], x_rec)


def test_residual_with_projection_shortcut_is_adjoint_without_nonlinearity():
    block = rc.Residual(nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False), shortcut=nn.Conv2d(4, 6, 1, stride=2, bias=False))
    x = torch.randn(2, 4, 9, 9)
    y = torch.randn_like(block(x))
    assert torch.allclose((block(x) * y).sum(), (x * adjoint(block, x, y)).sum())


# --------------------------------------------------------------------------------------------------
# Registry and errors
# --------------------------------------------------------------------------------------------------


class Scale(nn.Module):
    def __init__(self):
        super().__init__()
        self.gain = nn.Parameter(torch.tensor(2.0))

    def forward(self, x):
        return self.gain * x


def test_unsupported_layer_raises_type_error_naming_it():
    model = nn.Sequential(nn.Linear(3, 3), Scale(), nn.Linear(3, 2))
    with pytest.raises(TypeError, match=r"Scale.*register_reverse_rule"):
        rc.reverse_pass(model, torch.randn(2, 3))
    with pytest.raises(rc.UnsupportedLayerError):
        rc.reverse_pass(nn.Sequential(nn.Linear(3, 3), nn.MaxPool1d(1)), torch.randn(2, 1, 3))


def test_a_registered_rule_extends_the_reverse_pass():
    class Shift(nn.Module):  # a user's own pointwise layer
        def forward(self, x):
            return x + 1.0

    rc.register_reverse_rule(Shift, kind="pointwise")(lambda m, s, walk: m(s))
    model = nn.Sequential(nn.Linear(3, 4), Shift(), nn.Linear(4, 2))
    x = torch.randn(5, 3)
    out = model(x)
    h_rec = (out - model[2].bias) @ model[2].weight + 1.0
    assert torch.allclose(rc.reverse_pass(model, x)[1][1], h_rec)


def test_register_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kind"):
        rc.register_reverse_rule(nn.Linear, kind="other")
    with pytest.raises(TypeError):
        rc.register_reverse_rule(int)


def test_module_called_twice_is_refused():
    relu = nn.ReLU()
    model = nn.Sequential(nn.Linear(3, 3), relu, nn.Linear(3, 3), relu)
    with pytest.raises(RuntimeError, match="called twice"):
        rc.reverse_pass(model, torch.randn(2, 3))


def test_model_without_weight_layer_is_refused():
    with pytest.raises(ValueError, match="no weight layer"):
        rc.reverse_pass(nn.Sequential(nn.ReLU()), torch.randn(2, 3))


def test_parametrized_weights_are_used_consistently():
    layer = nn.utils.parametrizations.orthogonal(nn.Linear(6, 4, bias=False))
    model = nn.Sequential(layer)
    x = torch.randn(3, 6)
    (d, d_rec), = rc.reverse_pass(model, x)
    w = layer.weight
    assert torch.allclose(d_rec, x @ w.t() @ w)


def test_layer_activations_lists_inputs_then_output():
    model = peak_like()
    x = torch.randn(16, 12)
    acts = rc.layer_activations(model, x)
    assert len(acts) == 3 and torch.equal(acts[0], x) and torch.allclose(acts[2], model(x))


# --------------------------------------------------------------------------------------------------
# The SVD property (paper, Sec. 3): RR makes the data's span right singular vectors with σ = 1
# --------------------------------------------------------------------------------------------------


def test_rr_training_embeds_the_images_in_the_top_singular_vectors():
    from racecar_core import svd

    k = 3
    images = torch.rand(k, 64) * (torch.rand(k, 64) < 0.4)
    images = images / images.norm(dim=1, keepdim=True)
    layer = nn.Linear(64, 16, bias=False)
    with torch.no_grad():
        layer.weight.mul_(0.5)  # every initial σ < 1, so the σ = 1 data directions become the top ones
    model = nn.Sequential(layer)
    before = svd.data_embedding(layer.weight, images, k)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(600):
        opt.zero_grad()
        rc.rr_loss(model, images).backward()
        opt.step()
    after = svd.data_embedding(layer.weight, images, k)
    assert before.angles.max() > 45
    assert after.angles.max() < 2.0, after.angles
    assert abs(after.singular_values - 1).max() < 0.02, after.singular_values


def test_pair_after_a_reshape_includes_the_pointwise_run_in_front_of_it():
    model = nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2), nn.ReLU(), nn.Flatten(), nn.Linear(2 * 4 * 4, 3))
    conv, bn, _, _, fc = model
    x = torch.randn(5, 1, 4, 4)
    out = model(x)
    h_rec = F.relu(F.batch_norm(((out - fc.bias) @ fc.weight).reshape(5, 2, 4, 4), None, None, bn.weight, bn.bias, True, 0.0,
                                bn.eps))
    pairs = rc.reverse_pass(model, x)
    assert torch.allclose(pairs[1][1], h_rec.flatten(1))  # the Linear's d' is the BN-ReLU'd reconstruction
    assert torch.allclose(pairs[0][1], F.conv_transpose2d(h_rec - conv.bias.view(1, 2, 1, 1), conv.weight, padding=1))
