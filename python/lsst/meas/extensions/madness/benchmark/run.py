"""A benchmark run: TestFields through every method, one JSON line per field, resumable per field.

``DIR/run.json`` records what fixes the run (fields, seed, peaks, methods, population, versions);
``DIR/fields-<peaks>.jsonl`` gets one line per evaluated field (:func:`~.fields.evaluateField`),
written and flushed as soon as the field is done, so a run stopped at any point continues with
``resume=True`` from the first field not yet written.

A model set can join a run afterwards: ``resume=True`` with a new variant label evaluates only
that set's methods on the fields already done, into ``DIR/fields-<peaks>+<label>.jsonl``, and
:func:`readRun` merges those lines into the field records. Retrained weights are then compared
with SCARLET and the shipped weights on the same fields without running those again. The
methods' accuracy is unaffected; their seconds per field were measured at different times, which
``run.json`` records (``additions``).

Other observations: ``psfScale`` multiplies every band's PSF FWHM and ``pixelScale`` sets the pixel
side (arcsec) of the simulated fields (:func:`benchmarkFields`). The fields keep their area on the
sky, their galaxies and their depth; only how they are observed changes.
"""

from __future__ import annotations

import functools
import json
import resource
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from .fields import METHODS, MODEL_METHODS, FieldMethods, evaluateField

__all__ = ["PEAK_SETTINGS", "benchmarkFields", "runBenchmark", "readRun"]

PEAK_SETTINGS: tuple[str, ...] = ("truth", "detected")

#: Settings a run made before they existed had, and their meaning: LSST's PSFs and pixels.
_NOMINAL = {"psfScale": 1.0, "pixelScale": None, "firstField": 0}


def benchmarkFields(populationSize: int, seed: int, psfScale: float = 1.0, pixelScale: float | None = None):
    """The test fields of a run: LSST's (``sim.survey.LSST_CONDITIONS``), with every band's PSF FWHM
    times ``psfScale`` and pixels of ``pixelScale`` arcsec (None: LSST's 0.2).

    On other pixels the fields, the galaxies' stamps and how far they are drawn keep their size in
    arcsec (:func:`~..deblend.observation.exposureStampSize`), so the same galaxies at the same
    places are observed.
    """
    from ..deblend.observation import exposureStampSize
    from ..sim import TestFields, generatePopulation
    from ..sim.datasets import SimulationConfig
    from ..sim.survey import LSST_CONDITIONS

    if not (psfScale > 0 and (pixelScale is None or pixelScale > 0)):
        raise ValueError(f"psfScale and pixelScale must be positive, got {psfScale} and {pixelScale}")
    conditions = LSST_CONDITIONS.model_copy(update={
        "bands": {name: band.model_copy(update={"psfFwhm": band.psfFwhm * psfScale})
                  for name, band in LSST_CONDITIONS.bands.items()},
        "pixelScale": LSST_CONDITIONS.pixelScale if pixelScale is None else pixelScale})
    ratio = conditions.pixelScale / LSST_CONDITIONS.pixelScale
    nominal = SimulationConfig()
    config = nominal.model_copy(update={
        "stampSize": exposureStampSize(nominal.stampSize, ratio),
        "fieldSize": int(round(nominal.fieldSize / ratio)),
        "fieldInnerSize": int(round(nominal.fieldInnerSize / ratio)),
        "maxRadius": int(round(nominal.maxRadius / ratio))})
    return TestFields(generatePopulation(populationSize, seed=seed), seed=seed, conditions=conditions, config=config)


def _settings(nFields: int, seed: int, peaks: Sequence[str], methods: Sequence[str], populationSize: int,
              modelDir: str | Path | None, variants: Mapping[str, str | Path], psfScale: float = 1.0,
              pixelScale: float | None = None, firstField: int = 0) -> dict:
    return {"nFields": int(nFields), "firstField": int(firstField), "seed": int(seed), "peaks": list(peaks),
            "methods": list(methods),
            "populationSize": int(populationSize), "dataset": "TestFields", "split": "test",
            "modelDir": None if modelDir is None else str(modelDir),
            "variants": {label: str(path) for label, path in variants.items()},
            "psfScale": float(psfScale), "pixelScale": None if pixelScale is None else float(pixelScale)}


