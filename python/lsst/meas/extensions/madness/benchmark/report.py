"""Tables, figures and a results JSON from a benchmark run (``madness-bench report``).

The headline rows follow the paper's (Biswas et al. 2025, Sec. 4): r-band mean :math:`|\\delta F/F|`
over galaxies with contamination :math:`\\kappa \\le 5`, mean cosine similarity, and the standard
deviation of the :math:`e_1` residual, with the paper's values next to ours.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from .run import readRun

__all__ = ["PAPER_HEADLINE", "summarise", "writeReport"]

#: The paper's r-band headline numbers (Sec. 4, LSST test fields, peaks at the true centres).
PAPER_HEADLINE: dict[str, dict[str, float | None]] = {
    "mean |δF/F|, κ ≤ 5": {"none": 0.142, "vae": 0.039, "madness": 0.020, "scarlet": 0.028},
    "mean cosine similarity": {"none": None, "vae": 0.987, "madness": 0.994, "scarlet": 0.991},
    "σ(e1 residual)": {"none": None, "vae": 0.104, "madness": 0.069, "scarlet": 0.084},
}
_NAMES = {"none": "no deblending", "vae": "VAE-deblender", "madness": "MADNESS", "scarlet": "SCARLET",
          "fidelity": "VAE fidelity limit", "template": "truth-template floor"}


class _Names(dict):
    """Display names; ``madness:LABEL`` is ``MADNESS [LABEL]``."""

    def __missing__(self, method: str) -> str:
        base, _, label = method.partition(":")
        return f"{_NAMES[base]} [{label}]" if label else _NAMES[base]


NAMES = _Names(_NAMES)


def _column(galaxies: list[dict], method: str, key: str, band: int | None = None) -> np.ndarray:
    values = []
    for galaxy in galaxies:
        value = galaxy.get(method, {}).get(key, np.nan)
        values.append(value[band] if band is not None and isinstance(value, list) else value)
    return np.asarray(values, float)


def _nanmean(values: np.ndarray) -> float:
    finite = values[np.isfinite(values)]
    return float(finite.mean()) if len(finite) else float("nan")


def summarise(records: list[dict], methods: Sequence[str]) -> dict:
    """Per method: headline numbers (r band), per-band flux and cosine, timings; detection counts."""
    galaxies = [g for record in records for g in record["galaxies"]]
    bands = records[0]["bands"]
    r = bands.index("r")
    kappa = np.array([g["kappa"][r] for g in galaxies])
    matched = np.array([g["matched"] for g in galaxies])
    select = (kappa <= 5) & matched
    contaminated = (kappa >= 0.01) & matched
    out = {"nFields": len(records), "nGalaxies": len(galaxies), "nMatched": int(matched.sum()),
           "nMissed": int(sum(r["nMissed"] for r in records)), "nSpurious": int(sum(r["nSpurious"] for r in records)),
           "bands": bands, "methods": {}}
    for method in methods:
        dF = np.abs(_column(galaxies, method, "deltaF", r))
        summary = {
            "mean |δF/F|, κ ≤ 5": float(np.nanmean(dF[select])),
            "median |δF/F|, κ ≤ 5": float(np.nanmedian(dF[select])),
            "mean |δF/F|, κ ≥ 0.01": float(np.nanmean(dF[contaminated])),
            "mean cosine similarity": float(np.nanmean(_column(galaxies, method, "cosine", r)[matched])),
            "mean SSIM": float(np.nanmean(_column(galaxies, method, "ssim", r)[matched])),
            "σ(e1 residual)": float(np.nanstd(_column(galaxies, method, "e1")[matched])),
            "σ(e2 residual)": float(np.nanstd(_column(galaxies, method, "e2")[matched])),
            "σ(δC^T g−r)": float(np.nanstd(_column(galaxies, method, "colourT")[select])),
            "σ(δC^B g−r)": float(np.nanstd(_column(galaxies, method, "colourB")[select])),
            "perBand": {band: {"mean |δF/F|, κ ≤ 5":
                                   float(np.nanmean(np.abs(_column(galaxies, method, "deltaF", b))[select])),
                               "mean cosine": _nanmean(_column(galaxies, method, "cosine", b)[matched])}
                        for b, band in enumerate(bands)},
        }
        seconds = np.array([record["seconds"][method] for record in records])
        nGal = np.array([record["nGalaxies"] for record in records])
        summary["seconds per field"] = float(seconds.mean())
        # Robust to the odd field slowed by another process on a shared machine.
        summary["median seconds per field"] = float(np.median(seconds))
        summary["galaxies per second"] = float(nGal.sum() / seconds.sum()) if seconds.sum() > 0 else float("inf")
        out["methods"][method] = summary
    out["maxRssMB"] = float(max(record.get("maxRssMB", 0.0) for record in records))
    return out


def _figures(records: list[dict], methods: Sequence[str], static: Path, prefix: str) -> list[Path]:
    from matplotlib.figure import Figure

    galaxies = [g for record in records for g in record["galaxies"]]
    r = records[0]["bands"].index("r")
    matched = np.array([g["matched"] for g in galaxies])
    snr = np.array([g["snr"][r] for g in galaxies])
    kappa = np.array([g["kappa"][r] for g in galaxies])
    beta = np.array([g["beta"][r] for g in galaxies])
    written = []

    fig = Figure(figsize=(12, 7.5))
    axes = fig.subplots(2, 2)
    for method in methods:
        dF = np.abs(_column(galaxies, method, "deltaF", r))[matched & (kappa <= 5)]
        dF = np.sort(dF[np.isfinite(dF)])
        axes[0, 0].plot(np.maximum(dF, 1e-5), np.arange(1, len(dF) + 1) / max(len(dF), 1), label=NAMES[method])
    axes[0, 0].set(xscale="log", xlabel="|δF/F| (r band, κ ≤ 5)", ylabel="fraction of galaxies", xlim=(1e-4, 10),
                   title="cumulative distribution (cf. paper Fig. 8)")
    axes[0, 0].legend()
    for ax, values, bins, label in ((axes[0, 1], snr, [0, 10, 20, 40, 80, 160, np.inf], "r-band S/N"),
                                    (axes[1, 0], beta, [0, 0.01, 0.05, 0.1, 0.2, 0.5, 1.0], "blendedness β (r)"),
                                    (axes[1, 1], kappa, [-np.inf, 0.01, 0.1, 0.5, 1, 5, np.inf],
                                     "contamination κ (r)")):
        centres = np.arange(len(bins) - 1)
        for offset, method in enumerate(methods):
            dF = np.abs(_column(galaxies, method, "deltaF", r))
            medians, low, high = [], [], []
            for lo, hi in pairwise(bins):
                v = dF[matched & (values >= lo) & (values < hi) & np.isfinite(dF)]
                q = np.percentile(v, [25, 50, 75]) if len(v) else [np.nan] * 3
                low.append(q[0])
                medians.append(q[1])
                high.append(q[2])
            shift = (offset - (len(methods) - 1) / 2) * 0.15
            ax.errorbar(centres + shift, medians, yerr=[np.subtract(medians, low), np.subtract(high, medians)],
                        fmt="o", capsize=3, label=NAMES[method])
        ax.set_xticks(centres, [f"{lo:g}–{hi:g}" for lo, hi in pairwise(bins)], fontsize=8)
        ax.set(yscale="log", xlabel=label, ylabel="|δF/F| median and quartiles")
    fig.tight_layout()
    path = static / f"{prefix}_flux.png"
    fig.savefig(path, dpi=80)
    written.append(path)

    fig = Figure(figsize=(12, 7.5))
    axes = fig.subplots(2, 3)
    panels = [("cosine", r, (0.8, 1.0), "cosine similarity (r)"), ("ssim", r, (0.0, 1.0), "SSIM (r)"),
              ("e1", None, (-0.5, 0.5), "e1 residual (r)"), ("e2", None, (-0.5, 0.5), "e2 residual (r)"),
              ("colourT", None, (-1, 1), "δC^T (g−r), mag"), ("colourB", None, (-1, 1), "δC^B (g−r), mag")]
    for ax, (key, band, limits, label) in zip(axes.ravel(), panels):
        for method in methods:
            values = _column(galaxies, method, key, band)[matched]
            values = values[np.isfinite(values)]
            if len(values):
                ax.hist(np.clip(values, *limits), bins=40, range=limits, histtype="step", density=True,
                        label=NAMES[method])
        ax.set(xlabel=label, ylabel="density")
    axes[0, 0].legend(fontsize=8)
    fig.tight_layout()
    path = static / f"{prefix}_morphology.png"
    fig.savefig(path, dpi=80)
    written.append(path)
    return written


def _cacheNote(records: list[dict], methods: Sequence[str]) -> list[str]:
    """SCARLET's median time with and without the JAX compilation cache, when a run has both."""
    if "scarlet" not in methods:
        return []
    cached = [r["seconds"]["scarlet"] for r in records if r.get("compilationCache")]
    plain = [r["seconds"]["scarlet"] for r in records if not r.get("compilationCache")]
    if not cached or not plain:
        return []
    return [f"SCARLET's JAX compilation cache was on for {len(cached)} fields (median {np.median(cached):.1f} s "
            f"per field) and off for {len(plain)} (median {np.median(plain):.1f} s); it changes speed, "
            "not results.", ""]


