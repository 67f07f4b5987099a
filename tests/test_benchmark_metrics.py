"""Known-answer tests of the benchmark metrics (Biswas et al. 2025, Sec. 4.1-4.4)."""

from __future__ import annotations

import math

import galsim
import numpy as np
import pytest

from lsst.meas.extensions.madness.benchmark import morphology
from lsst.meas.extensions.madness.benchmark.metrics import (
    GalaxyMetrics,
    apertureAxes,
    aperturePhotometry,
    blendedness,
    colour,
    colourResidual,
    contamination,
    deblendedFlux,
    multibandAperturePhotometry,
    relativeFluxError,
)
from lsst.meas.extensions.madness.benchmark.morphology import cosineSimilarity, ellipticity, ssim


def gaussianImage(shape, x0, y0, sigmaMajor, sigmaMinor, theta, flux=1.0):
    """Pixel-centre samples of an elliptical Gaussian; theta from +x towards +y (rows)."""
    y, x = np.mgrid[: shape[0], : shape[1]].astype(float)
    dx, dy = x - x0, y - y0
    c, s = math.cos(theta), math.sin(theta)
    u, v = c * dx + s * dy, -s * dx + c * dy
    image = np.exp(-0.5 * ((u / sigmaMajor) ** 2 + (v / sigmaMinor) ** 2))
    return flux * image / image.sum()


# ----------------------------------------------------------------------------- apertures


def testApertureAxesByHand():
    a, b = apertureAxes(np.array([3.0, 0.0]), np.array([2.0, 1.5]), psfFwhm=4.0)
    np.testing.assert_allclose(a, [math.sqrt(36 + 16), 4.0])
    np.testing.assert_allclose(b, [math.sqrt(16 + 16), 5.0])
    # Eq. 13: d is the full FWHM and is not scaled; scale = 1 gives sqrt(a² + d²).
    a1, _ = apertureAxes(3.0, 2.0, 4.0, scale=1.0)
    assert a1 == pytest.approx(5.0)
    # Equal to the reference code's r * sqrt(a² + (FWHM/2)²) with r = 2.
    assert float(apertureAxes(3.0, 2.0, 4.0)[0]) == pytest.approx(2 * math.sqrt(9 + 4))
    # Per-band table by broadcasting.
    aa, bb = apertureAxes(np.array([[1.0, 2.0]]), np.array([[1.0, 1.0]]), np.array([[0.0], [3.0]]))
    assert aa.shape == bb.shape == (2, 2)
    np.testing.assert_allclose(aa, [[2.0, 4.0], [math.sqrt(13), 5.0]])


def testFlatImageGivesEllipseArea():
    image = np.ones((80, 90))
    a, b = np.array([10.0, 6.0, 4.0]), np.array([4.0, 6.0, 9.0])
    flux = aperturePhotometry(image, [40.0, 30.3, 50.7], [40.0, 35.2, 44.1], a, b, [0.3, -2.0, 4.0])
    assert flux.shape == (3,)
    np.testing.assert_allclose(flux, np.pi * a * b, rtol=1e-3)


def testDeltaFunctionInsideAndOutside():
    image = np.zeros((60, 60))
    image[30, 37] = 5.0  # x = 37, y = 30: 7 px along +x from the centre
    insideAlongX = aperturePhotometry(image, 30.0, 30.0, 10.0, 3.0, 0.0)
    outsideAlongY = aperturePhotometry(image, 30.0, 30.0, 10.0, 3.0, np.pi / 2)
    # b > a is the same ellipse turned by 90 degrees.
    swapped = aperturePhotometry(image, 30.0, 30.0, 3.0, 10.0, np.pi / 2)
    assert insideAlongX[0] == pytest.approx(5.0)
    assert outsideAlongY[0] == 0.0
    assert swapped[0] == pytest.approx(5.0)


def testRotationConvention():
    # Elongated along +45 degrees: from +x towards +y, i.e. along increasing row and column.
    image = gaussianImage((64, 64), 32.0, 32.0, 8.0, 1.5, np.pi / 4, flux=100.0)
    assert image[40, 40] > image[40, 24]
    along = aperturePhotometry(image, 32.0, 32.0, 12.0, 3.0, np.pi / 4)
    across = aperturePhotometry(image, 32.0, 32.0, 12.0, 3.0, -np.pi / 4)
    assert along[0] > 1.5 * across[0]
    # Angles are wrapped: +45 + 180 degrees is the same aperture.
    assert aperturePhotometry(image, 32.0, 32.0, 12.0, 3.0, np.pi / 4 + np.pi)[0] == pytest.approx(along[0])


