"""``ScarletDeblendTask``: SCARLET (``scarlet2``, JAX on CPU) behind the same task interface as MADNESS.

It is the baseline MADNESS is measured against and MADNESS's fallback. Each parent that passes
the skip checks is fitted alone (:func:`~.scarletCore.fitScarletBlend`) on its footprint's
bounding box grown by ``boxMargin`` pixels, with the band PSFs at the blend's centre (the
kernel images :func:`~.blends.makeBlend` evaluated there: a PSF that varies over the exposure
is taken where each parent lies);
sources start at the peaks. The children, columns and flags are those of every deblend task
(:mod:`.baseTask`); the ``madness_*`` columns hold the SCARLET fit's log-likelihood and
convergence, and no log-prior.

Examples
--------
>>> from lsst.meas.extensions.madness.afw.table import SourceTable
>>> task = ScarletDeblendTask(SourceTable.makeMinimalSchema(), bands="gri")
>>> task.bands, task.config.maxIter
(('g', 'r', 'i'), 200)
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from ..afw.exposure import MultibandExposure
from ..afw.table import SourceRecord
from ..framework import Field
from .baseTask import DeblendBaseConfig, DeblendBaseTask
from .blendModel import BlendModel
from .blends import Blend
from .footprints import ChildModels
from .scarletCore import ScarletFitConfig, fitScarletBlend

__all__ = ["ScarletDeblendConfig", "ScarletDeblendTask"]


class ScarletDeblendConfig(DeblendBaseConfig):
    """Configuration of :class:`ScarletDeblendTask`."""

    bands: list[str] = Field(default_factory=lambda: list("ugrizy"),
                             doc="Bands to deblend when the task is not given them.")
    maxIter: int = Field(200, ge=1, doc="Most iterations of the SCARLET fit (more soak neighbours' flux "
                                        "into the free morphologies).")
    relativeError: float = Field(1e-3, gt=0, doc="Stop when no parameter changes by more than this fraction "
                                                 "of its norm in one step.")
    spectrumStep: float = Field(0.05, gt=0, doc="Step size of the spectra, relative to their norm.")
    morphologyStep: float = Field(1e-3, gt=0, doc="Step size of the morphologies, relative to their norm.")
    boxMargin: int = Field(2, ge=0, doc="Pixels added around the footprint's bounding box for the fit.")
    compilationCacheDir: str | None = Field(
        None, doc="Directory of JAX's persistent compilation cache (None: no cache). scarlet2 compiles "
        "every fit; with a cache, fits of the same shapes reuse the compiled code, about twice as fast "
        "and with identical results. Takes effect at the first fit of a process.")

    def fitConfig(self) -> ScarletFitConfig:
        """The settings of :func:`~.scarletCore.fitScarletBlend` that this config's fields give.

        Returns
        -------
        config : `~.scarletCore.ScarletFitConfig`
            ``maxIter``, ``relativeError``, the step sizes and the compilation cache of this config.

        Examples
        --------
        >>> ScarletDeblendConfig(maxIter=50).fitConfig().maxIter
        50
        """
        return ScarletFitConfig(maxIter=self.maxIter, relativeError=self.relativeError,
                                spectrumStep=self.spectrumStep, morphologyStep=self.morphologyStep,
                                compilationCacheDir=self.compilationCacheDir)


class ScarletDeblendTask(DeblendBaseTask):
    """Deblend parents with SCARLET (module docstring); same constructor, ``run`` and columns as MADNESS."""

    ConfigClass = ScarletDeblendConfig
    config: ScarletDeblendConfig
    _DefaultName = "scarletDeblend"
    method = "scarlet"

    def defaultBands(self) -> tuple[str, ...]:
        return tuple(self.config.bands)

    def modelBlends(self, mExposure: MultibandExposure, blends: Sequence[Blend],
                    parents: Sequence[SourceRecord]) -> list[BlendModel | Exception]:
        from tqdm.auto import tqdm

        fitConfig = self.config.fitConfig()
        results: list[BlendModel | Exception] = []
        for blend, parent in tqdm(list(zip(blends, parents)), unit="blend", desc="SCARLET fits",
                                  disable=not self.progress):
            try:
                results.append(self._fitOne(mExposure, blend, parent, fitConfig))
            except Exception as error:  # noqa: BLE001 - the base task flags the parent
                results.append(error)
        return results

    def _fitOne(self, mExposure: MultibandExposure, blend: Blend, parent: SourceRecord,
                fitConfig: ScarletFitConfig) -> BlendModel:
        start = time.perf_counter()
        half = blend.cutouts.shape[-1] // 2
        height, width = blend.data.shape[1:]
        if blend.psfImages is None:  # raises, naming the bands without a PSF
            psfs = mExposure.computePsfKernelImage(parent.getFootprint().getCentroid()).array
        else:
            shapes = {image.shape for image in blend.psfImages}
            if len(shapes) != 1:
                raise ValueError(f"PSF images have different sizes across bands: {sorted(shapes)}")
            psfs = np.stack(blend.psfImages)
        size = min(psfs.shape[-1], (min(height, width) - 1) // 2 * 2 + 1)
        if size < psfs.shape[-1]:
            cut = (psfs.shape[-1] - size) // 2
            psfs = psfs[:, cut:cut + size, cut:cut + size]
            psfs = psfs / psfs.sum(axis=(1, 2), keepdims=True)
        # The blend's canvas is grown by half a MADNESS stamp; SCARLET needs only the footprint and
        # ``boxMargin``, but scarlet2 needs a box at least as large as the PSF.
        insetY = max(min(half - self.config.boxMargin, (height - size) // 2), 0)
        insetX = max(min(half - self.config.boxMargin, (width - size) // 2), 0)
        crop = (slice(None), slice(insetY, height - insetY), slice(insetX, width - insetX))
        positions = np.stack([blend.rows + half - insetY, blend.cols + half - insetX], axis=1) + blend.subpixel
        fit = fitScarletBlend(blend.data[crop], blend.weight[crop], psfs, positions, self.bands, fitConfig)
        images, rows, cols = [], [], []
        for model in fit.models:
            # Keep each child only on its non-zero box: a big parent's K full canvases would not fit in memory.
            ys, xs = np.nonzero(np.any(model != 0, axis=0))
            y0, y1 = (ys.min(), ys.max() + 1) if len(ys) else (0, 1)
            x0, x1 = (xs.min(), xs.max() + 1) if len(xs) else (0, 1)
            images.append(model[:, y0:y1, x0:x1])
            rows.append(insetY + y0)
            cols.append(insetX + x0)
        children = ChildModels(images, np.array(rows), np.array(cols))
        return BlendModel(children, fit.iterations, fit.converged, 1e3 * (time.perf_counter() - start), self.method,
                          fit.logLikelihood)
