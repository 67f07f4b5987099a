"""Integer and floating-point pixel geometry, named as in ``lsst.geom``.

Angles and sky positions are :class:`Angle` (``30 * degrees``) and :class:`SpherePoint`, as in
``lsst.geom``.

Pixel convention (as in LSST): pixel ``(x, y)`` covers ``[x - 0.5, x + 0.5)``, so the
centre of pixel ``(x, y)`` has the floating-point position ``(x, y)``. Boxes are inclusive
on both ends: a :class:`Box2I` with minimum ``(0, 0)`` and dimensions ``(3, 2)`` contains
pixels ``x = 0, 1, 2`` and ``y = 0, 1``. Arrays are indexed ``[y, x]`` relative to the
box minimum (``xy0``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Point2I", "Point2D", "Extent2I", "Box2I", "AngleUnit", "Angle", "radians", "degrees", "arcminutes",
           "arcseconds", "SpherePoint"]


class _XYPair:
    """What every ``(x, y)`` pair of lsst.geom has: typed coordinates, getters, unpacking."""

    x: float  # set by the dataclass subclasses
    y: float
    _cast: Callable[[Any], float]

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

    def __add__(self, other: Extent2I) -> Point2I:
        return Point2I(self.x + other.x, self.y + other.y)

    def __sub__(self, other: Point2I | Extent2I) -> Extent2I | Point2I:
        # As in lsst.geom: point - point is an extent, point - extent is a point.
        if isinstance(other, Point2I):
            return Extent2I(self.x - other.x, self.y - other.y)
        return Point2I(self.x - other.x, self.y - other.y)

    def __neg__(self) -> Point2I:
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

    def __neg__(self) -> Extent2I:
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
    def makeCenteredBox(cls, center: Point2D, size: Extent2I) -> Box2I:
        """The box of ``size`` whose centre is nearest ``center``, as in ``lsst.geom``."""
        minX = int(np.floor(center.x + 0.5 - size.x / 2.0))
        minY = int(np.floor(center.y + 0.5 - size.y / 2.0))
        return cls(Point2I(minX, minY), size)

    @classmethod
    def fromSlices(cls, slices: tuple[slice, slice], xy0: Point2I = Point2I(0, 0)) -> Box2I:
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

    def contains(self, other: Point2I | Box2I) -> bool:
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

    def overlaps(self, other: Box2I) -> bool:
        return not self.clippedTo(other).isEmpty()

    def clippedTo(self, other: Box2I) -> Box2I:
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

    def clip(self, other: Box2I) -> None:
        """Shrink this box, in place, to its intersection with ``other`` (as afw does)."""
        clipped = self.clippedTo(other)
        self._minX, self._minY = clipped._minX, clipped._minY
        self._width, self._height = clipped._width, clipped._height

    def include(self, other: Point2I | Box2I) -> None:
        """Grow this box, in place, so that it also contains ``other``."""
        merged = self.expandedTo(other)
        self._minX, self._minY = merged._minX, merged._minY
        self._width, self._height = merged._width, merged._height

    def expandedTo(self, other: Point2I | Box2I) -> Box2I:
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

    def dilatedBy(self, amount: int) -> Box2I:
        if self.isEmpty():  # as lsst.geom's Box2I.grow: an empty box stays empty
            return Box2I()
        return Box2I(
            Point2I(self._minX - amount, self._minY - amount),
            Extent2I(self._width + 2 * amount, self._height + 2 * amount),
        )

    def shiftedBy(self, offset: Extent2I) -> Box2I:
        return Box2I(Point2I(self._minX + offset.x, self._minY + offset.y), self.getDimensions())

    def copy(self) -> Box2I:
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


class AngleUnit:
    """A unit of angle (``radians``, ``degrees``, ``arcminutes``, ``arcseconds``); ``3 * degrees`` is an
    :class:`Angle`."""

    __slots__ = ("_radians", "_name")

    def __init__(self, inRadians: float, name: str):
        self._radians = float(inRadians)
        self._name = name

    def __rmul__(self, value: float) -> Angle:
        return Angle(float(value), self)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AngleUnit) and self._radians == other._radians

    def __hash__(self) -> int:
        return hash(self._radians)

    def __repr__(self) -> str:
        return self._name


radians = AngleUnit(1.0, "radians")
degrees = AngleUnit(np.pi / 180.0, "degrees")
arcminutes = AngleUnit(np.pi / (180.0 * 60.0), "arcminutes")
arcseconds = AngleUnit(np.pi / (180.0 * 3600.0), "arcseconds")


class Angle:
    """An angle, stored in radians (``float(angle)``).

    Examples
    --------
    >>> angle = 0.2 * arcseconds
    >>> round(angle.asArcseconds(), 12), round((90 * degrees).asRadians(), 6)
    (0.2, 1.570796)
    """

    __slots__ = ("_radians",)

    def __init__(self, value: float, units: AngleUnit = radians):
        self._radians = float(value) * units._radians

    def asRadians(self) -> float:
        return self._radians

    def asDegrees(self) -> float:
        return self._radians / degrees._radians

    def asArcminutes(self) -> float:
        return self._radians / arcminutes._radians

    def asArcseconds(self) -> float:
        return self._radians / arcseconds._radians

    def asAngularUnits(self, units: AngleUnit) -> float:
        return self._radians / units._radians

    def wrap(self) -> Angle:
        """The angle in [0, 2π)."""
        return Angle(self._radians % (2 * np.pi))

    def __float__(self) -> float:
        return self._radians

    def __add__(self, other: Angle) -> Angle:
        return Angle(self._radians + float(other))

    def __sub__(self, other: Angle) -> Angle:
        return Angle(self._radians - float(other))

    def __neg__(self) -> Angle:
        return Angle(-self._radians)

    def __mul__(self, factor: float) -> Angle:
        return Angle(self._radians * float(factor))

    __rmul__ = __mul__

    def __truediv__(self, divisor: float) -> Angle:
        return Angle(self._radians / float(divisor))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Angle) and self._radians == other._radians

    def __lt__(self, other: Angle) -> bool:
        return self._radians < float(other)

    def __hash__(self) -> int:
        return hash(self._radians)

    def __repr__(self) -> str:
        return f"Angle({self._radians!r}, radians)"


class SpherePoint:
    """A position on the sky: longitude (right ascension, wrapped to [0, 2π)) and latitude (declination).

    ``SpherePoint(ra, dec)`` with :class:`Angle` s, or ``SpherePoint(raValue, decValue, units)``.

    Examples
    --------
    >>> a, b = SpherePoint(150.0, 2.0, degrees), SpherePoint(150.0, 2.001, degrees)
    >>> round(a.getRa().asDegrees(), 6), round(a.separation(b).asArcseconds(), 6)
    (150.0, 3.6)
    """

    __slots__ = ("_lon", "_lat")

    def __init__(self, longitude, latitude, units: AngleUnit | None = None):
        lon = Angle(longitude, units) if units is not None else Angle(float(longitude))
        lat = Angle(latitude, units) if units is not None else Angle(float(latitude))
        if not abs(lat.asRadians()) <= np.pi / 2 * (1 + 1e-15):
            raise ValueError(f"latitude {lat.asDegrees()} deg is outside [-90, 90]")
        self._lon, self._lat = lon.wrap(), lat

    def getLongitude(self) -> Angle:
        return self._lon

    def getLatitude(self) -> Angle:
        return self._lat

    def getRa(self) -> Angle:
        return self._lon

    def getDec(self) -> Angle:
        return self._lat

    def __getitem__(self, i: int) -> Angle:
        return (self._lon, self._lat)[i]

    def __iter__(self) -> Iterator[Angle]:
        yield self._lon
        yield self._lat

    def separation(self, other: SpherePoint) -> Angle:
        """The great-circle distance to ``other`` (Vincenty's formula, accurate at all separations)."""
        lon1, lat1, lon2, lat2 = (float(a) for a in (self._lon, self._lat, other._lon, other._lat))
        dlon = lon2 - lon1
        numerator = np.hypot(np.cos(lat2) * np.sin(dlon),
                             np.cos(lat1) * np.sin(lat2) - np.sin(lat1) * np.cos(lat2) * np.cos(dlon))
        denominator = np.sin(lat1) * np.sin(lat2) + np.cos(lat1) * np.cos(lat2) * np.cos(dlon)
        return Angle(float(np.arctan2(numerator, denominator)))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SpherePoint) and (self._lon, self._lat) == (other._lon, other._lat)

    def __hash__(self) -> int:
        return hash((self._lon, self._lat))

    def __repr__(self) -> str:
        return f"SpherePoint({self._lon.asDegrees()!r}*degrees, {self._lat.asDegrees()!r}*degrees)"
