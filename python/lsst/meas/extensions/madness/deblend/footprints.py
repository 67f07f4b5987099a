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
    with its lower-left corner at canvas pixel (``rows[k]``, ``cols[k]``).

    Parameters
    ----------
    images : `list` [`numpy.ndarray`]
        Each child's model (bands, h, w), in the blend's pixel units; sizes may differ between children.
    rows, cols : `numpy.ndarray`
        (K,) integer canvas row and column of each image's first pixel.
    """

    images: list[np.ndarray]
    rows: np.ndarray
    cols: np.ndarray

    @classmethod
    def fromStamps(cls, blend: Blend, stamps: np.ndarray) -> ChildModels:
        """Stamps (K, bands, S, S) at the blend's stamp corners.

        Parameters
        ----------
        blend : `~.blends.Blend`
            The blend whose ``rows`` and ``cols`` place the stamps.
        stamps : `numpy.ndarray`
            (K, bands, S, S) models, one per peak of the blend, e.g. a :class:`~.fit.BlendFit`'s ``stamps``.

        Returns
        -------
        children : `ChildModels`
            K images at the blend's stamp corners.

        Examples
        --------
        >>> import numpy as np
        >>> from lsst.meas.extensions.madness.afw import (Box2I, Extent2I, Footprint, MultibandExposure, Point2I,
        ...     SpanSet)
        >>> from lsst.meas.extensions.madness.deblend import makeBlend
        >>> image = np.full((2, 40, 40), 2.0, np.float32)                  # bands g, r: 2 per pixel, unit variance
        >>> mExp = MultibandExposure.fromArrays("gr", image, np.zeros(image.shape, np.int32), np.ones_like(image))
        >>> parent = Footprint(SpanSet(Box2I(Point2I(10, 10), Extent2I(10, 8))))
        >>> _ = parent.addPeak(13, 13, 10.0), parent.addPeak(15, 13, 5.0)
        >>> blend = makeBlend(mExp, parent, stampSize=5)
        >>> stamps = np.zeros((2, 2, 5, 5))                                # (K, bands, S, S): two 3×3 squares
        >>> stamps[0, :, 1:4, 1:4], stamps[1, :, 1:4, 1:4] = 3.0, 1.5
        >>> children = ChildModels.fromStamps(blend, stamps)
        >>> len(children), children.rows.tolist(), children.cols.tolist()
        (2, [3, 3], [3, 5])
        """
        return cls(list(stamps), np.asarray(blend.rows), np.asarray(blend.cols))

    def __len__(self) -> int:
        return len(self.images)

    def slices(self, k: int) -> tuple[slice, slice]:
        """The canvas rows and columns child ``k`` covers.

        Parameters
        ----------
        k : `int`
            Index of the child.

        Returns
        -------
        rows, cols : `slice`
            Index the canvas's last two axes with them: ``canvas[:, rows, cols]`` is child ``k``'s region.

        Examples
        --------
        >>> import numpy as np
        >>> children = ChildModels([np.ones((1, 2, 3))], rows=np.array([4]), cols=np.array([1]))
        >>> children.slices(0) == (slice(4, 6), slice(1, 4))
        True
        """
        height, width = self.images[k].shape[-2:]
        return slice(self.rows[k], self.rows[k] + height), slice(self.cols[k], self.cols[k] + width)

    def total(self, shape: Sequence[int]) -> np.ndarray:
        """Sum of all children on a canvas of ``shape`` (bands, H, W).

        Parameters
        ----------
        shape : sequence of `int`
            (bands, H, W) of the canvas; every child lies inside it.

        Returns
        -------
        canvas : `numpy.ndarray`
            (bands, H, W) float64, the summed models.

        Examples
        --------
        >>> import numpy as np
        >>> children = ChildModels([np.ones((1, 2, 2)), np.ones((1, 2, 2))], np.array([0, 1]), np.array([0, 1]))
        >>> children.total((1, 3, 3))[0].tolist()
        [[1.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 1.0]]
        """
        canvas = np.zeros(shape)
        for k, image in enumerate(self.images):
            canvas[(slice(None), *self.slices(k))] += image
        return canvas

    def fluxes(self) -> np.ndarray:
        """(K, bands) total model flux of each child.

        Returns
        -------
        fluxes : `numpy.ndarray`
            (K, bands): each child's image summed over its pixels, in the blend's pixel units.

        Examples
        --------
        >>> import numpy as np
        >>> ChildModels([np.ones((2, 2, 2)), np.ones((2, 1, 1))], np.array([0, 0]), np.array([0, 0])).fluxes().tolist()
        [[4.0, 4.0], [1.0, 1.0]]
        """
        return np.array([image.sum(axis=(-2, -1)) for image in self.images]).reshape(len(self), -1)


def pixelNoise(weight: np.ndarray) -> np.ndarray:
    """Noise σ per pixel from inverse-variance ``weight`` (bands, H, W); the band's median where w = 0.

    Parameters
    ----------
    weight : `numpy.ndarray`
        (bands, H, W) inverse variances, zero where a pixel has no weight.

    Returns
    -------
    noise : `numpy.ndarray`
        (bands, H, W) :math:`1/\\sqrt{w}`; on pixels of zero weight the band's median noise (0 for a
        band without any weight).

    Examples
    --------
    >>> import numpy as np
    >>> pixelNoise(np.array([[[4.0, 0.0], [1.0, 0.25]]])).tolist()
    [[[0.5, 1.0], [1.0, 2.0]]]
    """
    noise = np.zeros(weight.shape)
    for b in range(len(noise)):
        good = weight[b] > 0
        typical = float(np.median(1 / np.sqrt(weight[b][good]))) if good.any() else 0.0
        noise[b] = np.where(good, 1 / np.sqrt(np.where(good, weight[b], 1.0)), typical)
    return noise


def childFootprints(blend: Blend, children: ChildModels, parent: Footprint, bands: Sequence[str],
                    threshold: float = 1.0, conserveFlux: bool = True) -> tuple[list[MultibandFootprint | None], int]:
    """Heavy footprints of the children (None for a child with no pixel), and the parent pixels no child holds.

    A child holds the parent-footprint pixels where its model exceeds ``threshold`` times the pixel
    noise (:func:`pixelNoise`) in any band; see the module docstring for the pixel values.

    Parameters
    ----------
    blend : `~.blends.Blend`
        The blend the children were fitted on: its canvas, data and weights (the deblender's units),
        scales, and the exposure's mask and variance.
    children : `ChildModels`
        The K children's models on the blend's canvas, in the deblender's units, in peak order.
    parent : `~lsst.meas.extensions.madness.afw.detection.Footprint`
        The parent's footprint; child ``k`` gets its ``k``-th peak.
    bands : sequence of `str`
        The bands of the blend, in order.
    threshold : `float`, optional
        Detection threshold of a child's pixels, in units of the pixel noise.
    conserveFlux : `bool`, optional
        Share the data between the children holding a pixel in proportion to their (clipped at zero)
        models, so that they sum to the data; if False each child carries its model.

    Returns
    -------
    footprints : `list` [`~lsst.meas.extensions.madness.afw.detection.MultibandFootprint` or None]
        One per child, in the exposure's pixel units with its mask and variance; None for a child with
        no pixel above the threshold.
    unassigned : `int`
        Number of parent-footprint pixels (on the canvas) that no child holds.

    Examples
    --------
    Two overlapping children on data of 2 per pixel: on the three shared pixels the data are shared
    2 : 1, so the children's fluxes sum to the data they hold (15 pixels).

    >>> import numpy as np
    >>> from lsst.meas.extensions.madness.afw import (Box2I, Extent2I, Footprint, MultibandExposure, Point2I,
    ...     SpanSet)
    >>> from lsst.meas.extensions.madness.deblend import makeBlend
    >>> image = np.full((2, 40, 40), 2.0, np.float32)                  # bands g, r: 2 per pixel, unit variance
    >>> mExp = MultibandExposure.fromArrays("gr", image, np.zeros(image.shape, np.int32), np.ones_like(image))
    >>> parent = Footprint(SpanSet(Box2I(Point2I(10, 10), Extent2I(10, 8))))
    >>> _ = parent.addPeak(13, 13, 10.0), parent.addPeak(15, 13, 5.0)
    >>> blend = makeBlend(mExp, parent, stampSize=5)
    >>> stamps = np.zeros((2, 2, 5, 5))                                # (K, bands, S, S): two 3×3 squares
    >>> stamps[0, :, 1:4, 1:4], stamps[1, :, 1:4, 1:4] = 3.0, 1.5
    >>> children = ChildModels.fromStamps(blend, stamps)
    >>> heavy, unassigned = childFootprints(blend, children, parent, ["g", "r"], threshold=1.0)
    >>> [h.getArea() for h in heavy], [float(h["g"].getImageArray().sum()) for h in heavy], unassigned
    ([9, 9], [16.0, 14.0], 65)
    >>> [h.getPeaks()[0].getFx() for h in heavy]
    [13.0, 15.0]
    >>> models, _ = childFootprints(blend, children, parent, ["g", "r"], conserveFlux=False)
    >>> [float(h["g"].getImageArray().sum()) for h in models]
    [27.0, 13.5]
    """
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
