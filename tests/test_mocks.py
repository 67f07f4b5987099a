"""Tests of the mocked multiband exposures in ``lsst.meas.extensions.madness.testing``."""

import numpy as np
import pytest

from lsst.meas.extensions.madness.afw import ImagePsf, MultibandExposure, Point2I
from lsst.meas.extensions.madness.testing import DEFAULT_BANDS, MockBlend, makeMockMultibandExposure


def _truthXY(mock: MockBlend) -> np.ndarray:
    return np.column_stack([np.asarray(mock.truth["x"]), np.asarray(mock.truth["y"])])


def _truthFluxes(mock: MockBlend) -> np.ndarray:
    return np.column_stack([np.asarray(mock.truth[f"flux_{band}"]) for band in mock.mExposure.bands])


def test_defaults_describe_the_mock():
    mock = makeMockMultibandExposure(seed=11)
    assert isinstance(mock.mExposure, MultibandExposure)
    assert mock.mExposure.bands == DEFAULT_BANDS
    assert mock.mExposure.image.array.shape == (6, 60, 60)
    assert mock.models.shape == (3, 6, 60, 60)
    assert mock.noiseless.shape == (6, 60, 60)
    assert len(mock.truth) == 3 and mock.seed == 11
    expected = {"id", "x", "y", "hlr", "q", "beta", "snr"} | {f"flux_{b}" for b in DEFAULT_BANDS}
    assert expected <= set(mock.truth.colnames)
    assert str(mock.truth["hlr"].unit) == "arcsec" and str(mock.truth["x"].unit) == "pix"
    assert mock.truth.meta["seed"] == 11
    hlr, q = np.asarray(mock.truth["hlr"]), np.asarray(mock.truth["q"])
    assert np.all((hlr >= 0.3) & (hlr <= 1.0)) and np.all((q >= 0.5) & (q <= 1.0))
    np.testing.assert_allclose(mock.models.sum(axis=0), mock.noiseless, rtol=1e-5, atol=1e-3)


def test_same_seed_gives_identical_mocks():
    first = makeMockMultibandExposure(seed=7, badPixels=5)
    second = makeMockMultibandExposure(seed=7, badPixels=5)
    for a, b in [
        (first.mExposure.image.array, second.mExposure.image.array),
        (first.mExposure.variance.array, second.mExposure.variance.array),
        (first.mExposure.mask.array, second.mExposure.mask.array),
        (first.models, second.models),
    ]:
        np.testing.assert_array_equal(a, b)
    assert np.array_equal(np.asarray(first.truth["flux_r"]), np.asarray(second.truth["flux_r"]))
    assert len(first.catalog) == len(second.catalog)


def test_different_seeds_give_different_mocks():
    first = makeMockMultibandExposure(seed=1)
    second = makeMockMultibandExposure(seed=2)
    assert not np.array_equal(_truthXY(first), _truthXY(second))
    assert not np.array_equal(first.mExposure.image.array, second.mExposure.image.array)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_noiseless_flux_matches_truth(seed):
    mock = makeMockMultibandExposure(seed=seed)
    measured = mock.models.sum(axis=(2, 3), dtype=np.float64)
    # Only the light that falls off the image (and float32 rounding) is missing.
    np.testing.assert_allclose(measured, _truthFluxes(mock), rtol=0.02)
    assert np.all(measured <= _truthFluxes(mock) * 1.001)


def test_fluxes_give_the_requested_signal_to_noise():
    mock = makeMockMultibandExposure(seed=4, snrRange=(100.0, 100.0), shape=(80, 80))
    sky = mock.mExposure.variance.array - mock.noiseless  # gain 1: variance = sky + model
    # Background-limited S/N of each model summed in quadrature over bands.
    snr = np.sqrt(np.sum(mock.models.astype(np.float64) ** 2 / sky[None], axis=(1, 2, 3)))
    np.testing.assert_allclose(snr, 100.0, rtol=1e-3)


@pytest.mark.parametrize("gain, skyLevel", [(1.0, None), (2.5, 400.0)])
def test_noise_matches_variance_plane(gain, skyLevel):
    mock = makeMockMultibandExposure(seed=5, shape=(100, 100), gain=gain, skyLevel=skyLevel, snrRange=(300, 500))
    exposure = mock.mExposure
    chi = (exposure.image.array - mock.noiseless) / np.sqrt(exposure.variance.array)
    assert abs(chi.std() - 1.0) < 0.03
    assert abs(chi.mean()) < 0.03
    expectedSky = 400.0 if skyLevel is not None else 1100.0
    np.testing.assert_allclose(
        exposure.variance.array[2] * gain, mock.noiseless[2] * 1.0 + expectedSky, rtol=1e-5
    )
    # The noise grows on the galaxies: it is Poisson on galaxy + sky.
    bright = mock.noiseless[2] > 0.5 * expectedSky
    assert bright.any()
    assert exposure.variance.array[2][bright].min() > exposure.variance.array[2][~bright].min()


@pytest.mark.parametrize("xy0", [(0, 0), (1000, -250)])
def test_model_centroids_match_truth(xy0):
    mock = makeMockMultibandExposure(seed=8, shape=(80, 80), xy0=Point2I(*xy0), nGalaxies=3)
    y, x = np.mgrid[0:80, 0:80]
    x, y = x + xy0[0], y + xy0[1]
    for model, (tx, ty) in zip(mock.models, _truthXY(mock)):
        total = model.sum(axis=(1, 2), dtype=np.float64)
        cx = (model * x).sum(axis=(1, 2), dtype=np.float64) / total
        cy = (model * y).sum(axis=(1, 2), dtype=np.float64) / total
        np.testing.assert_allclose(cx, tx, atol=0.1)
        np.testing.assert_allclose(cy, ty, atol=0.1)
    assert mock.mExposure.getXY0() == Point2I(*xy0)


