r"""The figure of ``madness-bench real`` (:mod:`.real`): data, models, residuals and children per method."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

__all__ = ["drawRealComparison"]


def drawRealComparison(path: str | Path, data: np.ndarray, sigma: np.ndarray, models: dict[str, np.ndarray],
                       bands: Sequence[str], centres: np.ndarray, footprint: np.ndarray, title: str = "") -> Path:
    r"""The comparison figure: one row per method; data, model, residual and each source's model.

    Columns: the data and the model (sum of the children) as colour composites (i, r, g when present)
    of :math:`\operatorname{asinh}(x/\sigma_b)` per band, on shared limits; the band-combined residual
    :math:`R = B^{-1/2} \sum_b (d_b - m_b)/\sigma_b` (unit noise where the model fits) on a diverging
    map fixed to :math:`\pm 5`; then each source's model, on the data's stretch. Crosses mark the
    catalogue centres; the white contour is the parent footprint.

    Parameters
    ----------
    path
        The PNG to write.
    data
        ``(band, y, x)`` image.
    sigma
        ``(band,)`` noise per band.
    models
        Per method (its row label), ``(source, band, y, x)`` models.
    bands
        Band names of ``data``.
    centres
        ``(source, 2)`` ``(x, y)``.
    footprint
        ``(y, x)`` booleans.
    title
        Figure title.
    """
    from matplotlib import colormaps
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..deblend.plots import _compositeBands, _rgb

    data = np.asarray(data, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    channels = _compositeBands(bands)
    scale = sigma[channels, None, None]
    upper = max(float(np.arcsinh(np.percentile(data[b], 99.9) / sigma[b])) for b in channels)
    upper = max(upper, float(np.arcsinh(10.0)))
    everywhere = np.ones(data.shape[1:], bool)

    def composite(image: np.ndarray) -> np.ndarray:
        return _rgb(np.arcsinh(image[channels] / scale), 0.0, upper, everywhere)

    nSources = len(centres)
    nRows, nCols = max(len(models), 1), 3 + nSources
    height, width = data.shape[1:]
    # Panels ~1.8 in wide, fixed margins in inches (room for the row labels, titles and the colourbar).
    panel = min(1.8, 22.0 / nCols)
    left, right, bottom, top = 0.3, 0.05, 0.4, 0.5
    figWidth = panel * nCols * 1.04 + left + right
    figHeight = panel * height / width * nRows * 1.15 + bottom + top
    fig = Figure(figsize=(figWidth, figHeight), dpi=90)
    FigureCanvasAgg(fig)
    axes = fig.subplots(nRows, nCols, squeeze=False, gridspec_kw=dict(
        left=left / figWidth, right=1 - right / figWidth, bottom=bottom / figHeight, top=1 - top / figHeight,
        wspace=0.04, hspace=0.15))
    residualMap = colormaps["RdBu_r"]
    image = None
    for row, (label, childModels) in zip(axes, models.items()):
        total = childModels.sum(axis=0)
        residual = ((data - total) / sigma[:, None, None]).sum(axis=0) / np.sqrt(len(bands))
        row[0].imshow(composite(data), origin="lower", interpolation="nearest")
        row[0].contour(footprint.astype(float), levels=[0.5], colors="white", linewidths=0.6)
        row[1].imshow(composite(total), origin="lower", interpolation="nearest")
        image = row[2].imshow(np.where(footprint, residual, np.nan), origin="lower", interpolation="nearest",
                              cmap=residualMap.with_extremes(bad="0.6"), vmin=-5, vmax=5)
        for k in range(nSources):
            row[3 + k].imshow(composite(childModels[k]), origin="lower", interpolation="nearest")
            row[3 + k].plot(*centres[k], "+", color="cyan", ms=7, mew=1)
        for ax in row[:2]:
            for k, centre in enumerate(centres):
                ax.plot(*centre, "+", color="cyan", ms=6, mew=0.8)
                ax.annotate(str(k), centre, xytext=(2, 2), textcoords="offset points", color="cyan", fontsize=6)
        row[0].set_ylabel(label, fontsize=9)
        for ax in row:
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_xlim(-0.5, width - 0.5)
            ax.set_ylim(-0.5, height - 0.5)
    composed = "".join(bands[b] for b in channels)
    titles = [f"data ({composed})", "model (sum)", "residual / σ (bands)"] + [f"source {k}" for k in range(nSources)]
    for ax, text in zip(axes[0], titles):
        ax.set_title(text, fontsize=8)
    if image is not None:
        bar = fig.colorbar(image, cax=axes[-1, 2].inset_axes([0.0, -0.12, 1.0, 0.06]), orientation="horizontal")
        bar.ax.tick_params(labelsize=6)
    fig.suptitle(title or "real blend", fontsize=9, y=1 - 0.08 / figHeight, va="top")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png")
    fig.clear()
    return path

