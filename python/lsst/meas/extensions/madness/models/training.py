r"""Training of the MADNESS networks: β-VAE, latent flow prior and VAE-deblender (paper App. B).

Three stages, each run by one function, each writing to ``outDir/<stage>/`` (all pixels
divided by ``normalisation`` = 10⁴):

:func:`trainVae`
    Denoising β-VAE on IsolatedSims: input the noisy stamp :math:`x`, target the noiseless
    stamp :math:`y`, :math:`z \sim q(z \mid x)`, loss
    :math:`\big(\sum (y - \hat y)^2 / (\sigma_b^2 + y/10^4) + \beta\,\mathrm{KL}\big)
    \,(1 - \alpha_e\,\mathrm{SSIM})` with the SSIM weight
    :math:`\alpha_e = \max(0, 1 - e / E_{\rm warm})` in epoch :math:`e` (App. B.1: 1 → 0 in
    steps of 0.02 over 50 epochs). As in the reference code the SSIM factor multiplies the
    whole loss; the paper's Eq. 2 applies it to the likelihood term only (with β = 0.01 the
    two differ little).
:func:`trainFlow`
    :math:`-\frac1N \sum_n \log p_\phi(z_n)` on latent *samples* :math:`z_n \sim q(z \mid x_n)`
    of the frozen VAE encoder applied to noisy isolated stamps (Sec. 3.3, App. B.2).
:func:`trainDeblender`
    A copy of the VAE encoder, on BlendedSims stamps :math:`x_d`: Eq. 4,
    :math:`\lVert z_d - z_i \rVert^2` with :math:`z_d \sim q_d(z \mid x_d)` (or its mean) and
    :math:`z_i \sim q(z \mid y + \sigma_b \epsilon)` from the frozen VAE encoder on the
    isolated central galaxy plus Gaussian sky noise (Sec. 3.4, App. B.3).

:math:`\sigma_b = \sqrt{\bar s_b}/10^4` is the sky noise of band :math:`b` (mean sky
:math:`\bar s_b` electrons per pixel for gain 1); it is read from the data set (simulator or
shard description), or estimated as the smallest value of each stamp's variance plane.

Every stage uses Adam, gradient clipping by value (0.1; 0.01 for the flow), the learning rate
divided by 2.5 every 40 epochs, early stopping on the validation loss with a patience of 20
epochs, batches of 100 and random horizontal/vertical flips (the same flip for a stamp's input
and target). The VAE's learning-rate schedule and the early-stopping count restart when the
SSIM warm-up ends, as the paper restarts training then. The validation loss is always the
plain loss (no SSIM factor) on a fixed set of ``validationStamps`` stamps with fixed latent
noise, so epochs compare.

Each epoch writes ``checkpoint.pt`` (models, optimiser, scheduler, epoch, best loss,
data-order and random-number states), ``best.pt`` when the validation loss improves,
``metrics.csv``, ``metrics.json`` and ``loss.png``; ``resume=True`` continues an interrupted
run where its checkpoint ends.

The paper's learning rates (10⁻⁵, flow 10⁻⁴) suit its 150 000-stamp, 200-epoch GPU runs;
short CPU runs need a larger one (10⁻³ or so) to move at all.

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 3.2-3.4 and App. B.1-B.3.
Higgins et al. 2017, ICLR, "β-VAE: learning basic visual concepts with a constrained
variational framework".
Kingma & Ba 2015, ICLR, "Adam: a method for stochastic optimization".
Wang et al. 2004, IEEE Trans. Image Processing 13, 600 (SSIM).
Arcelin et al. 2021, MNRAS 500, 531, "Deblending galaxies with variational autoencoders"
(retraining the encoder as a deblender).

Examples
--------
>>> config = TrainingConfig()
>>> config.vae.lr, config.flow.lr, config.flow.clipValue, config.vae.batchSize
(1e-05, 0.0001, 0.01, 100)
>>> fast = config.withStageOverrides(lr=1e-3, epochs=3)
>>> fast.flow.lr, fast.deblender.epochs
(0.001, 3)
"""

from __future__ import annotations

import contextlib
import copy
import csv
import json
import logging
import math
import os
import pickle
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Sequence

