r"""The detection image of :func:`~lsst.meas.extensions.madness.detect.detectParents`.

The bands of a multiband exposure combined into one image of unit noise (a chi image,
:func:`makeDetectionImage`), and the Gaussian matched filter that smooths it before
thresholding, rescaled to keep unit noise (:func:`matchedFilter`), as LSST's
``SourceDetectionTask`` convolves with the PSF.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from .afw import ImageD, MultibandExposure

__all__ = ["makeDetectionImage", "matchedFilter"]

#: Mask planes whose pixels are left out of the detection image when the mask has them.
DEFAULT_BAD_MASK_PLANES: tuple[str, ...] = ("BAD", "NO_DATA", "SAT")


def _validPixels(mExposure: MultibandExposure, bandIndices: list[int], badMaskPlanes: Sequence[str]) -> np.ndarray:
    """``(band, y, x)`` booleans: finite image, finite positive variance, no bad mask bit."""
    image = mExposure.image.array[bandIndices]
    variance = mExposure.variance.array[bandIndices]
    mask = mExposure.mask.array[bandIndices]
    planes = mExposure.mask.getMaskPlaneDict()
    badBits = 0
    for name in badMaskPlanes:
        if name in planes:
            badBits |= 1 << planes[name]
    with np.errstate(invalid="ignore"):
        goodVariance = np.isfinite(variance) & (variance > 0)
    if not goodVariance.any():
        raise ValueError(
            "the variance is zero, negative or non-finite in every pixel of bands "
            f"{[mExposure.bands[i] for i in bandIndices]}; cannot make a detection image"
        )
    valid = goodVariance & np.isfinite(image) & ((mask & np.int32(badBits)) == 0)
    if not valid.any():
        raise ValueError(
            f"every pixel with a usable variance is masked {list(badMaskPlanes)} or has a non-finite image value"
        )
    return valid


def _bandIndices(mExposure: MultibandExposure, bands: Sequence[str] | None) -> list[int]:
    if len(mExposure.bands) == 0:
        raise ValueError("the exposure has no bands; detection needs at least one")
    if bands is None:
        return list(range(len(mExposure.bands)))
    bands = [bands] if isinstance(bands, str) else list(bands)
    if not bands:
        raise ValueError("bands is empty; give at least one band to detect on, or None for all")
    unknown = [band for band in bands if band not in mExposure.bands]
    if unknown:
        raise ValueError(f"bands {unknown} are not in the exposure, which has {list(mExposure.bands)}")
    return [mExposure.bands.index(band) for band in bands]


def makeDetectionImage(
    mExposure: MultibandExposure,
    bands: Sequence[str] | None = None,
    badMaskPlanes: Sequence[str] = DEFAULT_BAD_MASK_PLANES,
) -> tuple[ImageD, np.ndarray]:
    r"""The inverse-variance weighted band sum, scaled to unit noise (a chi image).

    With :math:`I_b` and :math:`V_b` the image and variance of band :math:`b` and the
    weight :math:`w_b = 1 / V_b` on a usable pixel (finite image, finite positive
    variance, none of ``badMaskPlanes`` set) and :math:`w_b = 0` otherwise,

    .. math::

        D = \frac{\sum_b w_b I_b}{\sqrt{\sum_b w_b}},
        \qquad
        \operatorname{Var}(D) = \frac{\sum_b w_b^2 V_b}{\sum_b w_b} = 1,

    so :math:`D` is a per-pixel signal-to-noise ratio, optimal for a source whose flux is
    the same in every band. Pixels with no usable band are 0.

    Parameters
    ----------
    mExposure
        The exposure.
    bands
        Bands to combine (default: all).
    badMaskPlanes
        Mask planes that make a pixel unusable in its band.

    Returns
    -------
    detection : `ImageD`
        :math:`D`, with the exposure's ``xy0``.
    covered : `numpy.ndarray`
        ``(y, x)`` booleans, True where at least one band is usable.

    Raises
    ------
    ValueError
        If there are no bands, a band is unknown, or no pixel has a usable variance.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.afw import MultibandExposure
    >>> image = np.full((2, 3, 3), 2.0, np.float32)
    >>> variance = np.stack([np.full((3, 3), 1.0), np.full((3, 3), 4.0)]).astype(np.float32)
    >>> mExp = MultibandExposure.fromArrays(["g", "r"], image, variance=variance)
    >>> detection, covered = makeDetectionImage(mExp)
    >>> round(float(detection.array[1, 1]), 4), bool(covered.all())  # (2 + 2/4) / sqrt(1.25)
    (2.2361, True)
    """
    indices = _bandIndices(mExposure, bands)
    valid = _validPixels(mExposure, indices, badMaskPlanes)
    image = mExposure.image.array[indices].astype(np.float64)
    variance = mExposure.variance.array[indices].astype(np.float64)
    weight = np.zeros_like(variance)
    np.divide(1.0, variance, out=weight, where=valid)
    weightSum = weight.sum(axis=0)
    numerator = np.where(valid, weight * np.where(valid, image, 0.0), 0.0).sum(axis=0)
    covered = weightSum > 0
    detection = np.zeros_like(weightSum)
    np.divide(numerator, np.sqrt(weightSum), out=detection, where=covered)
    return ImageD(detection, xy0=mExposure.getXY0()), covered


def _psfSigma(mExposure: MultibandExposure, bandIndices: list[int]) -> float:
    """Mean Gaussian-equivalent sigma (pixels) of the PSFs of the bands; 0 without PSFs."""
    sigmas = []
    for b in bandIndices:
        psf = mExposure.getPsfs()[b]
        if psf is None:
            continue
        kernel = psf.kernel.astype(np.float64)
        yy, xx = np.indices(kernel.shape, dtype=np.float64)
        yy -= kernel.shape[0] // 2
        xx -= kernel.shape[1] // 2
        # Second moments of a noiseless kernel: unweighted ones are fine and exact for a Gaussian.
        total = kernel.sum()
        sigmas.append(np.sqrt(0.5 * ((kernel * (xx**2 + yy**2)).sum() / total)))
    return float(np.mean(sigmas)) if sigmas else 0.0


def matchedFilter(detection: np.ndarray, sigma: float) -> np.ndarray:
    r"""Smooth a unit-noise image with a Gaussian and rescale it to unit noise again.

    .. math:: D_\sigma = \frac{G_\sigma * D}{\sqrt{\sum G_\sigma^2}}

    For a source shaped like :math:`G_\sigma` this is the maximum-likelihood detection
    statistic, so thresholding :math:`D_\sigma` at :math:`n_\sigma` finds sources down to
    an integrated S/N of about :math:`n_\sigma` rather than a per-pixel one.

    Examples
    --------
    >>> noise = np.random.default_rng(0).normal(size=(400, 400))
    >>> round(float(matchedFilter(noise, 2.0).std()), 1)
    1.0
    """
    if sigma <= 0:
        return detection
    return ndimage.gaussian_filter(detection, sigma, mode="constant") / _smoothedNoise(sigma)


def _smoothedNoise(sigma: float) -> float:
    """Standard deviation of unit white noise after ``ndimage.gaussian_filter(·, sigma)``."""
    if sigma <= 0:
        return 1.0
    impulse = np.zeros((int(8 * sigma) * 2 + 1,) * 2)
    impulse[impulse.shape[0] // 2, impulse.shape[1] // 2] = 1.0
    return float(np.sqrt(np.sum(ndimage.gaussian_filter(impulse, sigma, mode="constant") ** 2)))

