"""Parent footprints and their peaks for :func:`~lsst.meas.extensions.madness.detect.detectParents`.

The thresholded detection image is segmented into 8-connected groups of pixels, the
segments are grown into parents (touching ones merged), and each parent gets its peaks:
prominent, separated local maxima refined to sub-pixel positions, or given truth
positions (with a footprint of their own where no parent holds them).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .afw import MultibandExposure, Point2I

__all__: list[str] = []

# Keeps the refined peak inside the pixel it was found in, so the peak's integer position
# (which Footprint.addPeak derives by rounding) stays on a footprint pixel.
_MAX_SUBPIXEL_OFFSET = 0.499


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

