"""Unrecognised blends (deblend/residualPeaks.py and MadnessDeblendTask.refineBlends): a galaxy that
detection merged into its neighbour's peak is found in the residual, becomes a flagged child, and
every peak of the final footprint has its child."""

from __future__ import annotations

import numpy as np
import pytest

from lsst.meas.extensions.madness.afw import Footprint
from lsst.meas.extensions.madness.deblend.residualPeaks import findResidualPeaks, residualSignificance
from lsst.meas.extensions.madness.models.export import shippedModelsPath
from lsst.meas.extensions.madness.testing import makeMockMultibandExposure
from lsst.meas.extensions.madness.testing.deblenders import quickMadnessTask

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def test_pure_noise_has_unit_significance_and_no_peaks():
    rng = np.random.default_rng(3)
    sigma = np.array([2.0, 0.5])
    residual = rng.normal(size=(2, 120, 120)) * sigma[:, None, None]
    weight = np.broadcast_to(1 / sigma[:, None, None] ** 2, residual.shape).copy()
    yy, xx = np.mgrid[-5:6, -5:6]
    psfs = [np.exp(-(xx**2 + yy**2) / (2 * s**2)) for s in (1.2, 1.8)]
    nu = residualSignificance(residual, weight, psfs)[10:-10, 10:-10]  # away from the edges
    assert abs(nu.std() - 1) < 0.05 and abs(nu.mean()) < 0.05
    assert findResidualPeaks(nu, np.ones(nu.shape, bool), [], threshold=5.0) == []


def _mergedPair(seed: int = 2):
    """Two galaxies 9 px apart whose parent has only the first one's peak."""
    positions = np.array([[36.0, 40.0], [45.0, 40.0]])
    mock = makeMockMultibandExposure(shape=(80, 80), nGalaxies=2, seed=seed, positions=positions,
                                     snrRange=(150.0, 200.0), hlrRange=(0.3, 0.4), qRange=(0.8, 1.0))
    parents = mock.catalog
    assert len(parents) == 1
    footprint = parents[0].getFootprint()
    first = min(footprint.getPeaks(), key=lambda p: np.hypot(p.getFx() - 36, p.getFy() - 40))
    merged = Footprint(footprint.getSpans())
    merged.addPeak(first.getFx(), first.getFy(), first.getPeakValue(), id=first.getId())
    parents[0].setFootprint(merged)
    return mock, parents


@pytest.mark.parametrize("rounds", [0, 1])
def test_a_merged_galaxy_is_found_in_the_residual(rounds):
    mock, parents = _mergedPair()
    task = quickMadnessTask(shippedModelsPath(), parents.schema.copy(), maxIter=120, minIter=20,
                            residualPeakRounds=rounds, computeUncertainties=False)
    catalog = task.run(mock.mExposure, parents).deblendedCatalog
    parent, children = catalog[0], catalog[1:]
    assert len(children) == 1 + rounds == len(parent.getFootprint().getPeaks())
    assert parent.get("madness_nResidualPeaks") == rounds
    found = [c for c in children if c.get("deblend_residualPeak")]
    assert len(found) == rounds
    for child in found:
        assert np.hypot(child.get("deblend_peak_center_x") - 45, child.get("deblend_peak_center_y") - 40) <= 3
        assert child.get("madness_flux_r") > 0
    assert task.metadata["nInvariantViolations"] == 0
