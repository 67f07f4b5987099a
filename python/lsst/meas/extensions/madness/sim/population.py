r"""A built-in CatSim-like galaxy population, for when the CatSim catalogue is not at hand.

:func:`generatePopulation` draws galaxies with the columns of the CatSim "OneDegSq"
catalogue that the MADNESS paper trains on (:data:`~.catsim.CATSIM_COLUMNS`), from published
relations calibrated so that the population resembles CatSim: number counts, redshifts,
bulge + disk morphologies, sizes, axis ratios and colours from redshifted templates. Every
tunable number is a field of :class:`PopulationConfig`; ``doc/population.md`` compares the
result with CatSim and the paper.
"""

from __future__ import annotations

import functools
import math
import os

import numpy as np
from astropy.table import Table
from pydantic import BaseModel, ConfigDict, Field, model_validator

from .catsim import CATSIM_COLUMNS, checkCatsimTable, deriveCatsimColumns
from .snr import catalogSnr
from .survey import LSST_CONDITIONS, SurveyConditions

__all__ = ["PopulationConfig", "generatePopulation", "cumulativeCounts", "redshiftScale", "templateColours"]

CATSIM_BANDS: tuple[str, ...] = ("u", "g", "r", "i", "z", "y")
# The band whose magnitudes the number counts, redshifts and sizes are expressed in: the
# LSST Science Book relations and the HST size relations are all i-band ones.
_REFERENCE_BAND = "i"
# galtileid = seed * _ID_BLOCK + index of the galaxy among all drawn for that seed.
_ID_BLOCK = 1_000_000_000
# Flat f_nu, i.e. a UV slope beta = -2 (f_lambda ∝ lambda^-2): not a file of galsim's.
FLAT_TEMPLATE = "flat_fnu"


