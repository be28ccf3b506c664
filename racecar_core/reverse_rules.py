"""Reverse rules for standard PyTorch layers and for :class:`racecar_core.layers.Residual`.

Weight layers apply their exact adjoint (transpose) after subtracting their bias; pointwise layers are
applied as in the forward pass; structural layers route or reshape the signal. See ``book/method.md``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import PadShortcut, PeriodicConv2d, Residual
from .reverse import ReverseWalk, find_rule, register_reverse_rule

# --------------------------------------------------------------------------------------------------
# Weight layers: d' = Wᵀ (s − b)
# --------------------------------------------------------------------------------------------------


@register_reverse_rule(nn.Linear, kind="weight")
def _reverse_linear(layer: nn.Linear, s: Tensor, walk: ReverseWalk) -> Tensor:
    if layer.bias is not None:
        s = s - layer.bias
    return s @ layer.weight


_CONV_TRANSPOSE = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}


def _subtract_channel_bias(s: Tensor, bias: Tensor | None) -> Tensor:
    return s if bias is None else s - bias.view(1, -1, *([1] * (s.dim() - 2)))


def _padding_amounts(conv: nn.modules.conv._ConvNd) -> list[tuple[int, int]]:
    """(before, after) zero/circular/... padding of every spatial dimension, as the forward pass applies it."""
    if conv.padding == "valid":
        return [(0, 0)] * len(conv.kernel_size)
    if conv.padding == "same":
        totals = [d * (k - 1) for d, k in zip(conv.dilation, conv.kernel_size)]
        return [(t // 2, t - t // 2) for t in totals]
    return [(p, p) for p in conv.padding]


def _pad_index(n: int, before: int, after: int, mode: str) -> Tensor:
    """For each position of a padded axis, the input index it copies (−1 where the padding is zero)."""
    i = torch.arange(-before, n + after)
    if mode == "circular":
        return i % n
    if mode == "replicate":
        return i.clamp(0, n - 1)
    if mode == "reflect":
        i = i.abs()
        return torch.where(i >= n, 2 * (n - 1) - i, i)
    return torch.where((i >= 0) & (i < n), i, torch.full_like(i, -1))


def _pad_adjoint(z: Tensor, shape: torch.Size, pads: list[tuple[int, int]], modes: list[str]) -> Tensor:
    """Adjoint of padding ``x`` (of ``shape``) to ``z``, axis ``i`` in mode ``modes[i]``: padded values added to their sources."""
    for axis, ((before, after), mode) in enumerate(zip(pads, modes)):
        dim = 2 + axis
        index = _pad_index(shape[dim], before, after, mode).to(z.device)
        keep = index >= 0
        sized = list(z.shape)
        sized[dim] = shape[dim]
        z = z.new_zeros(sized).index_add(dim, index[keep], z.index_select(dim, keep.nonzero().squeeze(1)))
    return z


def _conv_adjoint(conv: nn.modules.conv._ConvNd, s: Tensor, x_shape: torch.Size, pads: list[tuple[int, int]],
                  modes: list[str]) -> Tensor:
    """Transposed convolution of ``s − b`` onto the padded input, then the adjoint of the padding (``modes`` per axis)."""
    n = len(conv.kernel_size)
    s = _subtract_channel_bias(s, conv.bias)
    zero_fast_path = all(m == "zeros" for m in modes) and all(a == b for a, b in pads)
    padded = [x_shape[2 + i] + (0 if zero_fast_path else sum(pads[i])) for i in range(n)]
    pad_arg = [p for p, _ in pads] if zero_fast_path else [0] * n
    # output_padding picks the input size among those that give the same forward output size
    output_padding = [
        padded[i] + 2 * pad_arg[i]
        - ((s.shape[2 + i] - 1) * conv.stride[i] + conv.dilation[i] * (conv.kernel_size[i] - 1) + 1)
        for i in range(n)
    ]
    z = _CONV_TRANSPOSE[n](s, conv.weight, None, conv.stride, pad_arg, output_padding, conv.groups, conv.dilation)
    return z if zero_fast_path else _pad_adjoint(z, x_shape, pads, modes)


@register_reverse_rule(nn.Conv1d, nn.Conv2d, nn.Conv3d, kind="weight")
def _reverse_conv(conv: nn.modules.conv._ConvNd, s: Tensor, walk: ReverseWalk) -> Tensor:
    """Exact adjoint of the convolution, including its padding mode; the result has the input's shape."""
    n = len(conv.kernel_size)
    return _conv_adjoint(conv, s, walk.input_of(conv).shape, _padding_amounts(conv), [conv.padding_mode] * n)


