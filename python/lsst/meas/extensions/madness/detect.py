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
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Literal, Sequence

import numpy as np
from scipy import ndimage

from .afw import Footprint, ImageD, MultibandExposure, Point2I, SpanSet
from .afw.table import IdFactory, Schema, SourceCatalog, SourceTable

__all__ = ["DetectionParams", "makeDetectionImage", "matchedFilter", "detectParents"]

#: Mask planes whose pixels are left out of the detection image when the mask has them.
DEFAULT_BAD_MASK_PLANES: tuple[str, ...] = ("BAD", "NO_DATA", "SAT")

#: Name of the peak ``extra`` field that records which truth position a peak came from.
TRUTH_INDEX_FIELD = "truth_index"

# Keeps the refined peak inside the pixel it was found in, so the peak's integer position
# (which Footprint.addPeak derives by rounding) stays on a footprint pixel.
_MAX_SUBPIXEL_OFFSET = 0.499


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


def _validPixels(mExposure: MultibandExposure, bandIndices: list[int], badMaskPlanes: Sequence[str]) -> np.ndarray:
    """``(band, y, x)`` booleans: finite image, finite positive variance, no bad mask bit."""
    image = mExposure.image.array[bandIndices]
    variance = mExposure.variance.array[bandIndices]
    mask = mExposure.mask.array[bandIndices]
    planes = mExposure.mask.getMaskPlaneDict()
    badBits = 0
    for name in badMaskPlanes:
        if name in planes:
            badBits |= 1 << planes[name]
    with np.errstate(invalid="ignore"):
        goodVariance = np.isfinite(variance) & (variance > 0)
    if not goodVariance.any():
        raise ValueError(
            "the variance is zero, negative or non-finite in every pixel of bands "
            f"{[mExposure.bands[i] for i in bandIndices]}; cannot make a detection image"
        )
    valid = goodVariance & np.isfinite(image) & ((mask & np.int32(badBits)) == 0)
    if not valid.any():
        raise ValueError(
            f"every pixel with a usable variance is masked {list(badMaskPlanes)} or has a non-finite image value"
        )
    return valid


def _bandIndices(mExposure: MultibandExposure, bands: Sequence[str] | None) -> list[int]:
    if len(mExposure.bands) == 0:
        raise ValueError("the exposure has no bands; detection needs at least one")
    if bands is None:
        return list(range(len(mExposure.bands)))
    bands = [bands] if isinstance(bands, str) else list(bands)
    if not bands:
        raise ValueError("bands is empty; give at least one band to detect on, or None for all")
    unknown = [band for band in bands if band not in mExposure.bands]
    if unknown:
        raise ValueError(f"bands {unknown} are not in the exposure, which has {list(mExposure.bands)}")
    return [mExposure.bands.index(band) for band in bands]


def makeDetectionImage(
    mExposure: MultibandExposure,
    bands: Sequence[str] | None = None,
    badMaskPlanes: Sequence[str] = DEFAULT_BAD_MASK_PLANES,
) -> tuple[ImageD, np.ndarray]:
    r"""The inverse-variance weighted band sum, scaled to unit noise (a chi image).

    With :math:`I_b` and :math:`V_b` the image and variance of band :math:`b` and the
    weight :math:`w_b = 1 / V_b` on a usable pixel (finite image, finite positive
    variance, none of ``badMaskPlanes`` set) and :math:`w_b = 0` otherwise,

    .. math::

        D = \frac{\sum_b w_b I_b}{\sqrt{\sum_b w_b}},
        \qquad
        \operatorname{Var}(D) = \frac{\sum_b w_b^2 V_b}{\sum_b w_b} = 1,

    so :math:`D` is a per-pixel signal-to-noise ratio, optimal for a source whose flux is
    the same in every band. Pixels with no usable band are 0.

    Parameters
    ----------
    mExposure
        The exposure.
    bands
        Bands to combine (default: all).
    badMaskPlanes
        Mask planes that make a pixel unusable in its band.

    Returns
    -------
    detection : `ImageD`
        :math:`D`, with the exposure's ``xy0``.
    covered : `numpy.ndarray`
        ``(y, x)`` booleans, True where at least one band is usable.

    Raises
    ------
    ValueError
        If there are no bands, a band is unknown, or no pixel has a usable variance.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.afw import MultibandExposure
    >>> image = np.full((2, 3, 3), 2.0, np.float32)
    >>> variance = np.stack([np.full((3, 3), 1.0), np.full((3, 3), 4.0)]).astype(np.float32)
    >>> mExp = MultibandExposure.fromArrays(["g", "r"], image, variance=variance)
    >>> detection, covered = makeDetectionImage(mExp)
    >>> round(float(detection.array[1, 1]), 4), bool(covered.all())  # (2 + 2/4) / sqrt(1.25)
    (2.2361, True)
    """
    indices = _bandIndices(mExposure, bands)
    valid = _validPixels(mExposure, indices, badMaskPlanes)
    image = mExposure.image.array[indices].astype(np.float64)
    variance = mExposure.variance.array[indices].astype(np.float64)
    weight = np.zeros_like(variance)
    np.divide(1.0, variance, out=weight, where=valid)
    weightSum = weight.sum(axis=0)
    numerator = np.where(valid, weight * np.where(valid, image, 0.0), 0.0).sum(axis=0)
    covered = weightSum > 0
    detection = np.zeros_like(weightSum)
    np.divide(numerator, np.sqrt(weightSum), out=detection, where=covered)
    return ImageD(detection, xy0=mExposure.getXY0()), covered


