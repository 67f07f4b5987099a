r"""From fitted models to the children's heavy footprints.

Each child :math:`k` of a blend has a model :math:`m_k` on the blend's canvas (its decoded stamp
placed at its peak). Its footprint is the part of the parent footprint where, in any band,
:math:`m_k > t\,\sigma` with :math:`\sigma` the pixel's noise (from the blend's weights; the
band's median noise where a pixel has no weight) and :math:`t` = ``threshold``.

Pixel values are the model itself, or with ``conserveFlux`` (LSST's flux redistribution) the
data shared in proportion to the models of the children whose footprints hold the pixel:

.. math:: v_k = y \, \frac{m_k}{\sum_{j \ni \rm pixel} m_j},

so that on every pixel some child holds, the children sum to the data exactly.

Examples
--------
>>> import numpy as np
>>> share = redistributeFlux(np.array([10.0, 4.0]), np.array([[3.0, 1.0], [1.0, 0.0]]),
...                          np.array([[True, True], [True, False]]))
>>> share.tolist()
[[7.5, 4.0], [2.5, 0.0]]
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..afw.detection import Footprint, MultibandFootprint, PeakRecord, SpanSet
from .blends import Blend
from .fit import BlendFit

__all__ = ["childModels", "redistributeFlux", "childFootprints"]


def childModels(blend: Blend, fit: BlendFit) -> np.ndarray:
    """Each child's stamp placed on the blend's canvas: (K, bands, H, W)."""
    k, (nBands, height, width), size = blend.nPeaks, blend.data.shape, fit.stamps.shape[-1]
    models = np.zeros((k, nBands, height, width))
    for i, (row, col) in enumerate(zip(blend.rows, blend.cols)):
        models[i, :, row:row + size, col:col + size] = fit.stamps[i]
    return models


def redistributeFlux(data: np.ndarray, models: np.ndarray, holds: np.ndarray) -> np.ndarray:
    """Share ``data`` (...) between children in proportion to ``models`` (K, ...) where ``holds`` (K, ...).

    A pixel whose holders all have zero model is shared equally among them.
    """
    weights = np.where(holds, np.clip(models, 0, None), 0.0)
    total = weights.sum(axis=0)
    count = holds.sum(axis=0)
    equal = np.where(holds, 1.0, 0.0) / np.maximum(count, 1)
    fraction = np.where(total > 0, weights / np.where(total > 0, total, 1.0), equal)
    return fraction * data


def childFootprints(blend: Blend, fit: BlendFit, parent: Footprint, bands: Sequence[str], threshold: float = 1.0,
                    conserveFlux: bool = True) -> tuple[list[MultibandFootprint | None], int]:
    """Heavy footprints of the children (None for a child with no pixel), and the parent pixels no child holds."""
    models = childModels(blend, fit)
    box = blend.canvasBox
    inParent = parent.getSpans().asArray(box).astype(bool)
    noise = np.zeros(blend.weight.shape)
    for b in range(len(noise)):
        good = blend.weight[b] > 0
        typical = float(np.median(1 / np.sqrt(blend.weight[b][good]))) if good.any() else 0.0
        noise[b] = np.where(good, 1 / np.sqrt(np.where(good, blend.weight[b], 1.0)), typical)
    holds = np.any(models > threshold * noise[None], axis=1) & inParent[None]  # (K, H, W)
    values = redistributeFlux(blend.data[None], models, holds[:, None]) if conserveFlux else models
    peaks: list[PeakRecord] = list(parent.getPeaks())
    children: list[MultibandFootprint | None] = []
    for k in range(blend.nPeaks):
        if not holds[k].any():
            children.append(None)
            continue
        spans = SpanSet.fromMask(holds[k], xy0=box.getMin())
        footprint = Footprint(spans, [peaks[k]], parent.getRegion())
        children.append(MultibandFootprint.fromArrays(bands, values[k], footprint=footprint, xy0=box.getMin()))
    unassigned = int((inParent & ~holds.any(axis=0)).sum())
    return children, unassigned
