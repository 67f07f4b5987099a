r"""From fitted models to the children's heavy footprints.

Each child :math:`k` of a blend has a model :math:`m_k`, an image on part of the blend's canvas
(:class:`ChildModels`: MADNESS's decoded stamp placed at its peak, or a SCARLET source). Its
footprint is the part of the parent footprint where, in any band,
:math:`m_k > t\,\sigma` with :math:`\sigma` the pixel's noise (from the blend's weights; the
band's median noise where a pixel has no weight) and :math:`t` = ``threshold``.

Pixel values are the model itself, or with ``conserveFlux`` (LSST's flux redistribution) the
data shared in proportion to the models of the children whose footprints hold the pixel:

.. math:: v_k = y \, \frac{m_k}{\sum_{j \ni \rm pixel} m_j},

so that on every pixel some child holds, the children sum to the data exactly. The heavy
footprints are in the exposure's pixel units (the blend's are the deblender's, :mod:`.calibration`)
and carry the exposure's mask and variance on their pixels.

Examples
--------
>>> import numpy as np
>>> children = ChildModels([np.ones((1, 2, 2)), 3 * np.ones((1, 1, 1))], rows=np.array([0, 1]), cols=np.array([0, 1]))
>>> children.total((1, 3, 3))[0].tolist(), children.fluxes().tolist()
([[1.0, 1.0, 0.0], [1.0, 4.0, 0.0], [0.0, 0.0, 0.0]], [[4.0], [3.0]])
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..afw.detection import Footprint, MultibandFootprint, PeakRecord, SpanSet
from ..afw.geom import Point2I
from .blends import Blend

__all__ = ["ChildModels", "pixelNoise", "childFootprints"]


@dataclass
class ChildModels:
    """The children's model images on a blend's canvas: child ``k`` covers ``images[k]`` (bands, h, w)
    with its lower-left corner at canvas pixel (``rows[k]``, ``cols[k]``)."""

    images: list[np.ndarray]
    rows: np.ndarray
    cols: np.ndarray

    @classmethod
    def fromStamps(cls, blend: Blend, stamps: np.ndarray) -> ChildModels:
        """Stamps (K, bands, S, S) at the blend's stamp corners."""
        return cls(list(stamps), np.asarray(blend.rows), np.asarray(blend.cols))

    def __len__(self) -> int:
        return len(self.images)

    def slices(self, k: int) -> tuple[slice, slice]:
        height, width = self.images[k].shape[-2:]
        return slice(self.rows[k], self.rows[k] + height), slice(self.cols[k], self.cols[k] + width)

    def total(self, shape: Sequence[int]) -> np.ndarray:
        """Sum of all children on a canvas of ``shape`` (bands, H, W)."""
        canvas = np.zeros(shape)
        for k, image in enumerate(self.images):
            canvas[(slice(None), *self.slices(k))] += image
        return canvas

    def fluxes(self) -> np.ndarray:
        """(K, bands) total model flux of each child."""
        return np.array([image.sum(axis=(-2, -1)) for image in self.images]).reshape(len(self), -1)


def pixelNoise(weight: np.ndarray) -> np.ndarray:
    """Noise σ per pixel from inverse-variance ``weight`` (bands, H, W); the band's median where w = 0."""
    noise = np.zeros(weight.shape)
    for b in range(len(noise)):
        good = weight[b] > 0
        typical = float(np.median(1 / np.sqrt(weight[b][good]))) if good.any() else 0.0
        noise[b] = np.where(good, 1 / np.sqrt(np.where(good, weight[b], 1.0)), typical)
    return noise


def childFootprints(blend: Blend, children: ChildModels, parent: Footprint, bands: Sequence[str],
                    threshold: float = 1.0, conserveFlux: bool = True) -> tuple[list[MultibandFootprint | None], int]:
    """Heavy footprints of the children (None for a child with no pixel), and the parent pixels no child holds."""
    box = blend.canvasBox
    inParent = parent.getSpans().asArray(box).astype(bool)
    noise = pixelNoise(blend.weight)
    holds = []
    holderModel = np.zeros(blend.data.shape)
    holderCount = np.zeros(blend.data.shape[1:], np.int64)
    for k, image in enumerate(children.images):
        where = children.slices(k)
        mask = np.any(image > threshold * noise[(slice(None), *where)], axis=0) & inParent[where]
        holds.append(mask)
        holderModel[(slice(None), *where)] += np.where(mask, np.clip(image, 0, None), 0.0)
        holderCount[where] += mask
    peaks: list[PeakRecord] = list(parent.getPeaks())
    footprints: list[MultibandFootprint | None] = []
    held = holderCount > 0
    for k, image in enumerate(children.images):
        if not holds[k].any():
            footprints.append(None)
            continue
        where = children.slices(k)
        if conserveFlux:
            total, count = holderModel[(slice(None), *where)], holderCount[where]
            share = np.where(total > 0, np.clip(image, 0, None) / np.where(total > 0, total, 1.0),
                             1.0 / np.maximum(count, 1))
            values = share * blend.data[(slice(None), *where)]
        else:
            values = image
        if blend.scale is not None:
            values = values / blend.scale[:, None, None]  # back to the exposure's units
        corner = Point2I(box.getMinX() + int(children.cols[k]), box.getMinY() + int(children.rows[k]))
        spans = SpanSet.fromMask(holds[k], xy0=corner)
        footprint = Footprint(spans, [peaks[k]], parent.getRegion())
        footprints.append(MultibandFootprint.fromArrays(
            bands, values, blend.mask[(slice(None), *where)], blend.variance[(slice(None), *where)],
            footprint=footprint, xy0=corner))
    unassigned = int((inParent & ~held).sum())
    return footprints, unassigned
