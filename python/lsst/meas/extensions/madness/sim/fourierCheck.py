r"""How closely and how fast :mod:`.fourier` draws galaxies compared with GalSim (``madness-sim fourier-check``).

:func:`compareWithGalsim` draws galaxies of the built-in population (:func:`~.population.generatePopulation`)
in the six LSST bands, with their fluxes in electrons (:func:`~.render.galaxyElectrons`), a random
sub-pixel centre in :math:`[-0.5, 0.5)^2` pixels and, for every galaxy and band, a random PSF:
Kolmogorov, Moffat (:math:`\beta` = 2.5, 3.5 or 4.5) or Gaussian with an FWHM between 0.45″ and
1.3″. Each stamp is drawn by GalSim (float64, ``method="auto"``, the galaxy model of
:meth:`.render.SceneRenderer.profile`, the same PSF objects) and by
:class:`~.fourier.FourierRenderer` in float32 and float64. Per band it reports the flux error
:math:`|F_{\rm ours}/F_{\rm GalSim} - 1|` (:math:`F` the sum of the stamp) and the pixel error
:math:`\max|I_{\rm ours} - I_{\rm GalSim}| / \max I_{\rm GalSim}`: their maxima, 99th percentiles
and the galaxies missing the targets (flux within :data:`FLUX_TARGET`, pixels within
:data:`PIXEL_TARGET` of the peak).

:func:`measureThroughput` times the same stamps: GalSim in one process, and
:class:`~.fourier.FourierRenderer` in float32 batches on the CPU (with the torch threads set) and,
when there is one, on a CUDA GPU. :func:`writeFourierCheck` writes both as Markdown and JSON
(``doc/_generated/fourier-check.md`` and ``.json``), which ``doc/simulation.md`` includes.

Examples
--------
>>> result = compareWithGalsim(nGalaxies=2, stampSize=33, bands="r", progress=False)
>>> result["agreement"]["float64"]["galaxiesFailing"]
0
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .population import generatePopulation
from .render import SceneRenderer, galaxyElectrons
from .survey import LSST_CONDITIONS, SurveyConditions

__all__ = [
    "FLUX_TARGET",
    "PIXEL_TARGET",
    "PSF_FAMILIES",
    "MOFFAT_BETAS",
    "FWHM_RANGE",
    "CheckSample",
    "drawSample",
    "drawGalsim",
    "drawFourier",
    "compareWithGalsim",
    "measureThroughput",
    "fourierCheckMarkdown",
    "writeFourierCheck",
]

#: Largest relative flux error of a stamp, :math:`|F/F_{\rm GalSim} - 1|`.
FLUX_TARGET = 1e-3
#: Largest pixel difference of a stamp, as a fraction of GalSim's peak pixel.
PIXEL_TARGET = 5e-3
#: PSF families drawn, with equal probability.
PSF_FAMILIES = ("kolmogorov", "moffat", "gaussian")
#: Moffat indices drawn, with equal probability.
MOFFAT_BETAS = (2.5, 3.5, 4.5)
#: PSF FWHMs are uniform in this range, arcsec.
FWHM_RANGE = (0.45, 1.3)

_COLUMNS = dict(bulgeFraction="bulge_fraction", agnFraction="agn_fraction", hlrBulge="hlr_bulge", qBulge="q_bulge",
                paBulge="pa_bulge", hlrDisk="hlr_disk", qDisk="q_disk", paDisk="pa_disk")


@dataclass(frozen=True, eq=False)
class CheckSample:
    """Galaxies with their fluxes, centres and PSFs: the input both renderers draw.

    Attributes
    ----------
    galaxies
        Catalogue rows (CatSim columns of :func:`~.catsim.deriveCatsimColumns`).
    bands
        Band names, in the order of the flux and PSF axes.
    flux
        ``(N, B)`` electrons.
    dx, dy
        ``(N,)`` centres relative to the stamp's central pixel, pixels.
    psfKind
        ``(N, B)`` indices into :data:`PSF_FAMILIES`.
    fwhm, beta
        ``(N, B)`` PSF FWHM (arcsec) and Moffat index (used by Moffat PSFs only).
    """

    galaxies: Any  # an astropy Table
    bands: tuple[str, ...]
    flux: np.ndarray
    dx: np.ndarray
    dy: np.ndarray
    psfKind: np.ndarray
    fwhm: np.ndarray
    beta: np.ndarray

    def __len__(self) -> int:
        return len(self.flux)

    def galaxyParameters(self, index=slice(None), *, dtype=None, device="cpu"):
        """:class:`~.fourier.GalaxyParameters` of galaxies ``index``, made directly in ``dtype`` (default float32)."""
        import torch

        from .fourier import GalaxyParameters

        dtype = torch.float32 if dtype is None else dtype

        def tensor(values):
            return torch.as_tensor(np.asarray(values, dtype=np.float64)[index], dtype=dtype, device=device)

        columns = {attribute: tensor(self.galaxies[column]) for attribute, column in _COLUMNS.items()}
        return GalaxyParameters(flux=tensor(self.flux), dx=tensor(self.dx), dy=tensor(self.dy), **columns)

    def psfSpec(self, index=slice(None), *, device="cpu"):
        """:class:`~.fourier.PsfSpec` of galaxies ``index``, ``(n, B)``."""
        import torch

        from .fourier import PSF_KINDS, PsfSpec

        codes = np.array([PSF_KINDS[name] for name in PSF_FAMILIES])[self.psfKind[index]]
        return PsfSpec(torch.as_tensor(codes, dtype=torch.int64, device=device),
                       torch.as_tensor(self.fwhm[index], dtype=torch.float64, device=device),
                       torch.as_tensor(self.beta[index], dtype=torch.float64, device=device))

    def galsimPsf(self, n: int, b: int):
        """GalSim's profile of the PSF of galaxy ``n`` in band ``b``."""
        import galsim

        family, fwhm = PSF_FAMILIES[self.psfKind[n, b]], float(self.fwhm[n, b])
        if family == "kolmogorov":
            return galsim.Kolmogorov(fwhm=fwhm)
        if family == "moffat":
            return galsim.Moffat(beta=float(self.beta[n, b]), fwhm=fwhm)
        return galsim.Gaussian(fwhm=fwhm)

    def describe(self, n: int, b: int) -> dict:
        """The parameters of galaxy ``n`` and its PSF in band ``b``, as plain numbers."""
        row = self.galaxies[n]
        out = {"galaxy": int(n), "band": self.bands[b], "psf": PSF_FAMILIES[self.psfKind[n, b]],
               "fwhm": float(self.fwhm[n, b])}
        if out["psf"] == "moffat":
            out["beta"] = float(self.beta[n, b])
        out.update({column: float(row[column]) for column in _COLUMNS.values()})
        out.update(dx=float(self.dx[n]), dy=float(self.dy[n]), flux=float(self.flux[n, b]))
        return out


