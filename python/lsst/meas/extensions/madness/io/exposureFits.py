"""Multiband and single-band exposure files.

Multiband format (one file; ``doc/file-formats.md``):

====================  ==========================================================
HDU                   content
====================  ==========================================================
primary               no data; ``BANDS = 'u,g,r,i,z,y'``; the calibration:
                      ``BUNIT = 'nJy'`` or ``MAGZERO = '27.1,28.0,...'``
``IMAGE``             float32 cube (band, y, x); ``LTV1 = -x0``, ``LTV2 = -y0``;
                      optional FITS WCS (else ``PIXSCALE`` in the primary header)
``MASK``              int32 cube; ``MP_<PLANE> = bit`` for every plane; LTV1/2
``VARIANCE``          float32 cube; LTV1/2
``PSF``               float32 cube (band, py, px): odd sides, centred, unit sum;
                      or (band, node, py, px) for a PSF that varies over the
                      exposure, with ``PSF_POSITIONS``
``PSF_POSITIONS``     binary table ``x``, ``y`` (float64, parent pixels): the
                      nodes of the grid, shared by all bands
====================  ==========================================================

Single-band LSST-style files have ``IMAGE``, ``MASK`` and ``VARIANCE`` image extensions
(and optionally ``PSF``, a 2-d kernel, or a (node, py, px) grid with ``PSF_POSITIONS``), as
``lsst.afw`` writes them.

Calibration. Every exposure states how its pixels relate to physical flux: ``BUNIT = 'nJy'``
for calibrated images (LSST's coadds), or ``MAGZERO``, the AB magnitude of one image unit
(one value, or one per band in ``BANDS`` order, comma-separated). A file that states
neither is refused unless the reader is given ``magZero``; the result carries a
:class:`~lsst.meas.extensions.madness.afw.photoCalib.PhotoCalib` per band.

World coordinates. A FITS WCS in the ``IMAGE`` header (of the stored array: ``CRPIX`` counts
from 1 at pixel ``[0, 0]``) becomes the exposure's
:class:`~lsst.meas.extensions.madness.afw.skyWcs.SkyWcs` in parent coordinates (shifted by
``xy0``); without one, ``PIXSCALE`` (arcsec) in the primary header gives the pixel scale.
"""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike

import numpy as np
from astropy.io import fits

from ..afw.exposure import Exposure, MultibandExposure
from ..afw.geom import Angle, Box2I, Extent2I, Point2I, arcseconds
from ..afw.image import MAX_MASK_PLANES, ImageF, Mask, MaskedImage
from ..afw.photoCalib import PhotoCalib, makePhotoCalibFromCalibZeroPoint
from ..afw.psf import GridPsf, ImagePsf
from ..afw.skyWcs import SkyWcs
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
#: Zero points (AB mag) that agree within this state the same calibration (31.4 for nJy is 6.6e-5 off).
MAGZERO_TOLERANCE = 1e-3
#: The BUNIT of calibrated images.
NJY_UNIT = "nJy"


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
    shapes = {psf.kernel.shape for psf in mExposure.getPsfs() if psf is not None}
    if len(shapes) != 1:
        raise ValueError(f"cannot write {path}: PSF kernels differ in size between bands {sorted(shapes)}")
    psfHdus = _psfHdus(mExposure.getPsfs(), path)
    xy0 = _xy0Header(mExposure.getXY0())
    primary = fits.PrimaryHDU()
    primary.header["BANDS"] = (",".join(mExposure.bands), "band of each plane of the cubes")
    _writeCalibration(primary.header, mExposure.getPhotoCalibs(), mExposure.bands, path)
    wcsCards = _writeWcs(primary.header, mExposure.getWcs(), mExposure.getPixelScale(), mExposure.getXY0())
    hdus = [
        primary,
        _imageHdu(mExposure.image.array.astype(np.float32, copy=False), "IMAGE", {**xy0, **wcsCards}),
        _imageHdu(
            mExposure.mask.array.astype(np.int32, copy=False),
            "MASK",
            {**xy0, **_maskHeader(mExposure.mask.getMaskPlaneDict())},
        ),
        _imageHdu(mExposure.variance.array.astype(np.float32, copy=False), "VARIANCE", xy0),
        *psfHdus,
    ]
    with atomicPath(path) as temporary:
        fits.HDUList(hdus).writeto(temporary, overwrite=True)


