"""Sets of pixels stored as runs, named as in ``lsst.afw.geom`` (``Span``, ``SpanSet``).

A :class:`SpanSet` is a set of pixels stored as horizontal runs ``(y, x0, x1)`` with
inclusive ends, sorted by ``(y, x0)`` and with overlapping or touching runs merged, so two
SpanSets with the same pixels are equal. *Span order* is the order of
:meth:`SpanSet.indices`: row by row, left to right. A
:class:`~lsst.meas.extensions.madness.afw.detection.HeavyFootprint` keeps pixel values in
that order, as afw does.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from .geom import Box2I, Extent2I, Point2D, Point2I
from .image import Image, Mask

__all__ = ["Span", "SpanSet"]


@dataclass(frozen=True)
class Span:
    """One horizontal run of pixels ``x0..x1`` (inclusive) in row ``y``."""

    y: int
    x0: int
    x1: int

    def getY(self) -> int:
        return self.y

    def getX0(self) -> int:
        return self.x0

    def getX1(self) -> int:
        return self.x1

    def getMinX(self) -> int:
        return self.x0

    def getMaxX(self) -> int:
        return self.x1

    def getWidth(self) -> int:
        return self.x1 - self.x0 + 1

    def __len__(self) -> int:
        return self.getWidth()


def _normalize(y: np.ndarray, x0: np.ndarray, x1: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort runs by (y, x0) and merge those that overlap or touch within a row."""
    y, x0, x1 = (np.asarray(a, dtype=np.int64).ravel() for a in (y, x0, x1))
    keep = x1 >= x0
    y, x0, x1 = y[keep], x0[keep], x1[keep]
    if y.size == 0:
        return y, x0, x1
    order = np.lexsort((x0, y))
    y, x0, x1 = y[order], x0[order], x1[order]
    # Lay rows end to end on one axis, far enough apart that runs of different rows never
    # touch; then one running maximum finds where a new merged run starts. Rows are laid by
    # rank, not by y, so that int32 extremes in both y and x do not overflow int64.
    rank = np.concatenate([[0], np.cumsum(y[1:] != y[:-1])])
    xmin = x0.min()
    stride = int(x1.max() - xmin) + 3
    start = rank * stride + (x0 - xmin)
    end = rank * stride + (x1 - xmin)
    reach = np.maximum.accumulate(end)
    newRun = np.ones(y.size, dtype=bool)
    newRun[1:] = start[1:] > reach[:-1] + 1
    firsts = np.flatnonzero(newRun)
    return y[firsts], x0[firsts], np.maximum.reduceat(x1, firsts)


