"""Point-spread functions given as pixelated images, with afw's ``Psf`` method names.

:class:`ImagePsf` is one kernel image for the whole exposure; :class:`GridPsf` varies over it,
with kernel images at the nodes of a grid of positions. Both answer afw's
``computeKernelImage(position)`` and ``computeImage(position)``.
"""

from __future__ import annotations

import numpy as np

from .geom import Box2I, Extent2I, Point2D, Point2I
from .image import ImageD

__all__ = ["ImagePsf", "GridPsf"]


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


def _imageAt(kernel: np.ndarray, position: Point2D) -> ImageD:
    """``kernel`` (centred, float64) shifted to be centred on ``position`` in parent pixel coordinates."""
    nearest = position.toPoint2I()
    shifted = _shiftSubpixel(kernel, position.x - nearest.x, position.y - nearest.y)
    h, w = kernel.shape
    return ImageD(shifted, xy0=Point2I(nearest.x - w // 2, nearest.y - h // 2))


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
        return _imageAt(self._kernel.astype(np.float64), Point2D(*position))

    def computePeak(self, position: Point2D | None = None) -> float:
        return float(self._kernel.max())

    def clone(self) -> ImagePsf:
        return ImagePsf(self._kernel)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ImagePsf):
            return NotImplemented
        return np.array_equal(self._kernel, other._kernel)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        h, w = self._kernel.shape
        return f"ImagePsf({w}x{h})"


class GridPsf:
    r"""A PSF that varies over the exposure: kernel images at the nodes of a rectangular grid of positions.

    At a position :math:`(x, y)` between the nodes :math:`x_i \le x \le x_{i+1}`,
    :math:`y_j \le y \le y_{j+1}` the kernel is the bilinear interpolation of the four nodes' kernels
    (unit sum, centred, like each of them); beyond the outermost nodes it is held at the nearest
    edge. At a node it is that node's kernel exactly, so a parent at a node is deblended with that
    kernel, as with an :class:`ImagePsf` of it.

    Parameters
    ----------
    kernels
        ``(nodes, py, px)`` kernel images, each valid for :class:`ImagePsf` (odd sides, centred, finite,
        positive sum; normalised to unit sum); all the same shape.
    positions
        ``(nodes, 2)`` parent pixel positions ``(x, y)`` of the nodes: every combination of a set of
        x values and a set of y values exactly once (a grid of one node is a constant PSF).

    Raises
    ------
    ValueError
        If a kernel is not valid, the shapes differ, or the positions are not finite or not a full
        rectangular grid.

    Examples
    --------
    >>> y, x = np.mgrid[-7:8, -7:8]
    >>> narrow, wide = np.exp(-(x**2 + y**2) / 2.0), np.exp(-(x**2 + y**2) / 8.0)
    >>> psf = GridPsf([narrow, wide], [(10.0, 50.0), (90.0, 50.0)])
    >>> bool(np.array_equal(psf.computeKernelImage(Point2D(10.0, 50.0)).array, ImagePsf(narrow).kernel))
    True
    >>> halfway = psf.computeKernelImage(Point2D(50.0, 0.0)).array  # y beyond the grid: held at its edge
    >>> bool(np.allclose(halfway, (ImagePsf(narrow).kernel + ImagePsf(wide).kernel) / 2)), psf.getAveragePosition()
    (True, Point2D(x=50.0, y=50.0))
    """

    def __init__(self, kernels, positions):
        nodes = [ImagePsf(k) for k in kernels]
        positions = np.asarray(positions, dtype=np.float64)
        if not nodes:
            raise ValueError("a GridPsf needs at least one node")
        shapes = {node.kernel.shape for node in nodes}
        if len(shapes) != 1:
            raise ValueError(f"the grid's kernels differ in shape: {sorted(shapes)}")
        if positions.shape != (len(nodes), 2) or not np.isfinite(positions).all():
            raise ValueError(f"positions must be {len(nodes)} finite (x, y) pairs, one per kernel; got shape "
                             f"{positions.shape}")
        xs, ys = np.unique(positions[:, 0]), np.unique(positions[:, 1])
        index = {(float(x), float(y)): k for k, (x, y) in enumerate(positions)}
        if len(index) != len(nodes) or len(xs) * len(ys) != len(nodes):
            raise ValueError(f"the {len(nodes)} positions are not a rectangular grid: {len(xs)} x values and "
                             f"{len(ys)} y values need every combination once")
        self._nodes = nodes
        self._positions = positions
        self._xs, self._ys = xs, ys
        self._grid = [[index[(float(x), float(y))] for x in xs] for y in ys]  # [iy][ix] -> node

    def getPositions(self) -> np.ndarray:
        """``(nodes, 2)`` node positions ``(x, y)`` (a copy)."""
        return self._positions.copy()

    def getKernels(self) -> np.ndarray:
        """``(nodes, py, px)`` node kernels (unit sum)."""
        return np.stack([node.kernel for node in self._nodes])

    def getAveragePosition(self) -> Point2D:
        """The centre of the grid (afw's ``Psf.getAveragePosition``)."""
        return Point2D((self._xs[0] + self._xs[-1]) / 2.0, (self._ys[0] + self._ys[-1]) / 2.0)

    @property
    def kernel(self) -> np.ndarray:
        """The kernel at the centre of the grid (for code that takes one kernel per band)."""
        return self._kernelAt(self.getAveragePosition())

    def getDimensions(self) -> Extent2I:
        return self._nodes[0].getDimensions()

    def computeBBox(self, position: Point2D | None = None) -> Box2I:
        return self._nodes[0].computeBBox()

    def _kernelAt(self, position: Point2D) -> np.ndarray:
        (ix, tx), (iy, ty) = _bracket(self._xs, position.x), _bracket(self._ys, position.y)
        kernel = np.zeros(self._nodes[0].kernel.shape)
        for jy, wy in ((iy, 1.0 - ty), (iy + 1, ty)):
            for jx, wx in ((ix, 1.0 - tx), (ix + 1, tx)):
                if wx * wy > 0:
                    kernel += (wx * wy) * self._nodes[self._grid[jy][jx]].kernel.astype(np.float64)
        return kernel

    def computeKernelImage(self, position: Point2D | None = None) -> ImageD:
        """The kernel at ``position`` (default: the grid's centre) with its centre at pixel ``(0, 0)``."""
        position = self.getAveragePosition() if position is None else Point2D(*position)
        return ImageD(self._kernelAt(position), xy0=self.computeBBox().getMin())

    def computeImage(self, position: Point2D | None = None) -> ImageD:
        """The PSF at ``position`` centred on it, in parent pixel coordinates."""
        position = self.getAveragePosition() if position is None else Point2D(*position)
        return _imageAt(self._kernelAt(position), position)

    def computePeak(self, position: Point2D | None = None) -> float:
        return float(self.computeKernelImage(position).array.max())

    def clone(self) -> GridPsf:
        return GridPsf([node.kernel for node in self._nodes], self._positions)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GridPsf):
            return NotImplemented
        return (np.array_equal(self._positions, other._positions)
                and all(a == b for a, b in zip(self._nodes, other._nodes)))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        h, w = self._nodes[0].kernel.shape
        return f"GridPsf({w}x{h}, {len(self._xs)}x{len(self._ys)} nodes)"


# What an exposure carries as its PSF: the two classes share the lsst.afw.detection.Psf methods used here.
Psf = ImagePsf | GridPsf


def _bracket(values: np.ndarray, value: float) -> tuple[int, float]:
    """The node ``i`` below ``value`` and the weight ``t`` of node ``i + 1`` (held at the edges)."""
    if len(values) == 1 or value <= values[0]:
        return 0, 0.0
    if value >= values[-1]:
        return len(values) - 2, 1.0
    i = int(np.searchsorted(values, value, side="right")) - 1
    return i, float((value - values[i]) / (values[i + 1] - values[i]))
