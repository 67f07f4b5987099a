"""Footprints and their pixels, named as in ``lsst.afw.detection``.

A footprint's pixels are a :class:`~lsst.meas.extensions.madness.afw.spans.SpanSet`
(``lsst.afw.geom``'s, re-exported here as the package has always offered it); a
:class:`HeavyFootprint` keeps pixel values in span order, row by row, left to right, as afw does.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .exposure import MultibandExposure, MultibandImage
from .geom import Box2I, Extent2I, Point2D, Point2I  # noqa: F401 - Extent2I: for the docstring examples
from .image import Image, MaskedImage
from .spans import SpanSet

__all__ = [
    "PeakRecord",
    "PeakCatalog",
    "Footprint",
    "HeavyFootprint",
    "makeHeavyFootprint",
    "MultibandFootprint",
]


@dataclass
class PeakRecord:
    """A local maximum inside a footprint: integer and sub-pixel position and height."""

    id: int
    ix: int
    iy: int
    fx: float
    fy: float
    peakValue: float = float("nan")
    extra: dict = field(default_factory=dict)

    def getId(self) -> int:
        return self.id

    def setId(self, value: int) -> None:
        self.id = int(value)

    def getIx(self) -> int:
        return self.ix

    def getIy(self) -> int:
        return self.iy

    def getFx(self) -> float:
        return self.fx

    def getFy(self) -> float:
        return self.fy

    def getI(self) -> Point2I:
        return Point2I(self.ix, self.iy)

    def getF(self) -> Point2D:
        return Point2D(self.fx, self.fy)

    def getCentroid(self, exact: bool = True) -> Point2D | Point2I:
        return self.getF() if exact else self.getI()

    def getPeakValue(self) -> float:
        return self.peakValue

    def setPeakValue(self, value: float) -> None:
        self.peakValue = float(value)

    def get(self, name: str):
        """A field by its afw column name (``"id"``, ``"i_x"``, ``"f_y"``, ``"peakValue"``) or an extra field."""
        names = {"id": self.id, "i_x": self.ix, "i_y": self.iy, "f_x": self.fx, "f_y": self.fy,
                 "peakValue": self.peakValue}
        if name in names:
            return names[name]
        return self.extra[name]

    def set(self, name: str, value) -> None:
        attributes = {"id": "id", "i_x": "ix", "i_y": "iy", "f_x": "fx", "f_y": "fy", "peakValue": "peakValue"}
        if name in attributes:
            setattr(self, attributes[name], value)
        else:
            self.extra[name] = value

    def __getitem__(self, name: str):
        return self.get(name)


class PeakCatalog(list):
    """The peaks of a footprint, in order (brightest first after :meth:`Footprint.sortPeaks`)."""

    def copy(self) -> PeakCatalog:
        return PeakCatalog(
            PeakRecord(p.id, p.ix, p.iy, p.fx, p.fy, p.peakValue, dict(p.extra)) for p in self
        )

    def __getitem__(self, key):
        if isinstance(key, str):
            return np.array([peak.get(key) for peak in self])
        result = super().__getitem__(key)
        return PeakCatalog(result) if isinstance(key, slice) else result


class Footprint:
    """A detected region of pixels and the peaks inside it.

    Parameters
    ----------
    spans
        The footprint's pixels.
    peaks
        Its peaks (copied into a :class:`PeakCatalog`).
    region
        The bounding box of the image it was detected on (optional).

    Examples
    --------
    >>> foot = Footprint(SpanSet(Box2I(Point2I(0, 0), Extent2I(5, 5))))
    >>> peak = foot.addPeak(2.0, 2.0, 10.0)
    >>> foot.getArea(), foot.getCentroid(), peak.getId()
    (25, Point2D(x=2.0, y=2.0), 1)
    """

    def __init__(
        self,
        spans: SpanSet | None = None,
        peaks: Iterable[PeakRecord] | None = None,
        region: Box2I | None = None,
    ):
        self._spans = SpanSet() if spans is None else spans
        self._peaks = PeakCatalog(peaks or [])
        self._region = region

    @property
    def spans(self) -> SpanSet:
        return self._spans

    @spans.setter
    def spans(self, spans: SpanSet) -> None:
        self.setSpans(spans)

    def getSpans(self) -> SpanSet:
        return self._spans

    def setSpans(self, spans: SpanSet) -> None:
        self._spans = spans

    @property
    def peaks(self) -> PeakCatalog:
        return self._peaks

    def getPeaks(self) -> PeakCatalog:
        return self._peaks

    def addPeak(self, fx: float, fy: float, peakValue: float, id: int | None = None) -> PeakRecord:
        """Append a peak at sub-pixel ``(fx, fy)``; its integer position is the containing pixel."""
        if id is None:
            id = max((p.id for p in self._peaks), default=0) + 1
        point = Point2D(fx, fy).toPoint2I()
        peak = PeakRecord(int(id), point.x, point.y, float(fx), float(fy), float(peakValue))
        self._peaks.append(peak)
        return peak

    def sortPeaks(self) -> None:
        """Order peaks by decreasing peak value, as afw does after detection."""
        self._peaks.sort(key=lambda p: -p.peakValue if np.isfinite(p.peakValue) else np.inf)

    def getRegion(self) -> Box2I | None:
        return self._region

    def setRegion(self, region: Box2I) -> None:
        self._region = region

    def getBBox(self) -> Box2I:
        return self._spans.getBBox()

    def getArea(self) -> int:
        return self._spans.getArea()

    def getCentroid(self) -> Point2D:
        return self._spans.computeCentroid()

    def contains(self, point: Point2I) -> bool:
        return self._spans.contains(point)

    def isHeavy(self) -> bool:
        return False

    def clipTo(self, bbox: Box2I) -> None:
        """Clip the spans to ``bbox`` and drop peaks that fall outside it."""
        self._spans = self._spans.clippedTo(bbox)
        self._peaks = PeakCatalog(p for p in self._peaks if bbox.contains(p.getI()))

    def dilate(self, radius: int) -> None:
        self._spans = self._spans.dilated(radius)

    def shift(self, dx: int, dy: int) -> None:
        self._spans = self._spans.shiftedBy(dx, dy)
        for peak in self._peaks:
            peak.ix += dx
            peak.iy += dy
            peak.fx += dx
            peak.fy += dy

    def copy(self) -> Footprint:
        return Footprint(self._spans.copy(), self._peaks.copy(), self._region)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Footprint):
            return NotImplemented
        return self._spans == other._spans and list(self._peaks) == list(other._peaks)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(area={self.getArea()}, nPeaks={len(self._peaks)}, bbox={self.getBBox()})"


class HeavyFootprint(Footprint):
    """A footprint that carries its pixel values (image, mask, variance) in span order.

    Make one with :func:`makeHeavyFootprint`, or directly from value arrays.

    Parameters
    ----------
    footprint
        The spans and peaks.
    imageArray, maskArray, varianceArray
        1-d arrays with one value per footprint pixel, in span order; mask and variance
        default to zeros.
    """

    def __init__(
        self,
        footprint: Footprint,
        imageArray: np.ndarray,
        maskArray: np.ndarray | None = None,
        varianceArray: np.ndarray | None = None,
    ):
        super().__init__(footprint.getSpans(), footprint.getPeaks(), footprint.getRegion())
        area = footprint.getArea()
        imageArray = np.asarray(imageArray, dtype=np.float32)
        maskArray = np.zeros(area, np.int32) if maskArray is None else np.asarray(maskArray, dtype=np.int32)
        varianceArray = (
            np.zeros(area, np.float32) if varianceArray is None else np.asarray(varianceArray, dtype=np.float32)
        )
        for name, values in (("image", imageArray), ("mask", maskArray), ("variance", varianceArray)):
            if values.shape != (area,):
                raise ValueError(f"{name} values have shape {values.shape}; the footprint has {area} pixels")
        self._imageArray, self._maskArray, self._varianceArray = imageArray, maskArray, varianceArray

    def isHeavy(self) -> bool:
        return True

    def getImageArray(self) -> np.ndarray:
        return self._imageArray

    def getMaskArray(self) -> np.ndarray:
        return self._maskArray

    def getVarianceArray(self) -> np.ndarray:
        return self._varianceArray

    def _target(self, image: Image | MaskedImage) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Pixel indices of the target array and which footprint pixels they are."""
        box = image.getBBox()
        ys, xs = self._spans.indices()
        inside = (xs >= box.getMinX()) & (xs <= box.getMaxX()) & (ys >= box.getMinY()) & (ys <= box.getMaxY())
        xy0 = image.getXY0()
        return ys[inside] - xy0.y, xs[inside] - xy0.x, inside

    def insert(self, image: Image | MaskedImage) -> None:
        """Write the stored pixels into ``image`` (only where the footprint overlaps it)."""
        iy, ix, inside = self._target(image)
        if isinstance(image, MaskedImage):
            image.image.array[iy, ix] = self._imageArray[inside]
            image.mask.array[iy, ix] = self._maskArray[inside]
            image.variance.array[iy, ix] = self._varianceArray[inside]
        else:
            image.array[iy, ix] = self._imageArray[inside]

    def addTo(self, image: Image) -> None:
        iy, ix, inside = self._target(image)
        np.add.at(image.array, (iy, ix), self._imageArray[inside])

    def subtractFrom(self, image: Image) -> None:
        iy, ix, inside = self._target(image)
        np.subtract.at(image.array, (iy, ix), self._imageArray[inside])

    def extractImage(self, fill: float = np.nan, bbox: Box2I | None = None, imageType: type = np.float32) -> Image:
        """An image over ``bbox`` (default: the footprint's box), ``fill`` outside the footprint."""
        bbox = self.getBBox() if bbox is None else bbox
        image = Image(np.full((bbox.getHeight(), bbox.getWidth()), fill, dtype=imageType), xy0=bbox.getMin())
        iy, ix, inside = self._target(image)
        image.array[iy, ix] = self._imageArray[inside]
        return image

    def copy(self) -> HeavyFootprint:
        return HeavyFootprint(
            Footprint(self._spans.copy(), self._peaks.copy(), self._region),
            self._imageArray.copy(),
            self._maskArray.copy(),
            self._varianceArray.copy(),
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, HeavyFootprint):
            return NotImplemented
        return (
            super().__eq__(other)
            and np.array_equal(self._imageArray, other._imageArray, equal_nan=True)
            and np.array_equal(self._maskArray, other._maskArray)
            and np.array_equal(self._varianceArray, other._varianceArray, equal_nan=True)
        )

    __hash__ = None