def _magnitudeOfOneUnit(photoCalib: PhotoCalib) -> float:
    return float(photoCalib.instFluxToMagnitude(1.0))


def _writeCalibration(header: fits.Header, photoCalibs: Sequence[PhotoCalib | None], bands: Sequence[str],
                      path) -> None:
    """``BUNIT = 'nJy'`` when every band is in nJy, else ``MAGZERO`` per band; refuses bands without one."""
    missing = [band for band, calib in zip(bands, photoCalibs) if calib is None]
    if missing:
        raise ValueError(f"cannot write {path}: no photometric calibration for band(s) {missing} (readers need "
                         "BUNIT = 'nJy' or MAGZERO; give the exposure one with setPhotoCalib/setAllPhotoCalibs)")
    calibs = [calib for calib in photoCalibs if calib is not None]  # all of them
    if all(calib.getCalibrationMean() == 1.0 for calib in calibs):
        header["BUNIT"] = (NJY_UNIT, "pixel values are calibrated fluxes")
    else:
        # 15 significant digits: the calibration to 1e-13, without float noise ('26.5', not '26.500000000000004').
        # No comment: the value may need CONTINUE cards. The AB magnitude of one pixel unit, per band.
        header["MAGZERO"] = ",".join(f"{_magnitudeOfOneUnit(c):.15g}" for c in calibs)


def _psfHdus(psfs, path, single: bool = False) -> list:
    """``PSF`` (one kernel per band, or a grid per band) and, for a grid, ``PSF_POSITIONS``.

    Bands of constant PSF beside gridded ones are written as grids of one kernel repeated.
    """
    grids = [psf for psf in psfs if isinstance(psf, GridPsf)]
    if not grids:
        cube = np.stack([psf.kernel for psf in psfs]).astype(np.float32)
        return [_imageHdu(cube[0] if single else cube, "PSF", {})]
    positions = grids[0].getPositions()
    if any(not np.array_equal(grid.getPositions(), positions) for grid in grids[1:]):
        raise ValueError(f"cannot write {path}: the bands' PSF grids have different node positions")
    kernels = np.stack([psf.getKernels() if isinstance(psf, GridPsf) else np.repeat(psf.kernel[None], len(positions), 0)
                        for psf in psfs]).astype(np.float32)
    table = fits.BinTableHDU.from_columns(
        [fits.Column("x", "D", array=positions[:, 0]), fits.Column("y", "D", array=positions[:, 1])],
        name="PSF_POSITIONS")
    table.header["COMMENT"] = "Nodes of the PSF grid, parent pixel coordinates; the kernels are PSF[band, node]"
    return [_imageHdu(kernels[0] if single else kernels, "PSF", {}), table]


def _readPsfs(reader: FitsReader, bands: Sequence[str] | None) -> list[ImagePsf | GridPsf]:
    """Each band's PSF from ``PSF`` (one kernel, or a grid with ``PSF_POSITIONS``), every kernel checked;
    ``bands`` None for a single-band file."""
    single = bands is None
    labels = ["the"] if bands is None else [f"band {band!r}" for band in bands]
    constant = 2 if single else 3
    grid = reader.hdu("PSF").header.get("NAXIS") == constant + 1
    data = reader.imageData("PSF", "f", constant + 1 if grid else constant)
    data = data[None] if single else data
    if bands is not None and data.shape[0] != len(bands):
        raise reader.error(f"{data.shape[0]} planes but BANDS lists {len(bands)} bands {tuple(bands)}", "PSF")
    if not grid:
        for label, kernel in zip(labels, data):
            _checkPsf(reader, "PSF", kernel, label)
        return [ImagePsf(kernel) for kernel in data]
    table = reader.table("PSF_POSITIONS", {"x": "f", "y": "f"})
    positions = np.stack([reader.column("PSF_POSITIONS", table, "x", np.float64),
                          reader.column("PSF_POSITIONS", table, "y", np.float64)], axis=1)
    if len(positions) != data.shape[1]:
        raise reader.error(f"{len(positions)} node positions for {data.shape[1]} kernels per band in PSF",
                           "PSF_POSITIONS")
    psfs: list[ImagePsf | GridPsf] = []
    for label, kernels in zip(labels, data):
        for node, kernel in enumerate(kernels):
            _checkPsf(reader, "PSF", kernel, f"{label} node {node}")
        try:
            psfs.append(GridPsf(kernels, positions))
        except ValueError as error:
            raise reader.error(str(error), "PSF_POSITIONS") from None
    return psfs


