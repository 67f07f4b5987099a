r"""``madness-bench shapes``: ellipticities from the latent space against adaptive moments of the decoded image.

A MADNESS child is a latent :math:`z`. Its r-band shape can be measured two ways:

(a) **regressor**: the shape regressor of the model directory (:mod:`~..models.shapeRegressor`),
    :math:`e = f_\theta(z)`;
(b) **decoded image**: adaptive moments (:func:`.morphology.ellipticity`) of the decoded model-frame
    r-band image of the same latent.

Both are compared with the same truth: the adaptive-moments distortion of the galaxy's noiseless
r-band image in the model frame (0.2″ pixels, the 0.35″ Gaussian model PSF). Two samples:

- **isolated** held-out galaxies: the test split of the benchmark's population (galaxies no network
  was trained on) drawn alone, each turned by a random angle, through random PSFs with LSST 10-year
  noise, with a seed of their own (:func:`~..models.shapeRegressor.shapeTrainingSample`); the latent
  is the VAE encoder's posterior mean, as in the regressor's training;
- **blended** galaxies of the benchmark's test fields (:func:`.run.benchmarkFields`), deblended by the
  MADNESS task with a peak at every true galaxy; the latent is the child's MAP latent
  (``BlendModel.latents``). Truths are drawn in the model frame from the catalogue parameters
  (:class:`~..sim.fourier.FourierRenderer`).

For each sample and bin of the benchmark's r-band S/N (:math:`\sqrt{\sum I^2/V}` of the noiseless
observed stamp) the report gives the standard deviations of :math:`e_1 - e_1^{\rm true}` and
:math:`e_2 - e_2^{\rm true}`, the mean :math:`\langle |e| - |e^{\rm true}| \rangle` (negative: too
round), and the multiplicative bias :math:`m`, the least-squares slope of :math:`e` on
:math:`e^{\rm true}` over both components minus 1; and the mean :math:`|e|` bias per bin of
:math:`|e^{\rm true}|`. Statistics are over the galaxies where both measurements exist (the moments of
a decoded image can fail; the number is given).

References
----------
Nguyen, T. Y. B. 2025, M1 internship report (APC), Sec. 4.3 (regressor against reconstruction).
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 4.4 (ellipticity residuals).

Examples
--------
>>> import numpy as np
>>> truth = np.array([[0.2, 0.0], [0.0, -0.4], [0.1, 0.1]])
>>> stats = shapeStatistics(truth * 0.5, truth)
>>> round(stats["m"], 3), round(stats["absBias"], 4)
(-0.5, -0.1236)
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from .output import writeMarkdownAndJson

__all__ = ["ABS_E_BINS", "METHODS", "SNR_BINS", "binnedShapes", "fieldShapes", "isolatedShapes",
           "shapeStatistics", "shapesMarkdown", "shapesReport", "writeShapes"]

#: r-band S/N bin edges.
SNR_BINS: tuple[float, ...] = (0.0, 10.0, 20.0, 40.0, 100.0, np.inf)
#: Bin edges of the true :math:`|e|`.
ABS_E_BINS: tuple[float, ...] = (0.0, 0.1, 0.2, 0.3, 0.5, 1.0)
#: The measurements compared, with their labels.
METHODS: dict[str, str] = {"regressor": "regressor on the latent", "decoded": "moments of the decoded image"}


def shapeStatistics(measured: np.ndarray, truth: np.ndarray) -> dict:
    r"""Residual statistics of distortions ``measured`` (N, 2) against ``truth`` (N, 2) (module docstring):
    ``n``, ``sigmaE1``, ``sigmaE2``, ``meanE1``, ``meanE2``, ``absBias`` (:math:`\langle|e| - |e^{\rm true}|\rangle`),
    ``m`` (slope − 1); NaN where fewer than 2 galaxies."""
    measured, truth = np.asarray(measured, float).reshape(-1, 2), np.asarray(truth, float).reshape(-1, 2)
    n = len(truth)
    if n < 2:
        nan = float("nan")
        return {"n": n, "sigmaE1": nan, "sigmaE2": nan, "meanE1": nan, "meanE2": nan, "absBias": nan, "m": nan}
    delta = measured - truth
    denominator = float(np.sum(truth**2))
    slope = float(np.sum(measured * truth)) / denominator if denominator > 0 else float("nan")
    return {"n": n, "sigmaE1": float(np.std(delta[:, 0], ddof=1)), "sigmaE2": float(np.std(delta[:, 1], ddof=1)),
            "meanE1": float(delta[:, 0].mean()), "meanE2": float(delta[:, 1].mean()),
            "absBias": float(np.mean(np.hypot(*measured.T) - np.hypot(*truth.T))), "m": slope - 1.0}


def binnedShapes(sample: dict, key: str, edges: tuple[float, ...]) -> list[dict]:
    """Per bin of ``sample[key]`` (``"snr"``, or ``"absE"`` for the true :math:`|e|`), and over all galaxies
    (the last row), :func:`shapeStatistics` of each method in :data:`METHODS` on the galaxies where every
    method measured a shape."""
    truth = np.asarray(sample["truth"], float)
    both = np.all([np.isfinite(sample[m]).all(axis=1) for m in METHODS], axis=0) & np.isfinite(truth).all(axis=1)
    values = np.hypot(*truth.T) if key == "absE" else np.asarray(sample[key], float)
    rows = []
    for low, high in [*itertools.pairwise(edges), (None, None)]:
        inBin = both if low is None else both & (values >= low) & (values < high)
        rows.append({"low": low, "high": high,
                     **{m: shapeStatistics(np.asarray(sample[m])[inBin], truth[inBin]) for m in METHODS}})
    return rows


def isolatedShapes(models, regressor, n: int = 5000, seed: int = 29, populationSize: int = 120_000,
                   populationSeed: int = 0, device: str = "cpu") -> dict:
    """The isolated sample (module docstring): ``truth``, ``regressor``, ``decoded`` (N, 2), ``snr`` (N,),
    ``failedTruth`` (galaxies whose true moments failed, dropped), ``failedDecoded``, ``seconds``."""
    from ..models.isolatedGalaxies import builtInPopulation
    from ..models.shapeRegressor import predictShapes, shapeTrainingSample

    population = builtInPopulation("test", models.bands, size=populationSize, seed=populationSeed)
    sample = shapeTrainingSample(models, population, n, seed, device=device, decoded=True,
                                 source=f"the test split of the benchmark's population ({populationSize}, seed "
                                        f"{populationSeed})")
    return {"truth": sample["shapes"], "regressor": predictShapes(regressor, sample["latents"]),
            "decoded": sample["decodedShapes"], "snr": sample["snr"], "failedTruth": sample["failed"],
            "failedDecoded": int((~np.isfinite(sample["decodedShapes"]).all(axis=1)).sum()),
            "seconds": sample["seconds"]}


def _modelFrameTruth(models, truth) -> np.ndarray:
    """Adaptive-moments distortions (N, 2) of catalogue galaxies ``truth`` (columns of a scene's truth table,
    as a mapping of arrays) drawn noiseless, centred, in the model frame's r band."""
    import torch

    from ..models.shapeRegressor import modelFrameShapes
    from ..sim.fourier import FourierRenderer, GalaxyParameters, PsfSpec

    frame = models.modelFrame
    renderer = FourierRenderer(models.stampSize, frame["pixelScale"])
    flux = np.asarray(truth["flux_r"], float).reshape(-1, 1)
    galaxies = GalaxyParameters.fromColumns(truth, flux)
    psf = PsfSpec.gaussian(torch.full((len(flux), 1), float(frame["psfFwhm"])))
    with torch.no_grad():
        stamps = renderer.draw(galaxies, psf)[:, 0].numpy()
    return modelFrameShapes(stamps)


