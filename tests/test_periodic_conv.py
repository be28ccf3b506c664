"""PeriodicConv2d: wrap in longitude, zeros in latitude, and its reverse rule (the exact adjoint)."""

import pytest
import torch
import torch.nn.functional as F
from reverse_helpers import adjoint
from torch import nn

import racecar_core as rc

pytestmark = pytest.mark.usefixtures("one_torch_thread", "float64")


def by_hand(conv: rc.PeriodicConv2d, x: torch.Tensor) -> torch.Tensor:
    """Reference: copy the wrapped columns and zero rows explicitly, then a convolution without padding."""
    (north, south), (west, east) = conv.pads()
    lon = x.shape[-1]
    cols = [(j % lon) for j in range(-west, lon + east)]
    x = x[..., cols]
    x = torch.cat([x.new_zeros(*x.shape[:2], north, x.shape[-1]), x, x.new_zeros(*x.shape[:2], south, x.shape[-1])], dim=2)
    return F.conv2d(x, conv.weight, conv.bias, conv.stride, 0, conv.dilation, conv.groups)


CASES = [  # kernel, stride, padding, dilation, groups, (lat, lon)
    (3, 1, 1, 1, 1, (8, 16)),
    (3, 2, 1, 1, 1, (8, 16)),
    (3, 2, 1, 1, 1, (9, 15)),
    (5, 1, 2, 1, 2, (7, 12)),
    ((3, 5), 1, (1, 2), 1, 1, (6, 10)),
    (3, 1, "same", 2, 1, (8, 12)),
    (4, 1, "same", 1, 1, (8, 12)),
    (3, (1, 2), "valid", 1, 1, (8, 12)),
    (1, 1, 0, 1, 1, (4, 8)),
    (3, 3, 2, 1, 1, (10, 11)),
]


@pytest.mark.parametrize("kernel,stride,padding,dilation,groups,size", CASES)
def test_forward_wraps_longitude_and_zero_pads_latitude(kernel, stride, padding, dilation, groups, size):
    conv = rc.PeriodicConv2d(4, 6, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups)
    x = torch.randn(2, 4, *size)
    assert torch.allclose(conv(x), by_hand(conv, x))


@pytest.mark.parametrize("kernel,stride,padding,dilation,groups,size", CASES)
def test_reverse_rule_is_the_exact_adjoint(kernel, stride, padding, dilation, groups, size):
    conv = rc.PeriodicConv2d(4, 6, kernel, stride=stride, padding=padding, dilation=dilation, groups=groups)
    x = torch.randn(2, 4, *size)
    y = torch.randn_like(conv(x))
    x_adj = adjoint(conv, x, y)
    assert x_adj.shape == x.shape
    conv.bias = None  # the linear part A (the bias is subtracted first: tested below)
    assert torch.allclose((conv(x) * y).sum(), (x * adjoint(conv, x, y)).sum())


def test_reverse_rule_subtracts_the_bias_then_transposes():
    conv = rc.PeriodicConv2d(3, 5, 3, padding=1)
    x = torch.randn(2, 3, 6, 8)
    y = torch.randn_like(conv(x))
    with_bias = adjoint(conv, x, y)
    b = conv.bias.detach().clone()
    conv.bias = None
    assert torch.allclose(with_bias, adjoint(conv, x, y - b.view(1, -1, 1, 1)))


def test_reverse_rule_matches_autograd_vector_jacobian_product():
    conv = rc.PeriodicConv2d(3, 4, 3, stride=2, padding=1, bias=False)
    x = torch.randn(2, 3, 8, 12, requires_grad=True)
    y = torch.randn_like(conv(x))
    (vjp,) = torch.autograd.grad(conv(x), x, y)
    assert torch.allclose(adjoint(conv, x, y), vjp)