def _psfSigma(mExposure: MultibandExposure, bandIndices: list[int]) -> float:
    """Mean Gaussian-equivalent sigma (pixels) of the PSFs of the bands; 0 without PSFs."""
    sigmas = []
    for b in bandIndices:
        psf = mExposure.getPsfs()[b]
        if psf is None:
            continue
        kernel = psf.kernel.astype(np.float64)
        yy, xx = np.indices(kernel.shape, dtype=np.float64)
        yy -= kernel.shape[0] // 2
        xx -= kernel.shape[1] // 2
        # Second moments of a noiseless kernel: unweighted ones are fine and exact for a Gaussian.
        total = kernel.sum()
        sigmas.append(np.sqrt(0.5 * ((kernel * (xx**2 + yy**2)).sum() / total)))
    return float(np.mean(sigmas)) if sigmas else 0.0


def matchedFilter(detection: np.ndarray, sigma: float) -> np.ndarray:
    r"""Smooth a unit-noise image with a Gaussian and rescale it to unit noise again.

    .. math:: D_\sigma = \frac{G_\sigma * D}{\sqrt{\sum G_\sigma^2}}

    For a source shaped like :math:`G_\sigma` this is the maximum-likelihood detection
    statistic, so thresholding :math:`D_\sigma` at :math:`n_\sigma` finds sources down to
    an integrated S/N of about :math:`n_\sigma` rather than a per-pixel one.

    Examples
    --------
    >>> noise = np.random.default_rng(0).normal(size=(400, 400))
    >>> round(float(matchedFilter(noise, 2.0).std()), 1)
    1.0
    """
    if sigma <= 0:
        return detection
    return ndimage.gaussian_filter(detection, sigma, mode="constant") / _smoothedNoise(sigma)