class PopulationConfig(BaseModel):
    """Every number of the galaxy population generator (see :func:`generatePopulation`).

    Magnitudes are i-band AB unless a field says otherwise; sizes are half-light radii in
    arcsec; ``ln`` scatters are standard deviations of the natural logarithm.

    Examples
    --------
    >>> config = PopulationConfig(countsFaintSlope=0.25)
    >>> config.countsSlope, config.countsFaintSlope
    (0.31, 0.25)
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    # -- number counts: LSST Science Book (2009) Sec. 3.7.2, N(<i) = 46 10^{0.31 (i - 25)} arcmin^-2
    countsNormalisation: float = Field(46.0, gt=0, description="Cumulative counts N(<countsPivot), per arcmin².")
    countsPivot: float = Field(25.0, description="Magnitude at which N(<i) = countsNormalisation.")
    countsSlope: float = Field(0.31, gt=0, description="d log10 N / d i brightward of countsBreak (Science Book).")
    countsBreak: float = Field(25.0, description="Counts flatten faintward of this i magnitude.")
    countsFaintSlope: float = Field(0.24, gt=0, description="d log10 (dN/di) / d i faintward of countsBreak.")
    brightMagnitude: float = Field(18.0, description="Brightest i magnitude drawn.")
    faintMagnitude: float = Field(29.0, description="Faintest i magnitude drawn (before the catalogue limit).")
    limitBand: str = Field("r", description="Band of the catalogue's magnitude limit (OneDegSq: r).")
    limitMagnitude: float = Field(
        28.0, description="Catalogue limit: galaxies fainter than this in limitBand are dropped."
    )
    # -- redshifts: LSST Science Book (2009) Sec. 3.7.2, p(z|i) ∝ z² exp(-z/z0), z0 = 0.0417 i - 0.744
    z0Slope: float = Field(0.0417, description="dz0/di of the Science Book relation.")
    z0Intercept: float = Field(-0.744, description="z0 at i = 0 of the Science Book relation.")
    z0Pivot: float = Field(
        25.0, description="Faintward of this i, z0 grows with z0FaintSlope instead (CatSim is deeper in z)."
    )
    z0FaintSlope: float = Field(0.3, ge=0, description="dz0/di faintward of z0Pivot.")
    z0Minimum: float = Field(0.03, gt=0, description="Floor of z0 (the linear relation reaches 0 at i≈17.8).")
    z0Maximum: float = Field(0.56, gt=0, description="Ceiling of z0 (CatSim's median z stops growing near i≈26.5).")
    redshiftMaximum: float = Field(6.0, gt=0, description="Redshifts are drawn in (0, redshiftMaximum), as in CatSim.")
    # -- morphology (CatSim sample: 70% pure disks, 27% small bulges, 3% bulge-dominated)
    diskOnlyFraction: float = Field(0.66, ge=0, le=1, description="Share of galaxies with no bulge.")
    bulgeDominatedFraction: float = Field(
        0.04, ge=0, le=1, description="Share of bulge-dominated galaxies (ellipticals)."
    )
    compositeBulgeRange: tuple[float, float] = Field(
        (0.005, 0.3), description="Bulge-to-total flux ratios of composite galaxies, log-uniform in this range."
    )
    bulgeDominatedRange: tuple[float, float] = Field(
        (0.8, 1.0),
        description="Bulge-to-total flux ratios of bulge-dominated galaxies with a disk, uniform in this range.",
    )
    pureBulgeFraction: float = Field(
        0.3, ge=0, le=1, description="Share of bulge-dominated galaxies with no disk at all."
    )
    # -- sizes: Miller et al. (2013) form ln(hlr) = ln(h0) + s (i - pivot), log-normal scatter
    sizePivot: float = Field(23.0, description="i magnitude at which the median disk half-light radius is sizeAtPivot.")
    sizeAtPivot: float = Field(0.34, gt=0, description="Median disk half-light radius at sizePivot, arcsec.")
    sizeSlope: float = Field(-0.11, description="d ln(hlr) / d i of the median disk half-light radius.")
    sizeScatter: float = Field(0.6, ge=0, description="ln scatter of the disk half-light radius at fixed i.")
    sizeRange: tuple[float, float] = Field(
        (0.02, 6.0), description="Half-light radii are clipped to this range, arcsec."
    )
    bulgeToDiskSize: float = Field(
        0.6, gt=0, description="Median bulge/disk half-light radius ratio of two-component galaxies."
    )
    bulgeToDiskSizeScatter: float = Field(0.7, ge=0, description="ln scatter of that ratio.")
    ellipticalSizeRatio: float = Field(
        0.7, gt=0, description="Half-light radius of bulge-dominated galaxies relative to disks of the same magnitude."
    )
    # -- axis ratios: projected oblate spheroids with random orientation (shared by bulge and disk)
    diskThickness: float = Field(0.4, gt=0, lt=1, description="Mean intrinsic thickness C/A of disks.")
    diskThicknessScatter: float = Field(0.1, ge=0, description="Standard deviation of the disk thickness.")
    bulgeFlattening: float = Field(0.75, gt=0, le=1, description="Mean intrinsic axis ratio C/A of bulges.")
    bulgeFlatteningScatter: float = Field(0.1, ge=0, description="Standard deviation of the bulge flattening.")
    intrinsicAxisRatioRange: tuple[float, float] = Field(
        (0.1, 1.0), description="Intrinsic axis ratios are clipped to this range."
    )
    # -- AGN
    agnFraction: float = Field(0.01, ge=0, le=1, description="Share of galaxies hosting a point-like AGN.")
    agnFluxRange: tuple[float, float] = Field(
        (0.01, 0.2), description="AGN share of the total flux, log-uniform in this range."
    )
    # -- colours: templates through LSST bandpasses
    templates: tuple[str, ...] = Field(
        ("CWW_E_ext", "CWW_Sbc_ext", "CWW_Scd_ext", "CWW_Im_ext", FLAT_TEMPLATE),
        description=f"SEDs from red to blue: galsim's share/SEDs file names, or {FLAT_TEMPLATE!r} (f_nu constant).",
    )
    templateBulgeDominated: float = Field(
        0.0, description="Mean template coordinate of bulge-dominated galaxies (0 = first template)."
    )
    templateComposite: float = Field(1.0, description="Mean template coordinate of composite galaxies.")
    templateDisk: float = Field(1.6, description="Mean template coordinate of pure disks.")
    templateRedshiftSlope: float = Field(1.1, description="Templates get bluer by this much per unit redshift ...")
    templateRedshiftSaturation: float = Field(2.2, gt=0, description="... up to this redshift.")
    templateScatter: float = Field(0.8, ge=0, description="Standard deviation of the template coordinate.")
    colourScatter: float = Field(
        0.05, ge=0, description="Independent Gaussian scatter added to each band's magnitude, mag."
    )
    igmAbsorption: bool = Field(True, description="Apply Madau (1995) intergalactic H I absorption to the templates.")
    redshiftGridStep: float = Field(
        0.01, gt=0, description="Step of the redshift grid the template magnitudes are tabulated on."
    )
    # -- bookkeeping
    fluxnormOffset: float = Field(
        18.3, description="fluxnorm total = 10^(-0.4 (i + offset)), CatSim's median scale (only ratios matter)."
    )
    batchSize: int = Field(
        16384, gt=0, description="Galaxies drawn per batch; fixed so that a run is a prefix of a longer one."
    )

    @model_validator(mode="after")
    def _check(self) -> PopulationConfig:
        if self.diskOnlyFraction + self.bulgeDominatedFraction > 1:
            raise ValueError("diskOnlyFraction + bulgeDominatedFraction exceeds 1")
        if not self.brightMagnitude < self.faintMagnitude:
            raise ValueError("brightMagnitude must be brighter (smaller) than faintMagnitude")
        for name in ("compositeBulgeRange", "bulgeDominatedRange", "sizeRange", "agnFluxRange",
                     "intrinsicAxisRatioRange"):
            low, high = getattr(self, name)
            if not 0 < low <= high:
                raise ValueError(f"{name} must satisfy 0 < low <= high, got {(low, high)}")
        if self.bulgeDominatedRange[1] > 1 or self.compositeBulgeRange[1] > 1 or self.agnFluxRange[1] >= 1:
            raise ValueError("flux ratios must not exceed 1")
        if len(self.templates) < 2:
            raise ValueError("at least two templates are needed")
        if self.limitBand not in CATSIM_BANDS:
            raise ValueError(f"limitBand must be one of {CATSIM_BANDS}")
        return self


def cumulativeCounts(magnitude: np.ndarray | float, config: PopulationConfig = PopulationConfig()) -> np.ndarray:
    r"""Cumulative galaxy counts :math:`N(<i)` per arcmin² of the population's count model.

    Brightward of the break :math:`i_b` (``countsBreak``) this is the LSST Science Book fit

    .. math:: N(<i) = N_0 \, 10^{\alpha (i - i_0)}, \qquad N_0 = 46\ \mathrm{arcmin}^{-2},
              \ i_0 = 25,\ \alpha = 0.31;

    faintward the differential counts continue with the flatter logarithmic slope
    :math:`\alpha_f` (``countsFaintSlope``),
    :math:`\mathrm{d}N/\mathrm{d}i = \ln 10\, \alpha N(<i_b)\, 10^{\alpha_f (i - i_b)}`, as deep
    counts flatten beyond :math:`i \approx 25` (e.g. Metcalfe et al. 2001; Capak et al. 2004).
    The default :math:`\alpha_f = 0.24` (with :math:`i_b = 25`) is calibrated so that, as in
    the paper, ≈ 37% of the galaxies with r < 28 pass the S/N ≥ 10 cut; the model then has
    ≈ 0.92 million galaxies with r < 28 per deg², 7% more than CatSim's 858k.

    References
    ----------
    LSST Science Collaboration 2009, "LSST Science Book", arXiv:0912.0201, Sec. 3.7.2.
    Metcalfe N. et al. 2001, MNRAS 323, 795. Capak P. et al. 2004, AJ 127, 180.

    Examples
    --------
    >>> round(float(cumulativeCounts(25.0)), 1), round(float(cumulativeCounts(24.0)), 2)
    (46.0, 22.53)
    """
    magnitude = np.asarray(magnitude, dtype=float)
    alpha, alphaFaint, iBreak = config.countsSlope, config.countsFaintSlope, config.countsBreak
    bright = config.countsNormalisation * 10.0 ** (alpha * (np.minimum(magnitude, iBreak) - config.countsPivot))
    atBreak = config.countsNormalisation * 10.0 ** (alpha * (iBreak - config.countsPivot))
    excess = np.maximum(magnitude - iBreak, 0.0)
    # Integral of ln10 alpha N_b 10^{alpha_f x} dx from 0 to excess.
    faint = atBreak * (alpha / alphaFaint) * (10.0 ** (alphaFaint * excess) - 1.0)
    return bright + faint


def redshiftScale(magnitude: np.ndarray | float, config: PopulationConfig = PopulationConfig()) -> np.ndarray:
    r"""Scale :math:`z_0(i)` of the redshift distribution :math:`p(z|i) \propto z^2 e^{-z/z_0}`.

    .. math:: z_0 = 0.0417\, i - 0.744 + s_f \max(i - i_p, 0),

    clipped to [``z0Minimum``, ``z0Maximum``]. The first part is the LSST Science Book fit
    (valid for :math:`i \lesssim 25`); the faint slope :math:`s_f` and the ceiling reproduce
    CatSim, whose faint galaxies lie at higher redshift than the fit extrapolates (median
    z ≈ 1.4–1.6 for 25 < i < 28). The median redshift is :math:`2.67\, z_0`, the mean
    :math:`3 z_0`.

    References
    ----------
    LSST Science Collaboration 2009, "LSST Science Book", arXiv:0912.0201, Sec. 3.7.2.

    Examples
    --------
    >>> [round(float(z), 3) for z in redshiftScale([22.0, 25.5, 28.0])]
    [0.173, 0.469, 0.56]
    """
    magnitude = np.asarray(magnitude, dtype=float)
    z0 = (config.z0Slope * magnitude + config.z0Intercept
          + config.z0FaintSlope * np.maximum(magnitude - config.z0Pivot, 0.0))
    return np.clip(z0, config.z0Minimum, config.z0Maximum)


_LYMAN_ALPHA = 121.567  # nm


def _madauTransmission(redshift: float):
    """Madau (1995) mean IGM transmission exp(-tau) as a function of observed wavelength (nm)."""
    lines = ((_LYMAN_ALPHA, 0.0036), (102.573, 0.0017), (97.254, 0.0012), (94.974, 0.00093))
    xEmit = 1.0 + redshift

    def transmission(wavelength):
        wavelength = np.asarray(wavelength, dtype=float)
        tau = np.zeros_like(wavelength)
        for restWavelength, amplitude in lines:
            inside = wavelength < restWavelength * xEmit
            tau[inside] += amplitude * (wavelength[inside] / restWavelength) ** 3.46
        # Photoelectric absorption by Lyman-limit systems (Madau 1995, footnote 3).
        x = wavelength / 91.18
        inside = x < xEmit
        xc = x[inside]
        tau[inside] += (
            0.25 * xc**3 * (xEmit**0.46 - xc**0.46)
            + 9.4 * xc**1.5 * (xEmit**0.18 - xc**0.18)
            - 0.7 * xc**3 * (xc**-1.32 - xEmit**-1.32)
            - 0.023 * (xEmit**1.68 - xc**1.68)
        )
        return np.exp(-np.maximum(tau, 0.0))

    return transmission


@functools.lru_cache(maxsize=8)
def _magnitudeGrid(templates: tuple[str, ...], zMax: float, zStep: float, igm: bool) -> tuple[np.ndarray, np.ndarray]:
    """AB magnitudes of each unit-normalised template, (template, redshift, band) on a z grid.

    Computed once per process (galsim integrates each SED through each bandpass); galaxies
    then interpolate, so no galsim call is made per galaxy.
    """
    import galsim

    share = galsim.meta_data.share_dir
    bandpasses = [
        galsim.Bandpass(os.path.join(share, "bandpasses", f"LSST_{band}.dat"), wave_type="nm").withZeropoint("AB")
        for band in CATSIM_BANDS
    ]
    seds = []
    for name in templates:
        if name == FLAT_TEMPLATE:
            # Densely sampled: galsim converts f_nu to photons at the table's nodes and
            # interpolates linearly between them, which two nodes would distort.
            # No flux below the Lyman limit (91.2 nm): ionising photons do not escape.
            wavelengths = np.geomspace(10.0, 1.0e4, 4000)
            flat = galsim.LookupTable(wavelengths, np.where(wavelengths > 91.2, 1.0, 1e-6), interpolant="linear")
            seds.append(galsim.SED(flat, wave_type="nm", flux_type="fnu"))
        else:
            seds.append(galsim.SED(os.path.join(share, "SEDs", f"{name}.sed"), wave_type="Ang", flux_type="flambda"))
    redshifts = np.arange(0.0, zMax + zStep / 2, zStep)
    grid = np.empty((len(seds), redshifts.size, len(bandpasses)))
    for k, sed in enumerate(seds):
        for j, z in enumerate(redshifts):
            shifted = sed.atRedshift(float(z))
            # The IGM only absorbs blueward of Lyman alpha; multiplying by a Python function
            # makes galsim's integral ~10x slower, so it is done only for the bands it reaches.
            absorbed = shifted * _madauTransmission(float(z)) if igm and z > 0 else shifted
            lymanAlpha = _LYMAN_ALPHA * (1.0 + z)
            grid[k, j] = [
                (absorbed if bandpass.blue_limit < lymanAlpha else shifted).calculateMagnitude(bandpass)
                for bandpass in bandpasses
            ]
    return redshifts, grid


def templateColours(
    templateCoordinate: np.ndarray, redshift: np.ndarray, config: PopulationConfig = PopulationConfig()
) -> np.ndarray:
    r"""Magnitudes relative to i, :math:`m_b - m_i`, shape (n, 6) for bands ugrizy.

    ``templateCoordinate`` :math:`t \in [0, n_\mathrm{templates} - 1]` picks a template
    (0 = the first of ``config.templates``, the reddest); fractional values interpolate
    linearly between neighbours, as does the redshift between the grid nodes. Each template
    is redshifted, attenuated by the IGM (Madau 1995) and integrated through the LSST
    bandpasses by galsim (Coleman, Wu & Weedman 1980 templates, extended as shipped with
    galsim; the blue end is a flat-:math:`f_\nu` continuum, UV slope β = −2, typical of faint
    high-redshift star-forming galaxies, Bouwens et al. 2014, with no flux below the Lyman
    limit).

    References
    ----------
    Coleman G. D., Wu C.-C., Weedman D. W. 1980, ApJS 43, 393. Madau P. 1995, ApJ 441, 18.
    Bouwens R. J. et al. 2014, ApJ 793, 115. Rowe B. et al. 2015, A&C 10, 121 (GalSim).

    Examples
    --------
    An elliptical at z = 0.5 is much redder in g − r than an irregular:

    >>> colours = templateColours(np.array([0.0, 3.0]), np.array([0.5, 0.5]))
    >>> bool(colours[0, 1] - colours[0, 2] > colours[1, 1] - colours[1, 2] + 0.5)
    True
    """
    redshifts, grid = _magnitudeGrid(
        tuple(config.templates), config.redshiftMaximum, config.redshiftGridStep, config.igmAbsorption
    )
    relative = grid - grid[:, :, CATSIM_BANDS.index(_REFERENCE_BAND)][:, :, None]
    t = np.clip(np.asarray(templateCoordinate, dtype=float), 0.0, len(config.templates) - 1.0)
    zIndex = np.clip(np.asarray(redshift, dtype=float) / config.redshiftGridStep, 0.0, redshifts.size - 1.0)
    t0 = np.minimum(np.floor(t).astype(int), len(config.templates) - 2)
    z0 = np.minimum(np.floor(zIndex).astype(int), redshifts.size - 2)
    wt = (t - t0)[:, None]
    wz = (zIndex - z0)[:, None]
    return (
        (1 - wt) * (1 - wz) * relative[t0, z0]
        + (1 - wt) * wz * relative[t0, z0 + 1]
        + wt * (1 - wz) * relative[t0 + 1, z0]
        + wt * wz * relative[t0 + 1, z0 + 1]
    )


def _drawMagnitudes(rng: np.random.Generator, n: int, config: PopulationConfig) -> np.ndarray:
    # Inverse-CDF sampling of the count model between the bright and faint limits.
    low = float(cumulativeCounts(config.brightMagnitude, config))
    high = float(cumulativeCounts(config.faintMagnitude, config))
    grid = np.linspace(config.brightMagnitude, config.faintMagnitude, 4097)
    cdf = cumulativeCounts(grid, config)
    # Interpolating log N keeps the power law exact between nodes.
    return np.interp(np.log(rng.uniform(low, high, n)), np.log(cdf), grid)


def _drawRedshifts(rng: np.random.Generator, magnitude: np.ndarray, config: PopulationConfig) -> np.ndarray:
    scale = redshiftScale(magnitude, config)
    redshift = rng.gamma(3.0, scale)
    # p(z) truncated to (0, zMax): redraw the rare tail instead of piling it up at zMax.
    bad = redshift >= config.redshiftMaximum
    while bad.any():
        redshift[bad] = rng.gamma(3.0, scale[bad])
        bad = redshift >= config.redshiftMaximum
    return redshift


def _projectedAxisRatio(intrinsic: np.ndarray, cosInclination: np.ndarray) -> np.ndarray:
    # An oblate spheroid of axis ratio q0 seen at inclination i: q² = cos² i + q0² sin² i.
    return np.sqrt(cosInclination**2 + intrinsic**2 * (1.0 - cosInclination**2))


def _drawBatch(rng: np.random.Generator, n: int, config: PopulationConfig) -> dict[str, np.ndarray]:
    iMag = _drawMagnitudes(rng, n, config)
    redshift = _drawRedshifts(rng, iMag, config)

    # Morphology class: 0 = pure disk, 1 = composite, 2 = bulge-dominated.
    u = rng.uniform(size=n)
    kind = np.where(u < config.diskOnlyFraction, 0, np.where(u < 1.0 - config.bulgeDominatedFraction, 1, 2))
    lowC, highC = config.compositeBulgeRange
    composite = np.exp(rng.uniform(np.log(lowC), np.log(highC), n))
    dominated = rng.uniform(*config.bulgeDominatedRange, n)
    dominated = np.where(rng.uniform(size=n) < config.pureBulgeFraction, 1.0, dominated)
    bulgeFraction = np.select([kind == 0, kind == 1], [0.0, composite], dominated)

    hasAgn = rng.uniform(size=n) < config.agnFraction
    lowA, highA = config.agnFluxRange
    agnFraction = np.where(hasAgn, np.exp(rng.uniform(np.log(lowA), np.log(highA), n)), 0.0)

    # Sizes: disks follow the size-magnitude relation; a bulge-dominated galaxy's bulge
    # does (scaled by ellipticalSizeRatio); the other component follows from the ratio.
    lnMedian = math.log(config.sizeAtPivot) + config.sizeSlope * (iMag - config.sizePivot)
    mainSize = np.exp(lnMedian + config.sizeScatter * rng.standard_normal(n))
    mainSize = np.where(kind == 2, mainSize * config.ellipticalSizeRatio, mainSize)
    ratio = config.bulgeToDiskSize * np.exp(config.bulgeToDiskSizeScatter * rng.standard_normal(n))
    hlrDisk = np.where(kind == 2, mainSize / ratio, mainSize)
    hlrBulge = np.where(kind == 2, mainSize, mainSize * ratio)
    hlrDisk = np.where(bulgeFraction < 1.0, np.clip(hlrDisk, *config.sizeRange), 0.0)
    hlrBulge = np.where(bulgeFraction > 0.0, np.clip(hlrBulge, *config.sizeRange), 0.0)

    # Axis ratios: bulge and disk share one random orientation, as in a real galaxy.
    cosInclination = rng.uniform(size=n)
    qLow, qHigh = config.intrinsicAxisRatioRange
    thickness = np.clip(config.diskThickness + config.diskThicknessScatter * rng.standard_normal(n), qLow, qHigh)
    flattening = np.clip(config.bulgeFlattening + config.bulgeFlatteningScatter * rng.standard_normal(n), qLow, qHigh)
    qDisk = _projectedAxisRatio(thickness, cosInclination)
    qBulge = _projectedAxisRatio(flattening, cosInclination)
    positionAngle = rng.uniform(0.0, 180.0, n)
    # Unit-square positions, scaled to the patch by the caller.
    position = rng.uniform(size=(2, n))

    # Colours: template coordinate from morphology, bluer with redshift (rising star formation).
    meanTemplate = np.select(
        [kind == 0, kind == 1], [config.templateDisk, config.templateComposite], config.templateBulgeDominated
    )
    template = (
        meanTemplate
        + config.templateRedshiftSlope * np.minimum(redshift, config.templateRedshiftSaturation)
        + config.templateScatter * rng.standard_normal(n)
    )
    relative = templateColours(template, redshift, config)
    magnitudes = iMag[:, None] + relative + config.colourScatter * rng.standard_normal((n, len(CATSIM_BANDS)))
    magnitudes[:, CATSIM_BANDS.index(_REFERENCE_BAND)] = iMag

    total = 10.0 ** (-0.4 * (iMag + config.fluxnormOffset))
    columns = {
        "x": position[0],
        "y": position[1],
        "redshift": redshift,
        "fluxnorm_bulge": total * (1.0 - agnFraction) * bulgeFraction,
        "fluxnorm_disk": total * (1.0 - agnFraction) * (1.0 - bulgeFraction),
        "fluxnorm_agn": total * agnFraction,
        "a_b": hlrBulge / np.sqrt(qBulge),
        "b_b": hlrBulge * np.sqrt(qBulge),
        "a_d": hlrDisk / np.sqrt(qDisk),
        "b_d": hlrDisk * np.sqrt(qDisk),
        "pa_bulge": positionAngle,
        "pa_disk": positionAngle.copy(),
    }
    for k, band in enumerate(CATSIM_BANDS):
        columns[f"{band}_ab"] = magnitudes[:, k]
    return columns


def generatePopulation(
    nGalaxies: int,
    seed: int,
    *,
    conditions: SurveyConditions = LSST_CONDITIONS,
    config: PopulationConfig = PopulationConfig(),
    snrCut: float | None = 10.0,
    snrBand: str = "r",
    area: float = 1.0,
) -> Table:
    r"""Draw a CatSim-like galaxy catalogue of exactly ``nGalaxies`` rows.

    Galaxies are drawn in batches of ``config.batchSize`` until ``nGalaxies`` pass the
    catalogue limit (``limitBand`` < ``limitMagnitude``, CatSim OneDegSq: r < 28) and, unless
    ``snrCut`` is ``None``, the paper's cut ``catalogSnr(·, conditions, snrBand) >= snrCut``
    (App. A). The relations, with the defaults of :class:`PopulationConfig`:

    *Number counts* (:func:`cumulativeCounts`): i magnitudes follow the LSST Science Book
    counts :math:`N(<i) = 46 \times 10^{0.31(i-25)}` arcmin⁻² to i = 25 and a flatter
    logarithmic slope of 0.24 beyond, drawn between i = 18 and 29. The faint slope is
    calibrated so that ≈ 37% of the galaxies with r < 28 pass S/N ≥ 10 (paper: 317k of
    858k).

    *Redshifts* (:func:`redshiftScale`): :math:`p(z|i) \propto z^2 e^{-z/z_0(i)}` with the
    Science Book :math:`z_0 = 0.0417 i - 0.744` to i = 25, growing by 0.3 per magnitude
    beyond up to :math:`z_0 = 0.56` (median z = 1.5) to follow CatSim, truncated to
    0 < z < 6.

    *Morphology*: 66% pure exponential disks, 30% composites with a de Vaucouleurs bulge of
    bulge-to-total flux ratio log-uniform in [0.005, 0.3], 4% bulge-dominated (B/T uniform
    in [0.8, 1], 30% of them pure bulges): the proportions of the CatSim sample (70%, 27%,
    3%); small bulges dominate disk-galaxy decompositions (e.g. Simard et al. 2011). 1% of
    galaxies host an AGN point source carrying 1–20% of the flux.

    *Sizes*: disk half-light radius log-normal about
    :math:`\ln h = \ln 0.34'' - 0.11\,(i - 23)` with σ = 0.6: the form of Miller et al.
    (2013), whose HST-calibrated slope is −0.269, with intercept, slope and scatter fitted
    to the CatSim sample, whose sizes shrink more slowly with magnitude. Bulges of
    composites are 0.6× their disk (ln scatter 0.7); bulge-dominated galaxies are 0.7×
    the size of disks of the same magnitude (early types are more compact, Shen et al.
    2003) with a disk 1/0.6× larger. Half-light radius :math:`h = \sqrt{ab}`, so
    :math:`a = h/\sqrt q` and :math:`b = h\sqrt q`; radii are clipped to 0.02–6″.

    *Axis ratios*: both components are oblate spheroids seen at one random inclination
    (:math:`\cos i` uniform), :math:`q^2 = \cos^2 i + q_0^2 \sin^2 i` (Hubble 1926), with
    intrinsic :math:`q_0 = 0.4 \pm 0.1` for disks — thicker than local disks
    (:math:`q_0 \approx 0.2`, Padilla & Strauss 2008), as the faint, mostly high-redshift
    star-forming galaxies are thick or triaxial (van der Wel et al. 2014), and as CatSim's
    disks are — and :math:`0.75 \pm 0.1` for bulges (bulges and ellipticals are rounder,
    Lambas, Maddox & Loveday 1992). Bulge and disk share one position angle, uniform in
    [0°, 180°), as in CatSim.

    *Colours* (:func:`templateColours`): a continuous template coordinate, 0 = E, 1 = Sbc,
    2 = Scd, 3 = Im (Coleman, Wu & Weedman 1980) and 4 = flat :math:`f_\nu`, with mean 0
    for bulge-dominated, 1.0 for composite and 1.6 for disk galaxies, bluer by 1.1 per unit
    redshift up to z = 2.2 (the star-forming fraction rises with redshift) and Gaussian
    scatter 0.8. The other bands follow from i through the template's redshifted,
    IGM-absorbed (Madau 1995) colours, plus 0.05 mag of independent scatter per band.

    ``fluxnorm_*`` split the total flux between components (``fluxnorm_bulge / (bulge +
    disk)`` is the bulge fraction); their scale, :math:`10^{-0.4(i + 18.3)}`, only mimics
    CatSim's order of magnitude.

    Parameters
    ----------
    nGalaxies
        Number of rows returned.
    seed
        Non-negative random seed; also the id block: ``galtileid = seed * 1e9 + k`` for the
        k-th galaxy drawn with that seed, so populations of different seeds never share an
        id, and a galaxy keeps its id (and all its properties) whether or not ``snrCut``
        removed its neighbours.
    conditions
        Survey conditions of the S/N (paper Table 1 by default).
    config
        The population's relations.
    snrCut
        Minimum S/N in ``snrBand``; ``None`` keeps every galaxy within the catalogue limit
        (the population "before the cut" of the paper's Fig. 1).
    snrBand
        Band of the S/N cut and of the ``snr_<snrBand>`` column.
    area
        Area in deg² of the square patch that positions are drawn uniformly in (``ra`` from
        0, ``dec`` centred on 0); it does not change the number of galaxies.

    Returns
    -------
    table
        :data:`~.catsim.CATSIM_COLUMNS`, the columns of :func:`~.catsim.deriveCatsimColumns`
        and ``snr_<snrBand>``; it passes :func:`~.catsim.checkCatsimTable`. The same
        ``(nGalaxies, seed, conditions, config, snrCut, snrBand)`` gives the same table, and a
        run is the first rows of any longer run with the same arguments.

    References
    ----------
    LSST Science Collaboration 2009, "LSST Science Book", arXiv:0912.0201, Sec. 3.7.2.
    Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 2, Fig. 1 and App. A.
    Connolly A. J. et al. 2014, Proc. SPIE 9150, 14 (CatSim).
    Miller L. et al. 2013, MNRAS 429, 2858 (size–magnitude relation).
    Shen S. et al. 2003, MNRAS 343, 978. Simard L. et al. 2011, ApJS 196, 11.
    Hubble E. P. 1926, ApJ 64, 321. Lambas D. G., Maddox S. J., Loveday J. 1992, MNRAS 258, 404.
    Padilla N. D., Strauss M. A. 2008, MNRAS 388, 1321.
    van der Wel A. et al. 2014, ApJ 792, L6.
    Coleman, Wu & Weedman 1980, ApJS 43, 393. Madau P. 1995, ApJ 441, 18.

    Examples
    --------
    >>> galaxies = generatePopulation(50, seed=7)
    >>> len(galaxies), bool((galaxies["snr_r"] >= 10).all())
    (50, True)
    >>> bool((galaxies["galtileid"] // 1_000_000_000 == 7).all())
    True
    >>> bool(len(checkCatsimTable(galaxies)) == 50)
    True
    """
    if nGalaxies < 0:
        raise ValueError(f"nGalaxies must be non-negative, got {nGalaxies}")
    if not 0 <= seed < 9_000_000_000:
        raise ValueError(f"seed must be in [0, 9e9) for int64 galtileid, got {seed}")
    if area <= 0:
        raise ValueError(f"area must be positive, got {area}")
    conditions.band(snrBand)

    kept: list[dict[str, np.ndarray]] = []
    nKept = 0
    batch = 0
    while nKept < nGalaxies or not kept:
        if batch >= 64 and nKept == 0:
            raise ValueError(f"no galaxy among {batch * config.batchSize} drawn passes the cuts (snrCut={snrCut})")
        if batch * config.batchSize >= _ID_BLOCK:
            raise RuntimeError(f"more than {_ID_BLOCK} galaxies drawn for seed {seed}; galtileid blocks would overlap")
        rng = np.random.default_rng([seed, batch])
        columns = _drawBatch(rng, config.batchSize, config)
        columns["index"] = batch * config.batchSize + np.arange(config.batchSize, dtype=np.int64)
        keep = columns[f"{config.limitBand}_ab"] < config.limitMagnitude
        snr = catalogSnr(columns, conditions, snrBand)
        if snrCut is not None:
            keep &= snr >= snrCut
        columns[f"snr_{snrBand}"] = snr
        kept.append({name: values[keep] for name, values in columns.items()})
        nKept += int(keep.sum())
        batch += 1

    merged = {name: np.concatenate([part[name] for part in kept])[:nGalaxies] for name in kept[0]}
    side = math.sqrt(area)
    table = Table()
    table["galtileid"] = np.int64(seed) * np.int64(_ID_BLOCK) + merged["index"]
    table["ra"] = merged["x"] * side
    table["dec"] = (merged["y"] - 0.5) * side
    for name in CATSIM_COLUMNS[3:]:
        table[name] = merged[name]
    checkCatsimTable(table)
    deriveCatsimColumns(table)
    table[f"snr_{snrBand}"] = merged[f"snr_{snrBand}"]
    return table
