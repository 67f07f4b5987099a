"""Exposures, single- and multi-band, named as in ``lsst.afw.image`` and ``lsst.afw.multiband``.

A :class:`MultibandExposure` stores its planes as cubes ``(band, y, x)``; indexing one band
(``mExp["r"]``) or a box (``mExp[:, bbox]``) returns views sharing those cubes, so a
deblender can cut stamps without copying.

What an exposure says about itself travels with it, as in afw: each band's PSF and
photometric calibration (:class:`~.photoCalib.PhotoCalib`, ``mExp["r"].getPhotoCalib()``), and
the WCS its bands share (:class:`~.skyWcs.SkyWcs`, ``mExp.getWcs()``, ``mExp["r"].getWcs()``). An
exposure without a WCS may still know its pixel scale (:meth:`MultibandExposure.getPixelScale`, a
FITS file's ``PIXSCALE``).

The planes of a :class:`MultibandExposure`, :class:`~.multiband.MultibandImage` and
:class:`~.multiband.MultibandMask`, are in :mod:`.multiband`; they import from here too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from os import PathLike

import numpy as np

from .geom import Angle, Box2I, Point2D, Point2I
from .image import Image, Mask, MaskedImage
from .multiband import MultibandImage, MultibandMask, _bandIndices, _splitKey
from .photoCalib import PhotoCalib
from .psf import GridPsf, ImagePsf, Psf
from .skyWcs import SkyWcs

__all__ = ["FilterLabel", "Exposure", "MultibandImage", "MultibandMask", "MultibandExposure"]


@dataclass(frozen=True)
class FilterLabel:
    """The band of an exposure (``exposure.getFilter().bandLabel``)."""

    band: str | None = None
    physical: str | None = None

    @property
    def bandLabel(self) -> str | None:
        return self.band

    @property
    def physicalLabel(self) -> str | None:
        return self.physical

    def hasBandLabel(self) -> bool:
        return self.band is not None


class Exposure:
    """A masked image with its PSF, band and photometric calibration.

    Parameters
    ----------
    maskedImage
        The pixels, or a :class:`Box2I` for an empty exposure.
    psf
        The PSF model (may be ``None``).
    band
        The band label (``"r"``).
    photoCalib
        The photometric calibration of the pixels (may be ``None``).
    wcs
        The world coordinate system (may be ``None``).
    pixelScale
        The pixel scale of an exposure without a WCS (may be ``None``; see :meth:`getPixelScale`).
    """

    def __init__(self, maskedImage: MaskedImage | Box2I, psf: Psf | None = None, band: str | None = None,
                 photoCalib: PhotoCalib | None = None, wcs: SkyWcs | None = None, pixelScale: Angle | None = None):
        if isinstance(maskedImage, Box2I):
            maskedImage = MaskedImage(maskedImage)
        self._maskedImage = maskedImage
        self._psf = psf
        self._filter = FilterLabel(band=band)
        self._photoCalib = photoCalib
        self._wcs = wcs
        self._pixelScale = pixelScale

    def getMaskedImage(self) -> MaskedImage:
        return self._maskedImage

    def setMaskedImage(self, maskedImage: MaskedImage) -> None:
        self._maskedImage = maskedImage

    def getImage(self) -> Image:
        return self._maskedImage.image

    def getMask(self) -> Mask:
        return self._maskedImage.mask

    def getVariance(self) -> Image:
        return self._maskedImage.variance

    image = property(getImage)
    mask = property(getMask)
    variance = property(getVariance)
    maskedImage = property(getMaskedImage)

    def getPsf(self) -> Psf | None:
        return self._psf

    def setPsf(self, psf: Psf | None) -> None:
        self._psf = psf

    def hasPsf(self) -> bool:
        return self._psf is not None

    def getPhotoCalib(self) -> PhotoCalib | None:
        """The photometric calibration (nJy per pixel unit), or ``None`` when the exposure has none."""
        return self._photoCalib

    def setPhotoCalib(self, photoCalib: PhotoCalib | None) -> None:
        self._photoCalib = photoCalib

    photoCalib = property(getPhotoCalib, setPhotoCalib)

    def getWcs(self) -> SkyWcs | None:
        return self._wcs

    def setWcs(self, wcs: SkyWcs | None) -> None:
        self._wcs = wcs

    def hasWcs(self) -> bool:
        return self._wcs is not None

    wcs = property(getWcs, setWcs)

    def getPixelScale(self) -> Angle | None:
        """The WCS's pixel scale at the centre of the image, else the pixel scale given without a WCS,
        else ``None`` (a convenience of this package; afw asks the WCS)."""
        return _pixelScale(self._wcs, self._pixelScale, self.getBBox())

    def setPixelScale(self, pixelScale: Angle | None) -> None:
        """The pixel scale of an exposure without a WCS (a FITS file's ``PIXSCALE``)."""
        self._pixelScale = pixelScale

    def getFilter(self) -> FilterLabel:
        return self._filter

    def setFilter(self, filterLabel: FilterLabel) -> None:
        self._filter = filterLabel

    def getBBox(self) -> Box2I:
        return self._maskedImage.getBBox()

    def getXY0(self) -> Point2I:
        return self._maskedImage.getXY0()

    def getWidth(self) -> int:
        return self._maskedImage.getWidth()

    def getHeight(self) -> int:
        return self._maskedImage.getHeight()

    def getDimensions(self):
        return self._maskedImage.getDimensions()

    def subset(self, bbox: Box2I) -> Exposure:
        return Exposure(self._maskedImage.subset(bbox), psf=self._psf, band=self._filter.band,
                        photoCalib=self._photoCalib, wcs=self._wcs, pixelScale=self._pixelScale)

    def __getitem__(self, bbox: Box2I) -> Exposure:
        return self.subset(bbox)

    def clone(self) -> Exposure:
        psf = None if self._psf is None else self._psf.clone()
        return Exposure(self._maskedImage.clone(), psf=psf, band=self._filter.band, photoCalib=self._photoCalib,
                        wcs=self._wcs, pixelScale=self._pixelScale)

    @classmethod
    def readFits(cls, path: str | PathLike, band: str | None = None, magZero: float | None = None) -> Exposure:
        """Read a single-band LSST-style exposure file (``IMAGE``/``MASK``/``VARIANCE`` HDUs).

        The calibration comes from the header (``BUNIT = 'nJy'`` or ``MAGZERO``) or from ``magZero``.
        """
        from ..io.exposureFits import readExposureFits

        return readExposureFits(path, band=band, magZero=magZero)

    def writeFits(self, path: str | PathLike) -> None:
        """Write a single-band LSST-style exposure file."""
        from ..io.exposureFits import writeExposureFits

        writeExposureFits(self, path)

    def __repr__(self) -> str:
        return f"Exposure(band={self._filter.band!r}, bbox={self.getBBox()})"


def _pixelScale(wcs: SkyWcs | None, pixelScale: Angle | None, bbox: Box2I) -> Angle | None:
    if wcs is None:
        return pixelScale
    centre = Point2D((bbox.getMinX() + bbox.getMaxX()) / 2.0, (bbox.getMinY() + bbox.getMaxY()) / 2.0)
    return wcs.getPixelScale(centre)


class MultibandExposure:
    """Exposures of one patch of sky in several bands, on a common pixel grid.

    Parameters
    ----------
    bands
        Band labels in the order of the cubes' first axis.
    image, mask, variance
        Cubes of the planes.
    psfs
        One PSF per band, or ``None``.
    photoCalibs
        One photometric calibration per band (``None`` for a band without), or ``None``.
    wcs
        The WCS of the common pixel grid, or ``None``.
    pixelScale
        The pixel scale of an exposure without a WCS, or ``None``.

    Examples
    --------
    >>> import numpy as np
    >>> bands = ["g", "r"]
    >>> image = np.ones((2, 20, 30), np.float32)
    >>> mExp = MultibandExposure.fromArrays(bands, image, np.zeros((2, 20, 30), np.int32), image.copy())
    >>> mExp["r"].getBBox().getDimensions(), mExp[:, Box2I(Point2I(5, 5), Point2I(9, 9))].image.array.shape
    (Extent2I(x=30, y=20), (2, 5, 5))
    """

    def __init__(
        self,
        bands: Sequence[str],
        image: MultibandImage,
        mask: MultibandMask,
        variance: MultibandImage,
        psfs: Sequence[Psf | None] | None = None,
        photoCalibs: Sequence[PhotoCalib | None] | None = None,
        wcs: SkyWcs | None = None,
        pixelScale: Angle | None = None,
    ):
        bands = tuple(bands)
        for name, plane in (("image", image), ("mask", mask), ("variance", variance)):
            if plane.bands != bands:
                raise ValueError(f"{name} bands {plane.bands} differ from {bands}")
        if not (image.getBBox() == mask.getBBox() == variance.getBBox()):
            raise ValueError(
                f"image, mask and variance boxes differ: {image.getBBox()}, {mask.getBBox()}, {variance.getBBox()}"
            )
        if psfs is not None and len(psfs) != len(bands):
            raise ValueError(f"{len(psfs)} PSFs for {len(bands)} bands")
        if photoCalibs is not None and len(photoCalibs) != len(bands):
            raise ValueError(f"{len(photoCalibs)} photometric calibrations for {len(bands)} bands")
        self._bands = bands
        self._image, self._mask, self._variance = image, mask, variance
        self._psfs: list[Psf | None] = list(psfs) if psfs is not None else [None] * len(bands)
        self._photoCalibs: list[PhotoCalib | None] = (list(photoCalibs) if photoCalibs is not None
                                                      else [None] * len(bands))
        self._wcs = wcs
        self._pixelScale = pixelScale

    @classmethod
    def fromArrays(
        cls,
        bands: Sequence[str],
        image: np.ndarray,
        mask: np.ndarray | None = None,
        variance: np.ndarray | None = None,
        bbox: Box2I | None = None,
        psfs: Sequence[Psf | np.ndarray] | np.ndarray | None = None,
        maskPlanes: Mapping[str, int] | None = None,
        photoCalibs: Sequence[PhotoCalib | None] | None = None,
        wcs: SkyWcs | None = None,
        pixelScale: Angle | None = None,
    ) -> MultibandExposure:
        """Make a multiband exposure from ``(band, y, x)`` arrays.

        ``bbox`` gives the parent position (only its minimum is used; its size must match);
        missing masks are zero and missing variances are zero. ``psfs`` may be a
        ``(band, py, px)`` cube of kernels; ``photoCalibs`` gives each band's calibration, ``wcs`` the
        WCS (or ``pixelScale`` the pixel scale of an exposure without one).
        """
        image = np.asarray(image)
        if image.ndim != 3:
            raise ValueError(f"image must be a (band, y, x) array, got shape {image.shape}")
        mask = np.zeros(image.shape, np.int32) if mask is None else np.asarray(mask)
        variance = np.zeros_like(image) if variance is None else np.asarray(variance)
        for name, plane in (("mask", mask), ("variance", variance)):
            if plane.shape != image.shape:
                raise ValueError(f"{name} shape {plane.shape} differs from image shape {image.shape}")
        xy0 = Point2I(0, 0)
        if bbox is not None:
            if (bbox.getHeight(), bbox.getWidth()) != image.shape[1:]:
                raise ValueError(f"bbox {bbox} does not match the image shape {image.shape[1:]}")
            xy0 = bbox.getMin()
        bandPsfs = None if psfs is None else [p if isinstance(p, (ImagePsf, GridPsf)) else ImagePsf(p) for p in psfs]
        return cls(
            bands,
            MultibandImage(bands, image, xy0),
            MultibandMask(bands, mask, xy0, planes=maskPlanes),
            MultibandImage(bands, variance, xy0),
            bandPsfs,
            photoCalibs,
            wcs,
            pixelScale,
        )

    @classmethod
    def fromExposures(cls, bands: Sequence[str], exposures: Sequence[Exposure]) -> MultibandExposure:
        """Stack single-band exposures that share a bounding box and mask layout (with their PSFs and
        calibrations, and the first band's WCS)."""
        bands = tuple(bands)
        if len(bands) != len(exposures):
            raise ValueError(f"{len(bands)} bands but {len(exposures)} exposures")
        boxes = [exposure.getBBox() for exposure in exposures]
        for band, box in zip(bands, boxes):
            if box != boxes[0]:
                raise ValueError(f"exposure for band {band!r} has bbox {box}, band {bands[0]!r} has {boxes[0]}")
        planes = exposures[0].getMask().getMaskPlaneDict()
        for band, exposure in zip(bands, exposures):
            if exposure.getMask().getMaskPlaneDict() != planes:
                raise ValueError(f"exposure for band {band!r} has a different mask plane layout")
        xy0 = boxes[0].getMin()
        return cls(
            bands,
            MultibandImage(bands, np.stack([e.getImage().array for e in exposures]), xy0),
            MultibandMask(bands, np.stack([e.getMask().array for e in exposures]), xy0, planes=planes),
            MultibandImage(bands, np.stack([e.getVariance().array for e in exposures]), xy0),
            [e.getPsf() for e in exposures],
            [e.getPhotoCalib() for e in exposures],
            exposures[0].getWcs(),
            None if exposures[0].getWcs() else exposures[0].getPixelScale(),
        )

    @property
    def bands(self) -> tuple[str, ...]:
        return self._bands

    @property
    def filters(self) -> tuple[str, ...]:
        return self._bands

    @property
    def image(self) -> MultibandImage:
        return self._image

    @property
    def mask(self) -> MultibandMask:
        return self._mask

    @property
    def variance(self) -> MultibandImage:
        return self._variance

    @property
    def singles(self) -> list[Exposure]:
        return [self[band] for band in self._bands]

    def getBBox(self) -> Box2I:
        return self._image.getBBox()

    def getXY0(self) -> Point2I:
        return self._image.getXY0()

    def getPsfs(self) -> list[Psf | None]:
        return list(self._psfs)

    def setAllPsfs(self, psfs: Sequence[Psf]) -> None:
        if len(psfs) != len(self._bands):
            raise ValueError(f"{len(psfs)} PSFs for {len(self._bands)} bands")
        self._psfs = list(psfs)

    def getPhotoCalibs(self) -> list[PhotoCalib | None]:
        """Each band's photometric calibration (``None`` for a band without); ``mExp[band].getPhotoCalib()``
        in afw."""
        return list(self._photoCalibs)

    def setAllPhotoCalibs(self, photoCalibs: Sequence[PhotoCalib | None]) -> None:
        if len(photoCalibs) != len(self._bands):
            raise ValueError(f"{len(photoCalibs)} photometric calibrations for {len(self._bands)} bands")
        self._photoCalibs = list(photoCalibs)

    def getWcs(self) -> SkyWcs | None:
        """The WCS the bands share (``mExp[band].getWcs()`` in afw)."""
        return self._wcs

    def setWcs(self, wcs: SkyWcs | None) -> None:
        self._wcs = wcs

    def getPixelScale(self) -> Angle | None:
        """The WCS's pixel scale at the centre of the image, else the pixel scale given without a WCS
        (``PIXSCALE``), else ``None`` (a convenience of this package)."""
        return _pixelScale(self._wcs, self._pixelScale, self.getBBox())

    def setPixelScale(self, pixelScale: Angle | None) -> None:
        self._pixelScale = pixelScale

    def _requirePsfs(self) -> list[Psf]:
        missing = [band for band, psf in zip(self._bands, self._psfs) if psf is None]
        if missing:
            raise ValueError(f"no PSF for band(s) {missing}")
        return self._psfs  # type: ignore[return-value]

    def computePsfKernelImage(self, position: Point2D | None = None) -> MultibandImage:
        """Per-band PSF kernels centred on pixel ``(0, 0)``, as a cube."""
        psfs = self._requirePsfs()
        images = [psf.computeKernelImage(position) for psf in psfs]
        return self._psfCube(images)

    def computePsfImage(self, position: Point2D | None = None) -> MultibandImage:
        """Per-band PSF images centred on ``position`` in parent coordinates, as a cube."""
        psfs = self._requirePsfs()
        return self._psfCube([psf.computeImage(position) for psf in psfs])

    def _psfCube(self, images: Sequence[Image]) -> MultibandImage:
        shapes = {image.array.shape for image in images}
        if len(shapes) != 1:
            raise ValueError(f"PSF images have different sizes across bands: {sorted(shapes)}")
        return MultibandImage(self._bands, np.stack([image.array for image in images]), images[0].getXY0())

    def __getitem__(self, key):
        bandKey, bbox = _splitKey(key)
        indices, single = _bandIndices(self._bands, bandKey)
        if single:
            index = indices[0]
            band = self._bands[index]
            maskedImage = MaskedImage(
                self._image[band], self._mask[band], self._variance[band]
            )
            exposure = Exposure(maskedImage, psf=self._psfs[index], band=band, photoCalib=self._photoCalibs[index],
                                wcs=self._wcs, pixelScale=self._pixelScale)
            return exposure if bbox is None else exposure.subset(bbox)
        bands = tuple(self._bands[i] for i in indices)
        selector = (list(bands), bbox) if bbox is not None else list(bands)
        return MultibandExposure(
            bands,
            self._image[selector],
            self._mask[selector],
            self._variance[selector],
            [self._psfs[i] for i in indices],
            [self._photoCalibs[i] for i in indices],
            self._wcs,
            self._pixelScale,
        )

    def clone(self) -> MultibandExposure:
        return MultibandExposure(
            self._bands,
            self._image.clone(),
            self._mask.clone(),
            self._variance.clone(),
            [None if psf is None else psf.clone() for psf in self._psfs],
            list(self._photoCalibs),
            self._wcs,
            self._pixelScale,
        )

    def __len__(self) -> int:
        return len(self._bands)

    @classmethod
    def readFits(
        cls, path: str | PathLike | Sequence[str | PathLike], bands: Sequence[str] | None = None,
        magZero: float | Sequence[float] | None = None,
    ) -> MultibandExposure:
        """Read the package's multiband exposure FITS format (see ``doc/file-formats``).

        ``path`` may also be a list of single-band LSST-style exposure files, one per band
        (bands from ``bands`` or from each file's ``BAND`` header keyword). The calibration
        comes from the files' headers (``BUNIT = 'nJy'`` or ``MAGZERO``), or from ``magZero``
        (one AB zero point, or one per band) for files that state none.
        """
        from ..io.exposureFits import readExposureFiles, readMultibandExposureFits

        if isinstance(path, (str, PathLike)):
            return readMultibandExposureFits(path, magZero=magZero)
        return readExposureFiles(path, bands=bands, magZero=magZero)

    def writeFits(self, path: str | PathLike) -> None:
        """Write the package's multiband exposure FITS format."""
        from ..io.exposureFits import writeMultibandExposureFits

        writeMultibandExposureFits(self, path)

    def __repr__(self) -> str:
        return f"MultibandExposure(bands={self._bands}, bbox={self.getBBox()})"
