"""Fit many blends with the exported networks: batching, starting latents, and the fitted children.

:func:`fitBlends` sorts the blends by their number of peaks K, so that a batch wastes little on
padding, and fills batches of at most ``maxGalaxies`` = B × max K galaxies. For each batch the
VAE-deblender encoder gives the starting latents (the posterior means of the peaks' cutouts), the
MAP core (:func:`~.mapCore.fitLatents`) fits them with :class:`~.mapCore.MapObjective` (:func:`mapObjective`)
on ``models.device``, and the decoder draws each child's stamp. Results come back in the input order,
one :class:`BlendFit` per blend: no blend is dropped. A fit that went non-finite is
returned as it is (:attr:`BlendFit.finite` is False), for the caller's fallback.

With ``subpixel=True`` the decoded stamps are shifted by each peak's sub-pixel offset from its
stamp's central pixel (:func:`~.mapCore.shiftStamps`), in the fit and in the children drawn;
``False`` rounds the positions, as the paper does. The VAE-deblender encoder still sees the
cutout around the rounded position, as in its training.

An exposure whose pixels are not the model frame's (HSC's 0.168″, DES's 0.263″) is fitted on its
own pixels: the blends' stamps are :func:`~.observation.exposureStampSize` exposure pixels, the
encoder's cutouts are resampled to the model frame (:func:`~.mapCore.resampleStamps`), and the
decoded galaxies are sampled on the exposure's pixels by the observation model. Blends are batched
by pixel scale.

A band with no weight in any blend of a batch (one the exposure lacks) is not fitted: the
objective leaves it out, and the children drawn in it are zero, not invented.

Pixels are divided by the models' per-band image scale (:meth:`~..models.export.MadnessModels.imageScale`)
before the networks see them, so the weights are multiplied by its square. Models that draw in
a model frame have their decoded stamps convolved with each blend's difference kernels
(:mod:`.observation`), which also apply the sub-pixel shifts, before they meet the data.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import numpy as np
import torch

from ..models.export import MadnessModels
from .blends import Blend, stackBlends
from .levenbergMarquardt import fitLatentsLM
from .mapCore import MapConfig, MapObjective, fitLatents, resampleStamps, shiftStamps
from .observation import (
    convolveStamps,
    cropPsfImage,
    differenceKernelSpectrum,
    exposureStampSize,
    kernelGridSize,
    pixelScaleRatio,
)

__all__ = ["BlendFit", "blendPixelRatio", "blendStampSize", "encodeCutouts", "fitBlends", "mapObjective",
           "observationKernels", "observedStamps"]


@dataclass
class BlendFit:
    """The MAP children of one blend (stamps in electrons, placed at the blend's ``rows``/``cols``)."""

    latents: np.ndarray  # (K, D)
    initialLatents: np.ndarray  # (K, D), from the VAE-deblender encoder
    stamps: np.ndarray  # (K, bands, S, S)
    logPrior: np.ndarray  # (K,)
    logLikelihood: float
    iterations: int
    converged: bool
    runtime: float = float("nan")  # ms: the batch's time shared in proportion to the blends' peaks
    timedOut: bool = False  # the batch ran out of its time budget before this blend met the stopping rule
    # Laplace uncertainties (:mod:`.uncertainty`), with ``uncertainties=True``; None otherwise.
    fluxErr: np.ndarray | None = None  # (K, bands), image units like ``stamps``
    shapes: np.ndarray | None = None  # (K, 4): e1, e2, σ(e1), σ(e2) of the r-band model
    uncertaintyRuntime: float = float("nan")  # ms, the batch's time for them shared like ``runtime``

    @property
    def finite(self) -> bool:
        """Whether the stamps, the log-likelihood and the log-priors are all finite."""
        return bool(np.isfinite(self.stamps).all() and np.isfinite(self.logLikelihood)
                    and np.isfinite(self.logPrior).all())


def blendPixelRatio(models: MadnessModels, pixelScale: float | None) -> float:
    """The exposure's pixel side over the model frame's, for pixels of ``pixelScale`` arcsec (None:
    unknown); 1.0 for models without a model frame, which draw on the exposure's pixels whatever they are.

    Parameters
    ----------
    models : `~lsst.meas.extensions.madness.models.export.MadnessModels`
        The loaded networks; their card's model frame, if any, gives the frame's pixel scale.
    pixelScale : `float` or None
        The exposure's pixel side, arcsec; None: unknown, taken to be the model frame's.

    Returns
    -------
    ratio : `float`
        Exposure pixel side over model-frame pixel side (:func:`~.observation.pixelScaleRatio`).

    Raises
    ------
    ValueError
        If ``pixelScale`` is not a positive number (models with a model frame only).

    Examples
    --------
    >>> from lsst.meas.extensions.madness.testing import makeTinyModels
    >>> models = makeTinyModels("gr", modelFrame=True, seed=0)     # untrained, in the LSST model frame
    >>> blendPixelRatio(models, 0.168), blendPixelRatio(models, None)   # HSC pixels; unknown
    (0.84, 1.0)
    """
    frame = models.modelFrame
    return 1.0 if frame is None else pixelScaleRatio(pixelScale, frame["pixelScale"])


def blendStampSize(models: MadnessModels, pixelScale: float | None) -> int:
    """Side, in exposure pixels, of the blends' stamps for ``models`` on pixels of ``pixelScale`` arcsec.

    Parameters
    ----------
    models : `~lsst.meas.extensions.madness.models.export.MadnessModels`
        The loaded networks (their card's stamp size and model frame).
    pixelScale : `float` or None
        The exposure's pixel side, arcsec; None: unknown, taken to be the model frame's.

    Returns
    -------
    size : `int`
        The ``stampSize`` to give :func:`~.blends.makeBlend` (:func:`~.observation.exposureStampSize`).

    Examples
    --------
    >>> from lsst.meas.extensions.madness.testing import makeTinyModels
    >>> models = makeTinyModels("gr", modelFrame=True, seed=0)     # untrained, in the LSST model frame
    >>> blendStampSize(models, 0.2), blendStampSize(models, 0.168)
    (45, 55)
    """
    return exposureStampSize(models.stampSize, blendPixelRatio(models, pixelScale))


def observationKernels(models: MadnessModels, psfImages: Sequence[Sequence[np.ndarray] | None],
                       device: str | torch.device, check: bool = False,
                       pixelScale: float | None = None) -> torch.Tensor | None:
    """Difference-kernel spectra (N, bands, M, M // 2 + 1) of N blends' PSF kernel images (on pixels of
    ``pixelScale`` arcsec; None: the model frame's), for models with a model frame (None for the
    others), on one grid, the kernels cut to where their light is (:func:`~.observation.cropPsfImage`).

    Parameters
    ----------
    models : `~lsst.meas.extensions.madness.models.export.MadnessModels`
        The loaded networks; only models with a model frame need kernels.
    psfImages : sequence of (sequence of `numpy.ndarray`) or None
        For each of N blends, its PSF kernel image in every band of the models (a blend's
        ``psfImages``), or None for a blend without PSFs.
    device : `str` or `torch.device`
        Where the spectra are put.
    check : `bool`, optional
        Only check that every blend has PSFs (raise if not) and return None, computing nothing.
    pixelScale : `float`, optional
        The blends' pixel side, arcsec (all N share it); None: the model frame's.

    Returns
    -------
    spectra : `torch.Tensor` or None
        Complex (N, bands, M, M // 2 + 1), M the common grid (:func:`~.observation.kernelGridSize`);
        None for models without a model frame, or with ``check``.

    Raises
    ------
    ValueError
        A blend without PSFs, for models that need them (names the blend's index).

    Examples
    --------
    >>> from lsst.meas.extensions.madness.testing import makeTinyModels
    >>> models = makeTinyModels("gr", modelFrame=True, seed=0)     # untrained, in the LSST model frame
    >>> import numpy as np
    >>> y, x = np.mgrid[-10:11, -10:11]
    >>> psf = np.exp(-(x**2 + y**2) / 8.0); psf /= psf.sum()           # a 0.94″ Gaussian on 0.2″ pixels
    >>> spectra = observationKernels(models, [[psf, psf]], "cpu")      # one blend, bands g and r
    >>> tuple(spectra.shape), spectra.dtype
    ((1, 2, 60, 31), torch.complex64)
    """
    frame = models.modelFrame
    if frame is None:
        return None
    missing = [i for i, images in enumerate(psfImages) if images is None]
    if missing:
        raise ValueError(f"the models draw galaxies in a model frame and need the exposure's PSF in every band; "
                         f"blend {missing[0]} has none")
    if check:
        return None
    cropped = [[cropPsfImage(p) for p in images] for images in psfImages if images is not None]
    ratio = blendPixelRatio(models, pixelScale)
    extent = int(np.ceil(max(max(p.shape) for images in cropped for p in images) * ratio))
    size = kernelGridSize(models.stampSize, extent)
    psfPixelScale = None if ratio == 1.0 else pixelScale
    return torch.stack([differenceKernelSpectrum(images, frame["psfFwhm"], frame["pixelScale"], models.stampSize, size,
                                                 psfPixelScale) for images in cropped]).to(device)


@torch.no_grad()
def encodeCutouts(models: MadnessModels, encoder: torch.nn.Module, cutouts: torch.Tensor,
                  ratio: float = 1.0) -> torch.Tensor:
    """Posterior-mean latents (N, D) of ``encoder`` (the models' ``encoder`` or ``deblenderEncoder``) for
    cutouts (N, bands, S', S') in the networks' units on exposure pixels ``ratio`` times the model
    frame's, resampled to the model frame's first (:func:`~.mapCore.resampleStamps`).

    Parameters
    ----------
    models : `~lsst.meas.extensions.madness.models.export.MadnessModels`
        The loaded networks (their stamp size S).
    encoder : `torch.nn.Module`
        Stamps (N, bands, S, S) → (mean (N, D), scale (N, D, D)): ``models.encoder`` or
        ``models.deblenderEncoder``.
    cutouts : `torch.Tensor`
        (N, bands, S', S') in the networks' units (image units over :meth:`~..models.export.MadnessModels.imageScale`).
    ratio : `float`, optional
        Exposure pixel side over the model frame's (:func:`blendPixelRatio`); 1: S' = S, no resampling.

    Returns
    -------
    latents : `torch.Tensor`
        (N, D) posterior means, without gradient.

    Examples
    --------
    >>> import torch
    >>> from lsst.meas.extensions.madness.testing import makeTinyModels
    >>> models = makeTinyModels("gr", seed=0)                         # untrained networks of a few kB
    >>> tuple(encodeCutouts(models, models.deblenderEncoder, torch.zeros(3, 2, 45, 45)).shape)
    (3, 16)
    >>> tuple(encodeCutouts(models, models.deblenderEncoder, torch.zeros(3, 2, 55, 55), ratio=0.84).shape)
    (3, 16)
    """
    if ratio != 1.0:
        cutouts = resampleStamps(cutouts, models.stampSize, 1.0 / ratio)
    return encoder(cutouts)[0]


@torch.no_grad()
def observedStamps(models: MadnessModels, latents: torch.Tensor, offsets: torch.Tensor | None,
                   kernels: torch.Tensor | None, ratio: float = 1.0) -> torch.Tensor:
    """Decoded ``latents`` (N, D) as the exposure sees them, in image units (N, bands, S', S'):
    through their difference kernels (N, ...) for model-frame models, on exposure pixels ``ratio``
    times the model frame's, shifted by ``offsets`` (N, 2) = (dy, dx) when given; the one way
    children's stamps are drawn.

    Parameters
    ----------
    models : `~lsst.meas.extensions.madness.models.export.MadnessModels`
        The loaded networks.
    latents : `torch.Tensor`
        (N, D) latents of N galaxies.
    offsets : `torch.Tensor` or None
        Sub-pixel shifts (N, 2) = (dy, dx), exposure pixels; None: none.
    kernels : `torch.Tensor` or None
        Difference-kernel spectra (N, bands, M, M // 2 + 1) of each galaxy's blend (:func:`observationKernels`,
        repeated per galaxy), for model-frame models; None for the others.
    ratio : `float`, optional
        Exposure pixel side over the model frame's (read with ``kernels`` only).

    Returns
    -------
    stamps : `torch.Tensor`
        (N, bands, S', S') in image units (the deblender's): decoded stamps times
        :meth:`~..models.export.MadnessModels.imageScale`.

    Examples
    --------
    >>> import torch
    >>> from lsst.meas.extensions.madness.testing import makeTinyModels
    >>> models = makeTinyModels("gr", seed=0)                         # untrained networks of a few kB
    >>> stamps = observedStamps(models, torch.zeros(2, 16), torch.tensor([[0.3, -0.2], [0.0, 0.0]]), None)
    >>> tuple(stamps.shape), bool((stamps >= -1e-3).all())
    ((2, 2, 45, 45), True)
    """
    decoded = models.decode(latents)
    if kernels is not None:
        decoded = convolveStamps(decoded, kernels, offsets, ratio)
    elif offsets is not None:
        decoded = shiftStamps(decoded, offsets)
    scale = torch.as_tensor(models.imageScale(), dtype=decoded.dtype, device=decoded.device)
    return decoded * scale.view(1, -1, 1, 1)


def mapObjective(models: MadnessModels) -> MapObjective:
    """The MAP objective of ``models`` as :func:`fitBlends` runs it: in eager mode around the TorchScript
    networks. Scripted as a whole, its gradient with difference kernels was another after its first
    call (TorchScript's symbolic autodiff; by up to 98 % on HSC pixels, 2 % on the model frame's,
    torch 2.13), while the gradient of eager autograd does not change; the networks, which hold
    the cost, are TorchScript either way.

    Parameters
    ----------
    models : `~lsst.meas.extensions.madness.models.export.MadnessModels`
        The loaded networks: their decoder and flow log-density.

    Returns
    -------
    objective : `~.mapCore.MapObjective`
        The per-step loss for :func:`~.mapCore.fitLatents`.

    Examples
    --------
    >>> import torch
    >>> from lsst.meas.extensions.madness.testing import makeTinyModels
    >>> models = makeTinyModels("gr", seed=0)                         # untrained networks of a few kB
    >>> objective = mapObjective(models)
    >>> latents, data = torch.zeros(1, 1, 16), torch.zeros(1, 2, 45, 45)
    >>> rows = cols = torch.zeros(1, 1, dtype=torch.long)
    >>> with torch.no_grad():
    ...     loss, logLikelihood, logPrior = objective(latents, data, torch.ones_like(data), rows, cols,
    ...                                               torch.ones(1, 1, dtype=torch.bool))
    >>> tuple(loss.shape), tuple(logPrior.shape)
    ((1,), (1, 1))
    """
    return MapObjective(models.decoder, models.flowLogProb)


def _batches(blends: Sequence[Blend], maxGalaxies: int, ratios: Sequence[float] | None = None) -> list[list[int]]:
    ratios = ratios or [1.0] * len(blends)
    order = sorted(range(len(blends)), key=lambda i: (ratios[i], blends[i].nPeaks))
    batches: list[list[int]] = []
    for i in order:
        # Sorted by K within a pixel scale, so the newest blend has the batch's largest K.
        if batches and ratios[batches[-1][0]] == ratios[i] and (len(batches[-1]) + 1) * blends[i].nPeaks <= maxGalaxies:
            batches[-1].append(i)
        else:
            batches.append([i])
    return batches


def fitBlends(models: MadnessModels, blends: Sequence[Blend], config: MapConfig = MapConfig(),
              maxGalaxies: int = 64, progress: bool = False,
              subpixel: bool = True, secondsPerBlend: float | None = None,
              uncertainties: bool = False) -> list[BlendFit]:
    """MAP fits of ``blends`` (see the module docstring); one :class:`BlendFit` per blend, in order.

    The blends are batched by pixel scale and number of peaks; for each batch the VAE-deblender
    encoder gives the starting latents, :func:`~.mapCore.fitLatents` (or, with
    ``config.optimizer="lm"``, :func:`~.levenbergMarquardt.fitLatentsLM`) fits them, and the decoder
    draws the children through the observation model (:func:`observedStamps`).

    Parameters
    ----------
    models : `~lsst.meas.extensions.madness.models.export.MadnessModels`
        The loaded networks (:func:`~..models.export.loadModels`, :func:`~..models.export.loadShippedModels`).
        The fits run on ``models.device``: load the models with ``device=`` or move them with
        :meth:`~..models.export.MadnessModels.to`; the fits come back as CPU numpy arrays.
    blends : sequence of `~.blends.Blend`
        The blends (:func:`~.blends.makeBlend`), in the deblender's pixel units, with the models' bands
        in their order and stamps of :func:`blendStampSize` pixels; model-frame models also need
        each blend's ``psfImages``.
    config : `~.mapCore.MapConfig`, optional
        Optimiser, learning rate and stopping rule.
    maxGalaxies : `int`, optional
        Most galaxies in one batch, counted as blends × the batch's largest K (a blend with more
        peaks is fitted alone).
    progress : `bool`, optional
        Show a progress bar over blends (tqdm).
    subpixel : `bool`, optional
        Shift the decoded stamps by each peak's sub-pixel offset (``Blend.subpixel``), in the fit and in
        the children; False rounds the positions, as the paper does.
    secondsPerBlend : `float`, optional
        A time budget: a batch of n blends stops optimising after n times it, and its blends that had
        not met the stopping rule are returned with ``timedOut``; None: no limit.
    uncertainties : `bool`, optional
        Add each child's Laplace uncertainties (:func:`~.uncertainty.laplaceUncertainties`) at the MAP
        latents: ``fluxErr`` and ``shapes`` (r band; NaN if the models have no r band). If they
        raise, the batch's fits stand without them (None, a warning).

    Returns
    -------
    fits : `list` [`BlendFit`]
        One per blend, in the order of ``blends``: latents (K, D), starting latents, children's stamps
        (K, bands, S, S) in the deblender's units placed at the blend's ``rows``/``cols``, log-prior
        per child, log-likelihood, steps, convergence, runtime. A fit that went non-finite is returned
        as it is (``finite`` False).

    Raises
    ------
    ValueError
        If a blend's bands or stamp size differ from the models', or if a blend lacks PSFs the models
        need.

    Examples
    --------
    Untrained tiny networks on a blend of two peaks, five steps:

    >>> import torch
    >>> from lsst.meas.extensions.madness.testing import makeTinyModels
    >>> models = makeTinyModels("gr", seed=0)                         # untrained networks of a few kB
    >>> import numpy as np
    >>> from lsst.meas.extensions.madness.afw import Box2I, Extent2I, Footprint, MultibandExposure, Point2I, SpanSet
    >>> from lsst.meas.extensions.madness.deblend import MapConfig, makeBlend
    >>> image = np.random.default_rng(0).normal(0, 1, (2, 60, 60)).astype(np.float32)
    >>> mExp = MultibandExposure.fromArrays("gr", image, np.zeros(image.shape, np.int32), np.ones_like(image))
    >>> parent = Footprint(SpanSet(Box2I(Point2I(20, 20), Extent2I(20, 20))))
    >>> _ = parent.addPeak(25, 28, 10.0), parent.addPeak(33, 30, 10.0)
    >>> blend = makeBlend(mExp, parent, stampSize=blendStampSize(models, None))
    >>> [fit] = fitBlends(models, [blend], MapConfig(maxIter=5, minIter=2))
    >>> fit.latents.shape, fit.stamps.shape, fit.finite, 1 <= fit.iterations <= 5
    ((2, 16), (2, 2, 45, 45), True, True)
    """
    from tqdm.auto import tqdm

    ratios = [blendPixelRatio(models, blend.pixelScale) for blend in blends]
    for index, (blend, ratio) in enumerate(zip(blends, ratios)):
        size = exposureStampSize(models.stampSize, ratio)
        if blend.data.shape[0] != len(models.bands) or blend.cutouts.shape[-1] != size:
            raise ValueError(f"blend {index} has {blend.data.shape[0]} bands and {blend.cutouts.shape[-1]}-pixel "
                             f"stamps; the models take {len(models.bands)} bands and, on its "
                             f"{blend.pixelScale or 'unknown'} arcsec pixels, {size}-pixel stamps")
    device = models.device
    bandScale = torch.as_tensor(models.imageScale(), dtype=torch.float32, device=device)
    observationKernels(models, [blend.psfImages for blend in blends], "cpu", check=True)  # fail before any fit
    objective = mapObjective(models)
    results: list[BlendFit | None] = [None] * len(blends)
    bar = tqdm(total=len(blends), unit="blend", desc="MAP fits", disable=not progress)
    for indices in _batches(blends, maxGalaxies, ratios):
        start = time.perf_counter()
        ratio = ratios[indices[0]]
        arrays = stackBlends([blends[i] for i in indices])
        tensors = {key: torch.as_tensor(value, device=device) for key, value in arrays.items()}
        scale = bandScale.view(1, -1, 1, 1)
        data = tensors["data"].float() / scale
        weight = tensors["weight"].float() * scale**2
        live = (weight > 0).any(dim=3).any(dim=2).any(dim=0)  # (bands,)
        channels = None if bool(live.all()) else live.nonzero().flatten()
        cutouts = tensors["cutouts"].float() / scale.unsqueeze(0)
        b, k = cutouts.shape[:2]
        offsets = tensors["subpixel"].float() if subpixel else None
        kernels = observationKernels(models, [blends[i].psfImages for i in indices], device,
                                     pixelScale=blends[indices[0]].pixelScale)
        initial = encodeCutouts(models, models.deblenderEncoder, cutouts.reshape(b * k, *cutouts.shape[2:]),
                                ratio).view(b, k, -1)
        fitted = (data, weight, kernels) if channels is None else (
            data[:, channels], weight[:, channels], None if kernels is None else kernels[:, channels])
        limit = None if secondsPerBlend is None else secondsPerBlend * len(indices)
        fit = fitLatentsLM if config.optimizer == "lm" else fitLatents
        result = fit(objective, initial, fitted[0], fitted[1], tensors["rows"], tensors["cols"], tensors["present"],
                     config, offsets, timeLimit=limit, kernels=fitted[2], ratio=ratio, channels=channels,
                     onStop=bar.update)
        bar.update(int((~result.converged).sum()))  # the blends that ran to maxIter or out of time
        stamps = observedStamps(models, result.latents.reshape(b * k, -1),
                                None if offsets is None else offsets.reshape(b * k, 2),
                                None if kernels is None else kernels.repeat_interleave(k, dim=0), ratio)
        stamps = stamps.view(b, k, *stamps.shape[1:]) * live.to(stamps.dtype).view(1, 1, -1, 1, 1)
        elapsed = 1e3 * (time.perf_counter() - start)
        laplace, spent = None, float("nan")
        if uncertainties:
            from .uncertainty import SHAPE_BAND, laplaceUncertainties

            begin = time.perf_counter()
            try:
                laplace = laplaceUncertainties(
                    models.decoder, models.flowLogProb, result.latents, fitted[1], tensors["rows"], tensors["cols"],
                    tensors["present"], offsets, fitted[2], ratio, channels, models.imageScale(), len(models.bands),
                    models.bands.index(SHAPE_BAND) if SHAPE_BAND in models.bands else None)
            except Exception as error:  # noqa: BLE001 - the fit stands without its uncertainties (NaN)
                import logging

                logging.getLogger(__name__).warning("Laplace uncertainties failed for a batch of %d blends (%s: %s); "
                                                    "their columns are NaN", len(indices), type(error).__name__, error)
            spent = 1e3 * (time.perf_counter() - begin)
        peaks = sum(blends[i].nPeaks for i in indices)
        for row, i in enumerate(indices):
            n = blends[i].nPeaks
            results[i] = BlendFit(
                latents=result.latents[row, :n].cpu().numpy(), initialLatents=initial[row, :n].cpu().numpy(),
                stamps=stamps[row, :n].cpu().numpy(), logPrior=result.logPrior[row, :n].cpu().numpy(),
                logLikelihood=float(result.logLikelihood[row]), iterations=int(result.iterations[row]),
                converged=bool(result.converged[row]), runtime=elapsed * n / peaks,
                timedOut=result.timedOut is not None and bool(result.timedOut[row]),
                fluxErr=None if laplace is None else laplace.fluxErr[row, :n],
                shapes=None if laplace is None else np.stack([laplace.e1[row, :n], laplace.e2[row, :n],
                                                              laplace.e1Err[row, :n], laplace.e2Err[row, :n]], axis=1),
                uncertaintyRuntime=spent * n / peaks)
    bar.close()
    return cast("list[BlendFit]", results)  # every slot was filled: each blend is in exactly one batch
