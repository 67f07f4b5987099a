"""Integer and floating-point pixel geometry, named as in ``lsst.geom``.

Pixel convention (as in LSST): pixel ``(x, y)`` covers ``[x - 0.5, x + 0.5)``, so the
centre of pixel ``(x, y)`` has the floating-point position ``(x, y)``. Boxes are inclusive
on both ends: a :class:`Box2I` with minimum ``(0, 0)`` and dimensions ``(3, 2)`` contains
pixels ``x = 0, 1, 2`` and ``y = 0, 1``. Arrays are indexed ``[y, x]`` relative to the
box minimum (``xy0``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Union

import numpy as np

__all__ = ["Point2I", "Point2D", "Extent2I", "Box2I"]


class _XYPair:
    """What every ``(x, y)`` pair of lsst.geom has: typed coordinates, getters, unpacking."""

    _cast: Callable[[object], float]

    def __post_init__(self) -> None:
        # Frozen dataclasses: coerce numpy scalars and the like to the pair's own type.
        object.__setattr__(self, "x", self._cast(self.x))
        object.__setattr__(self, "y", self._cast(self.y))

    def getX(self):
        return self.x

    def getY(self):
        return self.y

    def __iter__(self) -> Iterator:
        yield self.x
        yield self.y

    def __getitem__(self, i: int):
        return (self.x, self.y)[i]


@dataclass(frozen=True)
class Point2I(_XYPair):
    """An integer pixel position.

    Examples
    --------
    >>> Point2I(3, 4) + Extent2I(1, 1)
    Point2I(x=4, y=5)
    """

    x: int
    y: int

    _cast = staticmethod(int)

    def __add__(self, other: "Extent2I") -> "Point2I":
        return Point2I(self.x + other.x, self.y + other.y)

    def __sub__(self, other: Union["Point2I", "Extent2I"]) -> Union["Extent2I", "Point2I"]:
        # As in lsst.geom: point - point is an extent, point - extent is a point.
        if isinstance(other, Point2I):
            return Extent2I(self.x - other.x, self.y - other.y)
        return Point2I(self.x - other.x, self.y - other.y)

    def __neg__(self) -> "Point2I":
        return Point2I(-self.x, -self.y)


@dataclass(frozen=True)
class Point2D(_XYPair):
    """A floating-point position in pixel coordinates."""

    x: float
    y: float

    _cast = staticmethod(float)

    def toPoint2I(self) -> Point2I:
        """The pixel that contains this position (round half up, as pixel centres are integers)."""
        return Point2I(int(np.floor(self.x + 0.5)), int(np.floor(self.y + 0.5)))


@dataclass(frozen=True)
class Extent2I(_XYPair):
    """An integer size or offset ``(x, y)``; as a size, ``x`` is the width."""

    x: int
    y: int

    _cast = staticmethod(int)

    def __neg__(self) -> "Extent2I":
        return Extent2I(-self.x, -self.y)


class Box2I:
    """An inclusive integer box of pixels.

    Constructed either from two corner points ``Box2I(minimum, maximum)`` (both inclusive)
    or from a corner and a size ``Box2I(minimum, Extent2I(width, height))``. A box with
    zero or negative size is empty.

    Examples
    --------
    >>> box = Box2I(Point2I(10, 20), Extent2I(5, 4))
    >>> box.getMaxX(), box.getMaxY(), box.getArea()
    (14, 23, 20)
    >>> box.contains(Point2I(14, 23))
    True
    """

    __slots__ = ("_minX", "_minY", "_width", "_height")

    def __init__(self, minimum: Point2I | None = None, other: Point2I | Extent2I | None = None):
        if minimum is None:
            self._minX = self._minY = 0
            self._width = self._height = 0
            return
        minimum = Point2I(*minimum)
        if isinstance(other, Extent2I):
            width, height = other.x, other.y
        elif other is None:
            raise TypeError("Box2I needs a maximum Point2I or an Extent2I after the minimum")
        else:
            maximum = Point2I(*other)
            width, height = maximum.x - minimum.x + 1, maximum.y - minimum.y + 1
        self._minX, self._minY = minimum.x, minimum.y
        if width <= 0 or height <= 0:
            width = height = 0
        self._width, self._height = int(width), int(height)

    @classmethod
    def makeCenteredBox(cls, center: Point2D, size: Extent2I) -> "Box2I":
        """The box of ``size`` whose centre is nearest ``center``, as in ``lsst.geom``."""
        minX = int(np.floor(center.x + 0.5 - size.x / 2.0))
        minY = int(np.floor(center.y + 0.5 - size.y / 2.0))
        return cls(Point2I(minX, minY), size)

    @classmethod
    def fromSlices(cls, slices: tuple[slice, slice], xy0: Point2I = Point2I(0, 0)) -> "Box2I":
        """The box addressed by numpy ``(y, x)`` slices of an array whose origin is ``xy0``."""
        ys, xs = slices
        return cls(
            Point2I(xy0.x + xs.start, xy0.y + ys.start),
            Extent2I(xs.stop - xs.start, ys.stop - ys.start),
        )

    # Accessors mirror lsst.geom.Box2I.
    def getMinX(self) -> int:
        return self._minX

    def getMinY(self) -> int:
        return self._minY

    def getMaxX(self) -> int:
        return self._minX + self._width - 1

    def getMaxY(self) -> int:
        return self._minY + self._height - 1

    def getBeginX(self) -> int:
        return self._minX

    def getBeginY(self) -> int:
        return self._minY

    def getEndX(self) -> int:
        return self._minX + self._width

    def getEndY(self) -> int:
        return self._minY + self._height

    def getMin(self) -> Point2I:
        return Point2I(self._minX, self._minY)

    def getMax(self) -> Point2I:
        return Point2I(self.getMaxX(), self.getMaxY())

    def getBegin(self) -> Point2I:
        return self.getMin()

    def getEnd(self) -> Point2I:
        return Point2I(self.getEndX(), self.getEndY())

    def getWidth(self) -> int:
        return self._width

    def getHeight(self) -> int:
        return self._height

    def getDimensions(self) -> Extent2I:
        return Extent2I(self._width, self._height)

    def getArea(self) -> int:
        return self._width * self._height

    def getCenter(self) -> Point2D:
        return Point2D(self._minX + (self._width - 1) / 2.0, self._minY + (self._height - 1) / 2.0)

    minX = property(getMinX)
    minY = property(getMinY)
    maxX = property(getMaxX)
    maxY = property(getMaxY)
    width = property(getWidth)
    height = property(getHeight)

    def isEmpty(self) -> bool:
        return self._width == 0 or self._height == 0

    def contains(self, other: "Point2I | Box2I") -> bool:
        """Whether a point, or every pixel of a box, lies inside this box."""
        if isinstance(other, Box2I):
            if other.isEmpty():
                return True
            return (
                other._minX >= self._minX
                and other._minY >= self._minY
                and other.getMaxX() <= self.getMaxX()
                and other.getMaxY() <= self.getMaxY()
            )
        x, y = other
        return self._minX <= x <= self.getMaxX() and self._minY <= y <= self.getMaxY()

    def overlaps(self, other: "Box2I") -> bool:
        return not self.clippedTo(other).isEmpty()

    def clippedTo(self, other: "Box2I") -> "Box2I":
        """The intersection of two boxes (empty when they do not overlap)."""
        if self.isEmpty() or other.isEmpty():
            return Box2I()
        minX = max(self._minX, other._minX)
        minY = max(self._minY, other._minY)
        maxX = min(self.getMaxX(), other.getMaxX())
        maxY = min(self.getMaxY(), other.getMaxY())
        if maxX < minX or maxY < minY:
            return Box2I()
        return Box2I(Point2I(minX, minY), Point2I(maxX, maxY))

    def clip(self, other: "Box2I") -> None:
        """Shrink this box, in place, to its intersection with ``other`` (as afw does)."""
        clipped = self.clippedTo(other)
        self._minX, self._minY = clipped._minX, clipped._minY
        self._width, self._height = clipped._width, clipped._height

    def include(self, other: "Point2I | Box2I") -> None:
        """Grow this box, in place, so that it also contains ``other``."""
        merged = self.expandedTo(other)
        self._minX, self._minY = merged._minX, merged._minY
        self._width, self._height = merged._width, merged._height

    def expandedTo(self, other: "Point2I | Box2I") -> "Box2I":
        if isinstance(other, Box2I):
            if other.isEmpty():
                return self.copy()
            if self.isEmpty():
                return other.copy()
            return Box2I(
                Point2I(min(self._minX, other._minX), min(self._minY, other._minY)),
                Point2I(max(self.getMaxX(), other.getMaxX()), max(self.getMaxY(), other.getMaxY())),
            )
        point = Point2I(*other)
        return self.expandedTo(Box2I(point, Extent2I(1, 1)))

    def dilatedBy(self, amount: int) -> "Box2I":
        if self.isEmpty():  # as lsst.geom's Box2I.grow: an empty box stays empty
            return Box2I()
        return Box2I(
            Point2I(self._minX - amount, self._minY - amount),
            Extent2I(self._width + 2 * amount, self._height + 2 * amount),
        )

    def shiftedBy(self, offset: Extent2I) -> "Box2I":
        return Box2I(Point2I(self._minX + offset.x, self._minY + offset.y), self.getDimensions())

    def copy(self) -> "Box2I":
        return Box2I(self.getMin(), self.getDimensions())

    def getSlices(self, xy0: Point2I = Point2I(0, 0)) -> tuple[slice, slice]:
        """Numpy ``(y, x)`` slices of this box in an array whose pixel ``[0, 0]`` is ``xy0``."""
        y0 = self._minY - xy0.y
        x0 = self._minX - xy0.x
        return slice(y0, y0 + self._height), slice(x0, x0 + self._width)

    @property
    def slices(self) -> tuple[slice, slice]:
        """Numpy slices of this box in an array whose origin is ``(0, 0)``."""
        return self.getSlices()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Box2I):
            return NotImplemented
        if self.isEmpty() and other.isEmpty():
            return True
        return (self._minX, self._minY, self._width, self._height) == (
            other._minX,
            other._minY,
            other._width,
            other._height,
        )

    def __hash__(self) -> int:
        if self.isEmpty():  # all empty boxes are equal, so they must hash alike
            return hash((0, 0, 0, 0))
        return hash((self._minX, self._minY, self._width, self._height))

    def __repr__(self) -> str:
        return f"Box2I(minimum=Point2I({self._minX}, {self._minY}), dimensions=Extent2I({self._width}, {self._height}))"
