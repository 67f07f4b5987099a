r"""Per-galaxy photometry and blending metrics of the deblender benchmark (Biswas et al. 2025,
Sec. 4.1-4.3): aperture fluxes, flux residuals, contamination, blendedness and colours. The
morphology metrics (SSIM, cosine similarity, ellipticity; Sec. 4.4) are in :mod:`.morphology`.

Everything here is plain numpy / sep on in-memory arrays, so that the
benchmark can call it per galaxy on any deblender's output.

Conventions
-----------
* Images are ``(bands, H, W)`` arrays (one band: ``(H, W)``) in electrons (ADU, gain 1).
* Positions are ``(x, y)`` pixel coordinates, ``x`` along columns and ``y`` along rows,
  pixel centres at integers: ``(x, y) = (0, 0)`` is the centre of ``image[..., 0, 0]``
  (the convention of sep and of numpy indexing; galsim images are built with
  ``xmin = ymin = 0`` so that they share it).
* Angles are in radians, counter-clockwise from the :math:`+x` axis towards :math:`+y`,
  i.e. counter-clockwise on an image displayed with ``origin="lower"``. This is the
  convention of sep, SExtractor and galsim's position angle :math:`\beta`.
* Ellipticities are *distortions*
  :math:`e = (Q_{xx} - Q_{yy} + 2 i Q_{xy}) / (Q_{xx} + Q_{yy})` (Eq. 18), so that
  :math:`e_1 > 0` is elongated along :math:`x` and :math:`e_2 > 0` along :math:`x = y`.

Which image goes where (Sec. 4.2-4.4): with :math:`N` the noise realisation of the
field, :math:`S_i` the noiseless isolated image of galaxy :math:`i` and :math:`P_j` the
deblender's prediction of galaxy :math:`j`,

* :math:`F` = photometry of :math:`S_i + N` (isolated galaxy, *same* noise field);
* :math:`F^b` = photometry of the field :math:`\sum_j S_j + N` (no deblending);
* :math:`F^d` = photometry of the field minus :math:`\sum_{j \ne i} P_j`
  (:func:`deblendedFlux`);

so that noise cancels in :math:`\delta F / F` (Eq. 14), :math:`\kappa` (Eq. 12) and the
blending colour residual :math:`\delta C^B` (Eq. 16), leaving the effect of blending or of
deblending errors. Blendedness (Eq. 11), SSIM, cosine similarity (Eq. 17) and the
ellipticity residuals (:mod:`.morphology`) compare noiseless truths :math:`S_i` with the
predictions :math:`P_i`.

References
----------
Biswas, B., Aubourg, E., Boucaud, A., et al. 2025, A&A, "MADNESS Deblender: Maximum A
posteriori with Deep NEural networks for Source Separation", Sec. 4.1-4.4, App. B.1.

Bosch, J., et al. 2018, PASJ 70, S5 (blendedness).

Barbary, K. 2016, JOSS 1, 58 (SEP).

Examples
--------
>>> import numpy as np
>>> a, b = apertureAxes(np.array([3.0]), np.array([2.0]), psfFwhm=4.0)
>>> a.round(4).tolist(), b.round(4).tolist()
([7.2111], [5.6569])
>>> flux = aperturePhotometry(np.ones((64, 64)), 32.0, 32.0, a, b, 0.3)
>>> bool(np.isclose(flux[0], np.pi * a[0] * b[0]))
True
>>> round(float(contamination(1.2, 1.0)), 12), round(float(relativeFluxError(0.9, 1.0)), 12)
(0.2, -0.1)
>>> galaxy = np.zeros((1, 16, 16)); galaxy[0, 8, 8] = 1.0
>>> blendedness(galaxy, galaxy + galaxy).tolist()
[0.5]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import overload

import numpy as np
import sep
from numpy.typing import ArrayLike

__all__ = [
    "apertureAxes",
    "aperturePhotometry",
    "multibandAperturePhotometry",
    "deblendedFlux",
    "relativeFluxError",
    "blendedness",
    "contamination",
    "colour",
    "colourResidual",
    "GalaxyMetrics",
]


# ----------------------------------------------------------------------------------------
# Aperture photometry (Sec. 4.2, Eq. 13-14)
# ----------------------------------------------------------------------------------------


def apertureAxes(aHlr: ArrayLike, bHlr: ArrayLike, psfFwhm: ArrayLike,
                 scale: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    r"""Semi-axes of the photometry aperture, Eq. 13 of Biswas et al. (2025).

    .. math::

        a = \sqrt{(s\,a_\mathrm{hlr})^2 + d^2}, \qquad
        b = \sqrt{(s\,b_\mathrm{hlr})^2 + d^2},

    with :math:`s` = ``scale`` (2 in the paper) and :math:`d` the PSF **full** width at
    half maximum of the band, *not* scaled by :math:`s`. For :math:`s = 2` this equals the
    reference code's :math:`2\sqrt{a_\mathrm{hlr}^2 + (d/2)^2}` (sep's ``r = 2`` applied
    to :math:`\sqrt{a_\mathrm{hlr}^2 + (\mathrm{FWHM}/2)^2}`); for other scales the two
    differ, and this function follows the paper's equation.

    Parameters
    ----------
    aHlr, bHlr : array_like
        Half-light semi-major and semi-minor axes of the galaxies, in pixels.
    psfFwhm : array_like
        PSF FWHM :math:`d` in pixels; a float, or an array that broadcasts against the
        axes (e.g. ``fwhm[:, None]`` with ``aHlr[None, :]`` for a ``(bands, n)`` table).
    scale : float, optional
        Factor :math:`s` on the half-light axes.

    Returns
    -------
    a, b : numpy.ndarray
        Aperture semi-axes in pixels, broadcast shape of the inputs.

    References
    ----------
    Biswas et al. 2025, A&A, Sec. 4.2, Eq. 13.
    """
    aHlr, bHlr, d = (np.asarray(v, dtype=np.float64) for v in (aHlr, bHlr, psfFwhm))
    return np.hypot(scale * aHlr, d), np.hypot(scale * bHlr, d)


def _sepEllipse(a: np.ndarray, b: np.ndarray, theta: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ellipse parameters in the form sep requires: ``a >= b >= 0`` and ``theta`` in [-π/2, π/2).

    sep measures ``theta`` exactly as this module does (from +x towards +y), so only
    the ranges change: an ellipse with ``b > a`` is the same ellipse with the axes
    swapped and turned by π/2, and an ellipse is unchanged by a turn of π.
    """
    if np.any(~np.isfinite(a)) or np.any(~np.isfinite(b)) or np.any(~np.isfinite(theta)):
        raise ValueError("aperture axes and angles must be finite")
    if np.any(a < 0) or np.any(b < 0):
        raise ValueError("aperture semi-axes must be non-negative")
    swap = b > a
    major, minor = np.where(swap, b, a), np.where(swap, a, b)
    theta = np.where(swap, theta + 0.5 * np.pi, theta)
    theta = np.mod(theta + 0.5 * np.pi, np.pi) - 0.5 * np.pi
    return major, minor, theta


