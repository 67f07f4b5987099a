"""``madness-train``: train the MADNESS β-VAE, latent flow and VAE-deblender (paper App. B).

The stages run in order, each reading the previous one's ``best.pt`` from the same ``--out``
folder: ``vae`` → ``flow`` (needs the VAE encoder) and ``vae`` → ``deblender`` (needs the
VAE encoder); ``all`` runs the three. Data come from HDF5 shards written by ``madness-sim``
or, without them, are simulated on the fly from a CatSim catalogue or the built-in population.

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 3 and App. B.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

__all__ = ["main"]

_DESCRIPTION = """\
Train the networks of the MADNESS deblender (Biswas et al. 2025, Sec. 3 and App. B):

  vae        denoising beta-VAE on isolated galaxies (IsolatedSims): noisy stamp in,
             noiseless stamp out; beta = 0.01 and an SSIM warm-up
  flow       normalizing flow (the latent prior) on latent samples of the trained VAE encoder
  deblender  a copy of the VAE encoder retrained on blends (BlendedSims) to give the latent
             code of the central galaxy
  all        vae, then flow, then deblender

Everything a stage writes goes to OUT/<stage>/: checkpoint.pt (every epoch), best.pt (the
lowest validation loss), metrics.csv, metrics.json and loss.png. flow and deblender read
OUT/vae/best.pt and reuse its network sizes. Stop at any time and continue with the same
command plus --resume.

Data: --train-shards/--val-shards folders written by madness-sim (isolated shards for vae and
flow, blended shards for the deblender; give both kinds for `all`), or else galaxies simulated
on the fly from --catalog (a CatSim FITS catalogue) or the built-in population, with disjoint
train and validation galaxies.

Defaults are the paper's recipe (Adam, lr 1e-5, flow 1e-4, batch 100, clip 0.1 / 0.01, lr / 2.5
every 40 epochs, patience 20, 50 SSIM warm-up epochs). Short CPU runs need a larger --lr (1e-3).

examples:
  # a quick CPU try (minutes), simulating galaxies on the fly
  madness-train all --out runs/try --epochs 5 --steps-per-epoch 20 --batch-size 32 --lr 1e-3 \\
      --population-size 2000

  # the paper's recipe on a GPU, from simulated shards
  madness-sim isolated --scenes 150000 --out sims/iso-train
  madness-sim isolated --split validation --scenes 20000 --out sims/iso-val
  madness-sim blended --scenes 75000 --out sims/blend-train
  madness-sim blended --split validation --scenes 10000 --out sims/blend-val
  madness-train all --profile paper --out runs/paper --workers 8 \\
      --train-shards sims/iso-train --train-shards sims/blend-train \\
      --val-shards sims/iso-val --val-shards sims/blend-val

  # one stage at a time, and continuing an interrupted one
  madness-train vae --out runs/try --epochs 20 --lr 1e-3
  madness-train flow --out runs/try --epochs 20 --lr 1e-3 --resume
