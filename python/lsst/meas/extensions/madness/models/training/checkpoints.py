"""Checkpoints and metrics of a training run.

Each epoch writes ``checkpoint.pt`` (models, optimiser, scheduler, epoch, best loss,
data-order and random-number states), ``best.pt`` when the validation loss improves,
``metrics.csv``, ``metrics.json`` and ``loss.png``; ``resume=True`` continues an interrupted
run where its checkpoint ends.
"""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import pickle
import random
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig
from ..flow import makeFlow
from ..networks import Decoder, Encoder
from .configs import stagePath

__all__ = ["loadCheckpointModels", "requireVaeCheckpoint"]

_CHECKPOINT_FORMAT = 1
_CSV_COLUMNS = ["epoch", "trainLoss", "valLoss", "lr", "seconds"]


def _rngState(generator: torch.Generator) -> dict:
    numpyState = cast(tuple, np.random.get_state(legacy=True))  # the tuple (numpy's stubs say a dict)
    state = {
        "torch": torch.get_rng_state(),
        # Tensors and plain Python values only, so the file loads with weights_only=True.
        "numpy": [numpyState[0], torch.from_numpy(numpyState[1].astype(np.int64)), *map(float, numpyState[2:])],
        "python": random.getstate(),
        "generator": generator.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _setRngState(state: dict, generator: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, hasGauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), int(pos), int(hasGauss), float(cached)))
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    generator.set_state(state["generator"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _save(payload: dict, path: Path) -> None:
    # Written aside and renamed, so an interrupted save never leaves a truncated checkpoint.
    partial = path.with_suffix(".pt.partial")
    torch.save(payload, partial)
    os.replace(partial, path)


def _load(path: Path) -> dict:
    # On the CPU: random-number states must stay CPU tensors; weights are copied where they belong.
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError) as error:
        raise ValueError(f"{path}: not a readable MADNESS training checkpoint ({error})") from None


def _writeMetrics(directory: Path, stage: str, history: list[dict], summary: dict, plot: bool = True) -> None:
    with open(directory / "metrics.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=_CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(history)
    partial = directory / "metrics.json.partial"
    partial.write_text(json.dumps({"stage": stage, **summary, "history": history}, indent=1, allow_nan=True))
    os.replace(partial, directory / "metrics.json")
    if plot:
        _plotLoss(directory / "loss.png", stage, history, summary)


def _plotLoss(path: Path, stage: str, history: list[dict], summary: dict) -> None:
    from matplotlib.figure import Figure  # no pyplot: no display, no global figure state
    from matplotlib.ticker import MaxNLocator

    figure = Figure(figsize=(6, 4), layout="constrained")
    axes = figure.add_subplot()
    epochs = [row["epoch"] for row in history]
    train = [row["trainLoss"] for row in history]
    val = [row["valLoss"] for row in history]
    warm = summary.get("ssimWarmupEpochs", 0) if stage == "vae" else 0
    axes.plot(epochs, train, "o-", ms=3, label="training (× (1 − α SSIM) in the warm-up)" if warm else "training")
    initial = summary.get("initialValLoss", float("nan"))
    if not all(math.isnan(v) for v in val):
        before = [] if math.isnan(initial) else [initial]  # the untrained networks, at epoch 0
        axes.plot(list(range(1 - len(before), 1)) + epochs, before + val, "s-", ms=3, label="validation")
    if summary.get("bestEpoch"):
        axes.axvline(summary["bestEpoch"], color="0.5", ls=":", label=f"best (epoch {summary['bestEpoch']})")
    if warm:
        axes.axvspan(0, min(warm, max(epochs, default=0)), color="0.9", label="SSIM warm-up")
    values = [v for v in train + val + [initial] if not math.isnan(v)]
    if values and min(values) > 0 and max(values) / min(values) > 20:
        axes.set_yscale("log")
    labels = {"vae": "β-VAE loss", "flow": "−mean log p(z)", "deblender": "latent distance ‖z_d − z_i‖²"}
    axes.set(xlabel="epoch", ylabel=labels.get(stage, "loss"), title=f"MADNESS {stage} training")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    axes.legend()
    figure.savefig(path, dpi=100)


def loadCheckpointModels(
    path: str | os.PathLike, device: str | torch.device = "cpu"
) -> tuple[ModelConfig, str, dict[str, nn.Module]]:
    """The model configuration, stage and networks (eval mode) stored in a training checkpoint.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        A ``best.pt`` or ``checkpoint.pt`` written by :func:`trainVae`, :func:`trainFlow` or
        :func:`trainDeblender`.
    device : `str` or `torch.device`, optional
        Where to put the networks.

    Returns
    -------
    modelConfig : `~..config.ModelConfig`
        The networks' config, as trained.
    stage : `str`
        ``"vae"``, ``"flow"`` or ``"deblender"``.
    models : `dict` [`str`, `torch.nn.Module`]
        ``encoder`` and ``decoder`` (VAE), ``flow``, or ``encoder`` (deblender).

    Raises
    ------
    FileNotFoundError
        If there is no such file.

    Examples
    --------
    >>> import tempfile, numpy as np
    >>> from lsst.meas.extensions.madness.models import Encoder, ModelConfig
    >>> from lsst.meas.extensions.madness.models.training import TrainingConfig
    >>> config = ModelConfig.fromProfile("tiny", bands=("g", "r"))
    >>> fast = TrainingConfig(validationStamps=4, device="cpu").withStageOverrides(epochs=1, batchSize=4)
    >>> rng = np.random.default_rng(0)
    >>> stamps = [{"blended": rng.normal(0, 10, (2, 45, 45)).astype(np.float32),   # noisy, electrons
    ...            "isolated": np.zeros((2, 45, 45), np.float32)} for _ in range(8)]
    >>> from lsst.meas.extensions.madness.models.training import stagePath, trainFlow
    >>> with tempfile.TemporaryDirectory() as run:
    ...     _ = trainFlow(Encoder(config), config, fast, stamps, stamps[:4], run, progress=False,
    ...                   skyVariance=[100.0, 100.0])
    ...     modelConfig, stage, models = loadCheckpointModels(stagePath(run, "flow"))
    >>> modelConfig == config, stage, sorted(models)
    (True, 'flow', ['flow'])
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such training checkpoint")
    payload = _load(path)
    modelConfig = ModelConfig.model_validate(payload["modelConfig"])
    stage = payload["stage"]
    builders = {"encoder": Encoder, "decoder": Decoder, "flow": makeFlow}
    models = {}
    for name, state in payload["models"].items():
        module = builders[name](modelConfig).to(device)
        module.load_state_dict(state)
        models[name] = module.eval()
    return modelConfig, stage, models


def requireVaeCheckpoint(outDir: str | os.PathLike, stage: str, path: str | os.PathLike | None = None) -> Path:
    """The VAE checkpoint ``stage`` needs (default ``outDir/vae/best.pt``).

    Parameters
    ----------
    outDir : `str` or `os.PathLike`
        The training run.
    stage : `str`
        The stage that needs it (``"flow"`` or ``"deblender"``), named in the message.
    path : `str` or `os.PathLike`, optional
        A VAE checkpoint elsewhere; None: ``outDir/vae/best.pt``.

    Returns
    -------
    path : `pathlib.Path`
        The checkpoint, which exists.

    Raises
    ------
    FileNotFoundError
        If it is missing, naming the file and the command that makes it.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as run:
    ...     requireVaeCheckpoint(run, "flow")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    FileNotFoundError: .../vae/best.pt not found: the flow stage needs the trained VAE encoder; make it first ...
    """
    path = stagePath(outDir, "vae") if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: the {stage} stage needs the trained VAE encoder; make it first with "
            f"`madness-train vae --out {outDir}` (or train all stages with `madness-train all --out {outDir}`)"
        )
    return path


def _frozenEncoder(encoder: Encoder | str | os.PathLike | None, modelConfig: ModelConfig, outDir: Path, stage: str,
                   device: torch.device) -> Encoder:
    """The trained VAE encoder, frozen: given, or read from a VAE checkpoint (default ``outDir/vae/best.pt``)."""
    if isinstance(encoder, nn.Module):
        module = copy.deepcopy(encoder).to(device)
    else:
        path = requireVaeCheckpoint(outDir, stage, None if encoder is None else Path(encoder))
        checkpointConfig, checkpointStage, models = loadCheckpointModels(path, device)
        if checkpointStage != "vae":
            raise ValueError(f"{path} is a {checkpointStage} checkpoint; the {stage} stage needs a VAE checkpoint "
                             f"({stagePath(outDir, 'vae')})")
        if checkpointConfig != modelConfig:
            raise ValueError(f"{path} was trained with a different model configuration (profile "
                             f"{checkpointConfig.profile!r}) than this run's ({modelConfig.profile!r})")
        module = cast(Encoder, models["encoder"])
    return module.eval().requires_grad_(False)