@overload
def aperturePhotometry(image: np.ndarray, x: ArrayLike, y: ArrayLike, a: ArrayLike, b: ArrayLike,
                       theta: ArrayLike, variance: None = None) -> np.ndarray: ...


@overload
def aperturePhotometry(image: np.ndarray, x: ArrayLike, y: ArrayLike, a: ArrayLike, b: ArrayLike,
                       theta: ArrayLike, variance: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def aperturePhotometry(image, x, y, a, b, theta, variance=None):
    r"""Sums of one band image in elliptical apertures (SEP's ``sum_ellipse``).

    .. math::

        F = \sum_{p} w_p\, I_p,

    where :math:`w_p \in [0, 1]` is the exact fraction of pixel :math:`p` inside the
    ellipse with centre :math:`(x, y)`, semi-axes :math:`(a, b)` and position angle
    :math:`\theta` (exact overlap, ``subpix=0``, rather than sep's default 5×5
    sub-sampling, so that a flat image gives exactly :math:`\pi a b`). No background is
    subtracted: the simulated images are background-subtracted already.

    Parameters
    ----------
    image : numpy.ndarray
        One band, shape ``(H, W)``.
    x, y : array_like
        Aperture centres in pixels (``x`` along columns, pixel centres at integers).
    a, b : array_like
        Semi-axes in pixels (e.g. from :func:`apertureAxes`); ``b > a`` is allowed.
    theta : array_like
        Angle of the ``a`` axis in radians, counter-clockwise from :math:`+x` towards
        :math:`+y` (sep's convention; any value, it is wrapped into sep's
        :math:`[-\pi/2, \pi/2]`).
    variance : float or numpy.ndarray, optional
        Per-pixel variance (scalar or ``(H, W)``). When given, the error
        :math:`\sqrt{\sum_p w_p \sigma_p^2}` is returned too.

    Returns
    -------
    flux : numpy.ndarray
        Shape ``(n,)``, the broadcast length of the position and ellipse arguments.
    fluxErr : numpy.ndarray
        Only when ``variance`` is given; shape ``(n,)``.

    Notes
    -----
    Apertures crossing the image edge are truncated (sep's ``APER_TRUNC`` flag); the
    benchmark's galaxies lie far enough from the edges for this not to matter.

    References
    ----------
    Biswas et al. 2025, A&A, Sec. 4.2; Barbary 2016, JOSS 1, 58.
    """
    image = np.asarray(image)
    if image.ndim != 2:
        raise ValueError(f"aperturePhotometry takes one band (H, W), not shape {image.shape}")
    # sep wants C-contiguous native-endian float arrays.
    data = np.ascontiguousarray(image, dtype=np.float64)
    x, y, a, b, theta = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in (x, y, a, b, theta))
    x, y, a, b, theta = (np.ravel(v) for v in np.broadcast_arrays(x, y, a, b, theta))
    a, b, theta = _sepEllipse(a, b, theta)
    var: float | np.ndarray | None = None
    if variance is not None:
        var = np.asarray(variance, dtype=np.float64)
        var = float(var) if var.ndim == 0 else np.ascontiguousarray(var)
    flux, fluxErr, _ = sep.sum_ellipse(data, x, y, a, b, theta, r=1.0, var=var, subpix=0)
    if variance is None:
        return np.asarray(flux)
    return np.asarray(flux), np.asarray(fluxErr)