def _writeWcs(primaryHeader: fits.Header, wcs: SkyWcs | None, pixelScale: Angle | None, xy0: Point2I) -> dict:
    """The ``IMAGE`` header's WCS cards (in the stored array's frame), or ``PIXSCALE`` in the primary header."""
    if wcs is None:
        if pixelScale is not None:
            primaryHeader["PIXSCALE"] = (pixelScale.asArcseconds(), "pixel scale, arcsec (no WCS)")
        return {}
    return wcs.copyAtShiftedPixelOrigin((-xy0.x, -xy0.y)).getFitsMetadata()


def _readWcs(reader: FitsReader, xy0: Point2I) -> tuple[SkyWcs | None, Angle | None]:
    """The ``IMAGE`` header's WCS in parent coordinates, or else the primary header's ``PIXSCALE``."""
    header = reader.hdu("IMAGE").header
    if "CTYPE1" in header or "CTYPE2" in header:
        try:
            wcs = SkyWcs({key: header[key] for key in header if key not in ("COMMENT", "HISTORY", "")})
        except (ValueError, KeyError, MemoryError) as error:
            raise reader.error(f"the WCS cannot be read: {' '.join(str(error).split())}", "IMAGE") from None
        return wcs.copyAtShiftedPixelOrigin((xy0.x, xy0.y)), None
    if "PIXSCALE" in reader.primaryHeader:
        value = reader.primaryHeader["PIXSCALE"]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (np.isfinite(value) and value > 0):
            raise reader.error(f"PIXSCALE = {value!r} is not a positive number of arcseconds", "PRIMARY")
        return None, Angle(float(value), arcseconds)
    return None, None


def _parseMagZero(value, nBands: int, describe: str, fail) -> list[float]:
    """One zero point per band from a header value or an argument: one number for all bands, or one per band."""
    if isinstance(value, str):
        try:
            values = [float(v) for v in value.split(",")]
        except ValueError:
            raise fail(f"{describe} = {value!r} is not a comma-separated list of numbers") from None
    elif isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool):
        values = [float(value)]
    else:
        try:
            values = [float(v) for v in value]
        except (TypeError, ValueError):
            raise fail(f"{describe} = {value!r} is not a number or a list of numbers") from None
    if len(values) == 1:
        values = values * nBands
    if len(values) != nBands:
        raise fail(f"{describe} gives {len(values)} zero points for {nBands} band(s): give one, or one per band")
    if not all(np.isfinite(values)):
        raise fail(f"{describe} = {value!r} is not finite")
    return values


