r"""Mock multiband exposures of a few galaxies, rendered with GalSim, with their truth.

The mocks stand in for LSST coadd patches in tests: sky-subtracted images in ADU with the
Poisson noise of galaxy plus sky, a variance plane equal to the true noise variance, one
Kolmogorov PSF and one photometric calibration per band, a WCS, and a truth table with every galaxy's
position, fluxes and shape plus its noiseless image. Everything is fixed by ``seed``.

Pixel convention: as in :mod:`lsst.meas.extensions.madness.afw.geom`, the centre of pixel
``(x, y)`` is at position ``(x, y)`` in parent coordinates; GalSim images are made with the
same bounds, so its pixel centres coincide with ours.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import galsim
import numpy as np
from astropy.table import Table

from ..afw import Box2I, Extent2I, ImagePsf, MultibandExposure, Point2I, makePhotoCalibFromCalibZeroPoint
from ..afw.table import SourceCatalog
from ..detect import detectParents
from ..sim.render import pixelatedPsfs
from ..sim.survey import LSST_CONDITIONS

__all__ = [
    "DEFAULT_BANDS",
    "DEFAULT_PSF_FWHM",
    "DEFAULT_SKY_LEVEL",
    "MockBlend",
    "makeMockMultibandExposure",
]

DEFAULT_BANDS: tuple[str, ...] = ("u", "g", "r", "i", "z", "y")

#: PSF full width at half maximum per band, arcsec (close to LSST's median seeing).
DEFAULT_PSF_FWHM: Mapping[str, float] = {"u": 0.88, "g": 0.86, "r": 0.84, "i": 0.82, "z": 0.81, "y": 0.80}

#: Sky level per band, ADU per pixel (its Poisson noise is the image noise far from galaxies).
DEFAULT_SKY_LEVEL: Mapping[str, float] = {"u": 300.0, "g": 700.0, "r": 1100.0, "i": 1500.0, "z": 2000.0, "y": 2200.0}

_FALLBACK_PSF_FWHM = 0.85
_FALLBACK_SKY_LEVEL = 1000.0
#: AB magnitude of one ADU in bands that LSST does not have.
_FALLBACK_MAG_ZERO = 27.0
_MAX_PLACEMENT_TRIES = 1000
# Spread of the per-band S/N around a flat spectrum (natural-log scatter).
_COLOUR_SCATTER = 0.3


@dataclass(frozen=True, eq=False)
class MockBlend:
    """A mocked multiband exposure and its truth.

    Attributes
    ----------
    mExposure
        The noisy exposure: image (sky subtracted, ADU), mask (``BAD`` pixels if asked for,
        ``DETECTED`` from :attr:`catalog`'s detection), variance (sky plus galaxies over
        the gain: the variance the noise was drawn with), one :class:`ImagePsf` and one
        :class:`~lsst.meas.extensions.madness.afw.photoCalib.PhotoCalib` (from ``magZero``) per band,
        and a tangent-plane WCS of ``pixelScale`` (north up, east left; centre of the image at
        ``sim.survey.SIMULATED_FIELD_CENTRE``).
    catalog
        Parents and peaks from :func:`~lsst.meas.extensions.madness.detect.detectParents`
        with its default parameters.
    truth
        ``astropy.table.Table``, one row per galaxy: ``id`` (its index in :attr:`models`),
        ``x``, ``y`` (parent pixel coordinates of the centre), ``flux_<band>`` (ADU,
        total flux), ``hlr`` (half-light radius, arcsec), ``q`` (axis ratio), ``beta``
        (position angle of the major axis from +x towards +y, radians) and ``snr`` (the
        target band-combined S/N). ``meta`` holds ``seed``, ``pixelScale`` and ``gain``.
    models
        ``(galaxy, band, y, x)`` noiseless image of each galaxy (PSF-convolved, ADU).
    noiseless
        ``(band, y, x)`` sum of :attr:`models`.
    seed
        The seed everything was drawn from.
    """

    mExposure: MultibandExposure
    catalog: SourceCatalog
    truth: Table
    models: np.ndarray
    noiseless: np.ndarray
    seed: int


def _lsstMagZero() -> dict[str, float]:
    """AB magnitude of one electron of LSST's 10-year coadds, per band."""
    return {band: float(LSST_CONDITIONS.photoCalib(band).instFluxToMagnitude(1.0)) for band in LSST_CONDITIONS.bands}


