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

The Laplace σ knows the pixel noise only, not the models' own misfit (a VAE draws a galaxy only as
well as it can), so bright galaxies' pulls are wide. The task's ``fluxErrFloor`` (fractional) and
``shapeErrFloor`` add an S/N-independent model error in quadrature; :func:`calibrateFloors` chooses
them on fields other than the reported ones (``--calibration-first``), and the report shows the pulls
without and with them. The children are deblended with both floors at zero; the floors are
applied here exactly as the task applies them.
"""

from __future__ import annotations

import time
from itertools import pairwise
from pathlib import Path

import numpy as np

from .output import writeMarkdownAndJson

__all__ = ["SNR_BINS", "pullRows", "pullTable", "calibrateFloors", "pullsReport", "pullsMarkdown", "writePulls"]

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
                                          fluxErrScale=1.0, fluxErrFloor=0.0, shapeErrScale=1.0, shapeErrFloor=0.0)
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
                         "e1Err": float(record.get("madness_e1Err"))})
        progress(f"field {index}: {len(rows)} matched children so far ({time.perf_counter() - start:.0f} s)")
    return rows, cost


def _pulls(rows: list[dict], fluxFloor: float, shapeFloor: float, fluxScale: float = 1.0,
           shapeScale: float = 1.0) -> dict[str, np.ndarray]:
    flux = np.array([r["flux"] for r in rows])
    fluxErr = np.hypot(fluxScale * np.array([r["fluxErr"] for r in rows]), fluxFloor * np.abs(flux))
    e1Err = np.hypot(shapeScale * np.array([r["e1Err"] for r in rows]), shapeFloor)
    return {"snr": np.array([r["snr"] for r in rows]),
            "flux": (flux - np.array([r["fluxTrue"] for r in rows])) / fluxErr,
            "e1": (np.array([r["e1"] for r in rows]) - np.array([r["e1True"] for r in rows])) / e1Err}


def _spread(values: np.ndarray) -> dict:
    values = values[np.isfinite(values)]
    if len(values) < 2:
        return {"n": int(len(values)), "std": float("nan"), "mad": float("nan"), "median": float("nan")}
    median = float(np.median(values))
    return {"n": int(len(values)), "std": float(np.std(values, ddof=1)), "median": median,
            "mad": float(1.4826 * np.median(np.abs(values - median)))}


def pullTable(rows: list[dict], fluxFloor: float = 0.0, shapeFloor: float = 0.0, fluxScale: float = 1.0,
              shapeScale: float = 1.0) -> list[dict]:
    """Per S/N bin (:data:`SNR_BINS`): the pulls' count, standard deviation, 1.4826 MAD and median, of the
    r-band flux and of e1, with the Laplace σ times the scales and the floors in quadrature (as the task's
    ``fluxErrScale``, ``fluxErrFloor``, ``shapeErrScale``, ``shapeErrFloor``)."""
    pulls = _pulls(rows, fluxFloor, shapeFloor, fluxScale, shapeScale)
    table = []
    for low, high in pairwise(SNR_BINS):
        inBin = (pulls["snr"] >= low) & (pulls["snr"] < high)
        table.append({"snrLow": low, "snrHigh": high, "flux": _spread(pulls["flux"][inBin]),
                      "e1": _spread(pulls["e1"][inBin])})
    return table


def calibrateFloors(rows: list[dict], scales: bool = False) -> dict[str, float]:
    """The model-error terms that bring the pulls' standard deviations closest to 1 over the S/N bins
    (least squares in log std over the bins with >= 5 children): a fractional flux floor and an e1 floor,
    each on its own grid, and with ``scales`` also a factor on the Laplace σ (flux and e1 each), jointly
    with its floor. Returns ``fluxErrFloor``, ``shapeErrFloor``, ``fluxErrScale``, ``shapeErrScale``."""
    def score(key: str, **terms) -> float:
        logs = [np.log(row[key]["std"]) for row in pullTable(rows, **terms)
                if row[key]["n"] >= 5 and row[key]["std"] > 0]
        return float(np.sum(np.square(logs))) if logs else np.inf

    fluxGrid = np.r_[0.0, np.geomspace(0.002, 0.5, 60)]
    shapeGrid = np.r_[0.0, np.geomspace(0.0005, 0.2, 60)]
    scaleGrid = np.linspace(1.0, 3.0, 21) if scales else np.array([1.0])
    fluxScale, fluxFloor = min(((a, f) for a in scaleGrid for f in fluxGrid),
                               key=lambda t: score("flux", fluxScale=t[0], fluxFloor=t[1]))
    shapeScale, shapeFloor = min(((a, f) for a in scaleGrid for f in shapeGrid),
                                 key=lambda t: score("e1", shapeScale=t[0], shapeFloor=t[1]))
    return {"fluxErrFloor": float(fluxFloor), "shapeErrFloor": float(shapeFloor), "fluxErrScale": float(fluxScale),
            "shapeErrScale": float(shapeScale)}


def _apply(rows: list[dict], terms: dict[str, float]) -> list[dict]:
    return pullTable(rows, terms["fluxErrFloor"], terms["shapeErrFloor"], terms["fluxErrScale"], terms["shapeErrScale"])


def pullsReport(nFields: int, first: int = 1000, calibrationFields: int = 0, calibrationFirst: int = 3000,
                modelDir: str | None = None, device: str = "auto", progress=print,
                populationSize: int = 120_000) -> dict:
    """The pulls on ``nFields`` fields from ``first``, without floors and, if ``calibrationFields``,
    with the floors :func:`calibrateFloors` chose on as many fields from ``calibrationFirst``."""
    start = time.perf_counter()
    rows, cost = pullRows(nFields, first, modelDir=modelDir, device=device, progress=progress,
                          populationSize=populationSize)
    report = {"fields": nFields, "first": first, "models": "the shipped weights" if modelDir is None else str(modelDir),
              "nChildren": len(rows), "parents": cost["parents"],
              "uncertaintyMsPerParent": cost["uncertaintyMs"] / max(cost["parents"], 1),
              "fitMsPerParent": cost["fitMs"] / max(cost["parents"], 1),
              "before": pullTable(rows), "rows": rows}
    if calibrationFields:
        calibration, _ = pullRows(calibrationFields, calibrationFirst, modelDir=modelDir, device=device,
                                  progress=progress, populationSize=populationSize)
        floors, both = calibrateFloors(calibration), calibrateFloors(calibration, scales=True)
        report.update(calibrationFields=calibrationFields, calibrationFirst=calibrationFirst,
                      calibrationChildren=len(calibration), floors=floors, floorsAndScales=both,
                      afterFloors=_apply(rows, floors), afterFloorsAndScales=_apply(rows, both),
                      calibrationRows=calibration)
    report["seconds"] = time.perf_counter() - start
    return report


def _tableLines(table: list[dict]) -> list[str]:
    lines = ["| r-band S/N | children | flux: std | flux: 1.4826 MAD | flux: median | e1: n | e1: std | "
             "e1: 1.4826 MAD | e1: median |", "|---|---|---|---|---|---|---|---|---|"]
    for row in table:
        high = "∞" if not np.isfinite(row["snrHigh"]) else f"{row['snrHigh']:g}"
        f, e = row["flux"], row["e1"]
        lines.append(f"| {row['snrLow']:g}–{high} | {f['n']} | {f['std']:.2f} | {f['mad']:.2f} | {f['median']:+.2f} | "
                     f"{e['n']} | {e['std']:.2f} | {e['mad']:.2f} | {e['median']:+.2f} |")
    return lines


def pullsMarkdown(report: dict, command: str) -> str:
    """The report of :func:`pullsReport` as Markdown."""
    lines = ["# Pulls of the Laplace uncertainties on simulated fields", "",
             f"Written by `{command}`: {report['fields']} test fields from index {report['first']} (truth peaks), "
             f"{report['nChildren']} MADNESS children matched to their galaxies; models: {report['models']}. "
             f"Pull = (model − truth) / σ of the r-band flux and of e1 (r-band adaptive moments). "
             f"Uncertainties cost {report['uncertaintyMsPerParent']:.0f} ms per parent on average, the MAP fit "
             f"{report.get('fitMsPerParent', float('nan')):.0f} ms ({report['parents']} parents, this machine's "
             f"CPU, shared with other jobs).", "",
             "Without a model-error floor (the Laplace σ alone):", ""] + _tableLines(report["before"])
    if "afterFloors" in report:
        for key, title in (("Floors", "the floors alone"), ("FloorsAndScales", "the floors and the scales")):
            terms = report["floors" if key == "Floors" else "floorsAndScales"]
            lines += ["", f"With {title} chosen on {report['calibrationFields']} other fields (from index "
                          f"{report['calibrationFirst']}, {report['calibrationChildren']} children): "
                          + ", ".join(f"`{name}` = {value:.3g}" for name, value in terms.items()) + ":",
                      ""] + _tableLines(report["after" + key])
    return "\n".join(lines) + "\n"


def writePulls(report: dict, command: str, document: Path) -> str:
    """Write the Markdown report and its JSON beside it; the Markdown."""
    return writeMarkdownAndJson(document, pullsMarkdown(report, command), report)
