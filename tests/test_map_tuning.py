"""The MAP step size of a model set: chosen on validation blends, stored in its card, used by the task."""

from __future__ import annotations

import json
import shutil

import pytest

from lsst.meas.extensions.madness.afw.table import SourceTable
from lsst.meas.extensions.madness.deblend import MadnessDeblendConfig, MadnessDeblendTask
from lsst.meas.extensions.madness.deblend.madnessTask import DEFAULT_MAP_LR
from lsst.meas.extensions.madness.models.export import loadModels
from lsst.meas.extensions.madness.models.mapTuning import tuneMapLearningRate
from lsst.meas.extensions.madness.models.modelsCli import main as modelsMain

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def test_config_lr_beats_card_beats_default():
    assert MadnessDeblendConfig().mapConfig().lr == DEFAULT_MAP_LR
    assert MadnessDeblendConfig().mapConfig(0.02).lr == 0.02
    assert MadnessDeblendConfig(lr=0.05).mapConfig(0.02).lr == 0.05
    with pytest.raises(ValueError):
        MadnessDeblendConfig(lr=0.0)


def test_tune_map_stores_the_best_candidate_and_the_task_uses_it(tmp_path, tinyFrameModelDirectory, device):
    directory = tmp_path / "models"
    shutil.copytree(tinyFrameModelDirectory, directory)
    assert loadModels(directory).mapLearningRate is None
    lines = []
    record = tuneMapLearningRate(directory, (0.001, 0.3), nScenes=2, device=device, progress=lines.append)
    scores = {float(lr): s["score"] for lr, s in record["scores"].items()}
    ties = [lr for lr, score in scores.items() if score <= min(scores.values()) * 1.01]
    seconds = {float(lr): s["seconds"] for lr, s in record["scores"].items()}
    assert record["lr"] == min(ties, key=seconds.get) and len(lines) == 2
    assert record["split"] == "validation"
    assert all(set(s["perBand"]) == {"u", "g", "r", "i", "z", "y"} for s in record["scores"].values())
    # Different step sizes end in different fits: the scores are measured, not copied.
    assert scores[0.001] != scores[0.3]
    card = json.loads((directory / "model_card.json").read_text())
    assert card["map"]["lr"] == record["lr"]
    assert loadModels(directory).mapLearningRate == record["lr"]
    task = MadnessDeblendTask(SourceTable.makeMinimalSchema(), config=MadnessDeblendConfig(modelDir=str(directory)))
    assert task.config.mapConfig(task.models.mapLearningRate).lr == record["lr"]


def test_tune_map_command_and_its_errors(tmp_path, tinyFrameModelDirectory, capsys, device):
    directory = tmp_path / "models"
    shutil.copytree(tinyFrameModelDirectory, directory)
    assert modelsMain(["tune-map", str(directory), "--lrs", "0.05", "--scenes", "1", "--device", device,
                       "--dry-run"]) == 0
    assert "chosen MAP learning rate 0.05 (not stored" in capsys.readouterr().out
    assert loadModels(directory).mapLearningRate is None
    assert modelsMain(["tune-map", str(directory), "--lrs", "-1"]) == 2
    assert "positive learning rates" in capsys.readouterr().err


def test_ties_go_to_the_fastest_step():
    from lsst.meas.extensions.madness.models.mapTuning import chooseLearningRate

    scores = {"0.01": {"score": 0.30, "seconds": 40.0}, "0.02": {"score": 0.302, "seconds": 20.0},
              "0.05": {"score": 0.35, "seconds": 10.0}}
    assert chooseLearningRate(scores) == 0.02  # within 1 % of the best, and faster
    assert chooseLearningRate(scores, tie=0.0) == 0.01