def drawSample(nGalaxies: int, seed: int = 0, bands: Sequence[str] = "ugrizy",
               conditions: SurveyConditions = LSST_CONDITIONS) -> CheckSample:
    """``nGalaxies`` galaxies of the built-in population (seed ``seed``) with their electrons in
    ``bands`` under ``conditions``, random centres and random PSFs (module docstring).

    Examples
    --------
    >>> sample = drawSample(3, seed=1, bands="gr")
    >>> sample.flux.shape, sample.psfKind.shape, bool(np.all(np.abs(sample.dx) <= 0.5))
    ((3, 2), (3, 2), True)
    """
    if nGalaxies < 1:
        raise ValueError(f"nGalaxies must be at least 1, got {nGalaxies}")
    bands = tuple(bands)
    galaxies = generatePopulation(nGalaxies, seed, conditions=conditions)
    flux = np.array([galaxyElectrons(row, conditions, bands) for row in galaxies], dtype=np.float64)
    rng = np.random.default_rng([seed, 0x4F])  # independent of the population's stream
    shape = (nGalaxies, len(bands))
    dx, dy = rng.uniform(-0.5, 0.5, nGalaxies), rng.uniform(-0.5, 0.5, nGalaxies)
    psfKind = rng.integers(len(PSF_FAMILIES), size=shape)
    fwhm = rng.uniform(*FWHM_RANGE, size=shape)
    beta = rng.choice(np.asarray(MOFFAT_BETAS), size=shape)
    return CheckSample(galaxies, bands, flux, dx, dy, psfKind, fwhm, beta)


