r"""Training against the clock, on stamps drawn on the training device, in the model frame.

GPU time comes in slots of minutes. :func:`trainWithinBudget` trains the β-VAE, the flow
and the VAE-deblender one after the other, each for its share of ``minutes``, on batches
that :class:`~lsst.meas.extensions.madness.sim.trainingStamps.TrainingStampSimulator` draws
afresh at every step on the same device (no shards, no data loader), then exports the
TorchScript models with a card that says exactly what ran. It needs torch, numpy, pydantic
and zuko only: no GalSim and no astropy, so it runs on a bare GPU machine.

Losses, per batch (network units: nJy over the band's scale, see
:class:`~.config.ModelFrame`):

VAE
    :math:`\sum (y - \hat y)^2 / (\sigma_b^2 + y^+/c_b) + \beta\,\mathrm{KL}`, with :math:`x`
    the noisy observed stamp, :math:`y` the same galaxy in the model frame, :math:`\hat y`
    the decoding of :math:`z \sim q(z \mid x)`, :math:`\sigma_b^2` the sky variance and
    :math:`c_b` electrons per network unit (the galaxy's own Poisson term).
Flow
    :math:`-\log p_\phi(z)`, :math:`z \sim q(z \mid x)` of the frozen encoder (Sec. 3.3).
Deblender
    :math:`\lVert \mu_d(x_{\rm blend}) - \mu(x_{\rm isolated}) \rVert^2`: the deblender's posterior
    mean on the blend against the frozen encoder's on the central galaxy observed alone
    through the same PSFs with sky noise (Sec. 3.4, with means instead of samples).

Each stage (:mod:`.budgetStages`) runs Adam with a cosine learning-rate decay over its time
share, clips gradients by value, checkpoints every ``checkpointSeconds`` to
``outDir/<stage>/checkpoint.pt`` and resumes from it (the time already spent counts). ``initFrom``
starts from an exported model directory (e.g. the shipped weights), so CPU and GPU runs add up
instead of restarting.

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 3.2-3.4, App. B.
Loshchilov & Hutter 2017, ICLR, "SGDR: stochastic gradient descent with warm restarts" (cosine decay).
"""

from __future__ import annotations

import json
import logging
import math
import os
import platform
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, model_validator
from torch import nn

from .budgetStages import _CHECKPOINT, _deblenderLoss, _flowLoss, _runStage, _vaeLoss
from .config import ModelConfig
from .device import resolveDevice
from .flow import FlowLogProb, makeFlow
from .latentScale import latentStatistics, standardiseLatents
from .networks import Decoder, Encoder
from .priorQuantiles import MIN_GALAXIES, logPriorQuantiles

__all__ = ["BudgetConfig", "BudgetStage", "trainWithinBudget", "frameValidation", "loadInitialWeights",
           "adaptLegacyUnits", "reviveDeadBands"]

_log = logging.getLogger(__name__)


class BudgetStage(BaseModel):
    """Optimiser settings of one stage."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    share: float = Field(gt=0, description="Share of the total minutes this stage trains for.")
    lr: float = Field(gt=0, description="Adam learning rate at the start of the stage (cosine decay to lrFloor of it).")
    clipValue: float = Field(0.1, gt=0, description="Clip each gradient component to ±clipValue.")


class BudgetConfig(BaseModel):
    """A time-budgeted training run (see :func:`trainWithinBudget`)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    minutes: float = Field(gt=0, description="Wall-clock minutes for the three stages together (validation and "
                                             "export come on top: about a minute on a GPU).")
    vae: BudgetStage = Field(BudgetStage(share=0.6, lr=3e-4), description="β-VAE stage.")
    flow: BudgetStage = Field(BudgetStage(share=0.1, lr=1e-3, clipValue=0.01), description="Flow stage.")
    deblender: BudgetStage = Field(BudgetStage(share=0.3, lr=3e-4), description="VAE-deblender stage.")
    batchSize: int | None = Field(None, ge=1, description="Stamps per step; None: 256 on CUDA, 32 on CPU.")
    beta: float = Field(0.01, ge=0, description="Weight β of the KL term.")
    lrFloor: float = Field(0.05, gt=0, le=1, description="The cosine decay ends at this fraction of lr.")
    checkpointSeconds: float = Field(60.0, gt=0, description="Seconds between checkpoints.")
    validationStamps: int = Field(512, ge=8, description="Held-out stamps of the per-stage validation loss.")
    metricStamps: int = Field(5000, ge=8, description="Held-out isolated galaxies of the final per-band metrics; as "
                              "many others standardise the exported latents (models.latentScale).")
    seed: int = Field(0, description="Seed of initialisation, galaxies, PSFs and noise.")
    device: str = Field("auto", description="'auto', 'cpu', 'cuda' or 'cuda:N'.")

    @model_validator(mode="after")
    def _check(self) -> BudgetConfig:
        total = self.vae.share + self.flow.share + self.deblender.share
        if not math.isclose(total, 1.0, rel_tol=1e-6):
            raise ValueError(f"the stage shares must add up to 1, got {total}")
        return self

    def stage(self, name: str) -> BudgetStage:
        """The settings of stage ``name``.

        Parameters
        ----------
        name : `str`
            ``"vae"``, ``"flow"`` or ``"deblender"``.

        Returns
        -------
        stage : `BudgetStage`
            Its time share, learning rate and gradient clip.

        Examples
        --------
        >>> BudgetConfig(minutes=8).stage("flow").share
        0.1
        """
        return getattr(self, name)


