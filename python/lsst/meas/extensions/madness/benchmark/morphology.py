r"""Morphology metrics of the deblender benchmark (Biswas et al. 2025, Sec. 3.2, 4.4, App. B.1): how a
predicted galaxy compares with its noiseless isolated image, pixel by pixel (SSIM, cosine similarity,
Eq. 17) and in shape (adaptive-moment ellipticity, Eq. 18). The photometry and blending metrics are
in :mod:`.metrics`, whose conventions hold here too.

Everything here is plain numpy / scipy / galsim on in-memory arrays: images are ``(bands, H, W)``
(one band: ``(H, W)``), pixel centres at integers with ``x`` along columns and ``y`` along rows.
Ellipticities are *distortions* :math:`e = (Q_{xx} - Q_{yy} + 2 i Q_{xy}) / (Q_{xx} + Q_{yy})`
(Eq. 18), so that :math:`e_1 > 0` is elongated along :math:`x` and :math:`e_2 > 0` along
:math:`x = y`.

References
----------
Biswas, B., Aubourg, E., Boucaud, A., et al. 2025, A&A, "MADNESS Deblender: Maximum A
posteriori with Deep NEural networks for Source Separation", Sec. 3.2, 4.4, App. B.1.

Wang, Z., Bovik, A. C., Sheikh, H. R., & Simoncelli, E. P. 2004, IEEE TIP 13, 600 (SSIM).

Hirata, C., & Seljak, U. 2003, MNRAS 343, 459 (adaptive moments).

Examples
--------
>>> import numpy as np
>>> galaxy = np.zeros((1, 16, 16)); galaxy[0, 8, 8] = 1.0
>>> cosineSimilarity(galaxy, galaxy).tolist()
[1.0]
"""

from __future__ import annotations

import math
from typing import Literal

import galsim
import numpy as np
import scipy.ndimage

__all__ = ["ssim", "cosineSimilarity", "ellipticity"]


# ----------------------------------------------------------------------------------------
# Morphology (Sec. 3.2, 4.4, Eq. 17; App. B.1)
# ----------------------------------------------------------------------------------------


def _ssimMap(x: np.ndarray, y: np.ndarray, sigma: float, truncate: float, dataRange: float,
             k1: float, k2: float) -> np.ndarray:
    """SSIM map of two 2-d images over the windows lying fully inside them.

    Gaussian-weighted local statistics (population variances) as in Wang et al. (2004)
    and skimage's ``structural_similarity(gaussian_weights=True,
    use_sample_covariance=False)``: the weights are a Gaussian of width ``sigma``
    truncated at radius ``int(truncate * sigma + 0.5)`` (5 pixels, an 11×11 window, for
    the defaults) and normalised. Filtered images are cropped by that radius, so edge
    handling plays no part.
    """
    def smooth(image: np.ndarray) -> np.ndarray:
        return scipy.ndimage.gaussian_filter(image, sigma, truncate=truncate, mode="reflect")

    c1, c2 = (k1 * dataRange) ** 2, (k2 * dataRange) ** 2
    muX, muY = smooth(x), smooth(y)
    varX = smooth(x * x) - muX * muX
    varY = smooth(y * y) - muY * muY
    cov = smooth(x * y) - muX * muY
    num = (2 * muX * muY + c1) * (2 * cov + c2)
    den = (muX * muX + muY * muY + c1) * (varX + varY + c2)
    radius = int(truncate * sigma + 0.5)
    return (num / den)[radius:-radius, radius:-radius]


