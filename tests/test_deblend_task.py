"""MadnessDeblendTask and ScarletDeblendTask: skips, fallbacks, children, heavy footprints, accuracy."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from lsst.meas.extensions.madness.afw.table import SourceCatalog
from lsst.meas.extensions.madness.deblend import DeblendBaseTask, MadnessDeblendTask, ScarletDeblendTask
from lsst.meas.extensions.madness.testing import makeMockMultibandExposure
from lsst.meas.extensions.madness.testing.deblenders import EqualShareDeblendTask, quickMadnessTask

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def tinyModels(tinyModelDirectory):
    return str(tinyModelDirectory)


#: Two pairs and two single galaxies: parents with two peaks and with one.
_POSITIONS = np.array([[25, 25], [34, 28], [85, 85], [80, 28], [28, 82], [36, 88]], float)


def _mock(seed=3, **kwargs):
    mock = makeMockMultibandExposure(shape=(120, 120), nGalaxies=6, seed=seed, positions=_POSITIONS,
                                     hlrRange=(0.3, 0.6), **kwargs)
    return mock.mExposure, mock.catalog


_task = quickMadnessTask


def _run(modelDir, mExposure, catalog, **config):
    task = _task(modelDir, catalog.schema.copy(), **config)
    return task, task.run(mExposure, catalog)


def _parents(catalog, nParents):
    return catalog[:nParents]


def test_every_parent_and_peak_is_accounted_for(tinyModels):
    mExp, parents = _mock()
    task, result = _run(tinyModels, mExp, parents)
    catalog = result.deblendedCatalog
    out = catalog[:len(parents)]
    assert list(out["id"]) == list(parents["id"])
    nPeaks = [len(r.getFootprint().getPeaks()) for r in parents]
    assert list(out["deblend_nPeaks"]) == nPeaks
    assert list(out["deblend_nChild"]) == nPeaks
    children = catalog[len(parents):]
    assert len(children) == sum(nPeaks)
    for parent in parents:
        kids = catalog.getChildren(parent.getId())
        assert sorted(kids["deblend_peakId"]) == sorted(p.getId() for p in parent.getFootprint().getPeaks())
    assert len(result.modelData) == len(parents)
    assert task.metadata["nChildren"] == sum(nPeaks)


def test_conserve_flux_children_sum_to_the_data(tinyModels):
    mExp, parents = _mock(seed=4)
    _, result = _run(tinyModels, mExp, parents, footprintThreshold=0.0)
    catalog = result.deblendedCatalog
    total = np.zeros(mExp.image.array.shape)
    held = np.zeros(mExp.image.array.shape[1:], bool)
    for child in catalog[len(parents):]:
        footprint = child.getFootprint()
        if not footprint.isHeavy():
            continue
        for b, band in enumerate(mExp.bands):
            total[b] += footprint[band].extractImage(fill=0, bbox=mExp.getBBox()).array
        held |= footprint.getSpans().asArray(mExp.getBBox()).astype(bool)
    assert held.sum() > 100
    np.testing.assert_allclose(total[:, held], mExp.image.array[:, held], rtol=1e-5, atol=1e-3)


def test_heavy_footprints_round_trip_through_fits(tinyModels, tmp_path):
    mExp, parents = _mock(seed=5)
    _, result = _run(tinyModels, mExp, parents)
    catalog = result.deblendedCatalog
    path = tmp_path / "deblended.fits"
    catalog.writeFits(path, bbox=mExp.getBBox())
    back = SourceCatalog.readFits(path, bbox=mExp.getBBox())
    assert len(back) == len(catalog)
    for name in ("parent", "deblend_nChild", "deblend_peakId", "madness_flux_r", "deblend_fallbackReason"):
        a, b = catalog[name], back[name]
        if a.dtype.kind == "f":
            np.testing.assert_allclose(a, b, rtol=1e-6, equal_nan=True)
        else:
            assert list(a) == list(b)
    for before, after in zip(catalog[len(parents):], back[len(parents):]):
        if before.getFootprint().isHeavy():
            assert after.getFootprint().isHeavy()
            np.testing.assert_array_equal(before.getFootprint().getImageArray(), after.getFootprint().getImageArray())
            np.testing.assert_array_equal(before.getFootprint().getVarianceArray(),
                                          after.getFootprint().getVarianceArray())
        assert [p.getId() for p in after.getFootprint().getPeaks()] == [before.get("deblend_peakId")]


def _notDeblended(mExp, footprint):
    if "NOT_DEBLENDED" not in mExp.mask.getMaskPlaneDict():
        return False
    bit = mExp.mask.getPlaneBitMask("NOT_DEBLENDED")
    ys, xs = footprint.getSpans().indices()
    return bool(np.all(mExp.mask.array[:, ys, xs] & bit))


def _twoPeakParent(parents):
    return next(i for i, r in enumerate(parents) if len(r.getFootprint().getPeaks()) >= 2)


@pytest.mark.parametrize("reason", ["isPseudo", "parentTooBig", "masked", "tooManyPeaks"])
def test_each_skip_flag(tinyModels, reason):
    from lsst.meas.extensions.madness.afw.table import Schema, SourceTable

    mExp, parents = _mock(seed=6)
    row = _twoPeakParent(parents)
    target = parents[row].getFootprint()
    config = {}
    if reason == "isPseudo":
        schema = parents.schema.copy()
        schema.addField("merge_peak_sky", type="Flag", doc="sky object")
        copy = SourceCatalog(SourceTable(schema))
        copy.extend(parents, deep=True)
        copy[row].set("merge_peak_sky", True)
        parents = copy
    elif reason == "parentTooBig":
        config["maxFootprintArea"] = target.getArea() - 1
    elif reason == "masked":
        ys, xs = target.getSpans().indices()
        mExp.mask.array[2, ys[: len(ys) // 2], xs[: len(xs) // 2]] |= mExp.mask.getPlaneBitMask("BAD")
        config["maskLimits"] = {"BAD": 0.25}
    else:
        config["maxNumberOfPeaks"] = len(target.getPeaks()) - 1
    assert isinstance(parents.schema, Schema)
    _, result = _run(tinyModels, mExp, parents, **config)
    record = result.deblendedCatalog[row]
    assert record.get(f"deblend_skipped_{reason}") and record.get("deblend_skipped")
    assert record.get("deblend_nChild") == 0
    assert len(result.deblendedCatalog.getChildren(record.getId())) == 0
    assert _notDeblended(mExp, target)
    if reason in ("isPseudo", "masked"):
        others = [r for i, r in enumerate(result.deblendedCatalog[:len(parents)]) if i != row]
        assert not any(r.get("deblend_skipped") for r in others)


def test_isolated_parents_are_copied_when_process_singles_is_off(tinyModels):
    mExp, parents = _mock(seed=7)
    single = [i for i, r in enumerate(parents) if len(r.getFootprint().getPeaks()) == 1]
    assert single, "the mock should have an isolated parent"
    _, result = _run(tinyModels, mExp, parents, processSingles=False)
    catalog = result.deblendedCatalog
    for i in single:
        record = catalog[i]
        assert record.get("deblend_skipped_isolatedParent") and record.get("deblend_nChild") == 1
        (child,) = catalog.getChildren(record.getId())
        footprint = child.getFootprint()
        np.testing.assert_array_equal(footprint["r"].getImageArray(),
                                      footprint.getSpans().flatten(mExp.image.array[2], mExp.getXY0()))
        assert not _notDeblended(mExp, record.getFootprint())


def _fallbackRows(result, nParents):
    parents = result.deblendedCatalog[:nParents]
    return [(bool(r.get("deblend_fallback")), r.get("deblend_fallbackReason"), bool(r.get("deblend_failed")),
             r.get("deblend_error")) for r in parents]


def test_fallback_forced(tinyModels):
    mExp, parents = _mock(seed=8)
    _, result = _run(tinyModels, mExp, parents, forceFallback=True)
    assert all(row[:2] == (True, "forced") for row in _fallbackRows(result, len(parents)))
    children = result.deblendedCatalog[len(parents):]
    assert children["deblend_fallback"].all()
    assert len(children) == sum(len(r.getFootprint().getPeaks()) for r in parents)


def test_fallback_too_many_peaks_and_its_rule_off(tinyModels):
    mExp, parents = _mock(seed=8)
    multi = [len(r.getFootprint().getPeaks()) > 1 for r in parents]
    assert any(multi) and not all(multi)
    _, result = _run(tinyModels, mExp, parents, maxMadnessPeaks=1)
    rows = _fallbackRows(result, len(parents))
    assert [r[:2] for r in rows] == [(True, "tooManyPeaks") if m else (False, "") for m in multi]
    _, result = _run(tinyModels, mExp, parents, maxMadnessPeaks=1, fallbackTooManyPeaks=False)
    rows = _fallbackRows(result, len(parents))
    assert [r[2:] for r in rows] == [(True, "MadnessCoreError") if m else (False, "") for m in multi]


def test_fallback_on_core_failure_and_non_finite_fits(tinyModels, monkeypatch):
    from lsst.meas.extensions.madness.deblend import fit as fitModule

    mExp, parents = _mock(seed=9)
    original = fitModule.fitBlends

    def broken(models, blends, **kwargs):
        if any(b.nPeaks > 1 for b in blends):
            raise RuntimeError("simulated core failure")
        return original(models, blends, **kwargs)

    monkeypatch.setattr(fitModule, "fitBlends", broken)
    multi = [len(r.getFootprint().getPeaks()) > 1 for r in parents]
    _, result = _run(tinyModels, mExp, parents)
    # The batch raised; each parent was retried alone and only the multi-peak ones fell back.
    assert [r[:2] for r in _fallbackRows(result, len(parents))] == [
        (True, "coreFailure: RuntimeError") if m else (False, "") for m in multi]
    _, result = _run(tinyModels, mExp, parents, fallbackOnFailure=False)
    assert [r[2:] for r in _fallbackRows(result, len(parents))] == [
        (True, "RuntimeError") if m else (False, "") for m in multi]

    def nonFinite(models, blends, **kwargs):
        fits = original(models, blends, **kwargs)
        fits[0].stamps[:] = np.nan
        return fits

    monkeypatch.setattr(fitModule, "fitBlends", nonFinite)
    _, result = _run(tinyModels, mExp, parents[:1])
    assert _fallbackRows(result, 1)[0][:2] == (True, "nonFinite")
    _, result = _run(tinyModels, mExp, parents[:1], fallbackNonFinite=False)
    assert _fallbackRows(result, 1)[0][2:] == (True, "MadnessCoreError")


def test_out_of_memory_halves_the_batch_then_falls_back(tinyModels, monkeypatch):
    import torch

    from lsst.meas.extensions.madness.deblend import fit as fitModule

    mExp, parents = _mock(seed=9)
    original = fitModule.fitBlends
    tried = []

    def smallBatchesOnly(models, blends, maxGalaxies, **kwargs):
        tried.append(maxGalaxies)
        if maxGalaxies > 8:
            raise torch.OutOfMemoryError("simulated: CUDA out of memory")
        return original(models, blends, maxGalaxies=maxGalaxies, **kwargs)

    monkeypatch.setattr(fitModule, "fitBlends", smallBatchesOnly)
    _, result = _run(tinyModels, mExp, parents, maxGalaxiesPerBatch=64)
    assert tried == [64, 32, 16, 8]
    assert not any(r[0] or r[2] for r in _fallbackRows(result, len(parents)))

    def alwaysOut(models, blends, maxGalaxies, **kwargs):
        raise torch.OutOfMemoryError("simulated: CUDA out of memory")

    monkeypatch.setattr(fitModule, "fitBlends", alwaysOut)
    _, result = _run(tinyModels, mExp, parents)
    assert all(r[:2] == (True, "coreFailure: OutOfMemoryError") for r in _fallbackRows(result, len(parents)))


def test_time_budget_sends_slow_parents_to_the_fallback(tinyModels):
    mExp, parents = _mock(seed=9)
    _, result = _run(tinyModels, mExp, parents, maxSecondsPerParent=1e-9, maxIter=50, minIter=40)
    assert all(r[:2] == (True, "timeBudget") for r in _fallbackRows(result, len(parents)))
    _, result = _run(tinyModels, mExp, parents, maxSecondsPerParent=1e-9, maxIter=50, minIter=40,
                     fallbackTimeBudget=False)
    assert all(r[2:] == (True, "MadnessCoreError") for r in _fallbackRows(result, len(parents)))
    _, result = _run(tinyModels, mExp, parents, maxSecondsPerParent=600.0)
    assert not any(r[0] for r in _fallbackRows(result, len(parents)))


def test_invariants_hold_and_a_broken_output_is_caught(tinyModels, monkeypatch):
    from lsst.meas.extensions.madness.deblend.invariants import InvariantError, checkInvariants

    mExp, parents = _mock(seed=3)
    task, result = _run(tinyModels, mExp, parents)
    assert checkInvariants(parents, result.deblendedCatalog) == [] and task.metadata["nInvariantViolations"] == 0
    original = DeblendBaseTask._addChildren

    def losesAChild(self, catalog, parent, blend, model, *rest):
        original(self, catalog, parent, blend, model, *rest)
        if blend.nPeaks > 1:
            catalog[len(catalog) - 1].set("deblend_peakId", -1)  # as if a peak's child were lost

    monkeypatch.setattr(DeblendBaseTask, "_addChildren", losesAChild)
    with pytest.raises(InvariantError, match="children for peaks"):  # the suite runs strict (conftest.py)
        _run(tinyModels, mExp, parents)
    monkeypatch.delenv("MADNESS_STRICT_INVARIANTS")
    task, result = _run(tinyModels, mExp, parents)
    assert task.metadata["nInvariantViolations"] == 2 and len(task.metadata.getArray("invariantViolations")) == 2


def test_children_in_the_input_fail_fast(tinyModels):
    from lsst.meas.extensions.madness.deblend.invariants import InputCatalogError

    mExp, parents = _mock(seed=3)
    parents[2].setParent(parents[0].getId())
    with pytest.raises(InputCatalogError, match=r"row 2 \(id \d+\) is a child of"):
        _run(tinyModels, mExp, parents)


def test_bad_regions_leave_the_other_parents_unchanged(tinyModels):
    """NaN pixels under one parent and a saturated mask over another change nothing elsewhere."""
    mExp, parents = _mock(seed=4)
    _, clean = _run(tinyModels, mExp, parents, maskLimits={"SAT": 0.5})
    bad = mExp.clone()
    x0, y0 = bad.getXY0()
    first, second = parents[0].getFootprint().getSpans(), parents[1].getFootprint().getSpans()
    ys, xs = first.indices()
    bad.image.array[2, ys[:5] - y0, xs[:5] - x0] = np.nan  # a few NaN pixels in r
    ys, xs = second.indices()
    bad.mask.array[:, ys - y0, xs - x0] |= bad.mask.getPlaneBitMask("SAT")
    _, dirty = _run(tinyModels, bad, parents, maskLimits={"SAT": 0.5})
    n = len(parents)
    dirtyParents = dirty.deblendedCatalog[:n]
    assert dirtyParents[1]["deblend_skipped"] and dirtyParents[0]["deblend_incompleteData"]
    assert not dirtyParents[0]["deblend_failed"]
    fluxes = [c for c in clean.deblendedCatalog.schema.getNames() if c.startswith("madness_flux_")]
    unaffected = [p.getId() for p in parents[2:]]
    for parentId in unaffected:
        a = clean.deblendedCatalog.getChildren(parentId)
        b = dirty.deblendedCatalog.getChildren(parentId)
        assert len(a) == len(b) > 0
        for ca, cb in zip(a, b):
            for column in fluxes:
                assert cb.get(column) == pytest.approx(ca.get(column), rel=1e-4, abs=1e-3), (parentId, column)


def test_a_broken_fallback_fails_only_its_parents(tinyModels, monkeypatch):
    """A fallback that raises, or returns NaN, fails the parents sent to it; MADNESS's stay deblended."""
    mExp, parents = _mock(seed=9)
    multi = [len(r.getFootprint().getPeaks()) > 1 for r in parents]

    def raising(self, mExposure, blends, parents):
        raise RuntimeError("simulated fallback crash")

    monkeypatch.setattr(EqualShareDeblendTask, "modelBlends", raising)
    _, result = _run(tinyModels, mExp, parents, maxMadnessPeaks=1)
    assert [r[2:] for r in _fallbackRows(result, len(parents))] == [
        (True, "RuntimeError") if m else (False, "") for m in multi]
    monkeypatch.undo()
    original = EqualShareDeblendTask.modelBlends

    def nanModels(self, mExposure, blends, parents):
        models = original(self, mExposure, blends, parents)
        for model in models:
            model.children.images[0][:] = np.nan
        return models

    monkeypatch.setattr(EqualShareDeblendTask, "modelBlends", nanModels)
    _, result = _run(tinyModels, mExp, parents, maxMadnessPeaks=1)
    assert [r[2:] for r in _fallbackRows(result, len(parents))] == [
        (True, "NonFiniteModelError") if m else (False, "") for m in multi]


