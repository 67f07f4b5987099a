"""The training loop shared by the stages, and the three training functions."""

from __future__ import annotations

import contextlib
import logging
import math
import os
import random
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..config import ModelConfig
from ..device import resolveDevice
from ..networks import Encoder
from .checkpoints import _CHECKPOINT_FORMAT, _frozenEncoder, _load, _rngState, _save, _setRngState, _writeMetrics
from .configs import _BEST, _CHECKPOINT, TrainingConfig, TrainResult, learningRateFactor
from .data import _BatchSource, _inputs
from .stages import _DEBLENDER_KEYS, _FLOW_KEYS, _VAE_KEYS, _deblenderStage, _flowStage, _prepare, _Stage, _vaeStage

__all__ = ["trainVae", "trainFlow", "trainDeblender"]

# The package's logger, as before the split, so log records keep their name.
_log = logging.getLogger(__package__)

_PLOT_EVERY = 30.0  # seconds between redraws of loss.png during a run


def _run(stage: _Stage, modelConfig: ModelConfig, config: TrainingConfig, trainData: Any,
         validation: list[dict] | None, outDir: str | os.PathLike, resume: bool, progress: bool, device: torch.device,
         sky: np.ndarray, generator: torch.Generator) -> TrainResult:
    from tqdm.auto import tqdm

    began = time.perf_counter()
    stageConfig = config.stage(stage.name)
    directory = Path(outDir) / stage.name
    directory.mkdir(parents=True, exist_ok=True)
    checkpointPath, bestPath = directory / _CHECKPOINT, directory / _BEST
    train = _BatchSource(trainData, stage.keys, stageConfig.batchSize, config.workers, True, config.seed,
                         device.type == "cuda", f"{stage.name} training data")
    if train.endless and stageConfig.stepsPerEpoch is None:
        raise ValueError(f"{stage.name} training data are an endless stream: set stepsPerEpoch (--steps-per-epoch)")
    parameters = [p for module in stage.trainable for p in module.parameters()]
    optimizer = torch.optim.Adam(parameters, lr=stageConfig.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda epoch: learningRateFactor(stageConfig, epoch, stage.restartEpoch))

    def evaluate() -> float:
        if validation is None:
            return float("nan")
        for module in stage.trainable:
            module.eval()
        # The same latent and noise draws at every evaluation, so epochs compare.
        fixed = torch.Generator(device=device).manual_seed(config.seed + 1)
        total, count = 0.0, 0
        with torch.no_grad():
            for batch in validation:
                prepared = _prepare(batch, stage, modelConfig, device, False, None)
                n = len(prepared[stage.keys[0]])
                total += float(stage.loss(prepared, fixed, 0.0)) * n
                count += n
        return total / count

    history: list[dict] = []
    start, bestLoss, bestEpoch, sinceBest, initial = 0, math.inf, 0, 0, float("nan")
    if resume and checkpointPath.is_file():
        payload = _load(checkpointPath)
        stored = ModelConfig.model_validate(payload["modelConfig"])
        if payload.get("stage") != stage.name or stored != modelConfig:
            raise ValueError(f"{checkpointPath} holds a {payload.get('stage')} run with a different model "
                             "configuration; resume with the same model options, or drop --resume to start again")
        for name, module in stage.modules.items():
            module.load_state_dict(payload["models"][name])
        optimizer.load_state_dict(payload["optimizer"])
        scheduler.load_state_dict(payload["scheduler"])
        start, history = int(payload["epoch"]), list(payload["history"])
        bestLoss, bestEpoch = float(payload["bestLoss"]), int(payload["bestEpoch"])
        sinceBest = int(payload["sinceBest"])
        initial = float(payload["initialValLoss"])
        train.restore(payload["data"])
        _setRngState(payload["rng"], generator)
        # A resumed run may change the learning rate: the schedule's base follows the new config.
        scheduler.base_lrs = [stageConfig.lr for _ in scheduler.base_lrs]
        for group in optimizer.param_groups:
            group["lr"] = stageConfig.lr * learningRateFactor(stageConfig, start, stage.restartEpoch)
        _log.info("%s: resuming from %s after epoch %d", stage.name, checkpointPath, start)
    else:
        if resume:
            _log.info("%s: no %s to resume from; starting from scratch", stage.name, checkpointPath)
        # A fresh run must never pick up an older run's best weights.
        for stale in (checkpointPath, bestPath):
            stale.unlink(missing_ok=True)
        initial = evaluate()

    def summary() -> dict:
        return {
            "initialValLoss": initial, "bestEpoch": bestEpoch, "bestLoss": bestLoss if bestEpoch else float("nan"),
            "stoppedEarly": stoppedEarly, "skyVariance": sky.tolist(), "device": str(device),
            "ssimWarmupEpochs": stage.restartEpoch, "modelConfig": modelConfig.model_dump(mode="json"),
            "trainingConfig": config.model_dump(mode="json"),
        }

    stoppedEarly = stageConfig.patience is not None and sinceBest >= stageConfig.patience
    epochs = range(start, stageConfig.epochs)
    bar = tqdm(total=stageConfig.epochs, initial=start, unit="epoch", desc=stage.name, disable=not progress)
    lastPlot = -math.inf  # draw after the first epoch, then every _PLOT_EVERY seconds
    try:
        for epoch in epochs:
            if stoppedEarly:
                break
            epochBegan = time.perf_counter()
            lr = optimizer.param_groups[0]["lr"]
            alpha = stage.lossWeight(epoch)
            for module in stage.trainable:
                module.train()
            total, count = 0.0, 0
            steps = tqdm(train.epoch(stageConfig.stepsPerEpoch), unit="batch",
                         total=stageConfig.stepsPerEpoch or train.stepsPerPass(),
                         desc=f"{stage.name} epoch {epoch + 1}", leave=False, disable=not progress)
            for step, batch in enumerate(steps):
                prepared = _prepare(batch, stage, modelConfig, device, config.flip, generator)
                loss = stage.loss(prepared, generator, alpha)
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"{stage.name}: non-finite training loss at epoch {epoch + 1}, batch {step + 1}; lower the "
                        f"learning rate (now {lr:g}) or check the data")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                if stageConfig.clipValue is not None:
                    nn.utils.clip_grad_value_(parameters, stageConfig.clipValue)
                optimizer.step()
                n = len(prepared[stage.keys[0]])
                total, count = total + float(loss.detach()) * n, count + n
                steps.set_postfix(loss=f"{float(loss.detach()):.4g}", refresh=False)
            steps.close()
            scheduler.step()
            trainLoss = total / max(count, 1)
            valLoss = evaluate()
            metric = trainLoss if math.isnan(valLoss) else valLoss
            history.append({"epoch": epoch + 1, "trainLoss": trainLoss, "valLoss": valLoss, "lr": lr,
                            "seconds": time.perf_counter() - epochBegan})
            if epoch + 1 == stage.restartEpoch:
                sinceBest = 0  # the paper restarts training (and its patience) after the warm-up
            if math.isfinite(metric) and metric < bestLoss:
                bestLoss, bestEpoch, sinceBest = metric, epoch + 1, 0
            elif epoch + 1 > stage.restartEpoch:
                sinceBest += 1
            stoppedEarly = stageConfig.patience is not None and sinceBest >= stageConfig.patience
            payload = {
                "format": _CHECKPOINT_FORMAT, "stage": stage.name, "epoch": epoch + 1,
                "models": {name: module.state_dict() for name, module in stage.modules.items()},
                "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                "bestLoss": bestLoss, "bestEpoch": bestEpoch, "sinceBest": sinceBest, "initialValLoss": initial,
                "history": history, "data": train.state(), "rng": _rngState(generator),
                "modelConfig": modelConfig.model_dump(mode="json"), "trainingConfig": config.model_dump(mode="json"),
                "skyVariance": sky.tolist(),
            }
            _save(payload, checkpointPath)
            if bestEpoch == epoch + 1:
                _save(payload, bestPath)
            # Plotting costs ~0.2 s: redraw at most every _PLOT_EVERY seconds, and at the end.
            plot = time.perf_counter() - lastPlot > _PLOT_EVERY
            _writeMetrics(directory, stage.name, history, summary(), plot)
            lastPlot = time.perf_counter() if plot else lastPlot
            bar.set_postfix(train=f"{trainLoss:.4g}", val=f"{valLoss:.4g}", lr=f"{lr:.2g}", refresh=False)
            bar.update(1)
    finally:
        bar.close()
        train._iterator = None  # ends DataLoader workers of a stream

    if not history:
        raise ValueError(f"{stage.name}: no epoch was run (epochs={stageConfig.epochs}, checkpoint after {start})")
    _writeMetrics(directory, stage.name, history, summary())
    if not bestPath.is_file():
        raise FloatingPointError(f"{stage.name}: the validation loss was never finite (see "
                                 f"{directory / 'metrics.csv'}); lower the learning rate")
    best = _load(bestPath)
    for name, module in stage.modules.items():
        module.load_state_dict(best["models"][name])
        module.eval()
    if stoppedEarly:
        _log.info("%s: stopped early after epoch %d (best %d)", stage.name, history[-1]["epoch"], bestEpoch)
    return TrainResult(stage.name, directory, dict(stage.modules), history, initial, bestEpoch, bestLoss,
                       stoppedEarly, sky.tolist(), time.perf_counter() - began)