import numpy as np
import torch
from pydantic import Field, field_validator
from torch import nn

from .config import ModelConfig, _Frozen
from .device import resolveDevice
from .flow import makeFlow
from .losses import betaVaeLoss, latentDistance
from .networks import Decoder, Encoder, sampleLatent

__all__ = [
    "STAGES",
    "StageConfig",
    "TrainingConfig",
    "TrainResult",
    "learningRateFactor",
    "ssimWeight",
    "resolveDevice",
    "stagePath",
    "loadCheckpointModels",
    "requireVaeCheckpoint",
    "trainVae",
    "trainFlow",
    "trainDeblender",
]

_log = logging.getLogger(__name__)

#: The training stages, in the order they must run.
STAGES: tuple[str, ...] = ("vae", "flow", "deblender")

_CHECKPOINT = "checkpoint.pt"
_BEST = "best.pt"
_CHECKPOINT_FORMAT = 1
_PLOT_EVERY = 30.0  # seconds between redraws of loss.png during a run
_CSV_COLUMNS = ["epoch", "trainLoss", "valLoss", "lr", "seconds"]
# Stamps each stage's loss reads from a batch.
_VAE_KEYS = ("blended", "isolated")
_FLOW_KEYS = ("blended",)
_DEBLENDER_KEYS = ("blended", "isolated")


class StageConfig(_Frozen):
    """Optimiser, schedule and stopping of one training stage (paper App. B)."""

    lr: float = Field(
        1e-5, gt=0,
        description="Initial Adam learning rate (paper: 1e-5 VAE and deblender, 1e-4 flow; short CPU runs need ~1e-3).",
    )
    epochs: int = Field(200, ge=1, description="Most epochs to run (the VAE's include the SSIM warm-up).")
    stepsPerEpoch: int | None = Field(
        None, ge=1, description="Batches per epoch; None: one pass over the training data (streams need a number).",
    )
    batchSize: int = Field(100, ge=1, description="Stamps per batch (ignored for data given as a DataLoader).")
    clipValue: float | None = Field(0.1, gt=0, description="Clip gradient components to ±clipValue; None: no clip.")
    lrDecayEvery: int = Field(40, ge=1, description="Divide the learning rate by lrDecayFactor every this many epochs.")
    lrDecayFactor: float = Field(2.5, ge=1, description="Learning-rate divisor applied every lrDecayEvery epochs.")
    patience: int | None = Field(
        20, ge=1, description="Stop after this many epochs without a lower validation loss; None: never stop early."
    )


class TrainingConfig(_Frozen):
    """Everything that fixes a training run besides the networks' shapes and the data.

    Defaults are the paper's (App. B); :meth:`withStageOverrides` changes one field in all
    three stages at once (what the ``madness-train`` options do).
    """

    vae: StageConfig = Field(StageConfig(epochs=250, clipValue=0.1),
                             description="β-VAE stage: 50 SSIM warm-up epochs, then up to 200 more (App. B.1).")
    flow: StageConfig = Field(StageConfig(lr=1e-4, clipValue=0.01), description="Flow stage (App. B.2).")
    deblender: StageConfig = Field(StageConfig(clipValue=0.1), description="VAE-deblender stage (App. B.3).")
    beta: float = Field(0.01, ge=0, description="Weight β of the KL term of the VAE loss.")
    ssimWarmupEpochs: int = Field(
        50, ge=0, description="VAE epochs over which the SSIM weight α falls linearly from 1 to 0 (0: no warm-up)."
    )
    flip: bool = Field(True, description="Random horizontal and vertical flips of each training stamp.")
    deblenderLatent: Literal["sample", "mean"] = Field(
        "sample", description="What of the deblender's posterior is compared with the isolated galaxy's latent "
                              "sample: a sample (paper) or its mean.")
    seed: int = Field(0, description="Seed of weight initialisation, data order, flips and latent sampling.")
    device: str = Field("auto", description="Torch device: 'auto' (CUDA when available, else CPU), 'cpu', 'cuda', "
                                            "'cuda:1', ...")
    autocast: bool = Field(False, description="bfloat16 autocast of the networks' forward passes (CUDA only; the "
                                              "losses stay float32).")
    workers: int = Field(0, ge=0, description="DataLoader worker processes for data given as a data set "
                                              "(0: load in the training process).")
    validationStamps: int = Field(1000, ge=1, description="Stamps of the validation data kept (in memory) for the "
                                                          "validation loss.")

    @field_validator("device")
    @classmethod
    def _checkDevice(cls, value: str) -> str:
        if value != "auto":
            try:
                torch.device(value)
            except (RuntimeError, ValueError):
                raise ValueError(f"unknown torch device {value!r}; use 'auto', 'cpu', 'cuda' or 'cuda:N'") from None
        return value

    def stage(self, name: str) -> StageConfig:
        """The :class:`StageConfig` of stage ``name`` (``"vae"``, ``"flow"`` or ``"deblender"``)."""
        if name not in STAGES:
            raise ValueError(f"unknown training stage {name!r}; stages: {', '.join(STAGES)}")
        return getattr(self, name)

    def withStageOverrides(self, stages: Sequence[str] = STAGES, **fields: Any) -> "TrainingConfig":
        """A copy with the given :class:`StageConfig` fields replaced in ``stages`` (validated)."""
        data = self.model_dump()
        for name in stages:
            self.stage(name)
            data[name] = {**data[name], **fields}
        return TrainingConfig.model_validate(data)