def loadInitialWeights(directory: str | os.PathLike, modules: dict[str, nn.Module]) -> list[str]:
    """Copy the weights of an exported model directory into ``modules`` (``encoder``, ``decoder``,
    ``deblenderEncoder``, ``flow``) where names and shapes agree; returns what was loaded.

    Parameters
    ----------
    directory : `str` or `os.PathLike`
        An exported model directory (:func:`~.export.exportModels`) of the same profile.
    modules : `dict` [`str`, `torch.nn.Module`]
        The networks to fill, by name: ``encoder``, ``decoder``, ``deblenderEncoder`` (encoders and
        decoder) and ``flow`` (a zuko flow); changed in place.

    Returns
    -------
    loaded : `list` [`str`]
        The names of ``modules`` that were filled, in their order.

    Raises
    ------
    FileNotFoundError
        A network file is missing (named).
    ValueError
        A network's weights do not fit (names the file and the first mismatch).

    Examples
    --------
    >>> import tempfile
    >>> from lsst.meas.extensions.madness.models import exportModels
    >>> config = ModelConfig.fromProfile("tiny")
    >>> trained = Decoder(config)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     _ = exportModels(tmp, config, Encoder(config), trained, makeFlow(config), Encoder(config))
    ...     fresh = {"decoder": Decoder(config), "flow": makeFlow(config)}
    ...     loadInitialWeights(tmp, fresh)
    ['decoder', 'flow']
    >>> z = torch.randn(2, 16)
    >>> torch.allclose(fresh["decoder"](z), trained(z))
    True
    """
    from .export import MODEL_FILES

    loaded = []
    for name, module in modules.items():
        path = Path(directory) / MODEL_FILES["flowLogProb" if name == "flow" else name]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; --init needs an exported model directory")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            state = torch.jit.load(str(path), map_location="cpu").state_dict()
        target = FlowLogProb(module) if name == "flow" else module
        own = target.state_dict()
        state = {k: v for k, v in state.items() if k in own}
        bad = [k for k, v in state.items() if v.shape != own[k].shape]
        if bad or not state:
            raise ValueError(f"{path}: its weights do not fit the {name} being trained "
                             f"({bad[0] if bad else 'no common parameter'}); use the same profile as that model")
        target.load_state_dict(state, strict=False)
        loaded.append(name)
    return loaded


