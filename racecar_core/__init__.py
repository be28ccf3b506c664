"""racecar_core: reverse-pass ("racecar") training for PyTorch models.

Xie & Thuerey, "Reviving Autoencoder Pretraining" (Neural Computing and Applications, 2022): train a
network with its task loss plus a reverse pass that re-uses every weight, transposed, to reconstruct
every layer's input from the network's output.
"""

from . import reverse_rules as _reverse_rules  # noqa: F401  (registers the standard rules)
from .batches import TensorBatches
from .conv_autoencoder import SkipAutoencoder, conv_encoder, encoder_classifier
from .corruption import Corruption
from .layers import PadShortcut, PeriodicConv2d, Residual
from .losses import cross_entropy, double_softmax_cross_entropy, srip_loss
from .resnet import cifar_resnet
from .reverse import (
    ReverseWalk,
    Tape,
    UnsupportedLayerError,
    layer_activations,
    reconstruction_loss,
    record,
    register_reverse_rule,
    reverse,
    reverse_pass,
    rr_loss,
    weight_layers,
)
from .training import (
    NonFiniteLossError,
    Objective,
    StepContext,
    Supervised,
    TrainConfig,
    TrainResult,
    make_optimizer,
    seed_everything,
    train,
)

__version__ = "0.1.0"

__all__ = [
    "Corruption",
    "NonFiniteLossError",
    "Objective",
    "StepContext",
    "Supervised",
    "make_optimizer",
    "TensorBatches",
    "TrainConfig",
    "TrainResult",
    "seed_everything",
    "train",
    "PadShortcut",
    "PeriodicConv2d",
    "Residual",
    "SkipAutoencoder",
    "ReverseWalk",
    "Tape",
    "UnsupportedLayerError",
    "cifar_resnet",
    "conv_encoder",
    "cross_entropy",
    "double_softmax_cross_entropy",
    "encoder_classifier",
    "layer_activations",
    "reconstruction_loss",
    "record",
    "register_reverse_rule",
    "reverse",
    "reverse_pass",
    "rr_loss",
    "srip_loss",
    "weight_layers",
]