def testVarianceGivesError():
    image = np.ones((50, 50))
    flux, err = aperturePhotometry(image, 25.0, 25.0, 8.0, 3.0, 0.3, variance=4.0)
    assert flux[0] == pytest.approx(24 * np.pi)
    assert err[0] == pytest.approx(math.sqrt(4.0 * 24 * np.pi))
    _, errMap = aperturePhotometry(image, 25.0, 25.0, 8.0, 3.0, 0.3, variance=np.full((50, 50), 4.0))
    assert errMap[0] == pytest.approx(err[0])


def testInvalidApertures():
    with pytest.raises(ValueError):
        aperturePhotometry(np.ones((3, 10, 10)), 5.0, 5.0, 2.0, 1.0, 0.0)
    with pytest.raises(ValueError):
        aperturePhotometry(np.ones((10, 10)), 5.0, 5.0, -2.0, 1.0, 0.0)


def testMultibandPhotometryPerBandAxes():
    image = np.stack([np.ones((60, 60)), 2 * np.ones((60, 60))])
    a = np.array([[5.0], [8.0]])
    flux = multibandAperturePhotometry(image, [30.0, 28.0], [30.0, 31.0], a, 4.0, [0.0, 1.0])
    assert flux.shape == (2, 2)
    np.testing.assert_allclose(flux[0], np.pi * 5 * 4, rtol=1e-9)
    np.testing.assert_allclose(flux[1], 2 * np.pi * 8 * 4, rtol=1e-9)


# ----------------------------------------------------------------------------- deblended flux


def twoGalaxyField():
    shape = (3, 80, 80)
    rng = np.random.default_rng(1)
    galaxyA = np.stack([gaussianImage(shape[1:], 35.0, 40.0, 4.0, 2.5, 0.4, flux=f) for f in (500.0, 900.0, 1200.0)])
    galaxyB = np.stack([gaussianImage(shape[1:], 43.0, 42.0, 3.0, 3.0, 0.0, flux=f) for f in (800.0, 700.0, 300.0)])
    noise = rng.normal(0.0, 0.5, shape)
    return galaxyA, galaxyB, noise


def testDeblendedFluxWithPerfectModels():
    galaxyA, galaxyB, noise = twoGalaxyField()
    field = galaxyA + galaxyB + noise
    a, b = np.array([9.0, 8.0, 7.0]), np.array([6.0, 5.0, 4.0])
    Fd = deblendedFlux(field, [galaxyA, galaxyB], 0, 35.0, 40.0, a, b, 0.4)
    expected = multibandAperturePhotometry(galaxyA + noise, [35.0], [40.0], a[:, None], b[:, None], [0.4])[:, 0]
    assert Fd.shape == (3,)
    np.testing.assert_allclose(Fd, expected, rtol=1e-12, atol=1e-9)
    # The model of A itself does not matter; a stacked (n, bands, H, W) array works too.
    FdStacked = deblendedFlux(field, np.stack([0 * galaxyA, galaxyB]), 0, 35.0, 40.0, a, b, 0.4)
    np.testing.assert_allclose(FdStacked, Fd, rtol=1e-12)
    np.testing.assert_allclose(relativeFluxError(Fd, expected), 0.0, atol=1e-12)
    # Without deblending the neighbour contaminates the aperture.
    Fb = multibandAperturePhotometry(field, [35.0], [40.0], a[:, None], b[:, None], [0.4])[:, 0]
    assert np.all(contamination(Fb, expected) > 0.01)


def testDeblendedFluxRejectsWrongShapes():
    galaxyA, galaxyB, _ = twoGalaxyField()
    with pytest.raises(ValueError):
        deblendedFlux(galaxyA, [galaxyA, galaxyB[:2]], 0, 35.0, 40.0, 5.0, 5.0, 0.0)
    with pytest.raises(IndexError):
        deblendedFlux(galaxyA, [galaxyA, galaxyB], 2, 35.0, 40.0, 5.0, 5.0, 0.0)


def testRelativeFluxErrorAndContamination():
    assert float(relativeFluxError(1.1, 1.0)) == pytest.approx(0.1)
    assert float(contamination(1.2, 1.0)) == pytest.approx(0.2)
    np.testing.assert_allclose(contamination([2.0, 3.0], [2.0, 1.5]), [0.0, 1.0])


# ----------------------------------------------------------------------------- blendedness


def testBlendedness():
    galaxyA, galaxyB, _ = twoGalaxyField()
    np.testing.assert_allclose(blendedness(galaxyA, galaxyA), 0.0, atol=1e-15)
    np.testing.assert_allclose(blendedness(galaxyA, 2 * galaxyA), 0.5)
    beta = blendedness(galaxyA, galaxyA + galaxyB)
    assert beta.shape == (3,)
    assert np.all((beta > 0) & (beta < 1))
    # Per band: the relatively brighter neighbour (band 0) blends A more.
    assert beta[0] > beta[2]
    # A galaxy with no flux in a band: undefined.
    empty = galaxyA.copy()
    empty[1] = 0.0
    assert np.isnan(blendedness(empty, empty + galaxyB)[1])
    assert blendedness(galaxyA[0], galaxyA[0] + galaxyB[0]).shape == ()


