"""The torch device has one owner: the loaded models (``MadnessModels.device``). The loader resolves it once,
``MadnessModels.to`` is the one way to move the networks, and the fits, the task and madness-run-task's
metadata run on (or report) the models' device; the fits come back as CPU numpy arrays either way."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lsst.meas.extensions.madness.deblend import fit as fitModule
from lsst.meas.extensions.madness.models import loadModels
from lsst.meas.extensions.madness.testing import makeMockMultibandExposure
from lsst.meas.extensions.madness.testing.deblenders import quickMadnessTask

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

NETWORKS = ("encoder", "decoder", "deblenderEncoder", "flowLogProb")


def _devices(models) -> set[torch.device]:
    """The devices of every parameter and buffer of the four networks."""
    return {tensor.device for name in NETWORKS for module in [getattr(models, name)]
            for tensor in [*module.parameters(), *module.buffers()]}


def test_the_loader_sets_the_device_and_to_moves_every_network(tinyModelDirectory, device):
    models = loadModels(tinyModelDirectory, device="cpu")
    assert models.device == torch.device("cpu") and _devices(models) == {torch.device("cpu")}
    # Another device when there is one: --device, or a GPU next to the CPU.
    target = torch.device("cuda" if device == "cpu" and torch.cuda.is_available() else device)
    assert models.to(target) is models
    assert models.device == target
    assert {d.type for d in _devices(models)} == {target.type}
    with torch.no_grad():
        assert models.decode(torch.zeros(1, 16, device=target)).device.type == target.type
    models.to("cpu")
    assert models.device == torch.device("cpu") and _devices(models) == {torch.device("cpu")}


def test_a_device_this_machine_lacks_is_refused_and_moves_nothing(tinyModelDirectory):
    with pytest.raises(ValueError, match="not a torch device name"):
        loadModels(tinyModelDirectory, device="gpu")
    models = loadModels(tinyModelDirectory)
    assert models.device == torch.device("cpu")  # the default
    with pytest.raises(ValueError, match="not a torch device name"):
        models.to("gpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            models.to("cuda")
    assert models.device == torch.device("cpu") and _devices(models) == {torch.device("cpu")}


def test_the_task_fits_on_its_models_device(tinyModelDirectory, device, monkeypatch):
    """The task resolves its config's device once, by loading the models; fitBlends takes no device and runs
    where the models are; madness-run-task's metadata reports that device."""
    from lsst.meas.extensions.madness.runTask import _resolvedDevice

    seen = []
    original = fitModule.fitBlends

    def spy(models, blends, *args, **kwargs):
        assert "device" not in kwargs
        seen.append((models.device, _devices(models)))
        return original(models, blends, *args, **kwargs)

    monkeypatch.setattr(fitModule, "fitBlends", spy)
    mock = makeMockMultibandExposure(shape=(80, 80), nGalaxies=2, seed=2, hlrRange=(0.3, 0.6))
    task = quickMadnessTask(tinyModelDirectory, mock.catalog.schema.copy(), device=device)
    assert task.models.device == torch.device(device)
    assert task.models is task.models  # loaded once
    catalog = task.run(mock.mExposure, mock.catalog).deblendedCatalog
    assert seen and all(used == task.models.device and {d.type for d in on} == {task.models.device.type}
                        for used, on in seen)
    children = catalog[len(mock.catalog):]
    assert len(children) > 0 and np.isfinite(children["madness_flux_r"]).all()
    assert _resolvedDevice(task) == str(task.models.device) == device


def test_fit_blends_takes_the_device_of_the_models(tinyModelDirectory, device):
    from lsst.meas.extensions.madness.deblend import MapConfig, makeBlend

    mock = makeMockMultibandExposure(shape=(80, 80), nGalaxies=2, seed=2, hlrRange=(0.3, 0.6))
    models = loadModels(tinyModelDirectory, device=device)
    blends = [makeBlend(mock.mExposure, parent.getFootprint()) for parent in mock.catalog]
    with pytest.raises(TypeError, match="device"):
        fitModule.fitBlends(models, blends, MapConfig(maxIter=2, minIter=1), device="cpu")
    assert fitModule.mapObjective(models).decoder is models.decoder  # the models' networks, not moved copies
    fits = fitModule.fitBlends(models, blends, MapConfig(maxIter=2, minIter=1))
    assert all(isinstance(f.stamps, np.ndarray) and isinstance(f.latents, np.ndarray) for f in fits)
    assert models.device == torch.device(device) and {d.type for d in _devices(models)} == {models.device.type}
