"""A small fully convolutional autoencoder with symmetric skip connections, after Dong et al. (2017).

Dong et al., "Learning deep representations using convolutional auto-encoders with symmetric skip
connections": an encoder of 3×3 convolutions with BN and ReLU that down-samples with stride-2
convolutions instead of pooling, a decoder of transposed convolutions that mirrors it, and element-wise
shortcuts from encoder to decoder every two layers; pretrained end to end to restore corrupted images,
after which the encoder is fine-tuned with a classifier.

Ours (the sizes are not theirs): ``K = len(channels)`` encoder stages; stage ``k`` is

    conv3×3(c_{k-1} → c_k, stride 1) → BN → ReLU → conv3×3(c_k → c_k, stride 2) → BN → ReLU

(``c_0`` the image channels), so a 32×32 image becomes ``c_K × 32/2^K × 32/2^K``. Decoder stage ``k``
mirrors it with transposed convolutions:

    convT3×3(c_k → c_k, stride 2) → BN → ReLU → convT3×3(c_k → c_{k-1}, stride 1) [→ BN]

and its output ``g_{k-1}`` becomes ``ReLU(g_{k-1} + h_{k-1})`` with the shortcut (``h_{k-1}`` the output of
encoder stage ``k-1``), or ``ReLU(g_{k-1})`` without it. The last decoder layer (to the image) has a bias,
no BN and no activation (the images are normalised, real-valued), and the corrupted image itself is not
passed to the output (that would let the network copy its input). Shortcuts therefore join every stage
boundary inside the network, i.e. every two layers.

The encoder is an ``nn.Sequential`` of ``nn.Sequential`` stages made only of ``Conv2d``, ``BatchNorm2d``
and ``ReLU``; :func:`encoder_classifier` adds global average pooling, ``Flatten`` and a linear layer. The
reverse-pass registry covers all of them, so the classifier trains with RR unchanged: its reverse pass is
a decoder with tied weights (transposed convolutions re-using the encoder's filters).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn

from .resnet import he_init

__all__ = ["SkipAutoencoder", "conv_encoder", "encoder_classifier"]


def _check_channels(channels: Sequence[int], in_channels: int) -> tuple[int, ...]:
    channels = tuple(int(c) for c in channels)
    if not channels or any(c < 1 for c in channels) or in_channels < 1:
        raise ValueError(f"channels must be one or more positive widths and in_channels >= 1, got {channels}, {in_channels}")
    return channels


def conv_encoder(channels: Sequence[int] = (16, 32, 64), in_channels: int = 3) -> nn.Sequential:
    """The encoder: ``len(channels)`` stages (children ``stage1``, ...), each halving the resolution.

    Input ``[B, in_channels, H, W]`` (H, W divisible by ``2**len(channels)``), output ``[B, channels[-1], H/2^K, W/2^K]``.
    """
    channels = _check_channels(channels, in_channels)
    stages = OrderedDict()
    for k, (c_in, c_out) in enumerate(zip((in_channels, *channels[:-1]), channels), start=1):
        stages[f"stage{k}"] = nn.Sequential(OrderedDict(
            conv1=nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), bn1=nn.BatchNorm2d(c_out), relu1=nn.ReLU(),
            conv2=nn.Conv2d(c_out, c_out, 3, stride=2, padding=1, bias=False), bn2=nn.BatchNorm2d(c_out), relu2=nn.ReLU(),
        ))
    return he_init(nn.Sequential(stages))


def _decoder_stage(c_in: int, c_out: int, last: bool) -> nn.Sequential:
    layers = OrderedDict(
        up=nn.ConvTranspose2d(c_in, c_in, 3, stride=2, padding=1, output_padding=1, bias=False),
        bn1=nn.BatchNorm2d(c_in), relu=nn.ReLU(),
        conv=nn.ConvTranspose2d(c_in, c_out, 3, padding=1, bias=last),
    )
    if not last:
        layers["bn2"] = nn.BatchNorm2d(c_out)
    return nn.Sequential(layers)


class SkipAutoencoder(nn.Module):
    """Encoder :func:`conv_encoder` and a mirrored decoder, with (``skips=True``) or without symmetric shortcuts.

    ``forward(x [B, C, H, W]) -> [B, C, H, W]``: the reconstruction (same units as ``x``). ``encoder`` is the
    part that :func:`encoder_classifier` re-uses; ``decoder[k]`` maps encoder stage ``k+1``'s output back to
    stage ``k``'s (``decoder[0]``: to the image).
    """

    def __init__(self, channels: Sequence[int] = (16, 32, 64), in_channels: int = 3, skips: bool = True):
        super().__init__()
        channels = _check_channels(channels, in_channels)
        self.channels, self.in_channels, self.skips = channels, in_channels, bool(skips)
        self.encoder = conv_encoder(channels, in_channels)
        outs = (in_channels, *channels[:-1])
        self.decoder = nn.ModuleList(_decoder_stage(c, o, last=k == 0) for k, (c, o) in enumerate(zip(channels, outs)))

    def forward(self, x: Tensor) -> Tensor:
        factor = 2 ** len(self.channels)
        if x.dim() != 4 or x.shape[1] != self.in_channels or x.shape[2] % factor or x.shape[3] % factor:
            raise ValueError(f"SkipAutoencoder expects [B, {self.in_channels}, H, W] with H and W divisible by "
                             f"{factor}, got {tuple(x.shape)}")
        features = []
        h = x
        for stage in self.encoder:
            h = stage(h)
            features.append(h)
        g = h
        for k in reversed(range(len(self.decoder))):
            g = self.decoder[k](g)
            if k > 0:
                g = F.relu(g + features[k - 1]) if self.skips else F.relu(g)
        return g

    def extra_repr(self) -> str:
        return f"channels={self.channels}, in_channels={self.in_channels}, skips={self.skips}"


def encoder_classifier(encoder: nn.Sequential, classes: int) -> nn.Sequential:
    """``encoder`` (the module itself, not a copy) → global average pooling → Flatten → Linear(c_K, classes).

    Children: ``encoder``, ``pool``, ``flatten``, ``fc``; ``fc`` has PyTorch's default initialisation.
    """
    if classes < 1:
        raise ValueError(f"classes must be >= 1, got {classes}")
    width = [m for m in encoder.modules() if isinstance(m, nn.Conv2d)][-1].out_channels
    return nn.Sequential(OrderedDict(encoder=encoder, pool=nn.AdaptiveAvgPool2d(1), flatten=nn.Flatten(),
                                     fc=nn.Linear(width, classes)))