@contextlib.contextmanager
def _flushDenormals(device: torch.device) -> Iterator[None]:
    """Flush subnormal floats to zero on the CPU while training, then restore torch's default.

    The 10⁴-normalised images and their inverse-variance weights leave subnormal values in
    activations and gradients, and x86 CPUs compute on those 10-100 times slower (a tiny VAE
    step went from 14 ms to 0.4 s); they are far below any value that matters here.
    """
    if device.type != "cpu" or not torch.set_flush_denormal(True):
        yield
        return
    try:
        yield
    finally:
        torch.set_flush_denormal(False)


def _setup(config: TrainingConfig) -> tuple[torch.device, torch.Generator]:
    """Seed every random-number generator; the device and the sampling generator on it."""
    device = resolveDevice(config.device)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed % 2**32)
    random.seed(config.seed)
    return device, torch.Generator(device=device).manual_seed(config.seed)


def _sigma(sky: np.ndarray, modelConfig: ModelConfig, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.sqrt(sky) / modelConfig.normalisation, dtype=torch.float32, device=device)


_DataArg = Any
"""Per-galaxy data set (``SimulationShards``, ``SimulationStream``, list of dicts), ``DataLoader`` or re-iterable of
batch dicts."""


def trainVae(
    modelConfig: ModelConfig,
    trainingConfig: TrainingConfig,
    trainData: _DataArg,
    validationData: _DataArg | None,
    outDir: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
    *,
    skyVariance: Sequence[float] | None = None,
) -> TrainResult:
    r"""Train the denoising β-VAE on IsolatedSims stamps (paper Sec. 3.2, App. B.1).

    Minimises, per batch,

    .. math:: \frac1N \sum_n \Big( \sum_{\rm pix,\,b} \frac{(y - \hat y)^2}{\sigma_b^2 + y/10^4}
              + \beta\,\mathrm{KL}\big(q(z \mid x) \,\|\, \mathcal N(0, I)\big) \Big)
              \big(1 - \alpha_e\,\mathrm{SSIM}(y, \hat y)\big),

    :math:`x` = ``blended`` (the noisy stamp), :math:`y` = ``isolated`` (noiseless),
    :math:`\hat y` the decoding of one reparameterised sample :math:`z \sim q(z \mid x)`.

    Parameters
    ----------
    modelConfig
        Network sizes, bands, stamp size and normalisation.
    trainingConfig
        Optimiser, schedule, stopping, augmentation, device and seed (``.vae`` for this stage).
    trainData, validationData
        Dicts with ``blended`` and ``isolated`` stamps (electrons): a per-galaxy data set
        (``SimulationShards``, ``SimulationStream``, a list of dicts), a ``DataLoader`` or a
        re-iterable of batch dicts. ``validationData`` may be None (then early stopping and
        ``best.pt`` follow the training loss).
    outDir
        Results go to ``outDir/vae/``.
    resume
        Continue from ``outDir/vae/checkpoint.pt`` if there is one.
    progress
        Show tqdm progress bars.
    skyVariance
        Per-band sky noise variance in the data's pixel units (the mean sky level, for gain
        1); default: from the data's simulator or shard description, else estimated from the
        validation stamps' ``blendedVariance``.

    Returns
    -------
    TrainResult
        With ``models["encoder"]`` and ``models["decoder"]`` at the best epoch.

    Raises
    ------
    ValueError
        Data lacking a key, with the wrong shape or bands; a checkpoint of another model.
    FloatingPointError
        A non-finite loss (learning rate too high).

    Examples
    --------
    One epoch of tiny networks on eight random stamps (two bands):

    >>> import tempfile, numpy as np
    >>> from lsst.meas.extensions.madness.models import ModelConfig
    >>> from lsst.meas.extensions.madness.models.training import TrainingConfig
    >>> config = ModelConfig.fromProfile("tiny", bands=("g", "r"))
    >>> fast = TrainingConfig(validationStamps=4, device="cpu").withStageOverrides(epochs=1, batchSize=4)
    >>> rng = np.random.default_rng(0)
    >>> stamps = [{"blended": rng.normal(0, 10, (2, 45, 45)).astype(np.float32),   # noisy, electrons
    ...            "isolated": np.zeros((2, 45, 45), np.float32)} for _ in range(8)]
    >>> with tempfile.TemporaryDirectory() as run:
    ...     result = trainVae(config, fast, stamps, stamps[:4], run, progress=False, skyVariance=[100.0, 100.0])
    ...     files = sorted(path.name for path in result.directory.iterdir())
    >>> result.stage, len(result.history), sorted(result.models), files
    ('vae', 1, ['decoder', 'encoder'], ['best.pt', 'checkpoint.pt', 'loss.png', 'metrics.csv', 'metrics.json'])
    """
    device, generator = _setup(trainingConfig)
    validation, sky = _inputs("vae", _VAE_KEYS, modelConfig, trainingConfig, trainData, validationData, skyVariance)
    stage = _vaeStage(modelConfig, trainingConfig, _sigma(sky, modelConfig, device), device)
    with _flushDenormals(device):
        return _run(stage, modelConfig, trainingConfig, trainData, validation, outDir, resume, progress, device, sky,
                    generator)


