"""A point-spread function given as a pixelated image, with afw's ``Psf`` method names."""

from __future__ import annotations

import numpy as np

from .geom import Box2I, Extent2I, Point2D, Point2I
from .image import ImageD

__all__ = ["ImagePsf"]


def _shiftSubpixel(kernel: np.ndarray, dx: float, dy: float) -> np.ndarray:
    """Shift an image by a fraction of a pixel with the Fourier shift theorem.

    A band-limited shift keeps the flux and the shape, unlike bilinear interpolation,
    which would broaden a narrow PSF.
    """
    if dx == 0.0 and dy == 0.0:
        return kernel.copy()
    ny, nx = kernel.shape
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.rfftfreq(nx)[None, :]
    phase = np.exp(-2j * np.pi * (kx * dx + ky * dy))
    return np.fft.irfft2(np.fft.rfft2(kernel) * phase, s=kernel.shape)


class ImagePsf:
    r"""A spatially constant PSF sampled on an odd, centred pixel grid with unit sum.

    The kernel image is the PSF evaluated at pixel centres with its centre in the central
    pixel ``[h // 2, w // 2]``. As in afw, :meth:`computeKernelImage` returns it with
    ``xy0 = (-w // 2, -h // 2)`` so pixel ``(0, 0)`` is the centre, and
    :meth:`computeImage` returns it centred on a position of the parent image, shifted by
    the sub-pixel offset

    .. math:: \mathrm{PSF}_{\mathbf{p}}(\mathbf{x}) = K(\mathbf{x} - \mathbf{p}).

    Parameters
    ----------
    kernel
        2-d array with odd sides, finite, positive sum; it is normalised to unit sum (unless it already
        sums to one within 1e-6).

    Raises
    ------
    ValueError
        If the kernel is not 2-d, has an even side, is not finite or has no flux.

    Examples
    --------
    >>> y, x = np.mgrid[-7:8, -7:8]
    >>> psf = ImagePsf(np.exp(-(x**2 + y**2) / 4.0))
    >>> psf.computeKernelImage().getBBox().getMin()
    Point2I(x=-7, y=-7)
    >>> round(float(psf.computeImage(Point2D(20.3, 30.0)).array.sum()), 6)
    1.0
    """

    def __init__(self, kernel: np.ndarray):
        kernel = np.asarray(kernel)
        # float32 kernels (as stored in files) stay float32 so round trips are bit-exact.
        kernel = kernel.astype(np.float32 if kernel.dtype == np.float32 else np.float64)
        if kernel.ndim != 2:
            raise ValueError(f"PSF kernel must be 2-d, got shape {kernel.shape}")
        if kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
            raise ValueError(f"PSF kernel sides must be odd so it has a central pixel, got {kernel.shape}")
        if not np.all(np.isfinite(kernel)):
            raise ValueError("PSF kernel has non-finite pixels")
        total = float(kernel.sum(dtype=np.float64))
        if not total > 0:
            raise ValueError(f"PSF kernel sum must be positive, got {total}")
        # Leave an already-normalised kernel untouched so file round trips stay bit-exact.
        self._kernel = kernel if abs(total - 1.0) < 1e-6 else (kernel / total).astype(kernel.dtype)

    @property
    def kernel(self) -> np.ndarray:
        """The unit-sum kernel array (a copy)."""
        return self._kernel.copy()

    def getDimensions(self) -> Extent2I:
        return Extent2I(self._kernel.shape[1], self._kernel.shape[0])

    def computeBBox(self, position: Point2D | None = None) -> Box2I:
        """The kernel image's box, centred on ``(0, 0)``."""
        h, w = self._kernel.shape
        return Box2I(Point2I(-(w // 2), -(h // 2)), Extent2I(w, h))

    def computeKernelImage(self, position: Point2D | None = None) -> ImageD:
        """The kernel with its centre at pixel ``(0, 0)``; ``position`` is ignored (constant PSF)."""
        return ImageD(self._kernel.astype(np.float64), xy0=self.computeBBox().getMin())

    def computeImage(self, position: Point2D | None = None) -> ImageD:
        """The PSF centred on ``position`` in parent pixel coordinates."""
        if position is None:
            return self.computeKernelImage()
        position = Point2D(*position)
        nearest = position.toPoint2I()
        shifted = _shiftSubpixel(self._kernel.astype(np.float64), position.x - nearest.x, position.y - nearest.y)
        h, w = self._kernel.shape
        return ImageD(shifted, xy0=Point2I(nearest.x - w // 2, nearest.y - h // 2))

    def computePeak(self, position: Point2D | None = None) -> float:
        return float(self._kernel.max())

    def clone(self) -> "ImagePsf":
        return ImagePsf(self._kernel)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImagePsf):
            return NotImplemented
        return np.array_equal(self._kernel, other._kernel)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        h, w = self._kernel.shape
        return f"ImagePsf({w}x{h})"
