"""TorchScript artefacts of trained networks, their model card, and checked loading.

A model directory holds

================================  ==============================================================
file                              content
================================  ==============================================================
``encoder.pt``                    VAE encoder, ``torch.jit.script``: stamps → (mean, scaleTril)
``decoder.pt``                    decoder, ``torch.jit.script``: latents → stamps
``deblender_encoder.pt``          VAE-deblender encoder, same interface as the encoder
``flow_log_prob.pt``              ``torch.jit.trace`` of the flow's ``log_prob``: latents → log p
``model_card.json``               bands, stamp size, normalisation, survey conditions, model
                                  config, training provenance, validation metrics, torch
                                  version, and the sha256 and size of each file
================================  ==============================================================

The flow is traced, not scripted: zuko's flows build their transforms in Python at call
time, which ``torch.jit.script`` cannot compile, while a trace records the operations of
``log_prob`` for the fixed latent dimension. Loading needs only ``torch``: no training code
and no zuko.

Reading, digesting and editing the card itself (:func:`~.modelCard.updateModelCard`,
:func:`~.modelCard.weakBands`, :class:`~.modelCard.ModelCardError`) is :mod:`.modelCard`'s; those
names import from here too.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .device import resolveDevice

# The card's own helpers live in .modelCard; imported here too, where they always were.
from .modelCard import (
    CARD_FORMAT,
    CARD_NAME,
    WEAK_BAND_COSINE,
    ModelCardError,
    _readCard,
    sha256,
    weakBands,
)
from .modelCard import updateModelCard as updateModelCard

__all__ = [
    "MODEL_FILES",
    "SHIPPED_MODELS",
    "MadnessModels",
    "exportModels",
    "loadModels",
    "loadShippedModels",
    "shippedModelsPath",
]

MODEL_FILES: dict[str, str] = {
    "encoder": "encoder.pt",
    "decoder": "decoder.pt",
    "deblenderEncoder": "deblender_encoder.pt",
    "flowLogProb": "flow_log_prob.pt",
}
#: Trained model directories that ship inside the package, by name.
SHIPPED_MODELS: dict[str, str] = {"lsst": "LSST 10-year depth, ugrizy, 45×45 stamps, light profile"}
_WEIGHTS = Path(__file__).resolve().parent.parent / "weights"
_CPU = torch.device("cpu")


def exportModels(
    outDir: str | os.PathLike,
    config,
    encoder: torch.nn.Module,
    decoder: torch.nn.Module,
    flow: torch.nn.Module,
    deblenderEncoder: torch.nn.Module,
    *,
    conditions: Mapping[str, Any] | None = None,
    training: Mapping[str, Any] | None = None,
    validation: Mapping[str, Any] | None = None,
) -> Path:
    """Write the four TorchScript files and the model card; return the card's path.

    Parameters
    ----------
    outDir : `str` or `os.PathLike`
        The model directory (created if missing; its files are overwritten).
    config : `~.config.ModelConfig`
        The networks' config: bands, stamp size, latent dimension, normalisation, model frame.
    encoder, decoder, deblenderEncoder : `torch.nn.Module`
        The trained VAE encoder, decoder and VAE-deblender encoder; moved to the CPU and scripted.
    flow : `torch.nn.Module`
        The zuko flow (wrapped in :class:`~.flow.FlowLogProb`), or a module whose ``forward`` is
        ``log_prob`` (e.g. :class:`~.latentScale.StandardisedFlowLogProb`); traced.
    conditions : mapping, optional
        The survey conditions of the training data (e.g. ``LSST_CONDITIONS.model_dump()``); needed by
        models with a model frame to convert images to nJy.
    training, validation : mapping, optional
        Free-form provenance and metrics, recorded as given.

    Returns
    -------
    card : `pathlib.Path`
        ``outDir / "model_card.json"``.

    Examples
    --------
    >>> import tempfile
    >>> from lsst.meas.extensions.madness.models import (ModelConfig, Encoder, Decoder, makeFlow,
    ...     EncoderConfig, DecoderConfig, FlowConfig)
    >>> config = ModelConfig(encoder=EncoderConfig(channels=(4, 4, 4, 4), denseUnits=8),
    ...     decoder=DecoderConfig(denseUnits=8, seedChannels=4, channels=(4, 4, 4)),
    ...     flow=FlowConfig(transforms=2, hiddenFeatures=(8,)))
    >>> card = exportModels(tempfile.mkdtemp(), config, Encoder(config), Decoder(config),
    ...     makeFlow(config), Encoder(config))
    >>> models = loadModels(card.parent, bands=config.bands, stampSize=45)
    >>> tuple(models.decode(torch.zeros(1, 16)).shape)
    (1, 6, 45, 45)
    """
    from .flow import FlowLogProb

    outDir = Path(outDir)
    outDir.mkdir(parents=True, exist_ok=True)
    modules: dict[str, torch.jit.ScriptModule] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is deprecated, still the format asked for
        for name, module in (("encoder", encoder), ("decoder", decoder), ("deblenderEncoder", deblenderEncoder)):
            modules[name] = torch.jit.script(module.cpu().eval())
    flowModule = flow if not hasattr(flow, "transform") else FlowLogProb(flow)
    flowModule = flowModule.cpu().eval()
    example = torch.zeros(2, config.latentDim)
    with torch.no_grad(), warnings.catch_warnings():
        # zuko turns its base distribution's parameters into constants: exactly what a
        # fixed prior should be in the trace.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        modules["flowLogProb"] = torch.jit.trace(flowModule, example, check_trace=False)
    files = {}
    for name, module in modules.items():
        path = outDir / MODEL_FILES[name]
        module.save(str(path))
        files[name] = {"path": path.name, "sha256": sha256(path), "bytes": path.stat().st_size}
    card = {
        "format": CARD_FORMAT,
        "bands": list(config.bands),
        "stampSize": config.stampSize,
        "latentDim": config.latentDim,
        "normalisation": config.normalisation,
        "profile": config.profile,
        "modelConfig": config.model_dump(mode="json"),
        "modelFrame": config.modelFrame.model_dump(mode="json") if getattr(config, "modelFrame", None) else None,
        "surveyConditions": dict(conditions) if conditions is not None else None,
        "training": dict(training or {}),
        "validation": dict(validation or {}),
        "torchVersion": torch.__version__,
        "files": files,
    }
    cardPath = outDir / CARD_NAME
    cardPath.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    return cardPath


@dataclass(frozen=True, eq=False)
class MadnessModels:
    """The loaded TorchScript networks and their model card."""

    encoder: torch.jit.ScriptModule
    decoder: torch.jit.ScriptModule
    deblenderEncoder: torch.jit.ScriptModule
    flowLogProb: torch.jit.ScriptModule
    card: dict
    directory: Path
    #: Where the networks run, and so every tensor that meets them: set by :func:`loadModels`,
    #: changed only by :meth:`to`. The one owner of the torch device (:func:`~..deblend.fit.fitBlends`
    #: and the deblending task run on it).
    device: torch.device = _CPU

    def to(self, device: str | torch.device) -> MadnessModels:
        """Move every network to ``device`` (``"auto"``, ``"cpu"``, ``"cuda:1"``, a :class:`torch.device`;
        see :func:`~.device.resolveDevice`), in place, and set :attr:`device`; returns ``self``.

        Parameters
        ----------
        device : `str` or `torch.device`
            Where the networks go: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a torch device.

        Returns
        -------
        models : `MadnessModels`
            ``self``, its networks and :attr:`device` on ``device``.

        Raises
        ------
        ValueError
            If torch does not know the device or this machine lacks it.

        Examples
        --------
        >>> models = loadShippedModels()
        >>> models.to("cpu") is models, models.device
        (True, device(type='cpu'))
        """
        resolved = resolveDevice(device)
        for name in MODEL_FILES:
            getattr(self, name).to(resolved)
        object.__setattr__(self, "device", resolved)  # frozen: no field changes but by this method
        return self

    @property
    def bands(self) -> tuple[str, ...]:
        """The card's bands, in channel order."""
        return tuple(self.card["bands"])

    @property
    def stampSize(self) -> int:
        """Side of the networks' stamps, model-frame pixels."""
        return int(self.card["stampSize"])

    @property
    def normalisation(self) -> float:
        """Electrons per network unit of models without a model frame."""
        return float(self.card["normalisation"])

    @property
    def modelFrame(self) -> dict | None:
        """The card's model frame (pixel scale, model PSF FWHM, flux unit, band scales), or None for
        models that draw galaxies as observed with the training survey's PSF."""
        return self.card.get("modelFrame") or None

    def imageScale(self) -> np.ndarray:
        """Image units (electrons of the card's survey) per network unit, per band.

        :attr:`normalisation` in every band for models without a model frame. With one, the
        band's scale in nJy over the nJy of one electron of the card's ``surveyConditions``
        (zero point and exposure time): exposures are taken to be calibrated as the training
        survey's coadds, until they carry their own calibration.

        Returns
        -------
        scale : `numpy.ndarray`
            (bands,) image units per network unit.

        Raises
        ------
        ModelCardError
            For a model frame without the card's ``surveyConditions``.

        Examples
        --------
        >>> import tempfile
        >>> from lsst.meas.extensions.madness.models import Decoder, Encoder, ModelConfig, makeFlow
        >>> config = ModelConfig.fromProfile("tiny", bands=("g", "r"))
        >>> tmp = tempfile.TemporaryDirectory()
        >>> card = exportModels(tmp.name, config, Encoder(config), Decoder(config), makeFlow(config), Encoder(config))
        >>> loadModels(tmp.name).imageScale().tolist()
        [10000.0, 10000.0]
        >>> tmp.cleanup()
        """
        frame = self.modelFrame
        if frame is None:
            return np.full(len(self.bands), self.normalisation)
        from ..sim.survey import SurveyConditions
        from ..sim.trainingStamps import nJyPerElectron

        if not self.card.get("surveyConditions"):
            raise ModelCardError(f"{self.directory / CARD_NAME}: a model frame needs the card's surveyConditions "
                                 "to convert images to nJy")
        conditions = SurveyConditions.model_validate(self.card["surveyConditions"])
        return np.array([scale / nJyPerElectron(conditions, band)
                         for band, scale in zip(self.bands, frame["bandScales"])])

    @property
    def logPriorQuantiles(self) -> dict | None:
        """The card's table of held-out galaxies' log-priors (:mod:`.priorQuantiles`), or None when
        the card has none (``madness-models prior-quantiles`` writes one)."""
        return self.card.get("logPriorQuantiles") or None

    @property
    def mapLearningRate(self) -> float | None:
        """The MAP step size chosen for these networks on validation blends (card ``map.lr``,
        written by ``madness-models tune-map``), or None when the card has none."""
        value = (self.card.get("map") or {}).get("lr")
        return None if value is None else float(value)

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """Stamps of ``latent`` in network units (multiply by :meth:`imageScale` for image units); in the
        model frame for models that have one.

        Parameters
        ----------
        latent : `torch.Tensor`
            (N, D) latents, on the decoder's device.

        Returns
        -------
        stamps : `torch.Tensor`
            (N, bands, S, S).

        Examples
        --------
        >>> import tempfile
        >>> from lsst.meas.extensions.madness.models import Decoder, Encoder, ModelConfig, makeFlow
        >>> config = ModelConfig.fromProfile("tiny", bands=("g", "r"))
        >>> tmp = tempfile.TemporaryDirectory()
        >>> card = exportModels(tmp.name, config, Encoder(config), Decoder(config), makeFlow(config), Encoder(config))
        >>> tuple(loadModels(tmp.name).decode(torch.zeros(3, 16)).shape)
        (3, 2, 45, 45)
        >>> tmp.cleanup()
        """
        return self.decoder(latent)

    def logPrior(self, latent: torch.Tensor) -> torch.Tensor:
        """The flow's log-density of latents.

        Parameters
        ----------
        latent : `torch.Tensor`
            (N, D) latents.

        Returns
        -------
        logPrior : `torch.Tensor`
            (N,) :math:`\\log p(z)`.

        Examples
        --------
        >>> import tempfile
        >>> from lsst.meas.extensions.madness.models import Decoder, Encoder, ModelConfig, makeFlow
        >>> config = ModelConfig.fromProfile("tiny", bands=("g", "r"))
        >>> tmp = tempfile.TemporaryDirectory()
        >>> card = exportModels(tmp.name, config, Encoder(config), Decoder(config), makeFlow(config), Encoder(config))
        >>> tuple(loadModels(tmp.name).logPrior(torch.zeros(3, 16)).shape)
        (3,)
        >>> tmp.cleanup()
        """
        return self.flowLogProb(latent)