def test_catch_failures_off_propagates(tinyModels, monkeypatch):
    from lsst.meas.extensions.madness.deblend import fit as fitModule

    def broken(models, blends, **kwargs):
        raise RuntimeError("simulated core failure")

    monkeypatch.setattr(fitModule, "fitBlends", broken)
    mExp, parents = _mock(seed=9)
    with pytest.raises(RuntimeError, match="simulated core failure"):
        _run(tinyModels, mExp, parents, fallbackOnFailure=False, catchFailures=False)


def test_missing_bands_raise_or_get_zero_weight(tinyModels):
    mExp, parents = _mock(seed=9, bands="gri")
    task = _task(tinyModels, parents.schema.copy(), missingBands="raise")
    with pytest.raises(ValueError, match=r"missing \['u', 'z', 'y'\]"):
        task.run(mExp, parents)
    task = _task(tinyModels, parents.schema.copy())
    catalog = task.run(mExp, parents).deblendedCatalog
    assert task.metadata.getArray("missingBands") == ["u", "z", "y"]
    deblended = catalog[:len(parents)]
    assert deblended["deblend_incompleteData"].all() and not deblended["deblend_failed"].any()
    assert len(catalog) == len(parents) + sum(len(r.getFootprint().getPeaks()) for r in parents)
    # The absent bands are not fitted: no flux (NaN), and the MADNESS children drawn there are empty.
    children = catalog[len(parents):]
    for band in "uzy":
        assert np.isnan(children[f"madness_flux_{band}"]).all()
    for band in "gri":
        assert np.isfinite(children[f"madness_flux_{band}"]).all()
    result = task.run(mExp, parents)
    for parent in result.deblendedCatalog[:len(parents)]:
        model = result.modelData.blends.get(parent.getId())
        if model is not None and not parent["deblend_fallback"]:
            images = np.stack(model.children.images)
            assert not images[:, [0, 4, 5]].any() and images[:, 1:4].any()