"""

# The simulated data set each stage learns from.
_STAGE_KIND = {"vae": "isolated", "flow": "isolated", "deblender": "blended"}


def _parser() -> argparse.ArgumentParser:
    from .training import STAGES

    parser = argparse.ArgumentParser(prog="madness-train", description=_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stage", choices=(*STAGES, "all", "population"),
                        help="what to train: vae, flow, deblender or all; 'population' writes the galaxies of "
                             "budget training to --out FILE.npz (on a machine with astropy, for one without)")
    group = parser.add_argument_group("output")
    group.add_argument("--out", type=Path, default=Path("training"), metavar="DIR",
                       help="folder for checkpoints, metrics and plots (default: %(default)s)")
    group.add_argument("--resume", action="store_true", help="continue each stage from OUT/<stage>/checkpoint.pt")
    group.add_argument("--quiet", action="store_true", help="no progress bars or log messages")
    group = parser.add_argument_group("networks")
    group.add_argument("--profile", choices=("paper", "light", "tiny"),
                       help="network sizes: 'paper' (App. B), 'light' (smaller networks, faster deblending) or "
                            "'tiny' (smoke tests only); "
                            "default: light for vae, that of OUT/vae/best.pt for flow and deblender")
    group.add_argument("--model-config", type=Path, metavar="FILE",
                       help="YAML or JSON ModelConfig fields over the profile, e.g. "
                            "'{\"encoder\": {\"channels\": [8, 16, 16, 16], \"denseUnits\": 64}}'")
    group = parser.add_argument_group("data")
    group.add_argument("--train-shards", type=Path, action="append", default=[], metavar="DIR",
                       help="madness-sim shards to train on (repeat for isolated and blended)")
    group.add_argument("--val-shards", type=Path, action="append", default=[], metavar="DIR",
                       help="madness-sim shards to validate on (repeat for isolated and blended)")
    group.add_argument("--catalog", type=Path, help="CatSim-format catalogue FITS to simulate from "
                                                    "(default: the built-in population)")
    group.add_argument("--population-size", type=int, default=20_000, metavar="N",
                       help="galaxies of the built-in population, before the train/validation/test split "
                            "(default: %(default)s)")
    group.add_argument("--population-seed", type=int, default=0, metavar="SEED",
                       help="seed of the built-in population (default: %(default)s)")
    group.add_argument("--snr-cut", type=float, default=10.0, metavar="S",
                       help="simulate galaxies with r-band S/N >= S (paper App. A; 0 keeps all; "
                            "default: %(default)s)")
    group = parser.add_argument_group("training (options apply to every stage run)")
    group.add_argument("--training-config", type=Path, metavar="FILE",
                       help="YAML or JSON TrainingConfig fields (per-stage values under vae/flow/deblender); "
                            "the options below override it")
    group.add_argument("--epochs", type=int, metavar="N", help="most epochs per stage (default: 250 vae, 200 others)")
    group.add_argument("--steps-per-epoch", type=int, metavar="N",
                       help="batches per epoch (default: one pass over the shards, or over the split's galaxies "
                            "when simulating)")
    group.add_argument("--batch-size", type=int, metavar="N", help="stamps per batch (default: 100)")
    group.add_argument("--lr", type=float, metavar="LR", help="initial learning rate (default: 1e-5, flow 1e-4)")
    group.add_argument("--patience", type=int, metavar="N", help="early-stopping patience in epochs (default: 20)")
    group.add_argument("--warmup-epochs", type=int, metavar="N", help="VAE SSIM warm-up epochs (default: 50)")
    group.add_argument("--device", metavar="DEV", help="auto, cpu, cuda or cuda:N (default: auto)")
    group.add_argument("--autocast", action="store_true", help="bfloat16 autocast on CUDA")
    group.add_argument("--workers", type=int, metavar="N",
                       help="data-loading worker processes (default: all cores but one, at most 8, when "
                            "simulating; at most 4 reading shards)")
    group.add_argument("--validation-stamps", type=int, metavar="N", help="validation stamps (default: 1000)")
    group.add_argument("--seed", type=int, metavar="SEED",
                       help="seed of training and of the simulated noise (default: 0)")
    group = parser.add_argument_group(
        "budget training (--minutes): galaxies drawn on the training device in the model frame; "
        "needs torch, numpy, pydantic and zuko only")
    group.add_argument("--minutes", type=float, metavar="M",
                       help="train all three stages within M wall-clock minutes (stage 'all' only) on stamps "
                            "rendered on the device, observed through random PSFs, learning the model frame; "
                            "exports OUT/models")
    group.add_argument("--population", type=Path, metavar="FILE",
                       help="train/validation galaxies as written by `madness-train population` (.npz; default: "
                            "the built-in population, generated here, which needs astropy)")
    group.add_argument("--init", metavar="DIR",
                       help="start from an exported model directory, or 'shipped' for the package's weights "
                            "(fine-tuning: training time adds up across runs)")
    group.add_argument("--model-psf", type=float, metavar="ARCSEC",
                       help="FWHM of the model frame's Gaussian PSF (default: ModelFrame's, 0.35)")
    group.add_argument("--metric-stamps", type=int, metavar="N",
                       help="held-out isolated galaxies of the per-band metrics (default: 5000)")
    return parser


def _readMapping(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text())  # JSON is YAML
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML or JSON ({' '.join(str(error).split())})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of fields, got {type(data).__name__}")
    return data


def _modelConfig(args, stage: str):
    """The model's configuration: profile and file, or that of the trained VAE for the later stages."""
    from .config import ModelConfig
    from .training import loadCheckpointModels, stagePath

    overrides = _readMapping(args.model_config) if args.model_config is not None else {}
    if args.profile is None and not overrides and stage in ("flow", "deblender"):
        path = stagePath(args.out, "vae")
        if path.is_file():
            return loadCheckpointModels(path)[0]
    if overrides:
        overrides.setdefault("profile", "custom")
    return ModelConfig.fromProfile(args.profile or "light", **overrides)


