"""``madness-run-task``: deblend FITS files with MADNESS (or SCARLET) outside a pipeline.

::

    madness-run-task --exposure EXP.fits --catalog CAT.fits --output DIR [--config FILE]
                     [--device auto|cpu|cuda] [--plot N] [--deblender madness|scarlet] [--magzero M ...]
                     [--threads auto|N] [--log-level DEBUG|INFO|WARNING|ERROR]
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
``modelData.fits``
    every deblended parent's models: each child's full model stamp in the exposure's units
    (and, for MADNESS children, its latent), which
    :meth:`~lsst.meas.extensions.madness.deblend.blendModel.ModelData.renderChild` draws again
    without the networks (:mod:`~lsst.meas.extensions.madness.io.modelDataFits`);
``config.py``
    the full configuration used, in pex_config syntax (``--config`` takes such a file);
``metadata.json``
    timings, counts per flag, device, versions and the model card's id;
``plots/parent_<id>.png``
    with ``--plot N``: data, model, residual and children per band for the N deblended parents
    with the most children.

``metadata.json`` is written last, and every file through a temporary name that is renamed when
it is whole, so an output directory with ``metadata.json`` is complete and one without it is not.
A run holds its output directory (a lock file naming its PID, host and start time; a second run
there exits with status 2), checks all its inputs, and only then removes the old
``metadata.json``, the old plots and the temporary files of killed runs. With several exposures,
each gets ``DIR/<exposure file stem>/``, and ``--resume`` skips those already complete.

``--demo DIR`` simulates an LSST-like 205×205 pixel field of 12-20 galaxies (``DIR/inputs``), deblends it
with the shipped weights, and compares the children's r-band fluxes with the truth.

``--threads`` sets the CPU threads of torch (and of JAX for SCARLET). The default, ``auto``, uses
the cores the rest of the machine leaves idle, at most two, or ``OMP_NUM_THREADS`` when the
environment sets it (:mod:`.models.threads` gives the rule and the measurement behind it).

The tasks' log messages go to standard error as ``<logger> <LEVEL>: <message>`` lines (for
example ``lsst.madnessDeblend INFO: ...``, as LSST's ``pipetask`` writes them), from ``--log-level``
up (default ``INFO``); the summary and the files written go to standard output.

Exit status: 0 when every parent was handled (deblended or skipped by rule), 1 when some parents
failed (``deblend_failed``), 2 for bad input (files, configuration, models, device, an output
directory that cannot be written or that another run holds); over several exposures, the worst of
theirs (a bad one does not stop the others). A plot that fails is reported, not fatal.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import hashlib
import json
import platform
import re
import sys
import time
from pathlib import Path

import numpy as np

from .afw.exposure import MultibandExposure
from .afw.table import SourceCatalog
from .deblend.baseTask import MissingBandsError
from .deblend.invariants import InputCatalogError, UnknownMaskPlaneError, checkInputCatalog, checkMaskPlanes
from .framework import LOG_LEVELS, ConfigLoadError, consoleLogging
from .io.atomic import OutputLockedError, atomicPath, lockDirectory, removeStalePartials, writeTextAtomic
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
    try:
        # The task checks it again; here it is checked before the old output is touched.
        checkInputCatalog(catalog, mExposure.getBBox())
    except InputCatalogError as error:
        raise InputError(f"{catalogPath}[SOURCES]: {error}") from None
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


#: The names of the plots this command writes in ``plots/``; only these are removed as stale.
_PLOT_NAME = re.compile(r"^parent_-?[0-9]+\.png$")


def _plotParents(directory: Path, mExposure: MultibandExposure, catalog: SourceCatalog, modelData,
                 count: int) -> tuple[list[Path], list[dict]]:
    """Diagnostic PNGs of the ``count`` deblended parents with the most children; the plots written and,
    for each parent whose plot failed, its id and error (a plot is a diagnostic: it never fails the run)."""
    parents = [r for r in catalog if r.getParent() == 0 and r.getId() in modelData.blends]
    parents.sort(key=lambda r: (-r.get("deblend_nChild"), r.getId()))
    written, failures = [], []
    for parent in parents[:count]:
        try:
            written.append(_plotParent(directory, mExposure, catalog, modelData, parent))
        except Exception as error:  # noqa: BLE001 - the catalogue is written; a plot must not lose it
            message = f"{type(error).__name__}: {error}"
            print(f"madness-run-task: warning: no plot of parent {parent.getId()}: {message}", file=sys.stderr)
            failures.append({"parent": parent.getId(), "error": message})
    return written, failures


def _plotParent(directory: Path, mExposure: MultibandExposure, catalog: SourceCatalog, modelData, parent) -> Path:
    from .deblend import canvasCutout
    from .deblend.plots import drawBlendDiagnostics

    box = modelData.boxes[parent.getId()]
    model = modelData.blends[parent.getId()]
    # The models hold the deblender's bands in its order; the exposure may lack some (they were given no
    # weight) or order them otherwise: plot the bands both have, in the models' order.
    bands = [band for band in modelData.bands if band in mExposure.bands]
    inModels = [modelData.bands.index(band) for band in bands]
    image, variance, _, _ = canvasCutout(mExposure[bands], box)
    children = np.zeros((len(model.children), len(modelData.bands), *image.shape[1:]))
    for k, childImage in enumerate(model.children.images):
        children[(k, slice(None), *model.children.slices(k))] = childImage
    children = children[:, inModels]
    if modelData.toDeblender is not None:  # the models are in the deblender's units; plot the exposure's
        children /= np.asarray(modelData.toDeblender)[inModels][None, :, None, None]
    footprint = parent.getFootprint()
    peaks = np.array([[p.getFx() - box.getMinX(), p.getFy() - box.getMinY()] for p in footprint.getPeaks()])
    title = (f"parent {parent.getId()}: {len(peaks)} peaks, {model.method}"
             f"{' (fallback: ' + model.fallbackReason + ')' if model.fallbackReason else ''}, "
             f"chi2/pixel {parent.get('deblend_chi2'):.2f}")
    return drawBlendDiagnostics(
        directory / f"parent_{parent.getId()}.png", image, variance, children, bands, peaks,
        title=title, childLabels=[str(c.getId()) for c in catalog.getChildren(parent.getId())],
        footprint=footprint.getSpans().asArray(box).astype(bool))


def _versions(deblender: str) -> dict:
    versions: dict[str, str | None] = {"lsst-meas-extensions-madness": __version__, "python": platform.python_version(),
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
            magZero: list[float] | None = None, threads: int | None = None) -> dict:
    """Deblend the files and write the outputs (module docstring); returns the metadata written.

    ``magZero`` is the AB magnitude of one image unit (one, or one per band) for an exposure whose
    header states no calibration. ``threads`` is the CPU thread count to compute with (None: the
    process's own setting).

    Everything is checked before the output directory's old content is touched: the directory
    (created if need be, and locked for this run), the files, the configuration, the models and
    the bands. Only then are the old completion marker (``metadata.json``), plots and temporary
    files of killed writers removed, and the deblending starts.

    Raises
    ------
    InputError
        An output directory that cannot be created or written, or that another run holds;
        unreadable or malformed files (an exposure without calibration among them); a bad
        configuration file (mask planes the exposure does not know among them); or models that
        cannot be loaded.
    """
    clock = {"start": time.perf_counter(), "threads": threads}
    output = Path(output)
    with contextlib.ExitStack() as held:
        _makeOutputDirectory(output)
        try:
            held.enter_context(lockDirectory(output, warn=_warn))
        except OutputLockedError as error:
            raise InputError(str(error)) from None
        except OSError as error:
            raise InputError(f"{output}: cannot write in the output directory ({error.strerror or error})") from None
        mExposure, catalog = _read(Path(exposurePath), Path(catalogPath), magZero)
        clock["read"] = time.perf_counter()
        task = _makeTask(deblender, catalog.schema.copy(), configFile, device, progress)
        _checkTaskInputs(task, mExposure, Path(exposurePath))
        clock["setup"] = time.perf_counter()
        _clearOutput(output)
        if threads is not None:
            from .models.threads import useThreads

            held.enter_context(useThreads(threads))
        return _deblend(task, mExposure, catalog, Path(exposurePath), Path(catalogPath), output, plot, deblender,
                        clock)


def _warn(message: str) -> None:
    print(f"madness-run-task: warning: {message}", file=sys.stderr)


def _makeOutputDirectory(output: Path) -> None:
    """Create ``output`` (and its parents) if need be; :class:`InputError` naming it if that cannot be."""
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        reason = error.strerror or str(error)
        if error.filename is not None and str(error.filename) != str(output):
            reason = f"{error.filename}: {reason}"  # a parent that could not be made
        try:
            output.stat()
        except OSError as statError:
            if statError.errno != errno.ENOENT:  # a symbolic-link loop says so here, mkdir only that it exists
                reason = statError.strerror or str(statError)
        else:
            if not output.is_dir():
                reason = "it exists and is not a directory"
        raise InputError(f"{output}: cannot be the output directory: {reason}") from None


def _checkTaskInputs(task, mExposure: MultibandExposure, exposurePath: Path) -> None:
    """What the task would refuse only once running: the bands and the config's mask planes."""
    absent = [band for band in task.bands if band not in mExposure.bands]
    if absent and (task.config.missingBands == "raise" or len(absent) == len(task.bands)):
        raise InputError(f"{exposurePath}[PRIMARY]: {type(task).__name__} needs bands {list(task.bands)}; the "
                         f"exposure has {list(mExposure.bands)} (missing {absent}; config.missingBands="
                         f"{task.config.missingBands!r})")
    planes = {"badMask": task.config.badMask, "maskLimits": list(task.config.maskLimits)}
    fallback = getattr(task, "fallback", None)
    if fallback is not None:
        planes.update({"fallback.badMask": fallback.config.badMask,
                       "fallback.maskLimits": list(fallback.config.maskLimits)})
    try:
        checkMaskPlanes(planes, mExposure.mask)
    except UnknownMaskPlaneError as error:
        raise InputError(f"{exposurePath}[MASK]: {error}") from None


def _clearOutput(output: Path) -> None:
    """Remove what a previous run left that this one would not replace, once all inputs are checked.

    ``metadata.json`` marks a complete output, so it goes first; then the hidden temporary files of
    writers that were killed, and the plots this command wrote (a run without ``--plot`` must not leave
    them beside its new catalogue).
    """
    (output / "metadata.json").unlink(missing_ok=True)
    plots = output / "plots"
    for directory in (output, plots):
        for path in removeStalePartials(directory):
            _warn(f"removed {path}, a file left half-written by a run that was killed")
    if plots.is_dir():
        for path in plots.iterdir():
            if _PLOT_NAME.match(path.name) and path.is_file():
                path.unlink()
        with contextlib.suppress(OSError):  # left if it holds files of the user's
            plots.rmdir()


def _deblend(task, mExposure: MultibandExposure, catalog: SourceCatalog, exposurePath: Path, catalogPath: Path,
             output: Path, plot: int, deblender: str, clock: dict) -> dict:
    try:
        # The task checks its inputs before any modelling; name the file they came from.
        result = task.run(mExposure, catalog)
    except InputCatalogError as error:
        raise InputError(f"{catalogPath}[SOURCES]: {error}") from None
    except MissingBandsError as error:
        raise InputError(f"{exposurePath}[PRIMARY]: {error}") from None
    clock["deblend"] = time.perf_counter()
    deblended = result.deblendedCatalog
    deblended.writeFits(output / "deblendedCatalog.fits", bbox=mExposure.getBBox())
    result.modelData.writeFits(output / "modelData.fits")
    with atomicPath(output / "config.py") as temporary:
        task.config.save(str(temporary))
    clock["write"] = time.perf_counter()
    plots, plotErrors = (_plotParents(output / "plots", mExposure, deblended, result.modelData, plot)
                         if plot > 0 else ([], []))
    clock["plot"] = time.perf_counter()

    parents = deblended[:len(catalog)]
    flagColumns = [f.getName() for f in deblended.schema.getFields()
                   if f.getTypeString() == "Flag" and f.getName().startswith(("deblend_", "madness_"))]
    runtimes = parents["deblend_runtime"][np.isfinite(parents["deblend_runtime"])]
    metadata = {
        "command": sys.argv,
        "inputs": {"exposure": str(exposurePath), "catalog": str(catalogPath),
                   "nanojanskyPerImageUnit": {band: None if calib is None else calib.getCalibrationMean()
                                              for band, calib in zip(mExposure.bands, mExposure.getPhotoCalibs())}},
        "deblender": type(task).__name__,
        "device": str(getattr(task.config, "device", "cpu")),
        "resolvedDevice": _resolvedDevice(task),
        "threads": clock["threads"],
        "counts": {key: int(task.metadata[key]) for key in task.metadata if key[:1] == "n" and key[1:2].isupper()},
        "flags": {"parents": {c: int(parents[c].sum()) for c in flagColumns},
                  "children": {c: int(deblended[len(catalog):][c].sum()) for c in flagColumns}},
        "errors": sorted({str(e) for e in parents["deblend_error"] if e}),
        "missingBands": _array(task.metadata, "missingBands"),
        # Empty unless the package has a bug (deblend/invariants.py).
        "invariantViolations": _array(task.metadata, "invariantViolations"),
        "timing": {"readSeconds": clock["read"] - clock["start"], "setupSeconds": clock["setup"] - clock["read"],
                   "deblendSeconds": clock["deblend"] - clock["setup"],
                   "writeSeconds": clock["write"] - clock["deblend"],
                   "plotSeconds": clock["plot"] - clock["write"],
                   "parentRuntimeMsMedian": float(np.median(runtimes)) if len(runtimes) else None,
                   "parentRuntimeMsMax": float(runtimes.max()) if len(runtimes) else None},
        "models": _modelInfo(task),
        "versions": _versions(deblender),
        "outputs": {"catalog": "deblendedCatalog.fits", "modelData": "modelData.fits", "config": "config.py",
                    "plots": [str(p.relative_to(output)) for p in plots]},
        # Plots that failed (parent id and error); the run goes on without them.
        "plotErrors": plotErrors,
    }
    writeTextAtomic(output / "metadata.json", json.dumps(metadata, indent=2, default=str) + "\n")
    return metadata


def _array(metadata, key: str) -> list:
    return list(metadata.getArray(key)) if key in metadata else []


def _resolvedDevice(task) -> str:
    """Where the task's networks ran: their own device (``task.models.device``), not resolved again."""
    if not hasattr(task.config, "device"):
        return "cpu (JAX)"
    return str(task.models.device)


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
        distance = np.hypot(truth.truth["x"] - child["deblend_peak_center_x"],
                            truth.truth["y"] - child["deblend_peak_center_y"])
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
    parser.add_argument("--config", type=Path,
                        help="config of the deblend task: a .py override file (pex_config syntax, config.maxIter = "
                             "300; trusted code, runs as Python) or a .yaml/.yml/.json data config (maxIter: 300; "
                             "runs no code)")
    parser.add_argument("--device", help="torch device for MADNESS: auto (default in the config), cpu, cuda, cuda:1")
    parser.add_argument("--plot", type=int, default=0, metavar="N", help="diagnostic PNGs for N parents")
    parser.add_argument("--deblender", choices=DEBLENDERS, default="madness", help="deblend task (default madness)")
    parser.add_argument("--magzero", type=float, nargs="+", metavar="M",
                        help="AB magnitude of one image unit, for exposures whose header states no calibration "
                             "(neither BUNIT = 'nJy' nor MAGZERO): one value, or one per band in BANDS order")
    parser.add_argument("--demo", type=Path, metavar="DIR", help="simulate a small field and deblend it into DIR")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the --demo field")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("--threads", default="auto", metavar="N",
                        help="CPU threads for torch (and JAX): auto (default; the idle cores, at most 2, or "
                             "OMP_NUM_THREADS when set) or a positive integer")
    parser.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, default="INFO", metavar="LEVEL",
                        help="lowest level of the log messages shown: DEBUG, INFO (default), WARNING or ERROR "
                             "(also TRACE, VERBOSE, CRITICAL)")
    args = parser.parse_args(argv)
    with consoleLogging(args.log_level):
        return _main(parser, args)