@register_reverse_rule(PeriodicConv2d, kind="weight")
def _reverse_periodic_conv(conv: PeriodicConv2d, s: Tensor, walk: ReverseWalk) -> Tensor:
    """Exact adjoint: transposed convolution, latitude padding dropped, wrapped longitude columns folded back."""
    height, width = walk.input_of(conv).shape[-2:]
    (north, south), (west, east) = conv.pads()
    s = _subtract_channel_bias(s, conv.bias)
    padded = (height + north + south, width + west + east)
    output_padding = [
        padded[i] - ((s.shape[2 + i] - 1) * conv.stride[i] + conv.dilation[i] * (conv.kernel_size[i] - 1) + 1)
        for i in range(2)
    ]
    z = F.conv_transpose2d(s, conv.weight, None, conv.stride, 0, output_padding, conv.groups, conv.dilation)
    z = z[..., north:north + height, :]
    x = z[..., west:west + width].clone()
    x[..., :east] += z[..., west + width:]  # the east padding copied the first columns
    x[..., width - west:] += z[..., :west]  # the west padding copied the last columns
    return x


@register_reverse_rule(nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d, kind="weight")
def _reverse_conv_transpose(conv: nn.modules.conv._ConvTransposeNd, s: Tensor, walk: ReverseWalk) -> Tensor:
    """The adjoint of a transposed convolution is the convolution with the same weight.

    The convolution gives ``in + output_padding // stride`` positions per axis; ``output_padding`` may reach
    the stride when the dilation is larger, and the extra positions (no input pixel) are cropped.
    """
    s = _subtract_channel_bias(s, conv.bias)
    x = _CONV[len(conv.kernel_size)](s, conv.weight, None, conv.stride, conv.padding, conv.dilation, conv.groups)
    size = walk.input_of(conv).shape[2:]
    return x if x.shape[2:] == size else x[(..., *(slice(0, n) for n in size))]


# --------------------------------------------------------------------------------------------------
# Pointwise layers: applied as in the forward pass (the authors' rule for normalisation + activation)
# --------------------------------------------------------------------------------------------------


@register_reverse_rule(nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, kind="pointwise")
def _reverse_batch_norm(bn: nn.modules.batchnorm._BatchNorm, s: Tensor, walk: ReverseWalk) -> Tensor:
    """Training mode: normalise with the reverse batch's own statistics, leaving the running statistics
    untouched unless ``update_bn_stats``; evaluation mode: the running statistics, as in the forward pass."""
    uses_batch_stats = bn.training or bn.running_mean is None
    if uses_batch_stats and not walk.update_bn_stats:
        return F.batch_norm(s, None, None, bn.weight, bn.bias, True, 0.0, bn.eps)
    return bn(s)


@register_reverse_rule(
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU, nn.Mish,
    nn.Tanh, nn.Sigmoid, nn.Hardtanh, nn.Softplus, nn.Softsign, nn.LayerNorm, nn.GroupNorm,
    kind="pointwise",
)
def _reverse_as_forward(module: nn.Module, s: Tensor, walk: ReverseWalk) -> Tensor:
    return module(s)


@register_reverse_rule(nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout, kind="pointwise")
def _reverse_identity(module: nn.Module, s: Tensor, walk: ReverseWalk) -> Tensor:
    return s


# --------------------------------------------------------------------------------------------------
# Structural layers
# --------------------------------------------------------------------------------------------------


def _leaves(seq: nn.Sequential):
    """Children of a Sequential with nested Sequentials (same rule) inlined: composition is associative."""
    for child in seq:
        if find_rule(child).fn is _reverse_sequential:
            yield from _leaves(child)
        else:
            yield child