@dataclass
class TrainResult:
    """What a training stage produced.

    Attributes
    ----------
    stage
        ``"vae"``, ``"flow"`` or ``"deblender"``.
    directory
        ``outDir/<stage>``, holding ``checkpoint.pt``, ``best.pt``, ``metrics.csv``,
        ``metrics.json`` and ``loss.png``.
    models
        The trained networks with the best epoch's weights, in eval mode: ``encoder`` and
        ``decoder`` (VAE), ``flow`` (zuko flow), or ``encoder`` (deblender).
    history
        One dict per epoch: ``epoch`` (1-based), ``trainLoss``, ``valLoss``, ``lr``, ``seconds``.
    initialValLoss
        Validation loss of the untrained networks (NaN without validation data).
    bestEpoch, bestLoss
        Epoch of the lowest validation loss (training loss without validation data) and that loss.
    stoppedEarly
        Whether early stopping ended the run.
    skyVariance
        Per-band sky variance used for σ_b, in the data's pixel units.
    """

    stage: str
    directory: Path
    models: dict[str, nn.Module]
    history: list[dict[str, float]]
    initialValLoss: float
    bestEpoch: int
    bestLoss: float
    stoppedEarly: bool
    skyVariance: list[float]
    seconds: float = 0.0

    @property
    def checkpointPath(self) -> Path:
        return self.directory / _CHECKPOINT

    @property
    def bestPath(self) -> Path:
        return self.directory / _BEST