def fieldShapes(modelDir: str | None, regressor, nFields: int = 30, first: int = 0, seed: int = 0,
                populationSize: int = 120_000, device: str = "auto",
                progress: Callable[[str], None] = print) -> dict:
    """The blended sample (module docstring) of test fields ``first`` … ``first + nFields - 1``, truth peaks:
    ``truth``, ``regressor``, ``decoded`` (N, 2), ``snr`` (N,) of the galaxies whose MADNESS child has a MAP
    latent (not a fallback); ``galaxies`` (all), ``failedTruth``, ``failedDecoded``, ``seconds``."""
    import torch

    from ..afw.table import SourceTable
    from ..deblend import MadnessDeblendConfig, MadnessDeblendTask
    from ..detect import detectParents
    from ..models.shapeRegressor import modelFrameShapes, predictShapes
    from ..sim.inputs import MATCH_RADIUS, fieldExposure
    from .fields import _matchPeaks, _stamps
    from .run import benchmarkFields

    if nFields < 1:
        raise ValueError(f"nFields must be >= 1, got {nFields}")
    fields = benchmarkFields(populationSize, seed)
    task = MadnessDeblendTask(SourceTable.makeMinimalSchema(),
                              config=MadnessDeblendConfig(device=device, modelDir=modelDir, computeUncertainties=False))
    models = task.models
    r = models.bands.index("r")
    parts: dict[str, list] = {"latents": [], "truth": [], "snr": []}
    total, start = 0, time.perf_counter()
    for index in range(first, first + nFields):
        scene = fields.make(index)
        mExposure = fieldExposure(scene, fields)
        parents = detectParents(mExposure, peaks=scene.positions)
        matches, _ = _matchPeaks(parents, scene.positions, MATCH_RADIUS)
        result = task.run(mExposure, parents)
        size = scene.isolated.shape[-1]
        variance = _stamps(scene.variance, scene.truth, size)[:, r]
        snr = np.sqrt(np.sum(scene.isolated[:, r] ** 2 / np.maximum(variance, 1e-12), axis=(1, 2)))
        rows, latents = [], []
        for parent in parents:
            model = result.modelData.blends.get(parent.getId())
            if model is None or model.latents is None:
                continue
            for k, peak in enumerate(parent.getFootprint().getPeaks()):
                galaxy = matches.get(int(peak.getId()))
                if galaxy is not None:
                    rows.append(galaxy)
                    latents.append(model.latents[k])
        total += len(scene)
        if rows:
            parts["latents"].append(np.asarray(latents, np.float32))
            parts["truth"].append(_modelFrameTruth(models, {name: np.asarray(scene.truth[name])[rows]
                                                            for name in scene.truth.colnames}))
            parts["snr"].append(snr[rows])
        progress(f"field {index}: {sum(len(s) for s in parts['snr'])} children with latents of {total} galaxies "
                 f"({time.perf_counter() - start:.0f} s)")
    allLatents = (np.concatenate(parts["latents"]) if parts["latents"]
                  else np.zeros((0, int(models.card["latentDim"])), np.float32))
    truth = np.concatenate(parts["truth"]) if parts["truth"] else np.zeros((0, 2))
    snr = np.concatenate(parts["snr"]) if parts["snr"] else np.zeros(0)
    with torch.no_grad():
        decoded = modelFrameShapes(models.decode(torch.as_tensor(allLatents, device=models.device))[:, r]
                                   .cpu().numpy()) if len(allLatents) else np.zeros((0, 2))
    keep = np.isfinite(truth).all(axis=1)
    regressed = predictShapes(regressor, allLatents) if len(allLatents) else np.zeros((0, 2))
    return {"truth": truth[keep], "regressor": regressed[keep],
            "decoded": decoded[keep], "snr": snr[keep], "galaxies": total, "failedTruth": int((~keep).sum()),
            "failedDecoded": int((~np.isfinite(decoded[keep]).all(axis=1)).sum()),
            "seconds": time.perf_counter() - start}


