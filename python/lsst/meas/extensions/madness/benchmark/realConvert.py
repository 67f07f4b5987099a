r"""Step 1 of ``madness-bench real`` (:mod:`.real`): a ``.npz`` blend file as the package's inputs.

The file is read and checked (:func:`readBlendNpz`), its background noise estimated from the
pixels outside every detection (:func:`estimateBackgroundNoise`), its sources gathered into one
parent footprint with one peak each (:func:`makeBlendParent`), and the whole written as the
package's exposure and parent-catalogue FITS files (:func:`convertBlend`).
"""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..afw import Footprint, MultibandExposure, SpanSet
from ..afw.geom import Angle, arcseconds
from ..afw.photoCalib import makePhotoCalibFromCalibZeroPoint
from ..afw.table import SourceCatalog
from ..detect import TRUTH_INDEX_FIELD, detectParents, makeDetectionImage

__all__ = [
    "BLEND_KEYS",
    "BackgroundNoise",
    "ConvertedBlend",
    "RealBlend",
    "RealBlendError",
    "convertBlend",
    "estimateBackgroundNoise",
    "makeBlendParent",
    "readBlendNpz",
]

#: The keys a blend file must have (``filters``, the band names, is optional when the bands are given).
BLEND_KEYS: tuple[str, ...] = ("images", "psfs", "catalog")

#: :math:`1/\Phi^{-1}(3/4)`: the median absolute deviation of a Gaussian times this is its σ.
_MAD_TO_SIGMA = 1.482602218505602


class RealBlendError(ValueError):
    """A blend file that cannot be used; the message names the file and what is wrong with it."""


@dataclass(frozen=True)
class RealBlend:
    """A blend read from a ``.npz`` file (:func:`readBlendNpz`).

    Parameters
    ----------
    path
        The file.
    bands
        Band names, in the order of the cubes' first axis.
    images
        ``(band, y, x)`` pixel values (float32).
    psfs
        ``(band, py, px)`` PSF kernels (float64), unit sum, odd sides.
    positions
        ``(source, 2)`` catalogue positions ``(x, y)`` = (column, row), pixel centres at integers.
    catalogFlux
        The catalogue's ``flux`` column when it has one (its detection's flux, image units), else ``None``.
    """

    path: Path
    bands: tuple[str, ...]
    images: np.ndarray
    psfs: np.ndarray
    positions: np.ndarray
    catalogFlux: np.ndarray | None