def learningRateFactor(stage: StageConfig, epoch: int, restartEpoch: int = 0) -> float:
    r"""Learning-rate multiplier of 0-based ``epoch``: :math:`f^{-\lfloor (e - e_0)/n \rfloor}`.

    ``f`` is ``lrDecayFactor``, ``n`` is ``lrDecayEvery`` and :math:`e_0` the epoch where the
    schedule restarts (the end of the VAE's SSIM warm-up; 0 otherwise).

    Examples
    --------
    >>> stage = StageConfig(lrDecayEvery=40)
    >>> learningRateFactor(stage, 39), learningRateFactor(stage, 40), learningRateFactor(stage, 80)
    (1.0, 0.4, 0.16)
    >>> learningRateFactor(stage, 50, restartEpoch=50)
    1.0
    """
    since = epoch - restartEpoch if epoch >= restartEpoch else epoch
    return float(stage.lrDecayFactor ** -(since // stage.lrDecayEvery))


def ssimWeight(epoch: int, warmupEpochs: int) -> float:
    r"""SSIM weight :math:`\alpha_e = \max(0, 1 - e/E_{\rm warm})` of 0-based epoch ``e``.

    Examples
    --------
    >>> [round(ssimWeight(e, 50), 2) for e in (0, 1, 49, 50, 60)]
    [1.0, 0.98, 0.02, 0.0, 0.0]
    >>> ssimWeight(0, 0)
    0.0
    """
    if warmupEpochs <= 0:
        return 0.0
    return max(0.0, 1.0 - epoch / warmupEpochs)


def stagePath(outDir: str | os.PathLike, stage: str, which: Literal["best", "checkpoint"] = "best") -> Path:
    """``outDir/<stage>/best.pt`` or ``.../checkpoint.pt``."""
    if stage not in STAGES:
        raise ValueError(f"unknown training stage {stage!r}; stages: {', '.join(STAGES)}")
    return Path(outDir) / stage / (_BEST if which == "best" else _CHECKPOINT)


# --------------------------------------------------------------------------------------------
# Data: per-galaxy data sets, DataLoaders and plain iterables, all as batches of tensors.


class _Collate:
    """Stack the wanted keys of per-galaxy dicts into batch tensors (picklable for workers)."""

    def __init__(self, keys: Sequence[str], optional: Sequence[str] = (), what: str = "data"):
        self.keys, self.optional, self.what = tuple(keys), tuple(optional), what

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        first = items[0]
        missing = [k for k in self.keys if k not in first]
        if missing:
            raise ValueError(f"{self.what}: the stamps {missing} are needed but the items have only {sorted(first)}")
        wanted = self.keys + tuple(k for k in self.optional if k in first)
        return {
            k: torch.stack([torch.as_tensor(np.asarray(item[k], dtype=np.float32)) for item in items]) for k in wanted
        }


def _isBatched(item: dict) -> bool:
    """Whether a dict is already a batch (4-d stamps) rather than one galaxy (3-d)."""
    stamps = item.get("blended", item.get("isolated"))
    return stamps is not None and np.ndim(stamps) == 4


class _BatchSource:
    """Batches from any data the training functions accept, epoch after epoch.

    * a map-style data set (``SimulationShards``, a list of per-galaxy dicts): shuffled with a
      permutation seeded by ``(seed, pass)``, so the order, and a resumed run's order, is
      reproducible; :meth:`state` records the pass and position;
    * an iterable data set (``SimulationStream``): batched by a DataLoader, in stream order;
    * a ``DataLoader`` or any re-iterable of dicts: used as it is (per-galaxy dicts are
      batched here).
    """

    def __init__(self, data: Any, keys: Sequence[str], batchSize: int, workers: int, shuffle: bool, seed: int,
                 pinMemory: bool, what: str, optional: Sequence[str] = ()):
        if data is None:
            raise ValueError(f"no {what}")
        self.data, self.keys, self.optional = data, tuple(keys), tuple(optional)
        self.batchSize, self.workers = batchSize, workers
        self.shuffle, self.seed, self.pinMemory, self.what = shuffle, seed, pinMemory, what
        self.passIndex, self.position = 0, 0
        self._iterator: Iterator[dict] | None = None
        if isinstance(data, torch.utils.data.DataLoader):
            self.kind = "loader"
        elif isinstance(data, torch.utils.data.IterableDataset):
            self.kind = "stream"
        elif hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, dict):
            self.kind = "map" if len(data) == 0 or not _isBatched(data[0]) else "loader"
        elif isinstance(data, Iterable) and not isinstance(data, Iterator):
            self.kind = "loader"
        else:
            raise ValueError(f"{what}: expected a data set, a DataLoader or a re-iterable of dicts, got "
                             f"{type(data).__name__} (a one-shot iterator cannot serve several epochs)")
        self.endless = getattr(data, "stop", 0) is None or getattr(getattr(data, "dataset", None), "stop", 0) is None

    def _loader(self, **kwargs) -> torch.utils.data.DataLoader:
        if self.workers > 0:
            from ..sim.parallel import startMethod

            kwargs.setdefault("multiprocessing_context", startMethod())
        return torch.utils.data.DataLoader(
            self.data, batch_size=self.batchSize, num_workers=self.workers, pin_memory=self.pinMemory,
            collate_fn=_Collate(self.keys, self.optional, self.what), **kwargs,
        )

    def _pass(self, skip: int = 0) -> Iterator[dict]:
        if self.kind == "map":
            n = len(self.data)
            if self.shuffle:
                generator = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + self.passIndex)
                order = torch.randperm(n, generator=generator).tolist()
            else:
                order = list(range(n))
            return iter(self._loader(sampler=order[skip:]))
        if self.kind == "stream":
            return iter(self._loader())
        return self._rebatch(iter(self.data))

    def _rebatch(self, items: Iterator[dict]) -> Iterator[dict]:
        collate, pending = _Collate(self.keys, self.optional, self.what), []
        for item in items:
            if _isBatched(item):
                yield {k: torch.as_tensor(v) for k, v in item.items() if k in self.keys + self.optional}
                continue
            pending.append(item)
            if len(pending) == self.batchSize:
                yield collate(pending)
                pending = []
        if pending:
            yield collate(pending)

    def stepsPerPass(self) -> int | None:
        """Batches in one pass, where known."""
        if self.kind == "map":
            return math.ceil(len(self.data) / self.batchSize)
        data = self.data
        iterable = isinstance(getattr(data, "dataset", None), torch.utils.data.IterableDataset)
        if isinstance(data, torch.utils.data.DataLoader) and not iterable:
            return len(data)
        return None

    def epoch(self, steps: int | None) -> Iterator[dict]:
        """One epoch's batches: ``steps`` of them (continuing from the last epoch), or one pass."""
        if steps is None:
            if self.endless:
                raise ValueError(f"{self.what} is an endless stream: set stepsPerEpoch (--steps-per-epoch)")
            self._iterator = None
            for batch in self._pass():
                self.position += len(next(iter(batch.values())))
                yield batch
            self.passIndex, self.position = self.passIndex + 1, 0
            return
        for _ in range(steps):
            yield self.next()

    def next(self) -> dict:
        """The next batch, starting a new pass when one runs out."""
        for _ in range(2):  # the current pass, then one fresh pass
            if self._iterator is None:
                self._iterator = self._pass(self.position)
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._iterator, self.passIndex, self.position = None, self.passIndex + 1, 0
                continue
            self.position += len(next(iter(batch.values())))
            return batch
        raise ValueError(f"{self.what} is empty")

    def first(self, count: int) -> list[dict]:
        """The first ``count`` stamps (one pass, unshuffled), as CPU batches."""
        batches, have = [], 0
        iterator = self._pass()
        try:
            for batch in iterator:
                n = len(next(iter(batch.values())))
                take = min(n, count - have)
                batches.append({k: v[:take] for k, v in batch.items()})
                have += take
                if have >= count:
                    break
        finally:
            del iterator  # stops DataLoader workers of an endless stream
        if not have:
            raise ValueError(f"{self.what} is empty")
        return batches

    def state(self) -> dict:
        return {"passIndex": self.passIndex, "position": self.position}

    def restore(self, state: dict) -> None:
        # Map-style data resume exactly where they stopped; streams restart from their beginning.
        self._iterator = None
        if self.kind == "map":
            self.passIndex, self.position = int(state["passIndex"]), int(state["position"])


