"""Single-band pixel containers named as in ``lsst.afw.image``: Image, Mask, MaskedImage.

Each container wraps a numpy array indexed ``[y, x]`` plus the integer position ``xy0`` of
its pixel ``[0, 0]`` in the parent (survey) pixel grid. Indexing with a :class:`Box2I` in
parent coordinates returns a *view* that shares memory, as afw's subimages do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

import numpy as np

from .geom import Box2I, Extent2I, Point2I

if TYPE_CHECKING:
    from typing import Self  # Python 3.11

__all__ = ["Image", "ImageF", "ImageD", "Mask", "MaskedImage", "DEFAULT_MASK_PLANES"]

# The default afw plane layout, so files written here decode in the stack and vice versa.
DEFAULT_MASK_PLANES: Mapping[str, int] = {
    "BAD": 0,
    "SAT": 1,
    "INTRP": 2,
    "CR": 3,
    "EDGE": 4,
    "DETECTED": 5,
    "DETECTED_NEGATIVE": 6,
    "SUSPECT": 7,
    "NO_DATA": 8,
}
MAX_MASK_PLANES = 31


def _asBox(bbox: Box2I) -> Box2I:
    if not isinstance(bbox, Box2I):
        raise TypeError(f"expected a Box2I, got {type(bbox).__name__}")
    return bbox


class Image:
    """A 2-d pixel array with an origin ``xy0`` in the parent pixel grid.

    Parameters
    ----------
    arg
        A 2-d array (wrapped without a copy unless ``deep``), a :class:`Box2I` (a zero
        image covering it), or an :class:`Extent2I` (a zero image at ``xy0``).
    xy0
        Parent position of pixel ``[0, 0]``; taken from the box when ``arg`` is one.
    dtype
        Pixel type for new images, or a type to convert an array to.
    deep
        Copy the array instead of wrapping it.

    Examples
    --------
    >>> img = Image(Box2I(Point2I(10, 10), Extent2I(4, 3)))
    >>> img[Box2I(Point2I(11, 10), Extent2I(2, 2))].array[:] = 1.0
    >>> float(img.array.sum()), img.getXY0()
    (4.0, Point2I(x=10, y=10))
    """

    _defaultDtype: type = np.float32

    def __init__(
        self,
        arg: np.ndarray | Box2I | Extent2I,
        xy0: Point2I | None = None,
        dtype: type | None = None,
        deep: bool = False,
    ):
        array: np.ndarray
        if isinstance(arg, Box2I):
            array = np.zeros((arg.getHeight(), arg.getWidth()), dtype=dtype or self._defaultDtype)
            xy0 = arg.getMin()
        elif isinstance(arg, Extent2I):
            array = np.zeros((arg.y, arg.x), dtype=dtype or self._defaultDtype)
        else:
            array = np.asarray(arg)
            if dtype is not None and array.dtype != np.dtype(dtype):
                array = array.astype(dtype)
            elif deep:
                array = array.copy()
        if array.ndim != 2:
            raise ValueError(f"{type(self).__name__} needs a 2-d array, got shape {array.shape}")
        self._array = array
        self._xy0 = Point2I(0, 0) if xy0 is None else Point2I(*xy0)

    # Array and geometry accessors, as afw.
    @property
    def array(self) -> np.ndarray:
        return self._array

    @array.setter
    def array(self, value: np.ndarray) -> None:
        self._array[...] = value

    def getArray(self) -> np.ndarray:
        return self._array

    @property
    def dtype(self) -> np.dtype:
        return self._array.dtype

    def getXY0(self) -> Point2I:
        return self._xy0

    def setXY0(self, xy0: Point2I) -> None:
        self._xy0 = Point2I(*xy0)

    def getX0(self) -> int:
        return self._xy0.x

    def getY0(self) -> int:
        return self._xy0.y

    def getWidth(self) -> int:
        return self._array.shape[1]

    def getHeight(self) -> int:
        return self._array.shape[0]

    def getDimensions(self) -> Extent2I:
        return Extent2I(self.getWidth(), self.getHeight())

    def getBBox(self) -> Box2I:
        return Box2I(self._xy0, self.getDimensions())

    def _view(self, array: np.ndarray, xy0: Point2I) -> Self:
        view = object.__new__(type(self))
        view.__dict__.update(self.__dict__)
        view._array = array
        view._xy0 = xy0
        return view

    def subset(self, bbox: Box2I) -> Self:
        """A view of the pixels in ``bbox`` (parent coordinates), which must lie inside the image."""
        bbox = _asBox(bbox)
        if not self.getBBox().contains(bbox):
            raise IndexError(f"{bbox} is not contained in the image bounding box {self.getBBox()}")
        return self._view(self._array[bbox.getSlices(self._xy0)], bbox.getMin())

    def __getitem__(self, key: Box2I | Point2I | tuple[int, int]):
        if isinstance(key, Box2I):
            return self.subset(key)
        x, y = key
        if not self.getBBox().contains(Point2I(x, y)):
            raise IndexError(f"pixel ({x}, {y}) is outside the image bounding box {self.getBBox()}")
        return self._array[y - self._xy0.y, x - self._xy0.x]

    def __setitem__(self, key: Box2I | Point2I | tuple[int, int], value) -> None:
        if isinstance(key, Box2I):
            target = self.subset(key)
            target._array[...] = value.array if isinstance(value, Image) else value
            return
        x, y = key
        if not self.getBBox().contains(Point2I(x, y)):
            raise IndexError(f"pixel ({x}, {y}) is outside the image bounding box {self.getBBox()}")
        self._array[y - self._xy0.y, x - self._xy0.x] = value

    def set(self, value) -> None:
        self._array[...] = value

    def assign(self, other: Image, bbox: Box2I | None = None) -> None:
        """Copy ``other``'s pixels into ``bbox`` (default: ``other``'s own box)."""
        bbox = other.getBBox() if bbox is None else bbox
        self.subset(bbox)._array[...] = other.array

    def clone(self) -> Image:
        return self._view(self._array.copy(), self._xy0)

    def convertF(self) -> Image:
        return Image(self._array.astype(np.float32), xy0=self._xy0)

    def convertD(self) -> Image:
        return Image(self._array.astype(np.float64), xy0=self._xy0)

    def _other(self, other):
        if isinstance(other, Image):
            if other.getBBox() != self.getBBox():
                raise ValueError(f"image boxes differ: {self.getBBox()} vs {other.getBBox()}")
            return other.array
        return other

    def __iadd__(self, other):
        self._array += self._other(other)
        return self

    def __isub__(self, other):
        self._array -= self._other(other)
        return self

    def __imul__(self, other):
        self._array *= self._other(other)
        return self

    def __itruediv__(self, other):
        self._array /= self._other(other)
        return self

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Image):
            return NotImplemented
        return self.getBBox() == other.getBBox() and np.array_equal(self._array, other._array)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(bbox={self.getBBox()}, dtype={self.dtype})"


class ImageF(Image):
    """A float32 image."""

    def __init__(self, arg, xy0=None, dtype=np.float32, deep=False):
        super().__init__(arg, xy0=xy0, dtype=dtype, deep=deep)


class ImageD(Image):
    """A float64 image."""

    def __init__(self, arg, xy0=None, dtype=np.float64, deep=False):
        super().__init__(arg, xy0=xy0, dtype=dtype, deep=deep)


class Mask(Image):
    """An int32 bit-plane image whose planes have names (``"BAD"``, ``"DETECTED"``, ...).

    Unlike afw, whose plane dictionary is process-global, each mask carries its own
    dictionary (shared with its views), so masks read from files with different layouts
    can coexist.

    Examples
    --------
    >>> mask = Mask(Box2I(Point2I(0, 0), Extent2I(3, 3)))
    >>> bit = mask.addMaskPlane("BRIGHT_OBJECT")
    >>> mask.array[1, 1] |= mask.getPlaneBitMask(["BAD", "BRIGHT_OBJECT"])
    >>> int(mask.array[1, 1]) == (1 << 0) | (1 << bit)
    True
    """

    _defaultDtype = np.int32

    def __init__(
        self,
        arg: np.ndarray | Box2I | Extent2I,
        xy0: Point2I | None = None,
        planes: Mapping[str, int] | None = None,
        deep: bool = False,
    ):
        array = arg
        if isinstance(arg, np.ndarray) and arg.dtype != np.int32:
            if not np.issubdtype(arg.dtype, np.integer):
                raise TypeError(f"Mask needs an integer array, got dtype {arg.dtype}")
            array = arg.astype(np.int32)
        super().__init__(array, xy0=xy0, dtype=np.int32, deep=deep)
        self._planes: dict[str, int] = dict(DEFAULT_MASK_PLANES if planes is None else planes)
        _checkPlanes(self._planes)

    def getMaskPlaneDict(self) -> dict[str, int]:
        """A copy of the name → bit index mapping."""
        return dict(self._planes)

    def getMaskPlane(self, name: str) -> int:
        """The bit index of a plane."""
        try:
            return self._planes[name]
        except KeyError:
            raise KeyError(
                f"mask has no plane {name!r}; known planes: {', '.join(sorted(self._planes))}"
            ) from None

    def getPlaneBitMask(self, names: str | Iterable[str]) -> int:
        """The bit mask of one plane or the OR of several."""
        if isinstance(names, str):
            names = [names]
        value = 0
        for name in names:
            value |= 1 << self.getMaskPlane(name)
        return value

    def addMaskPlane(self, name: str) -> int:
        """Add a plane (or return the existing one's bit index)."""
        if name in self._planes:
            return self._planes[name]
        used = set(self._planes.values())
        free = [bit for bit in range(MAX_MASK_PLANES) if bit not in used]
        if not free:
            raise RuntimeError(f"no free mask bit for plane {name!r}: all {MAX_MASK_PLANES} are used")
        self._planes[name] = free[0]
        return free[0]

    def removeAndClearMaskPlane(self, name: str) -> None:
        bit = self.getMaskPlane(name)
        self._array &= ~np.int32(1 << bit)
        del self._planes[name]

    def clearMaskPlane(self, bit: int) -> None:
        self._array &= ~np.int32(1 << bit)

    def getNumPlanesUsed(self) -> int:
        return len(self._planes)

    def interpret(self, value: int) -> str:
        """The comma-separated names of the planes set in ``value``."""
        return ",".join(name for name, bit in sorted(self._planes.items(), key=lambda kv: kv[1]) if value & (1 << bit))

    def clone(self) -> Mask:
        return Mask(self._array.copy(), xy0=self._xy0, planes=self._planes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mask):
            return NotImplemented
        return super().__eq__(other) and self._planes == other._planes

    __hash__ = None


def _checkPlanes(planes: Mapping[str, int]) -> None:
    bits = list(planes.values())
    if len(set(bits)) != len(bits):
        raise ValueError(f"mask planes share a bit: {dict(planes)}")
    for name, bit in planes.items():
        if not 0 <= int(bit) < MAX_MASK_PLANES:
            raise ValueError(f"mask plane {name!r} has bit {bit}, outside 0..{MAX_MASK_PLANES - 1}")


class MaskedImage:
    """An image, its mask and its variance on one pixel grid.

    Parameters
    ----------
    image
        The flux image, or a :class:`Box2I` to make an empty masked image.
    mask, variance
        Made empty (zero) when not given.
    """

    def __init__(self, image: Image | Box2I, mask: Mask | None = None, variance: Image | None = None):
        if isinstance(image, Box2I):
            image = ImageF(image)
        if not isinstance(image, Image):
            image = ImageF(np.asarray(image))
        bbox = image.getBBox()
        mask = Mask(bbox) if mask is None else mask
        variance = ImageF(bbox) if variance is None else variance
        for plane, box in (("mask", mask.getBBox()), ("variance", variance.getBBox())):
            if box != bbox:
                raise ValueError(f"{plane} bounding box {box} differs from the image's {bbox}")
        self._image, self._mask, self._variance = image, mask, variance

    image = property(lambda self: self._image)
    mask = property(lambda self: self._mask)
    variance = property(lambda self: self._variance)

    def getImage(self) -> Image:
        return self._image

    def getMask(self) -> Mask:
        return self._mask

    def getVariance(self) -> Image:
        return self._variance

    def getBBox(self) -> Box2I:
        return self._image.getBBox()

    def getXY0(self) -> Point2I:
        return self._image.getXY0()

    def getWidth(self) -> int:
        return self._image.getWidth()

    def getHeight(self) -> int:
        return self._image.getHeight()

    def getDimensions(self) -> Extent2I:
        return self._image.getDimensions()

    def subset(self, bbox: Box2I) -> MaskedImage:
        return MaskedImage(self._image.subset(bbox), self._mask.subset(bbox), self._variance.subset(bbox))

    def __getitem__(self, bbox: Box2I) -> MaskedImage:
        return self.subset(bbox)

    def clone(self) -> MaskedImage:
        return MaskedImage(self._image.clone(), self._mask.clone(), self._variance.clone())

    def __repr__(self) -> str:
        return f"MaskedImage(bbox={self.getBBox()})"