def _readCalibration(reader: FitsReader, headers: Sequence[tuple[str, fits.Header]], bands: Sequence[str],
                     magZero) -> list[PhotoCalib]:
    """Each band's calibration from ``BUNIT``/``MAGZERO`` in the first of ``headers`` that has one, or
    from ``magZero``; see the module docstring."""
    where, header = next(((name, h) for name, h in headers if "BUNIT" in h or "MAGZERO" in h), headers[0])
    fail = lambda reason: reader.error(reason, where)  # noqa: E731
    bunit = header.get("BUNIT")
    isNJy = bunit is not None and str(bunit).strip().lower() == NJY_UNIT.lower()
    stated = None
    if "MAGZERO" in header:
        stated = _parseMagZero(header["MAGZERO"], len(bands), "MAGZERO", fail)
        if isNJy:
            nJy = _magnitudeOfOneUnit(PhotoCalib(1.0))
            if any(abs(m - nJy) > MAGZERO_TOLERANCE for m in stated):
                raise fail(f"BUNIT = {bunit!r} but MAGZERO = {header['MAGZERO']!r}; an image in nJy has "
                           f"MAGZERO = {nJy:.5f} (or none)")
    elif isNJy:
        stated = [_magnitudeOfOneUnit(PhotoCalib(1.0))] * len(bands)
    if magZero is not None:
        given = _parseMagZero(magZero, len(bands), "magZero (--magzero)", fail)
        if stated is not None and any(abs(a - b) > MAGZERO_TOLERANCE for a, b in zip(stated, given)):
            states = f"BUNIT = {bunit!r}" if "MAGZERO" not in header else f"MAGZERO = {header['MAGZERO']!r}"
            raise fail(f"the header states its calibration ({states}) and magZero (--magzero) "
                       f"{list(given)} disagrees with it")
        if stated is None:
            return [_zeroPointCalib(m) for m in given]
    if stated is None:
        found = "" if bunit is None else f" (BUNIT = {bunit!r} is not {NJY_UNIT!r})"
        raise fail(f"no photometric calibration{found}: the header needs BUNIT = '{NJY_UNIT}' (calibrated images) "
                   "or MAGZERO (the AB magnitude of one image unit, one per band in BANDS order); or give the zero "
                   "point with magZero= (madness-run-task --magzero)")
    if isNJy:
        return [PhotoCalib(1.0) for _ in bands]
    return [_zeroPointCalib(m) for m in stated]


def _zeroPointCalib(magZero: float) -> PhotoCalib:
    """The calibration in which one image unit has AB magnitude ``magZero``."""
    return makePhotoCalibFromCalibZeroPoint(10.0 ** (0.4 * magZero))


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
        position = f"pixel (x={where[-1]}, y={where[-2]})"
        pixel = f"band {bands[where[0]]!r} {position}" if bands else position
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
                raise reader.error(f"{cube.shape[0]} planes but BANDS lists {len(bands)} bands {tuple(bands)}",
                                   extension)
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


def readMultibandExposureFits(path: str | PathLike,
                              magZero: float | Sequence[float] | None = None) -> MultibandExposure:
    """Read a multiband exposure file, checking everything it reads.

    Parameters
    ----------
    path
        The file.
    magZero
        AB magnitude of one image unit (one for all bands, or one per band) for a file whose
        header states no calibration; it must agree with the header's when that has one.

    Raises
    ------
    FitsFormatError
        Naming the file and extension: missing extension or BANDS keyword, wrong
        dimensions or pixel types, cubes whose shapes or xy0 disagree, a band count that
        does not match BANDS, unnamed or clashing mask bits, negative variance, a PSF
        that is not finite, odd-sized, centred and of unit sum, or no calibration (neither
        ``BUNIT = 'nJy'`` nor ``MAGZERO`` nor ``magZero``).
    """
    with FitsReader(path) as reader:
        bands = _readBands(reader)
        image, mask, variance, xy0, planes = _readPlanes(reader, 3, bands)
        photoCalibs = _readCalibration(reader, [("PRIMARY", reader.primaryHeader)], bands, magZero)
        wcs, pixelScale = _readWcs(reader, xy0)
        psfs = _readPsfs(reader, bands)
        bbox = Box2I(xy0, Extent2I(image.shape[2], image.shape[1]))
        return MultibandExposure.fromArrays(
            bands,
            image,
            mask,
            variance,
            bbox=bbox,
            psfs=psfs,
            maskPlanes=planes,
            photoCalibs=photoCalibs,
            wcs=wcs,
            pixelScale=pixelScale,
        )


