r"""Rendering CatSim galaxies with GalSim under a survey's conditions.

A CatSim galaxy is the sum of a DeVaucouleurs bulge, an Exponential disk and an optional
point-source AGN. Each component has its half-light radius :math:`\sqrt{a b}`, its axis ratio
:math:`b/a` and its position angle, the same in every band; only the fluxes change with the
band. With total AB magnitude :math:`m_b` in band :math:`b`, the electrons collected are
:math:`N_b = t_b\,10^{-0.4 (m_b - m_{0,b})}` (:class:`~.survey.BandConditions`), split as

.. math::

    N_b^{\rm AGN} = f_{\rm AGN} N_b, \qquad
    N_b^{\rm bulge} = (1 - f_{\rm AGN})\, f_{\rm bulge}\, N_b, \qquad
    N_b^{\rm disk} = (1 - f_{\rm AGN})\,(1 - f_{\rm bulge})\, N_b,

with :math:`f_{\rm AGN}` = ``agn_fraction`` and :math:`f_{\rm bulge}` = ``bulge_fraction`` from
:func:`~.catsim.deriveCatsimColumns`. The profile is convolved with the band's Kolmogorov
PSF and drawn with GalSim's ``method="auto"`` (pixel response included) at its sub-pixel
centre. Images are in ADU: electrons divided by the gain.

Noise follows the paper (Sec. 2): the electron counts are Poisson on galaxies plus sky,
the mean sky is subtracted, and the variance plane is the variance the counts were drawn
with, :math:`(m + s)/g` in ADU for model :math:`m` and sky :math:`s` (ADU).

Pixel convention: as in :mod:`lsst.meas.extensions.madness.afw.geom`, the centre of pixel
``(x, y)`` lies at position ``(x, y)``; GalSim images get the same bounds, so GalSim's pixel
centres coincide with ours.

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 2 and Table 1.
Mendoza et al. 2025, "BlendingToolKit" (the CatSim bulge + disk + AGN drawing).
Rowe et al. 2015, Astronomy and Computing 10, 121, "GalSim".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import galsim
import numpy as np

from ..afw import ImagePsf
from .survey import LSST_CONDITIONS, SurveyConditions

__all__ = ["GalaxyStamp", "SceneRenderer", "galaxyElectrons", "addPoissonNoise", "pixelatedPsfs"]

# DeVaucouleurs wings reach far; rendering stops at this radius (pixels) around the centre.
DEFAULT_MAX_RADIUS = 48


def galaxyElectrons(galaxy: Mapping, conditions: SurveyConditions, bands: Sequence[str]) -> np.ndarray:
    """Total electrons of a catalogue galaxy in each band, from ``<band>_ab`` and the zero points.

    Examples
    --------
    >>> row = {"r_ab": 28.10}
    >>> float(galaxyElectrons(row, LSST_CONDITIONS, ["r"])[0])  # 1 e-/s for the r exposure
    5520.0
    """
    return np.array([conditions.electrons(band, float(galaxy[f"{band}_ab"])) for band in bands])


def pixelatedPsfs(profiles: Sequence[galsim.GSObject], size: int, pixelScale: float) -> list[ImagePsf]:
    """Unit-sum ``size``-square kernels of GalSim PSF ``profiles``, pixel response included
    (``method="auto"``, as galaxies are drawn), so they are the PSF a pixel-level model is
    convolved with."""
    return [ImagePsf(p.drawImage(nx=size, ny=size, scale=pixelScale, method="auto").array) for p in profiles]


def addPoissonNoise(
    noiseless: np.ndarray, sky: np.ndarray, rng: np.random.Generator, gain: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    r"""Poisson noise on model plus sky, sky subtracted; returns ``(noisy, variance)`` in ADU.

    ``noiseless`` is ``(band, y, x)`` in ADU and ``sky`` the mean sky per pixel of each band
    (ADU). Counts :math:`n \sim \mathrm{Poisson}(g (m + s))` become :math:`n/g - s`, and the
    variance :math:`(m + s)/g` is exactly the variance of that noise. The few slightly
    negative pixels of an FFT-drawn model count as zero for the Poisson mean.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> noisy, variance = addPoissonNoise(np.zeros((1, 200, 200)), np.array([1e4]), rng)
    >>> bool(abs(noisy.std() / np.sqrt(variance.mean()) - 1) < 0.02)
    True
    """
    sky = np.asarray(sky, dtype=np.float64).reshape(-1, 1, 1)
    mean = np.maximum(np.asarray(noiseless, dtype=np.float64), 0.0) + sky
    counts = rng.poisson(mean * gain)
    noisy = counts / gain - sky
    return noisy.astype(np.float32), (mean / gain).astype(np.float32)


@dataclass(frozen=True, eq=False)
class GalaxyStamp:
    """The noiseless image of one galaxy, ``(band, y, x)`` ADU, whose pixel ``[0, 0, 0]`` is
    parent pixel ``(x0, y0)``."""

    array: np.ndarray
    x0: int
    y0: int

    @property
    def shape(self) -> tuple[int, int]:
        return self.array.shape[1:]

    def addTo(self, image: np.ndarray, x0: int, y0: int) -> None:
        """Add the overlap of this stamp into ``image`` (``(band, y, x)``, pixel ``[0, 0]`` at
        parent ``(x0, y0)``)."""
        overlap = self._overlap(image.shape[1:], x0, y0)
        if overlap is not None:
            (sy, sx), (iy, ix) = overlap
            image[:, iy, ix] += self.array[:, sy, sx]

    def cutout(self, x0: int, y0: int, height: int, width: int) -> np.ndarray:
        """This galaxy on the box ``(x0, y0, height, width)``: zero where the stamp does not reach."""
        out = np.zeros((self.array.shape[0], height, width), dtype=self.array.dtype)
        self.addTo(out, x0, y0)
        return out

    def _overlap(self, shape: tuple[int, int], x0: int, y0: int):
        h, w = self.array.shape[1:]
        lowX, lowY = max(self.x0, x0), max(self.y0, y0)
        highX, highY = min(self.x0 + w, x0 + shape[1]), min(self.y0 + h, y0 + shape[0])
        if highX <= lowX or highY <= lowY:
            return None
        stampSlices = (slice(lowY - self.y0, highY - self.y0), slice(lowX - self.x0, highX - self.x0))
        imageSlices = (slice(lowY - y0, highY - y0), slice(lowX - x0, highX - x0))
        return stampSlices, imageSlices


class SceneRenderer:
    r"""Draws catalogue galaxies with one survey's conditions.

    Parameters
    ----------
    conditions
        Survey conditions (zero points, sky, PSF FWHM, exposure, pixel scale, gain).
    bands
        Bands to draw, in order; default all of the survey's.
    psfSize
        Side of the PSF kernel images (odd), as stored with exposures.
    maxRadius
        Each galaxy is drawn on a square of side :math:`2R + 1` around its centre pixel,
        :math:`R` = ``maxRadius`` pixels, so a neighbour's light reaches that far into a
        field. Flux beyond it is lost (DeVaucouleurs wings of the largest bulges).

    Examples
    --------
    >>> renderer = SceneRenderer(bands=["r"], maxRadius=22)
    >>> row = dict(r_ab=22.0, bulge_fraction=0.0, agn_fraction=0.0, hlr_bulge=0.0,
    ...            q_bulge=1.0, hlr_disk=0.4, q_disk=0.5, pa_bulge=0.0, pa_disk=30.0)
    >>> stamp = renderer.drawGalaxy(row, 10.2, 20.0)
    >>> stamp.shape, (stamp.x0, stamp.y0)
    ((45, 45), (-12, -2))
    >>> bool(abs(stamp.array.sum() / galaxyElectrons(row, LSST_CONDITIONS, ["r"])[0] - 1) < 0.01)
    True
    """

    def __init__(
        self,
        conditions: SurveyConditions = LSST_CONDITIONS,
        bands: Sequence[str] | None = None,
        *,
        psfSize: int = 41,
        maxRadius: int = DEFAULT_MAX_RADIUS,
    ):
        self.conditions = conditions
        self.bands = tuple(conditions.bandNames if bands is None else bands)
        for band in self.bands:
            conditions.band(band)  # names the survey's bands if one is unknown
        if psfSize < 1 or psfSize % 2 == 0:
            raise ValueError(f"psfSize must be a positive odd number, got {psfSize}")
        if maxRadius < 1:
            raise ValueError(f"maxRadius must be at least 1 pixel, got {maxRadius}")
        self.psfSize = int(psfSize)
        self.maxRadius = int(maxRadius)
        self.pixelScale = conditions.pixelScale
        self.gain = conditions.gain
        self.psfProfiles = [galsim.Kolmogorov(fwhm=conditions.band(b).psfFwhm) for b in self.bands]
        #: Mean sky per pixel of each band, ADU.
        self.sky = np.array([conditions.skyPerPixel(b) / self.gain for b in self.bands])
        self._psfs: list[ImagePsf] | None = None

    @property
    def psfs(self) -> list[ImagePsf]:
        """The pixelated PSF of each band (pixel response included), ``psfSize`` square."""
        if self._psfs is None:
            self._psfs = pixelatedPsfs(self.psfProfiles, self.psfSize, self.pixelScale)
        return self._psfs

    def profile(self, galaxy: Mapping) -> tuple[galsim.GSObject | None, galsim.GSObject | None, float, float]:
        """Unit-flux bulge and disk profiles (``None`` when absent) and the bulge and AGN fractions."""
        bulgeFraction = float(galaxy["bulge_fraction"])
        agnFraction = float(galaxy["agn_fraction"])
        bulge = disk = None
        if bulgeFraction > 0 and float(galaxy["hlr_bulge"]) > 0:
            bulge = galsim.DeVaucouleurs(half_light_radius=float(galaxy["hlr_bulge"])).shear(
                q=float(galaxy["q_bulge"]), beta=float(galaxy["pa_bulge"]) * galsim.degrees
            )
        if bulgeFraction < 1 and float(galaxy["hlr_disk"]) > 0:
            disk = galsim.Exponential(half_light_radius=float(galaxy["hlr_disk"])).shear(
                q=float(galaxy["q_disk"]), beta=float(galaxy["pa_disk"]) * galsim.degrees
            )
        return bulge, disk, bulgeFraction, agnFraction

    def drawGalaxy(self, galaxy: Mapping, x: float, y: float) -> GalaxyStamp:
        """Draw one galaxy centred at parent position ``(x, y)`` on its ``2 maxRadius + 1`` square.

        ``galaxy`` is a catalogue row (or mapping) with ``<band>_ab``, ``bulge_fraction``,
        ``agn_fraction``, ``hlr_bulge``, ``q_bulge``, ``pa_bulge``, ``hlr_disk``, ``q_disk`` and
        ``pa_disk`` (:func:`~.catsim.deriveCatsimColumns`).
        """
        centreX, centreY = int(np.floor(x + 0.5)), int(np.floor(y + 0.5))
        r = self.maxRadius
        bounds = galsim.BoundsI(centreX - r, centreX + r, centreY - r, centreY + r)
        electrons = galaxyElectrons(galaxy, self.conditions, self.bands)
        bulge, disk, bulgeFraction, agnFraction = self.profile(galaxy)
        # A component that is absent hands its share to the other, so the total is kept.
        extended = [(bulge, bulgeFraction if disk is not None else 1.0),
                    (disk, 1.0 - bulgeFraction if bulge is not None else 1.0)]
        parts = [(component, weight) for component, weight in extended if component is not None]
        if not parts:
            agnFraction = 1.0
        array = np.empty((len(self.bands), 2 * r + 1, 2 * r + 1), dtype=np.float32)
        centre = galsim.PositionD(float(x), float(y))
        for b, psf in enumerate(self.psfProfiles):
            total = electrons[b] / self.gain
            components = [component * (total * (1.0 - agnFraction) * weight) for component, weight in parts]
            if agnFraction > 0:
                components.append(galsim.DeltaFunction(flux=total * agnFraction))
            image = galsim.ImageF(bounds, scale=self.pixelScale)
            galsim.Convolve(galsim.Add(components) if len(components) > 1 else components[0], psf).drawImage(
                image=image, center=centre, method="auto"
            )
            array[b] = image.array
        return GalaxyStamp(array, centreX - r, centreY - r)

    def drawScene(self, galaxies: Sequence[Mapping], positions: np.ndarray) -> list[GalaxyStamp]:
        """Draw each galaxy at its ``(x, y)`` position (``positions`` is ``(N, 2)``)."""
        positions = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
        if len(positions) != len(galaxies):
            raise ValueError(f"{len(galaxies)} galaxies but {len(positions)} positions")
        return [self.drawGalaxy(g, x, y) for g, (x, y) in zip(galaxies, positions)]

    def sumStamps(self, stamps: Sequence[GalaxyStamp], x0: int, y0: int, height: int, width: int) -> np.ndarray:
        """The summed noiseless image of ``stamps`` on the box ``(x0, y0, height, width)``."""
        image = np.zeros((len(self.bands), height, width), dtype=np.float32)
        for stamp in stamps:
            stamp.addTo(image, x0, y0)
        return image

    def addNoise(self, noiseless: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Noisy image and variance of ``noiseless`` with this survey's sky (:func:`addPoissonNoise`)."""
        return addPoissonNoise(noiseless, self.sky, rng, self.gain)