def _perBand(
    value: float | Mapping[str, float] | Sequence[float] | None,
    bands: tuple[str, ...],
    defaults: Mapping[str, float],
    fallback: float,
    name: str,
) -> np.ndarray:
    """One positive value per band from a scalar, a band mapping, a sequence or the defaults."""
    if value is None:
        values = [defaults.get(band, fallback) for band in bands]
    elif isinstance(value, Mapping):
        missing = [band for band in bands if band not in value]
        if missing:
            raise ValueError(f"{name} has no value for bands {missing}")
        values = [value[band] for band in bands]
    elif np.ndim(value) == 0:
        values = [float(np.asarray(value))] * len(bands)
    else:
        values = list(np.atleast_1d(value))
        if len(values) != len(bands):
            raise ValueError(f"{name} has {len(values)} values for {len(bands)} bands")
    result = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(result) & (result > 0)):
        raise ValueError(f"{name} values must be positive and finite, got {result.tolist()}")
    return result


def _checkRange(name: str, bounds: tuple[float, float], lowest: float, highest: float = np.inf) -> None:
    low, high = bounds
    if not (lowest <= low <= high <= highest):
        raise ValueError(f"{name} must satisfy {lowest} <= low <= high <= {highest}, got {bounds}")


def _drawPositions(
    rng: np.random.Generator,
    nGalaxies: int,
    bbox: Box2I,
    margin: int,
    minSeparation: float,
    blended: bool,
    blendBoxSize: float,
) -> np.ndarray:
    """``(n, 2)`` parent ``(x, y)`` centres: in a central box if ``blended``, else apart in the inner region."""
    if blended:
        centre = bbox.getCenter()
        offsets = rng.uniform(-0.5 * blendBoxSize, 0.5 * blendBoxSize, size=(nGalaxies, 2))
        return np.array([centre.x, centre.y]) + offsets
    low = np.array([bbox.getMinX() + margin, bbox.getMinY() + margin], dtype=np.float64)
    high = np.array([bbox.getMaxX() - margin, bbox.getMaxY() - margin], dtype=np.float64)
    if np.any(high < low):
        raise ValueError(f"margin {margin} leaves no inner region in the {bbox.getWidth()}x{bbox.getHeight()} image")
    positions = np.zeros((nGalaxies, 2))
    for i in range(nGalaxies):
        # Rejection sampling: few galaxies, so a handful of tries each.
        for _ in range(_MAX_PLACEMENT_TRIES):
            candidate = rng.uniform(low, high)
            if i == 0 or np.min(np.hypot(*(positions[:i] - candidate).T)) >= minSeparation:
                positions[i] = candidate
                break
        else:
            raise ValueError(
                f"cannot place {nGalaxies} galaxies {minSeparation} pixels apart in the inner region "
                f"{low.tolist()}..{high.tolist()}; lower nGalaxies, minSeparation or margin, or enlarge shape"
            )
    return positions


def _checkPositions(positions: np.ndarray, bbox: Box2I) -> np.ndarray:
    positions = np.asarray(positions, dtype=np.float64)
    if positions.ndim != 2 or positions.shape[1] != 2:
        raise ValueError(f"positions must be an (N, 2) array of (x, y), got shape {positions.shape}")
    inside = (
        np.isfinite(positions).all(axis=1)
        & (positions[:, 0] >= bbox.getMinX())
        & (positions[:, 0] <= bbox.getMaxX())
        & (positions[:, 1] >= bbox.getMinY())
        & (positions[:, 1] <= bbox.getMaxY())
    )
    if not inside.all():
        raise ValueError(f"positions {positions[~inside].tolist()} are not inside the image {bbox}")
    return positions


def _makePsfs(
    fwhm: np.ndarray, psfSize: int, pixelScale: float
) -> tuple[list[galsim.GSObject], list[ImagePsf]]:
    """Kolmogorov profiles and their pixelated, unit-sum kernels (``psfSize`` square)."""
    profiles = [galsim.Kolmogorov(fwhm=float(f)) for f in fwhm]
    return profiles, pixelatedPsfs(profiles, psfSize, pixelScale)