def _trainingConfig(args, streaming: bool):
    from .training import TrainingConfig

    data = _readMapping(args.training_config) if args.training_config is not None else {}
    config = TrainingConfig.model_validate(data)
    stageFields = {"epochs": args.epochs, "stepsPerEpoch": args.steps_per_epoch, "batchSize": args.batch_size,
                   "lr": args.lr, "patience": args.patience}
    stageFields = {k: v for k, v in stageFields.items() if v is not None}
    if stageFields:
        config = config.withStageOverrides(**stageFields)
    updates = {"device": args.device, "seed": args.seed, "validationStamps": args.validation_stamps,
               "ssimWarmupEpochs": args.warmup_epochs, "workers": args.workers}
    if args.autocast:
        updates["autocast"] = True
    if args.workers is None and "workers" not in data:
        # Simulating is the slow part of a step: spread it over the cores, leaving one to train.
        updates["workers"] = min(8, max(0, (os.cpu_count() or 1) - 1)) if streaming else min(4, os.cpu_count() or 1)
    updates = {k: v for k, v in updates.items() if v is not None}
    return TrainingConfig.model_validate({**config.model_dump(), **updates})


class _Data:
    """Training and validation data of each stage: shards by kind, else the simulator."""

    def __init__(self, args, modelConfig):
        from ..sim.shards import SimulationShards

        self.args, self.modelConfig, self._galaxies = args, modelConfig, None
        self.shards: dict[str, dict[str, list]] = {"train": {}, "validation": {}}
        for role, folders in (("train", args.train_shards), ("validation", args.val_shards)):
            for folder in folders:
                if not Path(folder).exists():
                    raise FileNotFoundError(f"{folder}: no such shard folder (write one with `madness-sim isolated "
                                            f"--out {folder}` or `madness-sim blended --out {folder}`)")
                shards = SimulationShards(folder)
                kind = shards.description["kind"]
                if kind not in ("isolated", "blended"):
                    raise ValueError(f"{folder}: {kind} shards cannot train a network; use isolated or blended "
                                     "shards")
                if shards.description["split"] != role:
                    print(f"madness-train: note: {folder} holds the {shards.description['split']!r} split, "
                          f"used here for {role}", file=sys.stderr)
                self.shards[role].setdefault(kind, []).append(shards)

    def streaming(self, stages: list[str]) -> bool:
        return any(_STAGE_KIND[s] not in self.shards["train"] for s in stages)

    def galaxies(self):
        if self._galaxies is None:
            self._galaxies = _galaxies(self.args)
        return self._galaxies

    def _stream(self, kind: str, split: str, seed: int):
        from ..sim.datasets import DATASETS
        from ..sim.stream import SimulationStream

        dataset = DATASETS[kind](self.galaxies(), split, seed=seed, bands=list(self.modelConfig.bands))
        return SimulationStream(dataset), len(dataset.galaxies)

    def forStage(self, stage: str, config, single: bool) -> tuple[Any, Any, Any]:
        """Training data, validation data and the training config (steps per epoch set for streams)."""
        from torch.utils.data import ConcatDataset

        kind = _STAGE_KIND[stage]
        if single and self.shards["train"] and kind not in self.shards["train"]:
            raise ValueError(f"{stage} trains on {kind} shards (madness-sim {kind}) but --train-shards holds "
                             f"{', '.join(sorted(self.shards['train']))} shards")
        sets = {}
        for role, split in (("train", "train"), ("validation", "validation")):
            found = self.shards[role].get(kind)
            if found:
                sets[role] = found[0] if len(found) == 1 else ConcatDataset(found)
            else:
                if self.shards[role]:
                    print(f"madness-train: note: no {kind} {role} shards given: {stage} simulates its {role} "
                          "data on the fly", file=sys.stderr)
                stream, nGalaxies = self._stream(kind, split, config.seed)
                sets[role] = stream
                stageConfig = config.stage(stage)
                if role == "train" and stageConfig.stepsPerEpoch is None:
                    # An endless stream: one epoch shows as many stamps as the split has galaxies.
                    steps = max(1, math.ceil(nGalaxies / stageConfig.batchSize))
                    config = config.withStageOverrides([stage], stepsPerEpoch=steps)
        return sets["train"], sets["validation"], config