def test_scarlet_is_the_default_fallback_and_deblends(tinyModels):
    mExp, parents = _mock(seed=10)
    parents = parents[:2]
    task = _task(tinyModels, parents.schema.copy(), cheapFallback=False, forceFallback=True)
    assert isinstance(task.fallback, ScarletDeblendTask)
    result = task.run(mExp, parents)
    rows = _fallbackRows(result, len(parents))
    assert all(r == (True, "forced", False, "") for r in rows)
    children = result.deblendedCatalog[len(parents):]
    assert len(children) == sum(len(r.getFootprint().getPeaks()) for r in parents)
    assert np.isfinite(children["madness_flux_r"]).all() and (children["madness_flux_r"] > 0).all()
    assert np.isnan(children["madness_logPrior"]).all()


def test_madness_flux_of_bright_separated_galaxies():
    """Shipped weights on LSST-like blends of 2-3 bright (r < 22.5), compact (hlr < 0.8") galaxies 18 px apart."""
    from lsst.meas.extensions.madness.afw.table import SourceTable
    from lsst.meas.extensions.madness.detect import detectParents
    from lsst.meas.extensions.madness.sim import BlendedSims, generatePopulation
    from lsst.meas.extensions.madness.sim.inputs import fieldExposure

    sims = BlendedSims(generatePopulation(2000, seed=11), seed=5, split="test")
    magnitude, radius = np.asarray(sims.galaxies["r_ab"]), np.asarray(sims.galaxies["hlr_disk"])
    bright = np.flatnonzero((magnitude < 22.5) & (radius < 0.8))
    task = MadnessDeblendTask(SourceTable.makeMinimalSchema())
    rng = np.random.default_rng(1)
    errors = []
    for index, n in enumerate([2, 3, 2, 3]):
        rows = rng.choice(bright, n, replace=False)
        angles = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(n) / n
        positions = 40 + 18 / (2 * np.sin(np.pi / n)) * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        scene = sims.compose(rows, positions + rng.uniform(-0.5, 0.5, (n, 2)), 81, index=index)
        mExp = fieldExposure(scene, sims)
        parents = detectParents(mExp, peaks=scene.positions)
        assert len(parents) == 1, "the galaxies should form one blend"
        catalog = task.run(mExp, parents).deblendedCatalog
        for child in catalog[1:]:
            j = np.argmin(np.hypot(*(scene.positions - [child["deblend_peak_center_x"],
                                                        child["deblend_peak_center_y"]]).T))
            truth = mExp["r"].getPhotoCalib().instFluxToNanojansky(scene.isolated[j, 2].sum())  # ADU to nJy
            errors.append(child["madness_flux_r"] / truth - 1)
    errors = np.abs(errors)
    assert len(errors) == 10
    assert np.all(errors < 0.10), f"relative r-band flux errors {np.round(errors, 3)}"


