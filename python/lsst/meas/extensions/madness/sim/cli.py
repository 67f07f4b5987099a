"""``madness-sim``: simulate LSST-like galaxies for training, validation and benchmarks."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from .datasets import DATASETS, SimulationConfig
from .splits import SPLITS
from .survey import LSST_CONDITIONS, SurveyConditions

_DESCRIPTION = """\
Simulate LSST-like galaxy images as in the MADNESS paper (Biswas et al. 2025, Sec. 2):
galaxies of a CatSim-format catalogue (or of the built-in CatSim-like population) drawn
with GalSim under LSST 10-year coadd conditions, with Poisson noise of galaxies plus sky.

commands:
  isolated    IsolatedSims: one galaxy per 45x45 stamp (noisy input, noiseless target), as HDF5 shards
  blended     BlendedSims: 1-3 galaxies in a 20x20 px box, a 45x45 stamp per galaxy, as HDF5 shards
  fields      TestFields: 205x205 fields of 12-20 galaxies, with per-galaxy truth, as HDF5 shards
  inputs      TestFields as deblender inputs: exposure FITS + parent catalogue FITS + truth FITS
  butler      TestFields as the inputs of the pipeline step: a new data butler repository of N patches
  population  write the built-in population as a CatSim-format FITS catalogue (and compare plots)
  examples    draw example images like the paper's Fig. 2 into a PNG
  throughput  time the simulator (galaxies/s, 1 and all cores) into a Markdown table
  fourier-check  compare the torch Fourier renderer with GalSim and time both (Markdown + JSON)

Train, validation and test use disjoint galaxies (--split); the same --seed gives the same data.
Run `madness-sim <command> --help` for the options of one command.

examples:
  madness-sim isolated --scenes 20000 --out sims/isolated
  madness-sim blended --split validation --scenes 5000 --float16 --out sims/blended-val
  madness-sim inputs --scenes 10 --peaks detected --out fields/
  madness-sim butler repo/ --patches 2        (needs pip install -e '.[lsst]')
  madness-sim isolated --catalog OneDegSq.fits --scenes 150000 --out sims/isolated
