"""Tests of parent and peak detection, ``lsst.meas.extensions.madness.detect``."""

import dataclasses

import numpy as np
import pytest
from scipy import ndimage

from lsst.meas.extensions.madness.afw import Box2I, Extent2I, MultibandExposure, Point2I
from lsst.meas.extensions.madness.afw.table import IdFactory, SourceTable
from lsst.meas.extensions.madness.detect import DetectionParams, detectParents, makeDetectionImage
from lsst.meas.extensions.madness.testing import makeMockMultibandExposure

# Compact, bright galaxies: a pair this far apart is always resolved into two peaks.
COMPACT = {"hlrRange": (0.3, 0.4), "snrRange": (150.0, 300.0)}
PAIR_SEPARATION = 9.0


def _pairPositions(seed: int, centre=(30.2, 29.7), separation=PAIR_SEPARATION) -> np.ndarray:
    angle = np.random.default_rng(seed + 100).uniform(0.0, np.pi)
    offset = 0.5 * separation * np.array([np.cos(angle), np.sin(angle)])
    return np.array([np.asarray(centre) - offset, np.asarray(centre) + offset])


def _copyExposure(mExposure: MultibandExposure, xy0: Point2I) -> MultibandExposure:
    """The same pixels and PSFs, at another parent position."""
    bbox = Box2I(xy0, mExposure.getBBox().getDimensions())
    return MultibandExposure.fromArrays(
        mExposure.bands,
        mExposure.image.array.copy(),
        np.zeros_like(mExposure.mask.array),
        mExposure.variance.array.copy(),
        bbox=bbox,
        psfs=mExposure.getPsfs(),
    )


def _peaksOf(record) -> np.ndarray:
    return np.array([(p.getFx(), p.getFy()) for p in record.getFootprint().getPeaks()])


def _footprintPixels(catalog, bbox: Box2I) -> np.ndarray:
    """Boolean (y, x) array of every footprint pixel, checking footprints do not overlap."""
    covered = np.zeros((bbox.getHeight(), bbox.getWidth()), dtype=int)
    for record in catalog:
        covered += record.getFootprint().getSpans().asArray(bbox)
    assert covered.max() <= 1, "parent footprints overlap"
    return covered.astype(bool)


def _assertPeaksInsideFootprints(catalog) -> None:
    for record in catalog:
        footprint = record.getFootprint()
        assert len(footprint.getPeaks()) >= 1
        assert record.get("deblend_nPeaks") == len(footprint.getPeaks())
        for peak in footprint.getPeaks():
            assert footprint.contains(peak.getI()), (peak, footprint)
            assert peak.getI() == Point2I(int(np.floor(peak.getFx() + 0.5)), int(np.floor(peak.getFy() + 0.5)))


@pytest.mark.parametrize("seed", range(5))
def test_separated_galaxies_give_two_parents_with_one_peak_each(seed):
    truth = np.array([[17.3, 19.6], [43.8, 41.1]]) + np.random.default_rng(seed).uniform(-0.5, 0.5, (2, 2))
    mock = makeMockMultibandExposure(seed=seed, positions=truth, **COMPACT)
    catalog = detectParents(mock.mExposure)
    assert len(catalog) == 2
    assert catalog["deblend_nPeaks"].tolist() == [1, 1]
    assert catalog["parent"].tolist() == [0, 0]
    peaks = np.concatenate([_peaksOf(record) for record in catalog])
    # Sub-pixel accuracy: better than the 0.5 pixel of the integer peak position.
    np.testing.assert_allclose(peaks, truth, atol=0.25)
    _assertPeaksInsideFootprints(catalog)
    _footprintPixels(catalog, mock.mExposure.getBBox())


