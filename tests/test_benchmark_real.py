"""``madness-bench real``: a real blend file converted, deblended through madness-run-task and measured.

The blend files here are synthetic, in the layout of the HSC COSMOS development file (``images``
(band, y, x), ``psfs``, ``catalog`` with ``x``, ``y``, ``flux``, ``filters``); the real file is not
available to the tests.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from lsst.meas.extensions.madness.afw import MultibandExposure, Point2I
from lsst.meas.extensions.madness.afw.table import SourceCatalog
from lsst.meas.extensions.madness.benchmark.cli import main
from lsst.meas.extensions.madness.benchmark.real import (
    RealBlendError,
    convertBlend,
    fitQuality,
    hallucinationShares,
    readBlendNpz,
)

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

BANDS = ("g", "r", "i", "z", "y")
SIGMA = np.array([0.03, 0.05, 0.05, 0.1, 0.17])
POSITIONS = np.array([[15.3, 18.2], [25.6, 22.7]])


def _gaussian(shape, x0, y0, sigma):
    y, x = np.mgrid[: shape[0], : shape[1]]
    g = np.exp(-((x - x0) ** 2 + (y - y0) ** 2) / (2 * sigma**2))
    return g / g.sum()


def _blend(seed: int = 0, shape=(40, 44)):
    """Noiseless images (band, y, x), noisy images, PSFs and the catalogue of two Gaussian galaxies."""
    fluxes = np.array([[20.0, 30, 40, 45, 50], [10.0, 20, 35, 40, 40]])
    psfs = np.stack([_gaussian((25, 25), 12, 12, s) for s in (1.6, 1.4, 1.3, 1.3, 1.5)])
    # A Gaussian galaxy of width 1.5 px convolved with a Gaussian PSF is a Gaussian of the summed variance.
    noiseless = np.stack([sum(f[b] * _gaussian(shape, x, y, np.hypot(1.5, [1.6, 1.4, 1.3, 1.3, 1.5][b]))
                              for f, (x, y) in zip(fluxes, POSITIONS)) for b in range(len(BANDS))])
    rng = np.random.default_rng(seed)
    images = (noiseless + rng.normal(size=noiseless.shape) * SIGMA[:, None, None]).astype(np.float32)
    catalog = np.zeros(len(POSITIONS), dtype=[("x", "f8"), ("y", "f8"), ("flux", "f8")])
    catalog["x"], catalog["y"], catalog["flux"] = POSITIONS[:, 0], POSITIONS[:, 1], fluxes.sum(axis=1)
    return noiseless, images, psfs, catalog


def _writeBlend(path, seed: int = 0, drop: str | None = None):
    _, images, psfs, catalog = _blend(seed)
    arrays = {"images": images, "psfs": psfs, "catalog": catalog, "filters": np.array(BANDS)}
    arrays.pop(drop, None)
    np.savez(path, **arrays)
    return path


def test_conversion_writes_a_calibrated_exposure_and_one_parent_with_every_source(tmp_path):
    npz = _writeBlend(tmp_path / "blend.npz")
    converted = convertBlend(npz, tmp_path / "work", magZero=30.0, pixelScale=0.168)
    exposure = MultibandExposure.readFits(converted.exposurePath)
    assert exposure.bands == BANDS
    assert exposure.getPixelScale().asArcseconds() == pytest.approx(0.168)
    # MAGZERO 30: one unit is 10**((31.4 - 30) / 2.5) nJy, in every band.
    for calib in exposure.getPhotoCalibs():
        assert calib.getCalibrationMean() == pytest.approx(10 ** ((31.4 - 30.0) / 2.5), rel=1e-4)
    assert exposure.getPsfs()[2].computeKernelImage().array.sum() == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(exposure.variance.array[:, 0, 0], converted.noise.sigma**2, rtol=1e-6)
    catalog = SourceCatalog.readFits(converted.catalogPath, bbox=exposure.getBBox())
    assert len(catalog) == 1 and catalog[0].getParent() == 0
    footprint = catalog[0].getFootprint()
    peaks = footprint.getPeaks()
    assert [p.getId() for p in peaks] == [1, 2]
    np.testing.assert_allclose([[p.getFx(), p.getFy()] for p in peaks], POSITIONS)
    assert all(footprint.contains(Point2I(int(round(x)), int(round(y)))) for x, y in POSITIONS)
    assert converted.footprintArea == footprint.getArea() > 50


@pytest.mark.parametrize("seed", [0, 1])
def test_noise_estimate_is_within_20_percent_of_the_truth(tmp_path, seed):
    converted = convertBlend(_writeBlend(tmp_path / "blend.npz", seed), tmp_path / "work")
    np.testing.assert_allclose(converted.noise.sigma, SIGMA, rtol=0.2)
    # The sources are kept out of the background; most of the sky is in it.
    background = converted.noise.background
    for x, y in POSITIONS:
        assert not background[int(round(y)), int(round(x))]
    assert 0.3 < background.mean() < 0.95


def test_hallucination_share_on_hand_made_children():
    centres = np.array([[9.5, 5.0], [29.5, 5.0]])  # the bisector runs between columns 19 and 20
    models = np.zeros((2, 2, 10, 40))
    models[0, :, :, 20:] = 1.0  # wholly in source 1's cell
    models[1, :, :, 25:35] = 2.0  # symmetric about its own centre, inside its cell
    models[1, 0, :, 0:5] = -7.0  # negative model flux does not count
    np.testing.assert_allclose(hallucinationShares(models, centres), [1.0, 0.0])
    models[0] = 1.0  # uniform over the image: half of it on each side
    np.testing.assert_allclose(hallucinationShares(models, centres)[0], 0.5)
    # Light in another source's cell, three sources: a quarter of source 0's flux.
    three = np.zeros((3, 1, 10, 40))
    three[0, 0, 5, [8, 9, 10, 30]] = 1.0
    three[1, 0, 5, 30] = three[2, 0, 0, 0] = 1.0
    shares = hallucinationShares(three, np.array([[9.0, 5.0], [29.0, 5.0], [0.0, 0.0]]))
    np.testing.assert_allclose(shares, [0.25, 0.0, 0.0])
    assert np.isnan(hallucinationShares(np.zeros((2, 1, 4, 4)), centres)).all()


def test_fit_quality_of_the_truth_and_of_nothing():
    noiseless, images, _, _ = _blend(seed=3)
    variance = np.broadcast_to((SIGMA**2)[:, None, None], images.shape)
    footprint = np.ones(images.shape[1:], bool)
    truth = fitQuality(images, variance, noiseless, footprint)
    np.testing.assert_allclose(truth["chi2"], 1.0, atol=0.12)
    assert truth["chi2All"] == pytest.approx(1.0, abs=0.06) and truth["outlierFractionAll"] == 0
    empty = fitQuality(images, variance, np.zeros_like(noiseless), footprint)
    assert empty["chi2All"] > 3 and 0 < empty["outlierFractionAll"] < 0.2
    # Pixels outside the footprint, or without a variance, do not count.
    footprint[:, :20] = False
    variance = variance.copy()
    variance[0] = 0
    partial = fitQuality(images, variance, noiseless, footprint)
    assert np.isnan(partial["chi2"][0]) and partial["nPixels"].tolist() == [0] + [40 * 24] * 4


@pytest.mark.parametrize("drop", ["psfs", "catalog", "images"])
def test_a_blend_file_without_a_key_is_refused_with_the_file_and_key_named(tmp_path, drop, capsys):
    npz = _writeBlend(tmp_path / "bad.npz", drop=drop)
    with pytest.raises(RealBlendError, match=f"{tmp_path / 'bad.npz'}: no key '{drop}'"):
        readBlendNpz(npz)
    assert main(["real", "--npz", str(npz), "--out", str(tmp_path / "work"), "--doc", str(tmp_path / "r.md"),
                 "--results", str(tmp_path / "r.json"), "--static", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert str(npz) in error and repr(drop) in error
    assert not (tmp_path / "r.md").exists()


def test_other_bad_blend_files_are_refused(tmp_path):
    missing = tmp_path / "nowhere.npz"
    with pytest.raises(RealBlendError, match=r"nowhere\.npz: no such file"):
        readBlendNpz(missing)
    (tmp_path / "text.npz").write_text("not an archive")
    with pytest.raises(RealBlendError, match=r"text\.npz: not a NumPy \.npz archive"):
        readBlendNpz(tmp_path / "text.npz")
    _, images, psfs, catalog = _blend()
    np.savez(tmp_path / "nox.npz", images=images, psfs=psfs, catalog=catalog[["y", "flux"]], filters=np.array(BANDS))
    with pytest.raises(RealBlendError, match="key 'catalog' has no field 'x'"):
        readBlendNpz(tmp_path / "nox.npz")
    catalog["x"][1] = 60.0
    np.savez(tmp_path / "off.npz", images=images, psfs=psfs, catalog=catalog)
    with pytest.raises(RealBlendError, match="not on the 44x40 image"):
        readBlendNpz(tmp_path / "off.npz", bands=BANDS)
    with pytest.raises(RealBlendError, match="no key 'filters'"):
        readBlendNpz(tmp_path / "off.npz")


def test_end_to_end_with_tiny_madness_models(tmp_path, tinyFrameModelDirectory, capsys, device):
    npz = _writeBlend(tmp_path / "tiny_blend.npz")
    doc, results, static = tmp_path / "doc" / "real.md", tmp_path / "doc" / "real.json", tmp_path / "static"
    status = main(["real", "--npz", str(npz), "--out", str(tmp_path / "work"), "--methods", "madness",
                   "--model-dir", str(tinyFrameModelDirectory), "--device", device, "--doc", str(doc),
                   "--results", str(results), "--static", str(static)])
    assert status == 0
    printed = capsys.readouterr().out
    assert "| MADNESS | reduced χ² |" in printed and "hallucination share" in printed
    assert printed.count("| MADNESS |") == 2 + 2  # two quality rows, two sources
    summary = json.loads(results.read_text())
    assert doc.read_text() in printed
    madness = summary["methods"]["madness"]
    assert madness["status"] == 0 and madness["deblender"] == "MadnessDeblendTask"
    assert madness["missingBands"] == ["u"] and not madness["parentFlags"]["deblend_failed"]
    # The children carry their models (not the data shared out), so the chi2 read back from the heavy
    # footprints is the deblender's own.
    assert madness["chi2"]["all"] == pytest.approx(madness["deblenderChi2"], rel=1e-3)
    assert madness["chi2"]["all"] > 0.5 and set(madness["chi2"]) == {*BANDS, "all"}
    assert 0 <= madness["outlierFraction"]["all"] <= 1
    assert [s["index"] for s in madness["sources"]] == [0, 1]
    for source in madness["sources"]:
        assert set(source["flux"]) == set(BANDS) and all(np.isfinite(list(source["flux"].values())))
        assert 0 <= source["hallucinationShare"] <= 1
    assert "config.fallback.maxIter = 200" in (tmp_path / "work" / "madness-config.py").read_text()
    assert "config.conserveFlux = False" in (tmp_path / "work" / "madness" / "config.py").read_text()
    assert summary["noise"]["backgroundPixels"] > 500
    np.testing.assert_allclose(list(summary["noise"]["sigma"].values()), SIGMA, rtol=0.2)
    assert (static / "real_tiny_blend.png").stat().st_size > 10_000
