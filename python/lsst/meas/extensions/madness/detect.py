r"""Detection of parents (blends) and their peaks on a multiband exposure.

This is the stage that runs before deblending: it combines the bands into one
signal-to-noise image, thresholds it into connected segments, grows those into parent
footprints and lists the peaks (the deblender's children) inside each one. It mirrors
what ``lsst.meas.algorithms.SourceDetectionTask`` hands to a deblender: a
:class:`~lsst.meas.extensions.madness.afw.table.SourceCatalog` of parent records
(``parent == 0``), each with a :class:`~lsst.meas.extensions.madness.afw.Footprint`
holding its pixels and its peaks sorted brightest first, and the ``DETECTED`` mask plane
set on the footprints' pixels.

The peaks can come from the data (local maxima) or, for simulations and tests, from a
list of true positions, so that a deblender can be assessed without detection errors.

The detection image is made in :mod:`.detectImage` (its public names import from here
too), the footprints and peaks are found in :mod:`.detectFootprints`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy import ndimage

from .afw import Footprint, MultibandExposure, Point2I, SpanSet
from .afw.table import IdFactory, Schema, SourceCatalog, SourceTable

# The detection image and the footprint and peak finding have modules of their own.
from .detectFootprints import (
    _addTruthFootprints,
    _detectedPeaks,
    _growSegments,
    _parseTruth,
    _Peaks,
    _segment,
    _truthPeaks,
    _truthPixels,
)
from .detectImage import (
    DEFAULT_BAD_MASK_PLANES,
    _bandIndices,
    _psfSigma,
    _smoothedNoise,
    makeDetectionImage,
    matchedFilter,
)

__all__ = ["DetectionParams", "makeDetectionImage", "matchedFilter", "detectParents"]

#: Name of the peak ``extra`` field that records which truth position a peak came from.
TRUTH_INDEX_FIELD = "truth_index"


@dataclass(frozen=True)
class DetectionParams:
    r"""Parameters of :func:`detectParents`, with their defaults.

    Pass them on with ``detectParents(mExposure, **dataclasses.asdict(params))``.

    Attributes
    ----------
    nSigma
        Detection threshold on the detection image, in units of its (unit) noise.
        Default 5.
    minArea
        Minimum number of 8-connected pixels above threshold for a segment to count.
        Default 5.
    grow
        Radius in pixels of the disc by which segments are dilated into footprints.
        Default 2.
    minPeakSeparation
        Minimum distance in pixels between two detected peaks of one segment; also the
        half-size of the box in which a peak must be the maximum. Default 2.
    peakSmoothing
        Standard deviation in pixels of the Gaussian that smooths the detection image
        before peaks are searched for, so that single noisy pixels in a source's wings
        do not become peaks; 0 disables it. Kept narrower than the PSF so that close
        pairs keep two peaks. Default 1.
    peakProminence
        A peak other than its segment's brightest must rise at least this many noise
        standard deviations (of the smoothed peak image) above the lowest point on the
        straight line to each brighter peak of its segment, so noise bumps in the wings
        of bright galaxies do not become peaks. 0 disables it. Default 3.
    thresholdSmoothing
        Standard deviation in pixels of the Gaussian matched filter applied to the
        detection image before thresholding, as LSST's ``SourceDetectionTask`` convolves
        with the PSF: a faint extended galaxy whose pixels are each below ``nSigma`` is
        still found. ``"psf"`` (default) takes the mean Gaussian-equivalent width of the
        exposure's PSFs (:math:`\sigma = \sqrt{(I_{xx} + I_{yy})/2}` of each kernel), or
        no smoothing when the exposure has no PSF; 0 disables it.
    badMaskPlanes
        Mask planes whose pixels are left out of the detection image (those the mask
        does not have are skipped). Default ``("BAD", "NO_DATA", "SAT")``.
    """

    nSigma: float = 5.0
    minArea: int = 5
    grow: int = 2
    minPeakSeparation: int = 2
    peakSmoothing: float = 1.0
    badMaskPlanes: tuple[str, ...] = DEFAULT_BAD_MASK_PLANES
    thresholdSmoothing: float | str = "psf"
    peakProminence: float = 3.0

    def __post_init__(self) -> None:
        if not (np.isfinite(self.nSigma) and self.nSigma > 0):
            raise ValueError(f"nSigma must be a positive finite number, got {self.nSigma!r}")
        for name in ("minArea", "minPeakSeparation"):
            value = getattr(self, name)
            if int(value) != value or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if int(self.grow) != self.grow or self.grow < 0:
            raise ValueError(f"grow must be a non-negative integer, got {self.grow!r}")
        if not (np.isfinite(self.peakSmoothing) and self.peakSmoothing >= 0):
            raise ValueError(f"peakSmoothing must be a non-negative finite number, got {self.peakSmoothing!r}")
        if not (np.isfinite(self.peakProminence) and self.peakProminence >= 0):
            raise ValueError(f"peakProminence must be a non-negative finite number, got {self.peakProminence!r}")
        smoothing = self.thresholdSmoothing
        if isinstance(smoothing, str):
            if smoothing != "psf":
                raise ValueError(f'thresholdSmoothing must be "psf" or a non-negative number, got {smoothing!r}')
        elif not (np.isfinite(smoothing) and smoothing >= 0):
            raise ValueError(f'thresholdSmoothing must be "psf" or a non-negative number, got {smoothing!r}')
        for name in ("minArea", "grow", "minPeakSeparation"):
            object.__setattr__(self, name, int(getattr(self, name)))
        object.__setattr__(self, "badMaskPlanes", tuple(self.badMaskPlanes))


def _prepareSchema(schema: Schema | None) -> Schema:
    schema = SourceTable.makeMinimalSchema() if schema is None else schema
    for required in ("id", "parent"):
        if required not in schema:
            raise ValueError(f"the schema needs an {required!r} field; start from SourceTable.makeMinimalSchema()")
    if "deblend_nPeaks" not in schema:
        schema.addField("deblend_nPeaks", type="I", doc="Number of peaks in the footprint")
    if "detect_significance" not in schema:
        schema.addField("detect_significance", type="F", doc="Peak S/N of the detection image")
    return schema


def _setDetectedMask(mExposure: MultibandExposure, footprintPixels: np.ndarray) -> None:
    mask = mExposure.mask
    mask.addMaskPlane("DETECTED")
    bit = np.int32(mask.getPlaneBitMask("DETECTED"))
    # Stale bits from an earlier run would otherwise mark pixels no footprint covers.
    mask.array[...] &= ~bit
    mask.array[:, footprintPixels] |= bit


def detectParents(
    mExposure: MultibandExposure,
    *,
    nSigma: float = DetectionParams.nSigma,
    minArea: int = DetectionParams.minArea,
    grow: int = DetectionParams.grow,
    peaks: Literal["detected"] | np.ndarray = "detected",
    minPeakSeparation: int = DetectionParams.minPeakSeparation,
    peakSmoothing: float = DetectionParams.peakSmoothing,
    thresholdSmoothing: float | str = DetectionParams.thresholdSmoothing,
    peakProminence: float = DetectionParams.peakProminence,
    badMaskPlanes: Sequence[str] = DEFAULT_BAD_MASK_PLANES,
    bands: Sequence[str] | None = None,
    idFactory: IdFactory | None = None,
    schema: Schema | None = None,
) -> SourceCatalog:
    r"""Detect parents (blends) and their peaks on a multiband exposure.

    1. The detection image :math:`D = \sum_b w_b I_b / \sqrt{\sum_b w_b}` with
       :math:`w_b = 1/V_b` (see :func:`.makeDetectionImage`) has unit noise. Like LSST's
       ``SourceDetectionTask``, it is smoothed by a Gaussian matched filter of the
       PSF's width, rescaled to unit noise (:func:`.matchedFilter`,
       ``thresholdSmoothing``), and the threshold is simply :math:`D_\sigma > n_\sigma`.
    2. Segments are the 8-connected groups of at least ``minArea`` pixels above it
       (``photutils.segmentation.detect_sources``).
    3. The segments are dilated by a disc of radius ``grow`` (clipped to the exposure),
       and segments whose grown pixels touch become one parent, as afw's grown
       ``FootprintSet`` merges them: parents never share pixels, so no pixel is
       deblended, or its flux counted, twice.
    4. Peaks:

       - ``peaks="detected"``: the local maxima of :math:`D` smoothed by a Gaussian of
         ``peakSmoothing`` pixels that stand ``peakProminence`` noise sigmas above the
         dip towards every brighter peak, each the maximum of its segment within
         ``minPeakSeparation`` pixels (box half-size) and at least ``minPeakSeparation``
         from a brighter kept one. Every segment has at least one (its brightest pixel).
         Sub-pixel positions are the vertices of parabolas through the 3×3
         neighbourhood's row and column sums of that smoothed image.
       - ``peaks`` an ``(N, 2)`` array of true ``(x, y)`` parent positions: each becomes
         a peak at exactly that position in the parent containing its pixel. A position
         in no parent gets a new parent of its own, a disc of radius ``grow + 2`` around
         it (clipped to the exposure, without pixels of other parents), so **no truth
         source is lost**. A parent that contains no truth position (e.g. a noise
         detection) gets one peak at its maximum pixel. Each peak's
         ``extra["truth_index"]`` is its row in ``peaks``, or -1 for those added peaks.

       A peak's ``peakValue`` is :math:`D` at its pixel; peaks are sorted brightest
       first and have ids unique within the catalogue, counting from 1.
    5. The ``DETECTED`` mask plane (added if missing) is cleared and then set on the
       footprint pixels in every band of ``mExposure`` (which is modified in place).

    Parameters
    ----------
    mExposure
        The exposure; its ``xy0`` is honoured, so positions are in parent coordinates.
    nSigma, minArea, grow, minPeakSeparation, peakSmoothing, thresholdSmoothing, peakProminence, badMaskPlanes
        See :class:`DetectionParams`.
    peaks
        ``"detected"`` or an ``(N, 2)`` array of truth ``(x, y)`` positions.
    bands
        Bands to build the detection image from (default: all). ``DETECTED`` is set in
        every band regardless.
    idFactory
        Makes the record ids (default: a simple counter from 1).
    schema
        Schema to use; it needs ``id`` and ``parent``, and gains ``deblend_nPeaks`` and
        ``detect_significance`` (in place) when it lacks them. Default: the minimal
        schema plus those two fields.

    Returns
    -------
    catalog : `SourceCatalog`
        One record per parent, in raster order of their first pixel: ``parent = 0``,
        ``deblend_nPeaks`` the number of peaks, ``detect_significance`` the maximum of
        :math:`D_\sigma` on the footprint, and the :class:`Footprint` (region: the exposure's
        bounding box).

    Raises
    ------
    ValueError
        If the exposure has no bands, a band is unknown, no pixel has a finite positive
        variance, every usable pixel is masked, ``peaks`` is neither ``"detected"`` nor
        an ``(N, 2)`` array of finite positions inside the exposure, or a parameter is
        out of range.

    Examples
    --------
    Two isolated sources and a truth position on empty sky:

    >>> import numpy as np
    >>> from lsst.meas.extensions.madness.afw import Box2I, Extent2I, MultibandExposure, Point2I
    >>> y, x = np.mgrid[0:40, 0:50]
    >>> blob = lambda x0, y0: 40.0 * np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / 4.0)
    >>> image = np.stack([blob(10, 12) + blob(35, 28)] * 2).astype(np.float32)
    >>> bbox = Box2I(Point2I(100, 200), Extent2I(50, 40))
    >>> mExp = MultibandExposure.fromArrays(["g", "r"], image, variance=np.ones_like(image), bbox=bbox)
    >>> catalog = detectParents(mExp)
    >>> len(catalog), catalog["deblend_nPeaks"].tolist(), catalog["parent"].tolist()
    (2, [1, 1], [0, 0])
    >>> peak = catalog[0].getFootprint().getPeaks()[0]
    >>> round(peak.getFx(), 2), round(peak.getFy(), 2)
    (110.0, 212.0)
    >>> truth = np.array([[110.0, 212.0], [135.0, 228.0], [140.0, 205.0]])
    >>> catalog = detectParents(mExp, peaks=truth)
    >>> len(catalog), catalog[2].getFootprint().contains(Point2I(140, 205))
    (3, True)
    """
    params = DetectionParams(
        nSigma=nSigma,
        minArea=minArea,
        grow=grow,
        minPeakSeparation=minPeakSeparation,
        peakSmoothing=peakSmoothing,
        badMaskPlanes=tuple(badMaskPlanes),
        thresholdSmoothing=thresholdSmoothing,
        peakProminence=peakProminence,
    )
    truth: np.ndarray | None = None
    if isinstance(peaks, str):
        if peaks != "detected":
            raise ValueError(f'peaks must be "detected" or an (N, 2) array of truth positions, got {peaks!r}')
    else:
        truth = _parseTruth(peaks, mExposure)
    schema = _prepareSchema(schema)

    detectionImage, covered = makeDetectionImage(mExposure, bands, params.badMaskPlanes)
    detection = detectionImage.array
    xy0 = mExposure.getXY0()
    sigma = params.thresholdSmoothing
    if sigma == "psf":
        sigma = _psfSigma(mExposure, _bandIndices(mExposure, bands))
    filtered = matchedFilter(detection, float(sigma))
    segments = _segment(filtered, covered, params.nSigma, params.minArea)
    labels, nParents = _growSegments(segments, params.grow)
    smoothed = ndimage.gaussian_filter(detection, params.peakSmoothing) if params.peakSmoothing > 0 else detection

    if truth is None:
        minProminence = params.peakProminence * _smoothedNoise(params.peakSmoothing)
        found = _detectedPeaks(detection, smoothed, segments, labels, params.minPeakSeparation, xy0, minProminence)
    else:
        ix, iy = _truthPixels(truth, xy0)
        nParents = _addTruthFootprints(labels, nParents, iy, ix, params.grow + 2)
        found = _truthPeaks(detection, smoothed, labels, nParents, truth, xy0)

    _setDetectedMask(mExposure, labels > 0)
    return _makeCatalog(mExposure, filtered, labels, nParents, found, schema, idFactory)


def _makeCatalog(
    mExposure: MultibandExposure,
    detection: np.ndarray,
    labels: np.ndarray,
    nParents: int,
    found: _Peaks,
    schema: Schema,
    idFactory: IdFactory | None,
) -> SourceCatalog:
    catalog = SourceCatalog(SourceTable(schema, idFactory))
    if nParents == 0:
        return catalog
    xy0 = mExposure.getXY0()
    region = mExposure.getBBox()
    significance = np.asarray(ndimage.maximum(detection, labels, index=np.arange(1, nParents + 1)))
    # Peaks grouped by parent, brightest first within each, so ids follow that order.
    order = np.lexsort((-found.value, found.parent))
    bounds = np.searchsorted(found.parent[order], np.arange(1, nParents + 2))
    peakId = 0
    for label, slices in enumerate(ndimage.find_objects(labels, max_label=nParents), start=1):
        origin = Point2I(xy0.x + slices[1].start, xy0.y + slices[0].start)
        spans = SpanSet.fromMask(labels[slices] == label, xy0=origin)
        footprint = Footprint(spans, region=region)
        for i in order[bounds[label - 1] : bounds[label]]:
            peakId += 1
            peak = footprint.addPeak(found.fx[i], found.fy[i], found.value[i], id=peakId)
            if found.truthIndex is not None:
                peak.extra[TRUTH_INDEX_FIELD] = int(found.truthIndex[i])
        footprint.sortPeaks()
        record = catalog.addNew()
        record.setParent(0)
        record.set("deblend_nPeaks", len(footprint.getPeaks()))
        record.set("detect_significance", float(significance[label - 1]))
        record.setFootprint(footprint)
    return catalog