def trainFlow(
    encoder: Encoder | str | os.PathLike | None,
    modelConfig: ModelConfig,
    trainingConfig: TrainingConfig,
    trainData: _DataArg,
    validationData: _DataArg | None,
    outDir: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
    *,
    skyVariance: Sequence[float] | None = None,
) -> TrainResult:
    r"""Train the latent flow prior on samples of the frozen VAE encoder (paper Sec. 3.3, App. B.2).

    Minimises :math:`-\frac1N \sum_n \log p_\phi(z_n)`, :math:`z_n \sim q(z \mid x_n)` drawn
    afresh every step from the frozen encoder applied to the noisy isolated stamps
    ``blended`` (IsolatedSims).

    Parameters
    ----------
    encoder
        The trained VAE encoder, a path to a VAE checkpoint, or None for
        ``outDir/vae/best.pt``.
    modelConfig, trainingConfig, trainData, validationData, outDir, resume, progress, skyVariance
        As for :func:`trainVae` (``trainingConfig.flow`` for this stage; only ``blended``
        stamps are needed; the sky level is only checked here).

    Returns
    -------
    TrainResult
        With ``models["flow"]`` (a zuko flow: ``flow().log_prob(z)``) at the best epoch.

    Raises
    ------
    FileNotFoundError
        No VAE checkpoint: names the file and the command that makes it.

    Examples
    --------
    One epoch on the latents of an untrained encoder:

    >>> import tempfile, numpy as np
    >>> from lsst.meas.extensions.madness.models import Encoder, ModelConfig
    >>> from lsst.meas.extensions.madness.models.training import TrainingConfig
    >>> config = ModelConfig.fromProfile("tiny", bands=("g", "r"))
    >>> fast = TrainingConfig(validationStamps=4, device="cpu").withStageOverrides(epochs=1, batchSize=4)
    >>> rng = np.random.default_rng(0)
    >>> stamps = [{"blended": rng.normal(0, 10, (2, 45, 45)).astype(np.float32),   # noisy, electrons
    ...            "isolated": np.zeros((2, 45, 45), np.float32)} for _ in range(8)]
    >>> with tempfile.TemporaryDirectory() as run:
    ...     result = trainFlow(Encoder(config), config, fast, stamps, stamps[:4], run, progress=False,
    ...                        skyVariance=[100.0, 100.0])
    >>> result.stage, sorted(result.models), tuple(result.models["flow"]().log_prob(torch.zeros(3, 16)).shape)
    ('flow', ['flow'], (3,))
    """
    device, generator = _setup(trainingConfig)
    frozen = _frozenEncoder(encoder, modelConfig, Path(outDir), "flow", device)
    validation, sky = _inputs("flow", _FLOW_KEYS, modelConfig, trainingConfig, trainData, validationData, skyVariance)
    stage = _flowStage(modelConfig, trainingConfig, frozen, device)
    with _flushDenormals(device):
        return _run(stage, modelConfig, trainingConfig, trainData, validation, outDir, resume, progress, device, sky,
                    generator)