def _costGrowth(records: list[dict], methods: Sequence[str]) -> list[str]:
    """Mean seconds per field against the number of galaxies in the field."""
    counts = np.array([r["nGalaxies"] for r in records])
    edges = [12, 14, 16, 18, 21]
    lines = ["| galaxies per field | fields | " + " | ".join(f"{NAMES[m]} s/field" for m in methods) + " |",
             "|---|---|" + "---|" * len(methods)]
    for lo, hi in pairwise(edges):
        chosen = [r for r, n in zip(records, counts) if lo <= n < hi]
        if chosen:
            lines.append(f"| {lo}–{hi - 1} | {len(chosen)} | " + " | ".join(
                f"{np.mean([r['seconds'][m] for r in chosen]):.2f}" for m in methods) + " |")
    return lines + [""]


def _bootstrapDifference(a: np.ndarray, b: np.ndarray, statistic, rng: np.random.Generator,
                         draws: int = 300) -> tuple[float, float]:
    """statistic(a) − statistic(b) on paired galaxies, and its bootstrap standard deviation."""
    keep = np.isfinite(a) & np.isfinite(b)
    a, b = a[keep], b[keep]
    if len(a) < 2:
        return float("nan"), float("nan")
    values = [statistic(a[i]) - statistic(b[i]) for i in (rng.integers(0, len(a), len(a)) for _ in range(draws))]
    return float(statistic(a) - statistic(b)), float(np.std(values))


