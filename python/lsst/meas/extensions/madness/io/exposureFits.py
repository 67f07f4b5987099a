"""Multiband and single-band exposure files.

Multiband format (one file; ``doc/file-formats.md``):

====================  ==========================================================
HDU                   content
====================  ==========================================================
primary               no data; ``BANDS = 'u,g,r,i,z,y'``
``IMAGE``             float32 cube (band, y, x); ``LTV1 = -x0``, ``LTV2 = -y0``
``MASK``              int32 cube; ``MP_<PLANE> = bit`` for every plane; LTV1/2
``VARIANCE``          float32 cube; LTV1/2
``PSF``               float32 cube (band, py, px): odd sides, centred, unit sum
====================  ==========================================================

Single-band LSST-style files have ``IMAGE``, ``MASK`` and ``VARIANCE`` image extensions
(and optionally ``PSF``, a 2-d kernel), as ``lsst.afw`` writes them.
"""

from __future__ import annotations

from os import PathLike
from typing import Sequence

import numpy as np
from astropy.io import fits

from ..afw.exposure import Exposure, MultibandExposure
from ..afw.geom import Box2I, Extent2I, Point2I
from ..afw.image import MAX_MASK_PLANES, ImageF, Mask, MaskedImage
from ..afw.psf import ImagePsf
from .atomic import atomicPath
from .errors import FitsFormatError
from .fitsFile import FitsReader

__all__ = [
    "readMultibandExposureFits",
    "writeMultibandExposureFits",
    "readExposureFits",
    "writeExposureFits",
    "readExposureFiles",
]

PLANES = ("IMAGE", "MASK", "VARIANCE")
# Tolerances for a PSF kernel stored as float32.
PSF_SUM_TOLERANCE = 1e-3
PSF_CENTRE_TOLERANCE = 0.5


def _xy0Header(xy0: Point2I) -> dict[str, int]:
    return {"LTV1": -xy0.x, "LTV2": -xy0.y}


def _maskHeader(planes: dict[str, int]) -> dict[str, int]:
    return {f"MP_{name}": bit for name, bit in sorted(planes.items(), key=lambda kv: kv[1])}


def _imageHdu(data: np.ndarray, name: str, header: dict) -> fits.ImageHDU:
    hdu = fits.ImageHDU(data=data, name=name)
    for key, value in header.items():
        # Long plane names (over 8 characters) need HIERARCH cards.
        hdu.header[f"HIERARCH {key}" if len(key) > 8 else key] = value
    return hdu


def writeMultibandExposureFits(mExposure: MultibandExposure, path: str | PathLike) -> None:
    """Write a :class:`MultibandExposure` in the multiband format (overwrites ``path``).

    Raises
    ------
    ValueError
        If a band has no PSF or the PSF kernels differ in size between bands.
    """
    missing = [band for band, psf in zip(mExposure.bands, mExposure.getPsfs()) if psf is None]
    if missing:
        raise ValueError(f"cannot write {path}: no PSF for band(s) {missing}")
    shapes = {psf.kernel.shape for psf in mExposure.getPsfs()}
    if len(shapes) != 1:
        raise ValueError(f"cannot write {path}: PSF kernels differ in size between bands {sorted(shapes)}")
    xy0 = _xy0Header(mExposure.getXY0())
    primary = fits.PrimaryHDU()
    primary.header["BANDS"] = (",".join(mExposure.bands), "band of each plane of the cubes")
    hdus = [
        primary,
        _imageHdu(mExposure.image.array.astype(np.float32, copy=False), "IMAGE", xy0),
        _imageHdu(
            mExposure.mask.array.astype(np.int32, copy=False),
            "MASK",
            {**xy0, **_maskHeader(mExposure.mask.getMaskPlaneDict())},
        ),
        _imageHdu(mExposure.variance.array.astype(np.float32, copy=False), "VARIANCE", xy0),
        _imageHdu(np.stack([psf.kernel for psf in mExposure.getPsfs()]).astype(np.float32), "PSF", {}),
    ]
    with atomicPath(path) as temporary:
        fits.HDUList(hdus).writeto(temporary, overwrite=True)