@pytest.mark.parametrize("seed", range(12))
def test_extended_galaxies_have_no_spurious_peaks(seed):
    # Large, bright galaxies have wide wings above threshold where unsmoothed noise
    # would make local maxima.
    mock = makeMockMultibandExposure(
        seed=seed, hlrRange=(0.6, 1.0), snrRange=(200.0, 500.0), minSeparation=15.0, shape=(70, 70)
    )
    catalog = detectParents(mock.mExposure)
    peaks = np.concatenate([_peaksOf(record) for record in catalog])
    truth = np.column_stack([np.asarray(mock.truth["x"]), np.asarray(mock.truth["y"])])
    assert len(peaks) == len(truth)
    distance = np.hypot(*(peaks[:, None, :] - truth[None, :, :]).transpose(2, 0, 1))
    assert distance.min(axis=0).max() < 1.0


@pytest.mark.parametrize("seed", range(8))
def test_blended_pair_gives_one_parent_with_two_peaks(seed):
    truth = _pairPositions(seed)
    mock = makeMockMultibandExposure(seed=seed, positions=truth, **COMPACT)
    catalog = detectParents(mock.mExposure)
    assert len(catalog) == 1
    assert catalog[0].get("deblend_nPeaks") == 2
    peaks = _peaksOf(catalog[0])
    # Each truth galaxy has its own peak nearby.
    distance = np.hypot(*(peaks[:, None, :] - truth[None, :, :]).transpose(2, 0, 1))
    assert sorted(distance.argmin(axis=1).tolist()) == [0, 1]
    assert distance.min(axis=0).max() < 1.0
    values = [peak.getPeakValue() for peak in catalog[0].getFootprint().getPeaks()]
    assert values == sorted(values, reverse=True)
    _assertPeaksInsideFootprints(catalog)


def test_truth_peaks_go_to_their_footprints_and_none_is_lost():
    pair = _pairPositions(3, centre=(38.0, 38.0))
    isolated = np.array([[14.6, 15.2]])
    galaxies = np.concatenate([isolated, pair])
    mock = makeMockMultibandExposure(seed=3, positions=galaxies, **COMPACT)
    empty = np.array([[50.0, 12.4]])  # blank sky: detected by nothing
    corner = np.array([[0.2, 58.9]])  # blank sky at the edge: its disc is clipped
    truth = np.concatenate([galaxies, empty, corner])
    catalog = detectParents(mock.mExposure, peaks=truth, grow=2)

    assert len(catalog) == 4
    owners = {}
    for index, record in enumerate(catalog):
        for peak in record.getFootprint().getPeaks():
            owners[peak.extra["truth_index"]] = index
            np.testing.assert_array_equal([peak.getFx(), peak.getFy()], truth[peak.extra["truth_index"]])
    assert sorted(owners) == [0, 1, 2, 3, 4]
    assert owners[1] == owners[2]  # the blended pair shares a parent
    assert len({owners[0], owners[1], owners[3], owners[4]}) == 4

    # Undetected positions get a disc of radius grow + 2 = 4 (49 pixels), clipped at the edge.
    emptyFootprint = catalog[owners[3]].getFootprint()
    assert emptyFootprint.getArea() == 49
    assert emptyFootprint.contains(Point2I(50, 12)) and emptyFootprint.contains(Point2I(54, 12))
    cornerFootprint = catalog[owners[4]].getFootprint()
    assert 9 < cornerFootprint.getArea() < 49
    assert mock.mExposure.getBBox().contains(cornerFootprint.getBBox())
    _assertPeaksInsideFootprints(catalog)
    _footprintPixels(catalog, mock.mExposure.getBBox())


def test_truth_mode_gives_a_peak_to_parents_without_truth():
    galaxies = np.array([[15.3, 16.1], [44.2, 42.8]])
    mock = makeMockMultibandExposure(seed=1, positions=galaxies, **COMPACT)
    catalog = detectParents(mock.mExposure, peaks=galaxies[:1])
    assert len(catalog) == 2
    indices = sorted(p.extra["truth_index"] for r in catalog for p in r.getFootprint().getPeaks())
    assert indices == [-1, 0]
    orphan = next(r for r in catalog if r.getFootprint().getPeaks()[0].extra["truth_index"] == -1)
    np.testing.assert_allclose(_peaksOf(orphan)[0], galaxies[1], atol=1.0)
    _assertPeaksInsideFootprints(catalog)