def ssim(prediction: np.ndarray, target: np.ndarray, normalisation: Literal["each", "target"] = "each",
         sigma: float = 1.5, truncate: float = 3.5, k1: float = 0.01, k2: float = 0.03) -> np.ndarray:
    r"""Structural similarity index (SSIM) of prediction and truth, per band.

    For each band, after normalising the images to a maximum of 1 (below), the mean over
    all windows lying inside the image of

    .. math::

        \mathrm{SSIM}(x, y) = \frac{(2\mu_x\mu_y + C_1)(2\sigma_{xy} + C_2)}
        {(\mu_x^2 + \mu_y^2 + C_1)(\sigma_x^2 + \sigma_y^2 + C_2)},
        \qquad C_1 = (K_1 L)^2,\ C_2 = (K_2 L)^2,

    with local means, variances and covariance weighted by a Gaussian window
    (:math:`\sigma = 1.5`, 11×11 pixels), :math:`K_1 = 0.01`, :math:`K_2 = 0.03` and data
    range :math:`L = 1` (Wang et al. 2004). This reproduces skimage's
    ``structural_similarity(..., data_range=1, gaussian_weights=True,
    use_sample_covariance=False)``, which the reference code calls, without depending on
    skimage.

    Parameters
    ----------
    prediction, target : numpy.ndarray
        Shape ``(..., H, W)`` with ``H, W >= 11`` (for the default window); typically
        ``(bands, H, W)`` cutouts of the predicted model and the noiseless galaxy.
    normalisation : {"each", "target"}, optional
        ``"each"`` (default): each image is divided by its own maximum in the band, as
        in App. B.1 of the paper ("each band of input and output is divided by the
        maximum pixel value in that band") and the reference metric code; SSIM is then
        insensitive to an overall flux error, which :math:`\delta F/F` measures instead.
        ``"target"``: both images are divided by the target's maximum, so that flux
        errors lower the score too.
    sigma, truncate, k1, k2 : float, optional
        Window width and truncation (in units of ``sigma``), and the SSIM constants.

    Returns
    -------
    numpy.ndarray
        Shape ``prediction.shape[:-2]``, values in :math:`[-1, 1]`. ``nan`` where the
        target's maximum is :math:`\le 0` (undefined); with ``"each"``, 0 where the
        prediction's maximum is :math:`\le 0` (nothing predicted), as in the reference
        code.

    References
    ----------
    Wang et al. 2004, IEEE TIP 13, 600; Biswas et al. 2025, A&A, Sec. 3.2, 4.4, App. B.1.
    """
    if normalisation not in ("each", "target"):
        raise ValueError(f"normalisation must be 'each' or 'target', not {normalisation!r}")
    p, t = np.asarray(prediction, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if p.shape != t.shape or p.ndim < 2:
        raise ValueError(f"shapes {p.shape} and {t.shape} must match and be (..., H, W)")
    window = 2 * int(truncate * sigma + 0.5) + 1
    if min(p.shape[-2:]) < window:
        raise ValueError(f"images of {p.shape[-2:]} pixels are smaller than the {window}-pixel SSIM window")
    lead = p.shape[:-2]
    p2, t2 = p.reshape((-1,) + p.shape[-2:]), t.reshape((-1,) + t.shape[-2:])
    out = np.empty(len(p2))
    for k, (pk, tk) in enumerate(zip(p2, t2)):
        tMax, pMax = tk.max(), pk.max()
        if not tMax > 0:
            out[k] = np.nan
        elif normalisation == "each" and not pMax > 0:
            out[k] = 0.0
        else:
            pScale = pMax if normalisation == "each" else tMax
            out[k] = _ssimMap(pk / pScale, tk / tMax, sigma, truncate, 1.0, k1, k2).mean()
    return out.reshape(lead)


def cosineSimilarity(prediction: np.ndarray, target: np.ndarray) -> np.ndarray:
    r"""Pixel cosine similarity per band, Eq. 17:

    .. math::

        S_\mathrm{cos} = \frac{\sum_i G_i P_i}{\sqrt{\sum_i G_i^2}\sqrt{\sum_i P_i^2}},

    with :math:`G` the noiseless true image and :math:`P` the prediction, each band
    flattened to a vector.

    Same value as ``models.validation.cosineSimilarity`` on ``(bands, H, W)`` inputs; it
    is not re-exported from there because that module pulls in torch and the whole
    ``models`` package, and because its degenerate cases differ (see below).

    Parameters
    ----------
    prediction, target : numpy.ndarray
        Shape ``(..., H, W)``, same shape.

    Returns
    -------
    numpy.ndarray
        Shape ``prediction.shape[:-2]``, values in :math:`[-1, 1]`. ``nan`` where the
        target is all zero (undefined; the reference code wrote -1), 0 where only the
        prediction is all zero (nothing predicted scores 0, as in the reference code).

    References
    ----------
    Biswas et al. 2025, A&A, Sec. 4.4, Eq. 17.
    """
    p, t = np.asarray(prediction, dtype=np.float64), np.asarray(target, dtype=np.float64)
    if p.shape != t.shape or p.ndim < 2:
        raise ValueError(f"shapes {p.shape} and {t.shape} must match and be (..., H, W)")
    p = p.reshape(p.shape[:-2] + (-1,))
    t = t.reshape(t.shape[:-2] + (-1,))
    pNorm, tNorm = np.linalg.norm(p, axis=-1), np.linalg.norm(t, axis=-1)
    dot = (p * t).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = dot / (pNorm * tNorm)
    return np.where(tNorm > 0, np.where(pNorm > 0, value, 0.0), np.nan)


# ----------------------------------------------------------------------------------------
# Shapes (Sec. 4.4, Eq. 18)
# ----------------------------------------------------------------------------------------


def ellipticity(image: np.ndarray, psf: np.ndarray | None = None, guessSigma: float = 3.0,
                centroid: tuple[float, float] | None = None) -> tuple[float, float]:
    r"""Ellipticity :math:`(e_1, e_2)` of one band from adaptive moments (galsim HSM), Eq. 18.

    .. math::

        e = e_1 + i e_2 = \frac{Q_{xx} - Q_{yy} + 2 i Q_{xy}}{Q_{xx} + Q_{yy}},

    with :math:`Q` the adaptive (elliptical-Gaussian-weighted) second moments (Hirata &
    Seljak 2003). This is the *distortion* (``galsim.Shear.e1/e2``,
    :math:`|e| = (a^2 - b^2)/(a^2 + b^2)`), not the reduced shear :math:`g`. With
    ``psf=None`` (the paper's use) it is the observed, PSF-convolved shape from
    ``galsim.hsm.FindAdaptiveMom``; residuals compare a prediction with the noiseless
    isolated galaxy, both convolved with the same PSF.

    Parameters
    ----------
    image : numpy.ndarray
        One band ``(H, W)``; ``x`` runs along columns, so :math:`e_1 > 0` means elongated
        along the columns (:math:`x`) and :math:`e_2 > 0` along :math:`x = y`.
    psf : numpy.ndarray, optional
        PSF image ``(h, w)``. When given, the PSF-*corrected* distortion from
        ``galsim.hsm.EstimateShear`` with the re-Gaussianisation method (REGAUSS) is
        returned instead of the observed one.
    guessSigma : float, optional
        Initial Gaussian weight width in pixels.
    centroid : tuple of float, optional
        Initial centre ``(x, y)`` in this module's pixel coordinates; default the image
        centre. Give it for a galaxy far from the centre of a large image.

    Returns
    -------
    e1, e2 : float
        ``(nan, nan)`` when the fit fails (HSM error, non-converged moments, all-zero or
        non-finite image, negative weighted flux); never raises for a failed fit.

    References
    ----------
    Biswas et al. 2025, A&A, Sec. 4.4, Eq. 18; Hirata & Seljak 2003, MNRAS 343, 459.
    """
    failed = (math.nan, math.nan)
    data = np.asarray(image, dtype=np.float64)
    if data.ndim != 2:
        raise ValueError(f"ellipticity takes one band (H, W), not shape {data.shape}")
    if not np.all(np.isfinite(data)) or not np.any(data):
        return failed
    # xmin = ymin = 0 puts galsim's pixel (x, y) at data[y, x], as in the rest of this module.
    galImage = galsim.Image(np.ascontiguousarray(data), xmin=0, ymin=0)
    guess = None if centroid is None else galsim.PositionD(float(centroid[0]), float(centroid[1]))
    try:
        if psf is None:
            moments = galsim.hsm.FindAdaptiveMom(galImage, guess_sig=guessSigma, guess_centroid=guess)
            # A negative weighted flux still gives a ratio of moments, but no meaningful shape.
            if not moments.moments_amp > 0:
                return failed
            e1, e2 = moments.observed_shape.e1, moments.observed_shape.e2
        else:
            psfData = np.ascontiguousarray(np.asarray(psf, dtype=np.float64))
            psfImage = galsim.Image(psfData, xmin=0, ymin=0)
            result = galsim.hsm.EstimateShear(galImage, psfImage, shear_est="REGAUSS",
                                              guess_sig_gal=guessSigma, guess_centroid=guess)
            # REGAUSS reports distortions (meas_type "e"); anything else would not be Eq. 18.
            if result.meas_type != "e" or not result.moments_amp > 0:
                return failed
            e1, e2 = result.corrected_e1, result.corrected_e2
    except galsim.errors.GalSimHSMError:
        return failed
    if not (np.isfinite(e1) and np.isfinite(e2)):
        return failed
    return float(e1), float(e2)