def makeHeavyFootprint(footprint: Footprint, maskedImage: MaskedImage) -> HeavyFootprint:
    """Copy the pixels of ``maskedImage`` under ``footprint`` into a :class:`HeavyFootprint`.

    Raises
    ------
    ValueError
        If the footprint extends outside the masked image.
    """
    spans = footprint.getSpans()
    xy0 = maskedImage.getXY0()
    if not maskedImage.getBBox().contains(spans.getBBox()):
        raise ValueError(f"footprint box {spans.getBBox()} is not inside the image box {maskedImage.getBBox()}")
    return HeavyFootprint(
        footprint,
        spans.flatten(maskedImage.image.array, xy0),
        spans.flatten(maskedImage.mask.array, xy0),
        spans.flatten(maskedImage.variance.array, xy0),
    )


class MultibandFootprint:
    """Heavy footprints of one source in several bands, sharing spans and peaks.

    Parameters
    ----------
    bands
        Band labels.
    singles
        One :class:`HeavyFootprint` per band, all with the same spans.

    Examples
    --------
    >>> image = np.zeros((2, 6, 6), np.float32); image[:, 2:4, 2:4] = [[[1.0]], [[2.0]]]
    >>> mFoot = MultibandFootprint.fromArrays(["g", "r"], image, thresh=0.5)
    >>> mFoot.getArea(), float(mFoot["r"].getImageArray().sum())
    (4, 8.0)
    """

    def __init__(self, bands: Sequence[str], singles: Sequence[HeavyFootprint]):
        bands = tuple(bands)
        if len(bands) != len(singles):
            raise ValueError(f"{len(bands)} bands but {len(singles)} heavy footprints")
        for band, single in zip(bands, singles):
            if single.getSpans() != singles[0].getSpans():
                raise ValueError(f"heavy footprint for band {band!r} has different spans from band {bands[0]!r}")
        self._bands = bands
        self._singles = list(singles)

    @classmethod
    def fromArrays(
        cls,
        bands: Sequence[str],
        image: np.ndarray,
        mask: np.ndarray | None = None,
        variance: np.ndarray | None = None,
        footprint: Footprint | None = None,
        xy0: Point2I | None = None,
        thresh: float = 0,
        peaks: Iterable[PeakRecord] | None = None,
    ) -> MultibandFootprint:
        """Make one from ``(band, y, x)`` arrays with origin ``xy0``.

        Without ``footprint``, its spans are the pixels where any band exceeds ``thresh``.
        """
        image = np.asarray(image, dtype=np.float32)
        xy0 = Point2I(0, 0) if xy0 is None else Point2I(*xy0)
        if footprint is None:
            footprint = Footprint(SpanSet.fromMask(np.any(image > thresh, axis=0), xy0=xy0), peaks)
        spans = footprint.getSpans()
        imageValues = spans.flatten(image, xy0)
        maskValues = None if mask is None else spans.flatten(np.asarray(mask), xy0)
        varianceValues = None if variance is None else spans.flatten(np.asarray(variance), xy0)
        singles = [
            HeavyFootprint(
                footprint,
                imageValues[b],
                None if maskValues is None else maskValues[b],
                None if varianceValues is None else varianceValues[b],
            )
            for b in range(len(bands))
        ]
        return cls(bands, singles)

    @classmethod
    def fromImages(
        cls,
        bands: Sequence[str],
        image: MultibandImage | MultibandExposure,
        footprint: Footprint | None = None,
        thresh: float = 0,
    ) -> MultibandFootprint:
        """Make one from a multiband image or exposure (mask and variance taken from an exposure)."""
        if isinstance(image, MultibandExposure):
            return cls.fromArrays(
                bands,
                image.image.array,
                image.mask.array,
                image.variance.array,
                footprint=footprint,
                xy0=image.getXY0(),
                thresh=thresh,
            )
        return cls.fromArrays(bands, image.array, footprint=footprint, xy0=image.getXY0(), thresh=thresh)

    @property
    def bands(self) -> tuple[str, ...]:
        return self._bands

    @property
    def singles(self) -> list[HeavyFootprint]:
        return list(self._singles)

    def __getitem__(self, band: str) -> HeavyFootprint:
        if band not in self._bands:
            raise KeyError(f"band {band!r} is not one of {self._bands}")
        return self._singles[self._bands.index(band)]

    def __len__(self) -> int:
        return len(self._bands)

    def isHeavy(self) -> bool:
        return True

    def getSpans(self) -> SpanSet:
        return self._singles[0].getSpans()

    @property
    def spans(self) -> SpanSet:
        return self.getSpans()

    def getPeaks(self) -> PeakCatalog:
        return self._singles[0].getPeaks()

    def getBBox(self) -> Box2I:
        return self.getSpans().getBBox()

    def getArea(self) -> int:
        return self.getSpans().getArea()

    def getCentroid(self) -> Point2D:
        return self.getSpans().computeCentroid()

    def getRegion(self) -> Box2I | None:
        return self.getFootprint().getRegion()

    def getFootprint(self) -> Footprint:
        """The plain (light) footprint: spans and peaks."""
        single = self._singles[0]
        return Footprint(single.getSpans(), single.getPeaks(), single.getRegion())

    def getImageArray(self) -> np.ndarray:
        """``(band, n)`` image values in span order."""
        return np.stack([single.getImageArray() for single in self._singles])

    def getMaskArray(self) -> np.ndarray:
        return np.stack([single.getMaskArray() for single in self._singles])

    def getVarianceArray(self) -> np.ndarray:
        return np.stack([single.getVarianceArray() for single in self._singles])

    def getImage(self, bbox: Box2I | None = None, fill: float = 0) -> MultibandImage:
        """The model as a multiband image over ``bbox`` (default: the footprint's box)."""
        bbox = self.getBBox() if bbox is None else bbox
        cube = np.stack([single.extractImage(fill=fill, bbox=bbox).array for single in self._singles])
        return MultibandImage(self._bands, cube, xy0=bbox.getMin())

    def insert(self, target: MultibandExposure | MultibandImage) -> None:
        """Write the stored pixels into a multiband exposure or image, band by band."""
        for band, single in zip(self._bands, self._singles):
            if isinstance(target, MultibandExposure):
                single.insert(target[band].getMaskedImage())
            else:
                single.insert(target[band])

    def copy(self) -> MultibandFootprint:
        return MultibandFootprint(self._bands, [single.copy() for single in self._singles])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MultibandFootprint):
            return NotImplemented
        return self._bands == other._bands and all(a == b for a, b in zip(self._singles, other._singles))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"MultibandFootprint(bands={self._bands}, area={self.getArea()}, bbox={self.getBBox()})"