@torch.no_grad()
def adaptLegacyUnits(encoder: Encoder, deblender: Encoder, decoder: Decoder, normalisation: float,
                     electronsPerUnit: torch.Tensor) -> None:
    r"""Make networks trained on electrons / ``normalisation`` compute the same on network units.

    A pixel :math:`x` in network units is :math:`x\,c_b/N` in the old units (:math:`c_b`
    electrons per unit of band :math:`b`, :math:`N` the normalisation): the encoders' first
    convolution is multiplied by :math:`c_b/N` along its input channels, and the decoder's last
    layer by :math:`N/c_b` along its output channels (exact for a ReLU output, close for a
    softplus above a few units).

    Parameters
    ----------
    encoder, deblender : `~.networks.Encoder`
        The VAE and VAE-deblender encoders, changed in place.
    decoder : `~.networks.Decoder`
        The decoder, changed in place.
    normalisation : `float`
        :math:`N`, the electrons per unit the networks were trained on (their card's ``normalisation``).
    electronsPerUnit : `torch.Tensor`
        (bands,) :math:`c_b`, electrons per network unit of each band.

    Examples
    --------
    >>> config = ModelConfig.fromProfile("tiny")
    >>> encoder, deblender, decoder = Encoder(config), Encoder(config), Decoder(config)
    >>> perUnit = torch.tensor([40.0, 35.0, 356.0, 430.0, 500.0, 540.0])
    >>> x = torch.rand(2, 6, 45, 45)                                    # network units
    >>> before = encoder(x * perUnit.view(1, -1, 1, 1) / 1e4)[0]       # the same pixels in electrons / 10⁴
    >>> adaptLegacyUnits(encoder, deblender, decoder, 1e4, perUnit)
    >>> torch.allclose(encoder(x)[0], before, rtol=1e-4, atol=1e-5)
    True
    """
    factor = electronsPerUnit.to(torch.float32) / normalisation
    for encoderLike in (encoder, deblender):
        first = cast(nn.Conv2d, encoderLike.features[0])
        first.weight *= factor.view(1, -1, 1, 1)
    last = cast(nn.ConvTranspose2d, decoder.upsample[-2])
    assert last.bias is not None  # the decoder's layers all have one
    last.weight /= factor.view(1, -1, 1, 1)
    last.bias /= factor


@torch.no_grad()
def reviveDeadBands(encoder: Encoder, decoder: Decoder, batch: dict, bands: Sequence[str],
                    minFluxRatio: float = 0.1) -> list[str]:
    r"""Give output channels that draw (almost) nothing a fresh start from their nearest live band.

    A channel whose decoded flux over ``batch`` is below ``minFluxRatio`` of the target's
    (:func:`~.validation.silentBands`) has a last layer whose pre-activations sit far below zero:
    a ReLU passes no gradient there and a softplus almost none, so fine-tuning alone never wakes
    it (the shipped weights' u band). Its weights and bias in the decoder's last layer are
    replaced by those of the nearest band in wavelength order that is alive, scaled by the ratio
    :math:`\sum y_b / \sum y_{b'}` of their target fluxes (exact for a ReLU output, close for a
    softplus above a few units): galaxies look alike from band to band, so training starts from a
    galaxy of the right brightness instead of from nothing. Returns the revived bands.

    Parameters
    ----------
    encoder : `~.networks.Encoder`
        The VAE encoder (read only).
    decoder : `~.networks.Decoder`
        The decoder, whose last layer is changed in place.
    batch : `dict` [`str`, `torch.Tensor`]
        Validation galaxies: ``observed`` (N, bands, S, S) the encoder's input and ``model``
        (N, bands, S, S) the target, in network units.
    bands : sequence of `str`
        The band names in channel order, by wavelength.
    minFluxRatio : `float`, optional
        Decoded over target total flux below which a band is dead.

    Returns
    -------
    revived : `list` [`str`]
        The dead bands that were restarted (empty when none was dead).

    Raises
    ------
    ValueError
        If every band is dead (there is nothing to start from).

    Examples
    --------
    A decoder whose u channel is stuck far below zero:

    >>> config = ModelConfig.fromProfile("tiny")
    >>> encoder, decoder = Encoder(config), Decoder(config)
    >>> with torch.no_grad():
    ...     _ = decoder.upsample[-2].bias.copy_(torch.tensor([-50.0, 1.0, 1.0, 1.0, 1.0, 1.0]))
    >>> batch = {"observed": torch.rand(8, 6, 45, 45), "model": torch.rand(8, 6, 45, 45)}
    >>> reviveDeadBands(encoder, decoder, batch, "ugrizy"), reviveDeadBands(encoder, decoder, batch, "ugrizy")
    (['u'], [])
    """
    from .validation import silentBands

    target = batch["model"]
    decoded = decoder(encoder(batch["observed"])[0])
    dead = silentBands(decoded.cpu().numpy(), target.cpu().numpy(), bands, minFluxRatio)
    if not dead:
        return []
    alive = [b for b, band in enumerate(bands) if band not in dead]
    if not alive:
        raise ValueError(f"every band of the decoder is dead ({list(bands)}): train it from scratch instead")
    flux = target.sum(dim=(0, 2, 3))
    last = cast(nn.ConvTranspose2d, decoder.upsample[-2])
    assert last.bias is not None  # the decoder's layers all have one
    for band in dead:
        b = list(bands).index(band)
        donor = min(alive, key=lambda a: (abs(a - b), a))
        ratio = float(flux[b] / flux[donor]) if float(flux[donor]) > 0 else 1.0
        last.weight[:, b] = last.weight[:, donor] * ratio
        last.bias[b] = last.bias[donor] * ratio
    return dead



