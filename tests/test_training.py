"""Training of the β-VAE, flow and VAE-deblender, and the madness-train command.

Tiny networks on a few simulated stamps (all six bands), so every run takes about a second.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pydantic
import pytest
import torch

from lsst.meas.extensions.madness.models.config import ModelConfig
from lsst.meas.extensions.madness.models.trainCli import main as trainMain
from lsst.meas.extensions.madness.models.training import (
    TrainingConfig,
    learningRateFactor,
    loadCheckpointModels,
    stagePath,
    trainDeblender,
    trainFlow,
    trainVae,
)
from lsst.meas.extensions.madness.sim import BlendedSims, IsolatedSims, SimulationStream, loadGalaxies, writeShards

TINY = ModelConfig.fromProfile("tiny")

# A larger learning rate than the paper's, so a handful of steps moves the loss.
FAST = TrainingConfig(ssimWarmupEpochs=1, validationStamps=8, seed=0, device="cpu").withStageOverrides(
    lr=3e-3, epochs=4, batchSize=8
)


@pytest.fixture(scope="module")
def galaxies():
    return loadGalaxies(nGalaxies=200, seed=0)


@pytest.fixture(scope="module")
def isolated(galaxies) -> list[dict]:
    return list(SimulationStream(IsolatedSims(galaxies, "train", seed=0), stop=16))


@pytest.fixture(scope="module")
def blended(galaxies) -> list[dict]:
    return list(SimulationStream(BlendedSims(galaxies, "train", seed=0), stop=8))


@pytest.fixture(scope="module")
def vaeRun(tmp_path_factory, isolated):
    outDir = tmp_path_factory.mktemp("training")
    return outDir, trainVae(TINY, FAST, isolated, isolated[:8], outDir, progress=False)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    _, _, models = loadCheckpointModels(path)
    return {f"{name}.{key}": value for name, module in models.items() for key, value in module.state_dict().items()}


def test_vae_loss_decreases_and_outputs(vaeRun, galaxies):
    outDir, result = vaeRun
    losses = [row["valLoss"] for row in result.history]
    # The validation loss is on the same fixed stamps with the same latent draws every epoch.
    assert losses[-1] < losses[0] < result.initialValLoss
    assert result.bestEpoch == int(np.argmin(losses)) + 1 and result.bestLoss == min(losses)
    # Lists of dicts carry no survey description: σ_b² comes from the variance planes.
    sky = IsolatedSims(galaxies, "train").renderer.sky
    np.testing.assert_allclose(result.skyVariance, sky, rtol=1e-3)
    directory = outDir / "vae"
    for name in ("checkpoint.pt", "best.pt", "metrics.csv", "metrics.json", "loss.png"):
        assert (directory / name).stat().st_size > 0, name
    with open(directory / "metrics.csv") as stream:
        rows = list(csv.DictReader(stream))
    assert [int(r["epoch"]) for r in rows] == [1, 2, 3, 4]
    assert set(rows[0]) == {"epoch", "trainLoss", "valLoss", "lr", "seconds"}
    assert float(rows[-1]["valLoss"]) == pytest.approx(losses[-1])
    metrics = json.loads((directory / "metrics.json").read_text())
    assert metrics["stage"] == "vae" and metrics["bestEpoch"] == result.bestEpoch
    assert (directory / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config, stage, models = loadCheckpointModels(directory / "best.pt")
    assert stage == "vae" and config == TINY and set(models) == {"encoder", "decoder"}
    assert models["decoder"](torch.zeros(1, TINY.latentDim)).shape == (1, 6, 45, 45)


def test_flow_nll_decreases(vaeRun, isolated):
    outDir, _ = vaeRun
    result = trainFlow(None, TINY, FAST, isolated, isolated[:8], outDir, progress=False)
    assert result.history[-1]["valLoss"] < result.history[0]["valLoss"] < result.initialValLoss
    z = torch.zeros(3, TINY.latentDim)
    assert result.models["flow"]().log_prob(z).shape == (3,)
    assert stagePath(outDir, "flow").is_file()


def test_deblender_latent_distance_decreases(vaeRun, blended):
    outDir, vae = vaeRun
    result = trainDeblender(vae.models["encoder"], TINY, FAST, blended, blended[:8], outDir, progress=False)
    assert result.history[-1]["valLoss"] < result.initialValLoss
    # Initialised from the VAE encoder, then moved away from it.
    start = vae.models["encoder"].state_dict()
    assert any(not torch.equal(start[k], v) for k, v in result.models["encoder"].state_dict().items())


def test_resume_continues_from_checkpoint(tmp_path, isolated):
    straight = trainVae(TINY, FAST, isolated, isolated[:8], tmp_path / "straight", progress=False)
    twoEpochs = FAST.withStageOverrides(["vae"], epochs=2)
    first = trainVae(TINY, twoEpochs, isolated, isolated[:8], tmp_path / "split", progress=False)
    assert [row["epoch"] for row in first.history] == [1, 2]
    resumed = trainVae(TINY, FAST, isolated, isolated[:8], tmp_path / "split", resume=True, progress=False)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    assert resumed.history[:2] == first.history
    # Weights, optimiser, data order and random draws all restored: the same run as without a break.
    np.testing.assert_allclose([r["valLoss"] for r in resumed.history], [r["valLoss"] for r in straight.history],
                               rtol=1e-5)
    a = _weights(tmp_path / "straight" / "vae" / "checkpoint.pt")
    b = _weights(tmp_path / "split" / "vae" / "checkpoint.pt")
    assert all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)
    # Resuming a finished run trains no further.
    again = trainVae(TINY, FAST, isolated, isolated[:8], tmp_path / "split", resume=True, progress=False)
    assert len(again.history) == 4
    other = TINY.model_copy(update={"latentDim": 8})
    with pytest.raises(ValueError, match="different model configuration"):
        trainVae(other, FAST, isolated, isolated[:8], tmp_path / "split", resume=True, progress=False)


def test_flow_without_vae_names_missing_file(tmp_path, isolated):
    with pytest.raises(FileNotFoundError, match=r"vae/best\.pt not found.*madness-train vae"):
        trainFlow(None, TINY, FAST, isolated, isolated[:8], tmp_path, progress=False)
    with pytest.raises(FileNotFoundError, match=r"deblender stage needs the trained VAE"):
        trainDeblender(None, TINY, FAST, isolated, isolated[:8], tmp_path, progress=False)


def test_wrong_bands_and_keys_are_explained(tmp_path, isolated, blended):
    twoBands = TINY.model_copy(update={"bands": ("g", "r")})
    with pytest.raises(ValueError, match=r"shape \(6, 45, 45\).*bands gr"):
        trainVae(twoBands, FAST, isolated, isolated[:8], tmp_path, progress=False)
    onlyNoisy = [{"blended": item["blended"], "blendedVariance": item["blendedVariance"]} for item in isolated]
    with pytest.raises(ValueError, match=r"vae validation data: the stamps \['isolated'\] are needed"):
        trainVae(TINY, FAST, onlyNoisy, onlyNoisy[:8], tmp_path, progress=False)


def test_training_config():
    config = TrainingConfig()
    assert (config.vae.lr, config.flow.lr, config.deblender.lr) == (1e-5, 1e-4, 1e-5)
    assert (config.vae.clipValue, config.flow.clipValue, config.beta, config.vae.batchSize) == (0.1, 0.01, 0.01, 100)
    assert config.vae.lrDecayEvery == 40 and config.vae.lrDecayFactor == 2.5 and config.vae.patience == 20
    with pytest.raises(pydantic.ValidationError):
        TrainingConfig(learningRate=1.0)
    with pytest.raises(pydantic.ValidationError):
        TrainingConfig(device="tpu-please")
    with pytest.raises(pydantic.ValidationError):
        config.seed = 3
    assert learningRateFactor(config.vae, 45, restartEpoch=50) == pytest.approx(1 / 2.5)
    assert learningRateFactor(config.vae, 89, restartEpoch=50) == 1.0


def _cliSizes(tmp_path: Path) -> list[str]:
    modelFile = tmp_path / "tiny.json"
    modelFile.write_text(TINY.model_dump_json())
    return ["--model-config", str(modelFile), "--epochs", "2", "--steps-per-epoch", "2", "--batch-size", "4",
            "--validation-stamps", "4", "--workers", "0", "--lr", "1e-3", "--warmup-epochs", "1", "--quiet"]


def test_cli_all_end_to_end(tmp_path, capsys):
    out = tmp_path / "run"
    assert trainMain(["all", "--out", str(out), "--population-size", "200", *_cliSizes(tmp_path)]) == 0
    printed = capsys.readouterr().out
    for stage in ("vae", "flow", "deblender"):
        assert f"{stage}: 2 epochs" in printed
        assert (out / stage / "best.pt").is_file() and (out / stage / "loss.png").is_file()
        assert len((out / stage / "metrics.csv").read_text().splitlines()) == 3
    _, stage, models = loadCheckpointModels(out / "deblender" / "best.pt")
    assert stage == "deblender" and set(models) == {"encoder"}


def test_cli_vae_from_shards(tmp_path, galaxies, capsys):
    trainDir, valDir = tmp_path / "iso-train", tmp_path / "iso-val"
    writeShards(IsolatedSims(galaxies, "train", seed=0), trainDir, 8, workers=1, progress=False)
    writeShards(IsolatedSims(galaxies, "validation", seed=0), valDir, 4, workers=1, progress=False)
    out = tmp_path / "run"
    shards = ["--train-shards", str(trainDir), "--val-shards", str(valDir)]
    argv = ["vae", "--out", str(out), *shards, *_cliSizes(tmp_path)]
    assert trainMain(argv) == 0
    metrics = json.loads((out / "vae" / "metrics.json").read_text())
    # Shards describe their survey: σ_b² is the mean sky exactly.
    np.testing.assert_allclose(metrics["skyVariance"], IsolatedSims(galaxies, "train").renderer.sky, rtol=1e-6)
    # The deblender needs blended shards: a one-line error, exit status 2.
    capsys.readouterr()
    assert trainMain(["deblender", "--out", str(out), "--train-shards", str(trainDir), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert "blended shards" in error and error.count("\n") == 1


def test_cli_flow_without_vae_fails_with_one_line(tmp_path, capsys):
    assert trainMain(["flow", "--out", str(tmp_path / "empty"), "--quiet"]) == 2
    error = capsys.readouterr().err
    assert error.startswith("madness-train flow: error:") and error.count("\n") == 1
    assert "vae/best.pt" in error and "madness-train vae" in error


def test_cli_help(capsys):
    with pytest.raises(SystemExit) as exit:
        trainMain(["--help"])
    assert exit.value.code == 0
    text = capsys.readouterr().out
    assert "examples:" in text and "madness-train all" in text and "--resume" in text and "--train-shards" in text
