"""The scarlet2 fit of one blend: fluxes, residuals, masked pixels, the compact fallback, input checks.

Blends are simulated here: exponential elliptical galaxies with distinct SEDs convolved with
Gaussian PSFs, plus Gaussian noise of known variance. Each fit compiles anew (~2-3 s; the first
one ~15 s), so the fits are shared by module-scoped fixtures.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from lsst.meas.extensions.madness.deblend.scarletCore import ScarletFit, ScarletFitConfig, fitScarletBlend

BANDS = "gri"
SIZE = 60
VARIANCE = 100.0
POSITIONS = np.array([[20.3, 22.0], [40.0, 38.6], [17.6, 44.2]])
SEDS = np.array([[3000, 9000, 15000], [12000, 9000, 4500], [5000, 5000, 5000]], float)
SCALES = (1.5, 2.5, 2.0)  # exponential scale lengths (pixels)


def gaussianPsf(sigma: float, size: int = 21) -> np.ndarray:
    y, x = np.mgrid[:size, :size] - size // 2
    psf = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    return psf / psf.sum()


PSFS = np.stack([gaussianPsf(s) for s in (1.6, 1.4, 1.3)])


def convolve(image: np.ndarray, psf: np.ndarray) -> np.ndarray:
    kernel = np.zeros_like(image)
    p = psf.shape[0]
    kernel[:p, :p] = psf
    kernel = np.roll(kernel, (-(p // 2), -(p // 2)), (0, 1))
    return np.real(np.fft.ifft2(np.fft.fft2(image) * np.fft.fft2(kernel)))


def galaxy(centre, scale, axisRatio, angle, size=SIZE) -> np.ndarray:
    y, x = np.mgrid[:size, :size].astype(float)
    dy, dx = y - centre[0], x - centre[1]
    u = np.cos(angle) * dx + np.sin(angle) * dy
    v = (-np.sin(angle) * dx + np.cos(angle) * dy) / axisRatio
    image = np.exp(-np.hypot(u, v) / scale)
    return image / image.sum()


def simulate(positions=POSITIONS, seds=SEDS, seed=0):
    """Noisy blend (bands, H, W), its weight, and the noiseless per-galaxy images (K, bands, H, W)."""
    truth = np.zeros((len(positions), len(BANDS), SIZE, SIZE))
    for k, (centre, sed) in enumerate(zip(positions, seds)):
        profile = galaxy(centre, SCALES[k % 3], 0.6, 0.7 * k)
        for b in range(len(BANDS)):
            truth[k, b] = sed[b] * convolve(profile, PSFS[b])
    rng = np.random.default_rng(seed)
    data = truth.sum(axis=0) + rng.normal(0, np.sqrt(VARIANCE), truth.shape[1:])
    return data, np.full_like(data, 1 / VARIANCE), truth


def chi2PerPixel(fit: ScarletFit, data, weight) -> float:
    used = weight > 0
    return float(np.sum((weight * (data - fit.models.sum(axis=0)) ** 2)[used]) / used.sum())


@pytest.fixture(scope="module")
def blend():
    data, weight, truth = simulate()
    return data, weight, truth, fitScarletBlend(data, weight, PSFS, POSITIONS, BANDS)


@pytest.fixture(scope="module")
def maskedBlend():
    """The same blend on a canvas padded by 10 pixels of zero weight, with a masked stripe of NaN."""
    data, weight, truth = simulate(seed=1)
    pad = ((0, 0), (10, 10), (10, 10))
    data, weight = np.pad(data, pad, constant_values=np.nan), np.pad(weight, pad)
    data[:, 40:43, 5:60] = np.nan  # between the galaxies, through the middle of the canvas
    weight[:, 40:43, 5:60] = 0.0
    fit = fitScarletBlend(data, weight, PSFS, POSITIONS + 10, BANDS, ScarletFitConfig(maxIter=150))
    return data, weight, np.pad(truth, ((0, 0),) + pad), fit


class TestFit:
    def test_shapes_and_bookkeeping(self, blend):
        data, weight, truth, fit = blend
        assert fit.models.shape == truth.shape
        assert fit.initialisation == ["gaussian_moments"] * 3
        assert 1 <= fit.iterations <= ScarletFitConfig().maxIter
        if not fit.converged:
            assert fit.iterations == ScarletFitConfig().maxIter
        expected = -0.5 * np.sum(weight * (data - fit.models.sum(axis=0)) ** 2)
        assert fit.logLikelihood == pytest.approx(expected, rel=1e-6)

    def test_models_finite_and_non_negative(self, blend):
        models = blend[3].models
        assert np.isfinite(models).all()
        assert models.min() >= 0
        # each model is concentrated on its own galaxy, not spread over the canvas
        for k, (y, x) in enumerate(POSITIONS.round().astype(int)):
            assert models[k, 2, y, x] == pytest.approx(models[k, 2].max(), rel=0.5)

    def test_fluxes_in_brightest_band(self, blend):
        _, _, truth, fit = blend
        brightest = truth.sum(axis=(2, 3)).argmax(axis=1)
        for k, b in enumerate(brightest):
            trueFlux = truth[k, b].sum()
            assert fit.models[k, b].sum() == pytest.approx(trueFlux, rel=0.15), f"galaxy {k} band {BANDS[b]}"

    def test_colours_follow_seds(self, blend):
        _, _, _truth, fit = blend
        fitted = fit.models.sum(axis=(2, 3))
        assert np.argmax(fitted[:2], axis=1).tolist() == [2, 0]
        assert fitted[0, 2] / fitted[0, 0] > 3 and fitted[1, 0] / fitted[1, 2] > 1.8

    def test_residuals_are_noise(self, blend):
        data, weight, _, fit = blend
        assert 0.7 < chi2PerPixel(fit, data, weight) < 1.5
        # the total flux is fitted: the residual sum per band is noise-limited (4 sigma)
        residual = (data - fit.models.sum(axis=0)).sum(axis=(1, 2))
        assert np.all(np.abs(residual) < 4 * np.sqrt(VARIANCE * SIZE**2))


class TestMaskedPixels:
    def test_padding_and_mask_do_not_break_the_fit(self, maskedBlend):
        data, weight, truth, fit = maskedBlend
        assert fit.models.shape == truth.shape
        assert np.isfinite(fit.models).all() and fit.models.min() >= 0
        assert np.isfinite(fit.logLikelihood)
        assert 0.7 < chi2PerPixel(fit, data, weight) < 1.5
        for k in range(len(POSITIONS)):
            b = truth[k].sum(axis=(1, 2)).argmax()
            assert fit.models[k, b].sum() == pytest.approx(truth[k, b].sum(), rel=0.15)


class TestCompactFallback:
    def test_noise_positions_get_compact_models(self):
        """A source in a masked hole has no moments; sources on pure noise may or may not."""
        positions = np.vstack([POSITIONS[:2], [[50.0, 10.0], [8.0, 52.0], [53.0, 53.0]]])
        data, weight, truth = simulate(positions, np.vstack([SEDS[:2], np.zeros((3, 3))]), seed=2)
        data[:, 46:60, 46:60] = 0.0
        weight[:, 46:60, 46:60] = 0.0
        fit = fitScarletBlend(data, weight, PSFS, positions, BANDS, ScarletFitConfig(maxIter=100))
        assert fit.initialisation[:2] == ["gaussian_moments"] * 2
        assert fit.initialisation[4] == "compact"
        assert np.isfinite(fit.models).all() and fit.models.min() >= 0
        # the empty sources stay faint: far below the galaxies and below a few noise sigma in total
        faint = fit.models[2:].sum(axis=(2, 3))
        assert faint.max() < 0.1 * truth[:2].sum(axis=(2, 3)).min()
        for k in range(2):
            b = truth[k].sum(axis=(1, 2)).argmax()
            assert fit.models[k, b].sum() == pytest.approx(truth[k, b].sum(), rel=0.15)


class TestInputs:
    @pytest.mark.parametrize(
        "change, message",
        [
            (dict(weight=np.ones((3, 60, 59))), "weight shape"),
            (dict(data=np.ones((60, 60)), weight=np.ones((60, 60))), "data must be"),
            (dict(psfs=np.ones((3, 20, 20)) / 400), "odd"),
            (dict(psfs=np.ones((2, 21, 21)) / 441), "psfs must be"),
            (dict(positions=np.zeros((0, 2))), "at least one source"),
            (dict(positions=np.zeros((2, 3))), "positions must be"),
            (dict(positions=np.array([[10.0, 70.0]])), "outside"),
            (dict(positions=np.array([[np.nan, 10.0]])), "outside"),
            (dict(bands="gr"), "bands"),
        ],
    )
    def test_bad_inputs_raise(self, change, message):
        arguments = dict(data=np.ones((3, 60, 60)), weight=np.ones((3, 60, 60)), psfs=PSFS,
                         positions=np.array([[30.0, 30.0]]), bands=BANDS)
        arguments.update(change)
        with pytest.raises(ValueError, match=message):
            fitScarletBlend(**arguments)

    def test_config_is_strict_and_frozen(self):
        with pytest.raises(ValidationError):
            ScarletFitConfig(maxIterations=10)
        with pytest.raises(ValidationError):
            ScarletFitConfig(relativeError=0)
        config = ScarletFitConfig()
        with pytest.raises(ValidationError):
            config.maxIter = 3
        assert all(field.description for field in ScarletFitConfig.model_fields.values())

    def test_import_does_not_load_jax(self):
        code = ("import sys; import lsst.meas.extensions.madness.deblend.scarletCore; "
                "sys.exit(int('jax' in sys.modules or 'scarlet2' in sys.modules))")
        assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_compilation_cache_fills_and_keeps_results(blend, tmp_path):
    """A fresh process with the persistent cache writes compiled programs and fits the same models."""
    cache, out = tmp_path / "jax-cache", tmp_path / "models.npy"
    code = (f"import sys, numpy as np; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
            "from test_scarlet_core import simulate, PSFS, POSITIONS, BANDS; "
            "from lsst.meas.extensions.madness.deblend.scarletCore import ScarletFitConfig, fitScarletBlend; "
            "data, weight, _ = simulate(); "
            "fit = fitScarletBlend(data, weight, PSFS, POSITIONS, BANDS, "
            f"ScarletFitConfig(compilationCacheDir={str(cache)!r})); "
            f"np.save({str(out)!r}, fit.models)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
    assert any(cache.iterdir()), "no compiled program was written to the cache"
    np.testing.assert_allclose(np.load(out), blend[3].models, rtol=1e-9, atol=1e-9)
