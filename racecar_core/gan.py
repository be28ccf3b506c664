"""A DCGAN for 28×28 grey images and its training objective with the reverse pass on either network.

The networks are plain ``nn.Sequential`` stacks, so :func:`racecar_core.reverse_pass` walks both:

* generator ``G``: ``z`` [B, z_dim] → Linear → Unflatten to [4w, 7, 7] → BN → ReLU → ConvTranspose (stride 2)
  → BN → ReLU → ConvTranspose (stride 2) → Tanh → image [B, 1, 28, 28] in [−1, 1];
* discriminator ``D``: image → Conv (stride 2) → LeakyReLU(0.2) → Conv (stride 2) → LeakyReLU(0.2) → Flatten
  → Linear → logit [B, 1].

``w`` is the width. The reverse pass of ``G`` maps an image back to a latent ``z'`` through ``Gᵀ``
(reconstructing every intermediate state); that of ``D`` maps the logit back to an image. Layers followed by
BatchNorm have no bias. BatchNorm sits in the generator only (Radford et al. (2016) also normalised the
discriminator; without it, D's real and generated batches do not interact through batch statistics and its
reverse pass needs none). These, the channel counts, 4×4 kernels (as in PyTorch's DCGAN example; 3×3 and
5×5 use ``output_padding``) and z_dim = 64 are our choices: the paper does not describe its GAN.

:class:`GANObjective` plugs the alternating DCGAN updates into :func:`racecar_core.train` (one loop with
checkpoints, exact resume and NaN stop for every chapter).
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize

from .reverse import MODES, reconstruction_loss, record, reverse
from .training import Evaluate, Objective, StepContext, TrainConfig, make_optimizer

Upsampling = Literal["transposed", "nearest"]
IMAGE_SHAPE = (1, 28, 28)


def _kernel_padding(kernel_size: int) -> tuple[int, int]:
    """(padding, output_padding) that make a stride-2 (transposed) convolution halve (double) 14 and 28."""
    if kernel_size not in (3, 4, 5):
        raise ValueError(f"kernel_size must be 3, 4 or 5, got {kernel_size!r}")
    return (kernel_size - 1) // 2, kernel_size % 2


def _up_block(c_in: int, c_out: int, kernel_size: int, upsampling: Upsampling, bias: bool) -> list[nn.Module]:
    """Double the resolution: a stride-2 transposed convolution, or nearest upsampling and a convolution."""
    padding, output_padding = _kernel_padding(kernel_size)
    if upsampling == "transposed":
        return [nn.ConvTranspose2d(c_in, c_out, kernel_size, 2, padding, output_padding, bias=bias)]
    if kernel_size % 2 == 0:
        raise ValueError("upsampling='nearest' needs an odd kernel_size (3 or 5) to keep the size")
    return [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, kernel_size, 1, padding, bias=bias)]


def dcgan_generator(width: int = 16, z_dim: int = 64, *, kernel_size: int = 4,
                    upsampling: Upsampling = "transposed") -> nn.Sequential:
    """``z`` [B, z_dim] → image [B, 1, 28, 28] in [−1, 1]. Channels 4·width at 7×7, 2·width at 14×14.

    ``kernel_size`` 4 (padding 1) or 3 / 5 (padding 1 / 2 with ``output_padding=1``). ``upsampling``:
    ``"transposed"`` (DCGAN) or ``"nearest"`` (``nn.Upsample`` then a convolution; odd kernels only).
    """
    _check_sizes(width, z_dim)
    if upsampling not in ("transposed", "nearest"):
        raise ValueError(f"upsampling must be 'transposed' or 'nearest', got {upsampling!r}")
    c1, c2 = 4 * width, 2 * width
    return nn.Sequential(
        nn.Linear(z_dim, c1 * 7 * 7, bias=False), nn.Unflatten(1, (c1, 7, 7)), nn.BatchNorm2d(c1), nn.ReLU(),
        *_up_block(c1, c2, kernel_size, upsampling, bias=False), nn.BatchNorm2d(c2), nn.ReLU(),
        *_up_block(c2, 1, kernel_size, upsampling, bias=True), nn.Tanh(),
    )


def dcgan_discriminator(width: int = 16, *, kernel_size: int = 4, slope: float = 0.2) -> nn.Sequential:
    """Image [B, 1, 28, 28] → logit [B, 1]. Channels 2·width at 14×14, 4·width at 7×7; LeakyReLU(``slope``)."""
    _check_sizes(width, 1)
    padding, _ = _kernel_padding(kernel_size)
    c1, c2 = 2 * width, 4 * width
    return nn.Sequential(
        nn.Conv2d(1, c1, kernel_size, 2, padding), nn.LeakyReLU(slope),
        nn.Conv2d(c1, c2, kernel_size, 2, padding), nn.LeakyReLU(slope),
        nn.Flatten(), nn.Linear(c2 * 7 * 7, 1),
    )


def _check_sizes(width: int, z_dim: int) -> None:
    for name, value in (("width", width), ("z_dim", z_dim)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")


def dcgan_init_(model: nn.Module) -> nn.Module:
    """Radford et al.'s initialisation: weights N(0, 0.02), BatchNorm scales N(1, 0.02), biases zero."""
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.modules.conv._ConvNd)):
            nn.init.normal_(module.weight, 0.0, 0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.modules.batchnorm._BatchNorm):
            nn.init.normal_(module.weight, 1.0, 0.02)
            nn.init.zeros_(module.bias)
    return model


