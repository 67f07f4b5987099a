"""The shape regressor (models/shapeRegressor.py), its command and its benchmark's statistics."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from lsst.meas.extensions.madness.benchmark import shapes as shapeBench
from lsst.meas.extensions.madness.models import loadModels
from lsst.meas.extensions.madness.models.export import ModelCardError
from lsst.meas.extensions.madness.models.modelsCli import main as modelsMain
from lsst.meas.extensions.madness.models.shapeRegressor import (
    CARD_KEY,
    SHAPE_REGRESSOR_FILE,
    ShapeRegressor,
    ShapeTrainingConfig,
    exportShapeRegressor,
    loadShapeRegressor,
    predictShapes,
    trainShapeRegressor,
)


def _synthetic(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Latents and a smooth non-linear map to distortions inside the unit disc."""
    generator = torch.Generator().manual_seed(seed)
    z = torch.randn(n, 16, generator=generator)
    e = torch.stack([0.6 * torch.tanh(z[:, 0] * z[:, 1] + 0.5 * z[:, 2]), 0.5 * torch.sin(z[:, 3] - z[:, 4])], dim=1)
    return z, e


def test_regressor_learns_a_synthetic_map_reproducibly():
    z, e = _synthetic(2000, 0)
    config = ShapeTrainingConfig(maxEpochs=40, patience=10, seed=3)
    result = trainShapeRegressor(z[:1600], e[:1600], z[1600:], e[1600:], config)
    baseline = e[1600:].std(dim=0)  # the RMSE of predicting the mean (one epoch reaches 0.85-0.93 of it; 40: 0.21)
    assert max(r / b for r, b in zip(result.validationRmse, baseline.tolist())) < 0.35, result.validationRmse
    assert 1 <= result.bestEpoch <= result.epochs <= 40
    assert not result.model.training
    # Held-out latents from another draw: the map is learnt, not the sample.
    zTest, eTest = _synthetic(500, 9)
    rmse = np.sqrt(np.mean((predictShapes(result.model, zTest) - eTest.numpy()) ** 2, axis=0))
    assert np.all(rmse < 0.35 * eTest.std(dim=0).numpy())
    again = trainShapeRegressor(z[:1600], e[:1600], z[1600:], e[1600:], config)
    assert again.validationRmse == result.validationRmse


def test_training_refuses_bad_sets():
    z, e = _synthetic(50, 1)
    with pytest.raises(ValueError, match="shapes"):
        trainShapeRegressor(z, e[:, :1], z, e)
    bad = e.clone()
    bad[3, 0] = float("nan")
    with pytest.raises(ValueError, match="finite"):
        trainShapeRegressor(z, bad, z, e)


def test_network_shape_and_output_range():
    model = ShapeRegressor(16, dropout=0.1).eval()
    out = model(100.0 * torch.randn(64, 16))
    assert out.shape == (64, 2) and bool((out.abs() <= 1).all())
    assert [m.out_features for m in model.net if isinstance(m, torch.nn.Linear)] == [128, 64, 32, 2]
    with pytest.raises(ValueError, match="dropout"):
        ShapeRegressor(dropout=1.0)


@pytest.fixture
def frameModels(tinyFrameModelDirectory, tmp_path):
    """A writable copy of the tiny model-frame model directory."""
    return shutil.copytree(tinyFrameModelDirectory, tmp_path / "models")


def test_export_and_load_round_trip_and_the_regressor_is_optional(frameModels):
    assert loadShapeRegressor(frameModels) is None  # no entry: nothing to load, and no error
    torch.manual_seed(0)
    model = ShapeRegressor(16, mean=torch.randn(16), std=torch.rand(16) + 0.5).eval()
    path = exportShapeRegressor(model, frameModels, {"galaxies": {"train": 1}})
    assert path.name == SHAPE_REGRESSOR_FILE and path.is_file()
    card = json.loads((frameModels / "model_card.json").read_text())
    assert card[CARD_KEY]["galaxies"] == {"train": 1} and card[CARD_KEY]["file"]["path"] == SHAPE_REGRESSOR_FILE
    assert "shapeRegressor" not in card["files"]  # the networks' files are unchanged
    models = loadModels(frameModels)
    loaded = loadShapeRegressor(models)
    z = torch.randn(7, 16)
    assert np.allclose(predictShapes(loaded, z), predictShapes(model, z), atol=1e-6)
    # A changed file is refused; a missing one is named.
    path.write_bytes(path.read_bytes() + b"\0")
    with pytest.raises(ModelCardError, match="sha256"):
        loadShapeRegressor(frameModels)
    path.unlink()
    with pytest.raises(FileNotFoundError, match=SHAPE_REGRESSOR_FILE):
        loadShapeRegressor(frameModels)
    loadModels(frameModels)  # the networks still load without it