def test_truth_mode_accepts_no_positions():
    mock = makeMockMultibandExposure(seed=2, **COMPACT)
    catalog = detectParents(mock.mExposure, peaks=np.zeros((0, 2)))
    assert len(catalog) == len(detectParents(mock.mExposure))
    _assertPeaksInsideFootprints(catalog)


@pytest.mark.parametrize("seed", range(4))
def test_detected_bit_is_set_exactly_on_footprints(seed):
    mock = makeMockMultibandExposure(seed=seed, badPixels=10)
    exposure = mock.mExposure
    bit = exposure.mask.getPlaneBitMask("DETECTED")
    exposure.mask.array[:, 0, 0] |= bit  # a stale bit from an earlier run
    catalog = detectParents(exposure)
    footprints = _footprintPixels(catalog, exposure.getBBox())
    assert footprints.any()
    for band in range(len(exposure.bands)):
        np.testing.assert_array_equal((exposure.mask.array[band] & bit) != 0, footprints)
    # Other planes are left alone.
    bad = exposure.mask.getPlaneBitMask("BAD")
    assert ((exposure.mask.array & bad) != 0).sum() == 10 * len(exposure.bands)


def test_detected_plane_is_added_when_missing():
    mock = makeMockMultibandExposure(seed=0, bands=("g", "r"))
    planes = {"BAD": 0, "SAT": 1}
    exposure = MultibandExposure.fromArrays(
        ("g", "r"), mock.mExposure.image.array, None, mock.mExposure.variance.array, maskPlanes=planes
    )
    catalog = detectParents(exposure)
    assert "DETECTED" in exposure.mask.getMaskPlaneDict()
    bit = exposure.mask.getPlaneBitMask("DETECTED")
    assert ((exposure.mask.array[1] & bit) != 0).sum() == sum(r.getFootprint().getArea() for r in catalog)


def test_parent_coordinates_follow_xy0():
    mock = makeMockMultibandExposure(seed=4, blended=True, **COMPACT)
    shift = Extent2I(1234, -567)
    moved = _copyExposure(mock.mExposure, Point2I(shift.x, shift.y))
    original = detectParents(_copyExposure(mock.mExposure, Point2I(0, 0)))
    shifted = detectParents(moved)
    assert len(original) == len(shifted) > 0
    for before, after in zip(original, shifted):
        assert after.getFootprint().getSpans() == before.getFootprint().getSpans().shiftedBy(shift)
        np.testing.assert_allclose(_peaksOf(after), _peaksOf(before) + [shift.x, shift.y], atol=1e-9)
    _assertPeaksInsideFootprints(shifted)

    truth = np.column_stack([np.asarray(mock.truth["x"]), np.asarray(mock.truth["y"])]) + [shift.x, shift.y]
    truthCatalog = detectParents(moved, peaks=truth)
    assert sum(r.get("deblend_nPeaks") for r in truthCatalog) == len(truth)
    _assertPeaksInsideFootprints(truthCatalog)


def test_footprints_are_grown_segments():
    mock = makeMockMultibandExposure(seed=6, **COMPACT)
    exposure = mock.mExposure
    detection, _ = makeDetectionImage(exposure)
    # Without the matched filter the footprints are the raw above-threshold segments.
    tight = detectParents(exposure, grow=0, nSigma=5.0, thresholdSmoothing=0)
    pixels = _footprintPixels(tight, exposure.getBBox())
    # grow=0: the footprints are the above-threshold segments, down to single pixels.
    labels, _n = ndimage.label(detection.array > 5.0, structure=np.ones((3, 3)))
    sizes = np.bincount(labels.ravel())[1:]
    np.testing.assert_array_equal(pixels, np.isin(labels, 1 + np.flatnonzero(sizes >= 5)))
    grown = detectParents(exposure, grow=3, thresholdSmoothing=0)
    grownPixels = _footprintPixels(grown, exposure.getBBox())
    disc = np.hypot(*np.mgrid[-3:4, -3:4]) <= 3
    np.testing.assert_array_equal(grownPixels, ndimage.binary_dilation(pixels, structure=disc))
    significance = grown["detect_significance"]
    assert np.all(significance > 5.0)
    np.testing.assert_allclose(significance.max(), detection.array.max(), rtol=1e-6)