def _galsimGalaxy(profile: SceneRenderer, row):
    """Unit-flux GalSim galaxy (bulge + disk + AGN) of a catalogue row, as :meth:`.SceneRenderer.drawGalaxy`
    builds it."""
    import galsim

    bulge, disk, bulgeFraction, agnFraction = profile.profile(row)
    extended = [(bulge, bulgeFraction if disk is not None else 1.0),
                (disk, 1.0 - bulgeFraction if bulge is not None else 1.0)]
    parts = [(component, weight) for component, weight in extended if component is not None]
    if not parts:
        agnFraction = 1.0
    components = [component * ((1.0 - agnFraction) * weight) for component, weight in parts]
    if agnFraction > 0:
        components.append(galsim.DeltaFunction(flux=agnFraction))
    return galsim.Add(components) if len(components) > 1 else components[0]


def drawGalsim(sample: CheckSample, stampSize: int = 45, pixelScale: float = 0.2, *, index: Sequence[int] | None = None,
               progress: bool = False) -> np.ndarray:
    """GalSim stamps ``(n, B, S, S)``, float64, of the galaxies ``index`` (default all) of ``sample``."""
    import galsim
    from tqdm.auto import tqdm

    index = range(len(sample)) if index is None else index
    profile = SceneRenderer(bands=sample.bands)
    out = np.empty((len(index), len(sample.bands), stampSize, stampSize))
    for i, n in enumerate(tqdm(index, desc="GalSim", unit="galaxy", disable=not progress)):
        galaxy = _galsimGalaxy(profile, sample.galaxies[n])
        for b in range(len(sample.bands)):
            image = galsim.ImageD(stampSize, stampSize, scale=pixelScale)
            galsim.Convolve(galaxy * float(sample.flux[n, b]), sample.galsimPsf(n, b)).drawImage(
                image=image, offset=(float(sample.dx[n]), float(sample.dy[n])), method="auto")
            out[i, b] = image.array
    return out


def drawFourier(sample: CheckSample, renderer, *, dtype=None, device="cpu", batchSize: int = 256,
                progress: bool = False) -> np.ndarray:
    """:class:`~.fourier.FourierRenderer` stamps ``(N, B, S, S)`` of ``sample`` in ``dtype`` on
    ``device``, in batches of ``batchSize`` galaxies, returned as float64 numpy."""
    from tqdm.auto import tqdm

    starts = range(0, len(sample), batchSize)
    parts = []
    for start in tqdm(starts, desc=f"Fourier {str(dtype).replace('torch.', '')}", unit="batch", disable=not progress):
        index = slice(start, start + batchSize)
        stamps = renderer.draw(sample.galaxyParameters(index, dtype=dtype, device=device),
                               sample.psfSpec(index, device=device))
        parts.append(stamps.cpu().double().numpy())
    return np.concatenate(parts)