def _readBands(reader: FitsReader) -> tuple[str, ...]:
    header = reader.primaryHeader
    if "BANDS" not in header:
        raise reader.error("primary header has no BANDS keyword (e.g. BANDS = 'u,g,r,i,z,y')", "PRIMARY")
    bands = tuple(b.strip() for b in str(header["BANDS"]).split(","))
    if not bands or any(not b for b in bands):
        raise reader.error(f"BANDS = {header['BANDS']!r} has an empty band label", "PRIMARY")
    if len(set(bands)) != len(bands):
        raise reader.error(f"BANDS = {header['BANDS']!r} repeats a band", "PRIMARY")
    return bands


def _readXY0(reader: FitsReader, extension: str) -> Point2I:
    header = reader.hdu(extension).header
    values = []
    for key in ("LTV1", "LTV2"):
        value = header.get(key, 0)
        if not float(value).is_integer():
            raise reader.error(f"{key} = {value} is not an integer pixel offset", extension)
        values.append(-int(value))
    return Point2I(*values)


def _readMaskPlanes(reader: FitsReader, extension: str, mask: np.ndarray) -> dict[str, int]:
    header = reader.hdu(extension).header
    planes: dict[str, int] = {}
    for key, value in header.items():
        if not key.startswith("MP_"):
            continue
        name = key[3:]
        if not isinstance(value, int) or not 0 <= value < MAX_MASK_PLANES:
            raise reader.error(f"{key} = {value!r} is not a bit index in 0..{MAX_MASK_PLANES - 1}", extension)
        if value in planes.values():
            other = next(n for n, b in planes.items() if b == value)
            raise reader.error(f"{key} and MP_{other} both use bit {value}", extension)
        planes[name] = value
    if not planes:
        raise reader.error("no MP_<PLANE> keywords: the mask planes are unnamed", extension)
    named = np.int64(sum(1 << bit for bit in planes.values()))
    stray = np.bitwise_or.reduce(mask.astype(np.int64).ravel() & ~named) if mask.size else 0
    if stray:
        bit = int(np.log2(stray & -stray))
        raise reader.error(f"pixels use mask bit {bit}, which no MP_ keyword names", extension)
    return planes


def _checkVariance(reader: FitsReader, extension: str, variance: np.ndarray, bands: Sequence[str] | None) -> None:
    negative = np.argwhere(variance < 0)
    if negative.size:
        where = negative[0]
        pixel = f"band {bands[where[0]]!r} pixel (x={where[-1]}, y={where[-2]})" if bands else f"pixel (x={where[-1]}, y={where[-2]})"
        raise reader.error(f"negative variance at {pixel} (0-based array index)", extension)


def _checkPsf(reader: FitsReader, extension: str, kernel: np.ndarray, label: str) -> None:
    py, px = kernel.shape
    if py % 2 == 0 or px % 2 == 0:
        raise reader.error(f"{label} kernel is {py}x{px}; sides must be odd so it has a central pixel", extension)
    if not np.all(np.isfinite(kernel)):
        raise reader.error(f"{label} kernel has non-finite pixels", extension)
    total = float(kernel.sum(dtype=np.float64))
    if abs(total - 1.0) > PSF_SUM_TOLERANCE:
        raise reader.error(f"{label} kernel sums to {total:.6g}, not 1", extension)
    y, x = np.mgrid[:py, :px]
    cx = float((kernel * x).sum() / total) - px // 2
    cy = float((kernel * y).sum() / total) - py // 2
    if max(abs(cx), abs(cy)) > PSF_CENTRE_TOLERANCE:
        raise reader.error(
            f"{label} kernel centroid is offset by ({cx:+.2f}, {cy:+.2f}) px from the central pixel", extension
        )


