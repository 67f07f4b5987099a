r"""Diagnostic figure of one deblended parent: data, model, residual and each child, per band.

Layout: with three or more bands, the first row holds colour composites (data, model,
residual); then one row per band with the columns

* **data** with the parent footprint (white contour) and the peaks (numbered crosses);
* **model**, the sum of the children, with the same peaks;
* **residual** :math:`(d - m)/\sigma` on a diverging map fixed to :math:`\pm 5\sigma`
  (one colourbar, under the last band's panel): structure there is what the deblend missed;
* one column per child model, at most ``maxChildren`` (the title says how many are not shown).

Reading the stretch: in each band, pixel values are divided by that band's noise
:math:`\sigma_b` (median :math:`\sqrt{\rm variance}` over valid pixels, written next to the
band's name) and shown as :math:`\operatorname{asinh}(x/\sigma_b)`: linear within about
:math:`\pm 1\sigma`, so the noise is visible, and logarithmic above, so bright cores do not
saturate. The data, the model and the children of one band share the same limits, so their
brightness can be compared panel to panel. Pixels with variance 0, infinite or NaN (masked) are
grey in the data and residual panels. The composites use the same noise-scaled asinh per
channel (i, r, g when present, else the reddest three bands), so their colour is one of S/N.

Examples
--------
>>> import tempfile, numpy as np
>>> y, x = np.mgrid[:21, :21]
>>> child = np.exp(-((x - 10) ** 2 + (y - 8) ** 2) / 8.0)
>>> models = np.stack([child * 20, child.T * 10])[:, None].repeat(2, axis=1)
>>> path = drawBlendDiagnostics(tempfile.mkdtemp() + "/blend.png", models.sum(0), np.ones((2, 21, 21)),
...                             models, "gr", np.array([[10, 8], [8, 10]]), title="parent 1")
>>> path.name, path.stat().st_size > 0
('blend.png', True)
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Sequence

import numpy as np

from ..io.atomic import atomicPath

__all__ = ["drawBlendDiagnostics"]

_RESIDUAL_LIMIT = 5.0
_FLOOR = -3.0  # data limits start at -3 sigma: negative noise stays visible, not clipped to black
_WAVELENGTH_ORDER = "ugrizyJHK"


def _validate(data: np.ndarray, variance: np.ndarray, models: np.ndarray, bands: Sequence[str], peaks: np.ndarray,
              childLabels: Sequence[str] | None, footprint: np.ndarray | None) -> None:
    if data.ndim != 3:
        raise ValueError(f"data must be (bands, H, W), got shape {data.shape}")
    if variance.shape != data.shape:
        raise ValueError(f"variance shape {variance.shape} differs from data shape {data.shape}")
    if models.ndim != 4 or models.shape[1:] != data.shape:
        raise ValueError(f"models must be (K, {', '.join(map(str, data.shape))}), got shape {models.shape}")
    if peaks.shape != (len(models), 2):
        raise ValueError(f"peaks must be (K, 2) = ({len(models)}, 2) for models of shape {models.shape}, "
                         f"got shape {peaks.shape}")
    if len(bands) != data.shape[0]:
        raise ValueError(f"bands has {len(bands)} entries but data has {data.shape[0]} bands (shape {data.shape})")
    if childLabels is not None and len(childLabels) != len(models):
        raise ValueError(f"childLabels has {len(childLabels)} entries but models has K={len(models)} "
                         f"(shape {models.shape})")
    if footprint is not None and footprint.shape != data.shape[1:]:
        raise ValueError(f"footprint shape {footprint.shape} differs from the image shape {data.shape[1:]}")


def _compositeBands(bands: Sequence[str]) -> list[int]:
    """Indices of the (red, green, blue) channels."""
    if {"i", "r", "g"} <= set(bands):
        return [list(bands).index(b) for b in "irg"]
    # Names we know are sorted by wavelength; others keep their given (assumed blue-to-red) order.
    order = sorted(range(len(bands)), key=lambda i: (_WAVELENGTH_ORDER.find(bands[i]), i))
    return order[-3:][::-1]


def _rgb(channels: np.ndarray, lower: float, upper: float, valid: np.ndarray, fill: float = 0.6) -> np.ndarray:
    rgb = np.where(valid, np.clip((channels - lower) / (upper - lower), 0.0, 1.0), fill)
    return np.moveaxis(rgb, 0, -1)


def drawBlendDiagnostics(path: str | os.PathLike, data: np.ndarray, variance: np.ndarray, models: np.ndarray,
                         bands: Sequence[str], peaks: np.ndarray, *, title: str = "",
                         childLabels: Sequence[str] | None = None, footprint: np.ndarray | None = None,
                         maxChildren: int = 8) -> pathlib.Path:
    """Write the diagnostic PNG of one blend (see the module docstring) and return its path.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        The PNG to write (atomically; overwritten).
    data : `numpy.ndarray`
        (bands, H, W) the blend's pixels.
    variance : `numpy.ndarray`
        (bands, H, W) their variance, in the data's units squared; 0, infinite or NaN on masked pixels.
    models : `numpy.ndarray`
        (K, bands, H, W) each child's model on the same pixels.
    bands : sequence of `str`
        The band names, one per plane.
    peaks : `numpy.ndarray`
        (K, 2) peak positions as (x, y) = (column, row) in the arrays' pixels.
    title : `str`, optional
        The figure's title.
    childLabels : sequence of `str`, optional
        One label per child (default ``"child k"``).
    footprint : `numpy.ndarray`, optional
        (H, W) booleans: the parent footprint, drawn as a contour.
    maxChildren : `int`, optional
        Most child columns drawn; the title says how many are not shown.

    Returns
    -------
    path : `pathlib.Path`
        The PNG written.

    Raises
    ------
    ValueError
        If the shapes of the arrays, ``bands``, ``childLabels`` or ``footprint`` do not agree.

    Examples
    --------
    One band, one child, with its footprint:

    >>> import os, tempfile, numpy as np
    >>> y, x = np.mgrid[:15, :15]
    >>> model = 10 * np.exp(-((x - 7) ** 2 + (y - 7) ** 2) / 6.0)[None, None]       # (K, bands, H, W)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = drawBlendDiagnostics(os.path.join(tmp, "parent.png"), model[0], np.ones((1, 15, 15)), model,
    ...                                 "r", np.array([[7, 7]]), footprint=model[0, 0] > 1)
    ...     path.name, path.stat().st_size > 0
    ('parent.png', True)
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    data, variance = np.asarray(data, dtype=float), np.asarray(variance, dtype=float)
    models, peaks = np.asarray(models, dtype=float), np.asarray(peaks, dtype=float)
    footprint = None if footprint is None else np.asarray(footprint, dtype=bool)
    _validate(data, variance, models, bands, peaks, childLabels, footprint)
    nBands, nChildren = data.shape[0], len(models)
    labels = [f"child {k}" for k in range(nChildren)] if childLabels is None else [str(c) for c in childLabels]
    shown = min(nChildren, max(maxChildren, 0))

    # np.sqrt/np.divide with `where`: masked pixels never reach the arithmetic, so no RuntimeWarning.
    valid = np.isfinite(variance) & (variance > 0) & np.isfinite(data)
    sigma = np.sqrt(variance, out=np.full(data.shape, np.nan), where=valid)
    model = models.sum(axis=0)
    residual = np.divide(data - model, sigma, out=np.full(data.shape, np.nan), where=valid)
    # A band with no valid pixel still gets drawn, in units of 1.
    noise = np.array([np.median(sigma[b][valid[b]]) if valid[b].any() else 1.0 for b in range(nBands)])

    def scaled(image: np.ndarray | float, b: int) -> np.ndarray | float:
        return np.arcsinh(image / noise[b])

    uppers = []
    for b in range(nBands):
        # The model's peak, or the data's bright tail, whichever is higher; at least 10 sigma.
        top = np.percentile(data[b][valid[b]], 99.9) if valid[b].any() else 0.0
        uppers.append(max(scaled(max(top, model[b].max()), b), np.arcsinh(10.0)))

    composite = nBands >= 3
    nRows, nCols = nBands + composite, 3 + shown
    height, width = data.shape[1:]
    # ~2.2 in a panel (its height following the image's aspect), shrunk so that a figure with many
    # children or bands stays within ~24 x 20 in; fixed margins in inches, as tight_layout is slow.
    panel = min(2.2, 24.0 / nCols, 20.0 / nRows * width / height)
    panelHeight, left, bottom, top = panel * height / width, 0.35, 0.4, 0.55
    figWidth, figHeight = panel * nCols * 1.03 + left, panelHeight * nRows * 1.15 + bottom + top
    fig = Figure(figsize=(figWidth, figHeight), dpi=80)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nRows, nCols, squeeze=False, gridspec_kw=dict(
        left=left / figWidth, right=1 - 0.05 / figWidth, bottom=bottom / figHeight, top=1 - top / figHeight,
        wspace=0.03, hspace=0.15))
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
    imageMap, residualMap = colormaps["magma"].with_extremes(bad="0.6"), colormaps["RdBu_r"].with_extremes(bad="0.6")
    imageArgs = dict(origin="lower", interpolation="nearest", cmap=imageMap)

    def markPeaks(ax, which: range) -> None:
        for k in which:
            ax.plot(*peaks[k], "+", color="cyan", ms=6, mew=1)
            ax.annotate(str(k), peaks[k], xytext=(3, 3), textcoords="offset points", color="cyan", fontsize=7)
        # Peaks off the canvas must not stretch the axes away from the image.
        ax.set_xlim(-0.5, width - 0.5)
        ax.set_ylim(-0.5, height - 0.5)

    if composite:
        rgb = _compositeBands(bands)
        lower, upper = 0.0, max(uppers[b] for b in rgb)
        allValid = valid[rgb].all(axis=0)
        channels = np.stack([scaled(data[b], b) for b in rgb]), np.stack([scaled(model[b], b) for b in rgb])
        axes[0, 0].imshow(_rgb(channels[0], lower, upper, allValid), origin="lower", interpolation="nearest")
        axes[0, 1].imshow(_rgb(channels[1], lower, upper, np.ones_like(allValid)), origin="lower",
                          interpolation="nearest")
        # Residual composite: grey is zero, a colour is a band-dependent residual (±5σ to the ends);
        # masked pixels are black here, as grey already means a good fit.
        resid = np.stack([np.nan_to_num(residual[b]) for b in rgb])
        axes[0, 2].imshow(_rgb(resid, -_RESIDUAL_LIMIT, _RESIDUAL_LIMIT, allValid, fill=0.0), origin="lower",
                          interpolation="nearest")
        for col, name in enumerate(("data", "model", "residual")):
            axes[0, col].set_title(f"{name} ({''.join(bands[b] for b in rgb)})", fontsize=8)
        markPeaks(axes[0, 0], range(nChildren))
        markPeaks(axes[0, 1], range(nChildren))
        for ax in axes[0, 3:]:
            ax.set_axis_off()
        if nCols > 3:
            axes[0, 3].text(0.05, 0.5, "asinh(x/σ) per band; data, model\nand children of a band share limits.\n"
                            f"Residual: ±{_RESIDUAL_LIMIT:g}σ. Grey: masked\n(black in the residual composite).",
                            fontsize=7, va="center")

    for b in range(nBands):
        row = axes[b + composite]
        limits = dict(vmin=np.arcsinh(_FLOOR), vmax=uppers[b])
        row[0].imshow(np.ma.masked_array(scaled(data[b], b), ~valid[b]), **imageArgs, **limits)
        row[1].imshow(scaled(model[b], b), **imageArgs, **limits)
        image = row[2].imshow(np.ma.masked_invalid(residual[b]), origin="lower", interpolation="nearest",
                              cmap=residualMap, vmin=-_RESIDUAL_LIMIT, vmax=_RESIDUAL_LIMIT)
        for k in range(shown):
            row[3 + k].imshow(scaled(models[k, b], b), **imageArgs, **limits)
            markPeaks(row[3 + k], range(k, k + 1))
        markPeaks(row[0], range(nChildren))
        markPeaks(row[1], range(nChildren))
        # contour() warns on a constant mask, which has no edge to draw anyway.
        if footprint is not None and footprint.any() and not footprint.all():
            row[0].contour(footprint.astype(float), levels=[0.5], colors="white", linewidths=0.7)
        row[0].set_ylabel(f"{bands[b]}  (σ={noise[b]:.3g})", fontsize=9)
        if b == 0:
            titles = ["data", "model (sum)", "residual / σ"] + [f"[{k}] {labels[k]}" for k in range(shown)]
            for ax, text in zip(row, titles):
                ax.set_title(text, fontsize=8)
    colourbar = fig.colorbar(image, cax=axes[-1, 2].inset_axes([0.0, -0.1, 1.0, 0.06]), orientation="horizontal")
    colourbar.ax.tick_params(labelsize=7)

    hidden = nChildren - shown
    suffix = f"  (+{hidden} more children not shown)" if hidden > 0 else ""
    heading = f"{nChildren} children, asinh(x/σ) stretch{suffix}"
    fig.suptitle(f"{title}  —  {heading}" if title else heading, fontsize=10, y=1 - 0.08 / figHeight, va="top")
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomicPath(path) as temporary:  # a run killed while drawing leaves no half PNG
        fig.savefig(temporary, format="png")
    fig.clear()  # the figure has no pyplot manager, so clearing frees its artists
    return path