def _verdict(records: list[dict], methods: Sequence[str]) -> list[str]:
    """MADNESS (and each model variant) against SCARLET, and each variant against the default MADNESS,
    on each headline metric with bootstrap errors; and where each method gains or loses."""
    madness = [m for m in methods if m.partition(":")[0] == "madness"]
    pairs = [(m, "scarlet") for m in madness if "scarlet" in methods]
    pairs += [(m, "madness") for m in madness if m != "madness" and "madness" in methods]
    if not pairs:
        return []
    galaxies = [g for record in records for g in record["galaxies"]]
    r = records[0]["bands"].index("r")
    matched = np.array([g["matched"] for g in galaxies])
    kappa = np.array([g["kappa"][r] for g in galaxies])
    rng = np.random.default_rng(0)
    rows = [("mean |δF/F|, κ ≤ 5", lambda m: np.abs(_column(galaxies, m, "deltaF", r))[matched & (kappa <= 5)],
             np.mean, -1),
            ("mean cosine similarity", lambda m: _column(galaxies, m, "cosine", r)[matched], np.mean, +1),
            ("σ(e1 residual)", lambda m: _column(galaxies, m, "e1")[matched], np.std, -1)]
    lines = ["| metric (r band) | comparison | difference | verdict |", "|---|---|---|---|"]
    for first, second in pairs:
        for name, values, statistic, better in rows:
            difference, error = _bootstrapDifference(values(first), values(second), statistic, rng)
            if not np.isfinite(difference):
                continue
            wins = better * difference > 0
            significant = abs(difference) > 2 * error
            verdict = (f"{NAMES[first] if wins else NAMES[second]} better"
                       + ("" if significant else " (within 2σ: a tie)"))
            lines.append(f"| {name.replace('|', chr(92) + '|')} | {NAMES[first]} − {NAMES[second]} | "
                         f"{difference:+.4f} ± {error:.4f} | {verdict} |")
    snr = np.array([g["snr"][r] for g in galaxies])
    beta = np.array([g["beta"][r] for g in galaxies])
    lines += ["", "Median r-band |δF/F| by bin (κ ≤ 5), to show where each method gains or loses; the "
              "VAE-deblender column is MADNESS's starting point, the fidelity column the best the VAE can do:", "",
              "| bin | galaxies | " + " | ".join(NAMES[m] for m in methods if m != "none") + " |",
              "|---|---|" + "---|" * (len(methods) - ("none" in methods))]
    for label, binned, edges in (("S/N", snr, [0, 10, 20, 40, 80, np.inf]), ("β", beta, [0, 0.01, 0.1, 0.3, 1.01]),
                                 ("κ", kappa, [-np.inf, 0.01, 0.1, 1, 5])):
        for lo, hi in pairwise(edges):
            chosen = matched & (kappa <= 5) & (binned >= lo) & (binned < hi)
            if chosen.sum() == 0:
                continue
            cells = [f"{np.nanmedian(np.abs(_column(galaxies, m, 'deltaF', r))[chosen]):.4f}"
                     for m in methods if m != "none"]
            lines.append(f"| {label} {lo:g}–{hi:g} | {int(chosen.sum())} | " + " | ".join(cells) + " |")
    return lines + [""]


