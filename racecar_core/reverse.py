"""The tied reverse pass: a registry of reverse rules and the walk that applies them.

A forward pass is recorded on a :class:`Tape` (the input and output of every module call). The
reverse pass then walks the module tree from the output back to the input. Each module type has one
*reverse rule* that maps the reverse signal at the module's output to the reverse signal at its input,
re-using the module's own parameters:

* ``"weight"`` rules (``nn.Linear``, ``nn.Conv2d``, ...) apply the transposed weight after subtracting
  the layer's bias. Every weight layer contributes one pair ``(d_m, d'_m)``: its forward input and the
  reverse signal that reconstructs it.
* ``"pointwise"`` rules (normalisations, activations, dropout) apply the module as in the forward pass.
  A run of consecutive pointwise modules in a ``nn.Sequential`` is applied as one unit, in forward
  order, so that ``d'_m = act(norm(W_mᵀ(d'_{m+1} - b_m)))`` exactly as in the authors' code. The run
  that produced the network output is not applied again: the reverse pass starts from that output.
* ``"structural"`` rules (containers, pooling, residual blocks) route the signal; ``"view"`` rules
  (``nn.Flatten``, ``nn.Unflatten``) only rearrange it, so a layer reading a reshaped tensor is paired
  with the reshaped final signal (after the pointwise run in front of the reshape).

The registry is open: :func:`register_reverse_rule` adds a rule for a new module type.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

RuleKind = Literal["weight", "pointwise", "structural", "view"]
KINDS: tuple[str, ...] = ("weight", "pointwise", "structural", "view")
Mode = Literal["full", "first", "local"]
RuleFn = Callable[[nn.Module, Tensor, "ReverseWalk"], Tensor]
Pair = tuple[Tensor, Tensor]

MODES: tuple[str, ...] = ("full", "first", "local")
Reduction = Literal["sum", "mean", "relative"]
REDUCTIONS: tuple[str, ...] = ("sum", "mean", "relative")


@dataclass(frozen=True)
class ReverseRule:
    """How one module type is reversed: ``fn(module, signal_at_output, walk) -> signal_at_input``."""

    fn: RuleFn
    kind: RuleKind


_RULES: dict[type, ReverseRule] = {}
_RESOLVED: dict[type, ReverseRule | None] = {}  # cache of find_rule by exact type; cleared on registration


class UnsupportedLayerError(TypeError):
    """A module type without a reverse rule was met in the reverse pass."""


def register_reverse_rule(*types: type, kind: RuleKind = "structural") -> Callable[[RuleFn], RuleFn]:
    """Decorator registering ``fn(module, signal, walk) -> signal`` as the reverse rule of ``types``.

    Subclasses inherit the rule of their nearest registered base class unless they register their own.
    Example::

        @register_reverse_rule(MyScale, kind="pointwise")
        def _reverse_my_scale(module, signal, walk):
            return module(signal)
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if not types or not all(isinstance(t, type) and issubclass(t, nn.Module) for t in types):
        raise TypeError("register_reverse_rule takes one or more nn.Module subclasses")

    def decorate(fn: RuleFn) -> RuleFn:
        for t in types:
            _RULES[t] = ReverseRule(fn, kind)
        _RESOLVED.clear()
        return fn

    return decorate


def find_rule(module: nn.Module) -> ReverseRule:
    """The reverse rule of ``module``'s type (nearest registered class in its MRO)."""
    kind = type(module)
    if kind not in _RESOLVED:
        _RESOLVED[kind] = next((_RULES[c] for c in kind.__mro__ if c in _RULES), None)
    rule = _RESOLVED[kind]
    if rule is not None:
        return rule
    name = type(module).__qualname__
    raise UnsupportedLayerError(
        f"no reverse rule for layer type {type(module).__module__}.{name}. Register one with "
        f"@racecar_core.register_reverse_rule({name}, kind='weight'|'pointwise'|'structural') on a "
        f"function (module, signal, walk) -> signal that maps the reverse signal at the layer's output "
        f"to its input; see racecar_core/reverse_rules.py for examples."
    )


def is_weight_layer(module: nn.Module) -> bool:
    """Whether ``module`` has a registered ``"weight"`` rule (it contributes a pair to the RR loss)."""
    try:
        return find_rule(module).kind == "weight"
    except UnsupportedLayerError:
        return False


def weight_layers(model: nn.Module) -> list[nn.Module]:
    """All weight layers of ``model`` in registration order (``model.modules()`` order)."""
    return [m for m in model.modules() if is_weight_layer(m)]