def multibandAperturePhotometry(image: np.ndarray, x: ArrayLike, y: ArrayLike, a: ArrayLike, b: ArrayLike,
                                theta: ArrayLike) -> np.ndarray:
    """:func:`aperturePhotometry` in every band of a ``(bands, H, W)`` image.

    Parameters
    ----------
    image : numpy.ndarray
        Shape ``(bands, H, W)``.
    x, y, theta : array_like
        Centres and angles of the ``n`` apertures, shared by all bands.
    a, b : array_like
        Semi-axes, broadcast against ``(bands, n)``: a scalar or ``(n,)`` uses the same
        aperture in every band, ``(bands, 1)`` or ``(bands, n)`` per-band apertures (Eq. 13
        depends on the band through the PSF FWHM).

    Returns
    -------
    numpy.ndarray
        Fluxes, shape ``(bands, n)``.

    References
    ----------
    Biswas et al. 2025, A&A, Sec. 4.2, Eq. 13.
    """
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"expected a (bands, H, W) image, got shape {image.shape}")
    x, y, theta = (np.ravel(np.asarray(v, dtype=np.float64)) for v in (x, y, theta))
    n = np.broadcast(x, y, theta).size
    bands = image.shape[0]
    a = np.broadcast_to(np.asarray(a, dtype=np.float64), (bands, n))
    b = np.broadcast_to(np.asarray(b, dtype=np.float64), (bands, n))
    return np.stack([aperturePhotometry(image[k], x, y, a[k], b[k], theta) for k in range(bands)])


def deblendedFlux(field: np.ndarray, models: Sequence[np.ndarray] | np.ndarray, index: int,
                  x: float, y: float, a: ArrayLike, b: ArrayLike, theta: float) -> np.ndarray:
    r"""Aperture flux :math:`F^d` of galaxy ``index`` after removing the other predictions.

    As in Sec. 4.2 of the paper, the aperture is centred on the true position and the
    predicted images of all *other* galaxies are subtracted from the field:

    .. math::

        F^d_{i,n} = \mathrm{Ap}_{i,n}\Big(I_n - \sum_{j \ne i} P_{j,n}\Big),

    which keeps the field's noise (and the deblender's error on galaxy :math:`i`'s
    neighbours) inside the aperture; compare with :math:`F` measured on the isolated
    galaxy in the same noise field (Eq. 14).

    Parameters
    ----------
    field : numpy.ndarray
        The observed (noisy, blended) field, ``(bands, H, W)``.
    models : sequence of numpy.ndarray or numpy.ndarray
        Predicted image of every galaxy of the field on the full field grid:
        ``n`` arrays of shape ``(bands, H, W)`` (or one ``(n, bands, H, W)`` array).
    index : int
        Which galaxy to measure.
    x, y : float
        Its true centre in pixels.
    a, b : float or array_like
        Aperture semi-axes in pixels, scalar or per band ``(bands,)``.
    theta : float
        Aperture angle, radians counter-clockwise from :math:`+x`.

    Returns
    -------
    numpy.ndarray
        :math:`F^d`, shape ``(bands,)``.

    References
    ----------
    Biswas et al. 2025, A&A, Sec. 4.2, Eq. 13-14.
    """
    field = np.asarray(field, dtype=np.float64)
    count = len(models)
    if not -count <= index < count:
        raise IndexError(f"galaxy index {index} out of range for {count} models")
    index %= count
    residual = field.copy()
    for j in range(count):
        if j != index:
            model = np.asarray(models[j])
            if model.shape != field.shape:
                raise ValueError(f"model {j} has shape {model.shape}, the field {field.shape}")
            residual -= model
    bands = field.shape[0]
    a = np.broadcast_to(np.asarray(a, dtype=np.float64), (bands,))[:, None]
    b = np.broadcast_to(np.asarray(b, dtype=np.float64), (bands,))[:, None]
    return multibandAperturePhotometry(residual, [x], [y], a, b, [theta])[:, 0]


