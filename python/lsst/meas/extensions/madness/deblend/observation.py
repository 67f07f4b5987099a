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
"""

from __future__ import annotations

import math
from typing import Optional, Sequence

import numpy as np
import torch

from ..sim.fourier import FWHM_TO_SIGMA, fastFftSize

__all__ = ["PSF_CROP_TOLERANCE", "cropPsfImage", "differenceKernelSpectrum", "convolveStamps", "kernelGridSize"]

#: Fraction of a PSF image's light that cropping may drop (what remains is renormalised).
PSF_CROP_TOLERANCE = 1e-3


def cropPsfImage(image: np.ndarray, tolerance: float = PSF_CROP_TOLERANCE) -> np.ndarray:
    r"""The smallest square of ``image`` centred on its pixel ``[h // 2, w // 2]`` outside which lies at
    most ``tolerance`` of its absolute light.

    PSF kernel images are cut wide (41 pixels for LSST) for their faintest wings; the convolution
    grid, and so the cost of every MAP step, grows with the kernel's side, while light that far out
    is far below any pixel's noise. The cut kernel is renormalised by
    :func:`differenceKernelSpectrum`, so a child's total flux is kept and only that much light moves
    inwards.

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

    Examples
    --------
    >>> kernelGridSize(45, 41)
    90
    """
    return fastFftSize(stampSize + psfSize)


def differenceKernelSpectrum(psfImages: np.ndarray | Sequence[np.ndarray], modelPsfFwhm: float, pixelScale: float,
                             stampSize: int, gridSize: int | None = None) -> torch.Tensor:
    r"""The difference kernels :math:`\tilde D` of ``psfImages`` (bands, h, w), as an rfft2 spectrum
    ``(bands, M, M // 2 + 1)`` on an ``M``-pixel grid (default :func:`kernelGridSize`).

    Each PSF image is normalised to unit sum and centred on its pixel ``[h // 2, w // 2]`` (afw's
    kernel image convention).

    Raises
    ------
    ValueError
        A PSF image that is not 2-d, is not finite, or does not sum to a positive number.
    """
    images = [np.asarray(p, dtype=np.float64) for p in psfImages]
    height = max(p.shape[0] for p in images) if images else 1
    width = max(p.shape[1] for p in images) if images else 1
    size = gridSize or kernelGridSize(stampSize, max(height, width))
    spectra = []
    fy = np.fft.fftfreq(size)[:, None]
    fx = np.fft.rfftfreq(size)[None, :]
    k2 = (2 * np.pi / pixelScale) ** 2 * (fx**2 + fy**2)
    model = np.exp(-0.5 * (modelPsfFwhm * FWHM_TO_SIGMA) ** 2 * k2) * np.sinc(fx) * np.sinc(fy)
    for band, image in enumerate(images):
        total = image.sum() if image.ndim == 2 else float("nan")
        if image.ndim != 2 or not np.isfinite(image).all() or not total > 0:
            raise ValueError(f"the PSF image of band {band} must be a finite 2-d kernel with a positive sum")
        if max(image.shape) > size:
            raise ValueError(f"the PSF image of band {band} ({image.shape}) is larger than the {size}-pixel grid")
        grid = np.zeros((size, size))
        h, w = image.shape
        grid[:h, :w] = image / total
        grid = np.roll(grid, (-(h // 2), -(w // 2)), axis=(0, 1))  # the kernel's centre to pixel (0, 0)
        ratio = np.fft.rfft2(grid) / model
        modulus = np.abs(ratio)
        spectra.append(np.where(modulus > 1.0, ratio / np.maximum(modulus, 1e-300), ratio))
    return torch.as_tensor(np.stack(spectra)).to(torch.complex64)


def convolveStamps(stamps: torch.Tensor, spectra: torch.Tensor, offsets: Optional[torch.Tensor]) -> torch.Tensor:
    r"""Model-frame stamps ``(N, C, S, S)`` as observed: each convolved with its difference kernel
    ``spectra`` ``(N, C, M, M // 2 + 1)`` (from :func:`differenceKernelSpectrum`, broadcast over
    ``N`` when its first axis is 1) and shifted by ``offsets`` ``(N, 2)`` = (dy, dx) pixels.

    Light the kernel spreads beyond the stamp is cut, as the stamp itself cuts the model.
    """
    size = spectra.shape[-2]
    s = stamps.shape[-1]
    transform = torch.fft.rfft2(stamps, s=(size, size))
    product = transform * spectra
    if offsets is not None:
        fy = torch.fft.fftfreq(size, device=stamps.device, dtype=stamps.dtype)
        fx = torch.fft.rfftfreq(size, device=stamps.device, dtype=stamps.dtype)
        angle = -2.0 * math.pi * (fy.view(1, -1, 1) * offsets[:, 0].view(-1, 1, 1)
                                  + fx.view(1, 1, -1) * offsets[:, 1].view(-1, 1, 1))
        product = product * torch.polar(torch.ones_like(angle), angle).unsqueeze(1)
    return torch.fft.irfft2(product, s=(size, size))[:, :, :s, :s]