def _population(args, bands):
    """Train and validation galaxy arrays for budget training: the --population file, or generated here."""
    from ..sim.trainingStamps import loadPopulationArrays

    if args.population is not None:
        if not args.population.is_file():
            raise FileNotFoundError(f"{args.population}: no such population file (write one with "
                                    f"`madness-train population --out {args.population}`)")
        arrays = {split: loadPopulationArrays(args.population, split) for split in ("train", "validation")}
    else:
        from ..sim.trainingStamps import trainingSplits

        arrays = trainingSplits(_galaxies(args), bands)
    stored = [str(b) for b in arrays["train"]["bands"]]
    if stored != list(bands):
        raise ValueError(f"{args.population}: galaxies with bands {''.join(stored)}, the models take {''.join(bands)}")
    return arrays


def _galaxies(args):
    """The CatSim catalogue of --catalog, or the built-in population, with the S/N cut of the options."""
    from ..sim.galaxies import loadGalaxies

    return loadGalaxies(args.catalog, nGalaxies=args.population_size, seed=args.population_seed,
                        snrCut=args.snr_cut if args.snr_cut > 0 else None)


def _writePopulation(args) -> int:
    from ..sim.trainingStamps import savePopulationArrays

    out = args.out if args.out.suffix == ".npz" else args.out.with_suffix(".npz")
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays = savePopulationArrays(out, _galaxies(args), _modelConfig(args, "vae").bands)
    print(f"{out}: {len(arrays['train']['magnitudes'])} train and {len(arrays['validation']['magnitudes'])} "
          f"validation galaxies ({out.stat().st_size / 1e6:.1f} MB)")
    return 0


def _runBudget(args) -> int:
    from ..sim.trainingStamps import TrainingStampSimulator
    from .budgetTraining import BudgetConfig, BudgetStage, trainWithinBudget
    from .config import ModelFrame
    from .device import resolveDevice
    from .export import shippedModelsPath

    if args.stage != "all":
        raise ValueError("--minutes trains the three stages together: use `madness-train all --minutes M`")
    unused = [flag for flag, value in (("--train-shards", args.train_shards), ("--val-shards", args.val_shards),
                                       ("--epochs", args.epochs), ("--steps-per-epoch", args.steps_per_epoch),
                                       ("--resume", args.resume), ("--warmup-epochs", args.warmup_epochs))
              if value]
    if unused:
        raise ValueError(f"{', '.join(unused)} belong to epoch training; budget training (--minutes) draws its own "
                         "stamps and resumes from OUT by itself")
    base = _modelConfig(args, "vae")
    frame = ModelFrame.forSurvey(base.bands, **({} if args.model_psf is None else {"psfFwhm": args.model_psf}))
    modelConfig = base.model_validate({**base.model_dump(), "modelFrame": frame.model_dump(),
                                       "decoder": {**base.decoder.model_dump(), "outputActivation": "softplus"}})
    device = resolveDevice(args.device or "auto")
    arrays = _population(args, modelConfig.bands)
    simulators = [TrainingStampSimulator(arrays[split], modelConfig.bands, frame, stampSize=modelConfig.stampSize,
                                         device=device)
                  for split in ("train", "validation")]
    fields = {"minutes": args.minutes, "device": str(device), "batchSize": args.batch_size, "seed": args.seed,
              "validationStamps": args.validation_stamps, "metricStamps": args.metric_stamps}
    config = BudgetConfig.model_validate({k: v for k, v in fields.items() if v is not None})
    if args.lr is not None:
        config = config.model_copy(update={s: BudgetStage(**{**config.stage(s).model_dump(), "lr": args.lr})
                                           for s in ("vae", "flow", "deblender")})
    init = shippedModelsPath() if args.init == "shipped" else args.init
    summary = trainWithinBudget(modelConfig, config, simulators[0], simulators[1], args.out, initFrom=init,
                                progress=not args.quiet, recipe=[" ".join(["madness-train", *sys.argv[1:]])])
    for stage, record in summary["training"]["stages"].items():
        print(f"{stage}: {record['steps']} steps, {record['stampsSeen']} stamps, {record['seconds']:.0f} s; "
              f"validation loss {record['initialValLoss']:.5g} -> {record['finalValLoss']:.5g}")
    perBand = summary["validation"]["perBand"]
    print("held-out cosine / mean |dF/F| per band: " + ", ".join(
        f"{b} {m['meanCosine']:.3f}/{m['meanAbsFluxError']:.3f}" for b, m in perBand.items()))
    if summary["validation"]["lowCosineBands"] or summary["validation"]["deadBands"]:
        print(f"madness-train: warning: weak bands {summary['validation']['lowCosineBands']}, dead bands "
              f"{summary['validation']['deadBands']}", file=sys.stderr)
    print(f"models: {summary['card']}")
    return 0


