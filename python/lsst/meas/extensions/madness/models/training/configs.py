r"""The configuration of a training run, its schedules, and what a stage returns.

Every stage uses Adam, gradient clipping by value (0.1; 0.01 for the flow), the learning rate
divided by 2.5 every 40 epochs, early stopping on the validation loss with a patience of 20
epochs, batches of 100 and random horizontal/vertical flips (the same flip for a stamp's input
and target). The VAE's learning-rate schedule and the early-stopping count restart when the
SSIM warm-up ends, as the paper restarts training then. The validation loss is always the
plain loss (no SSIM factor) on a fixed set of ``validationStamps`` stamps with fixed latent
noise, so epochs compare.

The paper's learning rates (10⁻⁵, flow 10⁻⁴) suit its 150 000-stamp, 200-epoch GPU runs;
short CPU runs need a larger one (10⁻³ or so) to move at all.

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

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import Field, field_validator
from torch import nn

from ..config import _Frozen

__all__ = ["STAGES", "StageConfig", "TrainingConfig", "TrainResult", "learningRateFactor", "ssimWeight", "stagePath"]

#: The training stages, in the order they must run.
STAGES: tuple[str, ...] = ("vae", "flow", "deblender")

_CHECKPOINT = "checkpoint.pt"
_BEST = "best.pt"


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
        """The :class:`StageConfig` of stage ``name`` (``"vae"``, ``"flow"`` or ``"deblender"``).

        Parameters
        ----------
        name : `str`
            A stage of :data:`STAGES`.

        Returns
        -------
        stage : `StageConfig`
            The stage's optimiser, schedule and stopping.

        Raises
        ------
        ValueError
            If ``name`` is not a stage.

        Examples
        --------
        >>> TrainingConfig().stage("flow").lr
        0.0001
        """
        if name not in STAGES:
            raise ValueError(f"unknown training stage {name!r}; stages: {', '.join(STAGES)}")
        return getattr(self, name)

    def withStageOverrides(self, stages: Sequence[str] = STAGES, **fields: Any) -> TrainingConfig:
        """A copy with the given :class:`StageConfig` fields replaced in ``stages`` (validated).

        Parameters
        ----------
        stages : sequence of `str`, optional
            The stages to change (default: all three).
        **fields
            :class:`StageConfig` fields and their new values.

        Returns
        -------
        config : `TrainingConfig`
            A new, validated config; this one is unchanged.

        Raises
        ------
        ValueError
            For an unknown stage, or a field or value :class:`StageConfig` refuses.

        Examples
        --------
        >>> config = TrainingConfig().withStageOverrides(["vae", "flow"], epochs=3)
        >>> config.vae.epochs, config.flow.epochs, config.deblender.epochs
        (3, 3, 200)
        """
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
        """``directory / "checkpoint.pt"``: the last finished epoch, for ``resume``."""
        return self.directory / _CHECKPOINT

    @property
    def bestPath(self) -> Path:
        """``directory / "best.pt"``: the weights of the best epoch."""
        return self.directory / _BEST


def learningRateFactor(stage: StageConfig, epoch: int, restartEpoch: int = 0) -> float:
    r"""Learning-rate multiplier of 0-based ``epoch``: :math:`f^{-\lfloor (e - e_0)/n \rfloor}`.

    ``f`` is ``lrDecayFactor``, ``n`` is ``lrDecayEvery`` and :math:`e_0` the epoch where the
    schedule restarts (the end of the VAE's SSIM warm-up; 0 otherwise).

    Parameters
    ----------
    stage : `StageConfig`
        Its ``lrDecayFactor`` and ``lrDecayEvery``.
    epoch : `int`
        0-based epoch.
    restartEpoch : `int`, optional
        :math:`e_0`; epochs before it count from 0.

    Returns
    -------
    factor : `float`
        Multiplier of the stage's ``lr``, at most 1.

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

    Parameters
    ----------
    epoch : `int`
        0-based epoch :math:`e`.
    warmupEpochs : `int`
        :math:`E_{\rm warm}`; 0 or less: no warm-up.

    Returns
    -------
    weight : `float`
        :math:`\alpha_e` in [0, 1].

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
    """``outDir/<stage>/best.pt`` or ``.../checkpoint.pt``.

    Parameters
    ----------
    outDir : `str` or `os.PathLike`
        The training run (``madness-train --out``).
    stage : `str`
        A stage of :data:`STAGES`.
    which : {"best", "checkpoint"}, optional
        The best epoch's weights, or the last finished epoch's.

    Returns
    -------
    path : `pathlib.Path`
        The file (which need not exist).

    Raises
    ------
    ValueError
        If ``stage`` is not a stage.

    Examples
    --------
    >>> stagePath("runs/a", "flow").as_posix(), stagePath("runs/a", "vae", "checkpoint").as_posix()
    ('runs/a/flow/best.pt', 'runs/a/vae/checkpoint.pt')
    """
    if stage not in STAGES:
        raise ValueError(f"unknown training stage {stage!r}; stages: {', '.join(STAGES)}")
    return Path(outDir) / stage / (_BEST if which == "best" else _CHECKPOINT)