def test_detection_image_has_unit_noise_and_skips_bad_pixels():
    rng = np.random.default_rng(0)
    sigma = np.array([1.0, 3.0, 10.0])[:, None, None]
    image = (rng.normal(size=(3, 200, 200)) * sigma).astype(np.float32)
    variance = np.broadcast_to(sigma**2, image.shape).astype(np.float32).copy()
    mask = np.zeros(image.shape, np.int32)
    exposure = MultibandExposure.fromArrays(["g", "r", "i"], image, mask, variance)
    bad = exposure.mask.getPlaneBitMask("BAD")
    exposure.mask.array[:, :10, :] |= bad  # every band
    exposure.mask.array[0, 10:20, :] |= bad  # one band
    exposure.variance.array[1, 20:30, :] = 0.0
    detection, covered = makeDetectionImage(exposure)
    assert not covered[:10].any() and covered[10:].all()
    assert np.all(detection.array[:10] == 0.0)
    assert abs(detection.array[10:].std() - 1.0) < 0.02
    # One band left out: the others still give unit noise, as the formula says.
    expected = (image[1:, 10:20] / sigma[1:] ** 2).sum(axis=0) / np.sqrt((1.0 / sigma[1:] ** 2).sum())
    np.testing.assert_allclose(detection.array[10:20], expected, rtol=1e-5, atol=1e-6)
    assert len(detectParents(exposure)) == 0  # pure noise: nothing at 5 sigma


def test_masked_galaxy_is_not_detected():
    galaxies = np.array([[17.0, 18.0], [43.0, 42.0]])
    mock = makeMockMultibandExposure(seed=2, positions=galaxies, **COMPACT)
    exposure = mock.mExposure
    exposure.mask.array[:, 30:, 30:] |= exposure.mask.getPlaneBitMask("NO_DATA")
    catalog = detectParents(exposure)
    assert len(catalog) == 1
    np.testing.assert_allclose(_peaksOf(catalog[0])[0], galaxies[0], atol=0.5)
    # Masked in one band only, the galaxy is still found in the others.
    exposure.mask.array[:] = 0
    exposure.mask.array[2, 30:, 30:] |= exposure.mask.getPlaneBitMask("SAT")
    assert len(detectParents(exposure)) == 2


def test_detection_on_a_subset_of_bands():
    mock = makeMockMultibandExposure(seed=1, **COMPACT)
    all_ = detectParents(mock.mExposure)
    some = detectParents(mock.mExposure, bands=["g", "r", "i"])
    assert len(some) >= 1 and len(all_) >= 1
    full, _ = makeDetectionImage(mock.mExposure)
    partial, _ = makeDetectionImage(mock.mExposure, bands=["g", "r", "i"])
    assert not np.array_equal(full.array, partial.array)


def test_schema_ids_and_records():
    mock = makeMockMultibandExposure(seed=0)
    catalog = detectParents(mock.mExposure, idFactory=IdFactory.makeSource(7, 32))
    schema = catalog.getSchema()
    assert schema.getNames()[:4] == ["id", "coord_ra", "coord_dec", "parent"]
    nPeaks = schema.find("deblend_nPeaks").field
    significance = schema.find("detect_significance").field
    assert (nPeaks.type, nPeaks.doc) == ("I", "Number of peaks in the footprint")
    assert (significance.type, significance.doc) == ("F", "Peak S/N of the detection image")
    ids = catalog["id"]
    assert len(set(ids.tolist())) == len(catalog) and np.all(ids >> 32 == 7)
    peakIds = [p.getId() for r in catalog for p in r.getFootprint().getPeaks()]
    assert sorted(peakIds) == list(range(1, len(peakIds) + 1))
    for record in catalog:
        assert record.getFootprint().getRegion() == mock.mExposure.getBBox()

    custom = SourceTable.makeMinimalSchema()
    custom.addField("deblend_nPeaks", type="I", doc="already there")
    result = detectParents(mock.mExposure, schema=custom)
    assert result.getSchema() is custom and "detect_significance" in custom
    assert custom.find("deblend_nPeaks").field.doc == "already there"


