"""Fixtures shared by the test modules."""

from __future__ import annotations

import os

import pytest
import torch

from lsst.meas.extensions.madness.models import Decoder, Encoder, ModelConfig, exportModels, makeFlow

TINY = ModelConfig.fromProfile("tiny")

# An output that breaks the deblender's invariants is a bug: in the tests it raises (deblend/invariants.py).
os.environ.setdefault("MADNESS_STRICT_INVARIANTS", "1")


@pytest.fixture(scope="session")
def tinyModelDirectory(tmp_path_factory):
    """Exported untrained tiny models (fixed seed): a model directory that loads in milliseconds."""
    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny-models")
    exportModels(directory, TINY, Encoder(TINY), Decoder(TINY), makeFlow(TINY), Encoder(TINY))
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