def _fmt(value: float | None) -> str:
    return "" if value is None or not np.isfinite(value) else f"{value:.3f}"


def writeReport(runDirectories: Sequence[str | Path], document: str | Path, static: str | Path,
                results: str | Path, command: str = "") -> Path:
    """Write ``document`` (Markdown), figures in ``static`` and the ``results`` JSON from one or more runs
    (e.g. one per peak setting, run side by side); return the JSON path."""
    records: dict[str, list[dict]] = {}
    allSettings = []
    for directory in runDirectories:
        settings, runRecords = readRun(directory)
        allSettings.append(settings)
        for setting, fieldRecords in runRecords.items():
            records.setdefault(setting, []).extend(fieldRecords)
    methods = [m for m in allSettings[0]["methods"] if all(m in s["methods"] for s in allSettings)]
    document, static = Path(document), Path(static)
    static.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {"runs": [str(d) for d in runDirectories], "settings": allSettings, "summaries": {}}
    lines = [f"Made by `{command}`." if command else ""]
    for setting, fieldRecords in records.items():
        if not fieldRecords:
            continue
        with warnings.catch_warnings():
            # Metrics a method does not have (no deblending has no model) are all NaN: empty means are NaN.
            warnings.simplefilter("ignore", RuntimeWarning)
            summary = summarise(fieldRecords, methods)
        out["summaries"][setting] = summary
        requested = max(st["nFields"] for st in allSettings if setting in st["peaks"])
        if summary["nFields"] < requested:
            lines.append(f"\n**Partial run: {summary['nFields']} of {requested} fields ({setting} peaks) are done; "
                         "the numbers below will change as the run continues (`madness-bench run ... --resume`).**")
        lines += [f"\n### Peaks: {setting}\n",
                  f"{summary['nFields']} fields, {summary['nGalaxies']} galaxies ({summary['nMissed']} without a "
                  f"detected peak, {summary['nSpurious']} spurious peaks).\n",
                  "| metric (r band) | " + " | ".join(NAMES[m] for m in methods) + " |",
                  "|---|" + "---|" * len(methods)]
        for metric in ("mean |δF/F|, κ ≤ 5", "median |δF/F|, κ ≤ 5", "mean |δF/F|, κ ≥ 0.01", "mean cosine similarity",
                       "mean SSIM", "σ(e1 residual)", "σ(e2 residual)", "σ(δC^T g−r)", "σ(δC^B g−r)"):
            name = metric.replace("|", "\\|")
            lines.append(f"| {name} | " + " | ".join(_fmt(summary["methods"][m][metric]) for m in methods) + " |")
            if setting == "truth" and metric in PAPER_HEADLINE:
                lines.append(f"| *paper: {name}* | " + " | ".join(_fmt(PAPER_HEADLINE[metric].get(m)) for m in methods)
                             + " |")
        lines += ["", "| band | " + " | ".join(f"{NAMES[m]} mean \\|δF/F\\| (κ ≤ 5) / cosine" for m in methods) + " |",
                  "|---|" + "---|" * len(methods)]
        for band in summary["bands"]:
            lines.append(f"| {band} | " + " | ".join(
                f"{_fmt(summary['methods'][m]['perBand'][band]['mean |δF/F|, κ ≤ 5'])} / "
                f"{_fmt(summary['methods'][m]['perBand'][band]['mean cosine'])}" for m in methods) + " |")
        lines += ["", "| speed (this machine) | " + " | ".join(NAMES[m] for m in methods) + " |",
                  "|---|" + "---|" * len(methods),
                  "| seconds per field | " + " | ".join(
                      f"{summary['methods'][m]['seconds per field']:.2f}" for m in methods) + " |",
                  "| median seconds per field | " + " | ".join(
                      f"{summary['methods'][m]['median seconds per field']:.2f}" for m in methods) + " |",
                  "| galaxies per second | " + " | ".join(
                      "—" if m == "none" else f"{summary['methods'][m]['galaxies per second']:.2f}"
                      for m in methods) + " |",
                  "", f"Peak memory of the run: {summary['maxRssMB']:.0f} MB.", ""]
        lines += _cacheNote(fieldRecords, methods)
        lines += _costGrowth(fieldRecords, methods)
        lines += _verdict(fieldRecords, methods)
        for path in _figures(fieldRecords, methods, static, f"bench_{setting}"):
            lines.append(f"![{path.stem}](_static/{path.name})")
    document.parent.mkdir(parents=True, exist_ok=True)
    document.write_text("\n".join(lines) + "\n")
    results = Path(results)
    results.write_text(json.dumps(out, indent=2, default=float) + "\n")
    return results
