r"""One stage of :func:`~.budgetTraining.trainWithinBudget`: its loss and its time-budgeted loop.

The β-VAE, flow and VAE-deblender losses of the module docstring of :mod:`.budgetTraining`, per
batch, and the loop that trains one network on them for a share of the budget: Adam with a cosine
learning-rate decay from the stage's ``lr`` to ``lrFloor`` of it over the stage's seconds, gradients
clipped by value, a validation loss and a checkpoint (``outDir/<stage>/checkpoint.pt``, written
atomically) every ``checkpointSeconds``, and a resume from that checkpoint that counts the time
already spent. The stage's history goes to ``outDir/<stage>/history.json``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn

from .networks import Decoder, Encoder, klToStandardNormal, sampleLatent

if TYPE_CHECKING:
    from .budgetTraining import BudgetConfig, BudgetStage

__all__: list[str] = []

# A budget run logs as one: its stages through budgetTraining's logger.
_log = logging.getLogger(__name__.rpartition(".")[0] + ".budgetTraining")
_STAGES = ("vae", "flow", "deblender")
_CHECKPOINT = "checkpoint.pt"


def _cosineLr(stage: BudgetStage, fraction: float, floor: float) -> float:
    fraction = min(max(fraction, 0.0), 1.0)
    return stage.lr * (floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * fraction)))


def _vaeLoss(encoder: Encoder, decoder: Decoder, batch: dict, skyVariance: torch.Tensor, perUnit: torch.Tensor,
             beta: float, generator: torch.Generator | None) -> torch.Tensor:
    mean, scaleTril = encoder(batch["observed"])
    prediction = decoder(sampleLatent(mean, scaleTril, generator))
    target = batch["model"]
    variance = skyVariance.view(1, -1, 1, 1) + target.clamp(min=0) / perUnit.view(1, -1, 1, 1)
    reconstruction = ((target - prediction) ** 2 / variance).sum(dim=(1, 2, 3))
    return (reconstruction + beta * klToStandardNormal(mean, scaleTril)).mean()


def _flowLoss(flow, frozen: Encoder, batch: dict, generator: torch.Generator | None) -> torch.Tensor:
    with torch.no_grad():
        mean, scaleTril = frozen(batch["observed"])
        latent = sampleLatent(mean, scaleTril, generator)
    return -flow().log_prob(latent).mean()


def _deblenderLoss(deblender: Encoder, frozen: Encoder, batch: dict) -> torch.Tensor:
    with torch.no_grad():
        reference, _ = frozen(batch["isolated"])
    latent, _ = deblender(batch["observed"])
    return ((latent - reference) ** 2).sum(-1).mean()


def _save(payload: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    torch.save(payload, temporary)
    os.replace(temporary, path)


def _runStage(name: str, modules: dict[str, nn.Module], trainable: nn.Module, loss: Callable[[dict], torch.Tensor],
              draw: Callable[[int, torch.Generator], dict], validation: list[dict], config: BudgetConfig,
              seconds: float, batchSize: int, outDir: Path, device: torch.device, progress: bool) -> dict:
    """Train ``trainable`` for ``seconds`` (minus those a checkpoint already spent); return its record."""
    stage = config.stage(name)
    optimizer = torch.optim.Adam(trainable.parameters(), lr=stage.lr)
    path = outDir / name / _CHECKPOINT
    generator = torch.Generator(device=device).manual_seed(config.seed * 7919 + _STAGES.index(name))
    spent, steps, history = 0.0, 0, []
    if path.is_file():
        payload = torch.load(path, map_location=device, weights_only=False)
        for key, module in modules.items():
            module.load_state_dict(payload["models"][key])
        optimizer.load_state_dict(payload["optimizer"])
        spent, steps, history = float(payload["seconds"]), int(payload["steps"]), list(payload["history"])
        generator.manual_seed(config.seed * 7919 + _STAGES.index(name) + 1000 * steps)  # new data after a resume
        _log.info("%s: resuming after %d steps (%.0f s)", name, steps, spent)

    def validate() -> float:
        trainable.eval()
        with torch.no_grad():
            values = [float(loss(batch)) for batch in validation]
        trainable.train()
        return float(np.mean(values))

    def checkpoint() -> None:
        _save({"stage": name, "models": {k: m.state_dict() for k, m in modules.items()},
               "optimizer": optimizer.state_dict(), "seconds": spent, "steps": steps, "history": history}, path)

    initial = validate() if not history else history[0]["initialValLoss"]
    began, lastSave, lastLog, running = time.perf_counter(), time.perf_counter(), 0.0, []
    offset = spent
    trainable.train()
    while spent < seconds:
        for group in optimizer.param_groups:
            group["lr"] = _cosineLr(stage, spent / seconds, config.lrFloor)
        value = loss(draw(batchSize, generator))
        if not torch.isfinite(value):
            raise FloatingPointError(f"{name}: non-finite training loss at step {steps + 1}; lower the learning rate "
                                     f"(now {optimizer.param_groups[0]['lr']:g})")
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        nn.utils.clip_grad_value_(trainable.parameters(), stage.clipValue)
        optimizer.step()
        steps += 1
        running.append(float(value.detach()))
        spent = offset + time.perf_counter() - began
        if time.perf_counter() - lastSave > config.checkpointSeconds or spent >= seconds:
            history.append({"step": steps, "seconds": round(spent, 1), "trainLoss": float(np.mean(running)),
                            "valLoss": validate(), "lr": optimizer.param_groups[0]["lr"], "initialValLoss": initial})
            running = []
            checkpoint()
            lastSave = time.perf_counter()
        if progress and time.perf_counter() - lastLog > 15:
            lastLog = time.perf_counter()
            print(f"{name}: {spent:6.0f}/{seconds:.0f} s, step {steps}, loss {running[-1] if running else value:.4g}",
                  flush=True)
    if not history or history[-1]["step"] != steps:
        history.append({"step": steps, "seconds": round(spent, 1), "trainLoss": float(np.mean(running or [np.nan])),
                        "valLoss": validate(), "lr": optimizer.param_groups[0]["lr"], "initialValLoss": initial})
        checkpoint()
    trainable.eval()
    record = {"steps": steps, "seconds": round(spent, 1), "stampsSeen": steps * batchSize, "batchSize": batchSize,
              "initialValLoss": initial, "finalValLoss": history[-1]["valLoss"], "lr": stage.lr,
              "clipValue": stage.clipValue}
    (outDir / name / "history.json").write_text(json.dumps(history, indent=1) + "\n")
    return record
