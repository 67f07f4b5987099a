r"""Signal-to-noise ratio of catalogue galaxies, as in the MADNESS paper's Appendix A.

The paper selects its training and test galaxies with an r-band cut S/N ≥ 10 computed from
catalogue quantities only (no image is drawn); :func:`catalogSnr` reproduces that number.
"""

from __future__ import annotations

import numpy as np
from astropy.table import Table

from .survey import LSST_CONDITIONS, SurveyConditions

__all__ = ["catalogSnr"]

# n_eff = 2.266 (FWHM_eff / P)^2 is the noise-equivalent number of pixels of a Gaussian
# footprint, 4π σ² / P² = (π / (2 ln 2)) (FWHM / P)² ≈ 2.266 (FWHM / P)².
_NEFF_COEFFICIENT = 2.266


def catalogSnr(table: Table, conditions: SurveyConditions = LSST_CONDITIONS, band: str = "r") -> np.ndarray:
    r"""S/N of every galaxy of a CatSim-format table in one band (paper App. A).

    .. math::

        \mathrm{S/N} = \frac{C}{\sqrt{C + B\, n_\mathrm{eff}}}, \qquad
        n_\mathrm{eff} = 2.266 \left(\frac{\mathrm{FWHM}_\mathrm{eff}}{P}\right)^2, \qquad
        \mathrm{FWHM}_\mathrm{eff} = \sqrt{\mathrm{FWHM}_\mathrm{psf}^2 + \mathrm{FWHM}_\mathrm{gal}^2},

    with :math:`C = t\,10^{-0.4(m - m_0)}` the source electrons from the total AB magnitude
    ``{band}_ab`` and the band's zero point :math:`m_0` and exposure time :math:`t`,
    :math:`B` the sky electrons per pixel, :math:`P` the pixel scale and

    .. math:: \mathrm{FWHM}_\mathrm{gal} = 2 \sqrt{a_\mathrm{hlr} b_\mathrm{hlr}}

    for the half-light semi-axes of the *larger* component. "Larger" is decided, as in the
    reference code (galcheat), by the half-light radius :math:`\sqrt{ab}`: the component with
    the larger :math:`\sqrt{ab}` is used, i.e.
    :math:`\mathrm{FWHM}_\mathrm{gal} = 2 \max(\sqrt{a_b b_b}, \sqrt{a_d b_d})`; an absent
    component has zero axes. Everything is in electrons (the paper's gain of 1) and the
    instrumental-noise term of the LSST formula is dropped, as in the paper. The AGN point
    source, if any, adds its flux to :math:`C` (the catalogue magnitude is the total) but not
    to the footprint.

    Parameters
    ----------
    table
        Any table with the CatSim columns ``{band}_ab``, ``a_b``, ``b_b``, ``a_d``, ``b_d``
        (half-light semi-axes in arcsec).
    conditions
        Zero point, exposure time, sky, PSF FWHM and pixel scale.
    band
        Band of the magnitude, the PSF and the sky.

    Returns
    -------
    snr
        One float per row.

    References
    ----------
    Biswas et al. 2025, A&A, "MADNESS deblender", Appendix A, Eqs. (A.1)–(A.3).
    LSST Systems Engineering technical note SMTN-002, "Calculating LSST limiting magnitudes
    and SNR" (https://smtn-002.lsst.io/, the paper's footnote 11), where
    :math:`\mathrm{S/N} = C / \sqrt{C/g + (B/g + \sigma_\mathrm{instr}^2) n_\mathrm{eff}}`
    and :math:`n_\mathrm{eff} = 2.266 (\mathrm{FWHM}_\mathrm{eff}/P)^2`.

    Examples
    --------
    A point-like galaxy at r = 26 gives 3.8e4 electrons against a footprint of 37 pixels of
    1.27e5 sky electrons each; a galaxy of half-light radius 0.2" has a larger footprint:

    >>> t = Table(dict(r_ab=[26.0], a_b=[0.0], b_b=[0.0], a_d=[0.0], b_d=[0.0]))
    >>> round(float(catalogSnr(t)[0]), 2)
    17.5
    >>> t["a_d"], t["b_d"] = [0.4], [0.1]   # FWHM_gal = 2 sqrt(0.04) = 0.4"
    >>> round(float(catalogSnr(t)[0]), 2)
    15.71
    """
    bandConditions = conditions.band(band)
    magnitude = np.asarray(table[f"{band}_ab"], dtype=float)
    source = bandConditions.exposureTime * 10.0 ** (-0.4 * (magnitude - bandConditions.zeroPoint))
    sky = conditions.skyPerPixel(band)
    hlr = np.maximum(
        np.sqrt(np.asarray(table["a_b"], dtype=float) * np.asarray(table["b_b"], dtype=float)),
        np.sqrt(np.asarray(table["a_d"], dtype=float) * np.asarray(table["b_d"], dtype=float)),
    )
    fwhmEffective2 = bandConditions.psfFwhm**2 + (2.0 * hlr) ** 2
    nEff = _NEFF_COEFFICIENT * fwhmEffective2 / conditions.pixelScale**2
    return source / np.sqrt(source + sky * nEff)
