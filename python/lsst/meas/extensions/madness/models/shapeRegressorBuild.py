r"""Building the shape regressor of a model directory: its training data and the command that makes it.

:mod:`.shapeRegressor` holds the network :math:`z \mapsto (e_1, e_2)`, its training, its file in a
model directory and its loading; this module draws what it learns from and runs the whole recipe.
:func:`shapeTrainingSample` simulates isolated galaxies of the population the models were trained on
(:mod:`.isolatedGalaxies`), observed through random PSFs with LSST 10-year noise, and pairs the VAE
encoder's posterior mean on each noisy observed stamp with the adaptive-moments distortion of its
noiseless model-frame r-band image (:func:`modelFrameShapes`; galaxies whose moments fail are dropped
and counted). :func:`buildShapeRegressor`, behind ``madness-models shape-regressor``, simulates a
training and a validation sample, trains the regressor
(:func:`~.shapeRegressor.trainShapeRegressor`) and exports it with its card entry
(:func:`~.shapeRegressor.exportShapeRegressor`). These names import from :mod:`.shapeRegressor` too.
"""

from __future__ import annotations

import datetime
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from .shapeRegressor import ShapeTrainingConfig

__all__ = [
    "buildShapeRegressor",
    "modelFrameShapes",
    "shapeTrainingSample",
]



def modelFrameShapes(stamps: np.ndarray) -> np.ndarray:
    """Adaptive-moments distortions (N, 2) of single-band stamps (N, S, S) with
    :func:`~..benchmark.morphology.ellipticity`; NaN where the moments fail.

    Parameters
    ----------
    stamps : `numpy.ndarray`
        (N, S, S) images of one band.

    Returns
    -------
    shapes : `numpy.ndarray`
        (N, 2) float64 :math:`(e_1, e_2)`.

    Raises
    ------
    ValueError
        If ``stamps`` is not 3-d.

    Examples
    --------
    A Gaussian 1.5 times as wide as high, and the same turned by 90°:

    >>> import numpy as np
    >>> y, x = np.mgrid[:31, :31] - 15
    >>> stamp = np.exp(-(x**2 / (2 * 3.0**2) + y**2 / (2 * 2.0**2)))
    >>> modelFrameShapes(np.stack([stamp, stamp.T]))[:, 0].round(3).tolist()
    [0.385, -0.385]
    """
    from ..benchmark.morphology import ellipticity

    stamps = np.asarray(stamps, dtype=np.float64)
    if stamps.ndim != 3:
        raise ValueError(f"stamps must be (N, S, S), got shape {stamps.shape}")
    return np.array([ellipticity(stamp) for stamp in stamps], dtype=np.float64).reshape(len(stamps), 2)


