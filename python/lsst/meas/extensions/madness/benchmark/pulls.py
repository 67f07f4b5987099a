r"""``madness-bench pulls``: are the Laplace uncertainties the right size on the benchmark's simulated fields?

The MADNESS task's children carry Laplace uncertainties (:mod:`lsst.meas.extensions.madness.deblend.uncertainty`):
``madness_fluxErr_<band>`` and ``madness_e1Err``/``madness_e2Err``. This command deblends test fields
(:func:`.run.benchmarkFields`, the split the training never saw) with a peak at every true galaxy,
matches each child to its galaxy (its peak), and reports, per bin of the galaxy's r-band S/N (the
benchmark's: :math:`\sqrt{\sum I^2/V}` over its isolated, noiseless stamp), the standard deviation and
the robust :math:`1.4826\,\mathrm{MAD}` of the pulls

.. math:: \mathrm{pull} = (\text{model} - \text{truth}) / \sigma

of the r-band flux (truth: the isolated galaxy's flux in nJy, ``scene.isolated[j, r].sum()`` through
the exposure's PhotoCalib) and of :math:`e_1` (truth: :func:`.morphology.ellipticity` of the noiseless
isolated r-band image, as the benchmark measures it; the column is the same measurement on the
child's model). Well-sized uncertainties give a standard deviation near 1.

The Laplace σ knows the pixel noise and the prior only, not the models' own misfit, a neighbour's
light given to the wrong child, or the non-Gaussian posterior of a faint galaxy's shape, so alone it
is too small. The task adds those terms (:mod:`..deblend.errorModel`); :func:`calibrateErrorModel`
chooses their coefficients on fields other than the reported ones (``--calibration-first``), and the
report shows the pulls with the Laplace σ alone, with the task's defaults, and with the models chosen
on the calibration fields, over all matched children and over those without ``madness_badFit``. The
children are deblended with the Laplace σ alone; the error models are applied here exactly as the
task applies them (:class:`~..deblend.errorModel.ErrorModel`).
"""

from __future__ import annotations

import itertools
import time
from itertools import pairwise
from pathlib import Path

import numpy as np

from ..deblend.errorModel import ErrorModel
from .output import writeMarkdownAndJson

__all__ = ["SNR_BINS", "TERMS", "pullRows", "pullTable", "calibrateErrorModel", "pullsReport",
           "pullsMarkdown", "writePulls"]

#: r-band S/N bin edges.
SNR_BINS = (0.0, 10.0, 30.0, 100.0, np.inf)


def pullRows(nFields: int, first: int = 1000, seed: int = 0, populationSize: int = 120_000,
             modelDir: str | None = None, device: str = "auto", progress=print) -> tuple[list[dict], dict]:
    """Deblend test fields ``first`` … ``first + nFields - 1`` (truth peaks) and match children to galaxies.

    Returns
    -------
    rows : `list` [`dict`]
        One per matched MADNESS child: ``snr`` (r), ``flux``, ``fluxTrue``, ``fluxErr`` (nJy, Laplace
        only), ``e1``, ``e1True``, ``e1Err``.
    cost : `dict`
        ``parents`` (MADNESS-modelled), ``uncertaintyMs`` and ``fitMs`` (their total time on the
        uncertainties and on the MAP fits).
    """
    from ..deblend import MadnessDeblendConfig, MadnessDeblendTask
    from ..detect import detectParents
    from ..sim.inputs import fieldExposure
    from . import morphology
    from .fields import _stamps
    from .run import benchmarkFields

    if nFields < 1:
        raise ValueError(f"nFields must be >= 1, got {nFields}")
    fields = benchmarkFields(populationSize, seed)
    task = None
    rows: list[dict] = []
    cost = {"parents": 0, "uncertaintyMs": 0.0, "fitMs": 0.0}
    start = time.perf_counter()
    for index in range(first, first + nFields):
        scene = fields.make(index)
        mExposure = fieldExposure(scene, fields)
        catalog = detectParents(mExposure, peaks=scene.positions)
        if task is None:
            config = MadnessDeblendConfig(device=device, modelDir=modelDir, computeUncertainties=True,
                                          **ErrorModel().configOverrides())
            task = MadnessDeblendTask(catalog.schema.copy(), config=config)
            r = task.bands.index("r")
        result = task.run(mExposure, catalog)
        for model in result.modelData.blends.values():
            if model.method == "madness" and np.isfinite(model.uncertaintyRuntime):
                cost["parents"] += 1
                cost["uncertaintyMs"] += model.uncertaintyRuntime
                cost["fitMs"] += model.runtime
        deblended = result.deblendedCatalog
        size = scene.isolated.shape[-1]
        variance = _stamps(scene.variance, scene.truth, size)[:, r]
        snr = np.sqrt(np.sum(scene.isolated[:, r] ** 2 / np.maximum(variance, 1e-12), axis=(1, 2)))
        calib = mExposure["r"].getPhotoCalib()
        positions = np.asarray(scene.positions, dtype=float)
        taken = set()
        for record in deblended[len(catalog):]:
            if record.get("deblend_fallback"):
                continue
            distance = np.hypot(positions[:, 0] - record.get("deblend_peak_center_x"),
                                positions[:, 1] - record.get("deblend_peak_center_y"))
            j = int(np.argmin(distance))
            if distance[j] > 1.5 or j in taken:
                continue
            taken.add(j)
            e1True = morphology.ellipticity(scene.isolated[j, r])[0]
            rows.append({"field": index, "galaxy": j, "snr": float(snr[j]),
                         "flux": float(record.get(task.columns.fluxColumn("r"))),
                         "fluxTrue": float(calib.instFluxToNanojansky(float(scene.isolated[j, r].sum()))),
                         "fluxErr": float(record.get(task.columns.fluxErrColumn("r"))),
                         "e1": float(record.get("madness_e1")), "e1True": float(e1True),
                         "e1Err": float(record.get("madness_e1Err")),
                         "blendedness": float(record.get("deblend_blendedness")),
                         "chi2": float(record.get("deblend_chi2")),
                         "logPriorQuantile": float(record.get("madness_logPriorQuantile")),
                         "badFit": bool(record.get("madness_badFit"))})
        progress(f"field {index}: {len(rows)} matched children so far ({time.perf_counter() - start:.0f} s)")
    return rows, cost


