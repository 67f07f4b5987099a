"""The error model (deblend/errorModel.py): each term, the config round trip, and what it does with
missing diagnostics."""

from __future__ import annotations

import numpy as np
import pytest

from lsst.meas.extensions.madness.deblend import MadnessDeblendConfig
from lsst.meas.extensions.madness.deblend.errorModel import CONFIG_FIELDS, ErrorModel


def test_defaults_give_the_laplace_sigma():
    laplace = np.array([1.0, 2.0, np.nan])
    flux = np.array([10.0, -50.0, 3.0])
    chi2, share = np.array([9.0, 1.0, 1.0]), np.array([0.5, 0.2, 0.0])
    np.testing.assert_array_equal(ErrorModel().fluxErr(laplace, flux, chi2, share), laplace)
    np.testing.assert_array_equal(ErrorModel().shapeErr(laplace, chi2, share, flux / laplace), laplace)


@pytest.mark.parametrize(("terms", "expected"), [
    ({"fluxScale": 3.0}, 6.0),
    ({"fluxFloor": 0.1}, np.hypot(2.0, 4.0)),
    ({"fluxBlendedness": 0.5}, np.hypot(2.0, 0.5 * 0.25 * 40.0)),
    ({"chi2Inflation": True}, 2.0 * 3.0),
    ({"chi2Inflation": True, "fluxFloor": 0.1}, 3.0 * np.hypot(2.0, 4.0)),
])
def test_each_flux_term(terms, expected):
    model = ErrorModel(**terms)
    assert model.fluxErr(np.array(2.0), np.array(-40.0), chi2=np.array(9.0), blendedness=np.array(0.25)) \
        == pytest.approx(expected)


@pytest.mark.parametrize(("terms", "expected"), [
    ({"shapeScale": 2.0}, 0.06),
    ({"shapeFloor": 0.04}, 0.05),
    ({"shapeBlendedness": 0.16}, 0.05),
    ({"shapeNoise": 0.8}, 0.05),
])
def test_each_shape_term(terms, expected):
    # Each added term is 0.04 beside a Laplace σ of 0.03 (blendedness 0.25, S/N 20): 0.05 in quadrature.
    model = ErrorModel(**terms)
    assert model.shapeErr(np.array(0.03), np.array(1.0), np.array(0.25), np.array(20.0)) == pytest.approx(expected)


def test_missing_diagnostics():
    """No χ² and no blendedness (a zero model): no inflation, no shared light; no S/N: no shape error."""
    model = ErrorModel(fluxBlendedness=1.0, shapeNoise=1.0, chi2Inflation=True)
    assert model.fluxErr(np.array(2.0), np.array(10.0), np.array(np.nan), np.array(np.nan)) == 2.0
    assert model.fluxErr(np.array(2.0), np.array(10.0), np.array(0.5), np.array(-1e-7)) == 2.0
    assert np.isinf(model.shapeErr(np.array(0.02), np.array(1.0), np.array(0.0), np.array(0.0)))
    assert np.isinf(model.shapeErr(np.array(0.02), np.array(1.0), np.array(0.0), np.array(np.nan)))


def test_config_round_trip():
    model = ErrorModel(fluxScale=1.5, fluxFloor=0.02, fluxBlendedness=0.3, shapeScale=1.2, shapeFloor=0.01,
                       shapeBlendedness=0.1, shapeNoise=0.5, chi2Inflation=False)
    config = MadnessDeblendConfig(**model.configOverrides())
    assert ErrorModel.fromConfig(config) == model
    assert set(CONFIG_FIELDS.values()) <= set(MadnessDeblendConfig.model_fields)