def shapeTrainingSample(models, population: Mapping[str, np.ndarray], n: int, seed: int, *,
                        device: str | torch.device = "cpu", batchSize: int = 256, decoded: bool = False,
                        source: str = "the population") -> dict:
    r"""``n`` isolated galaxies of ``population`` for a shape regressor of ``models``.

    Parameters
    ----------
    models : `~.export.MadnessModels`
        A model-frame model directory (its encoder, decoder, card).
    population : `dict`
        Simulator arrays of the galaxies (one split, :mod:`.isolatedGalaxies`).
    n : `int`
        Galaxies to simulate (those whose moments fail are dropped).
    seed : `int`
        Seed of the galaxies, orientations, PSFs and noise.
    device : `str` or `torch.device`
        Where the stamps are drawn and encoded.
    batchSize : `int`
        Galaxies per batch.
    decoded : `bool`
        Also measure the adaptive moments of each latent's decoded model-frame r-band image.
    source : `str`
        Name of the population in error messages.

    Returns
    -------
    sample : `dict`
        ``latents`` (M, D) float32, the VAE encoder's posterior means of the noisy observed stamps;
        ``shapes`` (M, 2), the model-frame r-band distortions; ``snr`` (M,), the r-band S/N
        (:func:`~.isolatedGalaxies.stampSnr`); with ``decoded``, ``decodedShapes`` (M, 2), NaN where
        the moments of the decoded image fail; ``failed``, the galaxies dropped (M = n - failed);
        ``seconds``.

    Raises
    ------
    ValueError
        If the models have no r band or no model frame, or the population's bands are not theirs.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.sim import generatePopulation
    >>> from lsst.meas.extensions.madness.sim.trainingStamps import trainingSplits
    >>> from lsst.meas.extensions.madness.testing import makeTinyModels
    >>> population = trainingSplits(generatePopulation(40, seed=7), "ugrizy")["validation"]   # a few galaxies
    >>> models = makeTinyModels("ugrizy", modelFrame=True)                                    # untrained
    >>> sample = shapeTrainingSample(models, population, 4, seed=0)
    >>> sample["latents"].shape, sample["shapes"].shape, sample["failed"]
    ((4, 16), (4, 2), 0)
    """
    from .isolatedGalaxies import isolatedBatches, modelFrameSimulator, stampSnr

    if "r" not in models.bands:
        raise ValueError(f"the models' bands {''.join(models.bands)} have no r band, whose shape is regressed")
    start = time.perf_counter()
    r = models.bands.index("r")
    simulator = modelFrameSimulator(models, population, device=device, source=source)
    parts: dict[str, list[np.ndarray]] = {"latents": [], "shapes": [], "snr": [], "decodedShapes": []}
    for batch in isolatedBatches(simulator, n, seed, batchSize):
        with torch.no_grad():
            latents = models.encoder(batch["observed"].to(device))[0]
        parts["latents"].append(latents.float().cpu().numpy())
        parts["shapes"].append(modelFrameShapes(batch["model"][:, r].cpu().numpy()))
        parts["snr"].append(stampSnr(batch, r))
        if decoded:
            with torch.no_grad():
                parts["decodedShapes"].append(modelFrameShapes(models.decode(latents)[:, r].cpu().numpy()))
    arrays = {key: np.concatenate(value) for key, value in parts.items() if value}
    keep = np.isfinite(arrays["shapes"]).all(axis=1)
    out: dict[str, Any] = {key: value[keep] for key, value in arrays.items()}
    out["failed"] = int((~keep).sum())
    out["seconds"] = time.perf_counter() - start
    return out