#: The terms of :class:`~..deblend.errorModel.ErrorModel` that :func:`calibrateErrorModel` can free, and the
#: coefficients each frees (flux's, then the shapes').
TERMS = {"scale": (("fluxScale",), ("shapeScale",)), "floor": (("fluxFloor",), ("shapeFloor",)),
         "blendedness": (("fluxBlendedness",), ("shapeBlendedness",)), "noise": ((), ("shapeNoise",))}

#: :func:`calibrateErrorModel`'s first grid: the scales, and the other coefficients (1e-6: the term is off).
_SCALE_GRID = np.geomspace(0.25, 4.0, 9)
_TERM_GRID = np.r_[1e-6, np.geomspace(1e-3, 1.0, 7)]


def _column(rows: list[dict], key: str) -> np.ndarray:
    return np.array([row.get(key, np.nan) for row in rows], dtype=float)


#: The rows' columns that the pulls need.
_PULL_COLUMNS = ("snr", "flux", "fluxTrue", "fluxErr", "e1", "e1True", "e1Err", "chi2", "blendedness")


def _columns(rows: list[dict]) -> dict[str, np.ndarray]:
    return {key: _column(rows, key) for key in _PULL_COLUMNS}


def _errors(c: dict[str, np.ndarray], errorModel: ErrorModel) -> dict[str, np.ndarray]:
    return {"flux": errorModel.fluxErr(c["fluxErr"], c["flux"], c["chi2"], c["blendedness"]),
            "e1": errorModel.shapeErr(c["e1Err"], c["chi2"], c["blendedness"], ErrorModel.snr(c["flux"], c["fluxErr"]))}


def _pulls(rows: list[dict] | dict[str, np.ndarray], errorModel: ErrorModel) -> dict[str, np.ndarray]:
    c = _columns(rows) if isinstance(rows, list) else rows
    errors = _errors(c, errorModel)
    return {"snr": c["snr"], "flux": (c["flux"] - c["fluxTrue"]) / errors["flux"],
            "e1": (c["e1"] - c["e1True"]) / errors["e1"]}


def _spread(values: np.ndarray) -> dict:
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return {"n": int(len(values)), "std": float("nan"), "mad": float("nan"), "median": float("nan"),
                "beyond3": float("nan")}
    median = float(np.median(values))
    return {"n": int(len(values)), "std": float(np.std(values, ddof=1)), "median": median,
            "mad": float(1.4826 * np.median(np.abs(values - median))), "beyond3": float(np.mean(np.abs(values) > 3))}


def pullTable(rows: list[dict], errorModel: ErrorModel | None = None) -> list[dict]:
    """Per S/N bin (:data:`SNR_BINS`): the pulls' count, standard deviation, 1.4826 MAD, median and share
    beyond 3, of the r-band flux and of e1, with the errors of ``errorModel`` (None: the Laplace σ alone)."""
    pulls = _pulls(rows, errorModel or ErrorModel())
    table = []
    for low, high in pairwise(SNR_BINS):
        inBin = (pulls["snr"] >= low) & (pulls["snr"] < high)
        table.append({"snrLow": low, "snrHigh": high, "flux": _spread(pulls["flux"][inBin]),
                      "e1": _spread(pulls["e1"][inBin])})
    return table