def trainDeblender(
    encoder: Encoder | str | os.PathLike | None,
    modelConfig: ModelConfig,
    trainingConfig: TrainingConfig,
    trainData: _DataArg,
    validationData: _DataArg | None,
    outDir: str | os.PathLike,
    resume: bool = False,
    progress: bool = True,
    *,
    skyVariance: Sequence[float] | None = None,
) -> TrainResult:
    r"""Train the VAE-deblender: a copy of the VAE encoder that sees blends (paper Sec. 3.4, App. B.3).

    Minimises (Eq. 4) :math:`\frac1N \sum_n \lVert z_{d,n} - z_{i,n} \rVert^2` with
    :math:`z_d \sim q_d(z \mid x_d)` (or its mean, ``deblenderLatent="mean"``) from the
    trainable copy on the blended stamp :math:`x_d` (``blended``, BlendedSims) and
    :math:`z_i \sim q(z \mid y + \sigma_b \epsilon)` from the frozen VAE encoder on the
    isolated central galaxy :math:`y` (``isolated``) plus Gaussian sky noise.

    Parameters
    ----------
    encoder
        The trained VAE encoder (frozen reference and initial weights), a path to a VAE
        checkpoint, or None for ``outDir/vae/best.pt``.
    modelConfig, trainingConfig, trainData, validationData, outDir, resume, progress, skyVariance
        As for :func:`trainVae` (``trainingConfig.deblender`` for this stage).

    Returns
    -------
    TrainResult
        With ``models["encoder"]``, the deblender, at the best epoch.

    Raises
    ------
    FileNotFoundError
        No VAE checkpoint: names the file and the command that makes it.

    Examples
    --------
    One epoch from an untrained encoder:

    >>> import tempfile, numpy as np
    >>> from lsst.meas.extensions.madness.models import Encoder, ModelConfig
    >>> from lsst.meas.extensions.madness.models.training import TrainingConfig
    >>> config = ModelConfig.fromProfile("tiny", bands=("g", "r"))
    >>> fast = TrainingConfig(validationStamps=4, device="cpu").withStageOverrides(epochs=1, batchSize=4)
    >>> rng = np.random.default_rng(0)
    >>> stamps = [{"blended": rng.normal(0, 10, (2, 45, 45)).astype(np.float32),   # noisy, electrons
    ...            "isolated": np.zeros((2, 45, 45), np.float32)} for _ in range(8)]
    >>> with tempfile.TemporaryDirectory() as run:
    ...     result = trainDeblender(Encoder(config), config, fast, stamps, stamps[:4], run, progress=False,
    ...                             skyVariance=[100.0, 100.0])
    >>> result.stage, sorted(result.models), result.bestEpoch, bool(np.isfinite(result.bestLoss))
    ('deblender', ['encoder'], 1, True)
    """
    device, generator = _setup(trainingConfig)
    frozen = _frozenEncoder(encoder, modelConfig, Path(outDir), "deblender", device)
    validation, sky = _inputs("deblender", _DEBLENDER_KEYS, modelConfig, trainingConfig, trainData, validationData,
                              skyVariance)
    stage = _deblenderStage(modelConfig, trainingConfig, frozen, _sigma(sky, modelConfig, device), device)
    with _flushDenormals(device):
        return _run(stage, modelConfig, trainingConfig, trainData, validation, outDir, resume, progress, device, sky,
                    generator)
