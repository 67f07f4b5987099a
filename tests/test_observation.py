"""From the model frame to the exposure: difference kernels, their use in the MAP objective and in fitBlends."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch

from lsst.meas.extensions.madness.afw import Box2I, Extent2I, Footprint, MultibandExposure, Point2I, SpanSet
from lsst.meas.extensions.madness.deblend import MapConfig, MapObjective, makeBlend
from lsst.meas.extensions.madness.deblend.fit import fitBlends
from lsst.meas.extensions.madness.deblend.mapCore import shiftStamps
from lsst.meas.extensions.madness.deblend.observation import (
    convolveStamps,
    cropPsfImage,
    differenceKernelSpectrum,
    exposureStampSize,
    kernelGridSize,
    pixelScaleRatio,
)
from lsst.meas.extensions.madness.models import loadModels
from lsst.meas.extensions.madness.sim.fourier import FourierRenderer, GalaxyParameters, PsfSpec


def _gaussianImage(fwhm: float, size: int = 41, scale: float = 0.2) -> np.ndarray:
    renderer = FourierRenderer(size, scale)
    point = GalaxyParameters.single([1.0], agnFraction=1.0)
    psf = PsfSpec(*(t.double() if t.is_floating_point() else t for t in PsfSpec.gaussian([fwhm]).__dict__.values()))
    return renderer.draw(point.to(dtype=torch.float64), psf)[0, 0].numpy()


def test_model_frame_convolved_with_the_kernel_is_the_observation():
    """A galaxy drawn in the model frame and convolved to the exposure's PSF equals the galaxy drawn
    with that PSF directly (both by the Fourier renderer). A compact Moffat: a 41-pixel kernel
    image holds all its light (a wide Kolmogorov loses ~1 % to the kernel's edges, which
    normalising the kernel puts back into its core)."""
    renderer = FourierRenderer(45, 0.2)
    galaxy = GalaxyParameters.single([1.0], hlrDisk=0.5, qDisk=0.6, paDisk=20.0, bulgeFraction=0.3, hlrBulge=0.2)
    model = renderer.draw(galaxy, PsfSpec.gaussian([0.35]))
    observed = renderer.draw(galaxy, PsfSpec.moffat([0.8], [4.5]))
    psfImage = FourierRenderer(41, 0.2).draw(GalaxyParameters.single([1.0], agnFraction=1.0),
                                              PsfSpec.moffat([0.8], [4.5]))[0, 0].numpy()
    spectrum = differenceKernelSpectrum(psfImage[None], 0.35, 0.2, 45)
    converted = convolveStamps(model, spectrum[None], None)
    assert float((converted - observed).abs().max() / observed.max()) < 2e-3
    assert abs(float(converted.sum() / observed.sum()) - 1) < 2e-3


@pytest.mark.parametrize("pixelScale, fwhm", [(0.168, 0.6), (0.263, 1.0)])
def test_model_frame_sampled_on_other_pixels_is_the_observation(pixelScale, fwhm):
    """A galaxy drawn in the model frame (0.2″) and taken to an exposure of other pixels (HSC's
    finer 0.168″, DES's coarser 0.263″), shifted by a sub-pixel offset, equals the galaxy drawn
    on those pixels with that PSF and offset directly, and keeps its flux."""
    galaxy = dict(hlrDisk=0.5, qDisk=0.6, paDisk=20.0, bulgeFraction=0.3, hlrBulge=0.2)
    model = FourierRenderer(45, 0.2).draw(GalaxyParameters.single([1.0], **galaxy), PsfSpec.gaussian([0.35]))
    psf = PsfSpec.moffat([fwhm], [4.5])
    psfImage = FourierRenderer(41, pixelScale).draw(GalaxyParameters.single([1.0], agnFraction=1.0), psf)[0, 0].numpy()
    ratio = pixelScaleRatio(pixelScale, 0.2)
    size = exposureStampSize(45, ratio)
    assert size * pixelScale >= 45 * 0.2 and size % 2 == 1
    spectrum = differenceKernelSpectrum(psfImage[None], 0.35, 0.2, 45, psfPixelScale=pixelScale)
    observed = convolveStamps(model, spectrum[None], torch.tensor([[0.3, -0.4]]), ratio)
    expected = FourierRenderer(size, pixelScale).draw(GalaxyParameters.single([1.0], dx=-0.4, dy=0.3, **galaxy), psf)
    assert observed.shape == expected.shape
    assert float((observed - expected).abs().max() / expected.max()) < 1e-3
    assert abs(float(observed.sum() / expected.sum()) - 1) < 1e-3
    # The same pixels as the model frame's take the FFT path, whatever the spelling.
    same = differenceKernelSpectrum(psfImage[None], 0.35, 0.2, 45, psfPixelScale=0.2)
    assert torch.allclose(same, differenceKernelSpectrum(psfImage[None], 0.35, 0.2, 45), atol=1e-6)
    with pytest.raises(ValueError, match="pixel scale"):
        pixelScaleRatio(-1.0, 0.2)


def test_phase_shift_agrees_with_lanczos_and_moves_the_centroid():
    stamps = torch.zeros(1, 1, 45, 45)
    y, x = torch.meshgrid(torch.arange(45.0), torch.arange(45.0), indexing="ij")
    stamps[0, 0] = torch.exp(-((x - 22) ** 2 + (y - 22) ** 2) / (2 * 2.5**2))
    identity = differenceKernelSpectrum(_gaussianImage(0.35)[None], 0.35, 0.2, 45)
    offsets = torch.tensor([[0.3, -0.4]])
    shifted = convolveStamps(stamps, identity[None], offsets)
    assert float((shifted - stamps).abs().max()) > 0.01  # it moved
    assert float((shifted - shiftStamps(stamps, offsets)).abs().max()) < 5e-3  # Lanczos-3's own error
    weights = shifted[0, 0] / shifted[0, 0].sum()
    assert abs(float((weights * y).sum()) - 22.3) < 1e-3 and abs(float((weights * x).sum()) - 21.6) < 1e-3


def test_kernel_never_amplifies_and_bad_psfs_are_refused():
    narrow = differenceKernelSpectrum(_gaussianImage(0.25)[None], 0.35, 0.2, 45)  # sharper than the model PSF
    assert float(narrow.abs().max()) <= 1.0 + 1e-6
    with pytest.raises(ValueError, match="band 1"):
        differenceKernelSpectrum([_gaussianImage(0.8), np.full((5, 5), np.nan)], 0.35, 0.2, 45)
    with pytest.raises(ValueError, match="positive sum"):
        differenceKernelSpectrum([np.zeros((5, 5))], 0.35, 0.2, 45)


def test_cropped_kernel_keeps_the_light_and_shrinks_the_grid():
    """A Moffat PSF image cut where its light ends: at most the tolerance of its light is outside, a
    smaller FFT grid, and the observed galaxy changes by less than that tolerance."""
    psfImage = FourierRenderer(41, 0.2).draw(GalaxyParameters.single([1.0], agnFraction=1.0),
                                              PsfSpec.moffat([0.7], [3.5]))[0, 0].numpy()
    cropped = cropPsfImage(psfImage, 1e-3)
    assert cropped.shape[0] == cropped.shape[1] < 41 and cropped.shape[0] % 2 == 1
    assert cropped.sum() >= (1 - 1e-3) * psfImage.sum()
    assert np.unravel_index(cropped.argmax(), cropped.shape) == (cropped.shape[0] // 2,) * 2
    assert cropPsfImage(psfImage, 1e-6).shape[0] > cropped.shape[0]
    assert kernelGridSize(45, cropped.shape[0]) < kernelGridSize(45, 41)
    delta = np.zeros((41, 41))
    delta[20, 20] = 1.0
    assert cropPsfImage(delta).shape == (1, 1)
    renderer = FourierRenderer(45, 0.2)
    galaxy = GalaxyParameters.single([1.0], hlrDisk=0.6, qDisk=0.5, paDisk=30.0)
    model = renderer.draw(galaxy, PsfSpec.gaussian([0.35]))
    full = convolveStamps(model, differenceKernelSpectrum(psfImage[None], 0.35, 0.2, 45)[None], None)
    cut = convolveStamps(model, differenceKernelSpectrum(cropped[None], 0.35, 0.2, 45)[None], None)
    assert float((cut - full).abs().max() / full.max()) < 1e-3
    assert abs(float(cut.sum() / full.sum()) - 1) < 1e-3


@pytest.fixture(scope="module")
def frameModels(tinyFrameModelDirectory, device):
    return loadModels(tinyFrameModelDirectory, device=device)


def _exposure(psfFwhm: float | None):
    rng = np.random.default_rng(0)
    image = rng.normal(0, 30, (6, 90, 90)).astype(np.float32)
    image[:, 40:50, 40:50] += 500
    psfs = None if psfFwhm is None else [_gaussianImage(psfFwhm)] * 6
    return MultibandExposure.fromArrays("ugrizy", image, np.zeros((6, 90, 90), np.int32),
                                        np.full((6, 90, 90), 900.0, np.float32), psfs=psfs)


def _footprint():
    footprint = Footprint(SpanSet(Box2I(Point2I(30, 30), Extent2I(30, 30))))
    footprint.addPeak(42.0, 44.3, 500.0)
    footprint.addPeak(48.2, 45.0, 400.0)
    return footprint


def test_model_frame_models_fit_through_the_exposure_psf(frameModels):
    scale = frameModels.imageScale()
    assert scale.shape == (6,) and np.all(scale > 0)
    blend = makeBlend(_exposure(0.8), _footprint())
    assert blend.psfImages is not None and len(blend.psfImages) == 6
    fit = fitBlends(frameModels, [blend], MapConfig(maxIter=6, minIter=3))[0]
    assert fit.finite and fit.stamps.shape == (2, 6, 45, 45)
    # The exposure's PSF matters: a wider one gives other children.
    wide = fitBlends(frameModels, [makeBlend(_exposure(1.3), _footprint())], MapConfig(maxIter=6, minIter=3))[0]
    assert not np.allclose(fit.stamps, wide.stamps)


def test_model_frame_models_need_a_psf(frameModels):
    with pytest.raises(ValueError, match="need the exposure's PSF"):
        fitBlends(frameModels, [makeBlend(_exposure(None), _footprint())], MapConfig(maxIter=3, minIter=1))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_objective_with_kernels_scripts(frameModels, tolerance):
    blend = makeBlend(_exposure(0.8), _footprint())
    device = frameModels.device
    kernels = differenceKernelSpectrum(blend.psfImages, 0.35, 0.2, 45)[None].to(device)
    data = torch.as_tensor(blend.data[None], dtype=torch.float32, device=device)
    args = (torch.randn(1, 2, 16, device=device), data, torch.ones_like(data),
            torch.as_tensor(blend.rows[None], device=device), torch.as_tensor(blend.cols[None], device=device),
            torch.ones(1, 2, dtype=torch.bool, device=device),
            torch.as_tensor(blend.subpixel[None], dtype=torch.float32, device=device), kernels)
    eager = MapObjective(frameModels.decoder, frameModels.flowLogProb)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        scripted = torch.jit.script(eager)
    for a, b in zip(eager(*args), scripted(*args)):
        torch.testing.assert_close(a, b, **tolerance)


def test_a_psf_that_varies_gives_each_parent_the_fit_of_its_own_psf(tinyFrameModelDirectory, device):
    """Two parents under different PSFs (a GridPsf with a node at each parent's centre): each parent's children
    are those it gets when the whole exposure has its PSF, and not those of the other PSF."""
    from lsst.meas.extensions.madness.afw import GridPsf, ImagePsf, SourceCatalog, SourceTable
    from lsst.meas.extensions.madness.testing.deblenders import quickMadnessTask

    rng = np.random.default_rng(1)
    image = rng.normal(0, 30, (6, 90, 180)).astype(np.float32)
    image[:, 40:50, 40:50] += 500
    image[:, 40:50, 140:150] += 500
    catalog = SourceCatalog(SourceTable.makeMinimalSchema())
    for x0 in (30, 130):  # footprints 30 px wide: box centres at x = x0 + 14.5, y = 44.5
        footprint = Footprint(SpanSet(Box2I(Point2I(x0, 30), Extent2I(30, 30))))
        footprint.addPeak(x0 + 12.0, 44.3, 500.0, id=x0)  # peak ids are unique over the catalogue
        footprint.addPeak(x0 + 18.2, 45.0, 400.0, id=x0 + 1)
        catalog.addNew().setFootprint(footprint)
    narrow, wide = _gaussianImage(0.6), _gaussianImage(1.3)
    psfs = {"grid": GridPsf([narrow, wide], [(44.5, 44.5), (144.5, 44.5)]), "narrow": ImagePsf(narrow),
            "wide": ImagePsf(wide)}
    children = {}
    for name, psf in psfs.items():
        mExposure = MultibandExposure.fromArrays("ugrizy", image, np.zeros(image.shape, np.int32),
                                                 np.full(image.shape, 900.0, np.float32), psfs=[psf] * 6)
        # One parent per batch: a batch's difference kernels share one FFT grid, sized for its widest PSF
        # (deblend/fit.py), which moves a narrow-PSF parent batched with a wide-PSF one by ~1e-3.
        task = quickMadnessTask(tinyFrameModelDirectory, catalog.schema.copy(), maxIter=8, minIter=3,
                                fallbackOnFailure=False, fallbackNonFinite=False, maxGalaxiesPerBatch=2,
                                maxMadnessPeaks=2, device=device)
        result = task.run(mExposure, catalog)
        assert not result.deblendedCatalog["deblend_failed"].any()
        children[name] = [np.stack(result.modelData.blends[parent.getId()].children.images) for parent in catalog]
    for k, own, other in ((0, "narrow", "wide"), (1, "wide", "narrow")):
        same = 1e-6 if device == "cpu" else 1e-4  # a GPU's kernels need not round alike run to run
        np.testing.assert_allclose(children["grid"][k], children[own][k], rtol=same, atol=same)
        assert not np.allclose(children["grid"][k], children[other][k], rtol=1e-3, atol=1e-3)


def test_cutouts_resampled_to_the_model_frame_keep_the_galaxy():
    """An exposure cutout (0.168″ pixels) resampled to the model frame's 0.2″ pixels is the galaxy drawn
    on 0.2″ pixels: what the VAE-deblender encoder sees whatever the exposure's pixels."""
    from lsst.meas.extensions.madness.deblend.mapCore import resampleStamps

    galaxy = GalaxyParameters.single([1.0], hlrDisk=0.6, qDisk=0.7, paDisk=30.0)
    psf = PsfSpec.moffat([0.7], [4.5])
    fine = FourierRenderer(55, 0.168).draw(galaxy, psf)
    expected = FourierRenderer(45, 0.2).draw(galaxy, psf)
    resampled = resampleStamps(fine, 45, 0.2 / 0.168)
    assert resampled.shape == expected.shape
    assert float((resampled - expected).abs().max() / expected.max()) < 1e-2
    assert abs(float(resampled.sum() / expected.sum()) - 1) < 1e-2


def test_an_exposure_of_other_pixels_is_fitted_on_its_own_pixels(tinyFrameModelDirectory, device):
    """An HSC-like exposure (0.168″ pixels): blends are cut with 55-pixel stamps, the children are drawn
    on the exposure's pixels, no pixel-scale warning, and an exposure that says nothing of its pixels
    is taken to be on the model frame's."""
    from lsst.meas.extensions.madness.afw import Angle, SourceCatalog, SourceTable, arcseconds
    from lsst.meas.extensions.madness.testing.deblenders import quickMadnessTask

    catalog = SourceCatalog(SourceTable.makeMinimalSchema())
    catalog.addNew().setFootprint(_footprint())
    sizes = {}
    for pixelScale in (0.168, None):
        exposure = _exposure(0.8)
        exposure.setPixelScale(None if pixelScale is None else Angle(pixelScale, arcseconds))
        task = quickMadnessTask(tinyFrameModelDirectory, catalog.schema.copy(), fallbackOnFailure=False,
                                fallbackNonFinite=False, device=device)
        assert task.deblenderPixelScale() is None  # a model frame serves every pixel scale
        result = task.run(exposure, catalog)
        parent = result.deblendedCatalog[0]
        assert not parent["deblend_failed"] and parent["deblend_nChild"] == 2
        children = result.modelData.blends[parent.getId()].children
        sizes[pixelScale] = children.images[0].shape[-1]
        assert np.isfinite(np.stack(children.images)).all()
    assert sizes == {0.168: 55, None: 45}


def test_fits_are_the_same_on_first_and_later_calls(device):
    """The MAP step's gradient must not change once the objective has run (TorchScript's autodiff of a
    scripted objective with difference kernels gave other gradients after its first call): the same
    blend, fitted in a fresh process's first call and again, gets the same children, on the model
    frame's pixels and on HSC's."""
    import subprocess
    import sys

    script = f"""
import warnings, numpy as np
warnings.simplefilter("ignore")
from lsst.meas.extensions.madness.afw import Angle, arcseconds
from lsst.meas.extensions.madness.models import loadShippedModels
from lsst.meas.extensions.madness.deblend import MapConfig, makeBlend
from lsst.meas.extensions.madness.deblend.fit import fitBlends, blendStampSize
import test_observation as t
models = loadShippedModels(device={device!r})  # the tiny test networks do not show it
for scale in (None, 0.168):
    exposure = t._exposure(0.8)
    exposure.setPixelScale(None if scale is None else Angle(scale, arcseconds))
    blend = makeBlend(exposure, t._footprint(), blendStampSize(models, scale))
    fits = [fitBlends(models, [blend], MapConfig(maxIter=30, minIter=30))[0] for _ in range(3)]
    for fit in fits[1:]:
        assert np.allclose(fit.stamps, fits[0].stamps, rtol=1e-4, atol=1e-4), (
            scale, np.abs(fit.stamps - fits[0].stamps).max())
print("same")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=str(__import__("pathlib").Path(__file__).parent))
    assert done.returncode == 0 and "same" in done.stdout, done.stderr[-2000:]
