"""Parents cut into blends for the MAP core: canvases, weights, stamp corners, cutouts, batching."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lsst.meas.extensions.madness.afw import Box2I, Extent2I, Footprint, MultibandExposure, Point2I, SpanSet
from lsst.meas.extensions.madness.deblend import MapObjective, fitLatents, makeBlend, stackBlends
from lsst.meas.extensions.madness.deblend.blends import parentPixelMap
from lsst.meas.extensions.madness.models import Decoder, Encoder, ModelConfig, exportModels, loadModels, makeFlow


def _exposure(size=80, bands="gr", x0=100, y0=200):
    rng = np.random.default_rng(0)
    image = rng.normal(0, 1, (len(bands), size, size)).astype(np.float32)
    variance = np.ones_like(image)
    mask = np.zeros(image.shape, np.int32)
    return MultibandExposure.fromArrays(bands, image, mask, variance, bbox=Box2I(Point2I(x0, y0), Extent2I(size, size)),
                                        maskPlanes={"BAD": 0, "SAT": 1, "DETECTED": 5})


def _footprint(x, y, w, h, peaks):
    foot = Footprint(SpanSet(Box2I(Point2I(x, y), Extent2I(w, h))))
    for fx, fy in peaks:
        foot.addPeak(fx, fy, 1.0)
    return foot


def test_edge_peak_is_zero_padded_with_zero_weight():
    mExp = _exposure()
    foot = _footprint(100, 200, 10, 10, [(102.4, 203.6)])  # at the exposure's lower-left corner
    blend = makeBlend(mExp, foot, stampSize=45)
    assert blend.canvasBox == Box2I(Point2I(78, 178), Extent2I(54, 54))
    # The stamp is centred on the rounded peak (102, 204).
    assert (blend.rows[0], blend.cols[0]) == (204 - 22 - 178, 102 - 22 - 78)
    np.testing.assert_allclose(blend.subpixel[0], [-0.4, 0.4])
    offExposure = (slice(None), slice(0, 22), slice(None))  # canvas rows below y = 200
    assert np.all(blend.weight[offExposure] == 0) and np.all(blend.data[offExposure] == 0)
    cut = blend.cutouts[0]
    assert np.all(cut[:, :4] == 0) and np.all(cut[:, :, :2] == 0)  # rows y < 200 and columns x < 100
    np.testing.assert_array_equal(cut[:, 22, 22], mExp.image.array[:, 4, 2])


def test_masked_and_off_footprint_pixels_have_no_weight():
    mExp = _exposure()
    mExp.mask.array[0, 10, 12] = 1 << 0  # BAD in g
    mExp.mask.array[1, 11, 12] = 1 << 5  # DETECTED: not a bad plane
    mExp.variance.array[1, 12, 12] = 0.0  # no valid variance
    foot = _footprint(105, 205, 15, 15, [(112, 211)])
    blend = makeBlend(mExp, foot)

    def at(x, y):
        return blend.weight[:, y - blend.canvasBox.getMinY(), x - blend.canvasBox.getMinX()]
    np.testing.assert_array_equal(at(112, 210), [0.0, 1.0])
    np.testing.assert_array_equal(at(112, 211), [1.0, 1.0])
    np.testing.assert_array_equal(at(112, 212), [1.0, 0.0])
    assert at(130, 211).tolist() == [0.0, 0.0]  # off the footprint, on the exposure
    loose = makeBlend(mExp, foot, footprintOnly=False)
    assert loose.weight[:, 211 - loose.canvasBox.getMinY(), 130 - loose.canvasBox.getMinX()].tolist() == [1.0, 1.0]
    with pytest.raises(ValueError, match="no peaks"):
        makeBlend(mExp, _footprint(105, 205, 5, 5, []))


def test_other_parents_pixels_are_hidden_from_the_encoder_and_the_fit():
    """With every parent's pixels marked, a neighbour parent's light is zero in the cutouts and of zero
    weight; the undetected sky around the parent keeps its weight unless footprintOnly."""
    mExp = _exposure()
    mExp.image.array[:] = 1.0
    mine = _footprint(105, 205, 15, 15, [(112, 211)])
    neighbour = _footprint(125, 205, 10, 10, [(130, 210)])
    pixels = parentPixelMap(mExp, [mine, neighbour])
    assert pixels.sum() == 15 * 15 + 10 * 10
    blend = makeBlend(mExp, mine, footprintOnly=False, parentPixels=pixels)

    def at(array, x, y):
        return array[..., y - blend.canvasBox.getMinY(), x - blend.canvasBox.getMinX()]
    assert at(blend.weight, 130, 210).tolist() == [0.0, 0.0]  # the neighbour's
    assert at(blend.weight, 112, 225).tolist() == [1.0, 1.0]  # undetected sky
    assert at(blend.weight, 112, 211).tolist() == [1.0, 1.0]  # its own
    # The cutout is centred on the peak (112, 211): the neighbour's pixel (130, 210) is 18 right, 1 up.
    assert blend.cutouts[0, :, 22 - 1, 22 + 18].tolist() == [0.0, 0.0]
    assert blend.cutouts[0, :, 22, 22].tolist() == [1.0, 1.0]
    assert blend.cutouts[0, :, 22 + 14, 22].tolist() == [1.0, 1.0]  # sky stays
    tight = makeBlend(mExp, mine, footprintOnly=True, parentPixels=pixels)
    assert at(tight.weight, 112, 225).tolist() == [0.0, 0.0]
    assert tight.cutouts[0, :, 22 - 1, 22 + 18].tolist() == [0.0, 0.0]


def test_stack_pads_sizes_and_peaks():
    mExp = _exposure()
    small = makeBlend(mExp, _footprint(120, 220, 6, 6, [(122, 222)]))
    large = makeBlend(mExp, _footprint(110, 210, 30, 20, [(115, 215), (130, 222), (125, 212)]))
    batch = stackBlends([small, large])
    assert batch["data"].shape == (2, 2, 64, 74) and batch["cutouts"].shape == (2, 3, 2, 45, 45)
    assert batch["present"].tolist() == [[True, False, False], [True, True, True]]
    assert np.all(batch["weight"][0, :, 50:, :] == 0) and np.all(batch["weight"][0, :, :, 50:] == 0)
    np.testing.assert_array_equal(batch["data"][1], large.data)


def test_blend_fit_recovers_placed_galaxies(tmp_path, device):
    """Galaxies decoded from known latents, put in an exposure, cut out and fitted back."""
    config = ModelConfig.fromProfile("tiny")
    torch.manual_seed(0)
    exportModels(tmp_path, config, Encoder(config), Decoder(config), makeFlow(config), Encoder(config))
    models = loadModels(tmp_path, device=device)
    truth = torch.randn(2, 16, generator=torch.Generator().manual_seed(2)).to(device)
    with torch.no_grad():
        stamps = models.decode(truth).cpu().numpy() * 1e4
    size = 120
    image = np.zeros((6, size, size))
    for stamp, (x, y) in zip(stamps, [(50, 55), (62, 60)]):
        image[:, y - 22:y + 23, x - 22:x + 23] += stamp
    variance = np.full_like(image, 1e-2)
    mExp = MultibandExposure.fromArrays("ugrizy", image.astype(np.float32), np.zeros(image.shape, np.int32),
                                        variance.astype(np.float32))
    foot = _footprint(20, 25, 75, 70, [(50, 55), (62, 60)])
    blend = makeBlend(mExp, foot, footprintOnly=False)
    batch = {k: torch.as_tensor(v, device=device) for k, v in stackBlends([blend]).items()}
    data, weight = batch["data"].float() / 1e4, batch["weight"].float() * 1e8
    objective = MapObjective(models.decoder, models.flowLogProb)
    start = (truth + 0.5 * torch.randn(2, 16, generator=torch.Generator().manual_seed(4)).to(device)).unsqueeze(0)
    result = fitLatents(objective, start, data, weight, batch["rows"], batch["cols"], batch["present"])
    with torch.no_grad():
        before = -objective(start, data, weight, batch["rows"], batch["cols"], batch["present"])[1]
    assert float(-result.logLikelihood[0]) < 0.05 * float(before[0])


def test_fit_blends_batches_by_peaks_and_keeps_order(tmp_path, device):
    from lsst.meas.extensions.madness.deblend import MapConfig, fitBlends
    from lsst.meas.extensions.madness.deblend.fit import _batches

    config = ModelConfig.fromProfile("tiny")
    torch.manual_seed(0)
    exportModels(tmp_path, config, Encoder(config), Decoder(config), makeFlow(config), Encoder(config))
    models = loadModels(tmp_path, device=device)  # fitBlends runs where the models are
    rng = np.random.default_rng(3)
    image = rng.normal(0, 1, (6, 150, 150)).astype(np.float32)
    mExp = MultibandExposure.fromArrays("ugrizy", image, np.zeros(image.shape, np.int32), np.ones_like(image))
    peakLists = [[(40, 40), (50, 45), (45, 52)], [(100, 100)], [(60, 110), (70, 115)], [(110, 40)]]
    blends = [makeBlend(mExp, _footprint(x - 8, y - 8, 30, 30, peaks)) for peaks in peakLists
              for (x, y) in [peaks[0]]]
    # Sorted by K; a batch holds at most 4 galaxies: [1, 3] (K = 1), then [2] (K = 2), then [0] (K = 3).
    assert _batches(blends, 4) == [[1, 3], [2], [0]]
    # Blends of other pixel scales never share a batch (their stamps differ).
    assert _batches(blends, 4, [1.0, 0.84, 1.0, 1.0]) == [[1], [3, 2], [0]]
    fits = fitBlends(models, blends, MapConfig(maxIter=10, minIter=5), maxGalaxies=4)
    assert [len(f.latents) for f in fits] == [3, 1, 2, 1]
    for fit, blend in zip(fits, blends):
        assert fit.stamps.shape == (blend.nPeaks, 6, 45, 45) and fit.finite and 1 <= fit.iterations <= 10
    # The same blend fitted alone or in a batch gives the same children.
    alone = fitBlends(models, [blends[3]], MapConfig(maxIter=10, minIter=5))[0]
    np.testing.assert_allclose(alone.latents, fits[3].latents, **({"rtol": 1e-4, "atol": 1e-5} if device == "cpu"
                                                                  else {"rtol": 1e-3, "atol": 1e-3}))
    with pytest.raises(ValueError, match="blend 0 has 2 bands"):
        fitBlends(models, [makeBlend(_exposure(), _footprint(110, 210, 10, 10, [(115, 215)]))])


def _fitOf(blend, stamps):
    from lsst.meas.extensions.madness.deblend import ChildModels

    return ChildModels.fromStamps(blend, stamps)


def test_child_footprints_conserve_flux_exactly():
    from lsst.meas.extensions.madness.deblend import childFootprints

    mExp = _exposure(size=100, bands="gr")
    rng = np.random.default_rng(5)
    mExp.image.array[:] = rng.uniform(0, 50, mExp.image.array.shape).astype(np.float32)
    parent = _footprint(130, 230, 40, 30, [(140, 240), (155, 245)])
    blend = makeBlend(mExp, parent)
    yy, xx = np.mgrid[:45, :45]
    blob = np.exp(-((yy - 22) ** 2 + (xx - 22) ** 2) / 30.0)
    stamps = np.stack([np.stack([20 * blob, 10 * blob]), np.stack([5 * blob, 15 * blob])])
    children, unassigned = childFootprints(blend, _fitOf(blend, stamps), parent, ["g", "r"], threshold=1.0)
    assert all(c is not None for c in children)
    total = np.zeros((2, 100, 100))
    for child in children:
        for b, band in enumerate("gr"):
            image = child[band].extractImage(fill=0, bbox=mExp.getBBox())
            total[b] += image.array
        assert [p.getFx() for p in child.getPeaks()] in ([140.0], [155.0])
    held = np.zeros((100, 100), bool)
    for child in children:
        held |= child.getSpans().asArray(mExp.getBBox())
    # The heavy footprints carry the exposure's variance.
    np.testing.assert_allclose(children[0]["g"].getVarianceArray(), 1.0)
    # On every pixel a child holds, the children sum to the data (float32 storage precision).
    np.testing.assert_allclose(total[:, held], mExp.image.array[:, held], rtol=1e-6)
    parentPixels = parent.getSpans().asArray(mExp.getBBox())
    assert not (held & ~parentPixels).any()
    assert unassigned == int((parentPixels & ~held).sum())
    # Without conserveFlux the children carry their models.
    models, _ = childFootprints(blend, _fitOf(blend, stamps), parent, ["g", "r"], conserveFlux=False)
    peakPixel = models[0]["g"].extractImage(fill=0, bbox=mExp.getBBox()).array[240 - 200, 140 - 100]
    assert peakPixel == pytest.approx(20.0, rel=1e-6)


def test_a_child_below_threshold_gets_no_footprint():
    from lsst.meas.extensions.madness.deblend import childFootprints

    mExp = _exposure(size=100, bands="gr")
    parent = _footprint(130, 230, 40, 30, [(140, 240), (155, 245)])
    blend = makeBlend(mExp, parent)
    stamps = np.zeros((2, 2, 45, 45))
    stamps[0, :, 20:25, 20:25] = 10.0  # 10 σ
    children, unassigned = childFootprints(blend, _fitOf(blend, stamps), parent, ["g", "r"], threshold=1.0)
    assert children[1] is None and children[0].getArea() == 25
    assert unassigned == parent.getArea() - 25


def test_blends_are_cut_in_the_deblenders_units_and_children_go_back():
    """``scales`` multiply data and cutouts and divide weights by their square; heavy footprints come back in
    the exposure's units, with the same pixels (threshold in σ) whatever the scale."""
    from lsst.meas.extensions.madness.deblend import childFootprints

    mExp = _exposure(size=100, bands="gr")
    mExp.image.array[:] += 5.0
    parent = _footprint(130, 230, 40, 30, [(140, 240), (155, 245)])
    plain = makeBlend(mExp, parent)
    scaled = makeBlend(mExp, parent, scales=[2.0, 0.25])
    factor = np.array([2.0, 0.25])[:, None, None]
    np.testing.assert_allclose(scaled.data, plain.data * factor)
    np.testing.assert_allclose(scaled.weight, plain.weight / factor**2)
    np.testing.assert_allclose(scaled.cutouts, plain.cutouts * factor[None])
    np.testing.assert_array_equal(scaled.variance, plain.variance)  # the exposure's, for the heavy footprints
    yy, xx = np.mgrid[:45, :45]
    blob = np.exp(-((yy - 22) ** 2 + (xx - 22) ** 2) / 30.0)
    stamps = np.stack([np.stack([20 * blob, 10 * blob]), np.stack([5 * blob, 15 * blob])])
    for conserveFlux in (True, False):
        want, _ = childFootprints(plain, _fitOf(plain, stamps), parent, ["g", "r"], conserveFlux=conserveFlux)
        got, _ = childFootprints(scaled, _fitOf(scaled, stamps * factor[None]), parent, ["g", "r"],
                                 conserveFlux=conserveFlux)
        for a, b in zip(want, got):
            assert a.getSpans() == b.getSpans()
            np.testing.assert_allclose(b.getImageArray(), a.getImageArray(), rtol=1e-6)
    with pytest.raises(ValueError, match="one positive number per band"):
        makeBlend(mExp, parent, scales=[1.0])


def test_band_calibration_takes_each_sides_calibration_and_refuses_neither():
    from lsst.meas.extensions.madness.afw import PhotoCalib
    from lsst.meas.extensions.madness.deblend import MissingCalibrationError, bandCalibration

    mExp = _exposure(bands="gri")
    mExp.setAllPhotoCalibs([PhotoCalib(1.0), None, PhotoCalib(4.0)])
    calibration = bandCalibration(mExp, [PhotoCalib(0.5), PhotoCalib(3.0), None])
    assert calibration.toDeblender.tolist() == [2.0, 1.0, 1.0]
    assert calibration.instFluxToNanojansky(np.ones(3)).tolist() == [1.0, 3.0, 4.0]
    # A calibration that went through MAGZERO's decimal digits is the same units, bit for bit.
    assert bandCalibration(mExp, [PhotoCalib(1.0 + 1e-15), PhotoCalib(1.0), None]).toDeblender.tolist() == [1.0] * 3
    mExp.setAllPhotoCalibs([PhotoCalib(1.0), None, None])
    with pytest.raises(MissingCalibrationError, match=r"band\(s\) \['r'\]"):
        bandCalibration(mExp, [None, None, PhotoCalib(1.0)])