def buildShapeRegressor(modelDir: str | os.PathLike, galaxies: int = 40_000, seed: int = 11, *,
                        population: str | os.PathLike | None = None, device: str | torch.device = "cpu",
                        config: ShapeTrainingConfig | None = None, write: bool = True, command: str | None = None,
                        progress: Callable[[str], None] = print) -> dict:
    """Simulate, train and (with ``write``) export the shape regressor of a model directory.

    ``galaxies`` is the total sample: 90 % from the population's train split (seed ``seed``), 10 %
    from its validation split (seed ``seed + 1``), on which training stops early and the validation
    RMSE is measured, with the RMSE of adaptive moments on the decoded images of the same latents
    beside it. ``population`` is a file of ``madness-train population`` (default: the built-in
    population of the shipped weights, generated here). The network is seeded with ``seed``.

    Returns the card entry (also written, with the file, when ``write``).

    Parameters
    ----------
    modelDir : `str` or `os.PathLike`
        A model-frame model directory.
    galaxies : `int`, optional
        Galaxies simulated in all (at least 200).
    seed : `int`, optional
        Seed of the training galaxies (the validation galaxies take ``seed + 1``) and of the network.
    population : `str` or `os.PathLike`, optional
        A population file of ``madness-train population``; None: :func:`~.isolatedGalaxies.builtInPopulation`.
    device : `str` or `torch.device`, optional
        Where the galaxies are drawn and encoded (the regressor trains on the CPU).
    config : `~.shapeRegressor.ShapeTrainingConfig`, optional
        The training settings; None: the defaults, seeded with ``seed``.
    write : `bool`, optional
        Export the regressor and its card entry into ``modelDir``.
    command : `str`, optional
        The command line, recorded in the entry.
    progress : callable, optional
        Called with one line per step.

    Returns
    -------
    record : `dict`
        The card's ``shapeRegressor`` entry: architecture, input and target, population, galaxies, seeds,
        training, validation RMSE of the regressor and of adaptive moments on the decoded images, date.

    Raises
    ------
    ValueError
        Fewer than 200 galaxies, models without a model frame, or a population file that does not exist.

    Examples
    --------
    Tens of thousands of galaxies are simulated and a network trained (minutes), so this is shown rather
    than run:

    .. code-block:: python

        record = buildShapeRegressor("runs/gpu/models", galaxies=40_000, seed=11, device="cuda")
        record["validationRmse"], record["decodedImageRmse"]
    """
    from .export import loadModels
    from .isolatedGalaxies import builtInPopulation
    from .modelCard import _readCard
    from .shapeRegressor import CARD_KEY, ShapeTrainingConfig, exportShapeRegressor, trainShapeRegressor

    if galaxies < 200:
        raise ValueError(f"--galaxies {galaxies}: at least 200 galaxies are needed (180 to train, 20 to validate)")
    config = config or ShapeTrainingConfig(seed=seed)
    models = loadModels(modelDir, device=device)
    if models.modelFrame is None:
        raise ValueError(f"{modelDir}: the card has no model frame; the regressor needs models trained in one")
    if population is not None:
        from ..sim.trainingStamps import loadPopulationArrays

        if not Path(population).is_file():
            raise ValueError(f"{population}: no such population file (write one with `madness-train population`)")
        splits = {split: loadPopulationArrays(population, split) for split in ("train", "validation")}
        source = f"{Path(population).name}"
    else:
        splits = {split: builtInPopulation(split, models.bands) for split in ("train", "validation")}
        source = "the built-in population of 200000 galaxies, seed 1 (that of runs/pop200k.npz)"
    nVal = max(galaxies // 10, 20)
    nTrain = galaxies - nVal
    progress(f"simulating {nTrain} training galaxies (train split, seed {seed}) and {nVal} validation galaxies "
             f"(validation split, seed {seed + 1}) of {source}")
    train = shapeTrainingSample(models, splits["train"], nTrain, seed, device=device, source=source)
    val = shapeTrainingSample(models, splits["validation"], nVal, seed + 1, device=device, decoded=True, source=source)
    progress(f"data: {train['seconds'] + val['seconds']:.0f} s; adaptive moments failed on {train['failed']} + "
             f"{val['failed']} galaxies (dropped)")
    result = trainShapeRegressor(train["latents"], train["shapes"], val["latents"], val["shapes"], config,
                                 progress=progress)
    decodedOk = np.isfinite(val["decodedShapes"]).all(axis=1)
    decodedRmse = np.sqrt(np.mean((val["decodedShapes"][decodedOk] - val["shapes"][decodedOk]) ** 2, axis=0))
    record = {
        "architecture": {"layers": [int(models.card["latentDim"]), *config.hidden, 2], "activation": "PReLU",
                         "dropout": config.dropout, "output": "tanh",
                         "input": "latent standardised by the training latents' mean and std (stored in the network)"},
        "input": "VAE encoder posterior mean of the noisy observed isolated stamp",
        "target": "r-band distortion (e1, e2) of the noiseless model-frame image, adaptive moments "
                  "(benchmark.morphology.ellipticity, galsim HSM)",
        "population": source,
        "galaxies": {"train": int(len(train["shapes"])), "validation": int(len(val["shapes"])),
                     "failedMoments": {"train": train["failed"], "validation": val["failed"]}},
        "seeds": {"train": int(seed), "validation": int(seed) + 1, "network": int(config.seed)},
        "training": {**{k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(config).items()},
                     "optimiser": "Adam", "loss": "MSE", "epochs": result.epochs, "bestEpoch": result.bestEpoch,
                     "seconds": round(result.seconds, 1), "dataSeconds": round(train["seconds"] + val["seconds"], 1)},
        "validationRmse": {"e1": result.validationRmse[0], "e2": result.validationRmse[1]},
        "decodedImageRmse": {"e1": float(decodedRmse[0]), "e2": float(decodedRmse[1]),
                             "galaxies": int(decodedOk.sum()),
                             "what": "adaptive moments of the decoded model-frame r-band image of the same latents"},
        "date": datetime.date.today().isoformat(),
        "torchVersion": torch.__version__,
    }
    if command:
        record["command"] = command
    progress(f"validation RMSE e1 {result.validationRmse[0]:.4f}, e2 {result.validationRmse[1]:.4f} (adaptive moments "
             f"on the decoded image: {decodedRmse[0]:.4f}, {decodedRmse[1]:.4f}); best epoch {result.bestEpoch} of "
             f"{result.epochs}, {result.seconds:.0f} s")
    if write:
        path = exportShapeRegressor(result.model, modelDir, record)
        record = _readCard(Path(modelDir))[CARD_KEY]
        progress(f"wrote {path} and the card's {CARD_KEY} entry")
    return record