def loadModels(
    directory: str | os.PathLike,
    *,
    bands: Sequence[str] | None = None,
    stampSize: int | None = None,
    device: str | torch.device = "cpu",
) -> MadnessModels:
    """Load a model directory with ``torch.jit.load`` after checking its card.

    Parameters
    ----------
    directory : `str` or `os.PathLike`
        A model directory (:func:`exportModels`).
    bands : sequence of `str`, optional
        The bands the data have, in order; checked against the card's. None: not checked.
    stampSize : `int`, optional
        The stamp size the caller will give; checked against the card's. None: not checked.
    device : `str` or `torch.device`, optional
        Where the networks are loaded (``map_location``).

    Returns
    -------
    models : `MadnessModels`
        The four networks in eval mode, the card and the directory. A warning names the bands the
        card's validation calls weak (:func:`~.modelCard.weakBands`).

    Raises
    ------
    FileNotFoundError
        No model card, or a file it lists is missing (named).
    ValueError
        ``device`` is not a torch device name, or this machine lacks it (:func:`~.device.resolveDevice`).
    ModelCardError
        The card is not valid JSON or lacks a key; its bands or stamp size differ from
        ``bands`` / ``stampSize`` (both values are given); a file's SHA-256 differs from the
        card's (the file, both digests).

    Examples
    --------
    >>> import tempfile
    >>> from lsst.meas.extensions.madness.models import Decoder, Encoder, ModelConfig, makeFlow
    >>> config = ModelConfig.fromProfile("tiny", bands=("g", "r"))
    >>> tmp = tempfile.TemporaryDirectory()
    >>> card = exportModels(tmp.name, config, Encoder(config), Decoder(config), makeFlow(config), Encoder(config))
    >>> models = loadModels(tmp.name, bands="gr", stampSize=45)
    >>> models.bands, models.stampSize, models.modelFrame
    (('g', 'r'), 45, None)
    >>> loadModels(tmp.name, bands="gri")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    lsst.meas.extensions.madness.models.modelCard.ModelCardError: ...: the models take bands ['g', 'r'], but ...
    >>> tmp.cleanup()
    """
    device = resolveDevice(device)  # once: the models own it from here on (MadnessModels.device)
    directory = Path(directory)
    card = _readCard(directory)
    cardPath = directory / CARD_NAME
    if bands is not None and list(bands) != list(card["bands"]):
        raise ModelCardError(f"{cardPath}: the models take bands {card['bands']}, but the data have {list(bands)}")
    if stampSize is not None and int(stampSize) != int(card["stampSize"]):
        raise ModelCardError(f"{cardPath}: the models take {card['stampSize']}-pixel stamps, not {stampSize}")
    modules = {}
    for name in MODEL_FILES:
        entry = card["files"].get(name)
        if entry is None:
            raise ModelCardError(f"{cardPath}: model card lists no {name!r} file")
        path = directory / entry["path"]
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing model file (listed in {cardPath})")
        digest = sha256(path)
        if digest != entry["sha256"]:
            raise ModelCardError(
                f"{path}: sha256 {digest} differs from the model card's {entry['sha256']}: "
                "the file is corrupted or does not belong to this card"
            )
        try:
            with warnings.catch_warnings():
                # torch 2.9+ deprecates TorchScript in favour of torch.export; the format still loads.
                warnings.simplefilter("ignore", DeprecationWarning)
                modules[name] = torch.jit.load(str(path), map_location=device).eval()
        except RuntimeError as error:
            raise ModelCardError(f"{path}: not a loadable TorchScript file ({error})") from None
    models = MadnessModels(card=card, directory=directory, device=device, **modules)
    _checkShapes(models, cardPath)
    weak = weakBands(card)
    if weak:
        warnings.warn(f"{cardPath}: the decoder reproduces bands {', '.join(weak)} poorly (held-out mean cosine "
                      f"below {WEAK_BAND_COSINE}); their children are unreliable", stacklevel=2)
    return models