def _summary(sample: dict) -> dict:
    return {key: value for key, value in sample.items() if not isinstance(value, np.ndarray)}


def shapesReport(modelDir: str | None = None, isolated: int = 5000, fields: int = 30, first: int = 0,
                 seed: int = 29, device: str = "auto", progress: Callable[[str], None] = print) -> dict:
    """Both samples (``isolated`` galaxies, ``fields`` test fields from ``first``; 0 skips one) for the model
    directory ``modelDir`` (default: the shipped weights), which must hold a shape regressor.

    Raises
    ------
    ValueError
        The model directory does not load or has no shape regressor, or there is nothing to measure.
    """
    from ..models.export import loadModels, shippedModelsPath
    from ..models.shapeRegressor import CARD_KEY, loadShapeRegressor

    if isolated < 0 or fields < 0 or isolated + fields == 0:
        raise ValueError(f"--isolated {isolated} and --fields {fields}: give a positive number of one of them")
    directory = Path(modelDir) if modelDir is not None else shippedModelsPath()
    try:
        models = loadModels(directory, device=device)
        regressor = loadShapeRegressor(models, device=models.device)
    except FileNotFoundError as error:
        raise ValueError(str(error)) from None
    if regressor is None:
        raise ValueError(f"{directory}: the model card has no {CARD_KEY} entry; train one with "
                         f"`madness-models shape-regressor --model-dir {directory}`")
    start = time.perf_counter()
    report = {"models": str(directory), "regressor": models.card[CARD_KEY], "samples": {}}
    samples = {}
    if isolated:
        progress(f"isolated: {isolated} held-out galaxies")
        samples["isolated"] = isolatedShapes(models, regressor, isolated, seed, device=str(models.device))
        report["samples"]["isolated"] = {"galaxies": isolated, "seed": seed, **_summary(samples["isolated"])}
    if fields:
        samples["fields"] = fieldShapes(None if modelDir is None else str(directory), regressor, fields, first,
                                        device=str(models.device), progress=progress)
        report["samples"]["fields"] = {"fields": fields, "first": first, **_summary(samples["fields"])}
    for name, sample in samples.items():
        report["samples"][name]["snrBins"] = binnedShapes(sample, "snr", SNR_BINS)
        report["samples"][name]["absEBins"] = binnedShapes(sample, "absE", ABS_E_BINS)
    report["seconds"] = time.perf_counter() - start
    return report