# --------------------------------------------------------------------------------------------------
# Recording the forward pass
# --------------------------------------------------------------------------------------------------


@dataclass
class Tape:
    """The recorded forward pass of one model: each module's input and output tensor, in call order."""

    model: nn.Module
    inputs: dict[nn.Module, Tensor] = field(default_factory=dict)
    outputs: dict[nn.Module, Tensor] = field(default_factory=dict)
    calls: list[nn.Module] = field(default_factory=list)

    @property
    def output(self) -> Tensor:
        """The model's output (the start of the reverse pass)."""
        return self.outputs[self.model]

    def weight_layers(self) -> list[nn.Module]:
        """Weight layers in forward call order (input layer first)."""
        return [m for m in self.calls if is_weight_layer(m)]


@contextlib.contextmanager
def _recording(model: nn.Module) -> Iterator[Tape]:
    tape = Tape(model)
    members = {m for m in model.modules()}

    def hook(module: nn.Module, args: tuple, output) -> None:
        if module not in members:
            return
        if module in tape.outputs:
            raise RuntimeError(
                f"module {type(module).__name__} was called twice in one forward pass; the reverse "
                f"pass needs one module instance per use (e.g. separate nn.ReLU() objects)"
            )
        tape.inputs[module] = args[0] if args else None
        tape.outputs[module] = output
        tape.calls.append(module)

    handle = nn.modules.module.register_module_forward_hook(hook)
    try:
        yield tape
    finally:
        handle.remove()


def record(model: nn.Module, x: Tensor) -> tuple[Tensor, Tape]:
    """Run ``model(x)`` and record it. Returns ``(output, tape)``.

    Call it inside :func:`torch.nn.utils.parametrize.cached` if the model has parametrizations and
    the reverse pass should see the same weights as the forward pass (:func:`reverse_pass` does this).
    """
    with _recording(model) as tape:
        output = model(x)
    if not isinstance(output, Tensor):
        raise TypeError(f"the reverse pass needs a model returning one tensor, got {type(output).__name__}")
    return output, tape


def layer_activations(model: nn.Module, x: Tensor) -> list[Tensor]:
    """The layer states ``[d_1, ..., d_L, d_{L+1}]``: each weight layer's input, then the model output.

    ``d_1`` is the input of the first weight layer (usually ``x``); shapes are those of the forward pass.
    """
    output, tape = record(model, x)
    return [tape.inputs[m] for m in tape.weight_layers()] + [output]


# --------------------------------------------------------------------------------------------------
# The reverse walk
# --------------------------------------------------------------------------------------------------


class ReverseWalk:
    """State of one reverse pass over a recorded :class:`Tape`; rules call :meth:`reverse` on children.

    ``target`` is the forward tensor that the current reverse signal reconstructs. In ``"local"`` mode
    (lRR) every non-pointwise module starts from the forward value of its target instead of the reverse
    signal from above (teacher forcing), so each layer reconstructs its input from its own forward output.
    """

    def __init__(self, tape: Tape, *, teacher_forcing: bool = False, update_bn_stats: bool = False):
        self.tape = tape
        self.teacher_forcing = teacher_forcing
        self.update_bn_stats = update_bn_stats
        self.at_output = True  # nothing but pointwise runs crossed yet: they produced the output
        self.target: Tensor = tape.output
        self.signal_of: dict[int, Tensor] = {id(tape.output): tape.output}
        self.view_source: dict[int, Tensor] = {}  # id(output of a view module) -> its input

    def input_of(self, module: nn.Module) -> Tensor:
        """The forward input of ``module`` (shapes for output padding, reshapes, pooling)."""
        return self.tape.inputs[module]

    def _note(self, forward: Tensor, signal: Tensor) -> None:
        self.target = forward
        self.signal_of[id(forward)] = signal

    def reverse(self, module: nn.Module, signal: Tensor) -> Tensor:
        """Map ``signal`` at ``module``'s output to its input with the module's registered rule."""
        rule = find_rule(module)
        if rule.kind == "pointwise":
            return self.reverse_run([module], signal)
        if module not in self.tape.inputs:
            raise RuntimeError(f"{type(module).__name__} was not called in the recorded forward pass")
        if self.teacher_forcing:
            signal = self.target
        result = rule.fn(module, signal, self)
        self.at_output = False
        if rule.kind == "view":
            self.view_source[id(self.tape.outputs[module])] = self.tape.inputs[module]
        self._note(self.tape.inputs[module], result)
        return result

    def reverse_run(self, modules: list[nn.Module], signal: Tensor) -> Tensor:
        """Apply a run of pointwise modules in forward order (skipped if it produced the model output)."""
        if not self.at_output:
            for module in modules:
                signal = find_rule(module).fn(module, signal, self)
        self._note(self.tape.outputs[modules[-1]], signal)
        return signal

    def final_signal(self, forward: Tensor) -> Tensor:
        """The last reverse signal that reconstructs the forward tensor ``forward`` (through reshapes)."""
        source = forward
        while id(source) in self.view_source:
            source = self.view_source[id(source)]
        signal = self.signal_of[id(source)]
        return signal if signal.shape == forward.shape else signal.reshape(forward.shape)

    def pairs(self) -> list[Pair]:
        """``(d_m, d'_m)`` for every weight layer, input layer first."""
        return [(self.tape.inputs[m], self.final_signal(self.tape.inputs[m])) for m in self.tape.weight_layers()]


