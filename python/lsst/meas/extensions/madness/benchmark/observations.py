r"""The same sky observed otherwise: MADNESS and SCARLET across PSF sizes and pixel scales.

Runs of ``madness-bench run`` with ``--psf-scale F`` and ``--pixel-scale S``
(:func:`~.run.benchmarkFields`) observe the same galaxies at the same places with every band's
PSF FWHM times F, on pixels of S arcsec. :func:`summariseObservations` takes such runs, one of
them nominal (F = 1, LSST's pixels), keeps the fields every run has, and reports per run and
method the r-band mean :math:`|\delta F/F|` (:math:`\kappa \le 5`, the paper's selection), the
mean cosine similarity in every band and :math:`\sigma(e_1)`, and for MADNESS its r-band
:math:`|\delta F/F|` over its nominal value: a model frame whose observation model is right keeps
that ratio near 1, where models that draw one instrument's galaxies would not.

A broader PSF also blends the same galaxies more: more of them reach a high blendedness
:math:`\kappa` (the neighbours' flux in a galaxy's aperture over its own, r band, in that
observation), where every method errs more. So the report also gives each method's mean
:math:`|\delta F/F|` per :math:`\kappa` bin (:data:`KAPPA_BINS`), with "no deblending" as the
measure of how blended each bin is: a deblender whose error per bin stays the same has kept its
accuracy, and the change of its overall mean is then the change of the bins' populations.

Examples
--------
.. code-block:: bash

    madness-bench run --out runs/psf07 --fields 40 --peaks truth --methods none madness scarlet --psf-scale 0.7
    madness-bench observations runs/nominal runs/psf07 runs/psf14 runs/hsc
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .report import NAMES, summarise
from .run import readRun

__all__ = ["summariseObservations", "writeObservationsReport"]

#: The r-band mean |δF/F| of MADNESS may exceed its nominal value by this fraction (issue 15).
NOMINAL_TOLERANCE = 0.25

#: A band is alive when its mean cosine similarity reaches this.
ALIVE_COSINE = 0.95

#: The r-band blendedness bins of the per-κ table: [low, high).
KAPPA_BINS = ((0.0, 0.1), (0.1, 1.0), (1.0, 5.0))


def kappaBins(records: list[dict], methods: Sequence[str]) -> dict:
    """Per method, per :data:`KAPPA_BINS` bin: matched galaxies and their r-band mean :math:`|\\delta F/F|`."""
    galaxies = [g for record in records for g in record["galaxies"] if g["matched"]]
    r = records[0]["bands"].index("r")
    kappa = np.array([g["kappa"][r] for g in galaxies])
    out = {}
    for method in methods:
        error = np.array([abs(g[method]["deltaF"][r]) if method in g else np.nan for g in galaxies])
        cells = []
        for low, high in KAPPA_BINS:
            inBin = (kappa >= low) & (kappa < high) & np.isfinite(error)
            cells.append({"kappa": [low, high], "n": int(inBin.sum()),
                          "mean": float(error[inBin].mean()) if inBin.any() else float("nan")})
        out[method] = cells
    return out


def _label(settings: dict) -> str:
    psf, pixel = settings.get("psfScale", 1.0), settings.get("pixelScale")
    parts = [] if psf == 1.0 else [f"PSF × {psf:g}"]
    parts += [] if pixel is None else [f"{pixel:g}″ pixels"]
    return ", ".join(parts) or "nominal (LSST)"


def summariseObservations(runDirectories: Sequence[str | Path], peaks: str = "truth") -> dict:
    """Per run (its observing settings) and method, the headline numbers on the fields all runs share.

    Raises
    ------
    ValueError
        No run is nominal, two runs have the same settings, or the runs share no field.
    """
    runs: list[dict[str, Any]] = []
    for directory in runDirectories:
        settings, records = readRun(directory)
        runs.append({"directory": str(directory), "settings": settings, "label": _label(settings),
                     "records": {r["index"]: r for r in records.get(peaks, [])}})
    labels = [r["label"] for r in runs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"two runs observe alike: {labels}")
    nominal = [r for r in runs if r["label"] == "nominal (LSST)"]
    if not nominal:
        raise ValueError(f"no nominal run (PSF × 1 on LSST's pixels) among {labels}")
    common = sorted(set.intersection(*(set(r["records"]) for r in runs)))
    if not common:
        raise ValueError("the runs share no field")
    out: dict[str, Any] = {"peaks": peaks, "fields": common, "runs": []}
    for run in runs:
        shared = [run["records"][i] for i in common]
        methods = [m for m in run["settings"]["methods"] if m != "none"]
        summary = summarise(shared, methods)
        out["runs"].append({"label": run["label"], "directory": run["directory"],
                            "psfScale": run["settings"].get("psfScale", 1.0),
                            "pixelScale": run["settings"].get("pixelScale"), "summary": summary,
                            "kappaBins": kappaBins(shared, [m for m in run["settings"]["methods"]
                                                             if m == "none" or m in summary["methods"]])})
    reference = next(r for r in out["runs"] if r["label"] == "nominal (LSST)")["summary"]["methods"]
    for run in out["runs"]:
        for method, values in run["summary"]["methods"].items():
            if method in reference:
                values["over nominal"] = values["mean |δF/F|, κ ≤ 5"] / reference[method]["mean |δF/F|, κ ≤ 5"]
    return out


def _cosines(values: dict) -> str:
    cells = [f"{band} {v['mean cosine']:.3f}" for band, v in values["perBand"].items()]
    return ", ".join(cells)


def formatObservations(result: dict) -> str:
    """Markdown tables of :func:`summariseObservations`."""
    n = len(result["fields"])
    galaxies = result["runs"][0]["summary"]["nGalaxies"]
    lines = [f"{n} fields ({galaxies} galaxies, {result['peaks']} peaks) that every run has; r band unless said. "
             f"\"× nominal\": MADNESS's (SCARLET's) mean |δF/F| over its own on the nominal fields "
             f"(goal: at most {1 + NOMINAL_TOLERANCE:.2f} for MADNESS, and below SCARLET's).", "",
             "| observation | method | mean \\|δF/F\\|, κ ≤ 5 | × nominal | mean cosine | σ(e1) | lowest band cosine "
             "| s/field |", "|---|---|---|---|---|---|---|---|"]
    for run in result["runs"]:
        for method, values in run["summary"]["methods"].items():
            lowest = min(values["perBand"].items(), key=lambda item: item[1]["mean cosine"])
            lines.append(f"| {run['label']} | {NAMES[method]} | {values['mean |δF/F|, κ ≤ 5']:.4f} | "
                         f"{values.get('over nominal', float('nan')):.2f} | {values['mean cosine similarity']:.3f} | "
                         f"{values['σ(e1 residual)']:.3f} | {lowest[0]} {lowest[1]['mean cosine']:.3f} | "
                         f"{values['median seconds per field']:.1f} |")
    lines += ["", "Mean cosine similarity per band:", "", "| observation | method | per band |", "|---|---|---|"]
    for run in result["runs"]:
        for method, values in run["summary"]["methods"].items():
            lines.append(f"| {run['label']} | {NAMES[method]} | {_cosines(values)} |")
    header = " | ".join(f"κ {low:g}–{high:g}: n, mean \\|δF/F\\|" for low, high in KAPPA_BINS)
    lines += ["", "r-band mean |δF/F| per blendedness bin (κ of that observation; \"no deblending\" measures how "
              "blended each bin is):", "", f"| observation | method | {header} |",
              "|---|---|" + "---|" * len(KAPPA_BINS)]
    for run in result["runs"]:
        for method, cells in run.get("kappaBins", {}).items():
            row = " | ".join(f"{c['n']}, {c['mean']:.4f}" for c in cells)
            lines.append(f"| {run['label']} | {NAMES[method]} | {row} |")
    return "\n".join(lines) + "\n"


def writeObservationsReport(runDirectories: Sequence[str | Path], document: str | Path, results: str | Path,
                            peaks: str = "truth", command: str = "") -> dict:
    """Write :func:`formatObservations` to ``document`` and the numbers to ``results``; return them."""
    result = summariseObservations(runDirectories, peaks)
    text = formatObservations(result)
    if command:
        text = f"Made by `{command}`.\n\n" + text
    for path in (Path(document), Path(results)):
        path.parent.mkdir(parents=True, exist_ok=True)
    Path(document).write_text(text)
    Path(results).write_text(json.dumps({"command": command, **result}, indent=1, default=float) + "\n")
    return result