def calibrateErrorModel(rows: list[dict], terms: tuple[str, ...] = ("scale", "floor", "blendedness", "noise"),
                        chi2Inflation: bool = True) -> ErrorModel:
    r"""The error model under which the residuals of ``rows`` are most likely: Gaussian maximum likelihood.

    Each child's residual :math:`r_i` (model − truth) is taken as drawn from
    :math:`\mathcal N(0, \sigma_i^2)`, :math:`\sigma_i` the error model's, and the coefficients minimise

    .. math:: \sum_i \log \sigma_i + \frac{r_i^2}{2 \sigma_i^2},

    the flux's and the shapes' apart. Per child, not per bin, so the terms that explain which children
    are far off (their blendedness, χ², S/N) are learnt from every child: binned standard deviations
    are ruled by the few worst children of each bin, and fitting them gave coefficients that changed
    from one half of the fields to the other. The score is rough and terms trade against each other
    (a scaled Laplace σ and the 1/S/N shape noise both fall with S/N): a coarse grid first, then
    Nelder-Mead in the logarithms from its three best points.

    Parameters
    ----------
    rows : `list` [`dict`]
        Children as :func:`pullRows` gives them (Laplace σ alone).
    terms : `tuple` [`str`]
        The terms (:data:`TERMS`) to fit; the others keep the Laplace σ's values (scale 1, the rest 0).
    chi2Inflation : `bool`
        Inflate the errors by the reduced χ² (fixed, not fitted).

    Returns
    -------
    errorModel : `ErrorModel`
        The fitted model.
    """
    from scipy.optimize import minimize

    columns = _columns(rows)
    fitted: dict[str, float] = {}
    for quantity, which in (("flux", 0), ("e1", 1)):
        names = [name for term in terms for name in TERMS[term][which]]
        residual = columns[quantity] - columns[quantity + "True"]
        measured = np.isfinite(residual) & np.isfinite(columns[quantity + "Err"])

        def score(logs: np.ndarray, names=names, quantity=quantity, residual=residual, measured=measured) -> float:
            model = ErrorModel(chi2Inflation=chi2Inflation, **dict(zip(names, np.exp(logs))))
            sigma = _errors(columns, model)[quantity]
            usable = measured & np.isfinite(sigma) & (sigma > 0)
            if not usable.any():
                return np.inf
            # A child whose error the model makes zero or infinite is as bad as a residual of 1e3 σ.
            return float(np.sum(np.log(sigma[usable]) + 0.5 * (residual[usable] / sigma[usable]) ** 2)
                         + 5e5 * np.sum(measured & ~usable))

        axes = [np.log(_SCALE_GRID if name.endswith("Scale") else _TERM_GRID) for name in names]
        grid = sorted((score(np.array(point)), point) for point in itertools.product(*axes))
        best = min((minimize(score, np.array(point), method="Nelder-Mead",
                             options={"xatol": 1e-3, "fatol": 1e-6, "maxiter": 400 * len(names)})
                    for _, point in grid[:3]), key=lambda result: result.fun)
        fitted.update(zip(names, np.exp(best.x).tolist()))
    return ErrorModel(chi2Inflation=chi2Inflation, **fitted)


def _trusted(rows: list[dict]) -> list[dict]:
    return [row for row in rows if not row.get("badFit", False)]


def pullsReport(nFields: int, first: int = 1000, calibrationFields: int = 0, calibrationFirst: int = 3000,
                modelDir: str | None = None, device: str = "auto", progress=print,
                populationSize: int = 120_000) -> dict:
    """The pulls on ``nFields`` fields from ``first``: with the Laplace σ alone, with the task's default
    error model and, if ``calibrationFields``, with the error models :func:`calibrateErrorModel` chose
    on as many fields from ``calibrationFirst`` (a scale and a floor; all terms), and the halves swapped."""
    from ..deblend import MadnessDeblendConfig

    start = time.perf_counter()
    rows, cost = pullRows(nFields, first, modelDir=modelDir, device=device, progress=progress,
                          populationSize=populationSize)
    shipped = ErrorModel.fromConfig(MadnessDeblendConfig())
    report = {"fields": nFields, "first": first, "models": "the shipped weights" if modelDir is None else str(modelDir),
              "nChildren": len(rows), "nBadFit": len(rows) - len(_trusted(rows)), "parents": cost["parents"],
              "uncertaintyMsPerParent": cost["uncertaintyMs"] / max(cost["parents"], 1),
              "fitMsPerParent": cost["fitMs"] / max(cost["parents"], 1),
              "tables": {"laplace": pullTable(rows), "default": pullTable(rows, shipped),
                         "defaultTrusted": pullTable(_trusted(rows), shipped)},
              "errorModels": {"default": shipped.configOverrides()}, "rows": rows}
    if calibrationFields:
        calibration, _ = pullRows(calibrationFields, calibrationFirst, modelDir=modelDir, device=device,
                                  progress=progress, populationSize=populationSize)
        for name, terms, chi2 in (("scaleAndFloor", ("scale", "floor"), False),
                                  ("calibrated", tuple(TERMS), True)):
            model = calibrateErrorModel(calibration, terms, chi2Inflation=chi2)
            report["errorModels"][name] = model.configOverrides()
            report["tables"][name] = pullTable(rows, model)
            report["tables"][name + "Trusted"] = pullTable(_trusted(rows), model)
        # The halves swapped: chosen on the reported fields, shown on the calibration fields.
        swapped = calibrateErrorModel(rows)
        report["errorModels"]["swapped"] = swapped.configOverrides()
        report["tables"]["swapped"] = pullTable(calibration, swapped)
        report.update(calibrationFields=calibrationFields, calibrationFirst=calibrationFirst,
                      calibrationChildren=len(calibration), calibrationRows=calibration)
    report["seconds"] = time.perf_counter() - start
    return report


