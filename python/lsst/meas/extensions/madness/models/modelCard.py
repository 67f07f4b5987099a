"""The model card of a model directory: its name and format, reading it, editing its entries.

``model_card.json`` (:func:`~.export.exportModels` writes it, :func:`~.export.loadModels` checks the
networks against it) records the bands, stamp size, normalisation, survey conditions, model config,
training provenance and validation metrics of the networks, with the SHA-256 and size of each file.
This module reads and checks the card (:class:`ModelCardError` says what does not match), digests
the files (:func:`sha256`), replaces its free-form entries without touching the networks
(:func:`updateModelCard`), and names the bands its validation calls weak (:func:`weakBands`).
It needs nothing but the standard library.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

__all__ = [
    "ModelCardError",
    "sha256",
    "updateModelCard",
    "weakBands",
    "WEAK_BAND_COSINE",
]

#: File name of the model card in a model directory.
CARD_NAME = "model_card.json"
#: The card format this version reads and writes.
CARD_FORMAT = 1


class ModelCardError(ValueError):
    """A model directory whose card or files do not match what is asked for; says which."""


def sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file.

    Parameters
    ----------
    path : `str` or `os.PathLike`
        The file, read in 1 MiB blocks.

    Returns
    -------
    digest : `str`
        64 lower-case hexadecimal digits.

    Examples
    --------
    >>> import tempfile
    >>> with tempfile.NamedTemporaryFile() as stream:
    ...     sha256(stream.name)
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
    """
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _readCard(directory: Path) -> dict:
    path = directory / CARD_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no model card; model directories are written by "
                                "`madness-models export RUN --to DIR` (or exportModels)")
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ModelCardError(f"{path}: not valid JSON ({error})") from None
    for key in ("format", "bands", "stampSize", "latentDim", "normalisation", "files"):
        if key not in card:
            raise ModelCardError(f"{path}: model card lacks {key!r}")
    if card["format"] != CARD_FORMAT:
        raise ModelCardError(f"{path}: model card format {card['format']} is not the supported {CARD_FORMAT}")
    return card


#: Held-out mean cosine similarity below which a band is called weak.
WEAK_BAND_COSINE = 0.9


def weakBands(card: Mapping[str, Any]) -> list[str]:
    """Bands whose model-frame validation (card ``validation.modelFrame.perBand``) has a mean cosine
    below :data:`WEAK_BAND_COSINE`, or that it lists as dead; empty for cards without those metrics.

    Parameters
    ----------
    card : mapping
        A model card (``MadnessModels.card``, or the parsed ``model_card.json``).

    Returns
    -------
    bands : `list` [`str`]
        The weak bands, then the dead bands not already listed.

    Examples
    --------
    >>> card = {"validation": {"modelFrame": {"perBand": {"u": {"meanCosine": 0.8}, "g": {"meanCosine": 0.97}},
    ...                                       "deadBands": ["y"]}}}
    >>> weakBands(card), weakBands({})
    (['u', 'y'], [])
    """
    frame = (card.get("validation") or {}).get("modelFrame") or {}
    perBand = frame.get("perBand") or {}
    weak = [band for band, m in perBand.items() if float(m.get("meanCosine", 1.0)) < WEAK_BAND_COSINE]
    return weak + [band for band in frame.get("deadBands", []) if band not in weak]

def updateModelCard(directory: str | os.PathLike, **entries: Any) -> Path:
    """Replace top-level entries of a model card (e.g. ``validation``) without touching the networks.

    The card's checksums cover the network files only, so the card stays valid.

    Parameters
    ----------
    directory : `str` or `os.PathLike`
        A model directory.
    **entries
        Top-level card entries to set (``validation``, ``map``, ``logPriorQuantiles``, ...), JSON-serialisable.

    Returns
    -------
    card : `pathlib.Path`
        The rewritten ``model_card.json``.

    Raises
    ------
    ValueError
        For an entry that describes the networks themselves (``bands``, ``stampSize``, ``files``, ...).

    Examples
    --------
    >>> import tempfile
    >>> from lsst.meas.extensions.madness.models import (Decoder, Encoder, ModelConfig, exportModels, loadModels,
    ...     makeFlow)
    >>> config = ModelConfig.fromProfile("tiny", bands=("g", "r"))
    >>> tmp = tempfile.TemporaryDirectory()
    >>> card = exportModels(tmp.name, config, Encoder(config), Decoder(config), makeFlow(config), Encoder(config))
    >>> _ = updateModelCard(tmp.name, map={"lr": 0.05})
    >>> loadModels(tmp.name).mapLearningRate
    0.05
    >>> tmp.cleanup()
    """
    directory = Path(directory)
    card = _readCard(directory)
    unknown = {"format", "bands", "stampSize", "latentDim", "normalisation", "files", "modelConfig"} & set(entries)
    if unknown:
        raise ValueError(f"{sorted(unknown)} describe the networks themselves; re-export instead of editing them")
    card.update(entries)
    path = directory / CARD_NAME
    path.write_text(json.dumps(card, indent=2, sort_keys=False) + "\n")
    return path
