"""The CIFAR ResNets of He et al. (2016), built from ``nn.Sequential`` and :class:`Residual` blocks.

Depth ``6n + 2`` (20, 32, 44, 56, 110, ...): a 3×3 convolution with 16 channels, BN and ReLU; three
stages of ``n`` basic blocks with 16, 32 and 64 channels, the first block of stages 2 and 3 with
stride 2; global average pooling and a linear classifier. A basic block is
``Residual(Sequential(conv3x3(stride), BN, ReLU, conv3x3, BN), shortcut, post=ReLU())``.
Where a block changes the shape, the shortcut is option A (:class:`PadShortcut`: subsample and add
zero channels, no parameters) or option B (a 1×1 convolution with stride 2 and BN); elsewhere it is
the identity. Every part has a reverse rule, so :func:`racecar_core.rr_loss` works on these models as
they are.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from .layers import PadShortcut, Residual

DEPTHS = (20, 32, 44, 56, 110)  # the depths of He et al.'s CIFAR-10 table
SHORTCUTS = ("A", "B")
WIDTHS = (16, 32, 64)


def blocks_per_stage(depth: int) -> int:
    """``n`` of a depth ``6n + 2``; raises ValueError for other depths."""
    if not isinstance(depth, int) or depth < 8 or (depth - 2) % 6:
        raise ValueError(f"a CIFAR ResNet has depth 6n+2 with n >= 1 (8, 14, 20, 32, 44, 56, 110, ...), got {depth!r}")
    return (depth - 2) // 6


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


def basic_block(in_channels: int, out_channels: int, stride: int = 1, shortcut: str = "A") -> Residual:
    """One basic block: two 3×3 convolutions with BN, ReLU between them and after the sum."""
    branch = nn.Sequential(OrderedDict(
        conv1=conv3x3(in_channels, out_channels, stride), bn1=nn.BatchNorm2d(out_channels), relu=nn.ReLU(),
        conv2=conv3x3(out_channels, out_channels), bn2=nn.BatchNorm2d(out_channels),
    ))
    if stride == 1 and in_channels == out_channels:
        short = None
    elif shortcut == "A":
        short = PadShortcut(in_channels, out_channels, stride)
    elif shortcut == "B":
        short = nn.Sequential(OrderedDict(
            conv=nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), bn=nn.BatchNorm2d(out_channels),
        ))
    else:
        raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {shortcut!r}")
    return Residual(branch, short, post=nn.ReLU())


def cifar_resnet(depth: int = 20, classes: int = 10, shortcut: str = "A", in_channels: int = 3) -> nn.Sequential:
    """He et al.'s CIFAR ResNet of ``depth`` (6n+2) with ``classes`` outputs and He initialisation.

    Children: ``conv``, ``bn``, ``relu``, ``stage1``..``stage3`` (each a Sequential of blocks), ``pool``,
    ``flatten``, ``fc``. Its weight layers (the pairs of the reverse pass) are the ``depth - 1``
    convolutions of the stem and the blocks, the projection shortcuts of option B (two) and ``fc``.
    """
    n = blocks_per_stage(depth)
    if shortcut not in SHORTCUTS:
        raise ValueError(f"shortcut must be one of {SHORTCUTS}, got {shortcut!r}")
    layers: OrderedDict[str, nn.Module] = OrderedDict(
        conv=conv3x3(in_channels, WIDTHS[0]), bn=nn.BatchNorm2d(WIDTHS[0]), relu=nn.ReLU())
    channels = WIDTHS[0]
    for index, width in enumerate(WIDTHS):
        blocks = []
        for k in range(n):
            stride = 2 if index > 0 and k == 0 else 1
            blocks.append(basic_block(channels, width, stride, shortcut))
            channels = width
        layers[f"stage{index + 1}"] = nn.Sequential(*blocks)
    layers.update(pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(), fc=nn.Linear(channels, classes))
    model = nn.Sequential(layers)
    he_init(model)
    return model


def he_init(model: nn.Module) -> nn.Module:
    """He et al.'s initialisation: convolutions N(0, 2 / fan_in) (Kaiming normal), BN weight 1 and bias 0;
    linear layers keep PyTorch's default."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    return model


def replace_head(model: nn.Sequential, classes: int) -> nn.Sequential:
    """Give ``model`` a new, freshly initialised classifier ``fc`` with ``classes`` outputs (for transfer)."""
    model.fc = nn.Linear(model.fc.in_features, classes).to(model.fc.weight.device)
    return model


__all__ = ["DEPTHS", "SHORTCUTS", "basic_block", "blocks_per_stage", "cifar_resnet", "conv3x3", "he_init", "replace_head"]