def test_command_trains_and_writes_the_regressor(frameModels, tmp_path, capsys):
    from lsst.meas.extensions.madness.sim import generatePopulation
    from lsst.meas.extensions.madness.sim.trainingStamps import savePopulationArrays

    population = tmp_path / "population.npz"
    savePopulationArrays(population, generatePopulation(600, seed=2), "ugrizy")
    code = modelsMain(["shape-regressor", "--model-dir", str(frameModels), "--galaxies", "200", "--seed", "4",
                       "--population", str(population)])
    assert code == 0, capsys.readouterr().err
    entry = json.loads((frameModels / "model_card.json").read_text())[CARD_KEY]
    assert entry["galaxies"]["train"] + entry["galaxies"]["failedMoments"]["train"] == 180
    assert entry["seeds"] == {"train": 4, "validation": 5, "network": 4}
    assert entry["architecture"]["layers"] == [16, 128, 64, 32, 2] and entry["date"]
    assert set(entry["validationRmse"]) == {"e1", "e2"} and np.isfinite(list(entry["validationRmse"].values())).all()
    assert loadShapeRegressor(frameModels) is not None


@pytest.mark.parametrize("arguments, message", [
    (["--galaxies", "10"], "at least 200 galaxies"),
    (["--population", "/nonexistent/pop.npz"], "no such population file"),
])
def test_command_argument_errors_exit_2(frameModels, capsys, arguments, message):
    assert modelsMain(["shape-regressor", "--model-dir", str(frameModels), *arguments]) == 2
    err = capsys.readouterr().err
    assert message in err and "madness-models shape-regressor: error:" in err
    assert not (frameModels / SHAPE_REGRESSOR_FILE).exists()


def test_command_needs_a_model_directory_with_a_model_frame(tmp_path, tinyModelDirectory, capsys):
    assert modelsMain(["shape-regressor", "--model-dir", str(tmp_path / "none")]) == 2
    assert "no such model directory" in capsys.readouterr().err
    assert modelsMain(["shape-regressor", "--model-dir", str(tinyModelDirectory), "--galaxies", "200"]) == 2
    assert "no model frame" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit:
        modelsMain(["shape-regressor"])
    assert exit.value.code == 2 and "--model-dir" in capsys.readouterr().err


def test_bench_shapes_refuses_models_without_a_regressor(frameModels, capsys):
    from lsst.meas.extensions.madness.benchmark.cli import main as benchMain

    assert benchMain(["shapes", "--model-dir", str(frameModels), "--isolated", "10", "--fields", "0"]) == 2
    assert "no shapeRegressor entry" in capsys.readouterr().err


def test_shape_statistics_and_report():
    generator = np.random.default_rng(0)
    truth = generator.uniform(-0.5, 0.5, size=(400, 2))
    sample = {"truth": truth, "regressor": truth + generator.normal(0, 0.05, size=truth.shape),
              "decoded": 0.5 * truth, "snr": generator.uniform(5, 200, size=400)}
    sample["decoded"][0] = np.nan  # a failed measurement leaves the galaxy out of both columns
    rows = shapeBench.binnedShapes(sample, "snr", shapeBench.SNR_BINS)
    assert rows[-1]["regressor"]["n"] == rows[-1]["decoded"]["n"] == 399
    assert abs(rows[-1]["decoded"]["m"] + 0.5) < 1e-9 and rows[-1]["decoded"]["absBias"] < -0.1
    assert abs(rows[-1]["regressor"]["m"]) < 0.05 and abs(rows[-1]["regressor"]["sigmaE1"] - 0.05) < 0.01
    assert sum(row["regressor"]["n"] for row in rows[:-1]) == 399
    summary = {"galaxies": 400, "seed": 1, "failedTruth": 0, "failedDecoded": 1, "seconds": 1.0,
               "snrBins": rows, "absEBins": shapeBench.binnedShapes(sample, "absE", shapeBench.ABS_E_BINS)}
    text = shapeBench.shapesMarkdown({"models": "m", "regressor": {"validationRmse": {"e1": 0.1, "e2": 0.1}},
                                      "samples": {"isolated": summary}}, "madness-bench shapes")
    assert "| all | 399 |" in text and "σ(Δe1) (reg.)" in text
