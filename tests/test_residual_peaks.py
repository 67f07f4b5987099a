"""Unrecognised blends (deblend/residualPeaks.py and MadnessDeblendTask.refineBlends): a galaxy that
detection merged into its neighbour's peak is found in the residual, becomes a flagged child, and
every peak of the final footprint has its child; a misfit's residual and noise peaks are refused by
the misfit, likelihood-ratio and prior tests."""

from __future__ import annotations

import numpy as np
import pytest

from lsst.meas.extensions.madness.afw import Footprint
from lsst.meas.extensions.madness.deblend.residualPeaks import (
    findResidualPeaks,
    likelihoodGainThreshold,
    residualSignificance,
)
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


def test_peaks_keep_their_extra_fields_and_new_ones_get_them_too(tmp_path):
    """Detection's extra peak fields (truth_index) survive the search, a new peak gets -1, and the catalogue
    writes and reads back."""
    from lsst.meas.extensions.madness.afw.table import SourceCatalog

    mock, parents = _mergedPair()
    for peak in parents[0].getFootprint().getPeaks():
        peak.extra["truth_index"] = 0
    task = quickMadnessTask(shippedModelsPath(), parents.schema.copy(), maxIter=120, minIter=20,
                            residualPeakRounds=1, computeUncertainties=False)
    catalog = task.run(mock.mExposure, parents).deblendedCatalog
    peaks = catalog[0].getFootprint().getPeaks()
    assert sorted(p.extra["truth_index"] for p in peaks) == [-1, 0]
    catalog.writeFits(tmp_path / "deblended.fits")
    back = SourceCatalog.readFits(tmp_path / "deblended.fits")
    assert sorted(p.extra["truth_index"] for p in back[0].getFootprint().getPeaks()) == [-1, 0]


def test_a_misfit_leaves_no_candidate_but_a_lone_bump_does():
    """A positive bump beside a deeper hole (a misfit's residual) is refused, the same bump alone is not."""
    yy, xx = np.mgrid[:40, :40]
    bump = 6.0 * np.exp(-((yy - 20) ** 2 + (xx - 20) ** 2) / 4.0)
    hole = -10.0 * np.exp(-((yy - 20) ** 2 + (xx - 25) ** 2) / 4.0)
    inside = np.ones((40, 40), bool)
    assert findResidualPeaks(bump + hole, inside, [], threshold=3.0, misfitRatio=0.75) == []
    assert [p[:2] for p in findResidualPeaks(bump, inside, [], threshold=3.0, misfitRatio=0.75)] == [(20, 20)]
    # The test looks only within the radius: a hole 12 px away does not count.
    far = -10.0 * np.exp(-((yy - 20) ** 2 + (xx - 32) ** 2) / 4.0)
    assert [p[:2] for p in findResidualPeaks(bump + far, inside, [], threshold=3.0, misfitRatio=0.75,
                                             misfitRadius=8.0)] == [(20, 20)]


@pytest.mark.parametrize("falseAlarm", [0.05, 0.2])
def test_the_gain_threshold_has_its_false_alarm_rate_on_noise(falseAlarm):
    """d free linear parameters fitted to pure noise gain (1/2)|P y|^2 in ln L: Wilks' chi2_d / 2."""
    rng = np.random.default_rng(5)
    d, n, trials = 16, 60, 4000
    design = rng.normal(size=(n, d))
    projector = design @ np.linalg.pinv(design)
    gains = 0.5 * np.einsum("ti,ij,tj->t", y := rng.normal(size=(trials, n)), projector, y)
    rate = np.mean(gains > likelihoodGainThreshold(d, falseAlarm))
    assert abs(rate - falseAlarm) < 4 * np.sqrt(falseAlarm * (1 - falseAlarm) / trials)
    with pytest.raises(ValueError, match="falseAlarm"):
        likelihoodGainThreshold(d, 1.0)


def test_noise_peaks_are_proposed_and_refused():
    """A lone galaxy, a low threshold: the noise peaks proposed fail the likelihood-ratio test."""
    mock = makeMockMultibandExposure(shape=(80, 80), nGalaxies=1, seed=4, snrRange=(80.0, 100.0))
    parents = mock.catalog
    task = quickMadnessTask(shippedModelsPath(), parents.schema.copy(), maxIter=60, minIter=20,
                            residualPeakRounds=2, residualPeakThreshold=2.0, residualPeakMisfitRatio=0.0,
                            residualPeaksPerRound=3, computeUncertainties=False)
    catalog = task.run(mock.mExposure, parents).deblendedCatalog
    assert task.metadata["nResidualPeaksProposed"] > 0
    assert task.metadata["nResidualPeaksKept"] == 0
    assert not any(c.get("deblend_residualPeak") for c in catalog)


def test_a_source_the_prior_disbelieves_is_refused():
    """The merged pair's hidden galaxy is kept, unless the prior's table puts every latent in its low tail."""
    mock, parents = _mergedPair()
    task = quickMadnessTask(shippedModelsPath(), parents.schema.copy(), maxIter=120, minIter=20,
                            residualPeakRounds=1, computeUncertainties=False)
    task.models.card["logPriorQuantiles"] = {"levels": [0.0, 1.0], "values": [1e6, 2e6]}  # all below
    catalog = task.run(mock.mExposure, parents).deblendedCatalog
    assert len(catalog) == 2 and catalog[0].get("madness_nResidualPeaks") == 0
    assert task.metadata["nResidualPeaksProposed"] == 1 and task.metadata["nResidualPeaksKept"] == 0