def writeExposureFits(exposure: Exposure, path: str | PathLike) -> None:
    """Write a single-band LSST-style exposure (``IMAGE``, ``MASK``, ``VARIANCE``, optional ``PSF``).

    Raises
    ------
    ValueError
        If the exposure has no photometric calibration.
    """
    xy0 = _xy0Header(exposure.getXY0())
    primary = fits.PrimaryHDU()
    if exposure.getFilter().bandLabel is not None:
        primary.header["BAND"] = exposure.getFilter().bandLabel
    _writeCalibration(primary.header, [exposure.getPhotoCalib()], [exposure.getFilter().bandLabel or "?"], path)
    wcsCards = _writeWcs(primary.header, exposure.getWcs(), exposure.getPixelScale(), exposure.getXY0())
    hdus = [
        primary,
        _imageHdu(exposure.image.array.astype(np.float32, copy=False), "IMAGE", {**xy0, **wcsCards}),
        _imageHdu(exposure.mask.array.astype(np.int32, copy=False), "MASK",
                  {**xy0, **_maskHeader(exposure.mask.getMaskPlaneDict())}),
        _imageHdu(exposure.variance.array.astype(np.float32, copy=False), "VARIANCE", xy0),
    ]
    if exposure.getPsf() is not None:
        hdus.extend(_psfHdus([exposure.getPsf()], path, single=True))
    with atomicPath(path) as temporary:
        fits.HDUList(hdus).writeto(temporary, overwrite=True)


def readExposureFits(path: str | PathLike, band: str | None = None, magZero: float | None = None) -> Exposure:
    """Read a single-band LSST-style exposure file.

    The band is ``band`` if given, else the primary header's ``BAND`` (or ``FILTER``)
    keyword. The PSF comes from a ``PSF`` image extension when present (afw's own PSF
    persistence is not readable outside the stack: pass PSFs to :func:`readExposureFiles`).
    The calibration is ``BUNIT = 'nJy'`` or ``MAGZERO`` in the primary header, else in the
    ``IMAGE`` header (where afw writes ``BUNIT``), else ``magZero``.

    Raises
    ------
    FitsFormatError
        As :func:`readMultibandExposureFits`.
    """
    with FitsReader(path) as reader:
        image, mask, variance, xy0, planes = _readPlanes(reader, 2, None)
        headers = [("PRIMARY", reader.primaryHeader), ("IMAGE", reader.hdu("IMAGE").header)]
        (photoCalib,) = _readCalibration(reader, headers, ["?"], magZero)
        wcs, pixelScale = _readWcs(reader, xy0)
        psf = _readPsfs(reader, None)[0] if reader.has("PSF") else None
        if band is None:
            header = reader.primaryHeader
            band = header.get("BAND", header.get("FILTER"))
            band = None if band is None else str(band).strip()
        maskedImage = MaskedImage(
            ImageF(image, xy0=xy0),
            Mask(mask, xy0=xy0, planes=planes),
            ImageF(variance, xy0=xy0),
        )
        return Exposure(maskedImage, psf=psf, band=band, photoCalib=photoCalib, wcs=wcs, pixelScale=pixelScale)


def readExposureFiles(
    paths: Sequence[str | PathLike],
    bands: Sequence[str] | None = None,
    psfs: Sequence[ImagePsf | np.ndarray] | None = None,
    magZero: float | Sequence[float] | None = None,
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
    magZero
        AB magnitude of one image unit, for files that state no calibration: one for all
        files, or one per file.

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
    zeroPoints: list[float | None] = [None] * len(paths)
    if magZero is not None:
        values: list[float | None] = [float(m) for m in np.atleast_1d(magZero)]
        if len(values) not in (1, len(paths)):
            raise ValueError(f"{len(values)} zero points for {len(paths)} files: give one, or one per file")
        zeroPoints = values * len(paths) if len(values) == 1 else values
    exposures: list[Exposure] = []
    labels: list[str] = []
    for i, path in enumerate(paths):
        exposure = readExposureFits(path, band=None if bands is None else bands[i], magZero=zeroPoints[i])
        label = exposure.getFilter().bandLabel
        if label is None:
            raise FitsFormatError("no BAND or FILTER keyword in the primary header; pass bands=", path=path,
                                  extension="PRIMARY")
        if psfs is not None:
            psf = psfs[i]
            exposure.setPsf(psf if isinstance(psf, (ImagePsf, GridPsf)) else ImagePsf(psf))
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
        labels.append(label)
    if len(set(labels)) != len(labels):
        raise ValueError(f"the files {paths} repeat a band: {labels}")
    return MultibandExposure.fromExposures(labels, exposures)