@torch.no_grad()
def frameValidation(encoder: Encoder, decoder: Decoder, simulator, count: int, seed: int, batchSize: int = 256,
                    minFluxRatio: float = 0.1, minSnr: float = 5.0) -> dict[str, Any]:
    r"""Per-band agreement of decoded posterior means with the model-frame truth on ``count``
    held-out isolated galaxies the simulator draws with ``seed``.

    Cosine similarity is over all galaxies. :math:`|\delta F/F|` is over the galaxies detected
    in that band, matched-filter :math:`S/N = \sqrt{\sum s^2/\sigma^2} \ge` ``minSnr`` on the
    observed noiseless stamp :math:`s` (a galaxy invisible in u has no meaningful u flux
    ratio). Dead bands draw under ``minFluxRatio`` of the true flux in total.

    Parameters
    ----------
    encoder : `~.networks.Encoder`
        The VAE encoder, on the simulator's device (put in eval mode).
    decoder : `~.networks.Decoder`
        The decoder (put in eval mode).
    simulator : `~lsst.meas.extensions.madness.sim.trainingStamps.TrainingStampSimulator`
        Of the validation galaxies.
    count : `int`
        Galaxies drawn.
    seed : `int`
        Seed of the draws (the same galaxies for the same seed).
    batchSize : `int`, optional
        Galaxies drawn and decoded at once.
    minFluxRatio : `float`, optional
        Decoded over true total flux below which a band is dead (:func:`~.validation.silentBands`).
    minSnr : `float`, optional
        Matched-filter S/N from which a galaxy counts in a band's flux errors.

    Returns
    -------
    metrics : `dict` [`str`, object]
        ``stamps``, ``seed``, ``minSnr``; ``perBand``: per band the mean and median cosine, the galaxies
        ``detected``, and the mean and median absolute and mean signed relative flux error (NaN
        without a detection); ``deadBands`` and ``lowCosineBands`` (mean cosine below 0.9).

    Examples
    --------
    Untrained tiny networks on eight galaxies of a small simulated population:

    >>> from lsst.meas.extensions.madness.models import ModelFrame
    >>> from lsst.meas.extensions.madness.sim import generatePopulation
    >>> from lsst.meas.extensions.madness.sim.trainingStamps import TrainingStampSimulator, trainingSplits
    >>> arrays = trainingSplits(generatePopulation(40, seed=7), "ugrizy")["validation"]
    >>> simulator = TrainingStampSimulator(arrays, "ugrizy", stampSize=33)
    >>> config = ModelConfig.fromProfile("tiny", stampSize=33, modelFrame=ModelFrame.forSurvey("ugrizy"))
    >>> metrics = frameValidation(Encoder(config), Decoder(config), simulator, count=8, seed=0)
    >>> metrics["stamps"], list(metrics["perBand"]), sorted(metrics["perBand"]["r"])
    ... # doctest: +NORMALIZE_WHITESPACE
    (8, ['u', 'g', 'r', 'i', 'z', 'y'], ['detected', 'meanAbsFluxError', 'meanCosine', 'meanFluxError',
     'medianAbsFluxError', 'medianCosine'])
    """
    from .validation import ReconstructionMetrics, silentBands

    generator = torch.Generator(device=simulator.device).manual_seed(seed)
    decodedParts, truthParts, snrParts = [], [], []
    encoder.eval(), decoder.eval()
    for start in range(0, count, batchSize):
        batch = simulator.isolated(min(batchSize, count - start), generator)
        decodedParts.append(decoder(encoder(batch["observed"])[0]).float().cpu().numpy())
        truthParts.append(batch["model"].float().cpu().numpy())
        snrParts.append((batch["observedNoiseless"] ** 2 / batch["variance"]).sum(dim=(2, 3)).sqrt().cpu().numpy())
    decoded, truth, snr = np.concatenate(decodedParts), np.concatenate(truthParts), np.concatenate(snrParts)
    bands = simulator.bands
    perBand = {}
    for b, band in enumerate(bands):
        detected = snr[:, b] >= minSnr
        flux = ReconstructionMetrics.fromArrays(decoded[detected, b], truth[detected, b], band) if detected.any() \
            else None
        cosine = ReconstructionMetrics.fromArrays(decoded[:, b], truth[:, b], band)
        perBand[band] = {"meanCosine": cosine.meanCosine, "medianCosine": cosine.medianCosine,
                         "detected": int(detected.sum()),
                         "meanAbsFluxError": flux.meanAbsFluxError if flux else float("nan"),
                         "medianAbsFluxError": flux.medianAbsFluxError if flux else float("nan"),
                         "meanFluxError": flux.meanFluxError if flux else float("nan")}
    return {"stamps": count, "seed": seed, "minSnr": minSnr, "perBand": perBand,
            "deadBands": silentBands(decoded, truth, bands, minFluxRatio),
            "lowCosineBands": [band for band in bands if perBand[band]["meanCosine"] < 0.9]}


