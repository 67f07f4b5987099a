"""Multiband pixel cubes, named as in ``lsst.afw.image``: :class:`MultibandImage` and :class:`MultibandMask`.

Each stores its planes as one cube ``(band, y, x)``; indexing one band (``cube["r"]``) or a
box (``cube[:, bbox]``) returns views sharing that cube. They are the planes of a
:class:`~.exposure.MultibandExposure`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import numpy as np

from .geom import Box2I, Extent2I, Point2I
from .image import DEFAULT_MASK_PLANES, Image, Mask

__all__ = ["MultibandImage", "MultibandMask"]


def _bandIndices(bands: tuple[str, ...], key) -> tuple[list[int], bool]:
    """Band indices addressed by ``key`` and whether a single band (not a list) was asked for."""
    if isinstance(key, str):
        if key not in bands:
            raise KeyError(f"band {key!r} is not one of {bands}")
        return [bands.index(key)], True
    if isinstance(key, slice):
        start = bands.index(key.start) if isinstance(key.start, str) else key.start
        # Band-name slices include their end, as afw's do.
        stop = bands.index(key.stop) + 1 if isinstance(key.stop, str) else key.stop
        return list(range(len(bands)))[slice(start, stop, key.step)], False
    if isinstance(key, (int, np.integer)):
        return [int(key)], True
    indices = []
    for band in key:
        indices.extend(_bandIndices(bands, band)[0])
    return indices, False


def _splitKey(key) -> tuple[object, Box2I | None]:
    if isinstance(key, tuple):
        if len(key) != 2:
            raise IndexError(f"index with (bands, bbox), got {len(key)} items")
        return key[0], key[1]
    if isinstance(key, Box2I):
        return slice(None), key
    return key, None


class MultibandImage:
    """A cube of images, one per band, on a common pixel grid.

    Parameters
    ----------
    bands
        Band labels, one per plane of ``array``.
    array
        ``(band, y, x)`` array (wrapped, not copied).
    xy0
        Parent position of pixel ``[:, 0, 0]``.

    Examples
    --------
    >>> cube = MultibandImage(["g", "r"], np.zeros((2, 5, 6), np.float32), xy0=Point2I(3, 4))
    >>> cube["r"].getBBox().getMin(), cube[:, Box2I(Point2I(4, 5), Point2I(6, 6))].array.shape
    (Point2I(x=3, y=4), (2, 2, 3))
    """

    _single = Image

    def __init__(self, bands: Sequence[str], array: np.ndarray, xy0: Point2I | None = None):
        bands = tuple(bands)
        array = np.asarray(array)
        if array.ndim != 3:
            raise ValueError(f"{type(self).__name__} needs a (band, y, x) array, got shape {array.shape}")
        if array.shape[0] != len(bands):
            raise ValueError(f"{len(bands)} bands {bands} but the array has {array.shape[0]} planes")
        if len(set(bands)) != len(bands):
            raise ValueError(f"duplicate band labels in {bands}")
        self._bands = bands
        self._array = array
        self._xy0 = Point2I(0, 0) if xy0 is None else Point2I(*xy0)

    @classmethod
    def fromImages(cls, bands: Sequence[str], images: Sequence[Image]) -> MultibandImage:
        boxes = {image.getBBox() for image in images}
        if len(boxes) != 1:
            raise ValueError(f"single-band images have different bounding boxes: {sorted(map(repr, boxes))}")
        return cls(bands, np.stack([image.array for image in images]), xy0=images[0].getXY0())

    @property
    def bands(self) -> tuple[str, ...]:
        return self._bands

    @property
    def filters(self) -> tuple[str, ...]:
        """Older afw name of :attr:`bands`."""
        return self._bands

    @property
    def array(self) -> np.ndarray:
        return self._array

    @array.setter
    def array(self, value) -> None:
        self._array[...] = value

    @property
    def dtype(self) -> np.dtype:
        return self._array.dtype

    def getXY0(self) -> Point2I:
        return self._xy0

    def getBBox(self) -> Box2I:
        return Box2I(self._xy0, Extent2I(self._array.shape[2], self._array.shape[1]))

    @property
    def singles(self) -> list[Image]:
        return [self[band] for band in self._bands]

    def _makeView(self, bands: tuple[str, ...], array: np.ndarray, xy0: Point2I) -> MultibandImage:
        return type(self)(bands, array, xy0=xy0)

    def __getitem__(self, key):
        bandKey, bbox = _splitKey(key)
        indices, single = _bandIndices(self._bands, bandKey)
        array, xy0 = self._array, self._xy0
        if bbox is not None:
            if not self.getBBox().contains(bbox):
                raise IndexError(f"{bbox} is not contained in the bounding box {self.getBBox()}")
            ys, xs = bbox.getSlices(self._xy0)
            array, xy0 = array[:, ys, xs], bbox.getMin()
        if single:
            return self._makeSingleFrom(array[indices[0]], xy0)
        if indices == list(range(len(self._bands))):
            return self._makeView(self._bands, array, xy0)
        return self._makeView(tuple(self._bands[i] for i in indices), array[indices], xy0)

    def _makeSingleFrom(self, array: np.ndarray, xy0: Point2I) -> Image:
        return self._single(array, xy0=xy0)

    def clone(self) -> MultibandImage:
        return self._makeView(self._bands, self._array.copy(), self._xy0)

    def __len__(self) -> int:
        return len(self._bands)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MultibandImage):
            return NotImplemented
        return (
            self._bands == other._bands
            and self.getBBox() == other.getBBox()
            and np.array_equal(self._array, other._array)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bands={self._bands}, bbox={self.getBBox()})"


class MultibandMask(MultibandImage):
    """A cube of masks sharing one plane dictionary."""

    def __init__(
        self,
        bands: Sequence[str],
        array: np.ndarray,
        xy0: Point2I | None = None,
        planes: Mapping[str, int] | None = None,
    ):
        array = np.asarray(array)
        if not np.issubdtype(array.dtype, np.integer):
            raise TypeError(f"MultibandMask needs an integer array, got dtype {array.dtype}")
        if array.dtype != np.int32:
            array = array.astype(np.int32)
        super().__init__(bands, array, xy0=xy0)
        self._planes: dict[str, int] = dict(DEFAULT_MASK_PLANES if planes is None else planes)

    def _makeSingleFrom(self, array: np.ndarray, xy0: Point2I) -> Mask:
        mask = Mask(array, xy0=xy0)
        mask._planes = self._planes
        return mask

    def _makeView(self, bands, array, xy0) -> MultibandMask:
        view = MultibandMask(bands, array, xy0=xy0)
        view._planes = self._planes
        return view

    def clone(self) -> MultibandMask:
        return MultibandMask(self._bands, self._array.copy(), xy0=self._xy0, planes=self._planes)

    def getMaskPlaneDict(self) -> dict[str, int]:
        return dict(self._planes)

    def _planeView(self) -> Mask:
        """A one-pixel mask sharing this cube's plane dictionary (works with zero bands too)."""
        return self._makeSingleFrom(np.zeros((1, 1), np.int32), self._xy0)

    def getMaskPlane(self, name: str) -> int:
        return self._planeView().getMaskPlane(name)

    def getPlaneBitMask(self, names: str | Iterable[str]) -> int:
        return self._planeView().getPlaneBitMask(names)

    def addMaskPlane(self, name: str) -> int:
        return self._planeView().addMaskPlane(name)
