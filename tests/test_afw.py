"""The afw-like data model: geometry, images, exposures, footprints, catalogues."""

import numpy as np
import pytest

from lsst.meas.extensions.madness import (
    Box2I,
    Exposure,
    Extent2I,
    Footprint,
    HeavyFootprint,
    IdFactory,
    ImagePsf,
    Mask,
    MaskedImage,
    MultibandExposure,
    MultibandFootprint,
    Point2D,
    Point2I,
    SourceCatalog,
    SourceTable,
    SpanSet,
    makeHeavyFootprint,
)
from lsst.meas.extensions.madness.afw.image import ImageF

BANDS = ("g", "r", "i")


def gaussianKernel(size=11, sigma=1.5, dtype=np.float32):
    y, x = np.mgrid[: size, : size] - size // 2
    kernel = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    return (kernel / kernel.sum()).astype(dtype)


def makeExposure(xy0=Point2I(50, 70), shape=(20, 30), seed=0):
    rng = np.random.default_rng(seed)
    image = rng.normal(size=(len(BANDS),) + shape).astype(np.float32)
    variance = np.full_like(image, 2.0)
    mask = np.zeros(image.shape, np.int32)
    bbox = Box2I(xy0, Extent2I(shape[1], shape[0]))
    psfs = [gaussianKernel(sigma=s) for s in (1.2, 1.5, 1.8)]
    return MultibandExposure.fromArrays(BANDS, image, mask, variance, bbox=bbox, psfs=psfs)


class TestGeom:
    def test_box_inclusive_and_empty(self):
        box = Box2I(Point2I(2, 3), Point2I(4, 5))
        assert box.getDimensions() == Extent2I(3, 3)
        assert box.getArea() == 9
        assert box.contains(Point2I(4, 5)) and not box.contains(Point2I(5, 5))
        assert Box2I(Point2I(0, 0), Extent2I(0, 4)).isEmpty()
        assert box.clippedTo(Box2I(Point2I(10, 10), Extent2I(2, 2))).isEmpty()

    def test_box_clip_include_slices(self):
        box = Box2I(Point2I(0, 0), Extent2I(10, 10))
        other = Box2I(Point2I(5, -2), Extent2I(10, 4))
        assert box.clippedTo(other) == Box2I(Point2I(5, 0), Point2I(9, 1))
        grown = box.expandedTo(other)
        assert grown == Box2I(Point2I(0, -2), Point2I(14, 9))
        ys, xs = other.getSlices(Point2I(5, -2))
        assert (ys, xs) == (slice(0, 4), slice(0, 10))

    def test_centered_box(self):
        box = Box2I.makeCenteredBox(Point2D(20.0, 30.0), Extent2I(45, 45))
        assert box.getCenter() == Point2D(20.0, 30.0)


class TestImages:
    def test_subimage_is_a_view_in_parent_coordinates(self):
        image = ImageF(Box2I(Point2I(10, 20), Extent2I(8, 6)))
        sub = image[Box2I(Point2I(12, 21), Extent2I(2, 3))]
        sub.array[:] = 5
        assert image.array[1:4, 2:4].sum() == 30
        assert image[Point2I(13, 23)] == 5
        with pytest.raises(IndexError, match="not contained"):
            image[Box2I(Point2I(0, 0), Extent2I(3, 3))]

    def test_mask_planes(self):
        mask = Mask(Box2I(Point2I(0, 0), Extent2I(4, 4)))
        assert mask.getPlaneBitMask("BAD") == 1
        assert mask.getPlaneBitMask(["BAD", "EDGE"]) == 1 | 16
        bit = mask.addMaskPlane("NOT_DEBLENDED")
        assert bit == 9 and mask.addMaskPlane("NOT_DEBLENDED") == 9
        with pytest.raises(KeyError, match="no plane 'NOPE'"):
            mask.getPlaneBitMask("NOPE")
        sub = mask[Box2I(Point2I(1, 1), Extent2I(2, 2))]
        assert sub.getMaskPlane("NOT_DEBLENDED") == 9

    def test_masked_image_boxes_must_agree(self):
        image = ImageF(Box2I(Point2I(0, 0), Extent2I(4, 4)))
        with pytest.raises(ValueError, match="mask bounding box"):
            MaskedImage(image, Mask(Box2I(Point2I(1, 0), Extent2I(4, 4))))


