r"""From the model frame to an exposure: the difference kernel of each band's PSF.

Models with a :class:`~lsst.meas.extensions.madness.models.config.ModelFrame` draw galaxies
convolved with a narrow Gaussian model PSF :math:`G_m`, on pixels of the exposure's scale
(for now both are 0.2″; other pixel scales are the observation model's work). With the
exposure's pixelated PSF image :math:`P` of a band (pixel response included, as an LSST PSF
kernel image is), an observed galaxy is the model-frame galaxy convolved with the
**difference kernel**

.. math:: \tilde D(\mathbf k) = \frac{\tilde P(\mathbf k)}{\tilde G_m(\mathbf k)\,
          \operatorname{sinc}(f_x)\operatorname{sinc}(f_y)},

with :math:`f` the frequency in cycles per pixel (the model frame has the pixel response
too, so it is divided out once). :math:`\tilde D` is computed on the FFT grid of the
convolution, its modulus capped at 1 (a PSF narrower than the model PSF, or a noisy PSF
image, would otherwise amplify high frequencies), and applied to the decoded stamps as a
product of transforms, together with each galaxy's sub-pixel shift as the phase
:math:`e^{-2\pi i (f_x \delta_x + f_y \delta_y)}` (an exact shift, not an interpolation).

**Other pixel scales.** An exposure whose pixels are :math:`s` arcsec, not the model frame's
:math:`a`, is reached without interpolating twice. The PSF image's spectrum is evaluated at the
model grid's frequencies by a direct (separable) discrete Fourier transform of its pixels at their
positions :math:`(j - c)\,s/a` in model pixels, zero beyond the exposure's Nyquist frequency
(what its pixels cannot carry). The product of transforms is then summed back, by a second
separable transform, at the exposure's pixel centres

.. math:: x_j = c_m + (j - c_e - \delta)\,\frac{s}{a},

which is band-limited (Dirichlet) interpolation of the observed galaxy, the sub-pixel shift
:math:`\delta` included, and multiplied by :math:`(s/a)^2` so that a pixel holds the flux of
its area. With :math:`s = a` both transforms reduce to the FFT path.

References
----------
Melchior et al. 2018, Astronomy and Computing 24, 129, "SCARLET" (model frame, observation and
difference kernel).
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 3.5 (the likelihood this enters).

Examples
--------
>>> import numpy as np, torch
>>> y, x = np.mgrid[-10:11, -10:11]
>>> psf = np.exp(-(x**2 + y**2) / (2 * 2.0**2))  # a 0.94″ Gaussian at 0.2″ pixels
>>> spectrum = differenceKernelSpectrum(psf[None], modelPsfFwhm=0.35, pixelScale=0.2, stampSize=45)
>>> stamps = torch.zeros(1, 1, 45, 45); stamps[0, 0, 22, 22] = 1.0
>>> observed = convolveStamps(stamps, spectrum[None], None)
>>> round(float(observed.sum()), 4), int(observed[0, 0].argmax()) == 22 * 45 + 22
(1.0, True)
>>> ratio = 0.168 / 0.2  # an HSC exposure
>>> spectrum = differenceKernelSpectrum(psf[None], 0.35, 0.2, 45, psfPixelScale=0.168)
>>> hsc = convolveStamps(stamps, spectrum[None], None, ratio)
>>> hsc.shape[-1], exposureStampSize(45, ratio), round(float(hsc.sum()), 3)
(55, 55, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch

from ..sim.fourier import FWHM_TO_SIGMA, fastFftSize

__all__ = ["PIXEL_SCALE_TOLERANCE", "PSF_CROP_TOLERANCE", "convolveStamps", "cropPsfImage", "differenceKernelSpectrum",
           "exposureStampSize", "kernelGridSize", "pixelScaleRatio"]

#: Fraction of a PSF image's light that cropping may drop (what remains is renormalised).
PSF_CROP_TOLERANCE = 1e-3

#: Relative difference of pixel scales below which the exposure is taken to be on the model frame's pixels.
PIXEL_SCALE_TOLERANCE = 1e-3


def pixelScaleRatio(exposurePixelScale: float | None, modelPixelScale: float) -> float:
    """The exposure's pixel side over the model frame's, :math:`s/a`; exactly 1.0 when they agree to
    :data:`PIXEL_SCALE_TOLERANCE` or the exposure's is unknown (None).

    Parameters
    ----------
    exposurePixelScale : `float` or None
        The exposure's pixel side, arcsec; None: unknown.
    modelPixelScale : `float`
        The model frame's pixel side, arcsec.

    Returns
    -------
    ratio : `float`
        :math:`s/a`, or exactly 1.0.

    Raises
    ------
    ValueError
        If ``exposurePixelScale`` is not a finite positive number.

    Examples
    --------
    >>> pixelScaleRatio(0.168, 0.2), pixelScaleRatio(0.20001, 0.2), pixelScaleRatio(None, 0.2)
    (0.84, 1.0, 1.0)
    """
    if exposurePixelScale is None:
        return 1.0
    if not (math.isfinite(exposurePixelScale) and exposurePixelScale > 0):
        raise ValueError(f"the exposure's pixel scale must be a positive number of arcsec, not {exposurePixelScale}")
    ratio = exposurePixelScale / modelPixelScale
    return 1.0 if abs(ratio - 1.0) < PIXEL_SCALE_TOLERANCE else ratio


def exposureStampSize(stampSize: int, ratio: float) -> int:
    r"""Side, in exposure pixels, of the odd stamp that covers a ``stampSize`` model-frame stamp when
    the exposure's pixels are ``ratio`` times the model frame's.

    Parameters
    ----------
    stampSize : `int`
        Side of the model-frame stamp, model pixels.
    ratio : `float`
        Exposure pixel side over the model frame's (:func:`pixelScaleRatio`).

    Returns
    -------
    size : `int`
        The odd side :math:`\lceil S / r \rceil` (plus one if even), exposure pixels.

    Examples
    --------
    >>> exposureStampSize(45, 1.0), exposureStampSize(45, 0.84), exposureStampSize(45, 1.315)
    (45, 55, 35)
    """
    size = int(math.ceil(stampSize / ratio - 1e-6))
    return size + 1 - size % 2


def cropPsfImage(image: np.ndarray, tolerance: float = PSF_CROP_TOLERANCE) -> np.ndarray:
    r"""The smallest square of ``image`` centred on its pixel ``[h // 2, w // 2]`` outside which lies at
    most ``tolerance`` of its absolute light.

    PSF kernel images are cut wide (41 pixels for LSST) for their faintest wings; the convolution
    grid, and so the cost of every MAP step, grows with the kernel's side, while light that far out
    is far below any pixel's noise. The cut kernel is renormalised by
    :func:`differenceKernelSpectrum`, so a child's total flux is kept and only that much light moves
    inwards.

    Parameters
    ----------
    image : `numpy.ndarray`
        (h, w) PSF kernel image centred on pixel ``[h // 2, w // 2]``; anything else is returned as it is.
    tolerance : `float`, optional
        The largest fraction of the image's absolute light the crop may drop.

    Returns
    -------
    cropped : `numpy.ndarray`
        A view of ``image``, at most (2 half + 1) square about its centre; ``image`` itself if it is not
        2-d or its light is not a finite positive number.

    Examples
    --------
    >>> y, x = np.mgrid[-20:21, -20:21]
    >>> cropPsfImage(np.exp(-(x**2 + y**2) / (2 * 2.0**2))).shape
    (15, 15)
    """
    image = np.asarray(image)
    if image.ndim != 2:
        return image
    h, w = image.shape
    cy, cx = h // 2, w // 2
    y, x = np.ogrid[:h, :w]
    ring = np.maximum(np.abs(y - cy), np.abs(x - cx))
    light = np.bincount(ring.ravel(), weights=np.abs(image).ravel())
    total = light.sum()
    if not np.isfinite(total) or total <= 0:
        return image  # differenceKernelSpectrum says what is wrong with it
    outside = total - np.cumsum(light)
    half = int(np.argmax(outside <= tolerance * total))
    return image[max(cy - half, 0):cy + half + 1, max(cx - half, 0):cx + half + 1]


def kernelGridSize(stampSize: int, psfSize: int) -> int:
    """Side of the FFT grid on which a stamp and a PSF kernel convolve without wrapping onto the stamp.

    Parameters
    ----------
    stampSize : `int`
        Side of the stamps, pixels.
    psfSize : `int`
        Side of the PSF kernel image, in the same pixels.

    Returns
    -------
    size : `int`
        The smallest fast FFT length (:func:`~..sim.fourier.fastFftSize`) of at least ``stampSize + psfSize``.

    Examples
    --------
    >>> kernelGridSize(45, 41)
    90
    """
    return fastFftSize(stampSize + psfSize)


def differenceKernelSpectrum(psfImages: np.ndarray | Sequence[np.ndarray], modelPsfFwhm: float, pixelScale: float,
                             stampSize: int, gridSize: int | None = None,
                             psfPixelScale: float | None = None) -> torch.Tensor:
    r"""The difference kernels :math:`\tilde D` of ``psfImages`` (bands, h, w), as an rfft2 spectrum
    ``(bands, M, M // 2 + 1)`` on an ``M``-pixel model-frame grid (default :func:`kernelGridSize`).

    Each PSF image is normalised to unit sum and centred on its pixel ``[h // 2, w // 2]`` (afw's
    kernel image convention). ``psfPixelScale`` is the side of its pixels in arcsec, when they are
    not the model frame's ``pixelScale`` (see the module docstring).

    Parameters
    ----------
    psfImages : `numpy.ndarray` or sequence of `numpy.ndarray`
        One PSF kernel image (h, w) per band, as the exposure's pixels see it (pixel response included).
    modelPsfFwhm : `float`
        FWHM of the Gaussian model PSF, arcsec.
    pixelScale : `float`
        The model frame's pixel side, arcsec.
    stampSize : `int`
        Side S of the model-frame stamps, pixels.
    gridSize : `int`, optional
        Side M of the FFT grid; None: :func:`kernelGridSize` of the stamp and the largest PSF image
        (in model pixels).
    psfPixelScale : `float`, optional
        Side of the PSF images' pixels, arcsec; None: ``pixelScale``.

    Returns
    -------
    spectra : `torch.Tensor`
        complex64 (bands, M, M // 2 + 1), modulus at most 1, zero beyond the exposure's Nyquist frequency.

    Raises
    ------
    ValueError
        A PSF image that is not 2-d, is not finite, or does not sum to a positive number, or is larger
        than the grid.

    Examples
    --------
    Two bands' Gaussian PSFs (0.7″ and 0.94″ FWHM) on the model frame's 0.2″ pixels; the kernel of
    the sharper one keeps more of the high frequencies:

    >>> import numpy as np
    >>> y, x = np.mgrid[-10:11, -10:11]
    >>> psfs = [np.exp(-(x**2 + y**2) / (2 * sigma**2)) for sigma in (1.5, 2.0)]
    >>> spectrum = differenceKernelSpectrum(psfs, modelPsfFwhm=0.35, pixelScale=0.2, stampSize=45)
    >>> tuple(spectrum.shape), str(spectrum.dtype), bool(spectrum.abs().max() <= 1)
    ((2, 72, 37), 'torch.complex64', True)
    >>> bool(spectrum[0, 10, 10].abs() > spectrum[1, 10, 10].abs())
    True
    """
    ratio = 1.0 if psfPixelScale is None else pixelScaleRatio(psfPixelScale, pixelScale)
    images = [np.asarray(p, dtype=np.float64) for p in psfImages]
    extent = max((max(p.shape) if p.ndim == 2 else 1) for p in images) if images else 1
    extent = int(math.ceil(extent * ratio))  # in model pixels
    size = gridSize or kernelGridSize(stampSize, extent)
    fy = np.fft.fftfreq(size)
    fx = np.fft.rfftfreq(size)
    k2 = (2 * np.pi / pixelScale) ** 2 * (fx[None, :] ** 2 + fy[:, None] ** 2)
    model = np.exp(-0.5 * (modelPsfFwhm * FWHM_TO_SIGMA) ** 2 * k2) * np.sinc(fx)[None, :] * np.sinc(fy)[:, None]
    # What the exposure's pixels can carry: up to its Nyquist frequency, 0.5 / ratio cycles per model pixel.
    band = (np.abs(fy)[:, None] * ratio <= 0.5) & (np.abs(fx)[None, :] * ratio <= 0.5)
    spectra = []
    for index, image in enumerate(images):
        total = image.sum() if image.ndim == 2 else float("nan")
        if image.ndim != 2 or not np.isfinite(image).all() or not total > 0:
            raise ValueError(f"the PSF image of band {index} must be a finite 2-d kernel with a positive sum")
        if math.ceil(max(image.shape) * ratio) > size:
            raise ValueError(f"the PSF image of band {index} ({image.shape}) is larger than the {size}-pixel grid")
        h, w = image.shape
        # A direct transform of the pixels at their model-frame positions (the FFT when ratio is 1).
        rowPhase = np.exp(-2j * np.pi * np.outer(fy, (np.arange(h) - h // 2) * ratio))
        colPhase = np.exp(-2j * np.pi * np.outer((np.arange(w) - w // 2) * ratio, fx))
        ratioSpectrum = np.where(band, rowPhase @ (image / total) @ colPhase, 0.0) / model
        modulus = np.abs(ratioSpectrum)
        spectra.append(np.where(modulus > 1.0, ratioSpectrum / np.maximum(modulus, 1e-300), ratioSpectrum))
    return torch.as_tensor(np.stack(spectra)).to(torch.complex64)


def convolveStamps(stamps: torch.Tensor, spectra: torch.Tensor, offsets: torch.Tensor | None,
                   ratio: float = 1.0) -> torch.Tensor:
    r"""Model-frame stamps ``(N, C, S, S)`` as observed: each convolved with its difference kernel
    ``spectra`` ``(N, C, M, M // 2 + 1)`` (from :func:`differenceKernelSpectrum`, broadcast over
    ``N`` when its first axis is 1) and shifted by ``offsets`` ``(N, 2)`` = (dy, dx) exposure pixels.

    With ``ratio`` (:func:`pixelScaleRatio`) other than 1 the result is sampled on the exposure's
    pixels, ``(N, C, S', S')`` with ``S'`` = :func:`exposureStampSize` (module docstring). Light the
    kernel spreads beyond the stamp is cut, as the stamp itself cuts the model.

    Parameters
    ----------
    stamps : `torch.Tensor`
        Model-frame stamps (N, C, S, S).
    spectra : `torch.Tensor`
        Difference-kernel spectra (N or 1, C, M, M // 2 + 1), M at least S plus the kernel's extent.
    offsets : `torch.Tensor` or None
        Sub-pixel shifts (N, 2) = (dy, dx) in exposure pixels, applied as a phase; None: none.
    ratio : `float`, optional
        Exposure pixel side over the model frame's; 1: the stamps stay on the model frame's pixels.

    Returns
    -------
    observed : `torch.Tensor`
        (N, C, S', S') real, S' = S when ``ratio`` is 1, else :func:`exposureStampSize`; flux per exposure
        pixel.

    Examples
    --------
    A delta kernel (spectrum of ones) with a one-pixel shift moves a point by one pixel:

    >>> import torch
    >>> stamps = torch.zeros(1, 1, 9, 9); stamps[0, 0, 4, 4] = 1.0
    >>> observed = convolveStamps(stamps, torch.ones(1, 1, 18, 10, dtype=torch.complex64),
    ...                           torch.tensor([[1.0, 0.0]]))
    >>> divmod(int(observed[0, 0].argmax()), 9), round(float(observed.sum()), 4)
    ((5, 4), 1.0)
    """
    size = spectra.shape[-2]
    s = stamps.shape[-1]
    transform = torch.fft.rfft2(stamps, s=(size, size))
    product = transform * spectra
    if ratio == 1.0:
        if offsets is not None:
            fy = torch.fft.fftfreq(size, device=stamps.device, dtype=stamps.dtype)
            fx = torch.fft.rfftfreq(size, device=stamps.device, dtype=stamps.dtype)
            angle = -2.0 * math.pi * (fy.view(1, -1, 1) * offsets[:, 0].view(-1, 1, 1)
                                      + fx.view(1, 1, -1) * offsets[:, 1].view(-1, 1, 1))
            product = product * torch.polar(torch.ones_like(angle), angle).unsqueeze(1)
        return torch.fft.irfft2(product, s=(size, size))[:, :, :s, :s]
    out = exposureStampSize(s, ratio)
    n = stamps.shape[0]
    if offsets is None:
        offsets = torch.zeros(n, 2, device=stamps.device, dtype=stamps.dtype)
    pixels = torch.arange(out, device=stamps.device, dtype=stamps.dtype) - float(out // 2)
    rows = float(s // 2) + (pixels.view(1, -1) - offsets[:, 0:1]) * ratio  # (N, S') in model pixels
    cols = float(s // 2) + (pixels.view(1, -1) - offsets[:, 1:2]) * ratio
    fy = torch.fft.fftfreq(size, device=stamps.device, dtype=stamps.dtype)
    fx = torch.fft.rfftfreq(size, device=stamps.device, dtype=stamps.dtype)
    # The inverse real transform's weights: the columns kx > 0 stand for their conjugates too.
    weight = torch.full_like(fx, 2.0)
    weight[0] = 1.0
    if size % 2 == 0:
        weight[-1] = 1.0
    rowAngle = 2.0 * math.pi * rows.unsqueeze(-1) * fy.view(1, 1, -1)  # (N, S', M)
    colAngle = 2.0 * math.pi * cols.unsqueeze(-1) * fx.view(1, 1, -1)  # (N, S', M // 2 + 1)
    rowPhase = torch.polar(torch.ones_like(rowAngle), rowAngle) / size
    colPhase = torch.polar(weight.view(1, 1, -1) / size, colAngle).transpose(1, 2)
    sampled = torch.matmul(torch.matmul(rowPhase.unsqueeze(1), product), colPhase.unsqueeze(1))
    return sampled.real * (ratio * ratio)
