"""A benchmark run: TestFields through every method, one JSON line per field, resumable per field.

``DIR/run.json`` records what fixes the run (fields, seed, peaks, methods, population, versions);
``DIR/fields-<peaks>.jsonl`` gets one line per evaluated field (:func:`~.fields.evaluateField`),
written and flushed as soon as the field is done, so a run stopped at any point continues with
``resume=True`` from the first field not yet written.
"""

from __future__ import annotations

import json
import resource
import time
from pathlib import Path
from typing import Sequence

from .fields import METHODS, MODEL_METHODS, FieldMethods, evaluateField

__all__ = ["PEAK_SETTINGS", "runBenchmark", "readRun"]

PEAK_SETTINGS: tuple[str, ...] = ("truth", "detected")


def _settings(nFields: int, seed: int, peaks: Sequence[str], methods: Sequence[str], populationSize: int,
              modelDir: str | None, variants: dict[str, str]) -> dict:
    return {"nFields": int(nFields), "seed": int(seed), "peaks": list(peaks), "methods": list(methods),
            "populationSize": int(populationSize), "dataset": "TestFields", "split": "test",
            "modelDir": None if modelDir is None else str(modelDir),
            "variants": {label: str(path) for label, path in variants.items()}}


def runBenchmark(directory: str | Path, nFields: int, *, peaks: Sequence[str] = PEAK_SETTINGS,
                 methods: Sequence[str] = METHODS, seed: int = 0, populationSize: int = 120_000,
                 resume: bool = False, device: str = "auto", progress: bool = True,
                 compilationCacheDir: str | Path | None = None, modelDir: str | Path | None = None,
                 variants: dict[str, str | Path] | None = None) -> Path:
    """Evaluate fields ``0 .. nFields-1`` for each peak setting into ``directory`` (module docstring).

    ``modelDir`` is the MADNESS model directory (default: the shipped weights). ``variants`` maps
    labels to more model directories: each adds ``vae:LABEL``, ``madness:LABEL`` and
    ``fidelity:LABEL`` beside whichever of those ``methods`` has. Both are recorded in the run.

    ``compilationCacheDir`` is SCARLET's JAX compilation cache (``ScarletDeblendConfig``): it changes
    SCARLET's speed, not its results, so a run may be resumed with or without it. Each field records
    whether it was used.

    Raises
    ------
    FileExistsError
        ``directory`` holds a run and ``resume`` is False.
    ValueError
        ``resume`` with settings other than the stored run's.
    """
    from tqdm.auto import tqdm

    from ..sim import TestFields, generatePopulation

    directory = Path(directory)
    variants = {label: str(path) for label, path in (variants or {}).items()}
    methods = list(methods) + [f"{m}:{label}" for label in variants for m in methods if m in MODEL_METHODS]
    settings = _settings(nFields, seed, peaks, methods, populationSize, modelDir, variants)
    runFile = directory / "run.json"
    if runFile.exists():
        if not resume:
            raise FileExistsError(f"{runFile} exists: continue that run with --resume, or give another directory")
        stored = json.loads(runFile.read_text())["settings"]
        different = {k: (stored.get(k), v) for k, v in settings.items() if k != "nFields" and stored.get(k) != v}
        if different:
            raise ValueError(f"{runFile}: --resume with other settings than the stored run's: {different}")
    directory.mkdir(parents=True, exist_ok=True)
    from ..version import __version__

    runFile.write_text(json.dumps({"settings": settings, "package": __version__}, indent=2) + "\n")
    fields = TestFields(generatePopulation(populationSize, seed=seed), seed=seed)
    cacheDir = None if compilationCacheDir is None else str(compilationCacheDir)
    deblenders = FieldMethods(methods, device=device, compilationCacheDir=cacheDir,
                              modelDir=None if modelDir is None else str(modelDir), variants=variants)
    for setting in peaks:
        path = directory / f"fields-{setting}.jsonl"
        _dropPartialLine(path)
        done = {record["index"] for record in _lines(path)}
        todo = [i for i in range(nFields) if i not in done]
        with path.open("a") as stream:
            for index in tqdm(todo, desc=f"fields ({setting} peaks)", unit="field", disable=not progress):
                start = time.perf_counter()
                record = evaluateField(fields.make(index), fields, deblenders, peaks=setting)
                record["wallSeconds"] = time.perf_counter() - start
                record["compilationCache"] = cacheDir is not None
                record["maxRssMB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                stream.write(json.dumps(record) + "\n")
                stream.flush()
    return directory


def _dropPartialLine(path: Path) -> None:
    """Cut a last line left unfinished by a killed run, so that appending starts on a new line."""
    if path.exists():
        text = path.read_text()
        if text and not text.endswith("\n"):
            path.write_text(text[: text.rfind("\n") + 1])


def _lines(path: Path) -> list[dict]:
    if not path.exists():
        return []
    records = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            # A run killed mid-write leaves a partial last line; that field is evaluated again.
            if number != len(path.read_text().splitlines()):
                raise ValueError(f"{path} line {number} is not valid JSON") from None
    return records


def readRun(directory: str | Path) -> tuple[dict, dict[str, list[dict]]]:
    """The run's settings and, per peak setting, its field records (in field order, one per field)."""
    directory = Path(directory)
    runFile = directory / "run.json"
    if not runFile.exists():
        raise FileNotFoundError(f"{runFile}: not a benchmark run directory (made by `madness-bench run`)")
    settings = json.loads(runFile.read_text())["settings"]
    records = {}
    for setting in settings["peaks"]:
        byIndex = {r["index"]: r for r in _lines(directory / f"fields-{setting}.jsonl")}
        records[setting] = [byIndex[i] for i in sorted(byIndex)]
    return settings, records
