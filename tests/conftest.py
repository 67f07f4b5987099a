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
