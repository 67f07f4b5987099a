r"""Batched Fourier-space rendering of bulge + disk + point-source galaxies in torch.

GalSim draws one galaxy at a time on the CPU. Training wants fresh stamps at every step, on
whatever device trains, so this module draws thousands at once, on CPU or CUDA, the way
GalSim's FFT drawing does. A galaxy is the same CatSim model as :mod:`.render`: a
DeVaucouleurs bulge and an Exponential disk, each with its half-light radius
:math:`h = \sqrt{ab}`, axis ratio :math:`q` and position angle :math:`\beta`, plus a point
source, with fractions :math:`f_{\rm bulge}` and :math:`f_{\rm AGN}` shared by all bands.
Its Fourier transform, for unit flux, is

.. math::

    \tilde G(\mathbf k) = (1 - f_{\rm AGN})\big[f_{\rm bulge}\,\tilde B(|S_b \mathbf k|\,h_b)
        + (1 - f_{\rm bulge})\,\tilde D(|S_d \mathbf k|\,h_d)\big] + f_{\rm AGN},

with :math:`\tilde D(\kappa) = (1 + (\kappa/1.67835)^2)^{-3/2}` (exponential, analytic),
:math:`\tilde B` the DeVaucouleurs transform (:func:`deVaucouleursK`, tabulated once with
GalSim and shipped) and :math:`S` the area-preserving shear of each component as a linear map
of :math:`\mathbf k`: with :math:`g = (1-q)/(1+q)`, :math:`g_1 = g\cos 2\beta`,
:math:`g_2 = g \sin 2\beta`,

.. math:: S = \frac{1}{\sqrt{1 - g^2}}\begin{pmatrix} 1 + g_1 & g_2 \\ g_2 & 1 - g_1\end{pmatrix}.

The image of band :math:`b` is

.. math::

    \tilde I_b(\mathbf k) = F_b\,\tilde G(\mathbf k)\,\tilde P_b(\mathbf k)\,
        \operatorname{sinc}\!\Big(\frac{k_x s}{2\pi}\Big)\operatorname{sinc}\!\Big(\frac{k_y s}{2\pi}\Big)
        \, e^{-i \mathbf k \cdot \mathbf x_0},

with flux :math:`F_b`, PSF transform :math:`\tilde P_b` (:class:`PsfSpec`: Gaussian,
Kolmogorov or Moffat, all analytic), the pixel response of side :math:`s` and the centre
:math:`\mathbf x_0` (sub-pixel shift as a phase). Pixel values are samples of the
pixel-convolved profile at the pixel centres: the transform is evaluated on a grid
``oversampling`` times wider than the Nyquist band and folded into it (the aliases a
sampled image really has, as GalSim's ``wrap``), then inverse-FFT'd on a grid ``padding``
times the stamp so that light wrapped around the periodic image is negligible.

The image of each band sums to :math:`F_b` times the fraction of light inside the stamp.
``doc/simulation.md`` compares this renderer with GalSim and measures its throughput
(``madness-sim fourier-check``).

References
----------
Rowe et al. 2015, Astronomy and Computing 10, 121, "GalSim" (the FFT drawing and its
folding and wrapping).
Bracewell 2000, "The Fourier Transform and its Applications" (shift, scaling and affine
theorems; Poisson summation).
Fried 1966, JOSA 56, 1372 (the Kolmogorov transfer function).
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 2 (the galaxy model).

Examples
--------
>>> import torch
>>> galaxies = GalaxyParameters.single(flux=[100.0, 200.0], hlrDisk=0.5, qDisk=0.6, paDisk=30.0)
>>> stamps = FourierRenderer(stampSize=33).draw(galaxies, PsfSpec.gaussian(fwhm=[0.7, 0.7]))
>>> tuple(stamps.shape)
(1, 2, 33, 33)
>>> [round(float(s)) for s in stamps.sum(dim=(2, 3))[0]]  # nearly all light falls inside 6.6″
[100, 200]
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields, replace
from importlib import resources

import numpy as np
import torch

__all__ = [
    "GalaxyParameters",
    "PsfSpec",
    "FourierRenderer",
    "exponentialK",
    "deVaucouleursK",
    "shearMatrix",
    "tabulateDeVaucouleurs",
    "KOLMOGOROV_K_CONSTANT",
    "PSF_KINDS",
    "FWHM_TO_SIGMA",
    "fastFftSize",
]

# Half-light radius of a unit-scale-length exponential (GalSim's Exponential).
_EXPONENTIAL_HLR = 1.6783469900166605
# Kolmogorov: T(k) = exp(-c (k FWHM)^{5/3}), c = 0.5 * 6.8839 (1 / (2π 0.975865))^{5/3}, from
# the structure function D = 6.8839 (λk / 2π r0)^{5/3} and FWHM = 0.975865 λ / r0.
KOLMOGOROV_K_CONSTANT = 0.5 * 6.8839 * (1.0 / (2.0 * math.pi * 0.975865)) ** (5.0 / 3.0)
#: Gaussian σ per FWHM.
FWHM_TO_SIGMA = 1.0 / (2.0 * math.sqrt(2.0 * math.log(2.0)))
#: PSF families and their integer codes in :class:`PsfSpec`.
PSF_KINDS: dict[str, int] = {"gaussian": 0, "kolmogorov": 1, "moffat": 2}
# Moffat β with an elementary transform: x^ν K_ν(x) is e^{-x} times a polynomial for half-integer ν.
_MOFFAT_POLYNOMIALS: dict[float, tuple[float, ...]] = {
    2.5: (1.0, 1.0),  # ν = 3/2: e^{-x} (1 + x)
    3.5: (1.0, 1.0, 1.0 / 3.0),  # ν = 5/2: e^{-x} (3 + 3x + x²) / 3
    4.5: (1.0, 1.0, 6.0 / 15.0, 1.0 / 15.0),  # ν = 7/2: e^{-x} (15 + 15x + 6x² + x³) / 15
}
_TABLE_FILE = "devaucouleurs_k.npz"
# b of the n = 4 Sérsic profile exp(-b (r/h)^{1/4}), which puts half the light inside h.
_DEVAUCOULEURS_B = 7.669249443628633


def exponentialK(kappa: torch.Tensor) -> torch.Tensor:
    r"""Transform of a unit-flux exponential of unit half-light radius at :math:`\kappa = k h`.

    Examples
    --------
    >>> float(exponentialK(torch.tensor(0.0)))
    1.0
    """
    return (1.0 + (kappa / _EXPONENTIAL_HLR) ** 2) ** -1.5


def tabulateDeVaucouleurs(count: int = 1200, low: float = 1e-4, high: float = 1e4) -> tuple[np.ndarray, np.ndarray]:
    r"""GalSim's unit-flux, unit half-light-radius DeVaucouleurs transform on a log grid of :math:`\kappa = kh`.

    Needs GalSim; the shipped table (``data/devaucouleurs_k.npz``) was made with the defaults.
    """
    import galsim

    kappa = np.geomspace(low, high, count)
    profile = galsim.DeVaucouleurs(half_light_radius=1.0)
    values = np.array([profile.kValue(float(k), 0.0).real for k in kappa])
    return kappa, values


class _LogLogTable:
    """Linear interpolation of log(value) in log(κ), constant below the table and a power law above it."""

    def __init__(self, kappa: np.ndarray, values: np.ndarray):
        if np.any(values <= 0):
            raise ValueError("the DeVaucouleurs table must be positive to interpolate in log-log")
        self.logKappa = torch.as_tensor(np.log(kappa), dtype=torch.float64)
        self.logValue = torch.as_tensor(np.log(values), dtype=torch.float64)
        self.step = float(self.logKappa[1] - self.logKappa[0])
        self.tailSlope = float((self.logValue[-1] - self.logValue[-2]) / self.step)
        self._onDevice: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def __call__(self, kappa: torch.Tensor) -> torch.Tensor:
        key = (kappa.device, kappa.dtype)
        if key not in self._onDevice:
            self._onDevice[key] = (self.logKappa.to(kappa.device, kappa.dtype),
                                   self.logValue.to(kappa.device, kappa.dtype))
        logKappa, logValue = self._onDevice[key]
        x = torch.log(kappa.clamp(min=math.exp(float(self.logKappa[0]))))
        position = (x - logKappa[0]) / self.step
        index = position.floor().clamp(0, len(logKappa) - 2).long()
        fraction = position - index
        inside = logValue[index] + fraction * (logValue[index + 1] - logValue[index])
        beyond = logValue[-1] + self.tailSlope * (x - logKappa[-1])
        return torch.exp(torch.where(x > logKappa[-1], beyond, inside))


_DEVAUCOULEURS: _LogLogTable | None = None


def deVaucouleursK(kappa: torch.Tensor) -> torch.Tensor:
    r"""Transform of a unit-flux DeVaucouleurs of unit half-light radius at :math:`\kappa = k h`.

    Interpolated (log-log, 150 points per decade) in GalSim's transform, tabulated over
    :math:`10^{-4} \le \kappa \le 10^4`, extended by the table's last power law.

    Examples
    --------
    >>> round(float(deVaucouleursK(torch.tensor(1.0))), 4)  # GalSim: 0.5445
    0.5445
    """
    global _DEVAUCOULEURS
    if _DEVAUCOULEURS is None:
        with resources.files(__package__).joinpath("data", _TABLE_FILE).open("rb") as handle:
            table = np.load(handle)
            _DEVAUCOULEURS = _LogLogTable(table["kappa"], table["value"])
    return _DEVAUCOULEURS(kappa)


def shearMatrix(q: torch.Tensor, positionAngle: torch.Tensor) -> torch.Tensor:
    r"""The ``(..., 2, 2)`` map :math:`S` with :math:`\tilde I_{\rm sheared}(\mathbf k) = \tilde I(S\mathbf k)`.

    ``q`` is the axis ratio and ``positionAngle`` the major axis' angle from +x towards +y,
    degrees (GalSim's ``shear(q=, beta=)``); :math:`\det S = 1`, so area and flux are kept.

    Examples
    --------
    >>> S = shearMatrix(torch.tensor(0.5), torch.tensor(0.0))
    >>> [round(float(v), 4) for v in S.flatten()], round(float(torch.det(S)), 6)
    ([1.4142, 0.0, 0.0, 0.7071], 1.0)
    """
    g = (1.0 - q) / (1.0 + q)
    angle = 2.0 * torch.deg2rad(positionAngle)
    g1, g2 = g * torch.cos(angle), g * torch.sin(angle)
    norm = 1.0 / torch.sqrt(1.0 - g * g)
    return torch.stack([torch.stack([1 + g1, g2], -1), torch.stack([g2, 1 - g1], -1)], -2) * norm[..., None, None]


def _tensor(values, dtype=torch.float32) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values, dtype=np.float64) if not torch.is_tensor(values) else values, dtype=dtype)


@dataclass(frozen=True)
class GalaxyParameters:
    """CatSim parameters of ``N`` galaxies as tensors (the renderer's input).

    Attributes
    ----------
    flux
        ``(N, B)`` total flux per band, in any unit: the stamps come out in it.
    bulgeFraction, agnFraction
        ``(N,)`` shares of the bulge in the extended light and of the point source in the total.
    hlrBulge, qBulge, paBulge, hlrDisk, qDisk, paDisk
        ``(N,)`` half-light radii :math:`\\sqrt{ab}` (arcsec), axis ratios and position angles
        (degrees) of the two components. A component with zero radius is absent and hands its
        light to the other one (as :meth:`.render.SceneRenderer.drawGalaxy`).
    dx, dy
        ``(N,)`` centre of each galaxy relative to its stamp's central pixel, pixels.
    """

    flux: torch.Tensor
    bulgeFraction: torch.Tensor
    agnFraction: torch.Tensor
    hlrBulge: torch.Tensor
    qBulge: torch.Tensor
    paBulge: torch.Tensor
    hlrDisk: torch.Tensor
    qDisk: torch.Tensor
    paDisk: torch.Tensor
    dx: torch.Tensor
    dy: torch.Tensor

    def __post_init__(self):
        n = self.flux.shape[0]
        if self.flux.ndim != 2:
            raise ValueError(f"flux must be (galaxies, bands), got shape {tuple(self.flux.shape)}")
        for item in fields(self)[1:]:
            value = getattr(self, item.name)
            if tuple(value.shape) != (n,):
                raise ValueError(f"{item.name} must have shape ({n},) like flux's first axis, got {tuple(value.shape)}")

    def __len__(self) -> int:
        return self.flux.shape[0]

    @property
    def nBands(self) -> int:
        return self.flux.shape[1]

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> GalaxyParameters:
        return GalaxyParameters(**{f.name: getattr(self, f.name).to(device=device, dtype=dtype) for f in fields(self)})

    def __getitem__(self, index) -> GalaxyParameters:
        return GalaxyParameters(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def withFlux(self, flux: torch.Tensor) -> GalaxyParameters:
        return replace(self, flux=flux)

    def withCentres(self, dx: torch.Tensor, dy: torch.Tensor) -> GalaxyParameters:
        return replace(self, dx=dx, dy=dy)

    @classmethod
    def single(cls, flux: Sequence[float], *, bulgeFraction: float = 0.0, agnFraction: float = 0.0,
               hlrBulge: float = 0.0, qBulge: float = 1.0, paBulge: float = 0.0, hlrDisk: float = 0.0,
               qDisk: float = 1.0, paDisk: float = 0.0, dx: float = 0.0, dy: float = 0.0) -> GalaxyParameters:
        """One galaxy from plain numbers."""
        scalars = dict(bulgeFraction=bulgeFraction, agnFraction=agnFraction, hlrBulge=hlrBulge, qBulge=qBulge,
                       paBulge=paBulge, hlrDisk=hlrDisk, qDisk=qDisk, paDisk=paDisk, dx=dx, dy=dy)
        return cls(flux=_tensor([list(flux)]), **{k: _tensor([v]) for k, v in scalars.items()})

    @classmethod
    def fromColumns(cls, columns: Mapping[str, Sequence[float]], flux: np.ndarray | torch.Tensor,
                    dx: Sequence[float] | None = None, dy: Sequence[float] | None = None) -> GalaxyParameters:
        """From CatSim columns (``bulge_fraction``, ``agn_fraction``, ``hlr_bulge``, ``q_bulge``,
        ``pa_bulge``, ``hlr_disk``, ``q_disk``, ``pa_disk``; an astropy table or a dict of arrays)
        and an ``(N, B)`` flux array."""
        names = dict(bulgeFraction="bulge_fraction", agnFraction="agn_fraction", hlrBulge="hlr_bulge",
                     qBulge="q_bulge", paBulge="pa_bulge", hlrDisk="hlr_disk", qDisk="q_disk", paDisk="pa_disk")
        missing = [column for column in names.values() if column not in columns]
        if missing:
            raise KeyError(f"galaxy columns {missing} are missing (have {sorted(columns)})")
        values = {attribute: _tensor(np.asarray(columns[column])) for attribute, column in names.items()}
        n = len(values["qDisk"])
        zeros = np.zeros(n)
        return cls(flux=_tensor(flux), dx=_tensor(zeros if dx is None else dx), dy=_tensor(zeros if dy is None else dy),
                   **values)


@dataclass(frozen=True)
class PsfSpec:
    """Analytic PSFs, one per galaxy and band, as tensors (broadcast to ``(N, B)``).

    Attributes
    ----------
    kind
        Integer codes of :data:`PSF_KINDS` (0 Gaussian, 1 Kolmogorov, 2 Moffat).
    fwhm
        FWHM, arcsec.
    beta
        Moffat index; 2.5, 3.5 or 4.5 (untruncated Moffats whose transform is elementary).
        Ignored for the other kinds.
    """

    kind: torch.Tensor
    fwhm: torch.Tensor
    beta: torch.Tensor

    @classmethod
    def _make(cls, kind: str, fwhm, beta=3.5) -> PsfSpec:
        fwhm = _tensor(fwhm)
        if torch.any(fwhm <= 0):
            raise ValueError(f"PSF FWHMs must be positive, got {fwhm.tolist()}")
        return cls(torch.full(fwhm.shape, PSF_KINDS[kind], dtype=torch.int64), fwhm, _tensor(beta).expand(fwhm.shape))

    @classmethod
    def gaussian(cls, fwhm) -> PsfSpec:
        """Gaussian PSFs of the given FWHM (per band, or ``(N, B)``)."""
        return cls._make("gaussian", fwhm)

    @classmethod
    def kolmogorov(cls, fwhm) -> PsfSpec:
        """Kolmogorov PSFs (GalSim's ``Kolmogorov(fwhm=)``)."""
        return cls._make("kolmogorov", fwhm)

    @classmethod
    def moffat(cls, fwhm, beta=3.5) -> PsfSpec:
        """Untruncated Moffat PSFs (GalSim's ``Moffat(beta, fwhm=)``), β in 2.5, 3.5, 4.5."""
        spec = cls._make("moffat", fwhm, beta)
        bad = set(torch.unique(spec.beta).tolist()) - set(_MOFFAT_POLYNOMIALS)
        if bad:
            raise ValueError(f"Moffat β must be one of {sorted(_MOFFAT_POLYNOMIALS)}, got {sorted(bad)}")
        return spec

    def to(self, device) -> PsfSpec:
        return PsfSpec(self.kind.to(device), self.fwhm.to(device), self.beta.to(device))

    def __getitem__(self, index) -> PsfSpec:
        return PsfSpec(self.kind[index], self.fwhm[index], self.beta[index])

    def broadcast(self, n: int, nBands: int) -> PsfSpec:
        shape = (n, nBands)
        return PsfSpec(self.kind.expand(shape), self.fwhm.expand(shape), self.beta.expand(shape))

    def transform(self, k: torch.Tensor) -> torch.Tensor:
        r"""Unit-flux transforms at the radial wavenumbers ``k`` (rad/arcsec) of one grid.

        The spec must be 2-d, ``(N, B)``; returns ``(N, B, *k.shape)``. Each PSF is evaluated
        with its own family's formula only (the grid's powers of :math:`k` are computed once),
        which is what makes the renderer's cost the FFT's rather than the PSFs'.
        """
        n, b = self.fwhm.shape
        out = torch.empty((n * b, *k.shape), dtype=k.dtype, device=k.device)
        kind, fwhm, beta = self.kind.reshape(-1), self.fwhm.reshape(-1).to(k.dtype), self.beta.reshape(-1).to(k.dtype)
        grid = k.unsqueeze(0)

        def fill(mask: torch.Tensor, values) -> None:
            index = torch.nonzero(mask).flatten()
            if len(index):
                out[index] = values(index)

        fill(kind == 0, lambda i: torch.exp((-0.5 * (fwhm[i] * FWHM_TO_SIGMA) ** 2)[:, None, None] * (grid * grid)))
        fill(kind == 1, lambda i: torch.exp((-KOLMOGOROV_K_CONSTANT * fwhm[i] ** (5.0 / 3.0))[:, None, None]
                                            * grid ** (5.0 / 3.0)))
        for value, coefficients in _MOFFAT_POLYNOMIALS.items():
            def moffat(i, coefficients=coefficients, value=value):
                x = grid * (fwhm[i] / (2.0 * math.sqrt(2.0 ** (1.0 / value) - 1.0)))[:, None, None]
                polynomial = torch.full_like(x, coefficients[-1])
                for c in reversed(coefficients[:-1]):  # Horner
                    polynomial = polynomial * x + c
                return polynomial * torch.exp(-x)

            fill((kind == 2) & (beta == value), moffat)
        return out.view(n, b, *k.shape)


def fastFftSize(n: int) -> int:
    """The smallest even size >= n whose only prime factors are 2, 3 and 5 (fast FFTs).

    Examples
    --------
    >>> fastFftSize(86), fastFftSize(91)
    (90, 96)
    """
    size = n + (n % 2)
    while True:
        m = size
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return size
        size += 2


class FourierRenderer:
    r"""Draws :class:`GalaxyParameters` convolved with :class:`PsfSpec` on square stamps.

    Parameters
    ----------
    stampSize
        Side of the stamps, pixels (odd: the galaxy's reference centre is the central pixel).
    pixelScale
        Pixel side, arcsec.
    oversampling
        The transform is evaluated up to ``oversampling`` times the Nyquist wavenumber
        :math:`\pi/s` and folded (aliased) into the Nyquist band. 2 reaches the first zero of
        the pixel response, where a PSF of FWHM ≥ 0.3″ has no power left.
    padding
        The periodic image the inverse FFT makes is ``padding`` times the stamp (rounded up to
        a fast FFT size), so light beyond the stamp wraps far from it.
    chunk
        Galaxies per FFT batch (memory: ``chunk`` × bands × (oversampling · padding · stampSize)²
        complex numbers).

    Examples
    --------
    >>> renderer = FourierRenderer(stampSize=45)
    >>> galaxies = GalaxyParameters.single([1.0], bulgeFraction=1.0, hlrBulge=0.4, qBulge=0.7, dx=0.3)
    >>> stamp = renderer.draw(galaxies, PsfSpec.kolmogorov([0.8]))
    >>> int(stamp[0, 0].argmax() % 45), int(stamp[0, 0].argmax() // 45)
    (22, 22)
    """

    def __init__(self, stampSize: int = 45, pixelScale: float = 0.2, *, oversampling: int = 2, padding: float = 2.0,
                 maxPadding: float = 8.0, foldingThreshold: float = 2e-4, chunk: int = 64):
        if stampSize < 1 or stampSize % 2 == 0:
            raise ValueError(f"stampSize must be a positive odd number, got {stampSize}")
        if pixelScale <= 0 or oversampling < 1 or padding < 1 or maxPadding < padding or chunk < 1:
            raise ValueError("pixelScale must be positive, oversampling and chunk at least 1, "
                             "1 <= padding <= maxPadding")
        if not 0 < foldingThreshold < 1:
            raise ValueError(f"foldingThreshold must be in (0, 1), got {foldingThreshold}")
        self.stampSize, self.pixelScale = int(stampSize), float(pixelScale)
        self.oversampling, self.chunk = int(oversampling), int(chunk)
        self.foldingThreshold = float(foldingThreshold)
        sizes, size = [], fastFftSize(math.ceil(padding * stampSize))
        while size < maxPadding * stampSize:
            sizes.append(size)
            size = fastFftSize(math.ceil(size * 1.25))
        #: The periodic grid sizes (pixels) galaxies are drawn on, smallest first.
        self.gridSizes: tuple[int, ...] = tuple(sizes) + (fastFftSize(math.ceil(maxPadding * stampSize)),)
        self._grids: dict[tuple, tuple[torch.Tensor, torch.Tensor]] = {}

    def gridSizeOf(self, galaxies: GalaxyParameters) -> torch.Tensor:
        r"""Index into :attr:`gridSizes` of the grid each galaxy is drawn on.

        Light farther than :math:`M s - S s / 2` from the centre wraps onto the stamp of side
        :math:`S` from the periodic copies of an :math:`M`-pixel grid. Each galaxy gets the
        smallest grid whose wrapped fraction of flux, bounded by the components' tails along
        their major axes (:math:`h/\sqrt q`), is under ``foldingThreshold``; the largest grid
        when none is.
        """
        sizes = torch.tensor(self.gridSizes, dtype=torch.float64)
        # A galaxy off the stamp's centre brings its periodic copy closer by its offset.
        offset = torch.maximum(galaxies.dx.abs(), galaxies.dy.abs()).double().cpu()[:, None]
        radii = ((sizes[None, :] - self.stampSize / 2 - offset) * self.pixelScale).clamp(min=1e-3)
        f = galaxies.bulgeFraction.double().cpu()[:, None]
        agn = galaxies.agnFraction.double().cpu()[:, None]
        hb = (galaxies.hlrBulge.double().cpu() / galaxies.qBulge.double().cpu().sqrt()).clamp(min=1e-6)[:, None]
        hd = (galaxies.hlrDisk.double().cpu() / galaxies.qDisk.double().cpu().sqrt()).clamp(min=1e-6)[:, None]
        x = radii * _EXPONENTIAL_HLR / hd
        diskTail = (1.0 + x) * torch.exp(-x)
        bulgeTail = torch.special.gammaincc(torch.tensor(8.0, dtype=torch.float64),
                                            _DEVAUCOULEURS_B * (radii / hb) ** 0.25)
        bulgeTail = torch.where(galaxies.hlrBulge.cpu()[:, None] > 0, bulgeTail, torch.zeros_like(bulgeTail))
        diskTail = torch.where(galaxies.hlrDisk.cpu()[:, None] > 0, diskTail, torch.zeros_like(diskTail))
        tail = (1.0 - agn) * (f * bulgeTail + (1.0 - f) * diskTail)
        good = tail <= self.foldingThreshold
        first = torch.where(good.any(dim=1), good.double().argmax(dim=1),
                            torch.full((len(galaxies),), len(self.gridSizes) - 1))
        return first.long()

    def _grid(self, size: int, device: torch.device, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
        """kx, ky (rad/arcsec) of the oversampled grid of ``size`` that folds onto the rfft half-plane.

        Rows are the ``m M`` wavenumbers of the wide grid (FFT order); columns are those of its
        ``m (M // 2 + 1)`` columns whose index is congruent to ``0 .. M // 2`` modulo ``M``: the
        only aliases of the half-plane a real image needs.
        """
        key = (size, device, dtype)
        if key not in self._grids:
            m = self.oversampling
            k = torch.fft.fftfreq(m * size, d=self.pixelScale / m, device=device, dtype=dtype) * (2 * math.pi)
            columns = torch.cat([torch.arange(size // 2 + 1, device=device) + size * a for a in range(m)])
            ky, kx = torch.meshgrid(k, k[columns], indexing="ij")
            self._grids[key] = (kx.contiguous(), ky.contiguous())
        return self._grids[key]

    def galaxyTransform(self, galaxies: GalaxyParameters, kx: torch.Tensor, ky: torch.Tensor) -> torch.Tensor:
        r"""Unit-flux, unshifted :math:`\tilde G(\mathbf k)` of each galaxy, ``(N, *grid)``, real."""
        def component(hlr, q, pa, profile):
            S = shearMatrix(q, pa)[:, :, :, None, None]
            sx = S[:, 0, 0] * kx + S[:, 0, 1] * ky
            sy = S[:, 1, 0] * kx + S[:, 1, 1] * ky
            return profile(torch.sqrt(sx * sx + sy * sy) * hlr[:, None, None])

        hasBulge = (galaxies.hlrBulge > 0) & (galaxies.bulgeFraction > 0)
        hasDisk = (galaxies.hlrDisk > 0) & (galaxies.bulgeFraction < 1)
        # A component that is absent hands its share to the other, as the GalSim renderer does.
        bulgeShare = torch.where(hasDisk, galaxies.bulgeFraction, torch.ones_like(galaxies.bulgeFraction))
        bulgeShare = torch.where(hasBulge, bulgeShare, torch.zeros_like(bulgeShare))
        diskShare = torch.where(hasDisk, 1.0 - bulgeShare, torch.zeros_like(bulgeShare))
        agn = torch.where(hasBulge | hasDisk, galaxies.agnFraction, torch.ones_like(galaxies.agnFraction))
        tiny = torch.full_like(galaxies.hlrDisk, 1e-6)
        bulge = component(torch.where(hasBulge, galaxies.hlrBulge, tiny), galaxies.qBulge, galaxies.paBulge,
                          deVaucouleursK)
        disk = component(torch.where(hasDisk, galaxies.hlrDisk, tiny), galaxies.qDisk, galaxies.paDisk, exponentialK)
        extended = bulgeShare[:, None, None] * bulge + diskShare[:, None, None] * disk
        return (1.0 - agn)[:, None, None] * extended + agn[:, None, None]

    def draw(self, galaxies: GalaxyParameters, psf: PsfSpec) -> torch.Tensor:
        """Stamps ``(N, B, stampSize, stampSize)`` on the galaxies' device, in the flux's unit.

        The centre of galaxy ``n`` is at pixel ``(c + dx[n], c + dy[n])``, ``c = stampSize // 2``
        (array index ``[y, x]``).
        """
        device, dtype = galaxies.flux.device, galaxies.flux.dtype
        psf = psf.to(device).broadcast(len(galaxies), galaxies.nBands)
        out = torch.zeros(len(galaxies), galaxies.nBands, self.stampSize, self.stampSize, device=device, dtype=dtype)
        which = self.gridSizeOf(galaxies).to(device)
        for g, size in enumerate(self.gridSizes):
            members = torch.nonzero(which == g).flatten()
            # Memory per galaxy grows as the grid's area: fewer galaxies per FFT on larger grids.
            chunk = max(1, int(self.chunk * (self.gridSizes[0] / size) ** 2))
            for i in range(0, len(members), chunk):
                index = members[i : i + chunk]
                out[index] = self._drawChunk(galaxies[index], psf[index], size)
        return out

    def _drawChunk(self, galaxies: GalaxyParameters, psf: PsfSpec, size: int) -> torch.Tensor:
        device, dtype = galaxies.flux.device, galaxies.flux.dtype
        kx, ky = self._grid(size, device, dtype)
        k = torch.sqrt(kx * kx + ky * ky)
        s = self.pixelScale
        pixel = torch.sinc(kx * s / (2 * math.pi)) * torch.sinc(ky * s / (2 * math.pi))
        shape = self.galaxyTransform(galaxies, kx, ky) * pixel  # (N, mM, m(M/2+1))
        # The sub-pixel shift is a phase on the wide grid: aliases k and k + 2π/s take different phases.
        phase = kx * (galaxies.dx * s)[:, None, None] + ky * (galaxies.dy * s)[:, None, None]
        psfs = psf.transform(k)  # (N, B, mM, m(M/2+1)), real
        # Real arithmetic on the wide grid (the PSFs are real); fluxes scale the folded grid.
        real = self._fold(psfs * (shape * torch.cos(phase)).unsqueeze(1), size)
        imaginary = self._fold(psfs * (shape * torch.sin(phase)).unsqueeze(1), size)
        folded = torch.complex(real, -imaginary) * galaxies.flux[:, :, None, None]
        # The origin (pixel 0) moves to the grid's centre, M // 2.
        image = torch.fft.fftshift(torch.fft.irfft2(folded, s=(size, size)), dim=(-2, -1))
        low = size // 2 - self.stampSize // 2
        return image[:, :, low : low + self.stampSize, low : low + self.stampSize].contiguous()

    def _fold(self, wide: torch.Tensor, size: int) -> torch.Tensor:
        """Sum the aliases of the wide half-plane grid onto the ``(M, M // 2 + 1)`` rfft grid."""
        half = size // 2 + 1
        folded = None
        for a in range(self.oversampling):
            for c in range(self.oversampling):
                part = wide[..., a * size:(a + 1) * size, c * half:(c + 1) * half]
                folded = part.clone() if folded is None else folded.add_(part)
        assert folded is not None  # oversampling >= 1
        return folded
