"""Flags a user can filter on: the log-prior's quantile, madness_lowPrior and madness_badFit."""

from __future__ import annotations

import numpy as np
import pytest

from lsst.meas.extensions.madness.deblend import MadnessDeblendConfig, MadnessDeblendTask
from lsst.meas.extensions.madness.models.priorQuantiles import LEVELS, priorQuantile, quantileTable
from lsst.meas.extensions.madness.testing import makeMockMultibandExposure
from lsst.meas.extensions.madness.testing.deblenders import EqualShareDeblendTask, quickMadnessTask

_POSITIONS = np.array([[25, 25], [34, 28], [80, 70], [88, 76]], float)


def test_quantile_table_and_its_interpolation():
    rng = np.random.default_rng(0)
    sample = rng.normal(30.0, 10.0, 4000)
    table = quantileTable(np.append(sample, [np.nan, np.inf]), source="test")
    assert table["levels"] == list(LEVELS) and table["galaxies"] == 4000 and table["source"] == "test"
    assert np.all(np.diff(table["values"]) >= 0)
    probes = np.array([-1e6, 30.0, 1e6, np.nan])
    quantiles = priorQuantile(probes, table)
    assert quantiles[0] == 0.0 and quantiles[2] == 1.0 and np.isnan(quantiles[3])
    assert quantiles[1] == pytest.approx(0.5, abs=0.03)
    # The empirical tail: the fraction of the sample below each value is the quantile given.
    for value in np.quantile(sample, [0.001, 0.01, 0.1]):
        assert priorQuantile(value, table) == pytest.approx(np.mean(sample < value), abs=0.002)
    with pytest.raises(ValueError, match="at least 100"):
        quantileTable(np.arange(99.0), source="too few")


def _mock():
    mock = makeMockMultibandExposure(shape=(110, 110), nGalaxies=4, seed=5, positions=_POSITIONS, hlrRange=(0.3, 0.6))
    return mock.mExposure, mock.catalog


def _field(ring: bool):
    """A simulated LSST field (the demo's); with ``ring``, a point source in a ring injected on a galaxy alone in
    its parent, the one nearest the field's median r-band flux. Returns the exposure, parents and that position."""
    from lsst.meas.extensions.madness.detect import detectParents
    from lsst.meas.extensions.madness.sim import SimulationConfig, TestFields, generatePopulation
    from lsst.meas.extensions.madness.sim.inputs import fieldExposure

    fields = TestFields(generatePopulation(3000, seed=1), seed=1, config=SimulationConfig())
    scene = fields.make(0)
    mExposure = fieldExposure(scene, fields)
    parents = detectParents(mExposure, peaks=scene.positions)
    alone = [(r.getFootprint().getPeaks()[0].getFx(), r.getFootprint().getPeaks()[0].getFy()) for r in parents
             if len(r.getFootprint().getPeaks()) == 1]
    flux = scene.isolated[:, 2].sum(axis=(1, 2))
    nearest = [int(np.argmin(np.hypot(*(scene.positions - np.array(xy)).T))) for xy in alone]
    target = scene.positions[min(nearest, key=lambda i: abs(flux[i] - np.median(flux)))]
    if ring:
        height, width = mExposure.image.array.shape[1:]
        y, x = np.mgrid[:height, :width]
        radius = np.hypot(x - target[0], y - target[1])
        sigma = np.sqrt(np.median(mExposure.variance.array, axis=(1, 2)))[:, None, None]
        mExposure.image.array[:] += sigma * (300 * np.exp(-0.5 * (radius / 1.0) ** 2)
                                             + 30 * np.exp(-0.5 * ((radius - 6) / 1.2) ** 2))
        parents = detectParents(mExposure, peaks=scene.positions)
    return mExposure, parents, target


def _flagsByPeak(result, nParents):
    """Per child's peak (x, y): (parent's badFit, child's badFit, child's lowPrior), and each child's quantile."""
    catalog = result.deblendedCatalog
    parents = {r.getId(): bool(r.get("madness_badFit")) for r in catalog[:nParents]}
    flags = {(r.get("deblend_peak_center_x"), r.get("deblend_peak_center_y")):
             (parents[r.getParent()], bool(r.get("madness_badFit")), bool(r.get("madness_lowPrior")))
             for r in catalog[nParents:]}
    return flags, catalog[nParents:]["madness_logPriorQuantile"]


def test_flags_fire_on_what_the_models_cannot_draw_and_nowhere_else(device):
    """The shipped models (with the card's quantile table) on a simulated field, then on the same field with a
    point source in a ring injected on an isolated galaxy: that galaxy's parent and child become badFit, and
    every other child keeps the flags it had (children the residual search adds to the badFit parent aside)."""
    results = {}
    for ring in (False, True):
        mExposure, parents, target = _field(ring)
        config = MadnessDeblendConfig(device=device)
        config.fallback.retarget(EqualShareDeblendTask)
        task = MadnessDeblendTask(parents.schema.copy(), config=config)
        results[ring] = _flagsByPeak(task.run(mExposure, parents), len(parents))
    (clean, quantiles), (injected, _) = results[False], results[True]
    key = (int(round(target[0])), int(round(target[1])))
    key = min(clean, key=lambda k: np.hypot(k[0] - key[0], k[1] - key[1]))
    assert len(clean) >= 10 and np.all((quantiles >= 0) & (quantiles <= 1))
    assert clean[key] == (False, False, False), "the chosen galaxy itself should be well fitted"
    assert injected[key][:2] == (True, True)
    # The search for unrecognised blends may add children on the ring: they belong to the badFit parent.
    extra = set(injected) - set(clean)
    assert all(injected[k][0] for k in extra)
    assert {k: v for k, v in injected.items() if k != key and k not in extra} == \
        {k: v for k, v in clean.items() if k != key}


def test_without_a_quantile_table_the_quantile_is_nan_and_nothing_is_low(tinyModelDirectory):
    mExposure, parents = _mock()
    task = quickMadnessTask(str(tinyModelDirectory), parents.schema.copy())
    assert task.models.logPriorQuantiles is None
    children = task.run(mExposure, parents).deblendedCatalog[len(parents):]
    assert np.isnan(children["madness_logPriorQuantile"]).all() and not children["madness_lowPrior"].any()


def test_bad_fits_go_to_the_fallback_when_asked_and_keep_their_fit_if_it_fails(tinyModelDirectory, monkeypatch):
    mExposure, parents = _mock()
    # Every fit is "bad" under a limit no model reaches.
    task = quickMadnessTask(str(tinyModelDirectory), parents.schema.copy(), badFitChi2=1e-9, fallbackBadFit=True)
    catalog = task.run(mExposure, parents).deblendedCatalog
    assert all(r.get("deblend_fallback") and r.get("deblend_fallbackReason") == "badFit"
               for r in catalog[:len(parents)])

    def raising(self, mExposure, blends, parents):
        raise RuntimeError("simulated fallback crash")

    monkeypatch.setattr(EqualShareDeblendTask, "modelBlends", raising)
    task = quickMadnessTask(str(tinyModelDirectory), parents.schema.copy(), badFitChi2=1e-9, fallbackBadFit=True)
    catalog = task.run(mExposure, parents).deblendedCatalog
    nPeaks = sum(len(r.getFootprint().getPeaks()) for r in parents)
    assert len(catalog) == len(parents) + nPeaks
    assert not catalog["deblend_failed"].any() and not catalog["deblend_fallback"].any()
    assert catalog["madness_badFit"][:len(parents)].all()