class TestPsf:
    def test_kernel_and_shifted_images(self):
        psf = ImagePsf(gaussianKernel(size=15, dtype=np.float64))
        kernel = psf.computeKernelImage()
        assert kernel.getBBox() == Box2I(Point2I(-7, -7), Extent2I(15, 15))
        shifted = psf.computeImage(Point2D(40.3, 12.0))
        assert shifted.getBBox().getCenter() == Point2D(40.0, 12.0)
        _y, x = np.mgrid[: 15, : 15]
        cx = (shifted.array * x).sum() / shifted.array.sum() + shifted.getX0()
        assert cx == pytest.approx(40.3, abs=0.01)
        assert shifted.array.sum() == pytest.approx(1.0, abs=1e-6)

    @pytest.mark.parametrize("kernel,match", [(np.ones((4, 5)), "odd"), (np.full((3, 3), np.nan), "non-finite"),
                                              (np.zeros((3, 3)), "positive")])
    def test_bad_kernels(self, kernel, match):
        with pytest.raises(ValueError, match=match):
            ImagePsf(kernel)


class TestGridPsf:
    """A PSF that varies: kernels at the nodes of a grid, bilinear between them, held beyond them."""

    kernels = tuple(gaussianKernel(15, sigma) for sigma in (1.0, 1.5, 2.0, 2.5))
    positions = ((10.0, 20.0), (110.0, 20.0), (10.0, 80.0), (110.0, 80.0))

    def test_nodes_are_exact_and_between_them_bilinear(self):
        from lsst.meas.extensions.madness import GridPsf

        psf = GridPsf(self.kernels, self.positions)
        for kernel, position in zip(self.kernels, self.positions):
            np.testing.assert_array_equal(psf.computeKernelImage(Point2D(*position)).array,
                                          ImagePsf(kernel).computeKernelImage().array)
        k = [ImagePsf(kernel).kernel.astype(np.float64) for kernel in self.kernels]
        at = psf.computeKernelImage(Point2D(35.0, 65.0)).array  # a quarter along x, three quarters along y
        want = 0.75 * 0.25 * k[0] + 0.25 * 0.25 * k[1] + 0.75 * 0.75 * k[2] + 0.25 * 0.75 * k[3]
        np.testing.assert_allclose(at, want, rtol=1e-12)
        assert at.sum() == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_array_equal(psf.computeKernelImage(Point2D(-50.0, 500.0)).array, k[2])  # held at the corner
        assert psf.getAveragePosition() == Point2D(60.0, 50.0)
        np.testing.assert_allclose(psf.kernel, psf.computeKernelImage(Point2D(60.0, 50.0)).array)
        image = psf.computeImage(Point2D(110.3, 20.0))
        assert image.getBBox().getCenter() == Point2D(110.0, 20.0) and image.array.sum() == pytest.approx(1.0)
        assert psf.clone() == psf and psf.computeBBox() == Box2I(Point2I(-7, -7), Extent2I(15, 15))

    def test_positions_must_be_a_full_grid(self):
        from lsst.meas.extensions.madness import GridPsf

        with pytest.raises(ValueError, match="not a rectangular grid"):
            GridPsf(self.kernels[:3], self.positions[:3])
        with pytest.raises(ValueError, match="not a rectangular grid"):
            GridPsf(self.kernels[:2], [(0.0, 0.0), (0.0, 0.0)])
        with pytest.raises(ValueError, match="one per kernel"):
            GridPsf(self.kernels, self.positions[:2])
        with pytest.raises(ValueError, match="differ in shape"):
            GridPsf([gaussianKernel(15), gaussianKernel(13)], self.positions[:2])