def _describedData(data: Any) -> tuple[np.ndarray | None, tuple[str, ...] | None]:
    """Sky variance per band and band names, from a simulator or shard description if reachable."""
    for _ in range(4):  # DataLoader → stream → simulated set, or ConcatDataset → shards
        renderer = getattr(data, "renderer", None)
        if renderer is not None and hasattr(renderer, "sky"):
            gain = float(getattr(renderer, "gain", 1.0))
            return np.asarray(renderer.sky, dtype=float) / gain, tuple(getattr(renderer, "bands", ()))
        description = getattr(data, "description", None)
        if isinstance(description, dict) and "conditions" in description and "bands" in description:
            from ..sim.survey import SurveyConditions

            conditions = SurveyConditions.model_validate(description["conditions"])
            bands = tuple(description["bands"])
            # Pixels are in ADU; the sky's noise variance is sky_ADU / gain = sky_e / gain².
            sky = np.array([conditions.skyPerPixel(b) for b in bands]) / conditions.gain**2
            return sky, bands
        # One level down: a DataLoader's or stream's data set, or a ConcatDataset's first part.
        parts = getattr(data, "datasets", None)
        data = parts[0] if isinstance(parts, Sequence) and parts else getattr(data, "dataset", None)
        if data is None:
            break
    return None, None