def relativeFluxError(Fd: ArrayLike, F: ArrayLike) -> np.ndarray:
    r"""Relative flux residual, Eq. 14: :math:`\delta F / F = (F^d - F) / F`.

    Parameters
    ----------
    Fd : array_like
        Flux measured after deblending (:func:`deblendedFlux`), or on the blended field
        for the no-deblending reference.
    F : array_like
        Flux of the isolated galaxy in the same noise field.

    Returns
    -------
    numpy.ndarray
        Elementwise; ``inf`` or ``nan`` where :math:`F = 0` (no warning).

    References
    ----------
    Biswas et al. 2025, A&A, Sec. 4.2, Eq. 14.
    """
    Fd, F = np.asarray(Fd, dtype=np.float64), np.asarray(F, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return (Fd - F) / F


def contamination(Fb: ArrayLike, F: ArrayLike) -> np.ndarray:
    r"""Contamination, Eq. 12: :math:`\kappa = F^b / F - 1`.

    Parameters
    ----------
    Fb : array_like
        Aperture flux on the blended noisy field, without deblending.
    F : array_like
        Aperture flux of the isolated galaxy in the same noise field.

    Returns
    -------
    numpy.ndarray
        Elementwise; 0 for an isolated galaxy, the fraction of the aperture flux
        contributed by neighbours otherwise.

    References
    ----------
    Biswas et al. 2025, A&A, Sec. 4.1, Eq. 12.
    """
    Fb, F = np.asarray(Fb, dtype=np.float64), np.asarray(F, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return Fb / F - 1.0


# ----------------------------------------------------------------------------------------
# Blendedness (Sec. 4.1, Eq. 11)
# ----------------------------------------------------------------------------------------


def blendedness(isolated: np.ndarray, total: np.ndarray) -> np.ndarray:
    r"""Blendedness per band, Eq. 11 (Bosch et al. 2018):

    .. math::

        \beta_n = 1 - \frac{S_n \cdot S_n}{S^b_n \cdot S_n},

    with :math:`S_n` the noiseless pixels of the galaxy and :math:`S^b_n` those of the
    noiseless blended field (all galaxies, this one included), both flattened over the
    whole image. 0 for an isolated galaxy, towards 1 when neighbours dominate its pixels.

    Parameters
    ----------
    isolated : numpy.ndarray
        Noiseless image of the galaxy, ``(..., H, W)``, on the same grid as ``total``.
    total : numpy.ndarray
        Noiseless sum of all galaxies of the field, same shape.

    Returns
    -------
    numpy.ndarray
        Shape ``isolated.shape[:-2]`` (``(bands,)``; a 0-d array for one band); ``nan``
        where :math:`S^b_n \cdot S_n \le 0` (e.g. the galaxy has no flux in that band),
        where the reference code wrote the sentinel -1.

    References
    ----------
    Biswas et al. 2025, A&A, Sec. 4.1, Eq. 11; Bosch et al. 2018, PASJ 70, S5.
    """
    s, sb = np.asarray(isolated, dtype=np.float64), np.asarray(total, dtype=np.float64)
    if s.shape != sb.shape or s.ndim < 2:
        raise ValueError(f"shapes {s.shape} and {sb.shape} must match and be (..., H, W)")
    self = (s * s).sum(axis=(-2, -1))
    cross = (sb * s).sum(axis=(-2, -1))
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(cross > 0, 1.0 - self / np.where(cross > 0, cross, 1.0), np.nan)


# ----------------------------------------------------------------------------------------
# Colour (Sec. 4.3, Eq. 15-16)
# ----------------------------------------------------------------------------------------


def colour(fluxG: ArrayLike, fluxR: ArrayLike) -> np.ndarray:
    r"""Colour :math:`g - r = -2.5 \log_{10}(F_g / F_r)` in magnitudes.

    Zero points cancel only if both fluxes are in the same units per magnitude system;
    for colour *residuals* (:func:`colourResidual`) they cancel regardless.

    Returns
    -------
    numpy.ndarray
        Elementwise; ``nan`` where either flux is :math:`\le 0` or not finite (the
        logarithm is undefined; noisy photometry of faint galaxies can be negative).
    """
    g, r = np.asarray(fluxG, dtype=np.float64), np.asarray(fluxR, dtype=np.float64)
    valid = np.isfinite(g) & np.isfinite(r) & (g > 0) & (r > 0)
    ratio = np.where(valid, g, 1.0) / np.where(valid, r, 1.0)
    return np.where(valid, -2.5 * np.log10(ratio), np.nan)


def colourResidual(fluxGPred: ArrayLike, fluxRPred: ArrayLike, fluxGRef: ArrayLike,
                   fluxRRef: ArrayLike) -> np.ndarray:
    r"""Colour residual :math:`\delta C = C_m - C_\mathrm{ref}`, Eq. 15-16.

    .. math::

        \delta C = -2.5\log_{10}\frac{F_g^m}{F_r^m} + 2.5\log_{10}\frac{F_g^\mathrm{ref}}{F_r^\mathrm{ref}},

    with :math:`m` a method (deblended fluxes :math:`F^d`, or :math:`F^b` for no
    deblending) and the reference either the noisy isolated photometry :math:`F`
    (blending residual :math:`\delta C^B`, Eq. 16) or catalogue fluxes (true residual
    :math:`\delta C^T`, Eq. 15).

    Returns
    -------
    numpy.ndarray
        Elementwise, in magnitudes; ``nan`` where any of the four fluxes is
        :math:`\le 0` or not finite.

    References
    ----------
    Biswas et al. 2025, A&A, Sec. 4.3, Eq. 15-16.
    """
    return colour(fluxGPred, fluxRPred) - colour(fluxGRef, fluxRRef)


# ----------------------------------------------------------------------------------------
# Per-galaxy container
# ----------------------------------------------------------------------------------------


@dataclass
class GalaxyMetrics:
    """Benchmark results of one galaxy for one deblending method.

    Attributes
    ----------
    deltaF : numpy.ndarray
        Relative flux residual :math:`\\delta F / F` per band (Eq. 14).
    contamination : numpy.ndarray
        :math:`\\kappa` per band (Eq. 12); a property of the field, not of the method.
    blendedness : numpy.ndarray
        :math:`\\beta` per band (Eq. 11); a property of the field, not of the method.
    ssim : numpy.ndarray
        SSIM per band (:func:`.morphology.ssim`).
    cosine : numpy.ndarray
        Cosine similarity per band (Eq. 17, :func:`.morphology.cosineSimilarity`).
    e1Residual, e2Residual : float
        Ellipticity of the prediction minus that of the noiseless isolated galaxy
        (Eq. 18, one band, the paper's r band).
    colourResidual : float
        :math:`g - r` blending residual :math:`\\delta C^B` (Eq. 16), magnitudes.
    """

    deltaF: np.ndarray
    contamination: np.ndarray
    blendedness: np.ndarray
    ssim: np.ndarray
    cosine: np.ndarray
    e1Residual: float = math.nan
    e2Residual: float = math.nan
    colourResidual: float = math.nan

    _PER_BAND = ("deltaF", "contamination", "blendedness", "ssim", "cosine")

    def toRow(self, bands: Sequence[str]) -> dict[str, float]:
        """Flat table row: ``"{band}_{name}"`` for per-band values, then the scalars.

        Parameters
        ----------
        bands : sequence of str
            Band names in the order of the per-band arrays.
        """
        row: dict[str, float] = {}
        for name in self._PER_BAND:
            values = np.asarray(getattr(self, name), dtype=np.float64)
            if values.shape != (len(bands),):
                raise ValueError(f"{name} has shape {values.shape}, expected ({len(bands)},)")
            row.update({f"{band}_{name}": float(v) for band, v in zip(bands, values)})
        row.update(e1Residual=float(self.e1Residual), e2Residual=float(self.e2Residual),
                   colourResidual=float(self.colourResidual))
        return row