class TestMultibandExposure:
    def test_band_and_box_views(self):
        mExp = makeExposure()
        r = mExp["r"]
        assert isinstance(r, Exposure) and r.getFilter().bandLabel == "r"
        assert r.getBBox() == mExp.getBBox()
        r.image.array[0, 0] = 1000.0
        assert mExp.image.array[1, 0, 0] == 1000.0
        box = Box2I(Point2I(55, 72), Extent2I(5, 4))
        sub = mExp[:, box]
        assert sub.image.array.shape == (3, 4, 5) and sub.getBBox() == box
        assert np.shares_memory(sub.variance.array, mExp.variance.array)
        assert mExp[["g", "i"]].bands == ("g", "i")

    def test_from_exposures_round_trip(self):
        mExp = makeExposure()
        rebuilt = MultibandExposure.fromExposures(mExp.bands, mExp.singles)
        assert rebuilt.image == mExp.image and rebuilt.getPsfs() == mExp.getPsfs()
        bad = mExp.singles
        bad[1] = bad[1][Box2I(Point2I(50, 70), Extent2I(10, 10))]
        with pytest.raises(ValueError, match="band 'r' has bbox"):
            MultibandExposure.fromExposures(mExp.bands, bad)

    def test_psf_cubes(self):
        mExp = makeExposure()
        cube = mExp.computePsfImage(Point2D(60.0, 80.0))
        assert cube.array.shape == (3, 11, 11)
        assert cube.getBBox().getCenter() == Point2D(60.0, 80.0)
        np.testing.assert_allclose(cube.array.sum(axis=(1, 2)), 1.0, atol=1e-6)
        assert mExp.computePsfKernelImage().getXY0() == Point2I(-5, -5)


class TestSpanSet:
    def test_from_mask_matches_array(self):
        rng = np.random.default_rng(3)
        array = rng.random((17, 23)) > 0.6
        spans = SpanSet.fromMask(array, xy0=Point2I(5, 9))
        assert spans.getArea() == array.sum()
        ys, xs = spans.indices()
        assert np.all(array[ys - 9, xs - 5])
        full = spans.asArray(Box2I(Point2I(5, 9), Extent2I(23, 17)))
        np.testing.assert_array_equal(full, array)

    def test_normalisation_merges_touching_runs(self):
        spans = SpanSet.fromArrays([3, 3, 3, 1], [0, 2, 10, 5], [1, 4, 12, 5])
        assert [(s.y, s.x0, s.x1) for s in spans] == [(1, 5, 5), (3, 0, 4), (3, 10, 12)]

    def test_set_operations(self):
        a = SpanSet(Box2I(Point2I(0, 0), Extent2I(4, 4)))
        b = SpanSet(Box2I(Point2I(2, 2), Extent2I(4, 4)))
        assert a.intersect(b).getArea() == 4
        assert a.union(b).getArea() == 28
        assert a.intersectNot(b).getArea() == 12
        assert a.contains(Point2I(3, 3)) and not a.contains(Point2I(4, 3))
        np.testing.assert_array_equal(a.containsPixels(np.array([0, 4]), np.array([0, 0])), [True, False])

    def test_set_mask_and_intersect_with_mask(self):
        mask = Mask(Box2I(Point2I(10, 10), Extent2I(8, 8)))
        spans = SpanSet(Box2I(Point2I(8, 12), Extent2I(4, 2)))
        spans.setMask(mask, mask.getPlaneBitMask("DETECTED"))
        assert (mask.array != 0).sum() == 4  # clipped to the mask
        found = SpanSet(Box2I(Point2I(10, 10), Extent2I(8, 8))).intersect(mask, mask.getPlaneBitMask("DETECTED"))
        assert found == spans.clippedTo(mask.getBBox())

    def test_dilate_and_flatten(self):
        spans = SpanSet(Box2I(Point2I(5, 5), Extent2I(1, 1))).dilated(2)
        assert spans.getArea() == 13
        values = np.arange(100).reshape(10, 10)
        flat = spans.flatten(values)
        box = Box2I(Point2I(0, 0), Extent2I(10, 10))
        np.testing.assert_array_equal(spans.unflatten(flat, box)[spans.asArray(box)], flat)
        with pytest.raises(ValueError, match="not inside"):
            spans.flatten(values[:5, :5])