class GAN(nn.Module):
    """A generator and a discriminator in one module, so :func:`racecar_core.train` checkpoints both.

    ``gan(z)`` is ``gan.generator(z)``.
    """

    def __init__(self, generator: nn.Module, discriminator: nn.Module, z_dim: int):
        super().__init__()
        self.generator, self.discriminator, self.z_dim = generator, discriminator, int(z_dim)

    def forward(self, z: Tensor) -> Tensor:
        return self.generator(z)

    def latent(self, n: int, seed: int | None = None, device: torch.device | str | None = None) -> Tensor:
        """``n`` latent vectors N(0, I) [n, z_dim]: from a generator seeded with ``seed``, or the global RNG."""
        device = device if device is not None else next(self.parameters()).device
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        return torch.randn(n, self.z_dim, generator=generator).to(device)

    @torch.no_grad()
    def sample(self, z: Tensor, batch_size: int = 500) -> Tensor:
        """Images G(z) [n, 1, 28, 28] in [−1, 1], in batches, in the model's current mode, on the CPU."""
        return torch.cat([self.generator(part).cpu() for part in z.split(batch_size)])


def dcgan(width: int = 16, z_dim: int = 64, *, kernel_size: int = 4, upsampling: Upsampling = "transposed") -> GAN:
    """A DCGAN for 28×28 grey images with Radford et al.'s initialisation (seed torch before calling)."""
    generator = dcgan_generator(width, z_dim, kernel_size=kernel_size, upsampling=upsampling)
    discriminator = dcgan_discriminator(width, kernel_size=kernel_size)
    return dcgan_init_(GAN(generator, discriminator, z_dim))


# --------------------------------------------------------------------------------------------------
# The objective
# --------------------------------------------------------------------------------------------------


def _bce(logits: Tensor, target: float) -> Tensor:
    logits = logits.float()
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, target))


@contextlib.contextmanager
def _frozen(module: nn.Module):
    """No parameter gradients for ``module`` (inputs still get theirs)."""
    trainable = [p for p in module.parameters() if p.requires_grad]
    for p in trainable:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p in trainable:
            p.requires_grad_(True)