def _renderUnitModels(
    positions: np.ndarray,
    hlr: np.ndarray,
    q: np.ndarray,
    beta: np.ndarray,
    sersicIndex: float,
    psfProfiles: list[galsim.GSObject],
    bbox: Box2I,
    pixelScale: float,
) -> np.ndarray:
    """``(galaxy, band, y, x)`` unit-flux galaxies convolved with each band's PSF."""
    bounds = galsim.BoundsI(bbox.getMinX(), bbox.getMaxX(), bbox.getMinY(), bbox.getMaxY())
    models = np.zeros((len(positions), len(psfProfiles), bbox.getHeight(), bbox.getWidth()), np.float32)
    for g, ((x, y), radius, axisRatio, angle) in enumerate(zip(positions, hlr, q, beta)):
        if sersicIndex == 1.0:
            galaxy = galsim.Exponential(half_light_radius=float(radius))
        else:
            galaxy = galsim.Sersic(n=float(sersicIndex), half_light_radius=float(radius))
        galaxy = galaxy.shear(q=float(axisRatio), beta=float(angle) * galsim.radians)
        for b, psf in enumerate(psfProfiles):
            stamp = galsim.ImageF(bounds, scale=pixelScale)
            # center= is in image coordinates, which the bounds make equal to parent ones.
            galsim.Convolve(galaxy, psf).drawImage(image=stamp, center=galsim.PositionD(x, y), method="auto")
            models[g, b] = stamp.array
    return models


def _addNoise(noiseless: np.ndarray, sky: np.ndarray, gain: float, seed: int) -> np.ndarray:
    """Poisson noise on (galaxies + sky) in electrons, back to ADU, sky subtracted."""
    rng = galsim.BaseDeviate(seed)
    noisy = np.empty_like(noiseless)
    for b, skyLevel in enumerate(sky):
        image = galsim.ImageF(noiseless[b].copy())
        image.addNoise(galsim.CCDNoise(rng, sky_level=float(skyLevel), gain=float(gain)))
        noisy[b] = image.array
    return noisy


def _truthTable(
    positions: np.ndarray,
    bands: tuple[str, ...],
    fluxes: np.ndarray,
    hlr: np.ndarray,
    q: np.ndarray,
    beta: np.ndarray,
    snr: np.ndarray,
    meta: dict,
) -> Table:
    """The per-galaxy truth as an ``astropy.table.Table`` with units."""
    table = Table(meta=meta)
    table["id"] = np.arange(len(positions), dtype=np.int64)
    table["x"] = positions[:, 0]
    table["y"] = positions[:, 1]
    for b, band in enumerate(bands):
        table[f"flux_{band}"] = fluxes[:, b]
    table["hlr"] = hlr
    table["q"] = q
    table["beta"] = beta
    table["snr"] = snr
    units = {"x": "pix", "y": "pix", "hlr": "arcsec", "beta": "rad"}
    units.update({f"flux_{band}": "adu" for band in bands})
    for name, unit in units.items():
        table[name].unit = unit
    return table