def readBlendNpz(path: str | Path, bands: Sequence[str] | None = None) -> RealBlend:
    """Read and check a blend file (the :mod:`.real` docstring for its layout).

    Parameters
    ----------
    path
        The ``.npz`` file.
    bands
        Band names, for a file without ``filters`` (or to check against it).

    Raises
    ------
    RealBlendError
        The file is missing or not an ``.npz`` archive, lacks a key of :data:`BLEND_KEYS` (or
        ``filters`` without ``bands``), its catalogue lacks ``x`` or ``y``, or shapes, band
        counts or positions do not agree.
    """
    path = Path(path)
    if not path.is_file():
        raise RealBlendError(f"{path}: no such file")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise RealBlendError(f"{path}: not a NumPy .npz archive ({error})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise RealBlendError(f"{path}: a single array, not a NumPy .npz archive of {list(BLEND_KEYS)}")
    with archive:
        keys = set(archive.files)
        for key in BLEND_KEYS + (() if bands is not None else ("filters",)):
            if key not in keys:
                raise RealBlendError(f"{path}: no key {key!r} (the file has {sorted(keys)}; a blend file needs "
                                     f"{', '.join(BLEND_KEYS)} and filters, unless the bands are given)")
        try:
            images = np.asarray(archive["images"], dtype=np.float32)
            psfs = np.asarray(archive["psfs"], dtype=np.float64)
            catalog = archive["catalog"]
            filters = tuple(str(b) for b in archive["filters"]) if "filters" in keys else None
        except ValueError as error:  # object arrays need pickle, which a data file must not
            raise RealBlendError(f"{path}: {error}") from None
    if images.ndim != 3:
        raise RealBlendError(f"{path}: key 'images' has shape {images.shape}; expected (band, y, x)")
    if psfs.ndim != 3 or psfs.shape[0] != images.shape[0]:
        raise RealBlendError(f"{path}: key 'psfs' has shape {psfs.shape}; expected ({images.shape[0]}, py, px), "
                             "one kernel per band of 'images'")
    if bands is None:
        assert filters is not None  # a required key without bands
        bands = filters
    elif filters is not None and tuple(bands) != filters:
        raise RealBlendError(f"{path}: key 'filters' says bands {list(filters)}, not {list(bands)}")
    bands = tuple(bands)
    if len(bands) != images.shape[0]:
        raise RealBlendError(f"{path}: {len(bands)} band names {list(bands)} for {images.shape[0]} image planes")
    names = catalog.dtype.names or ()
    for field in ("x", "y"):
        if field not in names:
            raise RealBlendError(f"{path}: key 'catalog' has no field {field!r} (fields: {list(names)})")
    positions = np.stack([np.asarray(catalog["x"], float), np.asarray(catalog["y"], float)], axis=1).reshape(-1, 2)
    if len(positions) == 0:
        raise RealBlendError(f"{path}: key 'catalog' has no sources")
    height, width = images.shape[1:]
    outside = ~(np.isfinite(positions).all(axis=1) & (positions[:, 0] > -0.5) & (positions[:, 0] < width - 0.5)
                & (positions[:, 1] > -0.5) & (positions[:, 1] < height - 0.5))
    if outside.any():
        raise RealBlendError(f"{path}: catalogue positions {positions[outside].tolist()} are not on the "
                             f"{width}x{height} image")
    flux = np.asarray(catalog["flux"], float).reshape(-1) if "flux" in names else None
    return RealBlend(path, bands, images, psfs, positions, flux)


@dataclass(frozen=True)
class BackgroundNoise:
    """The background noise of each band (:func:`estimateBackgroundNoise`).

    Parameters
    ----------
    sigma
        ``(band,)`` noise standard deviation, image units.
    median
        ``(band,)`` median of the background pixels, image units (about 0 on a sky-subtracted image).
    background
        ``(y, x)`` booleans: the pixels the estimate used.
    iterations
        Detection passes made.
    """

    sigma: np.ndarray
    median: np.ndarray
    background: np.ndarray
    iterations: int


def _madSigma(images: np.ndarray, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    values = images[:, pixels]
    median = np.median(values, axis=1)
    return _MAD_TO_SIGMA * np.median(np.abs(values - median[:, None]), axis=1), median


def estimateBackgroundNoise(mExposure: MultibandExposure, *, nSigma: float = 3.0, grow: int = 3,
                            maxIterations: int = 10, tolerance: float = 0.01, minPixels: int = 50) -> BackgroundNoise:
    r"""Each band's noise from the pixels outside every source, by a robust (MAD) estimate.

    With :math:`B` the background pixels,

    .. math::

        \mu_b = \operatorname{median}_{p \in B} I_{bp}, \qquad
        \sigma_b = 1.4826 \, \operatorname{median}_{p \in B} |I_{bp} - \mu_b|

    (1.4826 makes the MAD of a Gaussian its standard deviation). :math:`B` starts as every pixel;
    then, until it stops changing, the exposure's variance is set to :math:`\sigma_b^2`, sources are
    detected on the band-combined S/N image
    (:func:`~lsst.meas.extensions.madness.detect.detectParents`: PSF matched filter, ``nSigma``,
    footprints grown by ``grow`` pixels) and :math:`B` becomes the pixels outside every footprint.
    The first pass's :math:`\sigma_b` is inflated by the sources, so it detects fewer of them; the
    passes stop when :math:`B`, or every :math:`\sigma_b` to within ``tolerance``, stops changing
    (a few steps).

    Parameters
    ----------
    mExposure
        The exposure; its variance plane is overwritten with :math:`\sigma_b^2` (and the ``DETECTED``
        mask plane set by the last detection).
    nSigma
        Detection threshold of the passes, in σ of the matched-filtered S/N image.
    grow
        Pixels by which detections are grown, so that sources' faint wings stay out of :math:`B`.
    maxIterations
        Most detection passes.
    tolerance
        Relative change of every :math:`\sigma_b` below which the passes stop.
    minPixels
        Fewest background pixels accepted.

    Raises
    ------
    ValueError
        If fewer than ``minPixels`` pixels are left outside the sources, or a band's noise is zero.
    """
    images = mExposure.image.array.astype(np.float64)
    finite = np.asarray(np.isfinite(images).all(axis=0))  # (y, x), an array to the type checker too
    background = finite
    sigma, median = _madSigma(images, background)
    iterations = 0
    for iterations in range(1, maxIterations + 1):  # noqa: B007 - the count is returned below
        if not np.all(sigma > 0):
            raise ValueError(f"the background's noise is zero in band(s) "
                             f"{[b for b, s in zip(mExposure.bands, sigma) if not s > 0]}")
        mExposure.variance.array[...] = (sigma**2)[:, None, None]
        sources = np.zeros_like(background)
        for parent in detectParents(mExposure, nSigma=nSigma, grow=grow):
            sources |= parent.getFootprint().getSpans().asArray(mExposure.getBBox())
        updated = finite & ~sources
        if updated.sum() < minPixels:
            raise ValueError(f"only {int(updated.sum())} pixels lie outside the sources (at least {minPixels} "
                             "are needed to estimate the noise)")
        updatedSigma, median = _madSigma(images, updated)
        # A few pixels at the detection threshold may flip back and forth forever; σ has settled by then.
        converged = np.array_equal(updated, background) or np.all(np.abs(updatedSigma / sigma - 1) < tolerance)
        background, sigma = updated, updatedSigma
        if converged:
            break
    mExposure.variance.array[...] = (sigma**2)[:, None, None]
    return BackgroundNoise(sigma, median, background, iterations)


def makeBlendParent(mExposure: MultibandExposure, positions: np.ndarray, *, nSigma: float = 3.0,
                    grow: int = 2) -> SourceCatalog:
    """A parent catalogue of one record: all catalogue sources in one footprint, one peak each.

    The footprint is the union of the parents that
    :func:`~lsst.meas.extensions.madness.detect.detectParents` finds at ``nSigma`` (grown by
    ``grow``) with the positions as truth peaks and that hold one of them: a position outside every
    detection gets a small disc of its own there, so every position is in the footprint; detections
    with no position (noise, or sources the catalogue does not list) are left out. The union need
    not be connected. Peak ``k`` (id ``k + 1``, extra field ``truth_index = k``) lies at
    ``positions[k]``, its value the band-combined S/N of its pixel; peaks keep the catalogue's
    order.

    Parameters
    ----------
    mExposure
        The exposure, with its variance (and its ``DETECTED`` mask plane then set by the detection).
    positions
        ``(source, 2)`` positions ``(x, y)`` in parent pixel coordinates.
    nSigma, grow
        Detection threshold and growth, as ``detectParents``'s.
    """
    positions = np.asarray(positions, dtype=np.float64)
    detected = detectParents(mExposure, peaks=positions, nSigma=nSigma, grow=grow)
    spans, significance = SpanSet(), -np.inf
    for record in detected:
        footprint = record.getFootprint()
        if any(peak.extra.get(TRUTH_INDEX_FIELD, -1) >= 0 for peak in footprint.getPeaks()):
            spans = spans.union(footprint.getSpans())
            significance = max(significance, record.get("detect_significance"))
    footprint = Footprint(spans, region=mExposure.getBBox())
    detection = makeDetectionImage(mExposure)[0]
    for k, (x, y) in enumerate(positions):
        peak = footprint.addPeak(x, y, 0.0, id=k + 1)
        peak.setPeakValue(float(detection.array[peak.getIy() - detection.getXY0().y,
                                                peak.getIx() - detection.getXY0().x]))
        peak.extra[TRUTH_INDEX_FIELD] = k
    catalog = SourceCatalog(detected.schema)
    parent = catalog.addNew()
    parent.setParent(0)
    parent.set("deblend_nPeaks", len(positions))
    parent.set("detect_significance", float(significance))
    parent.setFootprint(footprint)
    return catalog


@dataclass(frozen=True)
class ConvertedBlend:
    """A blend file written as the package's inputs (:func:`convertBlend`).

    Parameters
    ----------
    exposurePath, catalogPath
        The multiband exposure and the parent catalogue (one parent).
    blend
        The blend as read.
    noise
        The background noise estimate; the exposure's variance is ``noise.sigma**2``.
    magZero
        AB magnitude of one image unit, every band.
    pixelScale
        Arcseconds per pixel.
    footprintArea
        Pixels in the parent footprint.
    """

    exposurePath: Path
    catalogPath: Path
    blend: RealBlend
    noise: BackgroundNoise
    magZero: float
    pixelScale: float
    footprintArea: int


def convertBlend(npzPath: str | Path, outDir: str | Path, *, magZero: float = 27.0, pixelScale: float = 0.168,
                 bands: Sequence[str] | None = None, footprintNSigma: float = 3.0,
                 footprintGrow: int = 2) -> ConvertedBlend:
    """Write a blend file as ``outDir/exposure.fits`` and ``outDir/parents.fits`` (the :mod:`.real` docstring, step 1).

    Parameters
    ----------
    npzPath
        The blend file (:func:`readBlendNpz`).
    outDir
        Directory of the FITS files (made if missing).
    magZero
        AB magnitude of one image unit, the same in every band (``MAGZERO``; 27 for HSC coadds).
    pixelScale
        Arcseconds per pixel (``PIXSCALE``; 0.168 for HSC).
    bands
        Band names for a file without ``filters``.
    footprintNSigma, footprintGrow
        Threshold (σ of the matched-filtered S/N image) and growth (pixels) of the detections
        whose union is the parent footprint (:func:`makeBlendParent`).

    Raises
    ------
    RealBlendError
        A bad blend file, or one whose noise cannot be estimated.
    """
    blend = readBlendNpz(npzPath, bands)
    if not (np.isfinite(magZero) and np.isfinite(pixelScale) and pixelScale > 0):
        raise ValueError(f"magZero must be finite and pixelScale positive, got {magZero!r}, {pixelScale!r}")
    calibration = makePhotoCalibFromCalibZeroPoint(10.0 ** (0.4 * magZero))
    mExposure = MultibandExposure.fromArrays(
        blend.bands, blend.images, variance=np.ones_like(blend.images), psfs=blend.psfs,
        photoCalibs=[calibration] * len(blend.bands), pixelScale=Angle(pixelScale, arcseconds))
    try:
        noise = estimateBackgroundNoise(mExposure)
    except ValueError as error:
        raise RealBlendError(f"{blend.path}: {error}") from None
    catalog = makeBlendParent(mExposure, blend.positions, nSigma=footprintNSigma, grow=footprintGrow)
    outDir = Path(outDir)
    outDir.mkdir(parents=True, exist_ok=True)
    exposurePath, catalogPath = outDir / "exposure.fits", outDir / "parents.fits"
    mExposure.writeFits(exposurePath)
    catalog.writeFits(catalogPath, bbox=mExposure.getBBox())
    return ConvertedBlend(exposurePath, catalogPath, blend, noise, float(magZero), float(pixelScale),
                          catalog[0].getFootprint().getArea())

