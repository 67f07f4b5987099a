"""``madness-run-task``: deblend FITS files with MADNESS (or SCARLET) outside a pipeline.

::

    madness-run-task --exposure EXP.fits --catalog CAT.fits --output DIR [--config FILE]
                     [--device auto|cpu|cuda] [--plot N] [--deblender madness|scarlet] [--magzero M ...]
    madness-run-task --exposure A.fits B.fits ... --catalog a.fits b.fits ... --output DIR [--resume]
    madness-run-task --demo DIR

The inputs are the package's FITS formats (``doc/file-formats.md``): a multiband exposure and a
parent catalogue with footprints and peaks. The exposure states its calibration (``BUNIT = 'nJy'``
or ``MAGZERO``); for one that does not, ``--magzero`` gives the AB magnitude of one image unit
(one value, or one per band), and without it the exposure is refused (exit status 2). The
children's ``madness_flux_<band>`` are in nJy; their heavy footprints in the exposure's units.
``DIR`` receives

``deblendedCatalog.fits``
    the parents, flagged, then their children with heavy footprints;
``config.py``
    the full configuration used, in pex_config syntax (``--config`` takes such a file);
``metadata.json``
    timings, counts per flag, device, versions and the model card's id;
``plots/parent_<id>.png``
    with ``--plot N``: data, model, residual and children per band for the N deblended parents
    with the most children.

``metadata.json`` is written last, and every file through a temporary name that is renamed when
it is whole, so an output directory with ``metadata.json`` is complete and one without it is not
(a rerun removes ``metadata.json`` before it starts). With several exposures, each gets
``DIR/<exposure file stem>/``, and ``--resume`` skips those already complete.

``--demo DIR`` simulates an LSST-like 205×205 pixel field of 12-20 galaxies (``DIR/inputs``), deblends it with the shipped
weights, and compares the children's r-band fluxes with the truth.

Exit status: 0 when every parent was handled (deblended or skipped by rule), 1 when some parents
failed (``deblend_failed``), 2 for bad input (files, configuration, models); over several
exposures, the worst of theirs (a bad one does not stop the others).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from .afw.exposure import MultibandExposure
from .afw.table import SourceCatalog
from .deblend.baseTask import MissingBandsError
from .deblend.invariants import InputCatalogError
from .framework import ConfigLoadError
from .io.atomic import atomicPath, writeTextAtomic
from .io.errors import FitsFormatError
from .version import __version__

__all__ = ["main", "runTask", "DEBLENDERS"]

#: The deblend tasks by ``--deblender`` name (imported on use: SCARLET needs JAX, MADNESS torch).
DEBLENDERS = ("madness", "scarlet")


class InputError(Exception):
    """Bad input that the user can fix: exit status 2."""


def _taskClass(name: str):
    from .deblend import MadnessDeblendTask, ScarletDeblendTask

    return {"madness": MadnessDeblendTask, "scarlet": ScarletDeblendTask}[name]


def _read(exposurePath: Path, catalogPath: Path,
          magZero: list[float] | None = None) -> tuple[MultibandExposure, SourceCatalog]:
    try:
        mExposure = MultibandExposure.readFits(exposurePath, magZero=magZero)
        catalog = SourceCatalog.readFits(catalogPath, bbox=mExposure.getBBox())
    except (FitsFormatError, FileNotFoundError) as error:
        raise InputError(str(error)) from None
    if len(catalog) == 0:
        raise InputError(f"{catalogPath}: the catalogue has no parents")
    return mExposure, catalog


def _makeTask(deblender: str, schema, configFile: Path | None, device: str | None, progress: bool):
    TaskClass = _taskClass(deblender)
    config = TaskClass.ConfigClass()
    if configFile is not None:
        try:
            config.load(str(configFile))
        except (ConfigLoadError, FileNotFoundError, OSError) as error:
            raise InputError(f"{configFile}: {error}") from None
    if device is not None:
        if not hasattr(config, "device"):
            raise InputError(f"--device applies to MADNESS only, not --deblender {deblender}")
        config.device = device
    try:
        return TaskClass(schema, config=config, progress=progress)
    except (FileNotFoundError, ValueError) as error:  # model directory, card, device or band problems
        raise InputError(f"cannot set up {TaskClass.__name__}: {error}") from None


def _plotParents(directory: Path, mExposure: MultibandExposure, catalog: SourceCatalog, modelData, count: int) -> list[Path]:
    from .deblend import canvasCutout
    from .deblend.plots import drawBlendDiagnostics

    parents = [r for r in catalog if r.getParent() == 0 and r.getId() in modelData.blends]
    parents.sort(key=lambda r: (-r.get("deblend_nChild"), r.getId()))
    written = []
    for parent in parents[:count]:
        box = modelData.boxes[parent.getId()]
        model = modelData.blends[parent.getId()]
        image, variance, _, _ = canvasCutout(mExposure, box)
        children = np.zeros((len(model.children), *image.shape))
        for k, childImage in enumerate(model.children.images):
            children[(k, slice(None), *model.children.slices(k))] = childImage
        if modelData.toDeblender is not None:  # the models are in the deblender's units; plot the exposure's
            children /= modelData.toDeblender[None, :, None, None]
        footprint = parent.getFootprint()
        peaks = np.array([[p.getFx() - box.getMinX(), p.getFy() - box.getMinY()] for p in footprint.getPeaks()])
        title = (f"parent {parent.getId()}: {len(peaks)} peaks, {model.method}"
                 f"{' (fallback: ' + model.fallbackReason + ')' if model.fallbackReason else ''}, "
                 f"chi2/pixel {parent.get('deblend_chi2'):.2f}")
        written.append(drawBlendDiagnostics(
            directory / f"parent_{parent.getId()}.png", image, variance, children, mExposure.bands, peaks,
            title=title, childLabels=[str(c.getId()) for c in catalog.getChildren(parent.getId())],
            footprint=footprint.getSpans().asArray(box).astype(bool)))
    return written


def _versions(deblender: str) -> dict:
    versions = {"lsst-meas-extensions-madness": __version__, "python": platform.python_version(),
                "numpy": np.__version__}
    for module in ("torch", "scarlet2", "jax") if deblender == "scarlet" else ("torch",):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = None
    return versions


def _modelInfo(task) -> dict | None:
    models = getattr(task, "models", None)
    if models is None:
        return None
    card = models.directory / "model_card.json"
    return {"directory": str(models.directory), "profile": models.card.get("profile"),
            "cardSha256": hashlib.sha256(card.read_bytes()).hexdigest()}


def runTask(exposurePath: Path, catalogPath: Path, output: Path, *, configFile: Path | None = None,
            device: str | None = None, plot: int = 0, deblender: str = "madness", progress: bool = True,
            magZero: list[float] | None = None) -> dict:
    """Deblend the files and write the outputs (module docstring); returns the metadata written.

    ``magZero`` is the AB magnitude of one image unit (one, or one per band) for an exposure whose
    header states no calibration.

    Raises
    ------
    InputError
        Unreadable or malformed files (an exposure without calibration among them), a bad
        configuration file, or models that cannot be loaded.
    """
    clock = {"start": time.perf_counter()}
    output = Path(output)
    # metadata.json marks a complete output: remove an old one before anything else is rewritten.
    (output / "metadata.json").unlink(missing_ok=True)
    mExposure, catalog = _read(Path(exposurePath), Path(catalogPath), magZero)
    clock["read"] = time.perf_counter()
    task = _makeTask(deblender, catalog.schema.copy(), configFile, device, progress)
    clock["setup"] = time.perf_counter()
    try:
        # The task checks its inputs before any modelling; name the file they came from.
        result = task.run(mExposure, catalog)
    except InputCatalogError as error:
        raise InputError(f"{catalogPath}[SOURCES]: {error}") from None
    except MissingBandsError as error:
        raise InputError(f"{exposurePath}[PRIMARY]: {error}") from None
    clock["deblend"] = time.perf_counter()
    output.mkdir(parents=True, exist_ok=True)
    deblended = result.deblendedCatalog
    deblended.writeFits(output / "deblendedCatalog.fits", bbox=mExposure.getBBox())
    with atomicPath(output / "config.py") as temporary:
        task.config.save(str(temporary))
    clock["write"] = time.perf_counter()
    plots = _plotParents(output / "plots", mExposure, deblended, result.modelData, plot) if plot > 0 else []
    clock["plot"] = time.perf_counter()

    parents = deblended[:len(catalog)]
    flagColumns = [f.getName() for f in deblended.schema.getFields()
                   if f.getTypeString() == "Flag" and f.getName().startswith(("deblend_", "madness_"))]
    runtimes = parents["deblend_runtime"][np.isfinite(parents["deblend_runtime"])]
    metadata = {
        "command": sys.argv,
        "inputs": {"exposure": str(exposurePath), "catalog": str(catalogPath),
                   "nanojanskyPerImageUnit": {band: calib.getCalibrationMean()
                                              for band, calib in zip(mExposure.bands, mExposure.getPhotoCalibs())}},
        "deblender": type(task).__name__,
        "device": str(getattr(task.config, "device", "cpu")),
        "resolvedDevice": _resolvedDevice(task),
        "counts": {key: int(task.metadata[key]) for key in task.metadata if key[:1] == "n" and key[1:2].isupper()},
        "flags": {"parents": {c: int(parents[c].sum()) for c in flagColumns},
                  "children": {c: int(deblended[len(catalog):][c].sum()) for c in flagColumns}},
        "errors": sorted({str(e) for e in parents["deblend_error"] if e}),
        "missingBands": _array(task.metadata, "missingBands"),
        # Empty unless the package has a bug (deblend/invariants.py).
        "invariantViolations": _array(task.metadata, "invariantViolations"),
        "timing": {"readSeconds": clock["read"] - clock["start"], "setupSeconds": clock["setup"] - clock["read"],
                   "deblendSeconds": clock["deblend"] - clock["setup"], "writeSeconds": clock["write"] - clock["deblend"],
                   "plotSeconds": clock["plot"] - clock["write"],
                   "parentRuntimeMsMedian": float(np.median(runtimes)) if len(runtimes) else None,
                   "parentRuntimeMsMax": float(runtimes.max()) if len(runtimes) else None},
        "models": _modelInfo(task),
        "versions": _versions(deblender),
        "outputs": {"catalog": "deblendedCatalog.fits", "config": "config.py",
                    "plots": [str(p.relative_to(output)) for p in plots]},
    }
    writeTextAtomic(output / "metadata.json", json.dumps(metadata, indent=2, default=str) + "\n")
    return metadata


def _array(metadata, key: str) -> list:
    return list(metadata.getArray(key)) if key in metadata else []


def _resolvedDevice(task) -> str:
    if not hasattr(task.config, "device"):
        return "cpu (JAX)"
    from .models.device import resolveDevice

    return str(resolveDevice(task.config.device))


def _demo(directory: Path, seed: int) -> tuple[Path, Path, Path]:
    """Simulate one LSST-like field into ``directory/inputs``; its exposure, parents and truth files."""
    from .sim import SimulationConfig, TestFields, generatePopulation
    from .sim.inputs import writeFieldInputs

    config = SimulationConfig()  # the paper's test fields: 205×205 px, 12-20 galaxies
    fields = TestFields(generatePopulation(3000, seed=seed), seed=seed, config=config)
    files = writeFieldInputs(fields.make(0), fields, directory / "inputs", "demo", peaks="detected")
    print(f"Simulated a {config.fieldSize}x{config.fieldSize} px LSST-like field with {files.nGalaxies} galaxies; "
          f"detection found {files.nParents} parents with {files.nPeaks} peaks ({files.nMatched} galaxies matched)")
    return files.exposure, files.parents, files.truth


def _compareWithTruth(output: Path, truthPath: Path, exposurePath: Path) -> str:
    from .sim.inputs import MATCH_RADIUS, readFieldTruth

    truth = readFieldTruth(truthPath)
    catalog = SourceCatalog.readFits(output / "deblendedCatalog.fits")
    children = catalog[catalog["parent"] > 0]
    r = truth.bands.index("r")
    # The truth is in the exposure's units (ADU), the flux columns in nJy.
    calib = MultibandExposure.readFits(exposurePath)["r"].getPhotoCalib()
    errors = []
    for child in children:
        distance = np.hypot(truth.truth["x"] - child["deblend_peak_center_x"], truth.truth["y"] - child["deblend_peak_center_y"])
        j = int(np.argmin(distance))
        if distance[j] <= MATCH_RADIUS and np.isfinite(child["madness_flux_r"]):
            errors.append(abs(child["madness_flux_r"] / calib.instFluxToNanojansky(truth.isolated[j, r].sum()) - 1))
    if not errors:
        return "no child matched a true galaxy"
    return (f"{len(errors)} children matched to true galaxies: r-band model flux |dF/F| median "
            f"{np.median(errors):.3f}, mean {np.mean(errors):.3f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="madness-run-task", description=__doc__.splitlines()[0])
    parser.add_argument("--exposure", type=Path, nargs="+", help="multiband exposure FITS file(s)")
    parser.add_argument("--catalog", type=Path, nargs="+",
                        help="parent catalogue FITS file(s) (footprints and peaks), one per exposure")
    parser.add_argument("--output", type=Path, help="output directory (one subdirectory per exposure if several)")
    parser.add_argument("--resume", action="store_true", help="skip exposures whose output is already complete")
    parser.add_argument("--config", type=Path, help="config override file (pex_config syntax: config.maxIter = 300)")
    parser.add_argument("--device", help="torch device for MADNESS: auto (default in the config), cpu, cuda, cuda:1")
    parser.add_argument("--plot", type=int, default=0, metavar="N", help="diagnostic PNGs for N parents")
    parser.add_argument("--deblender", choices=DEBLENDERS, default="madness", help="deblend task (default madness)")
    parser.add_argument("--magzero", type=float, nargs="+", metavar="M",
                        help="AB magnitude of one image unit, for exposures whose header states no calibration "
                             "(neither BUNIT = 'nJy' nor MAGZERO): one value, or one per band in BANDS order")
    parser.add_argument("--demo", type=Path, metavar="DIR", help="simulate a small field and deblend it into DIR")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the --demo field")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.plot < 0:
        parser.error("--plot must be >= 0")
    truthPath = None
    if args.demo is not None:
        if args.exposure or args.catalog:
            parser.error("--demo simulates its own inputs: give no --exposure/--catalog")
        output = args.output or args.demo
        exposure, catalog, truthPath = _demo(args.demo, args.seed)
        jobs, plot = [(exposure, catalog, output)], args.plot or 1
    else:
        missing = [name for name in ("exposure", "catalog", "output") if getattr(args, name) is None]
        if missing:
            parser.error("missing " + ", ".join(f"--{m}" for m in missing) + " (or use --demo DIR)")
        if len(args.exposure) != len(args.catalog):
            parser.error(f"{len(args.exposure)} exposures but {len(args.catalog)} catalogues: give one catalogue "
                         "per exposure, in the same order")
        stems = [path.stem for path in args.exposure]
        if len(args.exposure) > 1 and len(set(stems)) != len(stems):
            parser.error(f"exposure file names repeat a stem ({stems}); each names its output subdirectory")
        single = len(args.exposure) == 1
        jobs = [(e, c, args.output if single else args.output / e.stem) for e, c in zip(args.exposure, args.catalog)]
        plot = args.plot
    status = 0
    for exposure, catalog, output in jobs:
        if args.resume and (output / "metadata.json").is_file():
            print(f"{output}: complete (metadata.json), skipped (--resume)")
            continue
        status = max(status, _runOne(exposure, catalog, output, args, plot, truthPath))
    return status


def _runOne(exposure: Path, catalog: Path, output: Path, args, plot: int, truthPath: Path | None) -> int:
    """Deblend one exposure for :func:`main`; its exit status."""
    start = time.perf_counter()
    try:
        metadata = runTask(exposure, catalog, output, configFile=args.config, device=args.device, plot=plot,
                           deblender=args.deblender, progress=not args.no_progress, magZero=args.magzero)
    except InputError as error:
        print(f"madness-run-task: error: {error}", file=sys.stderr)
        return 2
    counts = metadata["counts"]
    print(f"Deblended {counts['nDeblended']} of {counts['nParents']} parents into {counts['nChildren']} children "
          f"({counts['nSkipped']} skipped, {counts['nFailed']} failed, {counts['nFallback']} by the fallback) "
          f"in {time.perf_counter() - start:.1f} s on {metadata['resolvedDevice']}")
    if truthPath is not None:
        print(_compareWithTruth(output, truthPath, exposure))
    print(f"Wrote {output / 'deblendedCatalog.fits'}, {output / 'config.py'} and {output / 'metadata.json'}")
    for path in metadata["outputs"]["plots"]:
        print(f"Plot: {output / path}")
    if counts["nFailed"]:
        print(f"{counts['nFailed']} parents failed ({', '.join(metadata['errors'])}); see deblend_failed and "
              "deblend_error in the catalogue", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
