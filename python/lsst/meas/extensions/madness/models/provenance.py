"""What a training stage was trained on, written next to its checkpoints as ``data.json``.

The model card of exported models (:mod:`.export`) copies these records, so shipped weights
say which simulations, splits, seeds and how many galaxies made them.

Examples
--------
>>> describeData(None)
{'source': 'none'}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["DATA_RECORD", "describeData", "writeDataRecord", "readDataRecord"]

DATA_RECORD = "data.json"


def describeData(data: Any) -> dict[str, Any]:
    """Provenance of a training or validation data set: shards, a simulator stream, or other.

    Parameters
    ----------
    data : object
        The data set: None, a ``ConcatDataset`` of shard folders, a shard data set (``description`` and
        ``paths``), a ``SimulationStream``, or anything else (its type and length are recorded).

    Returns
    -------
    record : `dict` [`str`, object]
        JSON-serialisable: ``source`` and what it says of that kind (folders, split, seed, bands,
        conditions, number of galaxies).

    Examples
    --------
    >>> describeData([1, 2, 3])
    {'source': 'list', 'items': 3}
    """
    if data is None:
        return {"source": "none"}
    parts = getattr(data, "datasets", None)  # torch ConcatDataset of several shard folders
    if parts is not None:
        return {"source": "concatenated", "parts": [describeData(part) for part in parts], "galaxies": len(data)}
    description = getattr(data, "description", None)
    paths = getattr(data, "paths", None)
    if description is not None and paths is not None:
        record = {"source": "shards", "folders": sorted({str(Path(p).parent) for p in paths}), "files": len(paths),
                  "galaxies": len(data)}
        record.update({k: description[k] for k in ("kind", "split", "seed", "bands", "conditions")
                       if k in description})
        truth = data.truth() if hasattr(data, "truth") else None
        if truth is not None and "galtileid" in truth.colnames:
            record["uniqueGalaxies"] = int(len(np.unique(np.asarray(truth["galtileid"]))))
        return record
    dataset = getattr(data, "dataset", None)  # SimulationStream
    if dataset is not None and hasattr(dataset, "kind"):
        return {"source": "simulated on the fly", "kind": dataset.kind, "split": dataset.split,
                "seed": getattr(dataset, "seed", None), "splitGalaxies": len(dataset.galaxies),
                "conditions": dataset.renderer.conditions.model_dump(mode="json")}
    length = len(data) if hasattr(data, "__len__") else None
    return {"source": type(data).__name__, "items": length}


def writeDataRecord(stageDir: str | os.PathLike, train: Any, validation: Any) -> Path:
    """Write ``stageDir/data.json`` describing a stage's training and validation data.

    Parameters
    ----------
    stageDir : `str` or `os.PathLike`
        The stage's checkpoint directory (created if missing).
    train, validation : object
        The stage's data sets (:func:`describeData`).

    Returns
    -------
    path : `pathlib.Path`
        The file written.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as stage:
    ...     path = writeDataRecord(stage, [1, 2], None)
    ...     path.name, readDataRecord(stage)
    ('data.json', {'train': {'source': 'list', 'items': 2}, 'validation': {'source': 'none'}})
    """
    path = Path(stageDir) / DATA_RECORD
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"train": describeData(train), "validation": describeData(validation)}, indent=2)
                    + "\n")
    return path


def readDataRecord(stageDir: str | os.PathLike) -> dict[str, Any] | None:
    """The stage's ``data.json``, or None when the run did not write one.

    Parameters
    ----------
    stageDir : `str` or `os.PathLike`
        The stage's checkpoint directory.

    Returns
    -------
    record : `dict` [`str`, object] or None
        ``{"train": ..., "validation": ...}`` as :func:`writeDataRecord` wrote it.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as stage:
    ...     readDataRecord(stage) is None
    True
    """
    path = Path(stageDir) / DATA_RECORD
    return json.loads(path.read_text()) if path.is_file() else None