def _checkShapes(models: MadnessModels, cardPath: Path) -> None:
    """Run the networks once on zeros: the card's bands, stamp size and latent size must fit them.

    The digests tie the files to the card, not the card to the networks: a card edited by hand
    (or files exported with another band set) would otherwise fail only when deblending.
    """
    nBands, size, latentDim = len(models.bands), models.stampSize, int(models.card["latentDim"])
    device = models.device
    try:
        with torch.no_grad():
            stamps = models.decoder(torch.zeros(1, latentDim, device=device))
            encoded = models.deblenderEncoder(torch.zeros(1, nBands, size, size, device=device))[0]
            models.flowLogProb(torch.zeros(1, latentDim, device=device))
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ModelCardError(f"{cardPath}: the networks do not take the card's {nBands} bands of {size}-pixel "
                             f"stamps and {latentDim}-d latents ({first})") from None
    if tuple(stamps.shape[1:]) != (nBands, size, size) or encoded.shape[-1] != latentDim:
        raise ModelCardError(f"{cardPath}: the decoder draws {tuple(stamps.shape[1:])} stamps and the encoder "
                             f"gives {encoded.shape[-1]}-d latents; the card says ({nBands}, {size}, {size}) "
                             f"and {latentDim}")


def shippedModelsPath(name: str = "lsst") -> Path:
    """Directory of the shipped model set ``name`` (see :data:`SHIPPED_MODELS`).

    Parameters
    ----------
    name : `str`, optional
        A key of :data:`SHIPPED_MODELS`.

    Returns
    -------
    directory : `pathlib.Path`
        Inside the installed package (``weights/<name>``).

    Raises
    ------
    ValueError
        If the package ships no model set of that name.

    Examples
    --------
    >>> shippedModelsPath("lsst").name, (shippedModelsPath() / "model_card.json").is_file()
    ('lsst', True)
    """
    if name not in SHIPPED_MODELS:
        raise ValueError(f"no shipped models named {name!r}; the package ships {sorted(SHIPPED_MODELS)}")
    return _WEIGHTS / name


def loadShippedModels(name: str = "lsst", **kwargs) -> MadnessModels:
    """:func:`loadModels` on the trained weights that ship with the package (no download).

    Parameters
    ----------
    name : `str`, optional
        A key of :data:`SHIPPED_MODELS`.
    **kwargs
        ``bands``, ``stampSize`` and ``device``, as for :func:`loadModels`.

    Returns
    -------
    models : `MadnessModels`
        The shipped networks and their card.

    Raises
    ------
    ValueError
        If the package ships no model set of that name.

    Examples
    --------
    >>> models = loadShippedModels(bands="ugrizy", stampSize=45)
    >>> models.bands, models.card["latentDim"]
    (('u', 'g', 'r', 'i', 'z', 'y'), 16)
    """
    return loadModels(shippedModelsPath(name), **kwargs)