def _range(low, high) -> str:
    if low is None:
        return "all"
    return f"{low:g}–{'∞' if not np.isfinite(high) else f'{high:g}'}"


def _table(rows: list[dict], heading: str, columns: list[tuple[str, str, str]]) -> list[str]:
    titles = [f"{label} ({short})" for _, label, _ in columns for short in ("reg.", "dec.")]
    lines = [f"| {heading} | n | " + " | ".join(titles) + " |", "|---" * (2 + len(titles)) + "|"]
    for row in rows:
        cells = [f"{row[m][key]:{fmt}}" if np.isfinite(row[m][key]) else "—"
                 for key, _, fmt in columns for m in METHODS]
        lines.append(f"| {_range(row['low'], row['high'])} | {row['regressor']['n']} | " + " | ".join(cells) + " |")
    return lines


_SNR_COLUMNS = [("sigmaE1", "σ(Δe1)", ".4f"), ("sigmaE2", "σ(Δe2)", ".4f"), ("absBias", "⟨Δ|e|⟩", "+.4f"),
                ("m", "m", "+.3f")]
_ABS_COLUMNS = [("absBias", "⟨Δ|e|⟩", "+.4f"), ("sigmaE1", "σ(Δe1)", ".4f"), ("sigmaE2", "σ(Δe2)", ".4f")]


def shapesMarkdown(report: dict, command: str) -> str:
    """The report of :func:`shapesReport` as Markdown."""
    entry = report["regressor"]
    rmse = entry.get("validationRmse", {})
    lines = ["# Shapes from the latent space", "",
             f"Written by `{command}`; models: `{report['models']}`, with the shape regressor of "
             f"{entry.get('date', '?')} ({entry.get('galaxies', {}).get('train', '?')} training galaxies, validation "
             f"RMSE e1 {rmse.get('e1', float('nan')):.4f}, e2 {rmse.get('e2', float('nan')):.4f}). "
             "**reg.**: the regressor on the latent; **dec.**: adaptive moments of the decoded model-frame r-band "
             "image of the same latent. Truth: adaptive moments of the noiseless model-frame r-band image. Δ = "
             "measured − truth; ⟨Δ|e|⟩ < 0 is a bias towards round shapes; m is the slope of measured on true "
             "e (both components) minus 1. Galaxies where the decoded image's moments fail are left out of both "
             "columns.", ""]
    titles = {"isolated": "Isolated held-out galaxies (VAE encoder's posterior mean of the noisy stamp)",
              "fields": "Blended galaxies of the benchmark's test fields (MADNESS MAP latents, truth peaks)"}
    for name, sample in report["samples"].items():
        if name == "isolated":
            what = (f"{sample['galaxies']} galaxies of the test split of the benchmark's population, seed "
                    f"{sample['seed']}")
        else:
            what = (f"{sample['fields']} test fields from index {sample['first']}: {sample['galaxies']} galaxies, "
                    f"{sample['snrBins'][-1]['regressor']['n']} compared")
        lines += [f"## {titles[name]}", "",
                  f"{what}; true moments failed on {sample['failedTruth']}, the decoded image's on "
                  f"{sample['failedDecoded']}; {sample['seconds']:.0f} s.", "",
                  "Per r-band S/N bin:", ""]
        lines += _table(sample["snrBins"], "r-band S/N", _SNR_COLUMNS)
        lines += ["", "Per bin of the true |e|:", ""]
        lines += _table(sample["absEBins"], "true abs(e)", _ABS_COLUMNS)
        lines.append("")
    return "\n".join(lines)


def writeShapes(report: dict, command: str, document: Path) -> str:
    """Write the Markdown report and its JSON beside it; return the Markdown."""
    return writeMarkdownAndJson(document, shapesMarkdown(report, command), report)