def makeMockMultibandExposure(
    *,
    bands: Sequence[str] = DEFAULT_BANDS,
    shape: tuple[int, int] = (60, 60),
    nGalaxies: int = 3,
    xy0: Point2I | tuple[int, int] = (0, 0),
    seed: int = 0,
    psfFwhm: float | Mapping[str, float] | Sequence[float] | None = None,
    skyLevel: float | Mapping[str, float] | Sequence[float] | None = None,
    gain: float = 1.0,
    pixelScale: float = 0.2,
    snrRange: tuple[float, float] = (50.0, 500.0),
    hlrRange: tuple[float, float] = (0.3, 1.0),
    qRange: tuple[float, float] = (0.5, 1.0),
    sersicIndex: float = 1.0,
    positions: np.ndarray | None = None,
    blended: bool = False,
    blendBoxSize: float = 8.0,
    minSeparation: float = 12.0,
    margin: int | None = None,
    badPixels: int = 0,
    psfSize: int = 41,
    magZero: float | Mapping[str, float] | Sequence[float] | None = None,
) -> MockBlend:
    r"""Render a few galaxies into a noisy multiband exposure with known truth.

    Each galaxy is an exponential (or Sérsic) profile of half-light radius uniform in
    ``hlrRange``, sheared to axis ratio ``q`` (uniform in ``qRange``) at position angle
    :math:`\beta` (uniform in :math:`[0, \pi)`), convolved with each band's Kolmogorov
    PSF and drawn with GalSim's ``method="auto"`` (pixel response included) centred on
    its sub-pixel position. Its fluxes follow from a band-combined signal-to-noise
    :math:`\nu` (log-uniform in ``snrRange``) split over bands by a random colour
    :math:`c_b \propto e^{\epsilon_b}`, :math:`\epsilon_b \sim N(0, 0.3^2)`,
    :math:`\sum_b c_b^2 = 1`, with the background-limited S/N of a unit-flux model
    :math:`p_b` and sky variance :math:`\sigma_b^2 = s_b / g`:

    .. math::

        F_b = \frac{\nu\, c_b\, \sigma_b}{\sqrt{\sum_{\rm pix} p_b^2}},
        \qquad
        \sqrt{\sum_b \left(\frac{F_b}{\sigma_b}\right)^2 \sum_{\rm pix} p_b^2} = \nu .

    The image is the sum of the models :math:`m_b` plus noise: the electron counts
    :math:`\mathrm{Poisson}\big(g\,(m_b + s_b)\big)`, converted back to ADU and sky
    subtracted; the variance plane is :math:`(m_b + s_b) / g`, exactly the variance of
    that noise.

    Parameters
    ----------
    bands
        Band labels.
    shape
        ``(height, width)`` of the image in pixels.
    nGalaxies
        Number of galaxies (ignored when ``positions`` is given).
    xy0
        Parent position of pixel ``[0, 0]``.
    seed
        Seed of every random choice (parameters, noise, bad pixels); same seed, same mock.
    psfFwhm
        PSF FWHM in arcsec: a scalar, a band mapping or a sequence; default
        :data:`DEFAULT_PSF_FWHM` (0.85 for other bands).
    skyLevel
        Sky in ADU per pixel, as ``psfFwhm``; default :data:`DEFAULT_SKY_LEVEL` (1000 for
        other bands).
    gain
        Electrons per ADU.
    pixelScale
        Arcsec per pixel.
    snrRange
        Range of the band-combined S/N :math:`\nu` of each galaxy.
    hlrRange
        Range of half-light radii, arcsec.
    qRange
        Range of axis ratios (minor/major), in ``(0, 1]``.
    sersicIndex
        Sérsic index of all galaxies (1: exponential).
    positions
        ``(N, 2)`` parent ``(x, y)`` centres, inside the image; default: random.
    blended
        Place the galaxies uniformly in a ``blendBoxSize`` pixel square at the image
        centre, so they overlap; otherwise at least ``minSeparation`` pixels apart in the
        image less ``margin`` pixels on each side.
    blendBoxSize, minSeparation
        Pixels; see ``blended``.
    margin
        Pixels kept free at the edges for random positions; default a quarter of the
        smaller side, so that little of a galaxy's light falls off the image.
    badPixels
        Number of random pixels flagged ``BAD`` in the mask of every band (image values
        unchanged).
    psfSize
        Side of the PSF kernel images, odd.
    magZero
        AB magnitude of one ADU, as ``psfFwhm``; default that of an electron of LSST's 10-year
        coadds in the LSST bands (the units of the shipped MADNESS models), 27 in others.

    Returns
    -------
    mock : `MockBlend`
        The exposure, detection catalogue and truth.

    Raises
    ------
    ValueError
        For out-of-range parameters, or when the galaxies cannot be placed apart.

    Examples
    --------
    >>> mock = makeMockMultibandExposure(seed=3)
    >>> mock.mExposure.image.array.shape, len(mock.truth), mock.models.shape
    ((6, 60, 60), 3, (3, 6, 60, 60))
    >>> bool(np.allclose(mock.models.sum(axis=0), mock.noiseless))
    True
    """
    bands = tuple(bands)
    if not bands:
        raise ValueError("bands is empty; a mock needs at least one band")
    height, width = (int(s) for s in shape)
    if height < 1 or width < 1:
        raise ValueError(f"shape must be positive (height, width), got {shape}")
    if psfSize < 1 or psfSize % 2 == 0:
        raise ValueError(f"psfSize must be a positive odd number, got {psfSize}")
    if not (gain > 0 and pixelScale > 0):
        raise ValueError(f"gain and pixelScale must be positive, got {gain}, {pixelScale}")
    if not 0 <= badPixels <= height * width:
        raise ValueError(f"badPixels must be between 0 and {height * width}, got {badPixels}")
    if sersicIndex <= 0:
        raise ValueError(f"sersicIndex must be positive, got {sersicIndex}")
    _checkRange("snrRange", snrRange, np.finfo(float).tiny)
    _checkRange("hlrRange", hlrRange, np.finfo(float).tiny)
    _checkRange("qRange", qRange, np.finfo(float).tiny, 1.0)
    fwhm = _perBand(psfFwhm, bands, DEFAULT_PSF_FWHM, _FALLBACK_PSF_FWHM, "psfFwhm")
    sky = _perBand(skyLevel, bands, DEFAULT_SKY_LEVEL, _FALLBACK_SKY_LEVEL, "skyLevel")
    bbox = Box2I(Point2I(*xy0), Extent2I(width, height))

    # Independent streams, so e.g. asking for bad pixels leaves the galaxies unchanged.
    paramSeq, noiseSeq, maskSeq = np.random.SeedSequence(seed).spawn(3)
    rng = np.random.default_rng(paramSeq)
    if positions is None:
        if nGalaxies < 0:
            raise ValueError(f"nGalaxies must be non-negative, got {nGalaxies}")
        margin = min(height, width) // 4 if margin is None else int(margin)
        positions = _drawPositions(rng, nGalaxies, bbox, margin, minSeparation, blended, blendBoxSize)
    positions = _checkPositions(positions, bbox)
    n = len(positions)
    hlr = rng.uniform(*hlrRange, size=n)
    q = rng.uniform(*qRange, size=n)
    beta = rng.uniform(0.0, np.pi, size=n)
    lowSnr, highSnr = np.log(snrRange)
    snr = np.exp(rng.uniform(lowSnr, highSnr, size=n))
    colour = np.exp(rng.normal(0.0, _COLOUR_SCATTER, size=(n, len(bands))))
    colour /= np.linalg.norm(colour, axis=1, keepdims=True)

    psfProfiles, psfs = _makePsfs(fwhm, psfSize, pixelScale)
    unit = _renderUnitModels(positions, hlr, q, beta, sersicIndex, psfProfiles, bbox, pixelScale)
    skySigma = np.sqrt(sky / gain)
    norm = np.sqrt(np.sum(unit.astype(np.float64) ** 2, axis=(2, 3)))
    fluxes = snr[:, None] * colour * skySigma[None, :] / np.where(norm > 0, norm, 1.0)
    models = (unit * fluxes[:, :, None, None]).astype(np.float32)
    noiseless = models.sum(axis=0)

    galsimSeed = int(np.random.default_rng(noiseSeq).integers(1, 2**31 - 1))
    image = _addNoise(noiseless, sky, gain, galsimSeed)
    variance = ((noiseless + sky[:, None, None]) / gain).astype(np.float32)
    zeroPoints = _perBand(magZero, bands, _lsstMagZero(), _FALLBACK_MAG_ZERO, "magZero")
    photoCalibs = [makePhotoCalibFromCalibZeroPoint(10.0 ** (0.4 * m)) for m in zeroPoints]
    wcs = LSST_CONDITIONS.model_copy(update={"pixelScale": pixelScale}).skyWcs(bbox)
    mExposure = MultibandExposure.fromArrays(
        bands, image, np.zeros(image.shape, np.int32), variance, bbox=bbox, psfs=psfs, photoCalibs=photoCalibs,
        wcs=wcs,
    )
    if badPixels:
        flat = np.random.default_rng(maskSeq).choice(height * width, size=badPixels, replace=False)
        bad = np.int32(mExposure.mask.getPlaneBitMask("BAD"))
        mExposure.mask.array[:, flat // width, flat % width] |= bad

    catalog = detectParents(mExposure)
    meta = {"seed": seed, "pixelScale": pixelScale, "gain": gain}
    truth = _truthTable(positions, bands, fluxes, hlr, q, beta, snr, meta)
    return MockBlend(mExposure, catalog, truth, models, noiseless, seed)