def _errors(ours: np.ndarray, reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(N, B)`` relative flux errors and pixel errors (max |difference| over GalSim's peak)."""
    flux = np.abs(ours.sum(axis=(2, 3)) / reference.sum(axis=(2, 3)) - 1.0)
    pixel = np.abs(ours - reference).max(axis=(2, 3)) / reference.max(axis=(2, 3))
    return flux, pixel


def _summary(flux: np.ndarray, pixel: np.ndarray) -> dict:
    return {"stamps": int(flux.size),
            "maxFluxError": float(flux.max()), "p99FluxError": float(np.percentile(flux, 99)),
            "maxPixelError": float(pixel.max()), "p99PixelError": float(np.percentile(pixel, 99)),
            "failingFlux": int((flux > FLUX_TARGET).sum()), "failingPixel": int((pixel > PIXEL_TARGET).sum()),
            "failing": int(((flux > FLUX_TARGET) | (pixel > PIXEL_TARGET)).sum())}


def _worst(sample: CheckSample, flux: np.ndarray, pixel: np.ndarray, renderer, count: int) -> list[dict]:
    """The ``count`` stamps with the largest flux errors and the ``count`` with the largest pixel errors."""
    grids = renderer.gridSizeOf(sample.galaxyParameters()).numpy()
    picked: dict[tuple[int, int], None] = {}
    for errors in (flux, pixel):
        for flat in np.argsort(errors, axis=None)[::-1][:count]:
            n, b = np.unravel_index(flat, errors.shape)
            picked[(int(n), int(b))] = None
    rows = []
    for n, b in picked:
        row = sample.describe(n, b)
        row.update(fluxError=float(flux[n, b]), pixelError=float(pixel[n, b]), gridSize=renderer.gridSizes[grids[n]])
        rows.append(row)
    return sorted(rows, key=lambda row: -max(row["fluxError"] / FLUX_TARGET, row["pixelError"] / PIXEL_TARGET))


def compareWithGalsim(nGalaxies: int = 1000, seed: int = 0, stampSize: int = 45, pixelScale: float = 0.2, *,
                      bands: Sequence[str] = "ugrizy", device: str = "cpu", batchSize: int = 256, worst: int = 5,
                      progress: bool = True, sample: CheckSample | None = None) -> dict:
    """Draw ``nGalaxies`` galaxies (:func:`drawSample`) with GalSim and with :class:`~.fourier.FourierRenderer`
    (float32 and float64 on ``device``) and summarise the differences (module docstring).

    Returns a dict with, for each dtype, ``perBand`` and ``perPsf`` summaries (maxima and 99th
    percentiles of the flux and pixel errors, stamps failing each target) and
    ``galaxiesFailing`` (galaxies failing a target in some band), and the ``worst`` stamps
    with their parameters. ``sample`` replaces the drawn galaxies.
    """
    import torch

    from ..models.device import resolveDevice
    from .fourier import FourierRenderer

    torchDevice = resolveDevice(device)
    sample = drawSample(nGalaxies, seed, bands) if sample is None else sample
    renderer = FourierRenderer(stampSize, pixelScale)
    began = time.perf_counter()
    reference = drawGalsim(sample, stampSize, pixelScale, progress=progress)
    galsimSeconds = time.perf_counter() - began
    result: dict[str, Any] = {"nGalaxies": len(sample), "seed": seed, "stampSize": stampSize, "pixelScale": pixelScale,
              "bands": list(sample.bands), "device": str(torchDevice), "fwhmRange": list(FWHM_RANGE),
              "psfFamilies": list(PSF_FAMILIES), "moffatBetas": list(MOFFAT_BETAS),
              "targets": {"flux": FLUX_TARGET, "pixel": PIXEL_TARGET}, "galsimSeconds": galsimSeconds,
              "fourierSeconds": {}, "agreement": {}, "worst": {}}
    for name, dtype in (("float64", torch.float64), ("float32", torch.float32)):
        began = time.perf_counter()
        ours = drawFourier(sample, renderer, dtype=dtype, device=torchDevice, batchSize=batchSize, progress=progress)
        result["fourierSeconds"][name] = time.perf_counter() - began
        flux, pixel = _errors(ours, reference)
        failing = (flux > FLUX_TARGET) | (pixel > PIXEL_TARGET)
        result["agreement"][name] = {
            "perBand": {band: _summary(flux[:, b], pixel[:, b]) for b, band in enumerate(sample.bands)},
            "perPsf": {family: _summary(flux[sample.psfKind == k], pixel[sample.psfKind == k])
                       for k, family in enumerate(PSF_FAMILIES) if np.any(sample.psfKind == k)},
            "all": _summary(flux, pixel),
            "galaxiesFailing": int(failing.any(axis=1).sum()),
        }
        result["worst"][name] = _worst(sample, flux, pixel, renderer, worst)
    return result


def _deviceName(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} torch thread(s)"


def measureThroughput(nGalaxies: int = 1024, seed: int = 0, stampSize: int = 45, pixelScale: float = 0.2, *,
                      bands: Sequence[str] = "ugrizy", batchSize: int = 256, devices: Sequence[str] | None = None,
                      galsimGalaxies: int = 1000, progress: bool = True,
                      sample: CheckSample | None = None) -> list[dict]:
    """Stamps per second (one stamp: one galaxy in one band) of GalSim and of :class:`~.fourier.FourierRenderer`.

    GalSim draws the first ``galsimGalaxies`` galaxies of the sample in this process (profiles
    built, float64 stamps, as :func:`drawGalsim`). The renderer draws the sample in float32
    batches of ``batchSize`` galaxies on each of ``devices`` (default: the CPU, and CUDA when
    available), after one warm-up batch, with the inputs already tensors on the device; only
    full batches are timed (all of them, so at least one: ``nGalaxies >= batchSize``).
    Each row gives ``renderer``, ``device``, ``deviceName``, ``dtype``, ``batchSize``,
    ``galaxies``, ``stamps``, ``seconds`` and ``stampsPerSecond``.
    """
    import torch
    from tqdm.auto import tqdm

    from .fourier import FourierRenderer

    if devices is None:
        devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    sample = drawSample(max(nGalaxies, batchSize), seed, bands) if sample is None else sample
    if len(sample) < batchSize:
        raise ValueError(f"the throughput sample has {len(sample)} galaxies, fewer than a batch of {batchSize}")
    nGalsim = min(galsimGalaxies, len(sample))
    began = time.perf_counter()
    drawGalsim(sample, stampSize, pixelScale, index=range(nGalsim), progress=progress)
    seconds = time.perf_counter() - began
    nBands = len(sample.bands)
    rows = [{"renderer": "GalSim", "device": "cpu", "deviceName": f"{platform.processor() or platform.machine()} CPU, "
             "1 process", "dtype": "float64", "batchSize": 1, "galaxies": nGalsim, "stamps": nGalsim * nBands,
             "seconds": seconds, "stampsPerSecond": nGalsim * nBands / seconds}]
    renderer = FourierRenderer(stampSize, pixelScale)
    for name in devices:
        device = torch.device(name)
        full = len(sample) // batchSize
        batches = [(sample.galaxyParameters(slice(i * batchSize, (i + 1) * batchSize), device=device),
                    sample.psfSpec(slice(i * batchSize, (i + 1) * batchSize), device=device)) for i in range(full)]
        renderer.draw(*batches[0])  # warm-up: grids, tables and kernels on the device
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        began = time.perf_counter()
        for galaxies, psf in tqdm(batches, desc=f"Fourier {device.type}", unit="batch", disable=not progress):
            renderer.draw(galaxies, psf)
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        seconds = time.perf_counter() - began
        rows.append({"renderer": "FourierRenderer", "device": str(device), "deviceName": _deviceName(device),
                     "dtype": "float32", "batchSize": batchSize, "galaxies": full * batchSize,
                     "stamps": full * batchSize * nBands, "seconds": seconds,
                     "stampsPerSecond": full * batchSize * nBands / seconds})
    return rows


def _e(value: float) -> str:
    return f"{value:.1e}"


def fourierCheckMarkdown(result: dict) -> str:
    """The Markdown page of a :func:`writeFourierCheck` result (agreement, failures, throughput)."""
    agreement, targets = result["agreement"], result["targets"]
    lines = [
        f"Measured {result['date']} on {result['machine']}, Python {result['python']}, torch {result['torch']} "
        f"with {result['torchThreads']} torch thread(s) (1-minute load average {result['loadAverage']:.1f} at the "
        "start: the cores may have been shared), by",
        "",
        "```bash",
        result["command"],
        "```",
        "",
        f"{result['nGalaxies']} galaxies of the built-in population (seed {result['seed']}) in "
        f"{''.join(result['bands'])}, {result['stampSize']}×{result['stampSize']} stamps of {result['pixelScale']}″, "
        f"fluxes in electrons, random centres in [−0.5, 0.5) px, a random PSF per galaxy and band "
        f"({', '.join(result['psfFamilies'])}; Moffat β in {', '.join(str(b) for b in result['moffatBetas'])}; "
        f"FWHM {result['fwhmRange'][0]}″–{result['fwhmRange'][1]}″), FourierRenderer on `{result['device']}` "
        f"against GalSim (float64). Flux error |F/F_GalSim − 1| (F: stamp sum), pixel error "
        f"max|ΔI| / GalSim's peak; targets {targets['flux']:g} and {targets['pixel']:g}.",
        "",
        "| band | dtype | max flux error | 99% flux error | max pixel error | 99% pixel error | failing flux "
        "| failing pixel |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for band in result["bands"]:
        for dtype in agreement:
            s = agreement[dtype]["perBand"][band]
            lines.append(f"| {band} | {dtype} | {_e(s['maxFluxError'])} | {_e(s['p99FluxError'])} | "
                         f"{_e(s['maxPixelError'])} | {_e(s['p99PixelError'])} | {s['failingFlux']} | "
                         f"{s['failingPixel']} |")
    lines += ["", "By PSF family (all bands):", "",
              "| PSF | dtype | stamps | max flux error | max pixel error | failing |", "|---|---|---|---|---|---|"]
    for family in result["psfFamilies"]:
        for dtype in agreement:
            s = agreement[dtype]["perPsf"].get(family)
            if s is not None:
                lines.append(f"| {family} | {dtype} | {s['stamps']} | {_e(s['maxFluxError'])} | "
                             f"{_e(s['maxPixelError'])} | {s['failing']} |")
    failing = {dtype: agreement[dtype]["galaxiesFailing"] for dtype in agreement}
    lines += ["", "Galaxies failing a target in some band: "
              + ", ".join(f"{count} of {result['nGalaxies']} ({dtype})" for dtype, count in failing.items()) + "."]
    worst = result["worst"]["float64"]
    if worst:
        lines += ["", "Largest float64 errors (galaxy index, band, PSF, parameters, grid the renderer picked):", "",
                  "| galaxy | band | PSF | FWHM | f_bulge | f_AGN | hlr_b | q_b | hlr_d | q_d | flux error "
                  "| pixel error | grid |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for w in worst:
            psf = w["psf"] + (f" β={w['beta']:g}" if "beta" in w else "")
            lines.append(f"| {w['galaxy']} | {w['band']} | {psf} | {w['fwhm']:.2f} | {w['bulge_fraction']:.2f} | "
                         f"{w['agn_fraction']:.3f} | {w['hlr_bulge']:.2f} | {w['q_bulge']:.2f} | {w['hlr_disk']:.2f} | "
                         f"{w['q_disk']:.2f} | {_e(w['fluxError'])} | {_e(w['pixelError'])} | {w['gridSize']} |")
    galsim = next(row for row in result["throughput"] if row["renderer"] == "GalSim")
    lines += ["", f"Throughput: stamps (one galaxy in one band, {result['stampSize']}×{result['stampSize']}) per "
              "second; the renderer's inputs are already tensors on its device, after a warm-up batch.", "",
              "| renderer | device | dtype | galaxies per call | stamps | seconds | stamps/s | × GalSim |",
              "|---|---|---|---|---|---|---|---|"]
    for row in result["throughput"]:
        lines.append(f"| {row['renderer']} | {row['deviceName']} | {row['dtype']} | {row['batchSize']} | "
                     f"{row['stamps']} | "
                     f"{row['seconds']:.2f} | {row['stampsPerSecond']:.0f} | "
                     f"{row['stampsPerSecond'] / galsim['stampsPerSecond']:.1f} |")
    if not any(row["device"].startswith("cuda") for row in result["throughput"]):
        lines += ["", "No CUDA GPU on this machine: GPU throughput not measured."]
    return "\n".join(lines) + "\n"


def writeFourierCheck(out: str | os.PathLike = "doc/_generated", *, nGalaxies: int = 1000, seed: int = 0,
                      device: str = "auto", command: str = "madness-sim fourier-check", batchSize: int = 256,
                      progress: bool = True) -> dict:
    """Run :func:`compareWithGalsim` and :func:`measureThroughput` on the same sample and write
    ``fourier-check.md`` and ``fourier-check.json`` into the folder ``out``; return the result.

    The throughput uses at least one batch of ``batchSize`` galaxies (more of the population than
    ``nGalaxies`` when that is smaller); CUDA is timed when available, unless ``device`` is ``"cpu"``.
    """
    import torch

    from ..models.device import resolveDevice
    from . import fourier

    torchDevice = resolveDevice(device)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    sample = drawSample(max(nGalaxies, batchSize), seed)
    compared = _subset(sample, nGalaxies)
    result = compareWithGalsim(seed=seed, device=str(torchDevice), batchSize=batchSize, progress=progress,
                               sample=compared)
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() and device != "cpu" else [])
    result["throughput"] = measureThroughput(batchSize=batchSize, devices=devices, progress=progress, sample=sample)
    result.update(command=command, rendererBlob=_gitBlob(Path(fourier.__file__)),
                  date=datetime.date.today().isoformat(), python=platform.python_version(),
                  torch=torch.__version__, torchThreads=torch.get_num_threads(), loadAverage=load,
                  machine=f"{platform.machine()} with {os.cpu_count()} cores "
                          f"({platform.processor() or platform.platform()})")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fourier-check.md").write_text(fourierCheckMarkdown(result))
    (out / "fourier-check.json").write_text(json.dumps(result, indent=1, default=float) + "\n")
    return result


def _gitBlob(path: Path) -> str:
    """Git's blob hash of a file (``git hash-object``): which version of the renderer was measured."""
    import hashlib

    content = path.read_bytes()
    return hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()


def _subset(sample: CheckSample, n: int) -> CheckSample:
    """The first ``n`` galaxies of ``sample``."""
    if n >= len(sample):
        return sample
    return CheckSample(sample.galaxies[:n], sample.bands, sample.flux[:n], sample.dx[:n], sample.dy[:n],
                       sample.psfKind[:n], sample.fwhm[:n], sample.beta[:n])