def _readPlanes(
    reader: FitsReader, ndim: int, bands: Sequence[str] | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, Point2I, dict[str, int]]:
    """Read and cross-check IMAGE, MASK and VARIANCE (cubes when ``ndim`` is 3).

    Returns the image, the int32 mask, the variance, xy0 and the mask plane dictionary.
    """
    image = reader.imageData("IMAGE", "f", ndim)
    mask = reader.imageData("MASK", "i", ndim)
    variance = reader.imageData("VARIANCE", "f", ndim)
    if bands is not None:
        for extension, cube in (("IMAGE", image), ("MASK", mask), ("VARIANCE", variance)):
            if cube.shape[0] != len(bands):
                raise reader.error(f"{cube.shape[0]} planes but BANDS lists {len(bands)} bands {tuple(bands)}", extension)
    for extension, plane in (("MASK", mask), ("VARIANCE", variance)):
        if plane.shape != image.shape:
            raise reader.error(f"shape {plane.shape} differs from the IMAGE shape {image.shape}", extension)
    xy0 = _readXY0(reader, "IMAGE")
    for extension in ("MASK", "VARIANCE"):
        other = _readXY0(reader, extension)
        if other != xy0:
            raise reader.error(f"LTV1/LTV2 give xy0 {tuple(other)}, IMAGE gives {tuple(xy0)}", extension)
    if mask.dtype != np.int32:
        if mask.size and (mask.min() < np.iinfo(np.int32).min or mask.max() > np.iinfo(np.int32).max):
            raise reader.error(f"mask values do not fit in int32 (dtype {mask.dtype})", "MASK")
        mask = mask.astype(np.int32)
    planes = _readMaskPlanes(reader, "MASK", mask)
    _checkVariance(reader, "VARIANCE", variance, bands)
    return image.astype(np.float32, copy=False), mask, variance.astype(np.float32, copy=False), xy0, planes


def readMultibandExposureFits(path: str | PathLike) -> MultibandExposure:
    """Read a multiband exposure file, checking everything it reads.

    Raises
    ------
    FitsFormatError
        Naming the file and extension: missing extension or BANDS keyword, wrong
        dimensions or pixel types, cubes whose shapes or xy0 disagree, a band count that
        does not match BANDS, unnamed or clashing mask bits, negative variance, or a PSF
        that is not finite, odd-sized, centred and of unit sum.
    """
    with FitsReader(path) as reader:
        bands = _readBands(reader)
        image, mask, variance, xy0, planes = _readPlanes(reader, 3, bands)
        psf = reader.imageData("PSF", "f", 3)
        if psf.shape[0] != len(bands):
            raise reader.error(f"{psf.shape[0]} planes but BANDS lists {len(bands)} bands {bands}", "PSF")
        for band, kernel in zip(bands, psf):
            _checkPsf(reader, "PSF", kernel, f"band {band!r}")
        bbox = Box2I(xy0, Extent2I(image.shape[2], image.shape[1]))
        return MultibandExposure.fromArrays(
            bands,
            image,
            mask,
            variance,
            bbox=bbox,
            psfs=[ImagePsf(k) for k in psf],
            maskPlanes=planes,
        )


def writeExposureFits(exposure: Exposure, path: str | PathLike) -> None:
    """Write a single-band LSST-style exposure (``IMAGE``, ``MASK``, ``VARIANCE``, optional ``PSF``)."""
    xy0 = _xy0Header(exposure.getXY0())
    primary = fits.PrimaryHDU()
    if exposure.getFilter().bandLabel is not None:
        primary.header["BAND"] = exposure.getFilter().bandLabel
    hdus = [
        primary,
        _imageHdu(exposure.image.array.astype(np.float32, copy=False), "IMAGE", xy0),
        _imageHdu(exposure.mask.array.astype(np.int32, copy=False), "MASK", {**xy0, **_maskHeader(exposure.mask.getMaskPlaneDict())}),
        _imageHdu(exposure.variance.array.astype(np.float32, copy=False), "VARIANCE", xy0),
    ]
    if exposure.getPsf() is not None:
        hdus.append(_imageHdu(exposure.getPsf().kernel.astype(np.float32), "PSF", {}))
    with atomicPath(path) as temporary:
        fits.HDUList(hdus).writeto(temporary, overwrite=True)