@register_reverse_rule(nn.Sequential)
def _reverse_sequential(seq: nn.Sequential, s: Tensor, walk: ReverseWalk) -> Tensor:
    """Children in reverse order; each run of consecutive pointwise children is applied as one unit in
    forward order (e.g. BN then ReLU), so it acts on the output of the weight layer that follows it."""
    groups: list[list[nn.Module] | nn.Module] = []
    for child in _leaves(seq):
        if find_rule(child).kind == "pointwise":
            if groups and isinstance(groups[-1], list):
                groups[-1].append(child)
            else:
                groups.append([child])
        else:
            groups.append(child)
    for group in reversed(groups):
        s = walk.reverse_run(group, s) if isinstance(group, list) else walk.reverse(group, s)
    return s


@register_reverse_rule(nn.Flatten, nn.Unflatten, kind="view")
def _reverse_reshape(module: nn.Module, s: Tensor, walk: ReverseWalk) -> Tensor:
    return s.reshape(walk.input_of(module).shape)


def _pool_factors(in_size, out_size) -> list[int]:
    if any(i % o for i, o in zip(in_size, out_size)):
        raise NotImplementedError(f"reverse of adaptive average pooling needs output {tuple(out_size)} to divide "
                                  f"input {tuple(in_size)}")
    return [i // o for i, o in zip(in_size, out_size)]


@register_reverse_rule(nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d)
def _reverse_adaptive_avg_pool(pool: nn.Module, s: Tensor, walk: ReverseWalk) -> Tensor:
    """Adjoint of averaging over equal blocks: spread each value evenly over its block."""
    in_size = walk.input_of(pool).shape[2:]
    factors = _pool_factors(in_size, s.shape[2:])
    return F.interpolate(s, size=tuple(in_size), mode="nearest") / float(torch.tensor(factors).prod())


@register_reverse_rule(nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)
def _reverse_avg_pool(pool: nn.Module, s: Tensor, walk: ReverseWalk) -> Tensor:
    """Adjoint of average pooling: a depthwise transposed convolution with a uniform kernel."""
    x = walk.input_of(pool)
    n = x.dim() - 2
    as_tuple = lambda v: tuple(v) if isinstance(v, (tuple, list)) else (v,) * n  # noqa: E731
    kernel, stride, padding = as_tuple(pool.kernel_size), as_tuple(pool.stride or pool.kernel_size), as_tuple(pool.padding)
    if pool.ceil_mode or getattr(pool, "divisor_override", None) or (any(padding) and not pool.count_include_pad):
        raise NotImplementedError("reverse of AvgPool supports ceil_mode=False, no divisor_override, count_include_pad=True")
    channels = x.shape[1]
    weight = s.new_full((channels, 1, *kernel), 1.0 / float(torch.tensor(kernel).prod()))
    output_padding = [x.shape[2 + i] + 2 * padding[i] - ((s.shape[2 + i] - 1) * stride[i] + kernel[i]) for i in range(n)]
    return _CONV_TRANSPOSE[n](s, weight, None, stride, padding, output_padding, channels)


@register_reverse_rule(nn.Upsample)
def _reverse_upsample(up: nn.Upsample, s: Tensor, walk: ReverseWalk) -> Tensor:
    """Exact adjoint of the (linear) interpolation, every mode: its vector-Jacobian product. For ``nearest``
    with an integer factor this sums each block of copies back into its source pixel."""
    x = torch.zeros_like(walk.input_of(up)).requires_grad_()
    with torch.enable_grad():
        (adjoint,) = torch.autograd.grad(up(x), x, s, create_graph=s.requires_grad)
    return adjoint


@register_reverse_rule(PadShortcut)
def _reverse_pad_shortcut(layer: PadShortcut, s: Tensor, walk: ReverseWalk) -> Tensor:
    """Adjoint of subsampling plus zero channels: drop the added channels, scatter back to the sampled pixels."""
    x_rec = s.new_zeros(walk.input_of(layer).shape)
    x_rec[:, :, :: layer.stride, :: layer.stride] = s[:, layer.pad_front : layer.pad_front + layer.in_channels]
    return x_rec


@register_reverse_rule(Residual)
def _reverse_residual(block: Residual, s: Tensor, walk: ReverseWalk) -> Tensor:
    """``x' = branch'(s) + shortcut'(s)`` with ``s = post(y')``: the fork's adjoint sums both paths."""
    s = walk.reverse(block.post, s)
    walk.at_output = False
    start = walk.target
    from_branch = walk.reverse(block.branch, s)
    walk.target = start
    return from_branch + walk.reverse(block.shortcut, s)
