r"""Training stamps drawn on the training device: observed stamps in, model-frame stamps out.

The networks learn galaxies in a **model frame** (:class:`~lsst.meas.extensions.madness.models.config.ModelFrame`):
pixels of the frame's scale, convolved only with a narrow Gaussian model PSF, in units of
nJy divided by a per-band scale. The encoders see the same galaxies **observed**: convolved
with a PSF drawn at random per band (Kolmogorov or Moffat, FWHM uniform over a realistic
range), with the noise of the survey's depth. :class:`TrainingStampSimulator` draws both
from the same Fourier transform (:mod:`.fourier`) in one FFT per galaxy, on CPU or CUDA,
so every training step sees new galaxies, orientations, offsets, PSFs and noise.

Units. A galaxy of AB magnitude :math:`m` has flux :math:`F = 3631\,\mathrm{Jy}\;10^{-0.4m}`
(nJy) and yields :math:`N_e = t\,10^{-0.4(m - m_0)}` electrons, so one electron is
:math:`c_b = 3631\cdot10^{9}\,10^{-0.4 m_0}/t` nJy. Network pixels are
:math:`x = F_{\rm pixel}/s_b` with the band scale :math:`s_b` (nJy); the default scale is
the sky noise per pixel at the survey's depth, :math:`s_b = c_b\sqrt{\bar s_b}`, so every band
enters with unit noise and none is starved. Noise is Gaussian with the Poisson variance of
galaxies plus sky, :math:`\sigma^2 = (\bar s_b + N_e)` electrons.

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 2 (data), Sec. 3.2-3.4 (what each network sees).
Melchior et al. 2018, Astronomy and Computing 24, 129, "SCARLET" (model frame and observations).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .fourier import FourierRenderer, GalaxyParameters, PsfSpec
from .survey import LSST_CONDITIONS, SurveyConditions

__all__ = [
    "POPULATION_COLUMNS",
    "AB_ZERO_NJY",
    "nJyPerElectron",
    "skyNoiseNJy",
    "populationArrays",
    "trainingSplits",
    "savePopulationArrays",
    "loadPopulationArrays",
    "ObservedPsfRange",
    "TrainingStampSimulator",
]

#: AB zero point in nJy: F = AB_ZERO_NJY 10^{-0.4 m}.
AB_ZERO_NJY = 3631e9
#: Shape columns of a CatSim table the simulator reads (magnitudes are ``<band>_ab``).
POPULATION_COLUMNS: tuple[str, ...] = (
    "bulge_fraction", "agn_fraction", "hlr_bulge", "q_bulge", "pa_bulge", "hlr_disk", "q_disk", "pa_disk",
)


def nJyPerElectron(conditions: SurveyConditions, band: str) -> float:
    """nJy of one electron in ``band``'s coadd (gain 1).

    Examples
    --------
    >>> round(nJyPerElectron(LSST_CONDITIONS, "r"), 6)
    0.003785
    """
    b = conditions.band(band)
    return AB_ZERO_NJY * 10.0 ** (-0.4 * b.zeroPoint) / b.exposureTime


def skyNoiseNJy(conditions: SurveyConditions, bands: Sequence[str]) -> tuple[float, ...]:
    """Sky noise per pixel of each band, nJy: the default per-band scale of the networks.

    Examples
    --------
    >>> [round(s, 2) for s in skyNoiseNJy(LSST_CONDITIONS, "ugrizy")]
    [2.35, 1.17, 1.35, 2.18, 4.19, 9.69]
    """
    return tuple(float(nJyPerElectron(conditions, b) * math.sqrt(conditions.skyPerPixel(b))) for b in bands)


def populationArrays(table, bands: Sequence[str]) -> dict[str, np.ndarray]:
    """The columns of a CatSim table the simulator needs, as float32 arrays (``magnitudes`` is ``(N, B)``)."""
    missing = [c for c in (*POPULATION_COLUMNS, *(f"{b}_ab" for b in bands)) if c not in table.colnames]
    if missing:
        raise KeyError(f"the galaxy table lacks columns {missing}")
    arrays = {c: np.asarray(table[c], dtype=np.float32) for c in POPULATION_COLUMNS}
    arrays["magnitudes"] = np.stack([np.asarray(table[f"{b}_ab"], dtype=np.float32) for b in bands], axis=1)
    arrays["galtileid"] = np.asarray(table["galtileid"], dtype=np.int64)
    arrays["bands"] = np.array(list(bands))
    return arrays


def trainingSplits(galaxies, bands: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """:func:`populationArrays` of the train and validation galaxies of a CatSim table (never the test split)."""
    from .splits import splitOf

    split = splitOf(np.asarray(galaxies["galtileid"]))
    return {name: populationArrays(galaxies[split == name], bands) for name in ("train", "validation")}


def savePopulationArrays(path: str | os.PathLike, galaxies, bands: Sequence[str]) -> dict[str, dict[str, np.ndarray]]:
    """Write the train and validation galaxies of a CatSim table to a compressed ``.npz``.

    The file is what a GPU machine without astropy or GalSim trains from
    (:func:`loadPopulationArrays`); the test split is left out, so a benchmark's galaxies
    never reach training. Returns the arrays of each split.
    """
    arrays = trainingSplits(galaxies, bands)
    flat: dict[str, Any] = {f"{name}.{k}": v for name, a in arrays.items() for k, v in a.items()}
    np.savez_compressed(path, **flat)
    return arrays


def loadPopulationArrays(path: str | os.PathLike, split: str) -> dict[str, np.ndarray]:
    """The ``split`` (``"train"`` or ``"validation"``) of a file of :func:`savePopulationArrays`.

    Raises
    ------
    KeyError
        Naming the file and the missing column.
    """
    prefix = f"{split}."
    with np.load(path) as data:
        arrays = {k[len(prefix):]: data[k] for k in data.files if k.startswith(prefix)}
    missing = [c for c in (*POPULATION_COLUMNS, "magnitudes", "bands") if c not in arrays]
    if missing:
        raise KeyError(f"{path}: the {split} galaxies lack {missing} (write the file with savePopulationArrays)")
    return arrays


@dataclass(frozen=True)
class ObservedPsfRange:
    """The PSFs observed stamps are drawn with, one per galaxy and band.

    Attributes
    ----------
    fwhm
        FWHM range (arcsec), drawn uniformly; the default spans sharp HSC and space-like
        ground seeing (0.45″) to poor LSST and DES coadds (1.3″).
    moffatFraction
        Share of Moffat PSFs (β drawn from 2.5, 3.5, 4.5); the rest are Kolmogorov.
    """

    fwhm: tuple[float, float] = (0.45, 1.3)
    moffatFraction: float = 0.5

    def sample(self, shape: tuple[int, ...], generator: torch.Generator, device) -> PsfSpec:
        low, high = self.fwhm
        fwhm = low + (high - low) * torch.rand(shape, generator=generator, device=device)
        moffat = torch.rand(shape, generator=generator, device=device) < self.moffatFraction
        betas = torch.tensor([2.5, 3.5, 4.5], device=device)
        beta = betas[torch.randint(0, 3, shape, generator=generator, device=device)]
        kind = torch.where(moffat, 2, 1)
        return PsfSpec(kind.long(), fwhm, beta)


class TrainingStampSimulator:
    r"""Isolated and blended training stamps, in the model frame and observed, on one device.

    Parameters
    ----------
    population
        :func:`populationArrays` of the galaxies to draw from (one split).
    bands
        Bands, in channel order; must be the population's.
    frame
        The model frame (:class:`~lsst.meas.extensions.madness.models.config.ModelFrame`: pixel
        scale, model PSF, band scales); default: that of ``conditions``.
    stampSize
        Side of the stamps, pixels.
    conditions
        Survey depth of the observed stamps (zero points, exposure times, sky).
    psfRange
        The observed PSFs.
    device
        Where the stamps are drawn and returned.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.sim import generatePopulation
    >>> arrays = populationArrays(generatePopulation(50, seed=2), "gr")
    >>> simulator = TrainingStampSimulator(arrays, "gr", conditions=LSST_CONDITIONS, stampSize=21)
    >>> batch = simulator.isolated(4, torch.Generator().manual_seed(0))
    >>> sorted(batch), tuple(batch["observed"].shape)
    (['model', 'observed', 'observedNoiseless', 'variance'], (4, 2, 21, 21))
    """

    def __init__(self, population: Mapping[str, np.ndarray], bands: Sequence[str], frame=None, *,
                 stampSize: int = 45, conditions: SurveyConditions = LSST_CONDITIONS,
                 psfRange: ObservedPsfRange = ObservedPsfRange(), device: str | torch.device = "cpu"):
        from ..models.config import ModelFrame

        self.bands = tuple(bands)
        stored = tuple(str(b) for b in np.asarray(population["bands"]).tolist())
        if stored != self.bands:
            raise ValueError(f"the population has bands {''.join(stored)}, the models {''.join(self.bands)}")
        self.frame = ModelFrame.forSurvey(self.bands, conditions) if frame is None else frame
        if len(self.frame.bandScales) != len(self.bands):
            raise ValueError(f"the frame has {len(self.frame.bandScales)} band scales for {len(self.bands)} bands")
        if self.frame.psfFwhm >= psfRange.fwhm[0]:
            raise ValueError(f"the model PSF ({self.frame.psfFwhm}″) must be narrower than every observed PSF "
                             f"(from {psfRange.fwhm[0]}″)")
        self.device = torch.device(device)
        self.conditions, self.psfRange, self.stampSize = conditions, psfRange, int(stampSize)
        self.bandScales = tuple(self.frame.bandScales)
        self.renderer = FourierRenderer(stampSize, self.frame.pixelScale)
        t = lambda a: torch.as_tensor(np.asarray(a), device=self.device)  # noqa: E731
        self.columns = {c: t(population[c]).float() for c in POPULATION_COLUMNS}
        self.magnitudes = t(population["magnitudes"]).float()
        self.size = len(self.magnitudes)
        if self.size == 0:
            raise ValueError("the population is empty")
        electronsToNJy = [nJyPerElectron(conditions, b) for b in self.bands]
        scales = torch.tensor(self.bandScales, dtype=torch.float32, device=self.device)
        #: Electrons per network unit, and sky electrons per pixel, per band.
        self.electronsPerUnit = scales / torch.tensor(electronsToNJy, device=self.device)
        self.skyElectrons = torch.tensor([conditions.skyPerPixel(b) for b in self.bands], device=self.device)

    @property
    def nBands(self) -> int:
        return len(self.bands)

    def galaxies(self, n: int, generator: torch.Generator) -> GalaxyParameters:
        """``n`` galaxies of the population, each turned by a random angle, in network units, centred."""
        index = torch.randint(0, self.size, (n,), generator=generator, device=self.device)
        turn = 180.0 * torch.rand(n, generator=generator, device=self.device)
        c = {k: v[index] for k, v in self.columns.items()}
        fluxNJy = AB_ZERO_NJY * 10.0 ** (-0.4 * self.magnitudes[index].double())
        scales = torch.tensor(self.bandScales, dtype=torch.float64, device=self.device)
        zero = torch.zeros(n, device=self.device)
        return GalaxyParameters(
            flux=(fluxNJy / scales).float(), bulgeFraction=c["bulge_fraction"], agnFraction=c["agn_fraction"],
            hlrBulge=c["hlr_bulge"], qBulge=c["q_bulge"], paBulge=c["pa_bulge"] + turn, hlrDisk=c["hlr_disk"],
            qDisk=c["q_disk"], paDisk=c["pa_disk"] + turn, dx=zero, dy=zero)

    def observedPsfs(self, n: int, generator: torch.Generator) -> PsfSpec:
        return self.psfRange.sample((n, self.nBands), generator, self.device)

    def _draw(self, galaxies: GalaxyParameters, observed: PsfSpec,
              withModel: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Observed stamps and (optionally) model-frame stamps from one transform per galaxy."""
        b = self.nBands
        if not withModel:
            return self.renderer.draw(galaxies, observed), None
        model = PsfSpec.gaussian(torch.full_like(observed.fwhm, self.frame.psfFwhm))
        both = PsfSpec(torch.cat([observed.kind, model.kind], 1), torch.cat([observed.fwhm, model.fwhm], 1),
                       torch.cat([observed.beta, model.beta.to(observed.beta.dtype)], 1))
        stamps = self.renderer.draw(galaxies.withFlux(torch.cat([galaxies.flux, galaxies.flux], 1)), both)
        return stamps[:, :b], stamps[:, b:]

    def addNoise(self, noiseless: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Noisy stamps and their variance (network units²): sky plus the galaxies' own Poisson noise."""
        perUnit = self.electronsPerUnit.view(1, -1, 1, 1)
        variance = (self.skyElectrons.view(1, -1, 1, 1) + noiseless.clamp(min=0) * perUnit) / perUnit**2
        noise = torch.randn(noiseless.shape, generator=generator, device=self.device) * variance.sqrt()
        return noiseless + noise, variance

    def isolated(self, n: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """``n`` isolated centred galaxies: ``observed`` (noisy), ``observedNoiseless``, its
        ``variance``, and ``model`` (noiseless, model frame), all ``(n, B, S, S)`` network units."""
        galaxies = self.galaxies(n, generator)
        observed, model = self._draw(galaxies, self.observedPsfs(n, generator), withModel=True)
        assert model is not None  # withModel
        noisy, variance = self.addNoise(observed, generator)
        return {"observed": noisy, "observedNoiseless": observed, "variance": variance, "model": model}

    def blended(self, n: int, generator: torch.Generator, *, maxNeighbours: int = 2,
                maxOffset: float = 15.0) -> dict[str, torch.Tensor]:
        """``n`` blends centred on their central galaxy (sub-pixel offset up to ½ pixel) with 0 to
        ``maxNeighbours`` neighbours within ``maxOffset`` pixels, all observed through the same
        PSFs: ``observed`` (noisy blend), ``isolated`` (the central galaxy alone, centred, with sky
        noise: what the frozen VAE encoder sees), ``model`` (the central galaxy in the model frame)."""
        central = self.galaxies(n, generator)
        psf = self.observedPsfs(n, generator)
        observedCentral, model = self._draw(central, psf, withModel=True)
        assert model is not None  # withModel
        shift = torch.rand((2, n), generator=generator, device=self.device) - 0.5
        blend = self.renderer.draw(central.withCentres(shift[0], shift[1]), psf)
        count = torch.randint(0, maxNeighbours + 1, (n,), generator=generator, device=self.device)
        for k in range(maxNeighbours):
            neighbours = self.galaxies(n, generator)
            offset = (2 * torch.rand((2, n), generator=generator, device=self.device) - 1) * maxOffset
            drawn = self.renderer.draw(neighbours.withCentres(offset[0], offset[1]), psf)
            blend = blend + drawn * (count > k).float().view(-1, 1, 1, 1)
        noisy, variance = self.addNoise(blend, generator)
        skyOnly = torch.randn(observedCentral.shape, generator=generator, device=self.device)
        skySigma = (self.skyElectrons.sqrt() / self.electronsPerUnit).view(1, -1, 1, 1)
        return {"observed": noisy, "variance": variance, "isolated": observedCentral + skyOnly * skySigma,
                "model": model, "neighbours": count}