#: The report's tables: key, and what it shows.
_TABLES = (("laplace", "The Laplace σ alone"),
           ("default", "With the task's default error model"),
           ("defaultTrusted", "With the task's default error model, children without `madness_badFit`"),
           ("scaleAndFloor", "With a scale and a floor alone, chosen on the calibration fields"),
           ("calibrated", "With every term of the error model, chosen on the calibration fields"),
           ("calibratedTrusted", "With every term chosen on the calibration fields, children without `madness_badFit`"),
           ("swapped", "The halves swapped: every term chosen on the reported fields, the pulls on the calibration "
                       "fields"))


def _tableLines(table: list[dict]) -> list[str]:
    lines = ["| r-band S/N | children | flux: std | flux: 1.4826 MAD | flux: median | flux: > 3σ | e1: n | e1: std | "
             "e1: 1.4826 MAD | e1: median | e1: > 3σ |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in table:
        high = "∞" if not np.isfinite(row["snrHigh"]) else f"{row['snrHigh']:g}"
        f, e = row["flux"], row["e1"]
        lines.append(f"| {row['snrLow']:g}–{high} | {f['n']} | {f['std']:.2f} | {f['mad']:.2f} | {f['median']:+.2f} | "
                     f"{f['beyond3']:.1%} | {e['n']} | {e['std']:.2f} | {e['mad']:.2f} | {e['median']:+.2f} | "
                     f"{e['beyond3']:.1%} |")
    return lines


def _modelLine(terms: dict) -> str:
    return ", ".join(f"`{name}` = {value}" if isinstance(value, bool) else f"`{name}` = {value:.3g}"
                     for name, value in terms.items())


def pullsMarkdown(report: dict, command: str) -> str:
    """The report of :func:`pullsReport` as Markdown."""
    lines = ["# Pulls of the Laplace uncertainties on simulated fields", "",
             f"Written by `{command}`: {report['fields']} test fields from index {report['first']} (truth peaks), "
             f"{report['nChildren']} MADNESS children matched to their galaxies ({report['nBadFit']} with "
             f"`madness_badFit`); models: {report['models']}. "
             f"Pull = (model − truth) / σ of the r-band flux and of e1 (r-band adaptive moments); well-sized "
             f"errors give a standard deviation near 1 and 0.3 % beyond 3σ. "
             f"Uncertainties cost {report['uncertaintyMsPerParent']:.0f} ms per parent on average, the MAP fit "
             f"{report['fitMsPerParent']:.0f} ms ({report['parents']} parents, this machine's "
             f"CPU, shared with other jobs)."]
    if "calibrationFields" in report:
        lines += ["", f"The calibration fields: {report['calibrationFields']} others, from index "
                      f"{report['calibrationFirst']} ({report['calibrationChildren']} children)."]
    for key, title in _TABLES:
        if key in report["tables"]:
            model = report["errorModels"].get(key.removesuffix("Trusted"))
            lines += ["", f"{title}" + (f" ({_modelLine(model)})" if model else "") + ":", ""]
            lines += _tableLines(report["tables"][key])
    return "\n".join(lines) + "\n"


def writePulls(report: dict, command: str, document: Path) -> str:
    """Write the Markdown report and its JSON beside it (without the per-child rows: a data set, not a
    report); the Markdown."""
    summary = {key: value for key, value in report.items() if key not in ("rows", "calibrationRows")}
    return writeMarkdownAndJson(document, pullsMarkdown(report, command), summary)
