"""The three training stages: their networks, losses and batch preparation."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from ..config import ModelConfig
from ..flow import makeFlow
from ..losses import betaVaeLoss, latentDistance
from ..networks import Decoder, Encoder, sampleLatent
from .configs import TrainingConfig, ssimWeight

__all__: list[str] = []

# Stamps each stage's loss reads from a batch.
_VAE_KEYS = ("blended", "isolated")
_FLOW_KEYS = ("blended",)
_DEBLENDER_KEYS = ("blended", "isolated")


@dataclass
class _Stage:
    """What differs between the three stages."""

    name: str
    modules: dict[str, nn.Module]  # everything saved in a checkpoint
    trainable: list[nn.Module]
    keys: tuple[str, ...]  # batch keys the loss needs
    loss: Callable[[dict[str, torch.Tensor], torch.Generator, float], torch.Tensor]
    restartEpoch: int = 0  # epoch where the lr schedule and early-stopping count restart
    lossWeight: Callable[[int], float] = field(default=lambda epoch: 0.0)  # SSIM weight per epoch


def _autocast(device: torch.device, enabled: bool):
    return torch.autocast(device_type="cuda", dtype=torch.bfloat16, enabled=enabled and device.type == "cuda")


def _encode(
    encoder: nn.Module, x: torch.Tensor, device: torch.device, amp: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    with _autocast(device, amp):
        mean, scaleTril = encoder(x)
    return mean.float(), scaleTril.float()


def _vaeStage(modelConfig: ModelConfig, config: TrainingConfig, sigma: torch.Tensor, device: torch.device) -> _Stage:
    encoder, decoder = Encoder(modelConfig).to(device), Decoder(modelConfig).to(device)

    def loss(batch: dict[str, torch.Tensor], generator: torch.Generator, alpha: float) -> torch.Tensor:
        mean, scaleTril = _encode(encoder, batch["blended"], device, config.autocast)
        z = sampleLatent(mean, scaleTril, generator)
        with _autocast(device, config.autocast):
            prediction = decoder(z)
        return betaVaeLoss(batch["isolated"], prediction.float(), mean, scaleTril, sigma, config.beta, alpha,
                           modelConfig.normalisation)

    warm = config.ssimWarmupEpochs
    return _Stage("vae", {"encoder": encoder, "decoder": decoder}, [encoder, decoder], _VAE_KEYS, loss,
                  restartEpoch=warm, lossWeight=lambda epoch: ssimWeight(epoch, warm))


def _flowStage(modelConfig: ModelConfig, config: TrainingConfig, encoder: Encoder, device: torch.device) -> _Stage:
    flow = makeFlow(modelConfig).to(device)

    def loss(batch: dict[str, torch.Tensor], generator: torch.Generator, alpha: float) -> torch.Tensor:
        with torch.no_grad():
            z = sampleLatent(*_encode(encoder, batch["blended"], device, config.autocast), generator)
        # The flow is small and its log-determinants want float32: no autocast.
        return -flow().log_prob(z).mean()

    return _Stage("flow", {"flow": flow}, [flow], _FLOW_KEYS, loss)


def _deblenderStage(modelConfig: ModelConfig, config: TrainingConfig, encoder: Encoder, sigma: torch.Tensor,
                    device: torch.device) -> _Stage:
    deblender = copy.deepcopy(encoder).requires_grad_(True)
    noiseScale = sigma.view(1, -1, 1, 1)

    def loss(batch: dict[str, torch.Tensor], generator: torch.Generator, alpha: float) -> torch.Tensor:
        with torch.no_grad():
            target = batch["isolated"]
            noisy = target + noiseScale * torch.randn(target.shape, generator=generator, device=device)
            reference = sampleLatent(*_encode(encoder, noisy, device, config.autocast), generator)
        mean, scaleTril = _encode(deblender, batch["blended"], device, config.autocast)
        latent = mean if config.deblenderLatent == "mean" else sampleLatent(mean, scaleTril, generator)
        return latentDistance(latent, reference)

    return _Stage("deblender", {"encoder": deblender}, [deblender], _DEBLENDER_KEYS, loss)


def _checkBatch(batch: dict, stage: str, keys: Sequence[str], modelConfig: ModelConfig) -> None:
    """Raise a ValueError naming what is wrong if a batch lacks a key or has stamps of the wrong shape."""
    expected = (len(modelConfig.bands), modelConfig.stampSize, modelConfig.stampSize)
    for key in keys:
        if key not in batch:
            source = "BlendedSims" if stage == "deblender" else "IsolatedSims"
            raise ValueError(f"{stage} training needs '{key}' stamps ({source}); the data have {sorted(batch)}")
        shape = tuple(batch[key].shape[1:])
        if shape != expected:
            raise ValueError(f"{stage}: '{key}' stamps have shape {shape} but the model expects {expected} "
                             f"(bands {''.join(modelConfig.bands)}, {modelConfig.stampSize} px stamps)")


def _prepare(batch: dict[str, torch.Tensor], stage: _Stage, modelConfig: ModelConfig, device: torch.device,
             flip: bool, generator: torch.Generator | None) -> dict[str, torch.Tensor]:
    """Normalised, checked, optionally flipped stamps on ``device``."""
    _checkBatch(batch, stage.name, stage.keys, modelConfig)
    out = {key: torch.as_tensor(batch[key]).to(device, non_blocking=True).float() / modelConfig.normalisation
           for key in stage.keys}
    if flip:
        n = len(out[stage.keys[0]])
        # One flip per stamp, shared by input and target so the target stays the input's truth.
        for dim in (-1, -2):
            flipped = (torch.rand(n, generator=generator, device=device) < 0.5).view(-1, 1, 1, 1)
            out = {k: torch.where(flipped, v.flip(dim), v) for k, v in out.items()}
    return out

