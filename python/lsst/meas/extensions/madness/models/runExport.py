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
    """What the card says of one stage: data, training config, epochs, best loss, device, time."""
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

    Raises
    ------
    FileNotFoundError
        A stage's ``best.pt`` or ``metrics.json`` is missing (named, with the command that makes it).
    ValueError
        The stages disagree on the model configuration.
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
