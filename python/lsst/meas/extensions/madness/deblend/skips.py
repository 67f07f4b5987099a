"""Which parents a deblender leaves alone, checked in the order of ``lsst.meas.extensions.scarlet``.

1. ``isPseudo``: a pseudo source (sky object), flagged by any of ``pseudoColumns``;
2. ``parentTooBig``: footprint area above ``maxFootprintArea``, bounding-box side above
   ``maxFootprintSize``, axis ratio below ``minFootprintAxisRatio``, or area × peaks above
   ``maxAreaTimesPeaks`` (a limit of 0 turns its check off);
3. ``masked``: for a plane of ``maskLimits``, the fraction of footprint pixels with that plane
   set (in any band) above its limit;
4. ``tooManyPeaks``: more than ``maxNumberOfPeaks`` peaks (0: no limit).

Examples
--------
>>> import numpy as np
>>> from lsst.meas.extensions.madness.afw import Box2I, Extent2I, Footprint, MultibandExposure, Point2I, SpanSet
>>> mExp = MultibandExposure.fromArrays("r", np.zeros((1, 20, 20)), np.zeros((1, 20, 20), np.int32),
...                                     np.ones((1, 20, 20)))
>>> foot = Footprint(SpanSet(Box2I(Point2I(2, 2), Extent2I(10, 4))))
>>> footprintAxisRatio(foot) < 0.5, skipReason(foot, {}, mExp, SkipLimits(minFootprintAxisRatio=0.5))
(True, 'parentTooBig')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..afw.detection import Footprint
from ..afw.exposure import MultibandExposure

__all__ = ["SkipLimits", "footprintAxisRatio", "maskedFractions", "skipReason"]


@dataclass(frozen=True)
class SkipLimits:
    """The limits of the skip checks (the deblend configs' fields of the same names)."""

    pseudoColumns: Sequence[str] = ("merge_peak_sky", "sky_source")
    maxFootprintArea: int = 2_000_000
    maxFootprintSize: int = 0
    minFootprintAxisRatio: float = 0.0
    maxAreaTimesPeaks: int = 1_000_000_000
    maskLimits: Mapping[str, float] = field(default_factory=dict)
    maxNumberOfPeaks: int = 600


def footprintAxisRatio(footprint: Footprint) -> float:
    """Minor over major axis of the footprint's pixel distribution (second moments); 1 for one pixel.

    Parameters
    ----------
    footprint : `~lsst.meas.extensions.madness.afw.detection.Footprint`
        The parent footprint.

    Returns
    -------
    ratio : `float`
        In (0, 1]: the square root of the ratio of the eigenvalues of the pixel positions' covariance
        (each pixel a uniform square: plus 1/12 on the diagonal).

    Examples
    --------
    >>> from lsst.meas.extensions.madness.afw import Box2I, Extent2I, Footprint, Point2I, SpanSet
    >>> square = Footprint(SpanSet(Box2I(Point2I(0, 0), Extent2I(5, 5))))
    >>> strip = Footprint(SpanSet(Box2I(Point2I(0, 0), Extent2I(10, 2))))
    >>> round(footprintAxisRatio(square), 2), round(footprintAxisRatio(strip), 2)
    (1.0, 0.2)
    """
    ys, xs = footprint.getSpans().indices()
    if len(xs) < 2:
        return 1.0
    eigen = np.linalg.eigvalsh(np.cov(np.vstack([xs, ys]).astype(float)) + np.eye(2) / 12)
    return float(np.sqrt(eigen[0] / eigen[1]))


def maskedFractions(footprint: Footprint, mExposure: MultibandExposure, planes: Sequence[str]) -> dict[str, float]:
    """Fraction of the footprint's pixels (inside the exposure) with each plane set in any band.

    Parameters
    ----------
    footprint : `~lsst.meas.extensions.madness.afw.detection.Footprint`
        The parent footprint; its pixels off the exposure do not count.
    mExposure : `~lsst.meas.extensions.madness.afw.exposure.MultibandExposure`
        The exposure whose mask is read.
    planes : sequence of `str`
        Mask-plane names.

    Returns
    -------
    fractions : `dict` [`str`, `float`]
        Per plane, the fraction in [0, 1]; 0 for a plane the mask lacks or a footprint off the exposure.

    Examples
    --------
    >>> import numpy as np
    >>> from lsst.meas.extensions.madness.afw import (Box2I, Extent2I, Footprint, MultibandExposure, Point2I,
    ...     SpanSet)
    >>> mask = np.zeros((2, 10, 10), np.int32); mask[1, 0, :5] = 1 << 1     # SAT in r on five pixels
    >>> mExp = MultibandExposure.fromArrays("gr", np.zeros((2, 10, 10)), mask, np.ones((2, 10, 10)),
    ...                                     maskPlanes={"BAD": 0, "SAT": 1})
    >>> maskedFractions(Footprint(SpanSet(Box2I(Point2I(0, 0), Extent2I(10, 2)))), mExp, ["SAT", "BAD", "EDGE"])
    {'SAT': 0.25, 'BAD': 0.0, 'EDGE': 0.0}
    """
    spans = footprint.getSpans().clippedTo(mExposure.getBBox())
    ys, xs = spans.indices()
    known = mExposure.mask.getMaskPlaneDict()
    x0, y0 = mExposure.getXY0()
    values = np.bitwise_or.reduce(mExposure.mask.array[:, ys - y0, xs - x0], axis=0) if len(xs) else np.zeros(0, int)
    fractions = {}
    for plane in planes:
        if plane not in known or not len(xs):
            fractions[plane] = 0.0
            continue
        fractions[plane] = float(np.mean((values & mExposure.mask.getPlaneBitMask(plane)) != 0))
    return fractions


def skipReason(footprint: Footprint, record: Any, mExposure: MultibandExposure,
               limits: SkipLimits) -> str | None:
    """The first skip check ``footprint`` fails (``"isPseudo"`` ... ``"tooManyPeaks"``), or None.

    Parameters
    ----------
    footprint : `~lsst.meas.extensions.madness.afw.detection.Footprint`
        The parent footprint, with its peaks.
    record : `~lsst.meas.extensions.madness.afw.table.SourceRecord` or mapping
        The parent's catalogue record (anything with ``get(name)``, or a mapping); pseudo columns it
        lacks count as unset.
    mExposure : `~lsst.meas.extensions.madness.afw.exposure.MultibandExposure`
        The exposure (its mask, for ``maskLimits``).
    limits : `SkipLimits`
        The limits of the checks.

    Returns
    -------
    reason : `str` or None
        ``"isPseudo"``, ``"parentTooBig"``, ``"masked"`` or ``"tooManyPeaks"``, the first check failed
        in the module docstring's order; None when the parent is to be deblended.

    Examples
    --------
    >>> import numpy as np
    >>> from lsst.meas.extensions.madness.afw import (Box2I, Extent2I, Footprint, MultibandExposure, Point2I,
    ...     SpanSet)
    >>> mExp = MultibandExposure.fromArrays("r", np.zeros((1, 20, 20)), np.zeros((1, 20, 20), np.int32),
    ...                                     np.ones((1, 20, 20)))
    >>> foot = Footprint(SpanSet(Box2I(Point2I(2, 2), Extent2I(5, 5))))
    >>> _ = foot.addPeak(4, 4, 1.0), foot.addPeak(5, 5, 1.0)
    >>> skipReason(foot, {}, mExp, SkipLimits()), skipReason(foot, {"sky_source": True}, mExp, SkipLimits())
    (None, 'isPseudo')
    >>> skipReason(foot, {}, mExp, SkipLimits(maxFootprintArea=20)), skipReason(foot, {}, mExp,
    ...                                                                          SkipLimits(maxNumberOfPeaks=1))
    ('parentTooBig', 'tooManyPeaks')
    """
    for column in limits.pseudoColumns:
        try:
            value = record.get(column)
        except (KeyError, AttributeError):
            continue
        if value:
            return "isPseudo"
    area, nPeaks = footprint.getArea(), len(footprint.getPeaks())
    box = footprint.getBBox()
    if ((limits.maxFootprintArea > 0 and area > limits.maxFootprintArea)
            or (limits.maxFootprintSize > 0 and max(box.getWidth(), box.getHeight()) > limits.maxFootprintSize)
            or (limits.minFootprintAxisRatio > 0 and footprintAxisRatio(footprint) < limits.minFootprintAxisRatio)
            or (limits.maxAreaTimesPeaks > 0 and area * nPeaks > limits.maxAreaTimesPeaks)):
        return "parentTooBig"
    if limits.maskLimits:
        fractions = maskedFractions(footprint, mExposure, list(limits.maskLimits))
        if any(fractions[plane] > limit for plane, limit in limits.maskLimits.items()):
            return "masked"
    if limits.maxNumberOfPeaks > 0 and nPeaks > limits.maxNumberOfPeaks:
        return "tooManyPeaks"
    return None