def _run(args) -> int:
    if args.stage == "population":
        return _writePopulation(args)
    if args.minutes is not None:
        return _runBudget(args)
    from .provenance import writeDataRecord
    from .training import STAGES, requireVaeCheckpoint, stagePath, trainDeblender, trainFlow, trainVae

    stages = list(STAGES) if args.stage == "all" else [args.stage]
    if stages[0] != "vae":
        requireVaeCheckpoint(args.out, stages[0])  # before any data are read or simulated
    modelConfig = _modelConfig(args, stages[0])
    data = _Data(args, modelConfig)
    config = _trainingConfig(args, data.streaming(stages))
    progress = not args.quiet
    for stage in stages:
        trainData, validationData, stageConfig = data.forStage(stage, config, single=len(stages) == 1)
        writeDataRecord(Path(args.out) / stage, trainData, validationData)
        common = dict(trainData=trainData, validationData=validationData, outDir=args.out, resume=args.resume,
                      progress=progress)
        if stage == "vae":
            result = trainVae(modelConfig, stageConfig, **common)
        elif stage == "flow":
            result = trainFlow(None, modelConfig, stageConfig, **common)
        else:
            result = trainDeblender(None, modelConfig, stageConfig, **common)
        last = result.history[-1]
        stopped = ", stopped early" if result.stoppedEarly else ""
        print(f"{stage}: {last['epoch']} epochs{stopped}; best epoch {result.bestEpoch}, validation loss "
              f"{result.bestLoss:.6g} (untrained {result.initialValLoss:.6g}); {result.seconds:.1f} s; "
              f"best weights {stagePath(args.out, stage)}")
    if args.stage == "vae":
        print(f"next: madness-train flow --out {args.out}  and  madness-train deblender --out {args.out}")
    print(f"metrics and loss curves: {args.out}/<stage>/metrics.csv, loss.png")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run ``madness-train``; returns the exit status (2 with a one-line message on errors).

    Parameters
    ----------
    argv : `list` [`str`], optional
        The command-line arguments after the program name (``madness-train --help`` lists them);
        None: ``sys.argv[1:]``.

    Returns
    -------
    status : `int`
        0 on success; 2 after a one-line message on standard error for a ``ValueError``, ``OSError`` or
        ``FloatingPointError``; 130 when interrupted.

    Examples
    --------
    The flow stage needs a trained VAE in ``--out``; without one the command says so (on standard error)
    and returns 2:

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as run:
    ...     main(["flow", "--out", run, "--quiet"])
    2
    """
    args = _parser().parse_args(argv)
    if not args.quiet:
        logging.basicConfig(level=logging.INFO, format="madness-train: %(message)s")
    try:
        return _run(args)
    except (ValueError, OSError, FloatingPointError) as error:
        message = " ".join(str(error).split())  # pydantic and h5py messages span lines
        print(f"madness-train {args.stage}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"madness-train {args.stage}: interrupted; the last finished epoch is in "
              f"{args.out}/<stage>/checkpoint.pt: run the same command with --resume to continue", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
