"""Example images of the simulated data sets, like the MADNESS paper's Fig. 2."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from astropy.table import Table

from .datasets import BlendedSims, IsolatedSims, Scene, TestFields

__all__ = ["plotExamples"]


def _stampPanel(scenes: list[tuple[Scene, int]], bandIndex: int, band: str, title: str, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(scenes), 3, figsize=(7.5, 2.4 * len(scenes)), squeeze=False)
    for row, (scene, g) in enumerate(scenes):
        noisy = scene.blended[g, bandIndex]
        target = scene.isolated[g, bandIndex]
        x0, y0 = scene.truth["stamp_x0"][g], scene.truth["stamp_y0"][g]
        columns = (noisy, target, noisy - target)
        names = ("noisy stamp", "isolated noiseless target", "noisy - target")
        low, high = np.percentile(noisy, [1, 99.8])
        for col, (image, name) in enumerate(zip(columns, names)):
            ax = axes[row, col]
            shown = ax.imshow(image, origin="lower", cmap="viridis", vmin=low, vmax=high)
            fig.colorbar(shown, ax=ax, fraction=0.046, pad=0.03)
            for k, (x, y) in enumerate(scene.positions):
                ax.plot(x - x0, y - y0, "x", color="black" if k == g else "red", ms=6, mew=1.5)
            ax.set_xlim(-0.5, image.shape[1] - 0.5)
            ax.set_ylim(-0.5, image.shape[0] - 0.5)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(name, fontsize=9)
    fig.suptitle(f"{title} ({band} band, ADU; centre black, neighbours red)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def _fieldPanel(scene: Scene, bandIndex: int, band: str, innerSize: int, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 4.4))
    for ax, image, name in zip(axes, (scene.image[bandIndex], scene.noiseless[bandIndex]),
                               ("noisy field", "noiseless")):
        # In units of the sky noise, saturating at 30 sigma, so faint galaxies show.
        scale = max(float(np.sqrt(np.median(scene.variance[bandIndex]))), 1e-12)
        ax.imshow(np.arcsinh(image / scale), origin="lower", cmap="gray_r", vmin=np.arcsinh(-3), vmax=np.arcsinh(30))
        ax.plot(scene.positions[:, 0], scene.positions[:, 1], "x", color="red", ms=5)
        ax.set_title(f"{name} ({band}, asinh of S/N per pixel)", fontsize=9)
    n = scene.image.shape[-1]
    inner = (n - innerSize) / 2 - 0.5
    axes[0].add_patch(plt.Rectangle((inner, inner), innerSize, innerSize, fill=False, ls="--", color="tab:blue"))
    fig.suptitle(f"TestField: {len(scene)} galaxies (red), centres in the inner box (dashed)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def plotExamples(
    galaxies: Table, outDir: str | os.PathLike, *, seed: int = 0, band: str = "r", rows: int = 3
) -> list[Path]:
    """Write ``examples_isolated.png``, ``examples_blended.png`` and ``examples_field.png``.

    The first two follow the paper's Fig. 2: per row a noisy stamp, the central galaxy's
    noiseless isolated image (the training target), and their difference, with the
    central galaxy marked in black and neighbours in red. Blended examples show scenes with
    at least two galaxies. The third shows a TestField and its centres.
    """
    outDir = Path(outDir)
    outDir.mkdir(parents=True, exist_ok=True)
    isolated = IsolatedSims(galaxies, "train", seed=seed)
    blended = BlendedSims(galaxies, "train", seed=seed)
    if band not in isolated.bands:
        raise ValueError(f"band {band!r} is not one of {isolated.bands}")
    b = isolated.bands.index(band)
    isolatedScenes = [(isolated.make(k), 0) for k in range(rows)]
    blendedScenes: list[tuple[Scene, int]] = []
    k = 0
    while len(blendedScenes) < rows:
        scene = blended.make(k)
        if len(scene) > 1:
            blendedScenes.append((scene, 0))
        k += 1
    fields = TestFields(galaxies, "test", seed=seed)
    paths = [
        _stampPanel(isolatedScenes, b, band, "IsolatedSims", outDir / "examples_isolated.png"),
        _stampPanel(blendedScenes, b, band, "BlendedSims", outDir / "examples_blended.png"),
        _fieldPanel(fields.make(0), b, band, fields.config.fieldInnerSize, outDir / "examples_field.png"),
    ]
    return paths
