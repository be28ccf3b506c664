"""Networks of the paper's experiments, built from plain ``nn.Sequential`` so the reverse pass can walk them."""

from __future__ import annotations

from collections.abc import Sequence

from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "elu": nn.ELU}


def glorot_init_(model: nn.Module) -> nn.Module:
    """TensorFlow's default initialisation, as in the authors' code: Glorot-uniform weights, zero biases."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    return model


def mlp(widths: Sequence[int], activation: str = "relu", *, batch_norm: bool = False,
        final_activation: bool = False, bn_eps: float = 1e-3) -> nn.Sequential:
    """``widths[0] → widths[1] → … → widths[-1]``, each layer Linear [→ BatchNorm] → activation.

    ``final_activation=False`` leaves the last layer linear (logits). ``bn_eps=1e-3`` and the default
    BatchNorm momentum 0.1 match TensorFlow's ``batch_norm(epsilon=1e-3, decay=0.9)`` in the authors' code.
    """
    if len(widths) < 2 or any(int(w) < 1 for w in widths):
        raise ValueError(f"widths needs at least two positive sizes, got {list(widths)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(widths[:-1], widths[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(widths) - 2 or final_activation:
            if batch_norm:
                layers.append(nn.BatchNorm1d(n_out, eps=bn_eps))
            layers.append(ACTIVATIONS[activation]())
    return glorot_init_(nn.Sequential(*layers))


def single_layer(n_in: int = 784, n_out: int = 10) -> nn.Sequential:
    """The authors' MNIST test: one dense layer 784 → 10 producing logits."""
    return mlp([n_in, n_out])


def peak_mlp() -> nn.Sequential:
    """The authors' peak test: 784 → 128 → BN → ReLU → 2 → BN → ReLU (the output goes into softmax)."""
    return mlp([784, 128, 2], "relu", batch_norm=True, final_activation=True)
