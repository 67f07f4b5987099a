"""Export a ``madness-train`` run: the best weights of its three stages, with their provenance.

:func:`exportRun` reads ``RUN/vae/best.pt``, ``RUN/flow/best.pt`` and
``RUN/deblender/best.pt``, checks that they share one model configuration, and writes the TorchScript model
directory with :func:`~.export.exportModels`. The model card's ``training`` entry records,
per stage, the data (``data.json``: shard folders, kind, split, seed, galaxies), the
training configuration, the epochs run, the best epoch and validation loss, the device and
the wall time; ``recipe`` adds the commands that made it all.
"""

from __future__ import annotations

import json
import os
import platform
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .export import exportModels
from .provenance import readDataRecord
from .training import STAGES, loadCheckpointModels, stagePath

__all__ = ["stageRecord", "exportRun"]


def stageRecord(runDir: str | os.PathLike, stage: str) -> dict[str, Any]:
    """What the card says of one stage: data, training config, epochs, best loss, device, time.

    Parameters
    ----------
    runDir : `str` or `os.PathLike`
        The ``madness-train`` run (``--out``).
    stage : `str`
        ``"vae"``, ``"flow"`` or ``"deblender"``.

    Returns
    -------
    record : `dict` [`str`, object]
        ``data`` (its ``data.json``, or None), ``stageConfig``, ``epochsRun``, ``bestEpoch``,
        ``bestValidationLoss``, ``initialValidationLoss``, ``seconds`` and ``device``; the VAE adds
        ``beta``, ``ssimWarmupEpochs``, ``flip`` and ``skyVariance``, the deblender ``deblenderLatent``.

    Raises
    ------
    FileNotFoundError
        If the stage's ``metrics.json`` is missing.

    Examples
    --------
    One epoch of the flow stage, on the latents of an untrained encoder:

    >>> import tempfile, numpy as np
    >>> from lsst.meas.extensions.madness.models import Encoder, ModelConfig
    >>> from lsst.meas.extensions.madness.models.training import TrainingConfig, trainFlow
    >>> config = ModelConfig.fromProfile("tiny", bands=("g", "r"))
    >>> fast = TrainingConfig(validationStamps=4, device="cpu").withStageOverrides(epochs=1, batchSize=4)
    >>> stamps = [{"blended": np.ones((2, 45, 45), np.float32)} for _ in range(8)]
    >>> with tempfile.TemporaryDirectory() as run:
    ...     _ = trainFlow(Encoder(config), config, fast, stamps, stamps[:4], run, progress=False,
    ...                   skyVariance=[1.0, 1.0])
    ...     record = stageRecord(run, "flow")
    >>> record["epochsRun"], record["bestEpoch"], record["device"], record["data"]
    (1, 1, 'cpu', None)
    """
    directory = Path(runDir) / stage
    metricsPath = directory / "metrics.json"
    if not metricsPath.is_file():
        raise FileNotFoundError(f"{metricsPath}: missing; was `madness-train {stage} --out {runDir}` run?")
    metrics = json.loads(metricsPath.read_text())
    summary, history = metrics, metrics.get("history", [])
    training = summary.get("trainingConfig", {})
    record = {
        "data": readDataRecord(directory),
        "stageConfig": training.get(stage),
        "epochsRun": len(history),
        "bestEpoch": summary.get("bestEpoch"),
        "bestValidationLoss": summary.get("bestLoss"),
        "initialValidationLoss": summary.get("initialValLoss"),
        "seconds": round(sum(row.get("seconds", 0.0) for row in history), 1),
        "device": summary.get("device"),
    }
    if stage == "vae":
        record.update(beta=training.get("beta"), ssimWarmupEpochs=training.get("ssimWarmupEpochs"),
                      flip=training.get("flip"), skyVariance=summary.get("skyVariance"))
    if stage == "deblender":
        record["deblenderLatent"] = training.get("deblenderLatent")
    return record


def exportRun(runDir: str | os.PathLike, outDir: str | os.PathLike, recipe: Sequence[str] | None = None) -> Path:
    """Export the best weights of all three stages of ``runDir`` to ``outDir``; return the card path.

    Parameters
    ----------
    runDir : `str` or `os.PathLike`
        The ``madness-train`` run, with ``vae``, ``flow`` and ``deblender`` trained.
    outDir : `str` or `os.PathLike`
        The model directory to write (:func:`~.export.exportModels`).
    recipe : sequence of `str`, optional
        The commands that made the run, recorded in the card.

    Returns
    -------
    card : `pathlib.Path`
        ``outDir / "model_card.json"``; its ``training`` entry holds each stage's :func:`stageRecord`,
        the recipe and the machine.

    Raises
    ------
    FileNotFoundError
        A stage's ``best.pt`` or ``metrics.json`` is missing (named, with the command that makes it).
    ValueError
        The stages disagree on the model configuration.

    Examples
    --------
    The three stages for one epoch each on random stamps, then their export:

    >>> import tempfile, numpy as np
    >>> from lsst.meas.extensions.madness.models import ModelConfig, loadModels
    >>> from lsst.meas.extensions.madness.models.training import TrainingConfig, trainDeblender, trainFlow, trainVae
    >>> config = ModelConfig.fromProfile("tiny", bands=("g", "r"))
    >>> fast = TrainingConfig(validationStamps=4, device="cpu").withStageOverrides(epochs=1, batchSize=4)
    >>> stamps = [{"blended": np.ones((2, 45, 45), np.float32), "isolated": np.ones((2, 45, 45), np.float32)}
    ...           for _ in range(8)]
    >>> with tempfile.TemporaryDirectory() as run:
    ...     for train in (trainVae, trainFlow, trainDeblender):
    ...         arguments = (config, fast) if train is trainVae else (None, config, fast)
    ...         _ = train(*arguments, stamps, stamps[:4], run, progress=False, skyVariance=[1.0, 1.0])
    ...     card = exportRun(run, run + "/models", recipe=["madness-train all --out RUN"])
    ...     models = loadModels(card.parent)
    >>> models.bands, sorted(models.card["training"]["stages"]), models.card["training"]["recipe"]
    (('g', 'r'), ['deblender', 'flow', 'vae'], ['madness-train all --out RUN'])
    """
    runDir = Path(runDir)
    loaded = {}
    for stage in STAGES:
        path = stagePath(runDir, stage)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: missing; train the stage first with "
                                    f"`madness-train {stage} --out {runDir}`")
        loaded[stage] = loadCheckpointModels(path)
    config = loaded["vae"][0]
    for stage in ("flow", "deblender"):
        if loaded[stage][0] != config:
            raise ValueError(f"{stagePath(runDir, stage)} has a different model configuration from "
                             f"{stagePath(runDir, 'vae')}: retrain the {stage} stage on this VAE")
    records = {stage: stageRecord(runDir, stage) for stage in STAGES}
    vaeData = (records["vae"]["data"] or {}).get("train") or {}
    conditions = vaeData.pop("conditions", None)
    for record in records.values():
        for role in ("train", "validation"):
            if record["data"] and isinstance(record["data"].get(role), dict):
                record["data"][role].pop("conditions", None)  # stored once, as surveyConditions
    training = {
        "run": str(runDir),
        "stages": records,
        "recipe": list(recipe) if recipe is not None else None,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.system()}",
    }
    return exportModels(outDir, config, loaded["vae"][2]["encoder"], loaded["vae"][2]["decoder"],
                        loaded["flow"][2]["flow"], loaded["deblender"][2]["encoder"], conditions=conditions,
                        training=training)