def readExposureFits(path: str | PathLike, band: str | None = None) -> Exposure:
    """Read a single-band LSST-style exposure file.

    The band is ``band`` if given, else the primary header's ``BAND`` (or ``FILTER``)
    keyword. The PSF comes from a ``PSF`` image extension when present (afw's own PSF
    persistence is not readable outside the stack: pass PSFs to :func:`readExposureFiles`).
    """
    with FitsReader(path) as reader:
        image, mask, variance, xy0, planes = _readPlanes(reader, 2, None)
        psf = None
        if reader.has("PSF"):
            kernel = reader.imageData("PSF", "f", 2)
            _checkPsf(reader, "PSF", kernel, "the")
            psf = ImagePsf(kernel)
        if band is None:
            header = reader.primaryHeader
            band = header.get("BAND", header.get("FILTER"))
            band = None if band is None else str(band).strip()
        maskedImage = MaskedImage(
            ImageF(image, xy0=xy0),
            Mask(mask, xy0=xy0, planes=planes),
            ImageF(variance, xy0=xy0),
        )
        return Exposure(maskedImage, psf=psf, band=band)


def readExposureFiles(
    paths: Sequence[str | PathLike],
    bands: Sequence[str] | None = None,
    psfs: Sequence[ImagePsf | np.ndarray] | None = None,
) -> MultibandExposure:
    """Read one single-band exposure file per band into a :class:`MultibandExposure`.

    Parameters
    ----------
    paths
        One file per band.
    bands
        Band labels in the order of ``paths``; read from each file's header when omitted.
    psfs
        PSF kernels per band, overriding (or supplying) the files' ``PSF`` extensions.

    Raises
    ------
    FitsFormatError
        If a file is malformed, its band is unknown, or the files' boxes or mask layouts
        disagree (naming the offending file).
    """
    paths = [str(p) for p in paths]
    if bands is not None and len(bands) != len(paths):
        raise ValueError(f"{len(bands)} bands for {len(paths)} files")
    if psfs is not None and len(psfs) != len(paths):
        raise ValueError(f"{len(psfs)} PSFs for {len(paths)} files")
    exposures = []
    for i, path in enumerate(paths):
        exposure = readExposureFits(path, band=None if bands is None else bands[i])
        if exposure.getFilter().bandLabel is None:
            raise FitsFormatError("no BAND or FILTER keyword in the primary header; pass bands=", path=path, extension="PRIMARY")
        if psfs is not None:
            psf = psfs[i]
            exposure.setPsf(psf if isinstance(psf, ImagePsf) else ImagePsf(psf))
        if exposures:
            first = exposures[0]
            if exposure.getBBox() != first.getBBox():
                raise FitsFormatError(
                    f"bounding box {exposure.getBBox()} differs from {paths[0]}'s {first.getBBox()}",
                    path=path,
                    extension="IMAGE",
                )
            if exposure.getMask().getMaskPlaneDict() != first.getMask().getMaskPlaneDict():
                raise FitsFormatError(f"mask planes differ from {paths[0]}'s", path=path, extension="MASK")
        exposures.append(exposure)
    labels = [e.getFilter().bandLabel for e in exposures]
    if len(set(labels)) != len(labels):
        raise ValueError(f"the files {paths} repeat a band: {labels}")
    return MultibandExposure.fromExposures(labels, exposures)