def _main(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    """The body of :func:`main`, with the console logging set up; the exit status."""
    if args.plot < 0:
        parser.error("--plot must be >= 0")
    if args.device is not None:
        from .models.device import resolveDevice

        # Before any file is read: torch's own error would come only when the models load.
        try:
            resolveDevice(args.device)
        except ValueError as error:
            parser.error(f"--device {args.device!r}: {error}")
    from .models.threads import chooseThreads

    try:
        args.threads = chooseThreads(args.threads)
    except ValueError as error:
        parser.error(f"--threads: {error}")
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


def _summary(counts: dict) -> str:
    """The summary line of one exposure's ``metadata.json`` counts: what became of every parent.

    Examples
    --------
    >>> _summary({"nDeblended": 8, "nParents": 10, "nChildren": 15, "nSkipped": 1, "nFailed": 1,
    ...           "nNotConverged": 3, "nFallback": 2})
    'Deblended 8 of 10 parents into 15 children (1 skipped, 1 failed, 3 not converged, 2 by the fallback)'
    """
    return (f"Deblended {counts['nDeblended']} of {counts['nParents']} parents into {counts['nChildren']} children "
            f"({counts['nSkipped']} skipped, {counts['nFailed']} failed, {counts.get('nNotConverged', 0)} not "
            f"converged, {counts['nFallback']} by the fallback)")


def _runOne(exposure: Path, catalog: Path, output: Path, args, plot: int, truthPath: Path | None) -> int:
    """Deblend one exposure for :func:`main`; its exit status."""
    start = time.perf_counter()
    try:
        metadata = runTask(exposure, catalog, output, configFile=args.config, device=args.device, plot=plot,
                           deblender=args.deblender, progress=not args.no_progress, magZero=args.magzero,
                           threads=args.threads)
    except InputError as error:
        print(f"madness-run-task: error: {error}", file=sys.stderr)
        return 2
    counts = metadata["counts"]
    print(_summary(counts) + f" in {time.perf_counter() - start:.1f} s on {metadata['resolvedDevice']}"
          + (f" ({args.threads} CPU thread{'s' if args.threads > 1 else ''})"
             if metadata['resolvedDevice'] == "cpu" else ""))
    nNotConverged = counts.get("nNotConverged", 0)
    if nNotConverged:
        # Not a failure (the children are written), but the first thing to look at when they look wrong.
        print(f"{nNotConverged} parent{'s' if nNotConverged > 1 else ''} stopped at maxIter before converging "
              "(deblend_blendConvergenceFailedFlag); a larger maxIter in --config gives them more steps")
    if truthPath is not None:
        print(_compareWithTruth(output, truthPath, exposure))
    print(f"Wrote {output / 'deblendedCatalog.fits'}, {output / 'modelData.fits'}, {output / 'config.py'} and "
          f"{output / 'metadata.json'}")
    for path in metadata["outputs"]["plots"]:
        print(f"Plot: {output / path}")
    if counts["nFailed"]:
        print(f"{counts['nFailed']} parents failed ({', '.join(metadata['errors'])}); see deblend_failed and "
              "deblend_error in the catalogue", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
