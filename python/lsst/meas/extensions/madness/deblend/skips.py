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
    """Minor over major axis of the footprint's pixel distribution (second moments); 1 for one pixel."""
    ys, xs = footprint.getSpans().indices()
    if len(xs) < 2:
        return 1.0
    eigen = np.linalg.eigvalsh(np.cov(np.vstack([xs, ys]).astype(float)) + np.eye(2) / 12)
    return float(np.sqrt(eigen[0] / eigen[1]))


def maskedFractions(footprint: Footprint, mExposure: MultibandExposure, planes: Sequence[str]) -> dict[str, float]:
    """Fraction of the footprint's pixels (inside the exposure) with each plane set in any band."""
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

    ``record`` is the parent's catalogue record (anything with ``get(name)``, or a mapping);
    pseudo columns it lacks count as unset.
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
