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
        return bool(np.isfinite(self.stamps).all() and np.isfinite(self.logLikelihood)
                    and np.isfinite(self.logPrior).all())


def blendPixelRatio(models: MadnessModels, pixelScale: float | None) -> float:
    """The exposure's pixel side over the model frame's, for pixels of ``pixelScale`` arcsec (None:
    unknown); 1.0 for models without a model frame, which draw on the exposure's pixels whatever they are."""
    frame = models.modelFrame
    return 1.0 if frame is None else pixelScaleRatio(pixelScale, frame["pixelScale"])


def blendStampSize(models: MadnessModels, pixelScale: float | None) -> int:
    """Side, in exposure pixels, of the blends' stamps for ``models`` on pixels of ``pixelScale`` arcsec."""
    return exposureStampSize(models.stampSize, blendPixelRatio(models, pixelScale))


def observationKernels(models: MadnessModels, psfImages: Sequence[Sequence[np.ndarray] | None],
                       device: str | torch.device, check: bool = False,
                       pixelScale: float | None = None) -> torch.Tensor | None:
    """Difference-kernel spectra (N, bands, M, M // 2 + 1) of N blends' PSF kernel images (on pixels of
    ``pixelScale`` arcsec; None: the model frame's), for models with a model frame (None for the
    others), on one grid, the kernels cut to where their light is (:func:`~.observation.cropPsfImage`).

    Raises
    ------
    ValueError
        A blend without PSFs, for models that need them (names the blend's index).
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
    frame's, resampled to the model frame's first (:func:`~.mapCore.resampleStamps`)."""
    if ratio != 1.0:
        cutouts = resampleStamps(cutouts, models.stampSize, 1.0 / ratio)
    return encoder(cutouts)[0]


@torch.no_grad()
def observedStamps(models: MadnessModels, latents: torch.Tensor, offsets: torch.Tensor | None,
                   kernels: torch.Tensor | None, ratio: float = 1.0) -> torch.Tensor:
    """Decoded ``latents`` (N, D) as the exposure sees them, in image units (N, bands, S', S'):
    through their difference kernels (N, ...) for model-frame models, on exposure pixels ``ratio``
    times the model frame's, shifted by ``offsets`` (N, 2) = (dy, dx) when given; the one way
    children's stamps are drawn."""
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
    the cost, are TorchScript either way. It runs on ``models.device``, where the networks are."""
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

    The fits run on ``models.device``: load the models with ``device=`` (:func:`~..models.export.loadModels`)
    or move them with :meth:`~..models.export.MadnessModels.to`; the fits come back as CPU numpy arrays.

    ``secondsPerBlend`` is a time budget: a batch of n blends stops optimising after n times it,
    and its blends that had not met the stopping rule are returned with ``timedOut``.
    ``uncertainties`` adds each child's Laplace uncertainties (:func:`~.uncertainty.laplaceUncertainties`)
    at the MAP latents: ``fluxErr`` and ``shapes`` (r band; NaN if the models have no r band); if they
    raise, the batch's fits stand without them (None, a warning).

    Raises
    ------
    ValueError
        If a blend's bands or stamp size differ from the models'.
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
            from .uncertainty import laplaceUncertainties

            begin = time.perf_counter()
            try:
                laplace = laplaceUncertainties(
                    models.decoder, models.flowLogProb, result.latents, fitted[1], tensors["rows"], tensors["cols"],
                    tensors["present"], offsets, fitted[2], ratio, channels, models.imageScale(), len(models.bands),
                    models.bands.index("r") if "r" in models.bands else None)
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
