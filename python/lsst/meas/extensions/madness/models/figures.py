"""Figures of trained models for doc/models.md (paper Figs. 3, 4 and 6, plus training curves).

:func:`drawModelFigures` writes five PNG files:

``training.png``
    Training and validation loss of the three stages per epoch.
``reconstructions.png``
    Validation galaxies: noisy input, noiseless truth, VAE reconstruction (decoded posterior
    mean) and the residual, r band.
``flow_samples.png``
    Decoded samples of :math:`\\mathcal N(0, I)` next to decoded samples of the flow prior
    (like Fig. 4): the flow's samples look like galaxies, the normal's often do not.
``latent_pairs.png``
    Pairs of latent coordinates: encoder samples of validation galaxies against flow samples
    (like Fig. 3).
``deblender_examples.png``
    Single-pass VAE-deblender: blended input, decoded deblender latent, truth, residual (like
    Fig. 6).

Colour images are i, r, g composites with one arcsinh stretch for the whole figure.

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender", Figs. 3, 4 and 6.
Lupton et al. 2004, PASP 116, 133 (arcsinh colour composites).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from .export import MadnessModels, loadModels
from .networks import sampleLatent
from .validation import cosineSimilarity, predictStamps, relativeFluxError, stackItems

__all__ = ["colourComposite", "drawModelFigures"]


def colourComposite(stamps: np.ndarray, bands: tuple[str, ...], scale: float, softening: float = 3.0) -> np.ndarray:
    """(N, S, S, 3) arcsinh i/r/g composites of (N, bands, S, S) stamps, in [0, 1].

    ``scale`` sets the intensity where the stretch turns from linear to logarithmic.

    Parameters
    ----------
    stamps : `numpy.ndarray`
        (N, bands, S, S) images; negative pixels count as 0.
    bands : `tuple` [`str`]
        The band names, which must include i, r and g.
    scale : `float`
        Intensity (mean of the three channels) where the stretch turns logarithmic, in the stamps' units.
    softening : `float`, optional
        The stretch is :math:`\\operatorname{asinh}(s I / {\\rm scale}) / \\operatorname{asinh}(10 s)`.

    Returns
    -------
    rgb : `numpy.ndarray`
        (N, S, S, 3) in [0, 1], red = i, green = r, blue = g; colours keep the bands' flux ratios.

    Examples
    --------
    >>> import numpy as np
    >>> stamps = np.zeros((1, 3, 2, 2)); stamps[0, :, 0, 0] = [1.0, 2.0, 4.0]   # g, r, i
    >>> rgb = colourComposite(stamps, ("g", "r", "i"), scale=10.0)
    >>> rgb.shape, (rgb[0, 0, 0] / rgb[0, 0, 0, 0]).round(3).tolist(), rgb[0, 1, 1].tolist()
    ((1, 2, 2, 3), [1.0, 0.5, 0.25], [0.0, 0.0, 0.0])
    """
    channels = [bands.index(b) for b in ("i", "r", "g")]
    rgb = np.moveaxis(stamps[:, channels], 1, -1).clip(min=0)
    intensity = rgb.mean(axis=-1, keepdims=True)
    stretched = np.arcsinh(softening * intensity / scale) / np.arcsinh(softening * 10.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(intensity > 0, rgb * stretched / intensity, 0.0)
    return out.clip(0, 1)


def _trainingCurves(runDir: Path, path: Path) -> None:
    import matplotlib.pyplot as plt

    labels = {"vae": "β-VAE loss", "flow": "−mean log p(z), nats", "deblender": "‖z_d − z_i‖²"}
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.6), layout="constrained")
    for ax, stage in zip(axes, ("vae", "flow", "deblender")):
        metricsPath = runDir / stage / "metrics.json"
        if not metricsPath.is_file():
            ax.text(0.5, 0.5, f"no {stage} metrics", ha="center", transform=ax.transAxes)
            continue
        metrics = json.loads(metricsPath.read_text())
        history = metrics["history"]
        epochs = [row["epoch"] for row in history]
        ax.plot(epochs, [row["trainLoss"] for row in history], "o-", ms=3, label="training")
        ax.plot(epochs, [row["valLoss"] for row in history], "s-", ms=3, label="validation")
        warm = metrics.get("ssimWarmupEpochs") or 0
        if stage == "vae" and warm:
            ax.axvspan(0.5, warm + 0.5, color="0.9", label="SSIM warm-up")
        values = [row[k] for row in history for k in ("trainLoss", "valLoss")]
        if stage != "flow" and min(values) > 0 and max(values) / min(values) > 20:
            ax.set_yscale("log")
        ax.set(xlabel="epoch", ylabel=labels[stage], title=stage)
        ax.legend(fontsize=8)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _imageGrid(rows: list[tuple[str, np.ndarray, dict]], titles: list[str], path: Path, width: float = 1.7) -> None:
    """Rows of images; each row (label, images, imshow keywords)."""
    import matplotlib.pyplot as plt

    nRows, nCols = len(rows), len(rows[0][1])
    figure, axes = plt.subplots(nRows, nCols, figsize=(width * nCols, width * nRows + 0.4), squeeze=False,
                                layout="constrained")
    for r, (label, images, style) in enumerate(rows):
        for c in range(nCols):
            ax = axes[r, c]
            ax.imshow(images[c], origin="lower", interpolation="nearest", **style)
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
            if r == 0 and titles:
                ax.set_title(titles[c], fontsize=8)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def _reconstructionRows(models: MadnessModels, batch: dict, which: str, inputLabel: str, modelLabel: str):
    bands = models.bands
    r = bands.index("r")
    prediction = predictStamps(models, batch["blended"], which)
    truth, noisy = batch["isolated"], batch["blended"]
    scale = float(np.percentile(truth[:, r], 99.5)) / 4 or 1.0
    residual = truth[:, r] - prediction[:, r]
    limit = float(np.abs(residual).max()) or 1.0
    cos = cosineSimilarity(prediction[:, r], truth[:, r])
    flux = relativeFluxError(prediction[:, r], truth[:, r])
    titles = [f"cos {c:.3f}, δF/F {f:+.2f}" for c, f in zip(cos, flux)]
    rows = [
        (inputLabel, colourComposite(noisy, bands, scale), {}),
        ("truth (noiseless)", colourComposite(truth, bands, scale), {}),
        (modelLabel, colourComposite(prediction, bands, scale), {}),
        ("r residual\ntruth − model", residual, {"cmap": "RdBu_r", "vmin": -limit, "vmax": limit}),
    ]
    return rows, titles


def drawModelFigures(modelsDir: str | os.PathLike, runDir: str | os.PathLike, isolatedDir: str | os.PathLike,
                     blendedDir: str | os.PathLike, outDir: str | os.PathLike, prefix: str = "models_",
                     seed: int = 0, examples: int = 8) -> list[Path]:
    """Write the five figures (see the module docstring) to ``outDir``; return their paths.

    Parameters
    ----------
    modelsDir : `str` or `os.PathLike`
        The exported model directory (:func:`~.export.loadModels`); its bands must include i, r and g.
    runDir : `str` or `os.PathLike`
        The ``madness-train`` run: its stages' ``metrics.json`` and ``flow/best.pt`` (flow samples).
    isolatedDir, blendedDir : `str` or `os.PathLike`
        Folders of validation shards (:class:`~lsst.meas.extensions.madness.sim.shards.SimulationShards`)
        of IsolatedSims and BlendedSims.
    outDir : `str` or `os.PathLike`
        Where the PNG files go (created if missing).
    prefix : `str`, optional
        Prefix of the file names.
    seed : `int`, optional
        Seed of the galaxies shown and of the latent samples.
    examples : `int`, optional
        Galaxies per figure.

    Returns
    -------
    paths : `list` [`pathlib.Path`]
        The five PNG files, in the module docstring's order of training, reconstructions, deblender
        examples, flow samples and latent pairs.

    Examples
    --------
    A trained run and simulated shards are needed (minutes to make), so this is shown rather than run:

    .. code-block:: python

        paths = drawModelFigures("runs/cpu2/models", "runs/cpu2", "shards/isolated-validation",
                                 "shards/blended-validation", "doc/_static")
        [p.name for p in paths]   # ['models_training.png', 'models_reconstructions.png', ...]
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..sim.shards import SimulationShards
    from .training import loadCheckpointModels, stagePath

    outDir, runDir = Path(outDir), Path(runDir)
    outDir.mkdir(parents=True, exist_ok=True)
    models = loadModels(modelsDir)
    bands = models.bands
    rng = np.random.default_rng(seed)
    isolated = SimulationShards(isolatedDir, arrays=["blended", "isolated"])
    blended = SimulationShards(blendedDir, arrays=["blended", "isolated"])
    paths = []

    path = outDir / f"{prefix}training.png"
    _trainingCurves(runDir, path)
    paths.append(path)

    def pick(data) -> np.ndarray:
        available = min(len(data), 5000)
        return np.sort(rng.choice(available, min(examples, available), replace=False))

    batch = stackItems(isolated, pick(isolated))
    rows, titles = _reconstructionRows(models, batch, "encoder", "noisy input", "VAE reconstruction")
    path = outDir / f"{prefix}reconstructions.png"
    _imageGrid(rows, titles, path)
    paths.append(path)

    batch = stackItems(blended, pick(blended))
    rows, titles = _reconstructionRows(models, batch, "deblenderEncoder", "blended input", "VAE-deblender")
    path = outDir / f"{prefix}deblender_examples.png"
    _imageGrid(rows, titles, path)
    paths.append(path)

    flow = loadCheckpointModels(stagePath(runDir, "flow"))[2]["flow"]
    torch.manual_seed(seed)
    with torch.no_grad():
        flowLatents = flow().sample((2000,))
        normalLatents = torch.randn(examples, models.card["latentDim"])
        decoded = {name: models.decode(z).numpy() * models.normalisation
                   for name, z in (("N(0, I)", normalLatents), ("flow", flowLatents[:examples]))}
    scale = float(np.percentile(decoded["flow"][:, bands.index("r")], 99.5)) / 4 or 1.0
    rows = [(f"decoded\n{name} samples", colourComposite(stamps, bands, scale), {}) for name, stamps in decoded.items()]
    path = outDir / f"{prefix}flow_samples.png"
    _imageGrid(rows, [], path)
    paths.append(path)

    count = min(len(isolated), 2000)
    stamps = stackItems(isolated, range(count), keys=("blended",))["blended"]
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        mean, scaleTril = models.encoder(torch.as_tensor(stamps) / models.normalisation)
        latents = sampleLatent(mean, scaleTril, generator).numpy()
    flowLatents = flowLatents.numpy()
    pairs = [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (12, 13), (14, 15)]
    figure, axes = plt.subplots(2, 4, figsize=(12, 6.2), layout="constrained")
    for ax, (i, j) in zip(axes.flat, pairs):
        ax.scatter(latents[:, i], latents[:, j], s=2, alpha=0.35, color="C0", label="validation latents")
        ax.scatter(flowLatents[:, i], flowLatents[:, j], s=2, alpha=0.35, color="C1", label="flow samples")
        # The latents are heavy-tailed: frame the central 99 % of the validation galaxies.
        (x0, x1), (y0, y1) = (np.percentile(latents[:, k], [0.5, 99.5]) for k in (i, j))
        pad = 0.1 * max(x1 - x0, y1 - y0)
        ax.set(xlabel=f"z{i}", ylabel=f"z{j}", xlim=(x0 - pad, x1 + pad), ylim=(y0 - pad, y1 + pad))
    axes.flat[0].legend(fontsize=8, markerscale=4, loc="best")
    figure.suptitle(f"Latent pairs: {count} validation galaxies (encoder samples) vs {len(flowLatents)} flow samples")
    path = outDir / f"{prefix}latent_pairs.png"
    figure.savefig(path, dpi=90)
    plt.close(figure)
    paths.append(path)
    return paths
