r"""Unrecognised blends: significant positive residual peaks left by a blend's fit.

A galaxy that detection merged with a neighbour has no peak, so no child: its light stays in the
residual :math:`r = y - \sum_k m_k` of the fit, or is soaked up by the neighbours' models. The
residual is searched with a matched filter, the PSF, in noise units, all bands together:

.. math::

    \nu(p) = \frac{\sum_b \left(P_b \star w_b r_b\right)(p)}{\sqrt{\sum_b \left(P_b^2 \star w_b\right)(p)}},

with :math:`P_b` band :math:`b`'s PSF image (unit sum), :math:`w_b` the inverse-variance weights and
:math:`\star` the cross-correlation. In pure noise :math:`\nu` is a unit Gaussian at every pixel: it is
the significance of a point source of flat spectrum fitted at :math:`p` to the residual. Local maxima of
:math:`\nu` above a threshold, inside the parent footprint and at least ``minSeparation`` pixels
from every peak the blend has, are the candidates, strongest first (:func:`findResidualPeaks`).
The deblend task adds them as new sources, refits, and repeats (``residualPeakRounds``).

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 5 (the final residual as a sign of unrecognised
blends); Bosch et al. 2018, PASJ 70, S5 (detection by a PSF-matched filter in LSST's pipelines).

Examples
--------
One point source left in the residual, far from the blend's only peak; its significance is that of
a point-source fit, :math:`F \sqrt{\sum P^2}` for unit weights:

>>> import numpy as np
>>> yy, xx = np.mgrid[-3:4, -3:4]
>>> psf = np.exp(-(xx**2 + yy**2) / 2.0)
>>> psf /= psf.sum()
>>> residual = np.zeros((1, 30, 30))
>>> residual[0, 17:24, 7:14] += 40 * psf              # centred on row 20, column 10
>>> nu = residualSignificance(residual, np.ones((1, 30, 30)), [psf])
>>> peaks = findResidualPeaks(nu, np.ones((30, 30), bool), [(5.0, 5.0)], threshold=5.0)
>>> [(r, c, round(v, 2)) for r, c, v in peaks], round(float(40 * np.sqrt((psf**2).sum())), 2)   # F sqrt(sum P^2)
([(20, 10, 11.29)], 11.29)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage, signal

__all__ = ["residualSignificance", "findResidualPeaks"]


def residualSignificance(residual: np.ndarray, weight: np.ndarray, psfImages: Sequence[np.ndarray]) -> np.ndarray:
    r"""The matched-filter significance :math:`\nu` (module docstring) of a residual.

    Parameters
    ----------
    residual : `numpy.ndarray`
        (bands, H, W) data minus model.
    weight : `numpy.ndarray`
        (bands, H, W) inverse variances, zero where a pixel is not to count.
    psfImages : sequence of `numpy.ndarray`
        Each band's PSF image (odd sides), normalised here to unit sum.

    Returns
    -------
    nu : `numpy.ndarray`
        (H, W); zero where no band has weight under the filter.

    Examples
    --------
    >>> import numpy as np
    >>> nu = residualSignificance(np.zeros((2, 9, 9)), np.ones((2, 9, 9)), [np.ones((3, 3))] * 2)
    >>> float(np.abs(nu).max())
    0.0
    """
    numerator = np.zeros(residual.shape[1:])
    denominator = np.zeros(residual.shape[1:])
    for band, psf in enumerate(psfImages):
        kernel = np.asarray(psf, float)
        kernel = kernel / kernel.sum()
        flipped = kernel[::-1, ::-1]  # correlation = convolution with the flipped kernel
        numerator += signal.fftconvolve(weight[band] * residual[band], flipped, mode="same")
        denominator += signal.fftconvolve(weight[band], flipped**2, mode="same")
    good = denominator > 1e-12 * max(float(denominator.max()), 1e-300)
    return np.where(good, numerator / np.sqrt(np.where(good, denominator, 1.0)), 0.0)


def findResidualPeaks(significance: np.ndarray, inside: np.ndarray, existing: Sequence[tuple[float, float]],
                      threshold: float = 5.0, minSeparation: float = 4.0,
                      maxPeaks: int = 1) -> list[tuple[int, int, float]]:
    """Local maxima of ``significance`` that are candidates for new sources, strongest first.

    Parameters
    ----------
    significance : `numpy.ndarray`
        (H, W) matched-filter significance (:func:`residualSignificance`).
    inside : `numpy.ndarray`
        (H, W) bool: the parent footprint's pixels; peaks elsewhere are ignored.
    existing : sequence of (`float`, `float`)
        (row, column) of the blend's peaks, in the same pixels.
    threshold : `float`
        Least significance of a new peak.
    minSeparation : `float`
        Least distance, pixels, of a new peak from every existing and every other new peak.
    maxPeaks : `int`
        Most peaks returned.

    Returns
    -------
    peaks : `list` [(`int`, `int`, `float`)]
        (row, column, significance) of each new peak.

    Examples
    --------
    >>> import numpy as np
    >>> nu = np.zeros((10, 10)); nu[2, 2], nu[7, 7] = 9.0, 6.0
    >>> findResidualPeaks(nu, np.ones((10, 10), bool), [(2.0, 3.0)], maxPeaks=2)   # (2, 2) is on a peak
    [(7, 7, 6.0)]
    """
    local = (significance == ndimage.maximum_filter(significance, size=3)) & (significance > threshold) & inside
    rows, cols = np.nonzero(local)
    order = np.argsort(-significance[rows, cols], kind="stable")
    taken: list[tuple[float, float]] = [(float(r), float(c)) for r, c in existing]
    peaks: list[tuple[int, int, float]] = []
    for i in order:
        r, c = int(rows[i]), int(cols[i])
        if all(np.hypot(r - tr, c - tc) >= minSeparation for tr, tc in taken):
            peaks.append((r, c, float(significance[r, c])))
            taken.append((float(r), float(c)))
            if len(peaks) == maxPeaks:
                break
    return peaks