@pytest.mark.parametrize("stride", [1, 2])
def test_equivariant_to_a_roll_in_longitude(stride):
    conv = rc.PeriodicConv2d(3, 4, 3, stride=stride, padding=1)
    x = torch.randn(2, 3, 8, 16)
    shift = 2 * stride  # a multiple of the stride, so the subsampled grid rolls with it
    assert torch.allclose(conv(torch.roll(x, shift, dims=-1)), torch.roll(conv(x), shift // stride, dims=-1))


def test_not_equivariant_to_a_roll_in_latitude_and_no_wrap_across_the_poles():
    conv = rc.PeriodicConv2d(1, 1, 3, padding=1, bias=False)
    nn.init.constant_(conv.weight, 1.0)
    x = torch.zeros(1, 1, 6, 8)
    x[..., 0, 3] = 1.0  # a spike in the northernmost row
    y = conv(x)
    assert y[..., -1, :].abs().max() == 0  # nothing reaches the southernmost row
    assert y[..., 0, 2:5].eq(1).all() and y[..., 1, 2:5].eq(1).all()
    circular = nn.Conv2d(1, 1, 3, padding=1, padding_mode="circular", bias=False)
    nn.init.constant_(circular.weight, 1.0)
    assert circular(x)[..., -1, :].abs().max() == 1  # what PyTorch's circular mode does: it wraps latitude
    x = torch.zeros(1, 1, 6, 8)
    x[..., 2, 0] = 1.0  # a spike at the first longitude reaches the last one
    assert conv(x)[..., 2, -1] == 1


def test_same_constructor_and_state_dict_as_conv2d():
    plain = nn.Conv2d(3, 5, (3, 5), stride=(1, 2), padding=(1, 2), dilation=1, groups=1, bias=True)
    periodic = rc.PeriodicConv2d(3, 5, (3, 5), stride=(1, 2), padding=(1, 2), dilation=1, groups=1, bias=True)
    periodic.load_state_dict(plain.state_dict())
    x = torch.randn(2, 3, 8, 16)
    assert periodic(x).shape == plain(x).shape
    # away from the longitude edges both see the same pixels
    assert torch.allclose(periodic(x)[..., 2:-2], plain(x)[..., 2:-2])
    assert not torch.allclose(periodic(x), plain(x))


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="padding_mode"):
        rc.PeriodicConv2d(3, 5, 3, padding=1, padding_mode="circular")
    conv = rc.PeriodicConv2d(3, 5, 5, padding=3)
    with pytest.raises(ValueError, match="longitude padding"):
        conv(torch.randn(1, 3, 8, 2))
    with pytest.raises(ValueError, match="lat, lon"):
        conv(torch.randn(3, 8, 8))


def periodic_net(dropout: float = 0.0) -> nn.Sequential:
    block = rc.Residual(nn.Sequential(rc.PeriodicConv2d(6, 6, 3, padding=1), nn.ReLU(), nn.Dropout(dropout),
                                      rc.PeriodicConv2d(6, 6, 3, padding=1)), post=nn.ReLU())
    return nn.Sequential(rc.PeriodicConv2d(2, 6, 5, padding=2), nn.ReLU(), block, rc.PeriodicConv2d(6, 2, 3, padding=1))


def test_reverse_pass_through_a_model_pairs_every_layer_with_its_input_shape():
    model = periodic_net()
    x = torch.randn(3, 2, 8, 16)
    pairs = rc.reverse_pass(model, x)
    convs = [m for m in model.modules() if isinstance(m, rc.PeriodicConv2d)]
    assert len(pairs) == len(convs) == 4
    for (d, d_rec), conv in zip(pairs, convs):
        assert d_rec.shape == d.shape
        assert d.shape[1] == conv.in_channels
    assert torch.equal(pairs[0][0], x)


def test_linear_model_reverse_pass_is_its_transpose():
    model = nn.Sequential(rc.PeriodicConv2d(2, 4, 3, padding=1, bias=False),
                          rc.PeriodicConv2d(4, 3, 3, stride=2, padding=1, bias=False))
    x = torch.randn(2, 2, 8, 12, requires_grad=True)
    y = model(x)
    (vjp,) = torch.autograd.grad(y, x, y)
    # the reverse pass starts from the output itself: d'_1 = Aᵀ A x
    d1_rec = rc.reverse_pass(model, x)[0][1]
    assert torch.allclose(d1_rec, vjp)


def test_rr_loss_gradients_reach_every_periodic_conv():
    model = periodic_net(dropout=0.1)
    x = torch.randn(3, 2, 8, 16)
    rc.rr_loss(model, x, reduction="mean").backward()
    for m in model.modules():
        if isinstance(m, rc.PeriodicConv2d):
            assert m.weight.grad is not None and m.weight.grad.abs().sum() > 0