def runBenchmark(directory: str | Path, nFields: int, *, peaks: Sequence[str] = PEAK_SETTINGS,
                 methods: Sequence[str] = METHODS, seed: int = 0, populationSize: int = 120_000,
                 resume: bool = False, device: str = "auto", progress: bool = True,
                 compilationCacheDir: str | Path | None = None, modelDir: str | Path | None = None,
                 variants: Mapping[str, str | Path] | None = None, psfScale: float = 1.0,
                 pixelScale: float | None = None, firstField: int = 0) -> Path:
    """Evaluate fields ``firstField .. firstField+nFields-1`` for each peak setting into ``directory``
    (module docstring). Fields from another ``firstField`` (e.g. 3000) are independent of the
    default test fields, for choosing settings without looking at the fields they are reported on.

    ``modelDir`` is the MADNESS model directory (default: the shipped weights). ``variants`` maps
    labels to more model directories: each adds ``vae:LABEL``, ``madness:LABEL`` and
    ``fidelity:LABEL`` beside whichever of those ``methods`` has. Both are recorded in the run.

    ``psfScale`` and ``pixelScale`` observe the fields otherwise (:func:`benchmarkFields`).

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
    directory = Path(directory)
    variants = {label: str(path) for label, path in (variants or {}).items()}
    runFile = directory / "run.json"
    stored = json.loads(runFile.read_text()) if runFile.exists() else None
    if stored is not None and not resume:
        raise FileExistsError(f"{runFile} exists: continue that run with --resume, or give another directory")
    added, changed = {}, {}
    if stored is not None:
        # Labels the stored run lacks join it; the methods given are the stored ones.
        known = stored["settings"]["variants"]
        added = {label: path for label, path in variants.items() if label not in known}
        changed = {label: (known[label], path) for label, path in variants.items()
                   if label in known and known[label] != path}
        variants = {**known, **added}
        methods = [m for m in stored["settings"]["methods"] if ":" not in m]
    methods = list(methods) + [f"{m}:{label}" for label in variants for m in methods if m in MODEL_METHODS]
    if firstField < 0:
        raise ValueError(f"firstField must be >= 0, got {firstField}")
    settings = _settings(nFields, seed, peaks, methods, populationSize, modelDir, variants, psfScale, pixelScale,
                         firstField)
    from ..version import __version__

    run = {"settings": settings, "package": __version__, "additions": []}
    if stored is not None:
        before = {**_NOMINAL, **stored["settings"]}
        different = {k: (before.get(k), v) for k, v in settings.items()
                     if k not in ("nFields", "methods", "variants") and before.get(k) != v}
        if different or changed:
            raise ValueError(f"{runFile}: --resume with other settings than the stored run's: {different or changed}")
        run["additions"] = stored.get("additions", []) + [
            {"label": label, "directory": path, "package": __version__, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
            for label, path in added.items()]
    directory.mkdir(parents=True, exist_ok=True)
    runFile.write_text(json.dumps(run, indent=2) + "\n")
    fields = benchmarkFields(populationSize, seed, psfScale, pixelScale)
    cacheDir = None if compilationCacheDir is None else str(compilationCacheDir)
    # Deblenders are set up (models loaded, SCARLET imported) only when a field needs them.
    everything = functools.cache(lambda: FieldMethods(methods, device=device, compilationCacheDir=cacheDir,
                                                      modelDir=None if modelDir is None else str(modelDir),
                                                      variants=variants))
    for setting in peaks:
        path = directory / f"fields-{setting}.jsonl"
        for addition in run["additions"]:
            label = addition["label"]
            missing = [r["index"] for r in _lines(path) if not _has(r, label)]
            only = functools.partial(FieldMethods, [m for m in methods if m.endswith(f":{label}")], device=device,
                                     variants={label: variants[label]})
            _evaluate(directory / f"fields-{setting}+{label}.jsonl", missing, fields, only, setting, cacheDir,
                      f"fields ({setting} peaks, adding {label})", progress)
        _evaluate(path, range(firstField, firstField + nFields), fields, everything, setting, cacheDir,
                  f"fields ({setting} peaks)", progress)
    return directory


def _evaluate(path: Path, indices, fields, makeMethods, setting: str, cacheDir: str | None, description: str,
              progress: bool) -> None:
    """Append to ``path`` one record per field of ``indices`` that it lacks, with the deblenders
    ``makeMethods()`` sets up (called only if a field is left)."""
    from tqdm.auto import tqdm

    _dropPartialLine(path)
    done = {record["index"] for record in _lines(path)}
    todo = [i for i in indices if i not in done]
    if not todo:
        return
    deblenders = makeMethods()
    with path.open("a") as stream:
        for index in tqdm(todo, desc=description, unit="field", disable=not progress):
            start = time.perf_counter()
            record = evaluateField(fields.make(index), fields, deblenders, peaks=setting)
            record["wallSeconds"] = time.perf_counter() - start
            record["compilationCache"] = cacheDir is not None
            record["maxRssMB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            stream.write(json.dumps(record) + "\n")
            stream.flush()


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
    stored = json.loads(runFile.read_text())
    settings = stored["settings"]
    records = {}
    for setting in settings["peaks"]:
        byIndex = {r["index"]: r for r in _lines(directory / f"fields-{setting}.jsonl")}
        for addition in stored.get("additions", []):
            path = directory / f"fields-{setting}+{addition['label']}.jsonl"
            for extra in _lines(path):
                if extra["index"] in byIndex:
                    _merge(byIndex[extra["index"]], extra, path)
            # Every method is compared on the same fields: those the label has not reached yet wait.
            byIndex = {i: r for i, r in byIndex.items() if _has(r, addition["label"])}
        records[setting] = [byIndex[i] for i in sorted(byIndex)]
    return settings, records


def _has(record: dict, label: str) -> bool:
    """Whether a field record holds the methods of model set ``label``."""
    return any(method.endswith(f":{label}") for method in record["seconds"])


def _merge(record: dict, extra: dict, path: Path) -> None:
    """Add the methods of ``extra`` (a line of an addition file) to the field ``record``."""
    if extra["nGalaxies"] != record["nGalaxies"]:
        raise ValueError(f"{path}: field {record['index']} has {extra['nGalaxies']} galaxies there and "
                         f"{record['nGalaxies']} in the run")
    record["seconds"].update(extra["seconds"])
    for galaxy, more in zip(record["galaxies"], extra["galaxies"]):
        galaxy.update({k: v for k, v in more.items() if k in extra["seconds"]})
