"""Fixtures shared by the test modules."""

from __future__ import annotations

import os

import pytest
import torch

from lsst.meas.extensions.madness.models import Decoder, Encoder, ModelConfig, exportModels, makeFlow
from lsst.meas.extensions.madness.models.device import resolveDevice
from lsst.meas.extensions.madness.testing import makeTinyModels

TINY = ModelConfig.fromProfile("tiny")

# An output that breaks the deblender's invariants is a bug: in the tests it raises (deblend/invariants.py).
os.environ.setdefault("MADNESS_STRICT_INVARIANTS", "1")


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu",
                     help="torch device the networks and tensors of the tests run on: cpu (default), cuda, cuda:1, "
                          "mps, auto")


def pytest_configure(config):
    """A ``--device`` this machine lacks stops the session: a GPU run must not pass by testing nothing."""
    name = config.getoption("--device")
    try:
        resolveDevice(name)
    except ValueError as error:
        raise pytest.UsageError(f"--device {name!r}: {error}") from None


def pytest_report_header(config) -> list[str]:
    return [f"torch device (--device): {resolveDevice(config.getoption('--device'))}"]


@pytest.fixture(scope="session")
def device(request) -> str:
    """The torch device of ``--device`` (a string: ``"cpu"``, ``"cuda"``; ``auto`` resolved): where the tests
    load models and put tensors."""
    return str(resolveDevice(request.config.getoption("--device")))


@pytest.fixture(scope="session")
def tolerance(device) -> dict:
    """``rtol``/``atol`` of ``torch.testing.assert_close`` for two computations of the same float32 numbers:
    torch's defaults on the CPU; looser on an accelerator, whose kernels round differently with the batch
    size and between eager and TorchScript (TF32 convolutions, fused graphs)."""
    return {} if device == "cpu" else {"rtol": 1e-3, "atol": 1e-5}


@pytest.fixture(scope="session")
def tinyModelDirectory(tmp_path_factory):
    """Exported untrained tiny models (fixed seed): a model directory that loads in milliseconds."""
    directory = tmp_path_factory.mktemp("tiny-models")
    makeTinyModels(TINY.bands, seed=0, directory=directory)
    return directory


@pytest.fixture(scope="session")
def tinyFrameModelDirectory(tmp_path_factory):
    """Exported untrained tiny models that draw in the LSST model frame (softplus output), with the
    card's survey conditions: what a budget-training run exports, in miniature."""
    from lsst.meas.extensions.madness.models.config import ModelFrame
    from lsst.meas.extensions.madness.sim.survey import LSST_CONDITIONS

    config = ModelConfig.model_validate({**TINY.model_dump(),
                                         "modelFrame": ModelFrame.forSurvey(TINY.bands).model_dump(),
                                         "decoder": {**TINY.decoder.model_dump(), "outputActivation": "softplus"}})
    torch.manual_seed(3)
    directory = tmp_path_factory.mktemp("tiny-frame-models")
    exportModels(directory, config, Encoder(config), Decoder(config), makeFlow(config), Encoder(config),
                 conditions=LSST_CONDITIONS.model_dump(mode="json"))
    return directory