def test_params_dataclass_round_trips():
    params = DetectionParams(nSigma=7.0, grow=1)
    mock = makeMockMultibandExposure(seed=5)
    fromParams = detectParents(mock.mExposure, **dataclasses.asdict(params))
    direct = detectParents(mock.mExposure, nSigma=7.0, grow=1)
    assert [r.getFootprint() for r in fromParams] == [r.getFootprint() for r in direct]
    assert DetectionParams().nSigma == 5.0 and DetectionParams().minArea == 5


def _exposure(image=None, variance=None, bands=("g", "r")):
    shape = (len(bands), 20, 20)
    image = np.zeros(shape, np.float32) if image is None else image
    variance = np.ones(shape, np.float32) if variance is None else variance
    return MultibandExposure.fromArrays(bands, image, None, variance)


@pytest.mark.parametrize(
    "exposure, kwargs, message",
    [
        (lambda: _exposure(bands=()), {}, "no bands"),
        (lambda: _exposure(variance=np.zeros((2, 20, 20), np.float32)), {}, "variance"),
        (lambda: _exposure(variance=np.full((2, 20, 20), -1.0, np.float32)), {}, "variance"),
        (lambda: _exposure(variance=np.full((2, 20, 20), np.nan, np.float32)), {}, "variance"),
        (lambda: _exposure(), {"peaks": np.zeros((3, 3))}, r"\(N, 2\)"),
        (lambda: _exposure(), {"peaks": np.zeros(2)}, r"\(N, 2\)"),
        (lambda: _exposure(), {"peaks": np.array([[5.0, np.nan]])}, "finite"),
        (lambda: _exposure(), {"peaks": np.array([[25.0, 5.0]])}, "outside"),
        (lambda: _exposure(), {"peaks": "truth"}, "detected"),
        (lambda: _exposure(), {"bands": ["z"]}, "not in the exposure"),
        (lambda: _exposure(), {"bands": []}, "bands is empty"),
        (lambda: _exposure(), {"nSigma": 0.0}, "nSigma"),
        (lambda: _exposure(), {"minArea": 0}, "minArea"),
        (lambda: _exposure(), {"grow": -1}, "grow"),
    ],
)
def test_bad_inputs_raise_clear_errors(exposure, kwargs, message):
    with pytest.raises(ValueError, match=message):
        detectParents(exposure(), **kwargs)


def test_fully_masked_exposure_raises():
    exposure = _exposure()
    exposure.mask.array[:] = exposure.mask.getPlaneBitMask("BAD")
    with pytest.raises(ValueError, match="masked"):
        detectParents(exposure)


def test_matched_filter_finds_faint_extended_galaxies():
    """Galaxies of integrated S/N ~ 15 whose pixels are all below 5 sigma: found only
    with the PSF-matched filter (LSST's smoothing before thresholding)."""
    mock = makeMockMultibandExposure(seed=2, hlrRange=(0.8, 1.0), snrRange=(15.0, 18.0), shape=(80, 80), nGalaxies=3)
    detection, _ = makeDetectionImage(mock.mExposure)
    assert detection.array.max() < 5.0
    assert len(detectParents(mock.mExposure, thresholdSmoothing=0)) == 0
    catalog = detectParents(mock.mExposure)
    peaks = np.concatenate([_peaksOf(record) for record in catalog])
    truth = np.column_stack([np.asarray(mock.truth["x"]), np.asarray(mock.truth["y"])])
    distance = np.hypot(*(truth[:, None, :] - peaks[None, :, :]).transpose(2, 0, 1))
    assert np.all(distance.min(axis=1) < 3.0)
    assert np.all(catalog["detect_significance"] > 5.0)


def test_matched_filter_keeps_unit_noise():
    from lsst.meas.extensions.madness.detect import matchedFilter

    noise = np.random.default_rng(1).normal(size=(300, 300))
    for sigma in (0.0, 1.0, 2.5):
        assert abs(matchedFilter(noise, sigma)[20:-20, 20:-20].std() - 1.0) < 0.05
