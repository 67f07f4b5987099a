r"""``madness-bench real``: MADNESS and SCARLET side by side on a real multiband blend.

::

    madness-bench real --out runs/real [--npz ../shared/data/hsc_cosmos.npz] [--methods madness scarlet]
                       [--magzero 27] [--pixel-scale 0.168] [--model-dir DIR] [--device cpu]
                       [--doc doc/_generated/benchmark-real.md] [--results ...json] [--static doc/_static]

The simulated benchmark (:mod:`.run`) knows the truth; a real blend does not, so this one asks
what can be asked of the data alone: does the sum of the children fit the pixels, and does each
child keep its light near its own centre. Three steps:

1. **Conversion** (:func:`.convertBlend`). A blend file (``.npz``: ``images`` (band, y, x),
   ``psfs`` (band, py, px) of unit sum, ``catalog`` a structured array with at least ``x``
   (column) and ``y`` (row), optionally ``filters`` the band names; the layout of the public
   ``scarlet`` quick-start file) becomes the package's exposure and parent-catalogue FITS files.
   Every band gets the calibration of ``magZero`` (AB magnitude of one image unit), the exposure
   the pixel scale ``pixelScale`` (no WCS), and a constant variance plane: the background noise
   estimated from the pixels outside every detection (:func:`.estimateBackgroundNoise`). The
   catalogue holds **one** parent whose footprint is the union of the detections
   (:func:`~lsst.meas.extensions.madness.detect.detectParents` on the band-combined S/N image)
   that hold a catalogue position, with one peak per catalogue source at its ``(x, y)``
   (:func:`.makeBlendParent`).
2. **Deblending** through ``madness-run-task`` (``--deblender madness`` and ``--deblender
   scarlet``), with a config override that sets ``conserveFlux = False`` and
   ``footprintThreshold = 0``: each child's heavy footprint then carries its *model* on every
   parent-footprint pixel where it is positive, instead of the data shared out in proportion to
   the models (with which the children sum to the data and every residual is zero). SCARLET
   runs ``maxIter = 200`` iterations (also as MADNESS's fallback).
3. **Metrics** (:func:`fitQuality`, :func:`hallucinationShares`) from the children read back from
   ``deblendedCatalog.fits``, a Markdown table and a JSON file, and a figure
   (:func:`.drawRealComparison`).

The variance is the background's only: a bright source's own photon noise is not in it, so
:math:`\chi^2` is inflated on bright cores for every method alike (the file has no gain to add it
with). A good fit has a reduced :math:`\chi^2` near 1 and about :math:`6\times10^{-7}` of its
pixels beyond :math:`5\sigma`.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..afw import MultibandExposure
from ..afw.detection import MultibandFootprint
from ..afw.table import SourceCatalog

# The conversion (step 1) and the figure have modules of their own; their names import from here too.
from .realConvert import (
    BLEND_KEYS,
    BackgroundNoise,
    ConvertedBlend,
    RealBlend,
    RealBlendError,
    convertBlend,
    estimateBackgroundNoise,
    makeBlendParent,
    readBlendNpz,
)
from .realFigure import drawRealComparison

__all__ = [
    "BLEND_KEYS",
    "METHODS",
    "OUTLIER_SIGMA",
    "BackgroundNoise",
    "ConvertedBlend",
    "RealBlend",
    "RealBlendError",
    "convertBlend",
    "drawRealComparison",
    "estimateBackgroundNoise",
    "fitQuality",
    "formatReport",
    "hallucinationShares",
    "makeBlendParent",
    "readBlendNpz",
    "runRealBenchmark",
]

#: Deblenders compared, by their ``madness-run-task --deblender`` names.
METHODS: tuple[str, ...] = ("madness", "scarlet")

_NAMES = {"madness": "MADNESS", "scarlet": "SCARLET"}

#: A residual beyond this many σ counts as an outlier in :func:`fitQuality`.
OUTLIER_SIGMA = 5.0


def fitQuality(data: np.ndarray, variance: np.ndarray, model: np.ndarray, footprint: np.ndarray,
               outlierSigma: float = OUTLIER_SIGMA) -> dict:
    r"""Reduced :math:`\chi^2` and outlier fraction of a model over a footprint, per band and overall.

    With the weight :math:`w_{bp} = 1/V_{bp}` (0 where the variance is not finite and positive),
    :math:`F_b` the footprint pixels of band :math:`b` with :math:`w_{bp} > 0` and
    :math:`N_b = |F_b|`,

    .. math::

        \chi^2_b = \frac{1}{N_b} \sum_{p \in F_b} w_{bp} (d_{bp} - m_{bp})^2, \qquad
        \chi^2 = \frac{\sum_b N_b \chi^2_b}{\sum_b N_b},

        f_b = \frac{1}{N_b} \left|\{p \in F_b : |d_{bp} - m_{bp}| \sqrt{w_{bp}} > k\}\right|, \qquad
        f = \frac{\sum_b N_b f_b}{\sum_b N_b}

    with :math:`k` = ``outlierSigma``. No degrees of freedom are subtracted: the deblenders'
    parameter counts differ (SCARLET's free morphologies have one per pixel), so :math:`\chi^2`
    is a per-pixel mean.

    Parameters
    ----------
    data, variance, model
        ``(band, y, x)`` arrays.
    footprint
        ``(y, x)`` booleans: the pixels that count.
    outlierSigma
        :math:`k`.

    Returns
    -------
    dict
        ``chi2`` and ``outlierFraction`` (``(band,)`` arrays, NaN for a band with no pixel),
        ``chi2All``, ``outlierFractionAll`` and ``nPixels`` (``(band,)``).

    Examples
    --------
    >>> data = np.array([[[1.0, 3.0], [0.0, 9.0]]])
    >>> quality = fitQuality(data, np.ones_like(data), np.zeros_like(data), np.array([[True, True], [True, False]]))
    >>> quality["chi2"].tolist(), quality["outlierFraction"].tolist()  # (1 + 9 + 0) / 3; the 9 is outside
    ([3.3333333333333335], [0.0])
    """
    data, variance, model = (np.asarray(a, dtype=np.float64) for a in (data, variance, model))
    valid = np.isfinite(variance) & (variance > 0) & np.isfinite(data) & np.asarray(footprint, bool)[None]
    weight = np.divide(1.0, variance, out=np.zeros_like(variance), where=valid)
    chi2Pixels = np.where(valid, weight * np.where(valid, data - model, 0.0) ** 2, 0.0)
    outliers = valid & (chi2Pixels > outlierSigma**2)
    counts = valid.sum(axis=(1, 2))
    with np.errstate(invalid="ignore", divide="ignore"):
        chi2 = chi2Pixels.sum(axis=(1, 2)) / counts
        fraction = outliers.sum(axis=(1, 2)) / counts
    total = counts.sum()
    return {"chi2": chi2, "outlierFraction": fraction, "nPixels": counts,
            "chi2All": float(chi2Pixels.sum() / total) if total else float("nan"),
            "outlierFractionAll": float(outliers.sum() / total) if total else float("nan")}


def hallucinationShares(models: np.ndarray, centres: np.ndarray) -> np.ndarray:
    r"""The fraction of each source's positive model flux that lies nearer another source's centre.

    With :math:`c_k` the centre of source :math:`k` (``(x, y)``, pixel centres at integers),
    :math:`m_{kbp}` its model in band :math:`b` and pixel :math:`p`, and
    :math:`O_k = \{p : \min_{j \ne k} \|p - c_j\| < \|p - c_k\|\}` the pixels strictly nearer another
    centre than its own (outside its Voronoi cell; a tie is its own),

    .. math::

        h_k = \frac{\sum_b \sum_{p \in O_k} \max(m_{kbp}, 0)}{\sum_b \sum_p \max(m_{kbp}, 0)}.

    A source whose model stays in its own cell has :math:`h_k = 0`; one whose model lies wholly in
    a neighbour's cell, 1. An isolated galaxy's light crosses the bisector towards a bright
    neighbour only in its wings, so a large :math:`h_k` means the model took a neighbour's light
    (or invented light there). NaN for a model without positive flux.

    Parameters
    ----------
    models
        ``(source, band, y, x)`` model images on one pixel grid (the arrays' pixel ``[y, x]`` at
        position ``(x, y)``).
    centres
        ``(source, 2)`` centres ``(x, y)`` in the same pixel coordinates.

    Examples
    --------
    >>> models = np.zeros((2, 1, 1, 40))
    >>> models[0, 0, 0, 20:] = 1.0  # all of source 0's light is on source 1's side
    >>> models[1, 0, 0, 25:35] = 1.0  # source 1's light is around its own centre
    >>> hallucinationShares(models, np.array([[9.5, 0.0], [29.5, 0.0]])).tolist()
    [1.0, 0.0]
    """
    models = np.asarray(models, dtype=np.float64)
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    if models.ndim != 4 or len(models) != len(centres):
        raise ValueError(f"models must be (source, band, y, x) with one centre per source; got shapes "
                         f"{models.shape} and {centres.shape}")
    grid = np.indices(models.shape[2:], dtype=np.float64)
    yy, xx = grid[0], grid[1]
    distance = np.hypot(xx[None] - centres[:, 0, None, None], yy[None] - centres[:, 1, None, None])
    shares = np.full(len(models), np.nan)
    for k in range(len(models)):
        others = np.delete(distance, k, axis=0)
        foreign = others.min(axis=0) < distance[k] if len(others) else np.zeros(distance.shape[1:], bool)
        positive = np.clip(models[k], 0.0, None).sum(axis=0)
        total = positive.sum()
        if total > 0:
            shares[k] = float(positive[foreign].sum() / total)
    return shares


def _overrides(method: str, path: Path, *, scarletIterations: int, modelDir: str | None,
               cacheDir: Path | None) -> Path:
    """The ``--config`` file of one deblender: children carrying their models, SCARLET's iterations."""
    lines = ["# madness-bench real: each child's heavy footprint carries its model on every parent pixel",
             "# where it is positive (not the data shared out, whose sum has no residual).",
             "config.conserveFlux = False",
             "config.footprintThreshold = 0.0"]
    scarlet = "config" if method == "scarlet" else "config.fallback"
    lines.append(f"{scarlet}.maxIter = {int(scarletIterations)}")
    if cacheDir is not None:
        lines.append(f"{scarlet}.compilationCacheDir = {str(cacheDir)!r}")
    if method == "madness" and modelDir is not None:
        lines.append(f"config.modelDir = {str(modelDir)!r}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _runMethod(method: str, converted: ConvertedBlend, outDir: Path, *, scarletIterations: int,
               modelDir: str | None, device: str | None, cacheDir: Path | None) -> dict:
    """Deblend with ``madness-run-task``; its exit status, messages, seconds and metadata."""
    from ..runTask import main as runTaskMain

    output = outDir / method
    config = _overrides(method, outDir / f"{method}-config.py", scarletIterations=scarletIterations,
                        modelDir=modelDir, cacheDir=cacheDir)
    argv = ["--exposure", str(converted.exposurePath), "--catalog", str(converted.catalogPath),
            "--output", str(output), "--deblender", method, "--config", str(config), "--no-progress"]
    if device is not None and method == "madness":
        argv += ["--device", device]
    errors = io.StringIO()
    start = time.perf_counter()
    try:
        # Its messages go to our stderr as well as into the report.
        with contextlib.redirect_stderr(_Tee(errors, sys.stderr)):
            status = runTaskMain(argv)
    except Exception as error:  # noqa: BLE001 - the other deblender still runs, and the report says why
        traceback.print_exc()
        status, errors = 1, io.StringIO(f"{type(error).__name__}: {error}")
    seconds = time.perf_counter() - start
    metadataPath = output / "metadata.json"
    metadata = json.loads(metadataPath.read_text()) if metadataPath.is_file() else None
    return {"command": "madness-run-task " + " ".join(argv), "status": int(status), "seconds": seconds,
            "stderr": errors.getvalue().strip(), "output": str(output), "metadata": metadata}


class _Tee(io.TextIOBase):
    def __init__(self, *streams):
        self._streams = streams

    def write(self, text: str) -> int:
        for stream in self._streams:
            stream.write(text)
        return len(text)

    def flush(self) -> None:
        for stream in self._streams:
            stream.flush()


def _childModels(catalog: SourceCatalog, mExposure: MultibandExposure, nSources: int) -> tuple[np.ndarray, list]:
    """The children's model images ``(source, band, y, x)`` on the exposure (0 outside their footprints,
    zeros for a source without a child) and their records, in the order of the peaks' ``truth_index``
    (peak id − 1). Children of peaks the deblender added (residual peaks, ids past the sources') belong to
    no source: they are left out, and their light counts as lost by the sources they took it from."""
    bands, bbox = mExposure.bands, mExposure.getBBox()
    models = np.zeros((nSources, len(bands), bbox.getHeight(), bbox.getWidth()))
    records: list = [None] * nSources
    for child in catalog[catalog["parent"] > 0]:
        k = int(child.get("deblend_peakId")) - 1
        if k >= nSources:  # a residual peak's child
            continue
        records[k] = child
        footprint = child.getFootprint()
        if isinstance(footprint, MultibandFootprint):
            for b, band in enumerate(bands):
                models[k, b] = footprint[band].extractImage(fill=0.0, bbox=bbox, imageType=np.float64).array
    return models, records


def _modelPixelScale(metadata: dict | None) -> float | None:
    models = (metadata or {}).get("models") or {}
    card = Path(models.get("directory", "")) / "model_card.json"
    if not models or not card.is_file():
        return None
    return (json.loads(card.read_text()).get("surveyConditions") or {}).get("pixelScale")


def _evaluate(method: str, run: dict, mExposure: MultibandExposure, converted: ConvertedBlend) -> dict:
    """The metrics of one deblender's output (an ``error`` entry when it has none)."""
    result = {key: run[key] for key in ("command", "status", "seconds", "output")}
    catalogPath = Path(run["output"]) / "deblendedCatalog.fits"
    if run["metadata"] is None or not catalogPath.is_file():
        result["error"] = run["stderr"] or f"exit status {run['status']} and no output"
        return result
    metadata = run["metadata"]
    catalog = SourceCatalog.readFits(catalogPath, bbox=mExposure.getBBox())
    parent = catalog[0]
    nSources = len(converted.blend.positions)
    models, children = _childModels(catalog, mExposure, nSources)
    footprint = parent.getFootprint().getSpans().asArray(mExposure.getBBox())
    quality = fitQuality(mExposure.image.array, mExposure.variance.array, models.sum(axis=0), footprint)
    shares = hallucinationShares(models, converted.blend.positions)
    bands = mExposure.bands
    flags = {name: bool(parent.get(name)) for name in
             ("deblend_skipped", "deblend_failed", "deblend_fallback", "deblend_blendConvergenceFailedFlag",
              "deblend_incompleteData")}
    result.update({
        "deblender": metadata["deblender"], "device": metadata["resolvedDevice"],
        "missingBands": metadata.get("missingBands", []), "parentFlags": flags,
        "invariantViolations": metadata.get("invariantViolations", []),
        "error": parent.get("deblend_error") or None, "fallbackReason": parent.get("deblend_fallbackReason") or None,
        "iterations": int(parent.get("deblend_iterations")),
        "deblendSeconds": metadata["timing"]["deblendSeconds"],
        "modelPixelScaleArcsec": _modelPixelScale(metadata),
        # The deblender's own figure, in its units and with its weights: a cross-check of chi2.
        "deblenderChi2": float(parent.get("deblend_chi2")),
        "chi2": {**dict(zip(bands, quality["chi2"].tolist())), "all": quality["chi2All"]},
        "outlierFraction": {**dict(zip(bands, quality["outlierFraction"].tolist())),
                            "all": quality["outlierFractionAll"]},
        "nPixels": dict(zip(bands, quality["nPixels"].tolist())),
        "sources": [{"index": k,
                     "flux": ({band: float(child.get(f"madness_flux_{band}")) for band in bands}
                              if child is not None else None),
                     "hallucinationShare": None if np.isnan(shares[k]) else float(shares[k]),
                     "zeroFlux": bool(child.get("deblend_zeroFlux")) if child is not None else None}
                    for k, child in enumerate(children)],
    })
    result["_models"] = models
    return result


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "–"
    return f"{value:.{digits}g}"


def _methodLine(method: str, result: dict, pixelScale: float) -> str:
    name = _NAMES.get(method, method)
    if "chi2" not in result:
        return f"- **{name}**: no result (exit status {result['status']}): {result.get('error')}"
    flags = result["parentFlags"]
    how = ("modelled by the fallback (SCARLET): " + str(result["fallbackReason"]) if flags["deblend_fallback"]
           else "modelled by " + name)
    if flags["deblend_skipped"] or flags["deblend_failed"]:
        how = f"**not modelled** ({'skipped' if flags['deblend_skipped'] else 'failed'}: {result['error']})"
    parts = [how, f"{result['iterations']} iterations"
             + (" (stopped at maxIter, not converged)" if flags["deblend_blendConvergenceFailedFlag"] else ""),
             f"{result['deblendSeconds']:.1f} s on {result['device']}",
             f"the deblender's own reduced χ² {_fmt(result['deblenderChi2'])}"]
    if result["missingBands"]:
        parts.append(f"band(s) {', '.join(result['missingBands'])} not in the exposure (added with zero weight)")
    if result.get("invariantViolations"):
        parts.append(f"**{len(result['invariantViolations'])} invariant violation(s)** in its output (a bug): "
                     + "; ".join(result["invariantViolations"]))
    scale = result.get("modelPixelScaleArcsec")
    if scale is not None and abs(scale / pixelScale - 1) > 0.01:
        parts.append(f"its models were trained on {scale:g}″ pixels, the exposure has {pixelScale:g}″ pixels")
    return f"- **{name}**: " + "; ".join(parts) + "."


def formatReport(results: dict) -> str:
    """The Markdown report of :func:`runRealBenchmark`'s results (tables of the metrics; module docstring)."""
    bands = results["input"]["bands"]
    methods = list(results["methods"])
    noise = results["noise"]
    lines = [f"Blend `{Path(results['input']['file']).name}`: {results['input']['width']}×"
             f"{results['input']['height']} pixels, bands {' '.join(bands)}, {len(results['sources'])} catalogue "
             f"sources in one parent footprint of {results['parent']['footprintArea']} pixels; MAGZERO "
             f"{results['input']['magZero']:g} (1 unit = {results['input']['nanojanskyPerUnit']:.4g} nJy), "
             f"{results['input']['pixelScaleArcsec']:g}″ per pixel. Made by `{results['command']}`.",
             "",
             f"Background noise (MAD of the {noise['backgroundPixels']} pixels outside every detection, "
             f"{noise['iterations']} detection passes; the variance plane of every method):",
             "",
             "| | " + " | ".join(bands) + " |",
             "|---|" + "---:|" * len(bands),
             "| σ (image units) | " + " | ".join(_fmt(noise["sigma"][b]) for b in bands) + " |",
             "| σ (nJy) | " + " | ".join(_fmt(noise["sigmaNanojansky"][b]) for b in bands) + " |",
             "| background median (image units) | " + " | ".join(_fmt(noise["median"][b], 2) for b in bands) + " |",
             "",
             "Fit over the parent footprint (reduced χ² = Σ w (d − m)² / N; the variance holds the background "
             f"noise only, so bright cores inflate it for every method; |r|/σ > {OUTLIER_SIGMA:g}: fraction of "
             "footprint pixels):",
             "",
             "| method | quantity | " + " | ".join(bands) + " | all |",
             "|---|---|" + "---:|" * (len(bands) + 1)]
    for method in methods:
        result = results["methods"][method]
        name = _NAMES.get(method, method)
        if "chi2" not in result:
            lines.append(f"| {name} | no result | " + " | ".join("–" for _ in bands) + " | – |")
            continue
        for key, label, digits in (("chi2", "reduced χ²", 3), ("outlierFraction", f"\\|r\\|/σ > {OUTLIER_SIGMA:g}", 2)):
            lines.append(f"| {name} | {label} | " + " | ".join(_fmt(result[key][b], digits) for b in bands)
                         + f" | {_fmt(result[key]['all'], digits)} |")
    lines += ["",
              "Children: model flux per band (nJy, `madness_flux_<band>`) and hallucination share (the fraction of "
              "the child's positive model flux, all bands, in pixels nearer another source's centre than its own):",
              "",
              "| source | x | y | method | " + " | ".join(bands) + " | hallucination share |",
              "|---|---:|---:|---|" + "---:|" * (len(bands) + 1)]
    for source in results["sources"]:
        k = source["index"]
        for method in methods:
            result = results["methods"][method]
            child = result["sources"][k] if "sources" in result else None
            fluxes = (child or {}).get("flux") or {}
            share = (child or {}).get("hallucinationShare")
            lines.append(f"| {k} | {source['x']:.1f} | {source['y']:.1f} | {_NAMES.get(method, method)} | "
                         + " | ".join(_fmt(fluxes.get(b), 4) for b in bands) + f" | {_fmt(share, 2)} |")
    lines += ["", "Runs:", ""]
    lines += [_methodLine(m, results["methods"][m], results["input"]["pixelScaleArcsec"]) for m in methods]
    if results.get("figure"):
        lines += ["", f"Figure: `{results['figure']}`."]
    return "\n".join(lines) + "\n"


def runRealBenchmark(npzPath: str | Path, outDir: str | Path, *, methods: Sequence[str] = METHODS,
                     magZero: float = 27.0, pixelScale: float = 0.168, modelDir: str | None = None,
                     device: str | None = None, scarletIterations: int = 200, footprintNSigma: float = 3.0,
                     footprintGrow: int = 2, document: str | Path | None = None, resultsPath: str | Path | None = None,
                     static: str | Path | None = None, command: str = "madness-bench real") -> dict:
    """Convert, deblend with each method and measure (module docstring); write the report files.

    Parameters
    ----------
    npzPath
        The blend file.
    outDir
        Work directory: ``exposure.fits``, ``parents.fits``, ``<method>-config.py`` and
        ``<method>/`` (``madness-run-task``'s outputs), and the JAX compilation cache.
    methods
        Deblenders, of :data:`METHODS`.
    magZero, pixelScale, footprintNSigma, footprintGrow
        As :func:`convertBlend`.
    modelDir
        MADNESS model directory (``None``: the shipped weights).
    device
        MADNESS's torch device (``None``: its config's default).
    scarletIterations
        SCARLET's ``maxIter`` (also MADNESS's fallback's).
    document, resultsPath
        The Markdown report and the JSON results (not written when ``None``).
    static
        Directory of the figure ``real_<file stem>.png`` (not drawn when ``None``).
    command
        The command line recorded in the report.

    Returns
    -------
    dict
        The results (as written to ``resultsPath``), with ``markdown`` the report's text.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"methods must be some of {list(METHODS)}, got {list(methods)}")
    outDir = Path(outDir)
    converted = convertBlend(npzPath, outDir, magZero=magZero, pixelScale=pixelScale,
                             footprintNSigma=footprintNSigma, footprintGrow=footprintGrow)
    mExposure = MultibandExposure.readFits(converted.exposurePath)
    bands = mExposure.bands
    calib = mExposure.getPhotoCalibs()[0]
    assert calib is not None  # convertBlend writes one
    nJy = calib.getCalibrationMean()
    noise = converted.noise
    blend = converted.blend
    height, width = blend.images.shape[1:]
    results: dict[str, Any] = {
        "command": command,
        "input": {"file": str(blend.path), "bands": list(bands), "width": width, "height": height,
                  "magZero": converted.magZero, "nanojanskyPerUnit": nJy, "pixelScaleArcsec": converted.pixelScale,
                  "exposure": str(converted.exposurePath), "parents": str(converted.catalogPath)},
        "noise": {"method": "1.4826 × median absolute deviation of the pixels outside every detection",
                  "sigma": dict(zip(bands, noise.sigma.tolist())),
                  "sigmaNanojansky": dict(zip(bands, (noise.sigma * nJy).tolist())),
                  "median": dict(zip(bands, noise.median.tolist())),
                  "backgroundPixels": int(noise.background.sum()), "iterations": noise.iterations},
        "parent": {"footprintArea": converted.footprintArea, "footprintNSigma": footprintNSigma,
                   "footprintGrow": footprintGrow},
        "sources": [{"index": k, "x": float(x), "y": float(y),
                     "catalogFlux": None if blend.catalogFlux is None else float(blend.catalogFlux[k])}
                    for k, (x, y) in enumerate(blend.positions)],
        "methods": {},
    }
    models = {}
    for method in methods:
        run = _runMethod(method, converted, outDir, scarletIterations=scarletIterations, modelDir=modelDir,
                         device=device, cacheDir=outDir / "jax-cache")
        evaluation = _evaluate(method, run, mExposure, converted)
        if "_models" in evaluation:
            models[_NAMES.get(method, method)] = evaluation.pop("_models")
        results["methods"][method] = evaluation
    if static is not None and models:
        parent = SourceCatalog.readFits(converted.catalogPath, bbox=mExposure.getBBox())[0]
        footprint = parent.getFootprint().getSpans().asArray(mExposure.getBBox())
        figure = drawRealComparison(
            Path(static) / f"real_{blend.path.stem}.png", mExposure.image.array, noise.sigma, models, bands,
            blend.positions, footprint,
            title=f"{blend.path.name}: data, model, residual and children (asinh(x/σ) per band)")
        results["figure"] = str(figure)
    markdown = formatReport(results)
    if document is not None:
        document = Path(document)
        document.parent.mkdir(parents=True, exist_ok=True)
        document.write_text(markdown)
    if resultsPath is not None:
        resultsPath = Path(resultsPath)
        resultsPath.parent.mkdir(parents=True, exist_ok=True)
        resultsPath.write_text(json.dumps(results, indent=2) + "\n")
    return {**results, "markdown": markdown}