def trainWithinBudget(modelConfig: ModelConfig, config: BudgetConfig, simulator, validationSimulator, outDir,
                      *, initFrom: str | os.PathLike | None = None, progress: bool = True,
                      export: bool = True, recipe: Sequence[str] | None = None) -> dict[str, Any]:
    """Train the three networks within ``config.minutes`` and export them to ``outDir/models``.

    The exported latents are standardised (:mod:`.latentScale`) on ``config.metricStamps``
    held-out galaxies, so that the MAP fit's fixed learning rate suits them.

    Parameters
    ----------
    modelConfig
        Network sizes; its ``modelFrame`` must be the simulators' and its decoder should use
        ``outputActivation="softplus"``.
    config
        Minutes, stage shares, learning rates, batch size, device and seed.
    simulator, validationSimulator
        :class:`~lsst.meas.extensions.madness.sim.trainingStamps.TrainingStampSimulator` of the
        train and validation galaxies, on ``config.device``.
    outDir
        Checkpoints in ``outDir/<stage>/``, models in ``outDir/models/``, a summary in
        ``outDir/summary.json``.
    initFrom
        An exported model directory to start from (same profile), e.g. the shipped weights; weights
        of a model without a frame are adapted to the new units (:func:`adaptLegacyUnits`).

    Returns
    -------
    dict
        The summary: per-stage steps, seconds, stamps seen and losses, and the per-band metrics.

    Examples
    --------
    See ``tests/test_budget_training.py`` (a few seconds on CPU with the tiny profile).
    """
    frame = modelConfig.modelFrame
    if frame is None:
        raise ValueError("budget training draws the model frame: give the ModelConfig a modelFrame")
    for sim in (simulator, validationSimulator):
        if tuple(sim.bands) != tuple(modelConfig.bands) or sim.stampSize != modelConfig.stampSize or sim.frame != frame:
            raise ValueError("the simulator's bands, stamp size or model frame differ from the models'")
    device = resolveDevice(config.device)
    if simulator.device != device:
        raise ValueError(f"the simulator draws on {simulator.device} but training runs on {device}")
    outDir = Path(outDir)
    outDir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    batchSize = config.batchSize or (256 if device.type == "cuda" else 32)
    encoder, decoder = Encoder(modelConfig), Decoder(modelConfig)
    flow, deblender = makeFlow(modelConfig), Encoder(modelConfig)
    initialised, adapted = [], None
    if initFrom is not None:
        initialised = loadInitialWeights(initFrom, {"encoder": encoder, "decoder": decoder, "flow": flow,
                                                    "deblenderEncoder": deblender})
        card = json.loads((Path(initFrom) / "model_card.json").read_text())
        resumed = (Path(outDir) / "vae" / _CHECKPOINT).is_file()  # then the checkpoints replace these weights
        if not card.get("modelFrame") and not resumed:
            # Weights of a model without a frame take electrons / normalisation: rescale their first and
            # last layers so that they start from the same function of the new units.
            adapted = float(card["normalisation"])
            adaptLegacyUnits(encoder, deblender, decoder, adapted, simulator.electronsPerUnit.cpu())
    for module in (encoder, decoder, flow, deblender):
        module.to(device)
    revived: list[str] = []
    if initialised and not (Path(outDir) / "vae" / _CHECKPOINT).is_file():
        revived = reviveDeadBands(encoder, decoder, validationSimulator.isolated(
            min(config.validationStamps, 256), torch.Generator(device=device).manual_seed(6)), modelConfig.bands)
        if revived:
            _log.warning("the initial decoder draws nothing in bands %s: restarted them from their nearest live band",
                         revived)
    sky = (simulator.skyElectrons / simulator.electronsPerUnit**2).float()
    perUnit = simulator.electronsPerUnit.float()
    total = config.minutes * 60.0

    def fixed(draw, count: int, seed: int) -> list[dict]:
        generator = torch.Generator(device=device).manual_seed(seed)
        return [draw(min(batchSize, count - s), generator) for s in range(0, count, batchSize)]

    records: dict[str, Any] = {}
    vaeModules = {"encoder": encoder, "decoder": decoder}
    vae = nn.ModuleDict(vaeModules)
    records["vae"] = _runStage(
        "vae", vaeModules, vae, lambda b: _vaeLoss(encoder, decoder, b, sky, perUnit, config.beta, None),
        simulator.isolated, fixed(validationSimulator.isolated, config.validationStamps, 1), config,
        total * config.vae.share, batchSize, outDir, device, progress)
    for p in encoder.parameters():
        p.requires_grad_(False)
    records["flow"] = _runStage(
        "flow", {"flow": flow}, flow, lambda b: _flowLoss(flow, encoder, b, None), simulator.isolated,
        fixed(validationSimulator.isolated, config.validationStamps, 2), config, total * config.flow.share,
        batchSize, outDir, device, progress)
    if "deblenderEncoder" not in initialised:
        deblender.load_state_dict(encoder.state_dict())  # the paper starts the deblender from the VAE encoder
    for p in deblender.parameters():
        p.requires_grad_(True)
    records["deblender"] = _runStage(
        "deblender", {"deblender": deblender}, deblender, lambda b: _deblenderLoss(deblender, encoder, b),
        simulator.blended, fixed(validationSimulator.blended, config.validationStamps, 3), config,
        total * config.deblender.share, batchSize, outDir, device, progress)
    trainedSeconds = sum(record["seconds"] for record in records.values())  # over resumed runs too
    stamps = torch.cat([b["observed"] for b in fixed(validationSimulator.isolated, config.metricStamps, 5)])
    latentMean, latentStd = latentStatistics(encoder, stamps, batchSize)
    prior = standardiseLatents(encoder, deblender, decoder, flow, latentMean, latentStd)
    metrics = frameValidation(encoder, decoder, validationSimulator, config.metricStamps, seed=4, batchSize=batchSize)
    prior.eval()
    # A rehearsal with a handful of metric stamps exports no table (the deblender then leaves the quantile NaN).
    quantiles = (logPriorQuantiles(encoder, prior, stamps.split(batchSize),
                                   source=f"{len(stamps)} held-out isolated galaxies of the budget training's "
                                          "validation split, observed through random PSFs")
                 if len(stamps) >= MIN_GALAXIES else None)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"{platform.machine()} CPU, " \
        f"{torch.get_num_threads()} threads"
    training = {
        "kind": "budget", "device": str(device), "deviceName": name, "minutes": config.minutes,
        "trainedSeconds": round(trainedSeconds, 1), "initialisedFrom": str(initFrom) if initFrom else None,
        "initialisedNetworks": initialised, "stages": records, "budgetConfig": config.model_dump(mode="json"),
        "observedPsfs": {"fwhm": list(simulator.psfRange.fwhm), "moffatFraction": simulator.psfRange.moffatFraction},
        "galaxies": {"train": simulator.size, "validation": validationSimulator.size},
        "recipe": list(recipe) if recipe else None, "torchVersion": torch.__version__,
        "legacyUnitsAdaptedFrom": adapted, "revivedBands": revived,
        "latentStandardisation": {"stamps": config.metricStamps, "mean": latentMean.tolist(),
                                  "std": latentStd.tolist()},
    }
    summary: dict[str, Any] = {"training": training, "validation": metrics}
    if export:
        from .export import exportModels
        from .modelCard import updateModelCard

        card = exportModels(outDir / "models", modelConfig, encoder, decoder, prior, deblender,
                            conditions=simulator.conditions.model_dump(mode="json"), training=training,
                            validation={"modelFrame": metrics})
        if quantiles is not None:
            updateModelCard(card.parent, logPriorQuantiles=quantiles)
        summary["card"] = str(card)
    (outDir / "summary.json").write_text(json.dumps(summary, indent=1, default=float) + "\n")
    return summary