"""


def _addCatalogOptions(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("galaxies")
    group.add_argument("--catalog", type=Path, help="CatSim-format catalogue FITS (default: the built-in population)")
    group.add_argument("--population-size", type=int, default=20_000, metavar="N",
                       help="galaxies of the built-in population, before splitting (default: %(default)s)")
    group.add_argument("--population-seed", type=int, default=0, metavar="SEED",
                       help="seed of the built-in population (default: %(default)s)")
    group.add_argument("--snr-cut", type=float, default=10.0, metavar="S",
                       help="keep galaxies with r-band S/N >= S (paper App. A; default: %(default)s; 0 keeps all)")
    group.add_argument("--conditions", type=Path, metavar="FILE",
                       help="survey conditions as YAML or JSON (fields of SurveyConditions; default: LSST 10-year, "
                            "the paper's Table 1)")


def _addSimulationOptions(parser: argparse.ArgumentParser, defaultSplit: str) -> None:
    _addCatalogOptions(parser)
    group = parser.add_argument_group("simulation")
    group.add_argument("--split", choices=SPLITS, default=defaultSplit, help="galaxy split (default: %(default)s)")
    group.add_argument("--seed", type=int, default=0, help="seed of positions and noise (default: %(default)s)")
    group.add_argument("--scenes", type=int, metavar="N",
                       help="number of scenes (default: one pass over the split's galaxies)")
    group.add_argument("--start", type=int, default=0, metavar="K", help="index of the first scene (default: 0)")
    group.add_argument("--bands", default="ugrizy",
                       help="bands to draw, e.g. 'gri' or 'g,r,i' (default: %(default)s)")
    group.add_argument("--workers", type=int, metavar="N", help="worker processes (default: all cores)")
    group.add_argument("--quiet", action="store_true", help="no progress bar")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="madness-sim", description=_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")
    for kind, cls in DATASETS.items():
        summary = (cls.__doc__ or kind).splitlines()[0]
        sub = commands.add_parser(kind, help=summary, description=summary)
        _addSimulationOptions(sub, cls.defaultSplit)
        sub.add_argument("--out", type=Path, required=True, help="folder for the HDF5 shards")
        sub.add_argument("--shard-size", type=int, default=1000, metavar="N",
                         help="scenes per file (default: %(default)s)")
        sub.add_argument("--float16", action="store_true", help="store arrays as float16 (half the size)")
    sub = commands.add_parser("inputs", help="TestFields as run_task inputs (exposure, parents, truth FITS)",
                              description="Write TestFields as run_task inputs: field_<k>_exposure.fits, "
                                          "field_<k>_parents.fits and field_<k>_truth.fits.")
    _addSimulationOptions(sub, "test")
    sub.add_argument("--out", type=Path, required=True, help="folder for the FITS files")
    sub.add_argument("--peaks", choices=("truth", "detected"), default="truth",
                     help="peaks at the true centres (the paper's setting) or from the peak finder "
                          "(default: %(default)s)")
    sub = commands.add_parser("butler", help="TestFields as a data butler repository of patches (pipeline inputs)",
                              description="Make a data butler repository at REPO (needs the Rubin middleware: pip "
                                          "install -e '.[lsst]') holding --patches TestFields, one per patch of a "
                                          "one-tract skymap: deepCoadd_calexp_multiband (the exposure) and "
                                          "deepCoadd_mergeDet (the parents), in the run collection madness/inputs. "
                                          "The package's storage classes and formatters are stored in the "
                                          "repository's config.")
    sub.add_argument("repo", type=Path, metavar="REPO", help="folder of the new repository")
    sub.add_argument("--patches", type=int, default=2, metavar="N",
                     help="patches (fields) to simulate (default: %(default)s)")
    _addSimulationOptions(sub, "test")
    sub.add_argument("--peaks", choices=("truth", "detected"), default="truth",
                     help="peaks at the true centres or from the peak finder (default: %(default)s)")
    sub = commands.add_parser("population", help="write the built-in population as a CatSim FITS catalogue",
                              description="Write the built-in CatSim-like population (after the S/N cut) as a "
                                          "CatSim-format FITS catalogue; optionally plot it against a reference "
                                          "catalogue.")
    sub.add_argument("--size", type=int, default=20_000, help="galaxies after the cut (default: %(default)s)")
    sub.add_argument("--seed", type=int, default=0, help="population seed (default: %(default)s)")
    sub.add_argument("--snr-cut", type=float, default=10.0, help="r-band S/N cut, 0 for none (default: %(default)s)")
    sub.add_argument("--out", type=Path, required=True, help="FITS file to write")
    sub.add_argument("--compare", type=Path, metavar="CATALOG", help="CatSim catalogue to compare with in plots")
    sub.add_argument("--plots", type=Path, metavar="DIR", help="folder for comparison plots")
    sub = commands.add_parser("examples", help="example images like the paper's Fig. 2 (PNG)",
                              description="Draw IsolatedSims and BlendedSims examples (noisy stamp, isolated "
                                          "noiseless target, residual) and a TestField into PNG files.")
    _addCatalogOptions(sub)
    sub.add_argument("--seed", type=int, default=0, help="seed (default: %(default)s)")
    sub.add_argument("--band", default="r", help="band shown (default: %(default)s)")
    sub.add_argument("--rows", type=int, default=3, help="scenes per panel (default: %(default)s)")
    sub.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    sub = commands.add_parser("throughput", help="time the simulator into a Markdown table",
                              description="Time IsolatedSims, BlendedSims and TestFields, in memory and written "
                                          "to HDF5, with one worker and with all cores; write a Markdown table.")
    _addCatalogOptions(sub)
    sub.add_argument("--isolated", type=int, default=1000, metavar="N",
                     help="IsolatedSims scenes (default: %(default)s)")
    sub.add_argument("--blended", type=int, default=500, metavar="N", help="BlendedSims scenes (default: %(default)s)")
    sub.add_argument("--fields", type=int, default=30, metavar="N", help="TestFields scenes (default: %(default)s)")
    sub.add_argument("--out", type=Path, required=True, help="Markdown file to write (e.g. doc/sim-throughput.md)")
    sub = commands.add_parser("fourier-check", help="compare the torch Fourier renderer with GalSim and time both",
                              description="Draw galaxies of the built-in population in ugrizy with random PSFs "
                                          "(Kolmogorov, Moffat, Gaussian) and centres with GalSim and with the torch "
                                          "FourierRenderer (float32, float64); report flux and pixel differences per "
                                          "band and stamps/s (CPU, and CUDA when available) as fourier-check.md and "
                                          "fourier-check.json in --out. Torch uses the threads it is set to "
                                          "(OMP_NUM_THREADS).")
    sub.add_argument("--galaxies", type=int, default=1000, metavar="N", help="galaxies compared (default: %(default)s)")
    sub.add_argument("--seed", type=int, default=0, help="population, centre and PSF seed (default: %(default)s)")
    sub.add_argument("--device", choices=("cpu", "cuda", "auto"), default="auto",
                     help="device of the comparison; CUDA is also timed when available unless cpu "
                          "(default: %(default)s)")
    sub.add_argument("--batch-size", type=int, default=256, metavar="N",
                     help="galaxies per renderer call (default: %(default)s)")
    sub.add_argument("--out", type=Path, default=Path("doc/_generated"),
                     help="folder for fourier-check.md and .json (default: %(default)s)")
    sub.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _conditions(args) -> SurveyConditions:
    if args.conditions is None:
        return LSST_CONDITIONS
    import yaml
    from pydantic import ValidationError

    try:
        return SurveyConditions.model_validate(yaml.safe_load(args.conditions.read_text()))
    except (yaml.YAMLError, ValidationError) as error:
        raise ValueError(f"{args.conditions}: not valid survey conditions: {error}") from None


def _galaxies(args):
    from .galaxies import loadGalaxies

    snrCut = args.snr_cut if args.snr_cut > 0 else None
    return loadGalaxies(args.catalog, nGalaxies=args.population_size, seed=args.population_seed, snrCut=snrCut,
                        conditions=_conditions(args))


def _bands(text: str, conditions: SurveyConditions) -> list[str]:
    """The bands of ``--bands``: letters run together (``gri``) or separated by commas (``g,r,i``).

    Raises
    ------
    ValueError
        For no band, a repeated band, or one the survey conditions do not have (naming it and theirs).

    Examples
    --------
    >>> _bands("g,r,i", LSST_CONDITIONS), _bands("gri", LSST_CONDITIONS)
    (['g', 'r', 'i'], ['g', 'r', 'i'])
    """
    bands = [b.strip() for b in text.split(",")] if "," in text else list(text.strip())
    known = conditions.bandNames
    unknown = [b for b in bands if b not in known]
    if not bands or unknown:
        raise ValueError(f"--bands {text!r}: {'no band' if not bands else f'unknown band(s) {unknown}'}; "
                         f"the survey {conditions.name!r} has bands {','.join(known)} (give e.g. 'gri' or 'g,r,i')")
    repeated = sorted({b for b in bands if bands.count(b) > 1})
    if repeated:
        raise ValueError(f"--bands {text!r} repeats {repeated}")
    return bands


def _dataset(args, kind: str):
    conditions = _conditions(args)
    bands = _bands(args.bands, conditions)
    return DATASETS[kind](_galaxies(args), args.split, seed=args.seed, bands=bands, conditions=conditions,
                          config=SimulationConfig())


def _simulate(args) -> int:
    from .shards import writeShards

    dataset = _dataset(args, args.command)
    summary = writeShards(
        dataset, args.out, args.scenes, start=args.start, shardSize=args.shard_size,
        float16=args.float16, workers=args.workers, progress=not args.quiet,
    )  # fmt: skip
    print(
        f"{dataset.kind}/{dataset.split}: {summary.nScenes} scenes, {summary.nGalaxies} galaxies in "
        f"{len(summary.paths)} shard(s) under {args.out} ({summary.seconds:.1f} s, "
        f"{summary.galaxiesPerSecond:.1f} galaxies/s with {summary.workers} worker(s))"
    )
    return 0


def _inputs(args) -> int:
    from .inputs import writeTestFieldInputs

    dataset = _dataset(args, "fields")
    nFields = args.scenes if args.scenes is not None else len(dataset)
    began = time.perf_counter()
    files = writeTestFieldInputs(dataset, args.out, nFields, start=args.start, peaks=args.peaks,
                                 workers=args.workers, progress=not args.quiet)
    seconds = time.perf_counter() - began
    galaxies = sum(f.nGalaxies for f in files)
    print(
        f"{len(files)} fields ({galaxies} galaxies; {sum(f.nParents for f in files)} parents, "
        f"{sum(f.nPeaks for f in files)} {args.peaks} peaks) written to {args.out} in {seconds:.1f} s"
    )
    print(
        f"galaxies with a peak within 3 px: {sum(f.nMatched for f in files)} of {galaxies}; "
        f"peaks with no galaxy within 3 px: {sum(f.nUnmatchedPeaks for f in files)}"
    )
    return 0


def _butler(args) -> int:
    try:
        from ..pipeline.simRepo import INPUT_RUN, makeSimulatedRepo
    except ImportError as error:
        raise ValueError(str(error)) from None

    dataset = _dataset(args, "fields")
    began = time.perf_counter()
    patches = makeSimulatedRepo(args.repo, dataset, args.patches, start=args.start, peaks=args.peaks,
                                workers=args.workers)
    seconds = time.perf_counter() - began
    print(
        f"{len(patches)} patches ({sum(p.nGalaxies for p in patches)} galaxies; {sum(p.nParents for p in patches)} "
        f"parents, {sum(p.nPeaks for p in patches)} {args.peaks} peaks) put in {args.repo}, run {INPUT_RUN}, "
        f"in {seconds:.1f} s"
    )
    return 0


def _population(args) -> int:
    from .population import generatePopulation

    snrCut = args.snr_cut if args.snr_cut > 0 else None
    galaxies = generatePopulation(args.size, args.seed, snrCut=snrCut)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    galaxies.write(args.out, overwrite=True)
    print(f"{len(galaxies)} galaxies written to {args.out}")
    if args.plots is not None:
        from .catsim import readCatsimCatalog
        from .populationPlots import plotPopulationComparison

        reference = readCatsimCatalog(args.compare) if args.compare is not None else None
        uncut = generatePopulation(args.size, args.seed, snrCut=None)
        for path in plotPopulationComparison(uncut, reference, args.plots):
            print(f"plot: {path}")
    return 0


def _examples(args) -> int:
    from .plots import plotExamples

    galaxies = _galaxies(args)
    for path in plotExamples(galaxies, args.out, seed=args.seed, band=args.band, rows=args.rows):
        print(f"plot: {path}")
    return 0


def _throughput(args) -> int:
    from .throughput import measureThroughput, writeThroughput

    galaxies = _galaxies(args)
    results = measureThroughput(galaxies, {"isolated": args.isolated, "blended": args.blended, "fields": args.fields})
    command = "madness-sim " + " ".join(sys.argv[1:]) if args.argv is None else "madness-sim " + " ".join(args.argv)
    path = writeThroughput(results, command, args.out)
    print(path.read_text())
    return 0


def _fourierCheck(args) -> int:
    from .fourierCheck import writeFourierCheck

    if args.galaxies < 1 or args.batch_size < 1:
        raise ValueError("--galaxies and --batch-size must be at least 1")
    command = "madness-sim " + " ".join(sys.argv[1:] if args.argv is None else args.argv)
    if os.environ.get("OMP_NUM_THREADS"):
        command = f"OMP_NUM_THREADS={os.environ['OMP_NUM_THREADS']} {command}"
    result = writeFourierCheck(args.out, nGalaxies=args.galaxies, seed=args.seed, device=args.device,
                               command=command, batchSize=args.batch_size, progress=not args.quiet)
    print((args.out / "fourier-check.md").read_text())
    failing = {dtype: a["galaxiesFailing"] for dtype, a in result["agreement"].items()}
    print(f"written {args.out / 'fourier-check.md'} and {args.out / 'fourier-check.json'}; galaxies failing a "
          f"target: {failing}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.argv = argv
    try:
        if args.command in DATASETS:
            return _simulate(args)
        commands = {"inputs": _inputs, "butler": _butler, "population": _population, "examples": _examples,
                    "throughput": _throughput, "fourier-check": _fourierCheck}
        return commands[args.command](args)
    except (ValueError, OSError) as error:
        print(f"madness-sim {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