class TestFootprints:
    def test_peaks(self):
        foot = Footprint(SpanSet(Box2I(Point2I(0, 0), Extent2I(6, 6))))
        foot.addPeak(1.4, 2.6, 5.0)
        foot.addPeak(4.0, 4.0, 9.0)
        foot.sortPeaks()
        peaks = foot.getPeaks()
        assert [p.getPeakValue() for p in peaks] == [9.0, 5.0]
        assert (peaks[1].getIx(), peaks[1].getIy()) == (1, 3)
        assert peaks[1].getFx() == 1.4 and peaks[0].getId() == 2
        assert foot.getCentroid() == Point2D(2.5, 2.5)

    def test_heavy_insert_reproduces_pixels(self):
        mExp = makeExposure()
        exposure = mExp["i"]
        spans = SpanSet.fromMask(exposure.image.array > 0.5, xy0=exposure.getXY0())
        heavy = makeHeavyFootprint(Footprint(spans), exposure.getMaskedImage())
        assert heavy.isHeavy() and heavy.getImageArray().shape == (spans.getArea(),)
        blank = MaskedImage(exposure.getBBox())
        heavy.insert(blank)
        inside = spans.asArray(exposure.getBBox())
        np.testing.assert_array_equal(blank.image.array[inside], exposure.image.array[inside])
        np.testing.assert_array_equal(blank.variance.array[inside], exposure.variance.array[inside])
        assert np.all(blank.image.array[~inside] == 0)

    def test_heavy_add_subtract_extract(self):
        spans = SpanSet(Box2I(Point2I(3, 3), Extent2I(2, 2)))
        heavy = HeavyFootprint(Footprint(spans), np.array([1, 2, 3, 4], np.float32))
        image = ImageF(Box2I(Point2I(0, 0), Extent2I(6, 6)))
        heavy.addTo(image)
        heavy.addTo(image)
        assert image.array[3:5, 3:5].tolist() == [[2, 4], [6, 8]]
        heavy.subtractFrom(image)
        assert image.array.sum() == 10
        extracted = heavy.extractImage(fill=0)
        assert extracted.getBBox() == spans.getBBox() and extracted.array.tolist() == [[1, 2], [3, 4]]
        with pytest.raises(ValueError, match="footprint has 4 pixels"):
            HeavyFootprint(Footprint(spans), np.zeros(3))

    def test_multiband_footprint(self):
        mExp = makeExposure()
        spans = SpanSet(Box2I(Point2I(52, 72), Extent2I(4, 3)))
        mFoot = MultibandFootprint.fromImages(mExp.bands, mExp, footprint=Footprint(spans))
        assert mFoot.bands == BANDS and mFoot.getArea() == 12
        model = mFoot.getImage()
        np.testing.assert_array_equal(model.array, mExp[:, spans.getBBox()].image.array)
        target = makeExposure(seed=9)
        mFoot.insert(target)
        np.testing.assert_array_equal(target[:, spans.getBBox()].image.array, model.array)


class TestCatalog:
    def test_add_children_and_columns(self):
        schema = SourceTable.makeMinimalSchema()
        nChild = schema.addField("deblend_nChild", type="I", doc="Number of children")
        catalog = SourceCatalog(schema)
        parent = catalog.addNew()
        for _ in range(3):
            child = catalog.addNew()
            child.setParent(parent.getId())
        parent.set(nChild, 3)
        assert len(catalog.getChildren(parent.getId())) == 3
        assert catalog["deblend_nChild"].tolist() == [3, 0, 0, 0]
        assert catalog.find(3).getParent() == parent.getId() and catalog.find(99) is None
        catalog["deblend_nChild"] = 7
        assert catalog[2]["deblend_nChild"] == 7
        table = catalog.asAstropy()
        assert table["deblend_nChild"].description == "Number of children"
        with pytest.raises(ValueError, match="already exists"):
            schema.addField("deblend_nChild", type="I", doc="again")
        with pytest.raises(ValueError, match="integer"):
            parent.set(nChild, 2.5)

    def test_id_factory(self):
        ids = IdFactory.makeSource(3, 8)
        assert [ids(), ids()] == [(3 << 8) + 1, (3 << 8) + 2]
        ids.notify((3 << 8) + 10)
        assert ids() == (3 << 8) + 11
        catalog = SourceCatalog(SourceTable(SourceTable.makeMinimalSchema(), IdFactory.makeSimple()))
        record = catalog.addNew()
        record.setId(100)
        assert catalog.addNew().getId() == 101

    def test_extend_and_subset(self):
        catalog = SourceCatalog(SourceTable.makeMinimalSchema())
        for _ in range(4):
            catalog.addNew()
        other = SourceCatalog(catalog.schema)
        other.extend(catalog, deep=True)
        assert other["id"].tolist() == [1, 2, 3, 4] and other[0] is not catalog[0]
        selected = catalog[catalog["id"] > 2]
        assert len(selected) == 2 and selected[0] is catalog[2]
