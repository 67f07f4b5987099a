"""``madness-models``: export a training run, measure its validation metrics, draw its figures.

Run ``madness-models --help`` for the commands and examples.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import warnings
from pathlib import Path
from typing import Any

_DESCRIPTION = """\
Turn a madness-train run into the TorchScript model directory the deblender loads, and check it:

  export     RUN/{vae,flow,deblender}/best.pt -> encoder.pt, decoder.pt, deblender_encoder.pt,
             flow_log_prob.pt and model_card.json (provenance of every stage's data and training)
  evaluate   validation metrics of a model directory on held-out IsolatedSims and BlendedSims
             shards (VAE reconstruction, flow NLL, single-pass VAE-deblender); --write-card stores
             them in the model card
  plots      training curves, reconstructions, flow samples vs N(0, I), latent pairs and
             VAE-deblender examples (paper Figs. 3, 4, 6) as PNG files
  tune-map   choose the MAP step size of a model directory on validation blends (every band's
             child fluxes against the truth) and store it in the card (map.lr), which the
             deblend task uses unless its lr is set
  prior-quantiles
             the log-prior of held-out isolated galaxies (VAE posterior means under the flow),
             as a quantile table in the card (logPriorQuantiles), which the deblender uses for
             madness_logPriorQuantile and madness_lowPrior; budget training writes it itself
  shape-regressor
             train a small network from a galaxy's latent to its model-frame r-band ellipticity
             (e1, e2) on simulated isolated galaxies; write shape_regressor.pt and the card's
             shapeRegressor entry (optional: directories without it work as before)
  info       print a model directory's card (default: the shipped LSST models)

examples:
  madness-models export runs/lsst --to runs/lsst/export --recipe runs/lsst/recipe.sh
  madness-models evaluate runs/lsst/export --isolated sims/iso-val --blended sims/blend-val \\
      --stamps 5000 --write-card --markdown doc/_generated/model-metrics.md
  madness-models plots runs/lsst/export --run runs/lsst --isolated sims/iso-val \\
      --blended sims/blend-val --out doc/_static
  madness-models tune-map runs/cpu/models --lrs 0.01 0.02 0.05 0.1 --scenes 40
  madness-models prior-quantiles runs/cpu/models --population runs/pop200k.npz
  madness-models shape-regressor --model-dir runs/cpu/models --galaxies 40000 --seed 11
  madness-models info
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="madness-models", description=_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    export = commands.add_parser("export", help="export a training run's best weights as TorchScript + model card")
    export.add_argument("run", type=Path, help="madness-train output folder (with vae/, flow/, deblender/)")
    export.add_argument("--to", type=Path, required=True, help="model directory to write")
    export.add_argument("--recipe", type=Path, help="shell script (or notes) that made the data and the run; "
                                                    "its lines go into the model card")

    evaluate = commands.add_parser("evaluate", help="validation metrics on held-out shards")
    evaluate.add_argument("models", type=Path, help="model directory")
    evaluate.add_argument("--isolated", type=Path, required=True, help="IsolatedSims validation shards (folder)")
    evaluate.add_argument("--blended", type=Path, required=True, help="BlendedSims validation shards (folder)")
    evaluate.add_argument("--stamps", type=int, default=5000, help="galaxies of each data set (default: 5000)")
    evaluate.add_argument("--band", default="r", help="band of the image metrics (default: r)")
    evaluate.add_argument("--seed", type=int, default=0, help="seed of the latent samples of the flow NLL")
    evaluate.add_argument("--write-card", action="store_true", help="store the metrics in the model card")
    evaluate.add_argument("--markdown", type=Path, help="also write the metrics table to this Markdown file")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars")

    plots = commands.add_parser("plots", help="figures of a model directory and its training run")
    plots.add_argument("models", type=Path, help="model directory")
    plots.add_argument("--run", type=Path, required=True, help="the madness-train folder (curves, flow sampling)")
    plots.add_argument("--isolated", type=Path, required=True, help="IsolatedSims validation shards (folder)")
    plots.add_argument("--blended", type=Path, required=True, help="BlendedSims validation shards (folder)")
    plots.add_argument("--out", type=Path, required=True, help="folder for the PNG files")
    plots.add_argument("--prefix", default="models_", help="file name prefix (default: models_)")
    plots.add_argument("--seed", type=int, default=0, help="seed of the examples and samples")

    tune = commands.add_parser("tune-map", help="choose the MAP step size on validation blends; store it in the card")
    tune.add_argument("models", type=Path, help="model directory")
    tune.add_argument("--lrs", type=float, nargs="+", default=None,
                      help="Adam learning rates to try (default 0.01 0.02 0.05 0.1)")
    tune.add_argument("--scenes", type=int, default=40, help="validation blends of 2-3 galaxies (default 40)")
    tune.add_argument("--seed", type=int, default=21, help="seed of those blends (default 21)")
    tune.add_argument("--device", default="auto", help="torch device of the MAP fits")
    tune.add_argument("--dry-run", action="store_true", help="print the scores, leave the card as it is")

    quantiles = commands.add_parser("prior-quantiles",
                                    help="log-prior quantiles of held-out isolated galaxies; store them in the card")
    quantiles.add_argument("models", type=Path, help="model-frame model directory")
    quantiles.add_argument("--population", type=Path, required=True,
                           help="galaxies as written by `madness-train population` (.npz); its validation split "
                                "is used")
    quantiles.add_argument("--stamps", type=int, default=5000, help="held-out galaxies (default 5000)")
    quantiles.add_argument("--seed", type=int, default=5, help="seed of the galaxies, PSFs and noise (default 5)")
    quantiles.add_argument("--device", default="auto", help="torch device")
    quantiles.add_argument("--dry-run", action="store_true", help="print the table, leave the card as it is")
    shapes = commands.add_parser("shape-regressor",
                                 help="train the latent -> (e1, e2) regressor; store it in the model directory")
    shapes.add_argument("--model-dir", type=Path, required=True, metavar="DIR",
                        help="model-frame model directory (written to)")
    shapes.add_argument("--galaxies", type=int, default=40_000, metavar="N",
                        help="simulated isolated galaxies, 90%% to train and 10%% to validate (default 40000)")
    shapes.add_argument("--seed", type=int, default=11, metavar="S",
                        help="seed of the training galaxies (the validation ones: seed + 1) and of the network "
                             "(default 11)")
    shapes.add_argument("--population", type=Path, default=None, metavar="FILE",
                        help="galaxies as written by `madness-train population` (.npz; default: the built-in "
                             "population of the shipped weights, generated here)")
    shapes.add_argument("--device", default="cpu", help="torch device of the simulation and the encoder (default cpu)")
    shapes.add_argument("--dry-run", action="store_true", help="train and print, leave the model directory as it is")
    info = commands.add_parser("info", help="print a model card")
    info.add_argument("models", type=Path, nargs="?", help="model directory (default: the shipped LSST models)")
    return parser


def _export(args) -> int:
    from .runExport import exportRun

    recipe = args.recipe.read_text().splitlines() if args.recipe is not None else None
    card = exportRun(args.run, args.to, recipe=recipe)
    data = json.loads(card.read_text())
    total = sum(entry["bytes"] for entry in data["files"].values())
    print(f"wrote {card.parent}: {', '.join(e['path'] for e in data['files'].values())} "
          f"({total / 2**20:.1f} MiB) and {card.name}")
    return 0


def _evaluate(args) -> int:
    from ..sim.shards import SimulationShards
    from .export import loadModels, updateModelCard
    from .validation import deadBands, evaluateModels, metricsMarkdown, stackItems

    models = loadModels(args.models)
    if args.band not in models.bands:
        raise ValueError(f"band {args.band!r} is not one of the models' bands {list(models.bands)}")
    arrays = ["blended", "isolated"]
    isolated = SimulationShards(args.isolated, arrays=arrays)
    blended = SimulationShards(args.blended, arrays=arrays)
    for name, shards, kind in (("--isolated", isolated, "isolated"), ("--blended", blended, "blended")):
        if shards.description["kind"] != kind:
            raise ValueError(f"{name} {getattr(args, name[2:])}: holds {shards.description['kind']} shards, "
                             f"not {kind}")
        if shards.description["split"] == "train":
            print(f"madness-models: warning: {name} holds the train split; validation metrics belong on held-out "
                  "galaxies", file=sys.stderr)
    metrics = evaluateModels(models, isolated, blended, args.stamps, args.band, args.seed, progress=not args.quiet)
    record = metrics.toDict()
    sample = stackItems(isolated, range(min(200, len(isolated))))
    dead = deadBands(models, sample["blended"], sample["isolated"])
    if dead:
        print(f"madness-models: warning: the decoder draws almost no flux in bands {dead} (dead output channels)",
              file=sys.stderr)
    command = "madness-models " + " ".join(shlex.quote(str(a)) for a in args.argv)
    record["command"] = command
    table = metricsMarkdown(record, command)
    print(table, end="")
    if args.write_card:
        path = updateModelCard(args.models, validation=record)
        print(f"metrics written to {path}")
    if args.markdown is not None:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(table)
        print(f"table written to {args.markdown}")
    return 0


def _plots(args) -> int:
    from .figures import drawModelFigures

    paths = drawModelFigures(args.models, args.run, args.isolated, args.blended, args.out, args.prefix, args.seed)
    for path in paths:
        print(path)
    return 0


def _tuneMap(args) -> int:
    from .mapTuning import DEFAULT_CANDIDATES, tuneMapLearningRate

    record = tuneMapLearningRate(args.models, args.lrs or DEFAULT_CANDIDATES, nScenes=args.scenes, seed=args.seed,
                                 device=args.device, write=not args.dry_run)
    where = "(not stored: --dry-run)" if args.dry_run else f"stored in {args.models / 'model_card.json'} (map.lr)"
    print(f"chosen MAP learning rate {record['lr']:g} {where}")
    return 0


def _priorQuantiles(args) -> int:
    from ..sim.trainingStamps import loadPopulationArrays
    from .export import loadModels, updateModelCard
    from .isolatedGalaxies import isolatedBatches, modelFrameSimulator
    from .priorQuantiles import logPriorQuantiles

    if args.stamps < 100:
        raise ValueError(f"--stamps {args.stamps}: at least 100 galaxies are needed for a quantile table")
    if not args.population.is_file():
        raise ValueError(f"{args.population}: no such population file (write one with `madness-train population`)")
    models = loadModels(args.models, device=args.device)
    simulator = modelFrameSimulator(models, loadPopulationArrays(args.population, "validation"), device=models.device,
                                    source=str(args.population))
    batches = (batch["observed"] for batch in isolatedBatches(simulator, args.stamps, args.seed, 256))
    table = logPriorQuantiles(models.encoder, models.logPrior, batches,
                              source=f"{args.stamps} held-out isolated galaxies of {args.population.name} "
                                     f"(validation split, seed {args.seed}), observed through random PSFs")
    print("log-prior quantiles: " + ", ".join(f"{level:g}: {value:.2f}"
                                             for level, value in zip(table["levels"], table["values"])))
    if not args.dry_run:
        print(f"stored in {updateModelCard(args.models, logPriorQuantiles=table)} (logPriorQuantiles)")
    return 0


def _shapeRegressor(args) -> int:
    from .shapeRegressor import buildShapeRegressor

    if args.galaxies < 200:
        raise ValueError(f"--galaxies {args.galaxies}: at least 200 galaxies are needed")
    if not args.model_dir.is_dir():
        raise ValueError(f"--model-dir {args.model_dir}: no such model directory")
    buildShapeRegressor(args.model_dir, args.galaxies, args.seed, population=args.population,
                        device=args.device, write=not args.dry_run,
                        command="madness-models " + " ".join(shlex.quote(str(a)) for a in args.argv))
    return 0


def _info(args) -> int:
    from .export import loadModels, shippedModelsPath

    directory = args.models if args.models is not None else shippedModelsPath()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        card: dict[str, Any] = loadModels(directory).card  # checks the files against the card too
    print(json.dumps(card, indent=2))
    perBand = ((card.get("validation") or {}).get("modelFrame") or {}).get("perBand")
    if perBand:
        print("held-out model-frame metrics: " + ", ".join(
            f"{band} cosine {m['meanCosine']:.3f}, |dF/F| {m['meanAbsFluxError']:.3f}" for band, m in perBand.items()))
    for warning in caught:
        print(f"madness-models: warning: {warning.message}", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``madness-models``; returns the exit status (2 with a one-line message on errors)."""
    args = _parser().parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    commands = {"export": _export, "evaluate": _evaluate, "plots": _plots, "tune-map": _tuneMap,
                "prior-quantiles": _priorQuantiles, "shape-regressor": _shapeRegressor, "info": _info}
    try:
        return commands[args.command](args)
    except (ValueError, OSError) as error:
        message = " ".join(str(error).split())
        print(f"madness-models {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
