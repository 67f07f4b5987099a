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

A model that misfits a bright galaxy also leaves positive residual peaks, many times the pixel
noise. A missing source leaves a positive bump only; a misfit leaves residuals of both signs. So a
candidate must also stand out against the most negative significance within ``misfitRadius``
pixels: :math:`\nu(p) \ge \kappa \, \max(0, -\min_{|q - p| \le R} \nu(q))`.

The deblend task adds each candidate as a new source and refits the blend. It keeps the new source
only if the refit passes two tests. The first is a likelihood-ratio test: the log-likelihood must
rise by more than a new source's :math:`d` free latent numbers would gain on pure noise,

.. math::

    \Delta \ln L \ge \tfrac{1}{2} \chi^2_{d}(1 - \alpha),

with :math:`\alpha` the false-alarm probability (:func:`likelihoodGainThreshold`). The second asks
the prior: the new source's log-prior must not fall in the low tail of the training galaxies'
(a source that takes a misfit's light is not drawn like a galaxy). Then the task repeats
(``residualPeakRounds``); a rejected candidate is not proposed again.

References
----------
Wilks 1938, Ann. Math. Stat. 9, 60 (the likelihood-ratio test);
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
from scipy import ndimage, signal, stats

__all__ = ["residualSignificance", "findResidualPeaks", "likelihoodGainThreshold"]


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
                      threshold: float = 5.0, minSeparation: float = 4.0, maxPeaks: int = 1,
                      misfitRatio: float = 0.0, misfitRadius: float = 8.0) -> list[tuple[int, int, float]]:
    r"""Local maxima of ``significance`` that are candidates for new sources, strongest first.

    Parameters
    ----------
    significance : `numpy.ndarray`
        (H, W) matched-filter significance (:func:`residualSignificance`).
    inside : `numpy.ndarray`
        (H, W) bool: the parent footprint's pixels; peaks elsewhere are ignored.
    existing : sequence of (`float`, `float`)
        (row, column) of the blend's peaks, and of places not to propose again, in the same pixels.
    threshold : `float`
        Least significance of a new peak.
    minSeparation : `float`
        Least distance, pixels, of a new peak from every existing and every other new peak.
    maxPeaks : `int`
        Most peaks returned.
    misfitRatio : `float`
        :math:`\kappa` (module docstring): a peak must reach this multiple of the most negative
        significance inside the footprint within ``misfitRadius``; 0 turns the test off.
    misfitRadius : `float`
        :math:`R`, pixels.

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

    Next to a residual of -10 (a misfit's hole), the peak of 6 is not a source:

    >>> nu[7, 9] = -10.0
    >>> findResidualPeaks(nu, np.ones((10, 10), bool), [(2.0, 3.0)], maxPeaks=2, misfitRatio=0.75)
    []
    """
    local = (significance == ndimage.maximum_filter(significance, size=3)) & (significance > threshold) & inside
    if misfitRatio > 0:
        half = int(np.floor(misfitRadius))
        yy, xx = np.mgrid[-half:half + 1, -half:half + 1]
        hole = -ndimage.minimum_filter(np.where(inside, significance, 0.0), footprint=np.hypot(yy, xx) <= misfitRadius,
                                       mode="constant", cval=0.0)
        local &= significance >= misfitRatio * np.maximum(hole, 0.0)
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


def likelihoodGainThreshold(nParameters: int, falseAlarm: float) -> float:
    r"""The least log-likelihood gain :math:`\tfrac{1}{2}\chi^2_d(1 - \alpha)` that keeps new sources.

    By Wilks' theorem, on pure noise twice the gain of :math:`d` extra free parameters follows a
    :math:`\chi^2_d` distribution; a gain above this threshold happens by chance with probability
    :math:`\alpha`.

    Parameters
    ----------
    nParameters : `int`
        :math:`d`: the new sources' free numbers (their latent dimensions together).
    falseAlarm : `float`
        :math:`\alpha`, in (0, 1).

    Returns
    -------
    gain : `float`
        In units of :math:`\ln L`.

    Examples
    --------
    >>> round(likelihoodGainThreshold(16, 1e-3), 2)    # one galaxy of a 16-d latent space
    19.63
    >>> round(likelihoodGainThreshold(1, 0.3173), 2)   # one parameter, 1 sigma: half of 1
    0.5
    """
    if nParameters < 1 or not 0 < falseAlarm < 1:
        raise ValueError(f"need nParameters >= 1 and 0 < falseAlarm < 1, got {nParameters} and {falseAlarm}")
    return 0.5 * float(stats.chi2.isf(falseAlarm, nParameters))