def _skyVariance(explicit: Sequence[float] | None, datas: Sequence[Any], validation: list[dict] | None,
                 trainSample: Callable[[], list[dict]], modelConfig: ModelConfig, stage: str) -> np.ndarray:
    """σ_b² per band: given, described by the data, or the median over stamps of their variance planes' minimum."""
    nBands = len(modelConfig.bands)
    for data in datas:
        sky, bands = _describedData(data)
        if bands and tuple(bands) != tuple(modelConfig.bands):
            raise ValueError(f"{stage}: the data have bands {''.join(bands)} but the model expects "
                             f"{''.join(modelConfig.bands)}; simulate those bands or change the model's bands")
        if explicit is None and sky is not None:
            explicit = sky
    if explicit is None:
        # Far from the galaxy a stamp's variance plane is the sky's, (0 + sky)/gain.
        batches = [b for b in (validation or []) if "blendedVariance" in b] or [
            b for b in trainSample() if "blendedVariance" in b]
        if batches:
            minima = torch.cat([b["blendedVariance"].amin(dim=(2, 3)) for b in batches])
            explicit = minima.median(dim=0).values.double().numpy()
    if explicit is None:
        raise ValueError(f"{stage}: cannot tell the sky level: the data carry no 'blendedVariance' and no survey "
                         "description; pass skyVariance (mean sky per band in electrons for gain 1)")
    sky = np.asarray(explicit, dtype=float).reshape(-1)
    if sky.size != nBands or not np.all(sky > 0):
        raise ValueError(
            f"{stage}: need {nBands} positive sky variances (bands {''.join(modelConfig.bands)}), got {sky}"
        )
    return sky


def _inputs(stage: str, keys: tuple[str, ...], modelConfig: ModelConfig, config: TrainingConfig, trainData: Any,
            validationData: Any, skyVariance: Sequence[float] | None) -> tuple[list[dict] | None, np.ndarray]:
    """The validation stamps (kept in memory, with their variance planes) and the sky variance per band."""
    stageConfig = config.stage(stage)
    validation = None
    if validationData is not None:
        source = _BatchSource(validationData, keys, stageConfig.batchSize, config.workers, False, config.seed, False,
                              f"{stage} validation data", ("blendedVariance",))
        validation = source.first(config.validationStamps)
        for batch in validation:
            _checkBatch(batch, stage, keys, modelConfig)

    def trainSample() -> list[dict]:
        return _BatchSource(trainData, keys, stageConfig.batchSize, 0, False, config.seed, False,
                            f"{stage} training data", ("blendedVariance",)).first(min(256, config.validationStamps))

    sky = _skyVariance(skyVariance, [trainData, validationData], validation, trainSample, modelConfig, stage)
    return validation, sky


# --------------------------------------------------------------------------------------------
# Stages.


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


# --------------------------------------------------------------------------------------------
# Checkpoints and metrics.


def _rngState(generator: torch.Generator) -> dict:
    numpyState = np.random.get_state()
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
    path
        A ``best.pt`` or ``checkpoint.pt`` written by :func:`trainVae`, :func:`trainFlow` or
        :func:`trainDeblender`.
    device
        Where to put the networks.

    Returns
    -------
    modelConfig, stage, models
        ``models`` holds ``encoder`` and ``decoder`` (VAE), ``flow``, or ``encoder`` (deblender).
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

    Raises
    ------
    FileNotFoundError
        If it is missing, naming the file and the command that makes it.
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
        module = models["encoder"]
    return module.eval().requires_grad_(False)


# --------------------------------------------------------------------------------------------
# The training loop shared by the stages.


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
    """
    device, generator = _setup(trainingConfig)
    frozen = _frozenEncoder(encoder, modelConfig, Path(outDir), "deblender", device)
    validation, sky = _inputs("deblender", _DEBLENDER_KEYS, modelConfig, trainingConfig, trainData, validationData,
                              skyVariance)
    stage = _deblenderStage(modelConfig, trainingConfig, frozen, _sigma(sky, modelConfig, device), device)
    with _flushDenormals(device):
        return _run(stage, modelConfig, trainingConfig, trainData, validation, outDir, resume, progress, device, sky,
                    generator)