def _smoothedNoise(sigma: float) -> float:
    """Standard deviation of unit white noise after ``ndimage.gaussian_filter(·, sigma)``."""
    if sigma <= 0:
        return 1.0
    impulse = np.zeros((int(8 * sigma) * 2 + 1,) * 2)
    impulse[impulse.shape[0] // 2, impulse.shape[1] // 2] = 1.0
    return float(np.sqrt(np.sum(ndimage.gaussian_filter(impulse, sigma, mode="constant") ** 2)))


def _segment(detection: np.ndarray, covered: np.ndarray, nSigma: float, minArea: int) -> np.ndarray:
    """Label image of 8-connected segments of ≥ ``minArea`` pixels above ``nSigma`` (0 = none)."""
    from photutils.segmentation import detect_sources
    from photutils.utils.exceptions import NoDetectionsWarning

    with warnings.catch_warnings():
        # An empty field is a valid outcome here, reported by an empty catalogue.
        warnings.simplefilter("ignore", NoDetectionsWarning)
        # minArea is positional: photutils renamed this argument (npixels → n_pixels).
        segmentation = detect_sources(detection, nSigma, int(minArea), connectivity=8, mask=~covered)
    if segmentation is None:
        return np.zeros(detection.shape, dtype=np.int32)
    return np.asarray(segmentation.data, dtype=np.int32)


def _disc(radius: int) -> np.ndarray:
    """The boolean disc ``x² + y² ≤ radius²``, as :meth:`SpanSet.dilated` uses."""
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    return xx**2 + yy**2 <= radius**2


def _growSegments(segments: np.ndarray, grow: int) -> tuple[np.ndarray, int]:
    """Label image of parents: the segments dilated by ``grow``, touching ones merged."""
    grown = segments > 0
    if grow > 0 and grown.any():
        grown = ndimage.binary_dilation(grown, structure=_disc(grow))
    labels, nParents = ndimage.label(grown, structure=np.ones((3, 3), dtype=bool))
    return labels.astype(np.int32), int(nParents)


def _separated(iy: np.ndarray, ix: np.ndarray, minSeparation: float) -> np.ndarray:
    """Indices of the points to keep, in order, dropping any closer than ``minSeparation`` to a kept one.

    Points must be sorted by priority; there are only a few candidates per segment.
    """
    kept: list[int] = []
    for i in range(iy.size):
        if kept:
            distance2 = (iy[kept] - iy[i]) ** 2 + (ix[kept] - ix[i]) ** 2
            if np.any(distance2 < minSeparation**2):
                continue
        kept.append(i)
    return np.asarray(kept, dtype=np.int64)


def _prominent(values: np.ndarray, iy: np.ndarray, ix: np.ndarray, minProminence: float) -> np.ndarray:
    """Indices of the peaks (brightest first) that rise ``minProminence`` above the lowest
    point of the straight line to every brighter kept peak; the first is always kept."""
    kept = [0] if iy.size else []
    for i in range(1, iy.size):
        col = -np.inf
        for j in kept:
            n = int(np.ceil(np.hypot(iy[i] - iy[j], ix[i] - ix[j]))) + 1
            t = np.linspace(0.0, 1.0, n)
            ly = np.rint(iy[i] + t * (iy[j] - iy[i])).astype(int)
            lx = np.rint(ix[i] + t * (ix[j] - ix[i])).astype(int)
            col = max(col, values[ly, lx].min())
        if values[iy[i], ix[i]] - col >= minProminence:
            kept.append(i)
    return np.asarray(kept, dtype=np.int64)


def _localMaxima(
    smoothed: np.ndarray, segments: np.ndarray, minSeparation: int, minProminence: float = 0.0
) -> tuple[np.ndarray, np.ndarray]:
    """``(iy, ix)`` of the local maxima of ``smoothed`` in each segment, per segment brightest first.

    A pixel is a peak when it is the maximum of its segment's pixels in the box of
    half-size ``minSeparation`` around it; the segment's brightest pixel always is one,
    so each segment has at least one peak.
    """
    size = 2 * int(minSeparation) + 1
    allY: list[np.ndarray] = []
    allX: list[np.ndarray] = []
    for label, slices in enumerate(ndimage.find_objects(segments), start=1):
        if slices is None:
            continue
        inSegment = segments[slices] == label
        # Other segments' pixels are -inf so a neighbour cannot hide this segment's peaks.
        values = np.where(inSegment, smoothed[slices], -np.inf)
        local = ndimage.maximum_filter(values, size=size, mode="constant", cval=-np.inf)
        iy, ix = np.nonzero(inSegment & (values >= local))
        order = np.argsort(-values[iy, ix], kind="stable")
        iy, ix = iy[order], ix[order]
        # Plateaus give several equal maxima in one box; keep the first of each group.
        keep = _separated(iy, ix, minSeparation)
        if minProminence > 0:
            keep = keep[_prominent(values, iy[keep], ix[keep], minProminence)]
        allY.append(iy[keep] + slices[0].start)
        allX.append(ix[keep] + slices[1].start)
    if not allY:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    return np.concatenate(allY), np.concatenate(allX)


def _parabolaVertex(values: np.ndarray) -> np.ndarray:
    r"""Vertex offsets of parabolas through ``(-1, v_0), (0, v_1), (1, v_2)`` (rows of ``values``).

    .. math:: \delta = \frac{1}{2}\,\frac{v_0 - v_2}{v_0 - 2 v_1 + v_2}

    clipped to the central pixel; 0 where the parabola has no maximum.
    """
    curvature = values[:, 0] - 2.0 * values[:, 1] + values[:, 2]
    offset = np.zeros(values.shape[0])
    np.divide(0.5 * (values[:, 0] - values[:, 2]), curvature, out=offset, where=curvature < 0)
    return np.clip(offset, -_MAX_SUBPIXEL_OFFSET, _MAX_SUBPIXEL_OFFSET)


def _refinePeaks(image: np.ndarray, iy: np.ndarray, ix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    r"""Sub-pixel ``(y, x)`` array positions from the 3×3 neighbourhood of each peak.

    The offsets are the vertices of parabolas through the 3×3 box's column sums (for
    :math:`x`) and row sums (for :math:`y`). Unlike the first moment of the box, which is
    pulled towards the central pixel by the light of the source's wings, the parabola
    vertex is unbiased for a peak that is locally quadratic.
    """
    if iy.size == 0:
        return iy.astype(np.float64), ix.astype(np.float64)
    padded = np.pad(image, 1, mode="edge")
    steps = np.arange(3)
    boxes = padded[iy[:, None, None] + steps[None, :, None], ix[:, None, None] + steps[None, None, :]]
    dy = _parabolaVertex(boxes.sum(axis=2))
    dx = _parabolaVertex(boxes.sum(axis=1))
    return iy + dy, ix + dx


def _parseTruth(peaks: np.ndarray, mExposure: MultibandExposure) -> np.ndarray:
    truth = np.asarray(peaks, dtype=np.float64)
    if truth.ndim != 2 or truth.shape[1] != 2:
        raise ValueError(f"truth peaks must be an (N, 2) array of (x, y) positions, got shape {truth.shape}")
    if not np.all(np.isfinite(truth)):
        raise ValueError("truth peak positions must be finite")
    bbox = mExposure.getBBox()
    nearest = np.floor(truth + 0.5).astype(np.int64)
    outside = (
        (nearest[:, 0] < bbox.getMinX())
        | (nearest[:, 0] > bbox.getMaxX())
        | (nearest[:, 1] < bbox.getMinY())
        | (nearest[:, 1] > bbox.getMaxY())
    )
    if outside.any():
        raise ValueError(
            f"truth peaks {truth[outside].tolist()} lie outside the exposure bounding box {bbox}"
        )
    return truth


def _truthPixels(truth: np.ndarray, xy0: Point2I) -> tuple[np.ndarray, np.ndarray]:
    """Array ``(ix, iy)`` of the pixels containing parent positions ``(x, y)`` (centres are integers)."""
    ix = np.floor(truth[:, 0] + 0.5).astype(np.int64) - xy0.x
    iy = np.floor(truth[:, 1] + 0.5).astype(np.int64) - xy0.y
    return ix, iy


def _addTruthFootprints(labels: np.ndarray, nParents: int, iy: np.ndarray, ix: np.ndarray, radius: int) -> int:
    """Give every truth pixel outside all parents a new parent: a disc of ``radius`` around it.

    The disc takes only pixels no parent has yet, so parents stay disjoint; a later truth
    position that falls in an earlier disc joins that parent. Returns the new parent count.
    """
    height, width = labels.shape
    disc = _disc(radius)
    for y, x in zip(iy.tolist(), ix.tolist()):
        if labels[y, x] != 0:
            continue
        nParents += 1
        y0, y1 = max(y - radius, 0), min(y + radius + 1, height)
        x0, x1 = max(x - radius, 0), min(x + radius + 1, width)
        stamp = disc[y0 - (y - radius) : y1 - (y - radius), x0 - (x - radius) : x1 - (x - radius)]
        target = labels[y0:y1, x0:x1]
        target[stamp & (target == 0)] = nParents
    return nParents


@dataclass(frozen=True)
class _Peaks:
    """Peaks: pixel ``(iy, ix)`` in array coordinates, ``(fx, fy)`` in parent coordinates."""

    iy: np.ndarray
    ix: np.ndarray
    fy: np.ndarray
    fx: np.ndarray
    value: np.ndarray
    parent: np.ndarray
    truthIndex: np.ndarray | None


def _maximumPixels(detection: np.ndarray, labels: np.ndarray, parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    positions = ndimage.maximum_position(detection, labels, index=parents)
    positions = np.asarray(positions, dtype=np.int64).reshape(-1, 2)
    return positions[:, 0], positions[:, 1]


def _detectedPeaks(
    detection: np.ndarray,
    smoothed: np.ndarray,
    segments: np.ndarray,
    labels: np.ndarray,
    minSeparation: int,
    xy0: Point2I,
    minProminence: float = 0.0,
) -> _Peaks:
    iy, ix = _localMaxima(smoothed, segments, minSeparation, minProminence)
    fy, fx = _refinePeaks(smoothed, iy, ix)
    return _Peaks(iy, ix, fy + xy0.y, fx + xy0.x, detection[iy, ix], labels[iy, ix], None)


def _truthPeaks(
    detection: np.ndarray, smoothed: np.ndarray, labels: np.ndarray, nParents: int, truth: np.ndarray, xy0: Point2I
) -> _Peaks:
    """Truth positions as peaks, plus one at the maximum pixel of each parent without any."""
    fx, fy = truth[:, 0], truth[:, 1]
    ix, iy = _truthPixels(truth, xy0)
    parent = labels[iy, ix]
    truthIndex = np.arange(truth.shape[0])
    orphans = np.setdiff1d(np.arange(1, nParents + 1), parent)
    if orphans.size:
        oy, ox = _maximumPixels(detection, labels, orphans)
        ofy, ofx = _refinePeaks(smoothed, oy, ox)
        iy, ix = np.concatenate([iy, oy]), np.concatenate([ix, ox])
        fy, fx = np.concatenate([fy, ofy + xy0.y]), np.concatenate([fx, ofx + xy0.x])
        parent = np.concatenate([parent, orphans])
        truthIndex = np.concatenate([truthIndex, np.full(orphans.size, -1)])
    return _Peaks(iy, ix, fy, fx, detection[iy, ix], parent, truthIndex)


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
       :math:`w_b = 1/V_b` (see :func:`makeDetectionImage`) has unit noise. Like LSST's
       ``SourceDetectionTask``, it is smoothed by a Gaussian matched filter of the
       PSF's width, rescaled to unit noise (:func:`matchedFilter`,
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
