"""The torch Fourier renderer (sim.fourier) against GalSim, its conventions, and ``madness-sim fourier-check``."""

from __future__ import annotations

import dataclasses
import json
from importlib import resources

import numpy as np
import pytest
import torch

from lsst.meas.extensions.madness.sim.cli import main as simMain
from lsst.meas.extensions.madness.sim.fourier import (
    FourierRenderer,
    GalaxyParameters,
    PsfSpec,
    deVaucouleursK,
    tabulateDeVaucouleurs,
)
from lsst.meas.extensions.madness.sim.fourierCheck import (
    FLUX_TARGET,
    MOFFAT_BETAS,
    PIXEL_TARGET,
    PSF_FAMILIES,
    drawFourier,
    drawGalsim,
    drawSample,
)

STAMP, SCALE = 45, 0.2


@pytest.fixture(scope="module")
def sample():
    """Six galaxies of the built-in population in g and r, fluxes in electrons, random centres."""
    return drawSample(6, seed=3, bands="gr")


def _draw(galaxies: GalaxyParameters, psf: PsfSpec) -> np.ndarray:
    return FourierRenderer(STAMP, SCALE).draw(galaxies.to(dtype=torch.float64), psf)[0, 0].numpy()


def _moments(image: np.ndarray) -> tuple[float, float, float, float, float]:
    """Centroid (x, y) and second moments (xx, yy, xy) of an ``[y, x]`` image."""
    y, x = np.indices(image.shape)
    total = image.sum()
    cx, cy = (image * x).sum() / total, (image * y).sum() / total
    xx = (image * (x - cx) ** 2).sum() / total
    yy = (image * (y - cy) ** 2).sum() / total
    xy = (image * (x - cx) * (y - cy)).sum() / total
    return cx, cy, xx, yy, xy


@pytest.mark.parametrize("family", PSF_FAMILIES)
def test_population_galaxies_match_galsim(sample, family):
    k = PSF_FAMILIES.index(family)
    betas = np.resize(np.asarray(MOFFAT_BETAS), sample.beta.size).reshape(sample.beta.shape)
    withPsf = dataclasses.replace(sample, psfKind=np.full_like(sample.psfKind, k), beta=betas)
    reference = drawGalsim(withPsf, STAMP, SCALE)
    ours = drawFourier(withPsf, FourierRenderer(STAMP, SCALE), dtype=torch.float64)
    fluxError = np.abs(ours.sum(axis=(2, 3)) / reference.sum(axis=(2, 3)) - 1)
    pixelError = np.abs(ours - reference).max(axis=(2, 3)) / reference.max(axis=(2, 3))
    assert fluxError.max() < FLUX_TARGET, fluxError
    assert pixelError.max() < PIXEL_TARGET, pixelError


def test_small_galaxy_keeps_its_flux():
    # Disk and point source only: a DeVaucouleurs bulge, even of 0.1", puts ~1e-3 of its light beyond 4.5".
    galaxies = GalaxyParameters.single([100.0, 250.0], agnFraction=0.2, hlrDisk=0.2, qDisk=0.7, paDisk=20.0,
                                       dx=0.2, dy=-0.4).to(dtype=torch.float64)
    stamps = FourierRenderer(STAMP, SCALE).draw(galaxies, PsfSpec.gaussian([0.6, 0.9]))
    np.testing.assert_allclose(stamps.sum(dim=(2, 3))[0].numpy(), [100.0, 250.0], rtol=1e-6)


@pytest.mark.parametrize("angle, longAxis", [(0.0, "x"), (90.0, "y")])
def test_shear_convention(angle, longAxis):
    galaxies = GalaxyParameters.single([1.0], hlrDisk=0.6, qDisk=0.5, paDisk=angle)
    _, _, xx, yy, xy = _moments(_draw(galaxies, PsfSpec.gaussian([0.4])))
    assert (xx > 1.5 * yy) if longAxis == "x" else (yy > 1.5 * xx)
    assert abs(xy) < 1e-3 * max(xx, yy)


def test_subpixel_shift_moves_the_centroid():
    psf = PsfSpec.kolmogorov([0.7])
    centred = _moments(_draw(GalaxyParameters.single([1.0], hlrDisk=0.3, qDisk=0.8, paDisk=30.0), psf))
    shifted = _moments(_draw(GalaxyParameters.single([1.0], hlrDisk=0.3, qDisk=0.8, paDisk=30.0, dx=0.3, dy=-0.2), psf))
    assert shifted[0] - centred[0] == pytest.approx(0.3, abs=1e-3)
    assert shifted[1] - centred[1] == pytest.approx(-0.2, abs=1e-3)
    assert centred[0] == pytest.approx(STAMP // 2, abs=1e-3) and centred[1] == pytest.approx(STAMP // 2, abs=1e-3)


def test_shipped_devaucouleurs_table_is_galsims():
    package = "lsst.meas.extensions.madness.sim"
    with resources.files(package).joinpath("data", "devaucouleurs_k.npz").open("rb") as handle:
        table = dict(np.load(handle))
    assert len(table["kappa"]) == 1200
    # 12 points of the same log grid (1199 = 11 × 109 steps): indices 0, 109, ..., 1199.
    kappa, values = tabulateDeVaucouleurs(count=12)
    np.testing.assert_allclose(table["kappa"][::109], kappa, rtol=1e-12)
    np.testing.assert_allclose(table["value"][::109], values, rtol=1e-10)
    between = torch.tensor(np.sqrt(kappa[1:] * kappa[:-1]), dtype=torch.float64)  # off the grid: interpolation
    import galsim

    exact = [galsim.DeVaucouleurs(half_light_radius=1.0).kValue(float(k), 0.0).real for k in between]
    np.testing.assert_allclose(deVaucouleursK(between).numpy(), exact, rtol=2e-3)


def test_grid_size_grows_with_the_galaxy():
    renderer = FourierRenderer(STAMP, SCALE)
    bigBulge = GalaxyParameters.single([1.0], bulgeFraction=1.0, hlrBulge=1.5, qBulge=0.5)
    smallDisk = GalaxyParameters.single([1.0], hlrDisk=0.2, qDisk=0.9)
    big, small = int(renderer.gridSizeOf(bigBulge)[0]), int(renderer.gridSizeOf(smallDisk)[0])
    assert big > small
    assert renderer.gridSizes[small] == renderer.gridSizes[0]


def test_bad_inputs_raise():
    with pytest.raises(ValueError, match="odd"):
        FourierRenderer(stampSize=44)
    with pytest.raises(ValueError, match="positive"):
        PsfSpec.gaussian([-0.5])
    with pytest.raises(ValueError, match="positive"):
        PsfSpec.kolmogorov([0.7, 0.0])
    with pytest.raises(ValueError, match="Moffat"):
        PsfSpec.moffat([0.7], beta=3.0)


def test_fourier_check_command(tmp_path, capsys):
    assert simMain(["fourier-check", "--galaxies", "4", "--batch-size", "4", "--device", "cpu", "--quiet",
                    "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "fourier-check.json").read_text())
    assert result["nGalaxies"] == 4 and result["bands"] == list("ugrizy")
    assert set(result["agreement"]) == {"float64", "float32"}
    assert result["agreement"]["float64"]["galaxiesFailing"] == 0
    assert {row["renderer"] for row in result["throughput"]} == {"GalSim", "FourierRenderer"}
    page = (tmp_path / "fourier-check.md").read_text()
    assert "| u | float64 |" in page and "stamps/s" in page
    assert "fourier-check.md" in capsys.readouterr().out