class GANObjective(Objective):
    """Non-saturating GAN losses with the reverse pass (RR) on the generator, the discriminator or both.

    Each step draws ``z`` ~ N(0, I) from the global torch RNG (saved in checkpoints, so a resumed run is
    exact), runs ``G(z)`` once (recorded when ``lambda_g`` > 0) and then

    1. updates ``D`` on ``L_D = BCE(D(x), 1) + BCE(D(G(z)), 0) + λ_D·RR_D``, where ``RR_D`` is the reverse
       pass of ``D`` from its logit back to the image on the **real** batch ``x`` (recorded forward pass);
    2. updates ``G`` on ``L_G = BCE(D(G(z)), 1) + λ_G·RR_G`` with the updated ``D``, where ``RR_G`` is the
       reverse pass of ``G`` from the generated image back to ``z`` on the recorded forward pass of step 1.

    RR is :func:`racecar_core.reconstruction_loss` with ``rr_mode`` and ``rr_reduction`` (default ``"mean"``,
    our choice: each layer's term is ½·MSE, so λ does not scale with batch or image size). λ rises linearly
    over ``TrainConfig.lambda_rr_warmup`` steps if that is set; ``TrainConfig.update_bn_stats`` applies to
    the generator's reverse pass. Optimisers ``"discriminator"`` and ``"generator"`` both follow the
    config (DCGAN: Adam, ``lr=2e-4``, ``betas=(0.5, 0.999)``). The batch's labels are not used.

    Logged terms: ``loss_d`` and ``loss_g`` (the adversarial parts), ``rr_d`` and ``rr_g`` (unweighted; only
    when their λ > 0), ``d_real`` and ``d_fake`` (mean probability ``D`` gives real and generated images
    before its update).
    """

    def __init__(self, lambda_g: float = 0.0, lambda_d: float = 0.0, rr_mode: str = "full", rr_reduction: str = "mean"):
        for name, value in (("lambda_g", lambda_g), ("lambda_d", lambda_d)):
            if not float(value) >= 0:
                raise ValueError(f"{name} must be >= 0, got {value!r}")
        if rr_mode not in MODES:
            raise ValueError(f"rr_mode must be one of {MODES}, got {rr_mode!r}")
        if rr_reduction not in ("sum", "mean"):
            raise ValueError(f"rr_reduction must be 'sum' or 'mean', got {rr_reduction!r}")
        self.lambda_g, self.lambda_d = float(lambda_g), float(lambda_d)
        self.rr_mode, self.rr_reduction = rr_mode, rr_reduction

    def settings(self) -> dict:
        """JSON-able description, for a run's ``identity``."""
        return {"objective": "gan", "lambda_g": self.lambda_g, "lambda_d": self.lambda_d,
                "rr_mode": self.rr_mode, "rr_reduction": self.rr_reduction}

    def setup(self, model: nn.Module, config: TrainConfig, device: torch.device) -> None:
        if not isinstance(model, GAN):
            raise TypeError(f"GANObjective trains a racecar_core.gan.GAN, got {type(model).__name__}")
        if config.lambda_rr or config.lambda_ort:
            raise ValueError("GANObjective weighs RR with its own lambda_g and lambda_d; leave TrainConfig.lambda_rr "
                             "and lambda_ort at 0")

    def optimizers(self, model: GAN, config: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        return {"discriminator": make_optimizer(model.discriminator.parameters(), config),
                "generator": make_optimizer(model.generator.parameters(), config)}

    def _rr(self, tape, config: TrainConfig) -> Tensor:
        pairs = reverse(tape, self.rr_mode, update_bn_stats=config.update_bn_stats)
        return reconstruction_loss(pairs, self.rr_reduction).float()

    def step(self, model: GAN, batch: tuple[Tensor, ...], ctx: StepContext) -> dict[str, Tensor]:
        real = batch[0]
        config = ctx.config
        ramp = 1.0 if not config.lambda_rr_warmup else min(1.0, (ctx.step + 1) / config.lambda_rr_warmup)
        autocast = torch.autocast("cuda", dtype=torch.bfloat16, enabled=config.amp and real.is_cuda)
        generator, discriminator = model.generator, model.discriminator
        z = torch.randn(len(real), model.z_dim, device=real.device)
        with parametrize.cached(), autocast:
            fake, g_tape = record(generator, z) if self.lambda_g else (generator(z), None)
            real_logit, d_tape = record(discriminator, real) if self.lambda_d else (discriminator(real), None)
            fake_logit = discriminator(fake.detach())
            terms = {"loss_d": _bce(real_logit, 1.0) + _bce(fake_logit, 0.0),
                     "d_real": torch.sigmoid(real_logit.detach().float()).mean(),
                     "d_fake": torch.sigmoid(fake_logit.detach().float()).mean()}
            loss_d = terms["loss_d"]
            if self.lambda_d:
                terms["rr_d"] = self._rr(d_tape, config)
                loss_d = loss_d + ramp * self.lambda_d * terms["rr_d"]
        ctx.update("discriminator", loss_d, terms)
        with parametrize.cached(), autocast, _frozen(discriminator):
            terms["loss_g"] = _bce(discriminator(fake), 1.0)
            loss_g = terms["loss_g"]
            if self.lambda_g:
                terms["rr_g"] = self._rr(g_tape, config)
                loss_g = loss_g + ramp * self.lambda_g * terms["rr_g"]
        ctx.update("generator", loss_g, terms)
        return terms


ARMS: dict[str, tuple[bool, bool]] = {"Std": (False, False), "RR-G": (True, False), "RR-D": (False, True),
                                      "RR-both": (True, True)}


def arm_objective(arm: str, lambda_g: float = 0.0, lambda_d: float = 0.0, **kwargs) -> GANObjective:
    """The objective of arm ``"Std"``, ``"RR-G"``, ``"RR-D"`` or ``"RR-both"``: the λ of a network without RR
    in that arm is set to 0; a λ the arm uses must be > 0."""
    if arm not in ARMS:
        raise ValueError(f"arm must be one of {list(ARMS)}, got {arm!r}")
    use_g, use_d = ARMS[arm]
    for used, name, value in ((use_g, "lambda_g", lambda_g), (use_d, "lambda_d", lambda_d)):
        if used and not value > 0:
            raise ValueError(f"arm {arm} needs {name} > 0, got {value!r}")
    return GANObjective(lambda_g if use_g else 0.0, lambda_d if use_d else 0.0, **kwargs)


def dcgan_config(steps: int, **overrides) -> TrainConfig:
    """Radford et al.'s optimiser settings (Adam, lr 2e-4, betas (0.5, 0.999)) for ``steps`` steps."""
    return TrainConfig(steps=steps, **{"lr": 2e-4, "betas": (0.5, 0.999), "optimizer": "adam", **overrides})


def sample_snapshots(z: Tensor) -> Evaluate:
    """An ``evaluate`` for :func:`racecar_core.train` that stores ``G(z)`` [n, 1, 28, 28] (key ``samples``)."""
    return lambda model: {"samples": model.sample(z.to(next(model.parameters()).device))}


__all__ = [
    "ARMS",
    "GAN",
    "GANObjective",
    "IMAGE_SHAPE",
    "arm_objective",
    "dcgan",
    "dcgan_config",
    "dcgan_discriminator",
    "dcgan_generator",
    "dcgan_init_",
    "sample_snapshots",
]