def reverse(tape: Tape, mode: Mode = "full", *, update_bn_stats: bool = False) -> list[Pair]:
    """Run the reverse pass on a recorded forward pass and return the pairs ``(d_m, d'_m)``.

    ``mode``: ``"full"`` (RR: one reverse pass from the output to the input), ``"first"`` (RR¹: only the
    input layer's pair of the full pass) or ``"local"`` (lRR: each layer from its own forward output); what
    RR¹ and lRR compute is our reading of the paper's names.
    ``update_bn_stats``: whether BatchNorm running statistics are updated by the reverse pass
    (the authors' TensorFlow code did; the default is not to).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    walk = ReverseWalk(tape, teacher_forcing=mode == "local", update_bn_stats=update_bn_stats)
    walk.reverse(tape.model, tape.output)
    pairs = walk.pairs()
    if not pairs:
        raise ValueError(f"{type(tape.model).__name__} has no weight layer: nothing to reconstruct")
    return pairs[:1] if mode == "first" else pairs


def reverse_pass(model: nn.Module, x: Tensor, mode: Mode = "full", *, update_bn_stats: bool = False) -> list[Pair]:
    """Forward ``x`` through ``model``, run the tied reverse pass and return ``[(d_m, d'_m), ...]``.

    ``d_m`` is the forward input of weight layer ``m`` and ``d'_m`` its reconstruction, both with the
    forward shape; the list starts at the input layer. Gradients flow into both.
    """
    with parametrize.cached():
        _, tape = record(model, x)
        return reverse(tape, mode, update_bn_stats=update_bn_stats)


def reconstruction_loss(pairs: list[Pair], reduction: Reduction = "sum") -> Tensor:
    """``Σ_m ½‖d_m − d'_m‖² / c_m``, summed over the layers' pairs ``(d_m, d'_m)``.

    ``reduction`` sets the per-layer scale ``c_m``:

    * ``"sum"`` (default; the authors' ``tf.nn.l2_loss``): ``c_m = 1``, summed over batch and features;
    * ``"mean"``: ``c_m`` = the number of elements of ``d_m`` (each term a mean squared error);
    * ``"relative"`` (our choice, not in the paper): ``c_m = ‖d_m‖²`` over the whole batch, computed without
      gradient (detached) and clamped at 1e-12, so each term is ``½·(‖d_m − d'_m‖ / ‖d_m‖)²``, half the squared
      relative error of :func:`racecar_core.metrics.layer_errors`. Every layer weighs the same whatever the
      scale of its input; the gradient is that of ``"sum"`` divided by ``c_m``.
    """
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")
    terms = [F.mse_loss(d_rec, d, reduction="sum") * (0.5 / _scale(d, reduction)) for d, d_rec in pairs]
    return sum(terms[1:], terms[0])


def _scale(d: Tensor, reduction: str) -> Tensor | float:
    """The divisor ``c_m`` of one layer's term (see :func:`reconstruction_loss`)."""
    if reduction == "mean":
        return d.numel()
    if reduction == "relative":
        d = d.detach()
        d = d.float() if d.dtype in (torch.float16, torch.bfloat16) else d  # autocast: the norm in float32
        return d.pow(2).sum().clamp_min(1e-12)
    return 1.0


def rr_loss(model: nn.Module, x: Tensor, mode: Mode = "full", reduction: Reduction = "sum") -> Tensor:
    """The reverse-pass (racecar) loss of ``model`` on the batch ``x`` (see :func:`reverse`)."""
    return reconstruction_loss(reverse_pass(model, x, mode), reduction)
