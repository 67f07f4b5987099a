"""What every deblend task shares: skip checks, failures, children and their columns.

:class:`DeblendBaseTask` runs the data flow of a deblender: the parents of ``mergedSources``
are copied into a new catalogue; each is checked (:mod:`.skips`), cut into a
:class:`~.blends.Blend`, modelled by the subclass's :meth:`DeblendBaseTask.modelBlends`, and
its children are appended with heavy footprints (:mod:`.footprints`) and the columns of
:mod:`.columns`. Every parent ends in exactly one state, recorded in its flags: skipped (with
the reason, and ``NOT_DEBLENDED`` in the mask), failed (with the exception's class name), or
deblended into one child per peak (a peak whose model has no pixel above the threshold still
gets a child, flagged ``deblend_zeroFlux``, with its peak and no pixels).

Units (:mod:`.calibration`): the blends are cut in the deblender's pixel units
(:meth:`DeblendBaseTask.deblenderPhotoCalibs`), the children's heavy footprints are in the
exposure's, and their ``madness_flux_<band>`` columns in nJy, by the exposure's calibration.

Sky positions: with a WCS (``mExposure.getWcs()``) every child gets ``coord_ra``/``coord_dec`` at its
peak, and every parent without them at its footprint's centroid.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from typing import ClassVar, Literal

import numpy as np

from ..afw.detection import Footprint, MultibandFootprint, SpanSet
from ..afw.exposure import MultibandExposure
from ..afw.geom import Angle
from ..afw.photoCalib import PhotoCalib
from ..afw.skyWcs import SkyWcs
from ..afw.table import Schema, SourceCatalog, SourceRecord, SourceTable
from ..framework import Config, Field, Struct, Task, timeMethod
from .blendModel import BlendModel, ModelData, NonFiniteModelError
from .blends import DEFAULT_BAD_MASK_PLANES, Blend, makeBlend, parentPixelMap, withoutData
from .calibration import BandCalibration, bandCalibration, surveyPhotoCalibs
from .columns import SKIP_FLAGS, DeblendColumns
from .footprints import childFootprints
from .invariants import STRICT_ENVIRONMENT, InvariantError, checkInputCatalog, checkInvariants, checkMaskPlanes
from .skips import SkipLimits, skipReason

__all__ = ["DeblendBaseConfig", "DeblendBaseTask", "MissingBandsError"]


class MissingBandsError(ValueError):
    """The exposure lacks bands the deblender needs, and ``missingBands`` says not to add them."""


class DeblendBaseConfig(Config):
    """Fields shared by the MADNESS and SCARLET deblend tasks (names and defaults of LSST's)."""

    maxNumberOfPeaks: int = Field(600, ge=0, doc="Skip parents with more peaks than this (0: no limit).")
    maxFootprintArea: int = Field(2_000_000, ge=0, doc="Skip parents whose footprint has more pixels (0: no limit).")
    maxAreaTimesPeaks: int = Field(
        1_000_000_000, ge=0, doc="Skip parents whose footprint area times number of peaks is larger (0: no limit).")
    maxFootprintSize: int = Field(
        0, ge=0, doc="Skip parents whose footprint bounding box has a longer side, in pixels (0: no limit).")
    minFootprintAxisRatio: float = Field(
        0.0, ge=0, le=1, doc="Skip parents whose footprint's minor/major axis ratio is smaller (0: no limit).")
    maskLimits: dict[str, float] = Field(
        default_factory=dict,
        doc="Skip parents where the fraction of footprint pixels with a mask plane (key) exceeds the value.")
    badMask: list[str] = Field(
        default_factory=lambda: list(DEFAULT_BAD_MASK_PLANES),
        doc="Mask planes whose pixels get zero weight in the fit.")
    fitFootprintOnly: bool = Field(
        False, doc="Give zero weight to every pixel outside the parent footprint. If False, only the pixels of "
                   "other parents' footprints get zero weight: the undetected sky around the parent holds the "
                   "models' wings to the noise (fitted on its footprint alone, a galaxy can be drawn many times "
                   "brighter than the data around a small footprint at no cost).")
    notDeblendedMask: str = Field("NOT_DEBLENDED", doc="Mask plane set on the footprints of skipped parents.")
    pseudoColumns: list[str] = Field(
        default_factory=lambda: ["merge_peak_sky", "sky_source"],
        doc="Flag columns marking pseudo sources (sky objects), which are skipped.")
    processSingles: bool = Field(
        True, doc="Model parents with a single peak; if False they are flagged isolatedParent and their "
                  "child is a copy of the data in the footprint.")
    catchFailures: bool = Field(
        True, doc="Flag a parent whose modelling raises deblend_failed (with deblend_error) and go on; "
                  "if False the exception propagates.")
    missingBands: Literal["zeroWeight", "raise"] = Field(
        "zeroWeight",
        doc="A band the deblender needs but the exposure lacks (e.g. u for DES data): 'zeroWeight' adds it "
            "with no data (zero weight, NO_DATA mask), so parents are fitted on the other bands and carry "
            "deblend_incompleteData; 'raise' stops before any work.")
    strictInvariants: bool = Field(
        False, doc="Raise InvariantError when the output breaks an invariant (deblend/invariants.py) "
                   "instead of reporting it in the metadata (invariantViolations); the environment "
                   "variable MADNESS_STRICT_INVARIANTS=1 does the same.")
    conserveFlux: bool = Field(
        True, doc="Share the observed pixels between the children in proportion to their models, so that "
                  "the children sum to the data; if False each child carries its model.")
    footprintThreshold: float = Field(
        1.0, ge=0, doc="A child's footprint holds the parent-footprint pixels where its model exceeds this "
                       "many times the pixel noise, in any band.")

    def skipLimits(self) -> SkipLimits:
        """The limits of the skip checks (:mod:`.skips`) that this config's fields give.

        Returns
        -------
        limits : `~.skips.SkipLimits`
            ``pseudoColumns``, the footprint limits, ``maskLimits`` and ``maxNumberOfPeaks``.

        Examples
        --------
        >>> DeblendBaseConfig(maxNumberOfPeaks=10).skipLimits().maxNumberOfPeaks
        10
        """
        return SkipLimits(tuple(self.pseudoColumns), self.maxFootprintArea, self.maxFootprintSize,
                          self.minFootprintAxisRatio, self.maxAreaTimesPeaks, dict(self.maskLimits),
                          self.maxNumberOfPeaks)


class DeblendBaseTask(Task):
    """Base of the deblend tasks; subclasses set :attr:`method`, :attr:`bands` and :meth:`modelBlends`.

    Parameters
    ----------
    schema
        Schema of the parent catalogue; the deblender's columns are added to it.
    peakSchema
        Schema of the footprints' peaks (accepted for LSST compatibility; peaks are copied as they are).
    bands
        Bands to deblend, in order (default: :meth:`defaultBands`); the exposure must have them.
    progress
        Show a progress bar over blends (for command-line use).
    """

    ConfigClass = DeblendBaseConfig
    config: DeblendBaseConfig
    method: ClassVar[str] = ""

    def __init__(self, schema: Schema, peakSchema: Schema | None = None, *, bands: Sequence[str] | None = None,
                 progress: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.schema = schema
        self.peakSchema = peakSchema
        self.progress = progress
        self.bands = self.defaultBands() if bands is None else tuple(bands)
        self.columns = DeblendColumns(schema, self.bands)

    def defaultBands(self) -> tuple[str, ...]:
        """The bands deblended when the constructor is given none.

        Returns
        -------
        bands : `tuple` [`str`]
            In channel order (the subclasses': their config's ``bands``, or their models' bands).
        """
        raise NotImplementedError

    def deblenderPhotoCalibs(self) -> list[PhotoCalib | None]:
        """The calibration of the pixel units the deblender works in, per band of :attr:`bands` (None: the
        exposure's units). Here the electrons of LSST's 10-year coadds (``sim.survey.LSST_CONDITIONS``) for
        the LSST bands; MADNESS takes its models' ``surveyConditions``.

        Returns
        -------
        photoCalibs : `list` [`~lsst.meas.extensions.madness.afw.photoCalib.PhotoCalib` or None]
            nJy per deblender pixel unit in each band, None where the deblender has no units of its own.
        """
        from ..sim.survey import LSST_CONDITIONS

        return surveyPhotoCalibs(LSST_CONDITIONS, self.bands)

    def deblenderPixelScale(self) -> Angle | None:
        """The pixel scale the deblender is made for (None: any, it works on the exposure's pixels); an
        exposure of another scale is deblended with a warning.

        Returns
        -------
        scale : `~lsst.meas.extensions.madness.afw.geom.Angle` or None
            The pixel side, or None.
        """
        return None

    def modelBlends(self, mExposure: MultibandExposure, blends: Sequence[Blend],
                    parents: Sequence[SourceRecord]) -> list[BlendModel | Exception]:
        """One model per blend, in order; an exception in place of a blend that could not be modelled.

        Parameters
        ----------
        mExposure : `~lsst.meas.extensions.madness.afw.exposure.MultibandExposure`
            The exposure, in the task's bands and order.
        blends : sequence of `~.blends.Blend`
            The parents' blends, in the deblender's pixel units.
        parents : sequence of `~lsst.meas.extensions.madness.afw.table.SourceRecord`
            The parents' records, one per blend.

        Returns
        -------
        models : `list` [`~.blendModel.BlendModel` or `Exception`]
            One per blend: its children's models (in the deblender's units, on the blend's canvas), or
            the exception that stopped it (the parent is then flagged ``deblend_failed``).
        """
        raise NotImplementedError

    def refineBlends(self, pending: list[tuple[SourceRecord, Blend]], models: list[BlendModel | Exception],
                     rebuild: Callable[[Footprint], Blend],
                     nextPeakId: int) -> tuple[list[tuple[SourceRecord, Blend]], list[BlendModel | Exception]]:
        """A second look at the fitted blends (a hook; this base deblender takes none).

        Parameters
        ----------
        pending : `list` [(`SourceRecord`, `~.blends.Blend`)]
            Each modelled parent (of the output catalogue) and its blend.
        models : `list` [`~.blendModel.BlendModel` or `Exception`]
            Their models, from :meth:`modelBlends`.
        rebuild : callable
            Cuts the blend of a footprint as :meth:`run` cut them.
        nextPeakId : `int`
            An id no peak of the catalogue has (for new peaks; later ones count up from it).

        Returns
        -------
        pending, models : `list`
            The same lists, or new ones where a parent's footprint gained peaks (its children follow
            them: one per peak of the final footprint).

        Examples
        --------
        >>> DeblendBaseTask.refineBlends(None, [], [], None, 1)
        ([], [])
        """
        return pending, models

    @timeMethod
    def run(self, mExposure: MultibandExposure, mergedSources: SourceCatalog) -> Struct:
        """Deblend every parent of ``mergedSources`` on ``mExposure``.

        Parameters
        ----------
        mExposure : `~lsst.meas.extensions.madness.afw.exposure.MultibandExposure`
            The coadd, with every band of :attr:`bands` (missing ones per ``missingBands``), a PSF per
            band and, for fluxes in nJy, a photometric calibration per band. The ``NOT_DEBLENDED``
            mask plane is set on the skipped parents' footprints, in place.
        mergedSources : `~lsst.meas.extensions.madness.afw.table.SourceCatalog`
            The parents: records without parent, each with a footprint and its peaks
            (:func:`~.invariants.checkInputCatalog`).

        Returns
        -------
        Struct
            ``deblendedCatalog``: the parents, flagged, then their children (``parent`` = the
            parent's id), with heavy footprints (in the exposure's pixel units) and fluxes in nJy;
            ``modelData``: a :class:`~.blendModel.ModelData` (models in the deblender's units).

        Raises
        ------
        MissingCalibrationError
            If a band has no photometric calibration, on the exposure or of the deblender.
        """
        checkInputCatalog(mergedSources, mExposure.getBBox())
        checkMaskPlanes({"badMask": self.config.badMask, "maskLimits": list(self.config.maskLimits)}, mExposure.mask)
        absent = [band for band in self.bands if band not in mExposure.bands]
        mExposure = self._selectBands(mExposure)
        calibration = bandCalibration(mExposure, self.deblenderPhotoCalibs(), absent)
        self._checkPixelScale(mExposure)
        table = SourceTable(self.schema, mergedSources.getTable().getIdFactory().clone())
        catalog = SourceCatalog(table)
        catalog.extend(mergedSources, deep=True)
        limits = self.config.skipLimits()
        stampSize = self.blendStampSize(mExposure)
        parentPixels = parentPixelMap(mExposure, [record.getFootprint() for record in catalog])
        pending: list[tuple[SourceRecord, Blend]] = []
        # A snapshot: children are appended to ``catalog`` while the parents are gone through.
        for parent in list(catalog):
            footprint = parent.getFootprint()  # never None: checkInputCatalog refused that
            peaks = footprint.getPeaks()
            parent.set("deblend_nPeaks", len(peaks))
            reason = "noPeaks" if not peaks else skipReason(footprint, parent, mExposure, limits)
            if reason is not None:
                self._skip(parent, footprint, reason, mExposure)
            elif len(peaks) == 1 and not self.config.processSingles:
                self._copyIsolated(catalog, parent, footprint, mExposure, calibration)
            else:
                try:
                    blend = makeBlend(mExposure, footprint, stampSize, self.config.badMask,
                                      self.config.fitFootprintOnly, scales=calibration.toDeblender,
                                      parentPixels=parentPixels)
                except Exception as error:  # noqa: BLE001 - one bad parent must not stop the rest
                    self._fail(parent, error)
                    continue
                if not (blend.weight[:, footprint.getSpans().asArray(blend.canvasBox).astype(bool)] > 0).any():
                    self._skip(parent, footprint, "noData", mExposure)
                    continue
                pending.append((parent, blend))
        try:
            models = self.modelBlends(mExposure, [b for _, b in pending], [p for p, _ in pending]) if pending else []
        except Exception as error:
            if not self.config.catchFailures:
                raise
            models = [error] * len(pending)
        if pending:
            def rebuild(footprint: Footprint) -> Blend:
                return makeBlend(mExposure, footprint, stampSize, self.config.badMask, self.config.fitFootprintOnly,
                                 scales=calibration.toDeblender, parentPixels=parentPixels)

            nextPeakId = 1 + max((int(p.getId()) for r in catalog for p in r.getFootprint().getPeaks()), default=0)
            pending, models = self.refineBlends(pending, models, rebuild, nextPeakId)
        modelData = ModelData(self.bands, toDeblender=calibration.toDeblender)
        for (parent, blend), model in zip(pending, models):
            if not isinstance(model, Exception) and not model.finite:
                model = NonFiniteModelError(f"the {model.method} model of parent {parent.getId()} is not finite")
            if isinstance(model, Exception):
                self._fail(parent, model)
                continue
            self._addChildren(catalog, parent, blend, model, calibration)
            modelData.blends[parent.getId()] = model
            modelData.boxes[parent.getId()] = blend.canvasBox
            modelData.peakIds[parent.getId()] = list(blend.peakIds)
            # _addChildren appends the children last, one per peak, in peak order.
            modelData.childIds[parent.getId()] = [int(r.getId()) for r in catalog[len(catalog) - len(model.children):]]
        wcs = mExposure.getWcs()
        if wcs is not None:
            _setCoords(catalog, len(mergedSources), wcs)
        self._summarise(catalog, len(mergedSources))
        self._checkOutput(mergedSources, catalog, absent)
        return Struct(deblendedCatalog=catalog, modelData=modelData)

    def _checkOutput(self, mergedSources: SourceCatalog, catalog: SourceCatalog, absentBands: Sequence[str]) -> None:
        violations = checkInvariants(mergedSources, catalog, absentBands)
        self.metadata["nInvariantViolations"] = len(violations)
        if not violations:
            return
        self.metadata["invariantViolations"] = violations
        message = "; ".join(violations[:5]) + (f" (and {len(violations) - 5} more)" if len(violations) > 5 else "")
        if self.config.strictInvariants or os.environ.get(STRICT_ENVIRONMENT) == "1":
            raise InvariantError(message)
        self.log.error("the deblended catalogue breaks %d invariant(s), a bug: %s", len(violations), message)

    #: Stamp size of the blends cut for :meth:`modelBlends` (MADNESS: the models' stamp size).
    stampSize: int = 45

    def blendStampSize(self, mExposure: MultibandExposure) -> int:
        """Side, in the exposure's pixels, of the stamps of the blends cut from ``mExposure``.

        Parameters
        ----------
        mExposure : `~lsst.meas.extensions.madness.afw.exposure.MultibandExposure`
            The exposure (its pixel scale, for deblenders with a model frame).

        Returns
        -------
        size : `int`
            The stamp side given to :func:`~.blends.makeBlend`: here :attr:`stampSize`.
        """
        return self.stampSize

    def _checkPixelScale(self, mExposure: MultibandExposure) -> None:
        """Warn when the exposure's pixel scale (WCS or PIXSCALE) is not the one the deblender is made for
        (:meth:`deblenderPixelScale`), by more than 1 %."""
        scale, expected = mExposure.getPixelScale(), self.deblenderPixelScale()
        if scale is not None:
            self.metadata["pixelScaleArcsec"] = scale.asArcseconds()
        if scale is not None and expected is not None and abs(float(scale) / float(expected) - 1) > 0.01:
            self.log.warning("the exposure's pixels are %.4g arcsec, the deblender's %.4g arcsec: the children "
                             "will be drawn at the wrong scale", scale.asArcseconds(), expected.asArcseconds())

    def _selectBands(self, mExposure: MultibandExposure) -> MultibandExposure:
        """The exposure in the task's band order; missing bands added without data (``missingBands``)."""
        missing = [b for b in self.bands if b not in mExposure.bands]
        self.metadata["nMissingBands"] = len(missing)
        if missing:
            self.metadata["missingBands"] = missing
            if self.config.missingBands == "raise" or len(missing) == len(self.bands):
                raise MissingBandsError(f"{type(self).__name__} needs bands {list(self.bands)}; the exposure has "
                                        f"{list(mExposure.bands)} (missing {missing}; config.missingBands="
                                        f"{self.config.missingBands!r})")
            self.log.warning("the exposure lacks band(s) %s: they get zero weight", missing)
            mExposure = withoutData(mExposure, self.bands)
        return mExposure if tuple(mExposure.bands) == self.bands else mExposure[list(self.bands)]

    def _skip(self, parent: SourceRecord, footprint: Footprint, reason: str, mExposure: MultibandExposure) -> None:
        parent.set("deblend_skipped", True)
        if reason in SKIP_FLAGS:
            parent.set(SKIP_FLAGS[reason], True)
        else:
            parent.set("deblend_error", reason)
        parent.set("deblend_nChild", 0)
        mask = mExposure.mask
        mask.addMaskPlane(self.config.notDeblendedMask)
        bit = mask.getPlaneBitMask(self.config.notDeblendedMask)
        ys, xs = footprint.getSpans().clippedTo(mExposure.getBBox()).indices()
        x0, y0 = mExposure.getXY0()
        mask.array[:, ys - y0, xs - x0] |= np.int32(bit)
        self.log.debug("parent %d skipped: %s", parent.getId(), reason)

    def _fail(self, parent: SourceRecord, error: Exception) -> None:
        if not self.config.catchFailures:
            raise error
        parent.set("deblend_failed", True)
        parent.set("deblend_error", type(error).__name__)
        parent.set("deblend_nChild", 0)
        self.log.warning("parent %d failed: %s: %s", parent.getId(), type(error).__name__, error)

    def _copyIsolated(self, catalog: SourceCatalog, parent: SourceRecord, footprint: Footprint,
                      mExposure: MultibandExposure, calibration: BandCalibration) -> None:
        parent.set("deblend_skipped_isolatedParent", True)
        parent.set("deblend_nChild", 1)
        child = self._newChild(catalog, parent, footprint.getPeaks()[0], 1)
        spans = footprint.getSpans().clippedTo(mExposure.getBBox())
        # Heavy footprints hold no NaN (deblend/invariants.py): pixels without data are copied as 0.
        image = mExposure.image.array
        finite = np.isfinite(image)
        heavy = MultibandFootprint.fromArrays(
            self.bands, np.where(finite, image, 0.0), mExposure.mask.array, mExposure.variance.array,
            footprint=Footprint(spans, [footprint.getPeaks()[0]], footprint.getRegion()), xy0=mExposure.getXY0())
        child.setFootprint(heavy)
        ys, xs = spans.indices()
        x0, y0 = mExposure.getXY0()
        parent.set("deblend_incompleteData", bool((~finite[:, ys - y0, xs - x0]).any()))
        self._setFluxes(child, heavy.getImageArray().sum(axis=-1), calibration)

    def _setFluxes(self, child: SourceRecord, instFluxes: np.ndarray, calibration: BandCalibration) -> None:
        """The one place the flux columns are filled: ``instFluxes`` (bands,) in the exposure's pixel units,
        written in nJy."""
        for band, flux in zip(self.bands, calibration.instFluxToNanojansky(instFluxes)):
            child.set(self.columns.fluxColumn(band), float(flux))

    def _newChild(self, catalog: SourceCatalog, parent: SourceRecord, peak, nPeaks: int) -> SourceRecord:
        child = catalog.addNew()
        child.setParent(parent.getId())
        child.set("deblend_peakId", peak.getId())
        child.set("deblend_peak_center_x", peak.getIx())
        child.set("deblend_peak_center_y", peak.getIy())
        child.set("deblend_peak_instFlux", peak.getPeakValue())
        child.set("deblend_parentNPeaks", nPeaks)
        child.set("deblend_parentNChild", nPeaks)
        return child

    def _addChildren(self, catalog: SourceCatalog, parent: SourceRecord, blend: Blend, model: BlendModel,
                     calibration: BandCalibration) -> None:
        footprint = parent.getFootprint()
        box = blend.canvasBox
        children = model.children
        footprints, _ = childFootprints(blend, children, footprint, self.bands, self.config.footprintThreshold,
                                        self.config.conserveFlux)
        total = children.total(blend.data.shape)
        inParent = footprint.getSpans().asArray(box).astype(bool)
        residual, weighted = _weightedResidual(blend, total)
        parent.set("deblend_nChild", len(children))
        parent.set("deblend_iterations", model.iterations)
        parent.set("deblend_runtime", model.runtime)
        parent.set("deblend_chi2", _reducedChi2(residual, weighted, inParent))
        parent.set("deblend_blendConvergenceFailedFlag", not model.converged)
        parent.set("deblend_incompleteData", bool((~weighted.all(axis=0) & inParent).any()))
        fallback = model.method != self.method
        parent.set("deblend_fallback", fallback)
        parent.set("deblend_fallbackReason", model.fallbackReason)
        parent.set("madness_logLikelihood", model.logLikelihood)
        parent.set("madness_converged", model.converged)
        fluxes = children.fluxes()  # the deblender's units
        if blend.scale is not None:
            fluxes = fluxes / blend.scale[None, :]
        peaks = footprint.getPeaks()
        for k, peak in enumerate(peaks):
            child = self._newChild(catalog, parent, peak, len(peaks))
            heavy = footprints[k]
            if heavy is None:
                child.setFootprint(Footprint(SpanSet(), [peak], footprint.getRegion()))
                child.set("deblend_zeroFlux", True)
            else:
                child.setFootprint(heavy)
                child.set("deblend_chi2", _reducedChi2(residual, weighted, heavy.getSpans().asArray(box).astype(bool)))
            where = (slice(None), *children.slices(k))
            image = children.images[k]
            overlap = float((image * total[where]).sum())
            child.set("deblend_blendedness", 1 - float((image**2).sum()) / overlap if overlap > 0 else 0.0)
            self._setFluxes(child, fluxes[k], calibration)
            child.set("madness_logPrior", float(model.logPrior[k]) if model.logPrior is not None else float("nan"))
            child.set("madness_logLikelihood", model.logLikelihood)
            child.set("madness_converged", model.converged)
            child.set("deblend_fallback", fallback)
            child.set("deblend_fallbackReason", model.fallbackReason)

    def _summarise(self, catalog: SourceCatalog, nParents: int) -> None:
        parents = catalog[:nParents]
        counts = {
            "nParents": nParents,
            "nChildren": len(catalog) - nParents,
            "nDeblended": int(np.sum(parents["deblend_nChild"] > 0)
                              - np.sum(parents["deblend_skipped_isolatedParent"])),
            "nSkipped": int(np.sum(parents["deblend_skipped"])),
            "nFailed": int(np.sum(parents["deblend_failed"])),
            "nFallback": int(np.sum(parents["deblend_fallback"])),
            "nNotConverged": int(np.sum(parents["deblend_blendConvergenceFailedFlag"])),
        }
        for reason, flag in SKIP_FLAGS.items():
            counts[f"nSkipped_{reason}"] = int(np.sum(parents[flag]))
        for key, value in counts.items():
            self.metadata[key] = value
        self.log.info("deblended %d of %d parents into %d children (%d skipped, %d failed, %d by the fallback)",
                      counts["nDeblended"], nParents, counts["nChildren"], counts["nSkipped"], counts["nFailed"],
                      counts["nFallback"])


def _setCoords(catalog: SourceCatalog, nParents: int, wcs: SkyWcs) -> None:
    """``coord_ra``/``coord_dec``: children at their peak, parents that have none at their footprint's centroid."""
    records, xs, ys = [], [], []
    for index, record in enumerate(catalog):
        footprint = record.getFootprint()
        if index < nParents:
            if np.isfinite(record.get("coord_ra")) and np.isfinite(record.get("coord_dec")):
                continue
            spans = footprint.getSpans()
            position = spans.computeCentroid() if not spans.isEmpty() else (
                footprint.getPeaks()[0].getCentroid() if footprint.getPeaks() else None)
        else:
            position = footprint.getPeaks()[0].getCentroid()
        if position is not None:
            records.append(record)
            xs.append(position.getX())
            ys.append(position.getY())
    if not records:
        return
    ra, dec = wcs.pixelToSkyArray(np.array(xs), np.array(ys))
    for record, a, d in zip(records, ra, dec):
        record.set("coord_ra", float(a))
        record.set("coord_dec", float(d))


def _weightedResidual(blend: Blend, total: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """w (y − m)² per pixel of the blend's canvas for the summed model ``total``, and where w > 0."""
    return blend.weight * (blend.data - total) ** 2, blend.weight > 0


def parentChi2(blend: Blend, model: BlendModel, footprint: Footprint) -> float:
    """The parent's ``deblend_chi2``: the reduced χ² of ``model`` over ``footprint`` (all bands)."""
    residual, weighted = _weightedResidual(blend, model.children.total(blend.data.shape))
    return _reducedChi2(residual, weighted, footprint.getSpans().asArray(blend.canvasBox).astype(bool))


def _reducedChi2(residual: np.ndarray, weighted: np.ndarray, region: np.ndarray) -> float:
    """Σ w (y − m)² / N over the pixels of ``region`` (H, W) with weight, all bands."""
    use = weighted & region[None]
    count = int(use.sum())
    return float(residual[use].sum() / count) if count else float("nan")


def elapsedMs(start: float) -> float:
    return 1e3 * (time.perf_counter() - start)
