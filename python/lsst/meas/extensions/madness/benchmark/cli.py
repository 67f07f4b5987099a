"""``madness-bench``: the paper's evaluation (Sec. 4) as a command.

::

    madness-bench run --out runs/bench [--fields 200] [--peaks truth detected] [--methods ...] [--resume]
    madness-bench run --out runs/smoke --quick          # CI-sized: 1 field per setting
    madness-bench profile [--out doc/_generated/benchmark-profile.md]
    madness-bench throughput [--device cuda] [--fields 64] [--batch-sizes 16 64 256 1024]
    madness-bench report runs/bench [runs/bench2 ...] [--doc doc/_generated/benchmark-results.md]
    madness-bench real --out runs/real [--npz ../shared/data/hsc_cosmos.npz] [--methods madness scarlet]
    madness-bench observations runs/nominal runs/psf07 [...]   # runs made with --psf-scale/--pixel-scale
    madness-bench threads --work runs/threads [--threads 1 2] [--loads 0 1 2] [--repeats 2]
    madness-bench flags [--fields 40] [--peaks truth|detected] [--doc doc/_generated/flag-rates.md]
    madness-bench pulls [--fields 20] [--calibration-fields 100] [--doc doc/_generated/pulls.md]
    madness-bench shapes [--model-dir DIR] [--isolated 5000] [--fields 30] [--doc doc/_generated/shapes.md]

``run`` evaluates TestFields (test split of the training population: galaxies disjoint from
training) with no deblending, the VAE-deblender, MADNESS and SCARLET, one JSON line per field;
``--resume`` continues a stopped run; ``--resume --compare-models LABEL=DIR`` adds a model set
to a run, evaluating only its methods on the fields already done. ``report`` writes the tables (Markdown), the figures
(``doc/_static/bench_*.png``) and the results JSON (``doc/_generated/benchmark-results.json``).
``real`` runs MADNESS and SCARLET through ``madness-run-task`` on a real multiband blend (an ``.npz``
file, :mod:`.real`) and reports the reduced χ², the 5σ-outlier fraction, the children's fluxes and
their hallucination shares (``doc/_generated/benchmark-real.md`` and ``.json``, a figure in
``doc/_static``). ``threads`` times a simulated field's deblend against the CPU thread count, with
other processes keeping cores busy (:mod:`lsst.meas.extensions.madness.benchmark.threads`;
``doc/_generated/threads.md``): the
measurement behind ``madness-run-task --threads auto``. ``flags`` counts the trust flags
(``madness_lowPrior``, ``madness_badFit``) on test fields (:mod:`lsst.meas.extensions.madness.benchmark.flags`).
``pulls`` checks the size of the Laplace uncertainties there (:mod:`lsst.meas.extensions.madness.benchmark.pulls`).
``shapes`` compares the shape regressor on the latents with adaptive moments of the decoded images
(:mod:`lsst.meas.extensions.madness.benchmark.shapes`).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from .fields import METHODS
from .real import METHODS as REAL_METHODS
from .run import PEAK_SETTINGS, runBenchmark

__all__ = ["main"]


def _variants(pairs: Sequence[str], configs: Sequence[str] = ()) -> dict[str, str]:
    """Labels → model variants: ``LABEL=DIR`` (other models), ``LABEL=KEY=VALUE[,KEY=VALUE]`` (the
    run's models under MadnessDeblendConfig overrides, stored as ``?KEY=VALUE&...``: :func:`.fields.variantSpec`)."""
    variants = {}
    for option, given in (("--compare-models", pairs), ("--compare-config", configs)):
        for pair in given:
            label, _, value = pair.partition("=")
            if not label or not value or ":" in label or label in variants or (
                    option == "--compare-config" and "=" not in value):
                form = "LABEL=DIR" if option == "--compare-models" else "LABEL=KEY=VALUE[,KEY=VALUE]"
                raise SystemExit(f"madness-bench: error: {option} takes {form} (a new label without ':'), "
                                 f"not {pair!r}")
            variants[label] = value if option == "--compare-models" else "?" + value.replace(",", "&")
    return variants


def _real(args, argv: list[str] | None) -> int:
    from .real import RealBlendError, runRealBenchmark

    if args.scarlet_iterations < 1:
        print("madness-bench: error: --scarlet-iterations must be at least 1", file=sys.stderr)
        return 2
    try:
        results = runRealBenchmark(
            args.npz, args.out, methods=args.methods, magZero=args.magzero, pixelScale=args.pixel_scale,
            modelDir=args.model_dir, device=args.device, scarletIterations=args.scarlet_iterations,
            footprintNSigma=args.footprint_nsigma, footprintGrow=args.footprint_grow, document=args.doc,
            resultsPath=args.results, static=args.static,
            command="madness-bench " + " ".join(sys.argv[1:] if argv is None else argv))
    except (RealBlendError, ValueError) as error:
        print(f"madness-bench: error: {error}", file=sys.stderr)
        return 2
    print(results["markdown"])
    print(f"Wrote {args.doc}, {args.results}" + (f" and {results['figure']}" if results.get("figure") else ""))
    # A deblender that gave no result is a failed benchmark, though the report says what the other did.
    return 0 if all("chi2" in r for r in results["methods"].values()) else 1


def _report(measure, write, args, argv: list[str] | None) -> int:
    """Run a benchmark that writes a report to ``args.doc``: exit 2 on bad settings, else print the report."""
    try:
        result = measure()
    except ValueError as error:
        print(f"madness-bench: error: {error}", file=sys.stderr)
        return 2
    print(write(result, "madness-bench " + " ".join(sys.argv[1:] if argv is None else argv), args.doc))
    return 0


def _threads(args, argv: list[str] | None) -> int:
    import os

    from .threads import measureThreads, writeThreadsReport

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        results = measureThreads(args.work, args.threads or list(range(1, cores + 1)),
                                 list(range(cores + 1)) if args.loads is None else args.loads, repeats=args.repeats)
    except ValueError as error:
        print(f"madness-bench: error: {error}", file=sys.stderr)
        return 2
    command = "madness-bench " + " ".join(sys.argv[1:] if argv is None else argv)
    print(writeThreadsReport(results, command, args.doc))
    print(f"Wrote {args.doc} and {args.doc.with_suffix('.json')}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="madness-bench", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="evaluate fields (resumable)")
    run.add_argument("--out", type=Path, required=True, help="run directory")
    run.add_argument("--fields", type=int, default=200, help="fields per peak setting (default 200)")
    run.add_argument("--first-field", type=int, default=0,
                     help="index of the first field (default 0, the reported test fields; e.g. 3000 for fields "
                          "on which to choose settings)")
    run.add_argument("--peaks", nargs="+", choices=PEAK_SETTINGS, default=list(PEAK_SETTINGS))
    run.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    run.add_argument("--seed", type=int, default=0, help="population and field seed (0: the training population)")
    run.add_argument("--population", type=int, default=120_000, help="population size (default: the training one)")
    run.add_argument("--device", default="auto", help="torch device of MADNESS")
    run.add_argument("--model-dir", default=None, metavar="DIR",
                     help="MADNESS model directory (default: the shipped weights)")
    run.add_argument("--compare-models", action="append", default=[], metavar="LABEL=DIR",
                     help="also run vae/madness/fidelity with the models in DIR, as methods madness:LABEL etc., "
                          "side by side on the same fields (repeatable)")
    run.add_argument("--compare-config", action="append", default=[], metavar="LABEL=KEY=VALUE[,KEY=VALUE]",
                     help="also run vae/madness/fidelity with the run's models under MadnessDeblendConfig overrides "
                          "(e.g. lm=optimizer=lm), as methods madness:LABEL etc. (repeatable)")
    run.add_argument("--resume", action="store_true",
                     help="continue the run in --out (its stored methods); with a new --compare-models label, "
                          "add that model set to the fields already done")
    run.add_argument("--quick", action="store_true", help="CI size: 1 field per setting, a small population")
    run.add_argument("--psf-scale", type=float, default=1.0, metavar="F",
                     help="observe the fields with every band's PSF FWHM times F (default 1: LSST's)")
    run.add_argument("--pixel-scale", type=float, default=None, metavar="S",
                     help="observe the fields on pixels of S arcsec (default: LSST's 0.2; HSC's are 0.168)")
    run.add_argument("--jax-cache", default=None, metavar="DIR",
                     help="JAX compilation cache of SCARLET, shared by runs (default OUT/jax-cache; 'none': off); "
                          "about halves SCARLET's time, same results")
    report = commands.add_parser("report", help="tables, figures and results.json from a run")
    report.add_argument("runs", type=Path, nargs="+", help="run directories (e.g. one per peak setting)")
    report.add_argument("--results", type=Path, default=Path("doc/_generated/benchmark-results.json"))
    report.add_argument("--doc", type=Path, default=Path("doc/_generated/benchmark-results.md"))
    report.add_argument("--static", type=Path, default=Path("doc/_static"))
    speed = commands.add_parser("throughput", help="MADNESS galaxies/s against batch size and number of fields")
    speed.add_argument("--fields", type=int, default=None,
                       help="fields whose blends are fitted (default 8; 64 on a GPU)")
    speed.add_argument("--batch-sizes", type=int, nargs="+", default=None,
                       help="galaxies per batch to try (default 8 16 32 64 128; up to 1024 on a GPU)")
    speed.add_argument("--field-batch", type=int, default=64, help="galaxies per batch of the fields sweep")
    speed.add_argument("--device", default="auto", help="torch device of MADNESS")
    speed.add_argument("--population", type=int, default=120_000, help="population size (default: the training one)")
    speed.add_argument("--doc", type=Path, default=None,
                       help="Markdown table (default doc/_generated/benchmark-throughput-DEVICE.md)")
    speed.add_argument("--static", type=Path, default=Path("doc/_static"), help="figure directory")
    profile = commands.add_parser("profile", help="where the time of a MADNESS run goes (one field)")
    profile.add_argument("--out", type=Path, default=Path("doc/_generated/benchmark-profile.md"))
    profile.add_argument("--device", default="auto", help="torch device of MADNESS")
    cost = commands.add_parser("kernel-cost", help="MAP-step cost of the difference kernels against the decoder's")
    cost.add_argument("--out", type=Path, default=None,
                      help="Markdown table (default doc/_generated/benchmark-kernel-cost-DEVICE.md)")
    cost.add_argument("--device", default="auto", help="torch device")
    cost.add_argument("--repeats", type=int, default=10, help="timed steps per setting (default 10)")
    real = commands.add_parser("real", help="MADNESS and SCARLET side by side on a real multiband blend (.npz)")
    real.add_argument("--out", type=Path, required=True,
                      help="work directory: the exposure and parent-catalogue FITS files, each deblender's "
                           "madness-run-task output and config overrides")
    real.add_argument("--npz", type=Path, default=Path("../shared/data/hsc_cosmos.npz"),
                      help="blend file: images (band, y, x), psfs (band, py, px), catalog (x, y, ...), filters "
                           "(default ../shared/data/hsc_cosmos.npz, the HSC COSMOS development case next to the clone)")
    real.add_argument("--methods", nargs="+", choices=REAL_METHODS, default=list(REAL_METHODS),
                      help="deblenders to run (default: madness scarlet)")
    real.add_argument("--magzero", type=float, default=27.0,
                      help="AB magnitude of one image unit, every band (default 27: HSC coadds)")
    real.add_argument("--pixel-scale", type=float, default=0.168,
                      help="arcseconds per pixel (default 0.168: HSC); the file has no WCS")
    real.add_argument("--model-dir", default=None, metavar="DIR",
                      help="MADNESS model directory (default: the shipped weights)")
    real.add_argument("--device", default=None, help="torch device of MADNESS (default: its config's, auto)")
    real.add_argument("--scarlet-iterations", type=int, default=200,
                      help="SCARLET's maxIter, also MADNESS's fallback's (default 200)")
    real.add_argument("--footprint-nsigma", type=float, default=3.0,
                      help="detection threshold (sigma of the PSF-filtered S/N image) of the parent footprint "
                           "(default 3)")
    real.add_argument("--footprint-grow", type=int, default=2,
                      help="pixels by which the detections making the parent footprint are grown (default 2)")
    real.add_argument("--doc", type=Path, default=Path("doc/_generated/benchmark-real.md"),
                      help="Markdown report (default doc/_generated/benchmark-real.md)")
    real.add_argument("--results", type=Path, default=Path("doc/_generated/benchmark-real.json"),
                      help="results JSON (default doc/_generated/benchmark-real.json)")
    real.add_argument("--static", type=Path, default=Path("doc/_static"),
                      help="figure directory; the figure is real_<npz stem>.png (default doc/_static)")
    observed = commands.add_parser(
        "observations", help="MADNESS and SCARLET across PSF sizes and pixel scales (runs made with "
                             "--psf-scale/--pixel-scale, one of them nominal)")
    observed.add_argument("runs", type=Path, nargs="+", help="run directories, one per observation")
    observed.add_argument("--peaks", default="truth", choices=PEAK_SETTINGS, help="peak setting (default truth)")
    observed.add_argument("--doc", type=Path, default=Path("doc/_generated/benchmark-observations.md"),
                          help="Markdown tables (default doc/_generated/benchmark-observations.md)")
    observed.add_argument("--results", type=Path, default=Path("doc/_generated/benchmark-observations.json"),
                          help="results JSON (default doc/_generated/benchmark-observations.json)")
    threads = commands.add_parser("threads", help="deblend time against CPU threads, idle and with busy cores")
    threads.add_argument("--work", type=Path, required=True, help="work directory (simulated inputs, outputs)")
    threads.add_argument("--threads", type=int, nargs="+", default=None,
                         help="thread counts to time (default 1 up to the cores)")
    threads.add_argument("--loads", type=int, nargs="+", default=None,
                         help="numbers of other busy processes to time them under (default 0 up to the cores)")
    threads.add_argument("--repeats", type=int, default=2, help="runs per setting; medians reported (default 2)")
    threads.add_argument("--doc", type=Path, default=Path("doc/_generated/threads.md"),
                         help="Markdown report, its JSON beside it (default doc/_generated/threads.md)")
    flags = commands.add_parser("flags", help="how often the trust flags fire on simulated test fields")
    flags.add_argument("--fields", type=int, default=40, help="test fields to deblend (default 40)")
    flags.add_argument("--peaks", choices=PEAK_SETTINGS, default="truth", help="peak setting (default truth)")
    flags.add_argument("--model-dir", default=None, metavar="DIR", help="MADNESS models (default: the shipped weights)")
    flags.add_argument("--device", default="auto", help="torch device of MADNESS")
    flags.add_argument("--doc", type=Path, default=Path("doc/_generated/flag-rates.md"),
                       help="Markdown report, its JSON beside it (default doc/_generated/flag-rates.md)")
    pulls = commands.add_parser("pulls", help="pulls of the Laplace uncertainties (flux, e1) on simulated test fields")
    pulls.add_argument("--fields", type=int, default=20, help="test fields reported (default 20)")
    pulls.add_argument("--first", type=int, default=1000, help="index of the first reported field (default 1000)")
    pulls.add_argument("--calibration-fields", type=int, default=0,
                       help="other fields on which to choose the error model's coefficients (default 0: none)")
    pulls.add_argument("--calibration-first", type=int, default=3000,
                       help="index of the first calibration field (default 3000)")
    pulls.add_argument("--model-dir", default=None, metavar="DIR", help="MADNESS models (default: the shipped weights)")
    pulls.add_argument("--device", default="auto", help="torch device of MADNESS")
    pulls.add_argument("--doc", type=Path, default=Path("doc/_generated/pulls.md"),
                       help="Markdown report, its JSON beside it (default doc/_generated/pulls.md)")
    shapes = commands.add_parser("shapes", help="shape regressor on the latents against moments of the decoded images")
    shapes.add_argument("--model-dir", default=None, metavar="DIR",
                        help="MADNESS models with a shape regressor (default: the shipped weights)")
    shapes.add_argument("--isolated", type=int, default=5000, help="held-out isolated galaxies (default 5000; 0: none)")
    shapes.add_argument("--seed", type=int, default=29, help="seed of the isolated galaxies (default 29)")
    shapes.add_argument("--fields", type=int, default=30, help="test fields deblended by MADNESS (default 30; 0: none)")
    shapes.add_argument("--first", type=int, default=0, help="index of the first test field (default 0)")
    shapes.add_argument("--device", default="auto", help="torch device of MADNESS")
    shapes.add_argument("--doc", type=Path, default=Path("doc/_generated/shapes.md"),
                        help="Markdown report, its JSON beside it (default doc/_generated/shapes.md)")
    args = parser.parse_args(argv)
    if args.command == "shapes":
        from .shapes import shapesReport, writeShapes

        return _report(lambda: shapesReport(args.model_dir, args.isolated, args.fields, args.first, args.seed,
                                            device=args.device), writeShapes, args, argv)
    if args.command == "pulls":
        from .pulls import pullsReport, writePulls

        return _report(lambda: pullsReport(args.fields, args.first, args.calibration_fields, args.calibration_first,
                                           modelDir=args.model_dir, device=args.device), writePulls, args, argv)
    if args.command == "flags":
        from .flags import flagRates, writeFlagRates

        return _report(lambda: flagRates(args.fields, peaks=args.peaks, modelDir=args.model_dir, device=args.device),
                       writeFlagRates, args, argv)
    if args.command == "threads":
        return _threads(args, argv)
    if args.command == "observations":
        from .observations import writeObservationsReport

        try:
            writeObservationsReport(args.runs, args.doc, args.results, args.peaks,
                                    command="madness-bench observations " + " ".join(str(r) for r in args.runs))
        except (FileNotFoundError, ValueError) as error:
            print(f"madness-bench: error: {error}", file=sys.stderr)
            return 2
        print(args.doc.read_text())
        return 0
    if args.command == "real":
        return _real(args, argv)
    if args.command == "kernel-cost":
        from ..models.device import resolveDevice
        from .kernelCost import writeKernelCost

        out = args.out or Path(f"doc/_generated/benchmark-kernel-cost-{resolveDevice(args.device).type}.md")
        print(f"Wrote {writeKernelCost(out, device=args.device, repeats=args.repeats)}")
        print(out.read_text())
        return 0
    if args.command == "profile":
        from .profile import writeProfile

        print(f"Wrote {writeProfile(args.out, device=args.device)}")
        return 0
    if args.command == "throughput":
        from ..models.device import resolveDevice
        from .throughput import writeThroughput

        device = resolveDevice(args.device)
        gpu = device.type == "cuda"
        sizes = args.batch_sizes or ([16, 32, 64, 128, 256, 512, 1024] if gpu else [8, 16, 32, 64, 128])
        doc = args.doc or Path(f"doc/_generated/benchmark-throughput-{device.type}.md")
        try:
            writeThroughput(doc, args.static, doc.with_suffix(".json"), nFields=args.fields or (64 if gpu else 8),
                            batchSizes=sizes,
                            fieldBatchSize=args.field_batch, device=device, populationSize=args.population)
        except ValueError as error:
            print(f"madness-bench: error: {error}", file=sys.stderr)
            return 2
        print(f"Wrote {doc}, {doc.with_suffix('.json')} and a figure in {args.static}")
        return 0
    if args.command == "run":
        if args.quick:
            args.fields, args.population = 1, 3000
        cache = args.out / "jax-cache" if args.jax_cache is None else args.jax_cache
        try:
            runBenchmark(args.out, args.fields, peaks=args.peaks, methods=args.methods, seed=args.seed,
                         populationSize=args.population, resume=args.resume, device=args.device,
                         modelDir=args.model_dir, variants=_variants(args.compare_models, args.compare_config),
                         compilationCacheDir=None if cache == "none" else cache, psfScale=args.psf_scale,
                         pixelScale=args.pixel_scale, firstField=args.first_field)
        except (FileExistsError, ValueError) as error:
            print(f"madness-bench: error: {error}", file=sys.stderr)
            return 2
        print(f"Wrote {args.out}; `madness-bench report {args.out}` makes the tables and figures")
        return 0
    from .report import writeReport

    try:
        command = "madness-bench report " + " ".join(str(r) for r in args.runs)
        results = writeReport(args.runs, args.doc, args.static, args.results, command=command)
    except FileNotFoundError as error:
        print(f"madness-bench: error: {error}", file=sys.stderr)
        return 2
    print(f"Wrote {args.doc}, figures in {args.static} and {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