def test_torchscript_artefacts_deblend_without_zuko(tmp_path):
    script = textwrap.dedent("""
        import sys
        sys.modules["zuko"] = None  # any import of zuko now fails
        from lsst.meas.extensions.madness.deblend import MadnessDeblendTask
        from lsst.meas.extensions.madness.testing import makeMockMultibandExposure
        mock = makeMockMultibandExposure(shape=(70, 70), nGalaxies=2, seed=2, blended=True)
        task = MadnessDeblendTask(mock.catalog.schema.copy())
        task.config.maxIter, task.config.minIter = 3, 2
        out = task.run(mock.mExposure, mock.catalog).deblendedCatalog
        assert (out["parent"] > 0).sum() == sum(len(r.getFootprint().getPeaks()) for r in mock.catalog)
        assert not out["deblend_fallback"].any() and not out["deblend_failed"].any()
        print("ok", sys.modules["zuko"], sorted(m for m in sys.modules if m.startswith("zuko.")))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().endswith("ok None []")


def test_a_mask_plane_no_one_knows_is_refused_by_the_task(tinyModels):
    """Through the task API too (not only madness-run-task), a misspelled badMask plane is an error, not
    a plane that silently masks nothing."""
    from lsst.meas.extensions.madness.deblend.invariants import UnknownMaskPlaneError

    mExp, parents = _mock(seed=9)
    task = _task(tinyModels, parents.schema.copy(), badMask=["BAD", "SATURATED"])
    with pytest.raises(UnknownMaskPlaneError, match="SATURATED"):
        task.run(mExp, parents)