class SpanSet:
    """A set of pixels stored as sorted, merged horizontal runs.

    Parameters
    ----------
    spans
        :class:`Span` objects, or a :class:`Box2I` to cover, or ``None`` for an empty set.

    Examples
    --------
    >>> spans = SpanSet.fromArrays([0, 0, 1], [0, 2, 1], [1, 3, 1])
    >>> spans.getArea(), len(spans), spans.getBBox()
    (5, 2, Box2I(minimum=Point2I(0, 0), dimensions=Extent2I(4, 2)))
    >>> spans.indices()
    (array([0, 0, 0, 0, 1]), array([0, 1, 2, 3, 1]))
    """

    __slots__ = ("_y", "_x0", "_x1")

    def __init__(self, spans: Iterable[Span] | Box2I | None = None):
        if isinstance(spans, Box2I):
            ys = np.arange(spans.getMinY(), spans.getMaxY() + 1)
            y, x0, x1 = ys, np.full(ys.size, spans.getMinX()), np.full(ys.size, spans.getMaxX())
            if spans.isEmpty():
                y = x0 = x1 = np.zeros(0, np.int64)
        else:
            spans = list(spans or [])
            y = np.array([s.y for s in spans], dtype=np.int64)
            x0 = np.array([s.x0 for s in spans], dtype=np.int64)
            x1 = np.array([s.x1 for s in spans], dtype=np.int64)
        self._y, self._x0, self._x1 = _normalize(y, x0, x1)

    @classmethod
    def fromArrays(cls, y: Sequence[int] | np.ndarray, x0: Sequence[int] | np.ndarray,
                   x1: Sequence[int] | np.ndarray) -> SpanSet:
        """Make a SpanSet from run arrays (``x1`` inclusive); runs are sorted and merged."""
        rows, starts, ends = (np.asarray(a) for a in (y, x0, x1))
        if not (rows.shape == starts.shape == ends.shape):
            raise ValueError(f"span arrays differ in length: {rows.shape}, {starts.shape}, {ends.shape}")
        result = cls.__new__(cls)
        result._y, result._x0, result._x1 = _normalize(rows, starts, ends)
        return result

    @classmethod
    def fromMask(
        cls,
        mask: Mask | Image | np.ndarray,
        bitmask: int | None = None,
        xy0: Point2I | None = None,
    ) -> SpanSet:
        """The pixels of ``mask`` that are set (non-zero, or with any bit of ``bitmask``).

        ``mask`` may be an afw-like image (its ``xy0`` is used) or a numpy array (with
        ``xy0``, default ``(0, 0)``).
        """
        if isinstance(mask, Image):
            xy0 = mask.getXY0()
            array = mask.array
        else:
            array = np.asarray(mask)
            xy0 = Point2I(0, 0) if xy0 is None else Point2I(*xy0)
        selected = (array & bitmask) != 0 if bitmask is not None else array != 0
        if selected.ndim != 2:
            raise ValueError(f"fromMask needs a 2-d mask, got shape {selected.shape}")
        # Run starts and ends are where a zero-padded row changes value.
        padded = np.zeros((selected.shape[0], selected.shape[1] + 2), dtype=np.int8)
        padded[:, 1:-1] = selected
        change = np.diff(padded, axis=1)
        startY, startX = np.nonzero(change == 1)
        _endY, endX = np.nonzero(change == -1)
        result = cls.__new__(cls)
        # np.nonzero walks rows in order, so starts and ends pair up one to one.
        result._y = (startY + xy0.y).astype(np.int64)
        result._x0 = (startX + xy0.x).astype(np.int64)
        result._x1 = (endX - 1 + xy0.x).astype(np.int64)
        return result

    # Raw run access (ours; afw iterates Span objects).
    @property
    def y(self) -> np.ndarray:
        return self._y

    @property
    def x0(self) -> np.ndarray:
        return self._x0

    @property
    def x1(self) -> np.ndarray:
        return self._x1

    def __iter__(self) -> Iterator[Span]:
        for y, x0, x1 in zip(self._y.tolist(), self._x0.tolist(), self._x1.tolist()):
            yield Span(y, x0, x1)

    def __len__(self) -> int:
        return int(self._y.size)

    def getArea(self) -> int:
        return int((self._x1 - self._x0 + 1).sum())

    def isEmpty(self) -> bool:
        return self._y.size == 0

    def getBBox(self) -> Box2I:
        if self.isEmpty():
            return Box2I()
        return Box2I(
            Point2I(int(self._x0.min()), int(self._y.min())),
            Point2I(int(self._x1.max()), int(self._y.max())),
        )

    def indices(self) -> tuple[np.ndarray, np.ndarray]:
        """``(y, x)`` of every pixel, in span order."""
        widths = self._x1 - self._x0 + 1
        ys = np.repeat(self._y, widths)
        # x = run start + position within the run, without a Python loop over runs.
        runStart = np.repeat(np.cumsum(widths) - widths, widths)
        xs = np.repeat(self._x0, widths) + (np.arange(ys.size) - runStart)
        return ys, xs

    def computeCentroid(self) -> Point2D:
        ys, xs = self.indices()
        if ys.size == 0:
            raise ValueError("the centroid of an empty SpanSet is undefined")
        return Point2D(xs.mean(), ys.mean())

    def asArray(self, bbox: Box2I | None = None) -> np.ndarray:
        """A boolean array over ``bbox`` (default: the SpanSet's box), True on its pixels."""
        bbox = self.getBBox() if bbox is None else bbox
        array = np.zeros((bbox.getHeight(), bbox.getWidth()), dtype=bool)
        ys, xs = self.clippedTo(bbox).indices()
        array[ys - bbox.getMinY(), xs - bbox.getMinX()] = True
        return array

    def contains(self, other: Point2I | SpanSet) -> bool:
        if isinstance(other, SpanSet):
            return other.intersect(self).getArea() == other.getArea()
        x, y = other
        row = self._y == y
        return bool(np.any((self._x0[row] <= x) & (self._x1[row] >= x)))

    def containsPixels(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Vectorised :meth:`contains` for arrays of integer pixel positions."""
        x = np.asarray(x)
        y = np.asarray(y)
        if self.isEmpty():
            return np.zeros(x.shape, dtype=bool)
        mask = self.asArray()
        box = self.getBBox()
        inside = (x >= box.getMinX()) & (x <= box.getMaxX()) & (y >= box.getMinY()) & (y <= box.getMaxY())
        result = np.zeros(x.shape, dtype=bool)
        result[inside] = mask[y[inside] - box.getMinY(), x[inside] - box.getMinX()]
        return result

    def _combine(self, other: SpanSet, op) -> SpanSet:
        box = self.getBBox().expandedTo(other.getBBox())
        if box.isEmpty():
            return SpanSet()
        return SpanSet.fromMask(op(self.asArray(box), other.asArray(box)), xy0=box.getMin())

    def intersect(self, other: SpanSet | Mask, bitmask: int | None = None) -> SpanSet:
        """Pixels in both sets; ``other`` may be a mask, with the pixels where ``bitmask`` is set."""
        if isinstance(other, Image):
            other = SpanSet.fromMask(other, bitmask)
        return self._combine(other, np.logical_and)

    def intersectNot(self, other: SpanSet | Mask, bitmask: int | None = None) -> SpanSet:
        """Pixels in this set and not in ``other``."""
        if isinstance(other, Image):
            other = SpanSet.fromMask(other, bitmask)
        return self._combine(other, lambda a, b: a & ~b)

    def union(self, other: SpanSet) -> SpanSet:
        return SpanSet.fromArrays(
            np.concatenate([self._y, other._y]),
            np.concatenate([self._x0, other._x0]),
            np.concatenate([self._x1, other._x1]),
        )

    def clippedTo(self, bbox: Box2I) -> SpanSet:
        if bbox.isEmpty():
            return SpanSet()
        keep = (self._y >= bbox.getMinY()) & (self._y <= bbox.getMaxY())
        x0 = np.maximum(self._x0[keep], bbox.getMinX())
        x1 = np.minimum(self._x1[keep], bbox.getMaxX())
        return SpanSet.fromArrays(self._y[keep], x0, x1)

    def shiftedBy(self, dx: int | Extent2I, dy: int | None = None) -> SpanSet:
        if isinstance(dx, Extent2I):
            dy = dx.y
            dx = dx.x
        result = SpanSet.__new__(SpanSet)
        result._y, result._x0, result._x1 = self._y + dy, self._x0 + dx, self._x1 + dx
        return result

    def dilated(self, radius: int) -> SpanSet:
        """Grow by a disc of ``radius`` pixels."""
        if radius <= 0 or self.isEmpty():
            return self
        box = self.getBBox().dilatedBy(radius)
        yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
        disc = xx**2 + yy**2 <= radius**2
        grown = ndimage.binary_dilation(self.asArray(box), structure=disc)
        return SpanSet.fromMask(grown, xy0=box.getMin())

    def eroded(self, radius: int) -> SpanSet:
        """Shrink by a disc of ``radius`` pixels."""
        if radius <= 0 or self.isEmpty():
            return self
        box = self.getBBox().dilatedBy(1)
        yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
        disc = xx**2 + yy**2 <= radius**2
        shrunk = ndimage.binary_erosion(self.asArray(box), structure=disc)
        return SpanSet.fromMask(shrunk, xy0=box.getMin())

    def setMask(self, mask: Mask, bitmask: int) -> None:
        """OR ``bitmask`` into ``mask`` on this set's pixels that lie inside the mask."""
        ys, xs = self.clippedTo(mask.getBBox()).indices()
        xy0 = mask.getXY0()
        mask.array[ys - xy0.y, xs - xy0.x] |= np.int32(bitmask)

    def clearMask(self, mask: Mask, bitmask: int) -> None:
        ys, xs = self.clippedTo(mask.getBBox()).indices()
        xy0 = mask.getXY0()
        mask.array[ys - xy0.y, xs - xy0.x] &= ~np.int32(bitmask)

    def flatten(self, array: np.ndarray, xy0: Point2I | None = None) -> np.ndarray:
        """Values of ``array`` (``[..., y, x]``, origin ``xy0``) at this set's pixels, in span order.

        Raises
        ------
        ValueError
            If a pixel of the set lies outside the array.
        """
        array = np.asarray(array)
        xy0 = Point2I(0, 0) if xy0 is None else Point2I(*xy0)
        box = Box2I(xy0, Extent2I(array.shape[-1], array.shape[-2]))
        if not box.contains(self.getBBox()):
            raise ValueError(f"SpanSet box {self.getBBox()} is not inside the array box {box}")
        ys, xs = self.indices()
        return array[..., ys - xy0.y, xs - xy0.x]

    def unflatten(self, values: np.ndarray, bbox: Box2I | None = None, fill: float = 0) -> np.ndarray:
        """An array over ``bbox`` (default: this set's box) holding ``values`` (``[..., n]``) on this set."""
        values = np.asarray(values)
        if values.shape[-1] != self.getArea():
            raise ValueError(f"{values.shape[-1]} values for a SpanSet of {self.getArea()} pixels")
        bbox = self.getBBox() if bbox is None else bbox
        if not bbox.contains(self.getBBox()):
            raise ValueError(f"SpanSet box {self.getBBox()} is not inside {bbox}")
        out = np.full(values.shape[:-1] + (bbox.getHeight(), bbox.getWidth()), fill, dtype=values.dtype)
        ys, xs = self.indices()
        out[..., ys - bbox.getMinY(), xs - bbox.getMinX()] = values
        return out

    def copy(self) -> SpanSet:
        result = SpanSet.__new__(SpanSet)
        result._y, result._x0, result._x1 = self._y.copy(), self._x0.copy(), self._x1.copy()
        return result

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SpanSet):
            return NotImplemented
        return (
            np.array_equal(self._y, other._y)
            and np.array_equal(self._x0, other._x0)
            and np.array_equal(self._x1, other._x1)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"SpanSet(nSpans={len(self)}, area={self.getArea()}, bbox={self.getBBox()})"
