"""``madness-bench flags``: how often the trust flags fire on the benchmark's simulated fields.

The flags (``madness_lowPrior``, ``madness_badFit``; :mod:`lsst.meas.extensions.madness.deblend.madnessTask`)
should fire on what the models cannot draw and almost never on the simulated galaxies the models
were made for. This command deblends test fields (:func:`.run.benchmarkFields`, the split the
training never saw) with the MADNESS task and reports the share of parents and children flagged,
the percentiles of the children's reduced χ² and of their log-prior quantiles, and what the
flagged children are (r-band magnitude, number of peaks of their parent), so that a threshold can
be judged on the fits it removes.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from .output import writeMarkdownAndJson

__all__ = ["flagRates", "flagRatesMarkdown", "writeFlagRates"]


def flagRates(nFields: int, peaks: str = "truth", seed: int = 0, populationSize: int = 120_000, first: int = 1000,
              modelDir: str | None = None, device: str = "auto", progress=print) -> dict:
    """Deblend ``nFields`` test fields and count the trust flags.

    Parameters
    ----------
    nFields : `int`
        Fields to deblend (indices ``first`` to ``first + nFields - 1`` of the test fields).
    peaks : `str`
        ``"truth"`` (a peak at every galaxy's centre) or ``"detected"``.
    seed, populationSize : `int`
        The test fields' population (defaults: the benchmark's).
    first : `int`
        Index of the first field (default 1000: away from ``madness-bench run``'s first fields).
    modelDir : `str` or `None`
        MADNESS model directory (None: the shipped weights).
    device : `str`
        Torch device.
    progress : callable
        Called with a line per field.

    Returns
    -------
    rates : `dict`
        Counts, shares and percentiles (module docstring), and the flagged children.
    """
    from ..deblend import MadnessDeblendConfig, MadnessDeblendTask
    from ..detect import detectParents
    from ..sim.inputs import fieldExposure
    from .run import benchmarkFields

    if nFields < 1 or peaks not in ("truth", "detected"):
        raise ValueError(f"nFields must be >= 1 and peaks 'truth' or 'detected', got {nFields} and {peaks!r}")
    fields = benchmarkFields(populationSize, seed)
    task = None
    parents, children = [], []
    start = time.perf_counter()
    for index in range(first, first + nFields):
        scene = fields.make(index)
        mExposure = fieldExposure(scene, fields)
        catalog = detectParents(mExposure, peaks=scene.positions if peaks == "truth" else "detected")
        if task is None:
            config = MadnessDeblendConfig(device=device, modelDir=modelDir)
            task = MadnessDeblendTask(catalog.schema.copy(), config=config)
        deblended = task.run(mExposure, catalog).deblendedCatalog
        nPeaks = {r.getId(): r.get("deblend_nPeaks") for r in deblended[:len(catalog)]}
        for record in deblended[:len(catalog)]:
            if record.get("deblend_nChild") > 0 and not record.get("deblend_skipped"):
                parents.append(bool(record.get("madness_badFit")))
        for record in deblended[len(catalog):]:
            flux = record.get(task.columns.fluxColumn("r"))  # nJy
            children.append({"field": index, "id": int(record.getId()), "chi2": float(record.get("deblend_chi2")),
                             "quantile": float(record.get("madness_logPriorQuantile")),
                             "lowPrior": bool(record.get("madness_lowPrior")),
                             "badFit": bool(record.get("madness_badFit")),
                             "residualPeak": bool(record.get("deblend_residualPeak")),
                             "rMag": float(31.4 - 2.5 * np.log10(flux)) if flux > 0 else float("nan"),
                             "parentPeaks": int(nPeaks[record.getParent()])})
        progress(f"field {index}: {len(deblended) - len(catalog)} children "
                 f"({time.perf_counter() - start:.0f} s so far)")
    chi2 = np.array([c["chi2"] for c in children])
    quantile = np.array([c["quantile"] for c in children])
    assert task is not None, "no fields"
    return {
        "fields": nFields, "first": first, "peaks": peaks, "seed": seed, "populationSize": populationSize,
        "models": "the shipped weights" if modelDir is None else str(modelDir),
        "badFitChi2": task.config.badFitChi2, "lowPriorQuantile": task.config.lowPriorQuantile,
        "nParents": len(parents), "nChildren": len(children),
        "parentsBadFit": int(sum(parents)), "childrenBadFit": int(sum(c["badFit"] for c in children)),
        "childrenLowPrior": int(sum(c["lowPrior"] for c in children)),
        "childrenResidualPeak": int(sum(c["residualPeak"] for c in children)),
        "childrenResidualPeakFlagged": int(sum(c["residualPeak"] and (c["badFit"] or c["lowPrior"]) for c in children)),
        "chi2Percentiles": {str(p): float(v) for p, v in zip((50, 90, 99), np.nanpercentile(chi2, [50, 90, 99]))},
        "quantilePercentiles": {str(p): float(v) for p, v in zip((1, 5, 50), np.nanpercentile(quantile, [1, 5, 50]))},
        "flagged": [c for c in children if c["badFit"] or c["lowPrior"]],
        "seconds": time.perf_counter() - start,
    }


def flagRatesMarkdown(rates: dict, command: str) -> str:
    """The report of :func:`flagRates` as Markdown."""
    n, m = rates["nChildren"], rates["nParents"]
    lines = [
        "# Trust flags on simulated fields",
        "",
        f"Written by `{command}`: {rates['fields']} test fields ({rates['peaks']} peaks), {m} deblended parents, "
        f"{n} children; models: {rates['models']}; `badFitChi2` {rates['badFitChi2']:g}, `lowPriorQuantile` "
        f"{rates['lowPriorQuantile']:g}.",
        "",
        "| flag | flagged | share |",
        "|---|---|---|",
        f"| `madness_badFit`, parents | {rates['parentsBadFit']} of {m} | {rates['parentsBadFit'] / max(m, 1):.1%} |",
        f"| `madness_badFit`, children | {rates['childrenBadFit']} of {n} | "
        f"{rates['childrenBadFit'] / max(n, 1):.1%} |",
        f"| `madness_lowPrior`, children | {rates['childrenLowPrior']} of {n} | "
        f"{rates['childrenLowPrior'] / max(n, 1):.1%} |",
        "",
        f"Children added from residual peaks (`deblend_residualPeak`; with {rates['peaks']} peaks"
        + (", every one spurious" if rates["peaks"] == "truth" else "")
        + f"): {rates.get('childrenResidualPeak', 0)}, of them flagged {rates.get('childrenResidualPeakFlagged', 0)}.",
        "",
        "Children's reduced χ² (`deblend_chi2`), percentiles 50/90/99: "
        + " / ".join(f"{v:.2f}" for v in rates["chi2Percentiles"].values())
        + "; log-prior quantile, percentiles 1/5/50: "
        + " / ".join(f"{v:.4f}" for v in rates["quantilePercentiles"].values()) + ".",
        "",
        "The flagged children:",
        "",
        "| field | child | r mag | peaks of its parent | χ² | log-prior quantile | flags |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in rates["flagged"]:
        flags = ", ".join(name for name, on in (("badFit", c["badFit"]), ("lowPrior", c["lowPrior"]),
                                                ("residualPeak", c.get("residualPeak", False))) if on)
        lines.append(f"| {c['field']} | {c['id']} | {c['rMag']:.1f} | {c['parentPeaks']} | {c['chi2']:.1f} | "
                     f"{c['quantile']:.4f} | {flags} |")
    return "\n".join(lines) + "\n"


def writeFlagRates(rates: dict, command: str, document: Path) -> str:
    """Write the Markdown report and its JSON beside it; the Markdown."""
    return writeMarkdownAndJson(document, flagRatesMarkdown(rates, command), rates)