def test_explicit_positions_are_used():
    positions = np.array([[20.25, 22.75], [40.5, 38.0]])
    mock = makeMockMultibandExposure(seed=3, positions=positions, nGalaxies=7)
    np.testing.assert_array_equal(_truthXY(mock), positions)
    assert mock.models.shape[0] == 2
    brightest = np.unravel_index(np.argmax(mock.models[0, 2]), mock.models.shape[2:])
    assert abs(brightest[1] - 20) <= 1 and abs(brightest[0] - 23) <= 1


def test_psfs_are_odd_unit_sum_and_centred():
    mock = makeMockMultibandExposure(seed=0, psfSize=25)
    psfs = mock.mExposure.getPsfs()
    assert len(psfs) == 6
    widths = []
    for psf in psfs:
        assert isinstance(psf, ImagePsf)
        kernel = psf.kernel
        assert kernel.shape == (25, 25)
        assert kernel.shape[0] % 2 == 1 and kernel.shape[1] % 2 == 1
        assert kernel.sum() == pytest.approx(1.0, abs=1e-6)
        y, x = np.mgrid[-12:13, -12:13]
        assert abs((kernel * x).sum()) < 1e-3 and abs((kernel * y).sum()) < 1e-3
        assert np.unravel_index(np.argmax(kernel), kernel.shape) == (12, 12)
        # Half maximum in pixels: the area above half the peak is pi (FWHM / 2)^2.
        widths.append(2.0 * np.sqrt(np.count_nonzero(kernel > 0.5 * kernel.max()) / np.pi) * 0.2)
    # Default FWHMs are 0.80-0.88 arcsec; pixelisation broadens them a little.
    assert all(0.7 < w < 1.1 for w in widths)


def test_psf_fwhm_can_be_set_per_band():
    narrow = makeMockMultibandExposure(seed=0, bands=("g", "r"), psfFwhm={"g": 0.6, "r": 1.2})
    gPeak, rPeak = (psf.kernel.max() for psf in narrow.mExposure.getPsfs())
    assert gPeak > 2.0 * rPeak


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("blended", [False, True])
def test_every_truth_galaxy_is_in_a_parent_footprint(seed, blended):
    mock = makeMockMultibandExposure(seed=seed, blended=blended)
    footprints = [record.getFootprint() for record in mock.catalog]
    for tx, ty in _truthXY(mock):
        pixel = Point2I(int(np.floor(tx + 0.5)), int(np.floor(ty + 0.5)))
        assert any(footprint.contains(pixel) for footprint in footprints), (tx, ty)


def test_blended_galaxies_overlap():
    mock = makeMockMultibandExposure(seed=2, blended=True, blendBoxSize=6.0)
    centre = mock.mExposure.getBBox().getCenter()
    assert np.all(np.abs(_truthXY(mock) - [centre.x, centre.y]) <= 3.0)
    assert len(mock.catalog) == 1
    # Overlap: the part of each galaxy's light that lies under the other galaxies' light.
    r = mock.models[:, 2].astype(np.float64)
    for i in range(3):
        others = r.sum(axis=0) - r[i]
        assert np.minimum(r[i], others).sum() > 0.5 * r[i].sum()


def test_separated_galaxies_keep_their_distance():
    mock = makeMockMultibandExposure(seed=9, nGalaxies=4, minSeparation=15.0, shape=(80, 80))
    xy = _truthXY(mock)
    distances = np.hypot(*(xy[:, None, :] - xy[None, :, :]).transpose(2, 0, 1))
    assert distances[np.triu_indices(4, 1)].min() >= 15.0
    assert np.all((xy >= 20) & (xy <= 59))


def test_bad_pixels_are_masked_without_touching_the_image():
    clean = makeMockMultibandExposure(seed=6)
    dirty = makeMockMultibandExposure(seed=6, badPixels=40)
    bad = dirty.mExposure.mask.getPlaneBitMask("BAD")
    flagged = (dirty.mExposure.mask.array & bad) != 0
    assert flagged[0].sum() == 40
    assert all(np.array_equal(flagged[0], flagged[b]) for b in range(6))
    assert not ((clean.mExposure.mask.array & bad) != 0).any()
    np.testing.assert_array_equal(clean.mExposure.image.array, dirty.mExposure.image.array)
    np.testing.assert_array_equal(clean.models, dirty.models)


def test_mock_is_fast():
    import time

    makeMockMultibandExposure(seed=0)  # imports and GalSim caches
    start = time.perf_counter()
    makeMockMultibandExposure(seed=1)
    assert time.perf_counter() - start < 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"psfSize": 24}, "psfSize"),
        ({"bands": ()}, "bands"),
        ({"positions": np.zeros((2, 3))}, r"\(N, 2\)"),
        ({"positions": np.array([[70.0, 10.0]])}, "not inside"),
        ({"qRange": (0.5, 1.5)}, "qRange"),
        ({"hlrRange": (1.0, 0.5)}, "hlrRange"),
        ({"nGalaxies": 20, "minSeparation": 20.0}, "cannot place"),
        ({"psfFwhm": {"u": 0.8}}, "psfFwhm"),
        ({"skyLevel": -1.0}, "skyLevel"),
        ({"badPixels": 10**6}, "badPixels"),
        ({"gain": 0.0}, "gain"),
    ],
)
def test_bad_arguments_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        makeMockMultibandExposure(**kwargs)