# ----------------------------------------------------------------------------- colour


def testColourResidual():
    assert float(colourResidual(2.0, 3.0, 2.0, 3.0)) == 0.0
    assert float(colourResidual(4.0, 3.0, 2.0, 3.0)) == pytest.approx(-2.5 * math.log10(2.0))
    assert float(colour(10.0, 1.0)) == pytest.approx(-2.5)
    residual = colourResidual([1.0, -1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    assert residual[0] == 0.0 and np.isnan(residual[1]) and np.isnan(residual[2])
    assert np.isnan(colourResidual(1.0, 1.0, 1.0, np.nan))


# ----------------------------------------------------------------------------- SSIM


def bruteForceSsim(x, y, i, j, sigma=1.5, radius=5, c1=1e-4, c2=9e-4):
    """SSIM at pixel (i, j) from an explicit 11×11 normalised Gaussian window."""
    offsets = np.arange(-radius, radius + 1)
    w1 = np.exp(-0.5 * (offsets / sigma) ** 2)
    w = np.outer(w1, w1)
    w /= w.sum()
    window = (slice(i - radius, i + radius + 1), slice(j - radius, j + radius + 1))
    px, py = x[window], y[window]
    mx, my = (w * px).sum(), (w * py).sum()
    vx, vy = (w * px * px).sum() - mx * mx, (w * py * py).sum() - my * my
    cxy = (w * px * py).sum() - mx * my
    return (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))


def testSsimMapMatchesExplicitWindow():
    rng = np.random.default_rng(3)
    x, y = rng.random((30, 25)), rng.random((30, 25))
    ssimMap = morphology._ssimMap(x, y, 1.5, 3.5, 1.0, 0.01, 0.03)
    assert ssimMap.shape == (20, 15)
    for i, j in [(5, 5), (12, 17), (24, 19)]:
        assert ssimMap[i - 5, j - 5] == pytest.approx(bruteForceSsim(x, y, i, j), rel=1e-10)


def testSsim():
    galaxyA, _galaxyB, noise = twoGalaxyField()
    same = ssim(galaxyA, galaxyA)
    assert same.shape == (3,)
    np.testing.assert_allclose(same, 1.0)
    noisy = ssim(galaxyA + 5 * noise * galaxyA.max(axis=(1, 2), keepdims=True), galaxyA)
    assert np.all(noisy < 0.9)
    # "each": insensitive to a flux scale; "target": a flux error lowers the score.
    np.testing.assert_allclose(ssim(3 * galaxyA, galaxyA), 1.0)
    assert np.all(ssim(3 * galaxyA, galaxyA, normalisation="target") < 0.99)
    # Constant images: only the luminance term, (2 μx μy + C1)/(μx² + μy² + C1).
    flatTarget, flatPred = np.ones((1, 20, 20)), np.full((1, 20, 20), 0.5)
    assert ssim(flatPred, flatTarget, normalisation="target")[0] == pytest.approx((1.0 + 1e-4) / (1.25 + 1e-4))
    # Degenerate cases.
    assert np.isnan(ssim(galaxyA[:1], 0 * galaxyA[:1])[0])
    assert ssim(0 * galaxyA[:1], galaxyA[:1])[0] == 0.0
    with pytest.raises(ValueError):
        ssim(np.ones((1, 8, 8)), np.ones((1, 8, 8)))


# ----------------------------------------------------------------------------- cosine


def testCosineSimilarity():
    galaxyA, galaxyB, _ = twoGalaxyField()
    np.testing.assert_allclose(cosineSimilarity(galaxyA, 2 * galaxyA), 1.0)
    left, right = np.zeros((2, 20, 20)), np.zeros((2, 20, 20))
    left[:, 2:6, 2:6], right[:, 12:16, 12:16] = 1.0, 1.0
    np.testing.assert_allclose(cosineSimilarity(left, right), 0.0)
    np.testing.assert_allclose(cosineSimilarity(-left, left), -1.0)
    # Two equal-norm vectors sharing half their support: cos = 1/2.
    half, other = np.zeros((1, 20, 20)), np.zeros((1, 20, 20))
    half[0, 4:6, 2:6], half[0, 14:16, 2:6] = 1.0, 1.0
    other[0, 4:6, 2:6], other[0, 10:12, 2:6] = 1.0, 1.0
    np.testing.assert_allclose(cosineSimilarity(half, other), 0.5)
    result = cosineSimilarity(galaxyA + galaxyB, galaxyA)
    assert result.shape == (3,) and np.all(result < 1)
    zeros = np.zeros_like(galaxyA)
    assert np.all(cosineSimilarity(zeros, galaxyA) == 0.0)
    assert np.all(np.isnan(cosineSimilarity(galaxyA, zeros)))


def testCosineMatchesValidationModule():
    pytest.importorskip("torch")
    from lsst.meas.extensions.madness.models.validation import cosineSimilarity as validationCosine

    galaxyA, galaxyB, noise = twoGalaxyField()
    prediction = galaxyA + 0.3 * galaxyB + noise
    np.testing.assert_allclose(cosineSimilarity(prediction, galaxyA), validationCosine(prediction, galaxyA), rtol=1e-12)


# ----------------------------------------------------------------------------- ellipticity


def drawGalsim(profile, size=64):
    return profile.drawImage(nx=size, ny=size, scale=1.0, method="no_pixel").array


def testEllipticityOfShearedGaussian():
    image = drawGalsim(galsim.Gaussian(sigma=3.0, flux=1e4).shear(e1=0.3))
    e1, e2 = ellipticity(image)
    assert e1 == pytest.approx(0.3, abs=0.02)
    assert e2 == pytest.approx(0.0, abs=0.02)
    e1, e2 = ellipticity(drawGalsim(galsim.Gaussian(sigma=3.0, flux=1e4).shear(e2=-0.2)))
    assert e1 == pytest.approx(0.0, abs=0.02)
    assert e2 == pytest.approx(-0.2, abs=0.02)


def testEllipticityIsDistortionNotShear():
    # g = 0.3 is a distortion e = 2g / (1 + g²) ≈ 0.55.
    e1, _ = ellipticity(drawGalsim(galsim.Gaussian(sigma=3.0).shear(g1=0.3)))
    assert e1 == pytest.approx(2 * 0.3 / (1 + 0.09), abs=0.02)


def testEllipticityOrientationMatchesApertures():
    # A numpy Gaussian along +45 degrees (the aperture convention) has e2 > 0, e1 ≈ 0,
    # and |e| = (a² - b²) / (a² + b²).
    image = gaussianImage((64, 64), 32.0, 32.0, 5.0, 2.5, np.pi / 4)
    e1, e2 = ellipticity(image)
    assert e1 == pytest.approx(0.0, abs=0.01)
    assert e2 == pytest.approx((25 - 6.25) / (25 + 6.25), abs=0.01)


def testEllipticityOffCentreWithCentroid():
    profile = galsim.Gaussian(sigma=2.5, flux=1e4).shear(e1=-0.25)
    image = profile.drawImage(nx=120, ny=120, scale=1.0, method="no_pixel", offset=(35.0, -30.0)).array
    y, x = np.unravel_index(np.argmax(image), image.shape)
    e1, e2 = ellipticity(image, centroid=(float(x), float(y)))
    assert e1 == pytest.approx(-0.25, abs=0.02)
    assert e2 == pytest.approx(0.0, abs=0.02)


def testEllipticityPsfCorrected():
    psf = galsim.Gaussian(sigma=2.0)
    observed = drawGalsim(galsim.Convolve(galsim.Gaussian(sigma=3.0, flux=1e4).shear(e1=0.3), psf))
    e1Observed, _ = ellipticity(observed)
    e1, e2 = ellipticity(observed, psf=drawGalsim(psf, size=33))
    assert e1Observed < 0.25  # the PSF makes it rounder
    assert e1 == pytest.approx(0.3, abs=0.02)
    assert e2 == pytest.approx(0.0, abs=0.02)


def testEllipticityFailuresGiveNan():
    for image in (np.zeros((32, 32)), np.full((32, 32), np.nan), -drawGalsim(galsim.Gaussian(sigma=3.0), 32)):
        e1, e2 = ellipticity(image)
        assert math.isnan(e1) and math.isnan(e2)
    psf = drawGalsim(galsim.Gaussian(sigma=2.0), 33)
    negative = -drawGalsim(galsim.Gaussian(sigma=3.0))
    assert all(math.isnan(e) for e in ellipticity(negative, psf=psf))
    assert all(math.isnan(e) for e in ellipticity(np.zeros((32, 32)), psf=psf))


# ----------------------------------------------------------------------------- container


def testGalaxyMetricsRow():
    result = GalaxyMetrics(deltaF=np.array([0.1, -0.2]), contamination=np.array([0.0, 0.5]),
                           blendedness=np.array([0.01, 0.3]), ssim=np.array([0.9, 0.8]),
                           cosine=np.array([0.99, 0.98]), e1Residual=0.01, e2Residual=-0.02,
                           colourResidual=0.05)
    row = result.toRow(["g", "r"])
    assert row["r_deltaF"] == -0.2 and row["g_cosine"] == 0.99 and row["colourResidual"] == 0.05
    assert len(row) == 5 * 2 + 3
    with pytest.raises(ValueError):
        result.toRow(["g", "r", "i"])
