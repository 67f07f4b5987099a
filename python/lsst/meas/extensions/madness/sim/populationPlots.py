"""Figures comparing a generated galaxy population with a reference catalogue (e.g. CatSim).

Not imported by :mod:`lsst.meas.extensions.madness.sim`, so that matplotlib is only loaded
by those who plot. Figures are drawn with :class:`matplotlib.figure.Figure` and saved as
PNG without pyplot, so no display and no global backend change are needed.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
from astropy.table import Table

from .population import PopulationConfig, cumulativeCounts
from .snr import catalogSnr
from .survey import LSST_CONDITIONS, SurveyConditions

__all__ = ["plotPopulationComparison"]

_BEFORE = "tab:orange"  # the paper's Fig. 1 colours
_AFTER = "tab:blue"
_COLOURS = (("u", "g"), ("g", "r"), ("r", "i"), ("i", "z"), ("z", "y"))


def _column(table: Table, name: str) -> np.ndarray:
    return np.asarray(table[name], dtype=float)


def _axisRatio(table: Table, name: str) -> np.ndarray:
    # Only components that exist: an absent one has q = 1 by convention.
    size = "hlr_disk" if name == "q_disk" else "hlr_bulge"
    return _column(table, name)[_column(table, size) > 0]


def _hist(ax, values: np.ndarray, bins, **kwargs) -> None:
    values = values[np.isfinite(values)]
    if values.size:
        ax.hist(values, bins=bins, **kwargs)


def _compare(ax, generated: np.ndarray, cut: np.ndarray, reference: np.ndarray | None, bins, labels) -> None:
    """Normalised histograms: generated before and after the cut, and the reference."""
    _hist(ax, generated, bins, density=True, color=_BEFORE, alpha=0.5, label=labels[0])
    _hist(ax, cut, bins, density=True, histtype="step", color=_AFTER, lw=1.5, label=labels[1])
    if reference is not None:
        # Half as many bins: a reference of ~100 galaxies is otherwise all noise.
        _hist(ax, reference, bins[::2], density=True, histtype="step", color="k", lw=1.5, label=labels[2])


def plotPopulationComparison(
    generated: Table,
    reference: Table | None,
    outDir: str | PathLike,
    *,
    conditions: SurveyConditions = LSST_CONDITIONS,
    snrBand: str = "r",
    snrCut: float = 10.0,
    config: PopulationConfig = PopulationConfig(),
    label: str = "generated",
    referenceLabel: str = "CatSim sample",
    prefix: str = "population",
    dpi: int = 80,
) -> list[Path]:
    r"""Write PNG figures comparing a population with a reference catalogue.

    ``generated`` is the population *before* the S/N cut (e.g.
    ``generatePopulation(n, seed, snrCut=None)``); the cut ``S/N >= snrCut`` in ``snrBand``
    (paper App. A, :func:`~.snr.catalogSnr`) is applied here, so one table gives both sides of
    the paper's Fig. 1. ``reference`` (e.g. the CatSim sample read by
    :func:`~.catsim.readCatsimCatalog`) is drawn as it is, uncut, or omitted if ``None``.

    Three figures are written to ``outDir`` (created if needed):

    ``{prefix}_snr_cut.png``
        Like the paper's Fig. 1: numbers of galaxies against S/N in ``snrBand``, redshift
        and ``snrBand`` magnitude, before (orange) and after (blue) the cut.
    ``{prefix}_properties.png``
        Normalised distributions of i magnitude (with the count model of
        :func:`~.population.cumulativeCounts`), redshift, disk and bulge half-light radii,
        disk and bulge axis ratios, bulge fraction and S/N: generated before (filled) and
        after (blue) the cut, reference (black).
    ``{prefix}_colours.png``
        The same for u−g, g−r, r−i, i−z, z−y, and g−r against redshift.

    Parameters
    ----------
    generated
        Population before the cut, with the CatSim and derived columns.
    reference
        Reference catalogue with the same columns, or ``None``.
    outDir
        Directory for the PNG files.
    conditions, snrBand, snrCut
        The S/N definition and cut.
    config
        Population configuration whose count model is drawn.
    label, referenceLabel
        Legend labels.
    prefix
        File name prefix.
    dpi
        Resolution; 80 keeps each file near 100 KB.

    Returns
    -------
    paths
        The files written, in the order above.

    References
    ----------
    Biswas et al. 2025, A&A, "MADNESS deblender", Fig. 1 and App. A.

    Examples
    --------
    >>> import tempfile
    >>> from lsst.meas.extensions.madness.sim import generatePopulation
    >>> population = generatePopulation(300, seed=1, snrCut=None)
    >>> paths = plotPopulationComparison(population, None, tempfile.mkdtemp())
    >>> [path.name for path in paths]
    ['population_snr_cut.png', 'population_properties.png', 'population_colours.png']
    """
    from matplotlib.figure import Figure

    outDir = Path(outDir)
    outDir.mkdir(parents=True, exist_ok=True)
    snr = catalogSnr(generated, conditions, snrBand)
    passes = snr >= snrCut
    cut = generated[passes]
    fraction = float(passes.mean()) if len(generated) else float("nan")
    labels = (f"{label}, before cut", f"{label}, S/N$_{snrBand}$ ≥ {snrCut:g}", referenceLabel)
    paths = []

    # (a) The paper's Fig. 1: counts before and after the cut.
    fig = Figure(figsize=(12, 3.6))
    # Fixed margins: tight_layout would cost half of the plotting time.
    axes = fig.subplots(1, 3, gridspec_kw=dict(left=0.06, right=0.98, bottom=0.15, top=0.9, wspace=0.3))
    logSnr = np.log10(np.maximum(snr, 1e-3))
    panels = (
        (logSnr, np.linspace(-1, 4, 51), f"log$_{{10}}$ S/N in {snrBand}"),
        (_column(generated, "redshift"), np.linspace(0, 6, 61), "redshift"),
        (_column(generated, f"{snrBand}_ab"), np.linspace(18, 28.5, 43), f"{snrBand} AB magnitude"),
    )
    for ax, (panelValues, bins, xlabel) in zip(axes, panels):
        _hist(ax, panelValues, bins, color=_BEFORE, alpha=0.7, label="before cut")
        _hist(ax, panelValues[passes], bins, color=_AFTER, alpha=0.7, label=f"S/N ≥ {snrCut:g}")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("galaxies")
    axes[0].axvline(np.log10(snrCut), color="k", ls="--", lw=1)
    axes[0].legend(loc="upper left", fontsize=8)
    axes[1].set_title(f"{label}: {passes.sum()} of {len(generated)} ({100 * fraction:.1f}%) pass", fontsize=10)
    paths.append(outDir / f"{prefix}_snr_cut.png")
    fig.savefig(paths[-1], dpi=dpi)

    # (b) Structural properties, normalised.
    fig = Figure(figsize=(14, 6.4))
    axes = fig.subplots(2, 4, gridspec_kw=dict(left=0.05, right=0.98, bottom=0.08, top=0.95, wspace=0.3,
                                               hspace=0.3)).ravel()

    def values(table: Table, name: str, positive: bool = False) -> np.ndarray:
        data = _column(table, name)
        return data[data > 0] if positive else data

    iBins = np.linspace(18, 29, 45)
    _compare(axes[0], values(generated, "i_ab"), values(cut, "i_ab"),
             None if reference is None else values(reference, "i_ab"), iBins, labels)
    # The count model's dN/di, normalised over the drawn range (the r < 28 limit cuts the
    # faintest bin, so the data fall below it there).
    model = np.diff(cumulativeCounts(iBins, config))
    width = np.diff(iBins)
    axes[0].plot(0.5 * (iBins[1:] + iBins[:-1]), model / (model.sum() * width), "g--", lw=1, label="count model")
    axes[0].set_yscale("log")
    axes[0].set_xlabel("i AB magnitude")
    structural = (
        ("redshift", np.linspace(0, 6, 41), "redshift", False),
        ("hlr_disk", np.linspace(0, 1.5, 41), "disk half-light radius [″] (disks)", True),
        ("hlr_bulge", np.linspace(0, 1.0, 41), "bulge half-light radius [″] (bulges)", True),
        ("q_disk", np.linspace(0, 1, 26), "disk axis ratio b/a", False),
        ("q_bulge", np.linspace(0, 1, 26), "bulge axis ratio b/a", False),
        ("bulge_fraction", np.linspace(0, 1, 26), "bulge fraction B/T", False),
    )
    for ax, (name, bins, xlabel, positive) in zip(axes[1:], structural):
        if name in ("q_disk", "q_bulge"):
            _compare(ax, _axisRatio(generated, name), _axisRatio(cut, name),
                     None if reference is None else _axisRatio(reference, name), bins, labels)
        else:
            _compare(ax, values(generated, name, positive), values(cut, name, positive),
                     None if reference is None else values(reference, name, positive), bins, labels)
        ax.set_xlabel(xlabel)
    axes[6].set_yscale("log")
    diskOnly = [f"{label} {100 * np.mean(_column(generated, 'bulge_fraction') == 0):.0f}%"]
    if reference is not None:
        diskOnly.append(f"{referenceLabel} {100 * np.mean(_column(reference, 'bulge_fraction') == 0):.0f}%")
    axes[6].set_title("pure disks: " + ", ".join(diskOnly), fontsize=9)
    _compare(axes[7], np.log10(np.maximum(snr, 1e-3)), np.log10(snr[passes]),
             None if reference is None else np.log10(np.maximum(catalogSnr(reference, conditions, snrBand), 1e-3)),
             np.linspace(-1, 4, 41), labels)  # fmt: skip
    axes[7].axvline(np.log10(snrCut), color="k", ls="--", lw=1)
    axes[7].set_xlabel(f"log$_{{10}}$ S/N in {snrBand}")
    for ax in axes:
        ax.set_ylabel("density")
    axes[0].legend(fontsize=7, loc="upper left")
    paths.append(outDir / f"{prefix}_properties.png")
    fig.savefig(paths[-1], dpi=dpi)

    # (c) Colours, normalised, and g - r against redshift.
    fig = Figure(figsize=(12, 6.4))
    axes = fig.subplots(2, 3, gridspec_kw=dict(left=0.06, right=0.98, bottom=0.08, top=0.97, wspace=0.25,
                                               hspace=0.25)).ravel()

    def colour(table: Table, blue: str, red: str) -> np.ndarray:
        return _column(table, f"{blue}_ab") - _column(table, f"{red}_ab")

    for ax, (blue, red) in zip(axes, _COLOURS):
        bins = np.linspace(-1.0, 3.0 if blue == "u" else 2.0, 41)
        _compare(ax, colour(generated, blue, red), colour(cut, blue, red),
                 None if reference is None else colour(reference, blue, red), bins, labels)
        ax.set_xlabel(f"{blue} − {red}")
        ax.set_ylabel("density")
    axes[0].legend(fontsize=7)
    ax = axes[5]
    step = max(1, len(generated) // 5000)
    ax.scatter(_column(generated, "redshift")[::step], colour(generated, "g", "r")[::step], s=2, color=_BEFORE,
               alpha=0.4, label=label)
    if reference is not None:
        ax.scatter(_column(reference, "redshift"), colour(reference, "g", "r"), s=10, color="k", label=referenceLabel)
    ax.set_xlim(0, 6)
    ax.set_ylim(-1, 2.5)
    ax.set_xlabel("redshift")
    ax.set_ylabel("g − r")
    ax.legend(fontsize=7)
    paths.append(outDir / f"{prefix}_colours.png")
    fig.savefig(paths[-1], dpi=dpi)
    return paths
