"""From a training run to the shipped model directory: export, validation metrics, figures, shipped weights.

A tiny run (all three stages, a few stamps from shards) is exported with ``madness-models
export``, measured with ``madness-models evaluate`` and drawn with ``madness-models plots``;
the metrics are checked against an eager computation. The weights shipped in the package are
loaded as a fresh clone would, with no network and no zuko.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lsst.meas.extensions.madness.models import (
    SHIPPED_MODELS,
    ModelCardError,
    loadModels,
    loadShippedModels,
    shippedModelsPath,
)
from lsst.meas.extensions.madness.models.config import ModelConfig
from lsst.meas.extensions.madness.models.modelsCli import main as modelsMain
from lsst.meas.extensions.madness.models.trainCli import main as trainMain
from lsst.meas.extensions.madness.models.validation import (
    cosineSimilarity,
    evaluateModels,
    predictStamps,
    relativeFluxError,
)
from lsst.meas.extensions.madness.sim import BlendedSims, IsolatedSims, loadGalaxies, writeShards
from lsst.meas.extensions.madness.sim.shards import SimulationShards

TINY = ModelConfig.fromProfile("tiny")


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    """Shards, a trained tiny run, and its exported model directory."""
    root = tmp_path_factory.mktemp("release")
    galaxies = loadGalaxies(nGalaxies=300, seed=0)
    shards = {}
    for name, kind, split, scenes in (("iso-train", IsolatedSims, "train", 8),
                                      ("iso-val", IsolatedSims, "validation", 6),
                                      ("blend-train", BlendedSims, "train", 4),
                                      ("blend-val", BlendedSims, "validation", 4)):
        shards[name] = root / name
        writeShards(kind(galaxies, split, seed=1), shards[name], scenes, workers=1, progress=False)
    modelFile = root / "tiny.json"
    modelFile.write_text(TINY.model_dump_json())
    run = root / "run"
    argv = ["all", "--out", str(run), "--model-config", str(modelFile), "--epochs", "2", "--steps-per-epoch", "2",
            "--batch-size", "4", "--validation-stamps", "4", "--workers", "0", "--lr", "1e-3", "--warmup-epochs", "1",
            "--quiet"]
    for role, names in (("--train-shards", ("iso-train", "blend-train")), ("--val-shards", ("iso-val", "blend-val"))):
        for name in names:
            argv += [role, str(shards[name])]
    assert trainMain(argv) == 0
    recipe = root / "recipe.sh"
    recipe.write_text("madness-sim isolated --scenes 8\nmadness-train all --epochs 2\n")
    export = root / "export"
    assert modelsMain(["export", str(run), "--to", str(export), "--recipe", str(recipe)]) == 0
    return shards, run, export


def test_export_records_provenance(release):
    _shards, _run, export = release
    card = json.loads((export / "model_card.json").read_text())
    stages = card["training"]["stages"]
    assert set(stages) == {"vae", "flow", "deblender"}
    vaeData = stages["vae"]["data"]
    assert vaeData["train"]["source"] == "shards" and vaeData["train"]["kind"] == "isolated"
    assert vaeData["train"]["split"] == "train" and vaeData["train"]["galaxies"] == 8
    assert vaeData["validation"]["split"] == "validation" and vaeData["validation"]["galaxies"] == 6
    assert stages["deblender"]["data"]["train"]["kind"] == "blended"
    assert stages["vae"]["epochsRun"] == 2 and stages["vae"]["stageConfig"]["batchSize"] == 4
    assert stages["vae"]["beta"] == 0.01
    assert card["training"]["recipe"] == ["madness-sim isolated --scenes 8", "madness-train all --epochs 2"]
    # Survey conditions come from the shards that trained the VAE.
    assert card["surveyConditions"]["bands"]["r"]["zeroPoint"] > 0
    assert card["modelConfig"] == json.loads(TINY.model_dump_json())


def test_export_of_incomplete_run_names_the_stage(tmp_path, release, capsys):
    _, run, _ = release
    partial = tmp_path / "partial"
    (partial / "vae").mkdir(parents=True)
    (partial / "vae" / "best.pt").write_bytes((run / "vae" / "best.pt").read_bytes())
    assert modelsMain(["export", str(partial), "--to", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert "flow/best.pt" in error and "madness-train flow" in error and error.count("\n") == 1


def test_evaluate_matches_eager_metrics_and_writes_card(release, tmp_path, capsys):
    shards, _, export = release
    markdown = tmp_path / "metrics.md"
    argv = ["evaluate", str(export), "--isolated", str(shards["iso-val"]), "--blended", str(shards["blend-val"]),
            "--stamps", "6", "--write-card", "--markdown", str(markdown), "--quiet"]
    assert modelsMain(argv) == 0
    card = json.loads((export / "model_card.json").read_text())
    metrics = card["validation"]
    assert metrics["vae"]["stamps"] == 6 and metrics["deblender"]["stamps"] == 6
    assert "--stamps 6" in metrics["command"] and "| VAE reconstruction" in markdown.read_text()
    # Independent recomputation from the stamps and the loaded TorchScript networks.
    models = loadModels(export)  # the card edit keeps the checksums valid
    iso = SimulationShards(shards["iso-val"], arrays=["blended", "isolated"])
    stamps = np.stack([iso[i]["blended"] for i in range(6)])
    truth = np.stack([iso[i]["isolated"] for i in range(6)])[:, 2]
    with torch.no_grad():
        mean, _ = models.encoder(torch.as_tensor(stamps) / 1e4)
        decoded = models.decoder(mean).numpy()[:, 2] * 1e4
    flat = decoded.reshape(6, -1).astype(float), truth.reshape(6, -1).astype(float)
    cos = (flat[0] * flat[1]).sum(1) / np.linalg.norm(flat[0], axis=1) / np.linalg.norm(flat[1], axis=1)
    assert metrics["vae"]["meanCosine"] == pytest.approx(cos.mean(), rel=1e-5)
    flux = (flat[0].sum(1) - flat[1].sum(1)) / flat[1].sum(1)
    assert metrics["vae"]["meanAbsFluxError"] == pytest.approx(np.abs(flux).mean(), rel=1e-5)
    # The flow must give a finite NLL, and N(0, I) a different one.
    assert np.isfinite(metrics["flowNll"]) and metrics["flowNll"] != metrics["standardNormalNll"]


def test_evaluate_refuses_too_few_stamps_and_wrong_kind(release, capsys):
    shards, _, export = release
    base = ["evaluate", str(export), "--quiet"]
    assert modelsMain(base + ["--isolated", str(shards["iso-val"]), "--blended", str(shards["blend-val"]),
                              "--stamps", "5000"]) == 2
    assert "hold 6 galaxies; 5000 were asked for" in capsys.readouterr().err
    assert modelsMain(base + ["--isolated", str(shards["blend-val"]), "--blended", str(shards["blend-val"])]) == 2
    assert "not isolated" in capsys.readouterr().err


def test_plots_are_written(release, tmp_path):
    shards, run, export = release
    out = tmp_path / "figures"
    argv = ["plots", str(export), "--run", str(run), "--isolated", str(shards["iso-val"]), "--blended",
            str(shards["blend-val"]), "--out", str(out)]
    assert modelsMain(argv) == 0
    for name in ("training", "reconstructions", "deblender_examples", "flow_samples", "latent_pairs"):
        assert (out / f"models_{name}.png").stat().st_size > 5000, name


def test_metric_functions():
    truth = np.zeros((3, 4, 4))
    truth[:, 1, 1] = [1.0, 2.0, 4.0]
    model = truth.copy()
    model[1] *= 1.5
    model[2, 0, 0] = 4.0  # same flux budget moved: cosine 1/√2, flux +100 %
    np.testing.assert_allclose(cosineSimilarity(model, truth), [1.0, 1.0, 1 / np.sqrt(2)])
    np.testing.assert_allclose(relativeFluxError(model, truth), [0.0, 0.5, 1.0])


# --------------------------------------------------------------------------------------------
# The weights that ship with the package.


def test_shipped_models_load_and_agree_with_their_card():
    directory = shippedModelsPath("lsst")
    models = loadShippedModels(bands="ugrizy", stampSize=45)
    card = models.card
    total = sum(entry["bytes"] for entry in card["files"].values())
    # The optional shape regressor (models/shapeRegressor.py) has its own entry, and ships.
    regressor = card["shapeRegressor"]["file"]
    assert (directory / regressor["path"]).stat().st_size == regressor["bytes"]
    total += regressor["bytes"]
    assert total <= 30 * 2**20, f"shipped artefacts take {total / 2**20:.1f} MiB"
    assert sum(p.stat().st_size for p in directory.glob("*.pt")) == total
    # A model frame, the card's per-band metrics on >= 5000 held-out galaxies, and a MAP step size.
    assert models.modelFrame["fluxUnit"] == "nJy" and len(models.modelFrame["bandScales"]) == 6
    metrics = card["validation"]["modelFrame"]
    assert metrics["stamps"] >= 5000 and set(metrics["perBand"]) == set("ugrizy")
    assert all(0 < m["meanCosine"] <= 1 for m in metrics["perBand"].values())
    assert models.mapLearningRate is not None and card["map"]["split"] == "validation"
    training = card["training"]
    assert training["kind"] == "budget" and training["galaxies"]["train"] > 0 and training["galaxies"]["validation"] > 0
    assert all(training["stages"][s]["stampsSeen"] > 0 for s in ("vae", "flow", "deblender"))
    with pytest.raises(ModelCardError, match="bands"):
        loadShippedModels(bands="gri")
    with pytest.raises(ValueError, match="no shipped models named 'hsc'"):
        shippedModelsPath("hsc")
    assert set(SHIPPED_MODELS) == {"lsst"}


def test_shipped_models_make_galaxies():
    """Decoded flow-typical latents are non-negative, finite galaxies centred in the stamp."""
    models = loadShippedModels()
    torch.manual_seed(0)
    with torch.no_grad():
        latents = 0.5 * torch.randn(16, 16)
        stamps = models.decode(latents).numpy()
        logPrior = models.logPrior(latents).numpy()
    assert stamps.shape == (16, 6, 45, 45) and np.isfinite(stamps).all() and (stamps >= 0).all()
    assert np.isfinite(logPrior).all()
    r = stamps[:, 2].sum(axis=0)
    y, x = np.unravel_index(np.argmax(r), r.shape)
    assert abs(y - 22) <= 2 and abs(x - 22) <= 2


def test_shipped_models_reconstruct_a_simulated_galaxy(tmp_path):
    """The shipped VAE turns bright observed galaxies (random PSFs, noise) into their model-frame
    selves with cosine similarity > 0.9 in r; so does the single-pass deblender, > 0.8."""
    from lsst.meas.extensions.madness.models.config import ModelFrame
    from lsst.meas.extensions.madness.sim import generatePopulation
    from lsst.meas.extensions.madness.sim.trainingStamps import (
        TrainingStampSimulator,
        loadPopulationArrays,
        savePopulationArrays,
    )

    models = loadShippedModels()
    savePopulationArrays(tmp_path / "population.npz", generatePopulation(400, seed=5), models.bands)
    simulator = TrainingStampSimulator(loadPopulationArrays(tmp_path / "population.npz", "validation"), models.bands,
                                       ModelFrame.model_validate(models.modelFrame))
    batch = simulator.isolated(48, torch.Generator().manual_seed(3))
    brightest = torch.argsort(batch["model"][:, 2].sum(dim=(1, 2)))[-4:]
    observed, truth = batch["observed"][brightest], batch["model"][brightest, 2].numpy()
    with torch.no_grad():
        decoded = models.decode(models.encoder(observed)[0])[:, 2].numpy()
        single = models.decode(models.deblenderEncoder(observed)[0])[:, 2].numpy()
    assert cosineSimilarity(decoded, truth).min() > 0.9, cosineSimilarity(decoded, truth)
    assert cosineSimilarity(single, truth).min() > 0.8


def test_evaluate_models_function_checks_bands(release):
    shards, _, export = release
    models = loadModels(export)
    iso = SimulationShards(shards["iso-val"], arrays=["blended", "isolated"])
    with pytest.raises(ValueError, match="hold 6 galaxies"):
        evaluateModels(models, iso, iso, count=7)


def test_training_configs_of_the_shipped_weights_are_valid():
    """The recipe files in config/training/ load as TrainingConfig; the shipped card's budget run
    loads as BudgetConfig and records the command that ran."""
    from lsst.meas.extensions.madness.models.budgetTraining import BudgetConfig
    from lsst.meas.extensions.madness.models.training import TrainingConfig

    folder = Path(__file__).resolve().parent.parent / "config" / "training"
    configs = {path.name: TrainingConfig.model_validate_json(path.read_text()) for path in folder.glob("*.json")}
    assert configs, f"no training configs in {folder}"
    training = loadShippedModels().card["training"]
    budget = BudgetConfig.model_validate(training["budgetConfig"])
    assert budget.minutes == training["minutes"]
    assert any(line.startswith("madness-train all") for line in training["recipe"])


def test_dead_output_channels_are_found(tmp_path):
    from lsst.meas.extensions.madness.models import Decoder, Encoder, exportModels, loadModels, makeFlow
    from lsst.meas.extensions.madness.models.validation import deadBands

    torch.manual_seed(0)
    decoder = Decoder(TINY)
    last = [m for m in decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)][-1]
    stamps = np.random.default_rng(0).uniform(0, 1e3, (8, 6, 45, 45)).astype(np.float32)
    with torch.no_grad():
        last.bias[:] = 1.0
    exportModels(tmp_path / "alive", TINY, Encoder(TINY), decoder, makeFlow(TINY), Encoder(TINY))
    alive = loadModels(tmp_path / "alive")
    truth = predictStamps(alive, stamps)  # a model that draws exactly the truth has no dead band
    with torch.no_grad():  # the u channel's ReLU can never fire
        last.weight[:, 0] = 0.0
        last.bias[0] = -1.0
    exportModels(tmp_path / "dead", TINY, Encoder(TINY), decoder, makeFlow(TINY), Encoder(TINY))
    assert deadBands(alive, stamps, truth) == []
    assert deadBands(loadModels(tmp_path / "dead"), stamps, truth) == ["u"]
