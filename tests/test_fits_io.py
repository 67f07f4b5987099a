"""FITS formats: bit-exact round trips, and readers that reject malformed files clearly."""

import numpy as np
import pytest
from astropy.io import fits

from lsst.meas.extensions.madness import (
    Box2I,
    Exposure,
    Extent2I,
    FitsFormatError,
    Footprint,
    HeavyFootprint,
    MultibandExposure,
    MultibandFootprint,
    PhotoCalib,
    Point2D,
    Point2I,
    SourceCatalog,
    SourceTable,
    SpanSet,
    makeHeavyFootprint,
    makePhotoCalibFromCalibZeroPoint,
)

BANDS = ("u", "g", "r", "i", "z", "y")
#: AB magnitude of one count in each band of the fixture.
ZERO_POINTS = (26.5, 28.25, 28.1, 27.75, 27.375, 26.6)


def kernel(sigma, size=13):
    y, x = np.mgrid[:size, :size] - size // 2
    k = np.exp(-(x**2 + y**2) / (2 * sigma**2))
    return (k / k.sum()).astype(np.float32)


@pytest.fixture
def mExposure():
    rng = np.random.default_rng(42)
    shape = (len(BANDS), 32, 41)
    image = rng.normal(size=shape).astype(np.float32)
    image[2, 10:15, 10:20] += 20.0
    variance = rng.uniform(0.5, 2.0, size=shape).astype(np.float32)
    bbox = Box2I(Point2I(1000, -20), Extent2I(41, 32))
    mExp = MultibandExposure.fromArrays(
        BANDS, image, None, variance, bbox=bbox, psfs=[kernel(1.0 + 0.1 * i) for i in range(len(BANDS))],
        photoCalibs=[makePhotoCalibFromCalibZeroPoint(10 ** (0.4 * m)) for m in ZERO_POINTS],
    )
    bit = mExp.mask.addMaskPlane("BRIGHT_OBJECT")
    mExp.mask.array[:, 3, 4] = 1 << bit
    mExp.mask.array[1, 0, :] |= mExp.mask.getPlaneBitMask("EDGE")
    return mExp


@pytest.fixture
def catalog(mExposure):
    schema = SourceTable.makeMinimalSchema()
    schema.addField("deblend_nChild", type="I", doc="Number of children")
    schema.addField("flux", type="D", doc="Flux", units="nJy")
    schema.addField("deblend_skipped", type="Flag", doc="Skipped")
    schema.addField("deblend_error", type="String", doc="Error class")
    catalog = SourceCatalog(schema)
    parent = catalog.addNew()
    spans = SpanSet.fromMask(mExposure.image.array[2] > 5, xy0=mExposure.getXY0())
    footprint = Footprint(spans, region=mExposure.getBBox())
    footprint.addPeak(1012.3, -8.2, 25.0).extra["merge_peak_sky"] = True
    footprint.addPeak(1016.0, -7.0, 22.0).extra["merge_peak_sky"] = False
    parent.setFootprint(footprint)
    parent.set("deblend_nChild", 2)
    parent.set("flux", np.pi)
    parent.set("deblend_error", "RuntimeError")
    for peak in footprint.getPeaks():
        child = catalog.addNew()
        child.setParent(parent.getId())
        childFoot = Footprint(spans, [peak], region=mExposure.getBBox())
        child.setFootprint(MultibandFootprint.fromImages(mExposure.bands, mExposure, footprint=childFoot))
    catalog.addNew().set("deblend_skipped", True)  # a record with no footprint
    return catalog


class TestRoundTrips:
    def test_multiband_exposure_bit_exact(self, mExposure, tmp_path):
        path = tmp_path / "exposure.fits"
        mExposure.writeFits(path)
        back = MultibandExposure.readFits(path)
        assert back.bands == BANDS and back.getBBox() == mExposure.getBBox()
        for plane in ("image", "mask", "variance"):
            original, read = getattr(mExposure, plane).array, getattr(back, plane).array
            assert read.dtype == original.dtype
            np.testing.assert_array_equal(read, original)
        assert back.mask.getMaskPlaneDict() == mExposure.mask.getMaskPlaneDict()
        assert back.getPsfs() == mExposure.getPsfs()
        with fits.open(path) as hdus:
            assert hdus[0].header["BANDS"] == "u,g,r,i,z,y"
            assert (hdus["IMAGE"].header["LTV1"], hdus["IMAGE"].header["LTV2"]) == (-1000, 20)
            assert hdus["MASK"].header["MP_EDGE"] == 4

    def test_single_band_files(self, mExposure, tmp_path):
        paths = []
        for band in BANDS:
            path = tmp_path / f"calexp_{band}.fits"
            mExposure[band].writeFits(path)
            paths.append(path)
        single = Exposure.readFits(paths[2])
        assert single.getFilter().bandLabel == "r"
        back = MultibandExposure.readFits(paths)
        assert back.bands == BANDS
        np.testing.assert_array_equal(back.image.array, mExposure.image.array)
        np.testing.assert_array_equal(back.mask.array, mExposure.mask.array)
        assert back.getPsfs() == mExposure.getPsfs()

    def test_catalog_with_heavy_footprints(self, catalog, tmp_path):
        path = tmp_path / "catalog.fits"
        catalog.writeFits(path)
        back = SourceCatalog.readFits(path)
        assert back.schema == catalog.schema
        for name in catalog.schema.getNames():
            np.testing.assert_array_equal(back[name], catalog[name])
        for original, read in zip(catalog, back):
            assert type(read.getFootprint()) is type(original.getFootprint())
            assert read.getFootprint() == original.getFootprint()
        assert back[0].getFootprint().getPeaks()[1].extra == {"merge_peak_sky": False}
        assert back[3].getFootprint() is None
        assert back.schema.find("flux").field.units == "nJy"
        assert back.getChildren(1)["id"].tolist() == [2, 3]

    def test_single_band_heavy_footprints(self, mExposure, tmp_path):
        catalog = SourceCatalog(SourceTable.makeMinimalSchema())
        spans = SpanSet(Box2I(Point2I(1005, -15), Extent2I(6, 3)))
        heavy = makeHeavyFootprint(Footprint(spans), mExposure["g"].getMaskedImage())
        catalog.addNew().setFootprint(heavy)
        path = tmp_path / "heavy.fits"
        catalog.writeFits(path, bbox=mExposure.getBBox())
        read = SourceCatalog.readFits(path)[0].getFootprint()
        assert isinstance(read, HeavyFootprint) and read == heavy
        target = mExposure.clone()
        target.image.array[:] = 0
        read.insert(target["g"].getMaskedImage())
        inside = spans.asArray(mExposure.getBBox())
        np.testing.assert_array_equal(target["g"].image.array[inside], mExposure["g"].image.array[inside])

    def test_parent_catalog_without_heavy(self, catalog, tmp_path):
        parents = SourceCatalog(catalog.schema)
        parents.append(catalog[0])
        path = tmp_path / "parents.fits"
        parents.writeFits(path)
        with fits.open(path) as hdus:
            assert "HEAVY" not in hdus
        assert SourceCatalog.readFits(path)[0].getFootprint() == catalog[0].getFootprint()


def rewrite(path, out, edit):
    """Copy a FITS file through ``edit(hdus)``."""
    with fits.open(path) as hdus:
        hdus = fits.HDUList([hdu.copy() for hdu in hdus])
    edit(hdus)
    hdus.writeto(out, overwrite=True)
    return out


def setTableColumn(hdus, extension, column, row, value):
    hdus[extension].data[column][row] = value


def dropColumn(hdus, extension, column):
    table = hdus[extension]
    columns = [c for c in table.columns if c.name != column]
    hdus[extension] = fits.BinTableHDU.from_columns(columns, header=None, name=extension)


def appendSpan(hdus, sourceId, y, x0, x1):
    old = hdus["SPANS"].data
    new = fits.BinTableHDU.from_columns(old.columns, nrows=len(old) + 1, name="SPANS")
    for name, value in (("source_id", sourceId), ("y", y), ("x0", x0), ("x1", x1)):
        new.data[name][-1] = value
    hdus["SPANS"] = new


EXPOSURE_DEFECTS = {
    "missing VARIANCE": (lambda h: h.pop(h.index_of("VARIANCE")), "[VARIANCE]: missing extension"),
    "missing BANDS": (lambda h: h[0].header.remove("BANDS"), "[PRIMARY]: primary header has no BANDS"),
    "repeated band": (lambda h: h[0].header.set("BANDS", "u,g,r,r,z,y"), "repeats a band"),
    "band count": (lambda h: h[0].header.set("BANDS", "g,r,i"), "[IMAGE]: 6 planes but BANDS lists 3"),
    "shape mismatch": (lambda h: setattr(h["MASK"], "data", h["MASK"].data[:, :-1]),
                       "[MASK]: shape (6, 31, 41) differs"),
    "integer image": (lambda h: setattr(h["IMAGE"], "data", h["IMAGE"].data.astype(np.int16)),
                      "[IMAGE]: expected floating-point"),
    "float mask": (lambda h: setattr(h["MASK"], "data", h["MASK"].data.astype(np.float32)), "[MASK]: expected integer"),
    "2-d image": (lambda h: setattr(h["IMAGE"], "data", h["IMAGE"].data[0]), "[IMAGE]: expected a 3-d array"),
    "xy0 disagrees": (lambda h: h["VARIANCE"].header.set("LTV1", 0), "[VARIANCE]: LTV1/LTV2 give xy0"),
    "fractional LTV": (lambda h: h["IMAGE"].header.set("LTV2", 2.5), "LTV2 = 2.5 is not an integer"),
    "clashing mask bits": (lambda h: h["MASK"].header.set("MP_SAT", 0), "both use bit 0"),
    "unnamed mask bit": (lambda h: h["MASK"].header.remove("MP_EDGE"), "mask bit 4, which no MP_ keyword names"),
    "negative variance": (lambda h: h["VARIANCE"].data.__setitem__((3, 5, 7), -1.0),
                          "negative variance at band 'i' pixel (x=7, y=5)"),
    "no calibration": (lambda h: h[0].header.remove("MAGZERO"),
                       "[PRIMARY]: no photometric calibration: the header needs BUNIT = 'nJy' (calibrated images) or "
                       "MAGZERO"),
    "counts without zero point": (lambda h: (h[0].header.remove("MAGZERO"), h[0].header.set("BUNIT", "adu")),
                                  "[PRIMARY]: no photometric calibration (BUNIT = 'adu' is not 'nJy')"),
    "MAGZERO per band": (lambda h: h[0].header.set("MAGZERO", "27.0,28.0"),
                         "[PRIMARY]: MAGZERO gives 2 zero points for 6 band(s)"),
    "MAGZERO not numbers": (lambda h: h[0].header.set("MAGZERO", "27,x,27,27,27,27"),
                            "MAGZERO = '27,x,27,27,27,27' is not a comma-separated list of numbers"),
    "BUNIT nJy against MAGZERO": (lambda h: h[0].header.set("BUNIT", "nJy"),
                                  "BUNIT = 'nJy' but MAGZERO = '26.5,"),
    "non-finite PSF": (lambda h: h["PSF"].data.__setitem__((1, 0, 0), np.nan), "band 'g' kernel has non-finite"),
    "even PSF": (lambda h: setattr(h["PSF"], "data", h["PSF"].data[:, :-1, :-1]), "sides must be odd"),
    "PSF not unit sum": (lambda h: setattr(h["PSF"], "data", h["PSF"].data * 2), "sums to 2"),
    "PSF off centre": (lambda h: setattr(h["PSF"], "data", np.roll(h["PSF"].data, 3, axis=2)), "centroid is offset"),
    "table instead of image": (
        lambda h: h.__setitem__(h.index_of("IMAGE"),
                                fits.BinTableHDU.from_columns([fits.Column("a", "J", array=[1])], name="IMAGE")),
        "expected an image extension",
    ),
}

CATALOG_DEFECTS = {
    "missing SOURCES": (lambda h: h.pop(h.index_of("SOURCES")), "[SOURCES]: missing extension"),
    "missing id column": (lambda h: dropColumn(h, "SOURCES", "id"), "[SOURCES] column 'id': missing column"),
    "duplicate id": (lambda h: setTableColumn(h, "SOURCES", "id", 2, 2),
                     "[SOURCES] column 'id' row 2: id 2 appears more than once"),
    "unknown parent": (lambda h: setTableColumn(h, "SOURCES", "parent", 1, 77),
                       "[SOURCES] column 'parent' row 1: parent 77"),
    "span of unknown source": (lambda h: setTableColumn(h, "SPANS", "source_id", 0, 55),
                               "[SPANS] column 'source_id' row 0: source_id 55"),
    "backwards span": (lambda h: setTableColumn(h, "SPANS", "x1", 1, 900),
                       "[SPANS] column 'x1' row 1: x1 = 900 is less than x0"),
    "span outside image": (lambda h: setTableColumn(h, "SPANS", "y", 0, 500),
                           "[SPANS] column 'y' row 0: y = 500 is outside the image"),
    "overlapping spans": (lambda h: appendSpan(h, 1, -10, 1010, 1012), "spans of source 1 overlap"),
    "peak outside footprint": (lambda h: setTableColumn(h, "PEAKS", "i_x", 0, 1039),
                               "[PEAKS] column 'i_x' row 0: peak at (1039, -8)"),
    "non-finite peak": (lambda h: setTableColumn(h, "PEAKS", "f_y", 1, np.nan),
                        "[PEAKS] column 'f_y' row 1: non-finite"),
    "float peak index": (
        lambda h: h.__setitem__(
            "PEAKS",
            fits.BinTableHDU.from_columns(
                [fits.Column(c.name, "D" if c.name == "i_x" else c.format, array=h["PEAKS"].data[c.name])
                 for c in h["PEAKS"].columns],
                name="PEAKS",
            ),
        ),
        "[PEAKS] column 'i_x': expected an integer column",
    ),
    "heavy pixel count": (
        lambda h: h.__setitem__("HEAVY", fits.BinTableHDU(h["HEAVY"].data[:-1], header=h["HEAVY"].header,
                                                          name="HEAVY")),
        "heavy pixels but its spans cover",
    ),
    "heavy band count": (lambda h: h["HEAVY"].header.set("BANDS", "g,r"),
                         "[HEAVY] column 'IMAGE': 6 values per pixel for 2 band(s)"),
    "heavy kind": (lambda h: h["HEAVY"].header.set("HEAVYTYP", "WHATEVER"), "HEAVYTYP = 'WHATEVER'"),
}


class TestMalformedFiles:
    @pytest.mark.parametrize("defect", sorted(EXPOSURE_DEFECTS))
    def test_exposure_reader_rejects(self, defect, mExposure, tmp_path):
        good = tmp_path / "good.fits"
        mExposure.writeFits(good)
        edit, message = EXPOSURE_DEFECTS[defect]
        bad = rewrite(good, tmp_path / "bad.fits", edit)
        with pytest.raises(FitsFormatError) as info:
            MultibandExposure.readFits(bad)
        assert str(bad) in str(info.value)
        assert message in str(info.value), str(info.value)

    @pytest.mark.parametrize("defect", sorted(CATALOG_DEFECTS))
    def test_catalog_reader_rejects(self, defect, catalog, tmp_path):
        good = tmp_path / "good.fits"
        catalog.writeFits(good)
        edit, message = CATALOG_DEFECTS[defect]
        bad = rewrite(good, tmp_path / "bad.fits", edit)
        with pytest.raises(FitsFormatError) as info:
            SourceCatalog.readFits(bad)
        assert str(bad) in str(info.value)
        assert message in str(info.value), str(info.value)

    def test_not_a_fits_file(self, tmp_path):
        path = tmp_path / "notes.fits"
        path.write_text("this is not FITS")
        with pytest.raises(FitsFormatError, match="not a readable FITS file"):
            MultibandExposure.readFits(path)
        with pytest.raises(FitsFormatError, match="no such file"):
            SourceCatalog.readFits(tmp_path / "absent.fits")

    def test_single_band_file_without_band(self, mExposure, tmp_path):
        path = tmp_path / "noband.fits"
        Exposure(mExposure["g"].getMaskedImage(), psf=mExposure["g"].getPsf(),
                 photoCalib=PhotoCalib(1.0)).writeFits(path)
        with pytest.raises(FitsFormatError, match=r"\[PRIMARY\]: no BAND or FILTER keyword"):
            MultibandExposure.readFits([path])
        assert MultibandExposure.readFits([path], bands=["g"]).bands == ("g",)

    def test_writers_refuse_an_exposure_without_calibration(self, mExposure, tmp_path):
        mExposure.setAllPhotoCalibs([None] * len(BANDS))
        with pytest.raises(ValueError, match=r"no photometric calibration for band\(s\) \['u'"):
            mExposure.writeFits(tmp_path / "x.fits")
        with pytest.raises(ValueError, match="no photometric calibration"):
            mExposure["r"].writeFits(tmp_path / "r.fits")

    def test_error_carries_location(self, catalog, tmp_path):
        good = tmp_path / "good.fits"
        catalog.writeFits(good)
        bad = rewrite(good, tmp_path / "bad.fits", CATALOG_DEFECTS["backwards span"][0])
        with pytest.raises(FitsFormatError) as info:
            SourceCatalog.readFits(bad)
        assert (info.value.extension, info.value.column, info.value.row) == ("SPANS", "x1", 1)
        assert isinstance(info.value, ValueError)


class TestVaryingPsf:
    """A grid of PSF kernels per band: PSF (band, node, py, px) and PSF_POSITIONS (x, y per node)."""

    positions = ((1005.0, -15.0), (1035.0, -15.0), (1005.0, 5.0), (1035.0, 5.0))

    def _gridded(self, mExposure):
        from lsst.meas.extensions.madness import GridPsf

        psfs = [GridPsf([kernel(0.8 + 0.1 * b + 0.2 * n) for n in range(4)], self.positions) for b in range(len(BANDS))]
        psfs[1] = mExposure.getPsfs()[1]  # a constant band beside gridded ones: written as a grid of one kernel
        mExposure.setAllPsfs(psfs)
        return mExposure

    def test_grid_round_trips(self, mExposure, tmp_path):
        from lsst.meas.extensions.madness import GridPsf

        mExposure = self._gridded(mExposure)
        path = tmp_path / "grid.fits"
        mExposure.writeFits(path)
        with fits.open(path) as hdus:
            assert hdus["PSF"].data.shape == (6, 4, 13, 13)
            assert hdus["PSF_POSITIONS"].data["x"].tolist() == [p[0] for p in self.positions]
        back = MultibandExposure.readFits(path)
        for band, psf in zip(BANDS, mExposure.getPsfs()):
            read = back[band].getPsf()
            assert isinstance(read, GridPsf)
            for position in [*self.positions, (1020.0, -3.0), (900.0, 40.0)]:
                np.testing.assert_array_equal(read.computeKernelImage(Point2D(*position)).array,
                                              psf.computeKernelImage(Point2D(*position)).array)
        single = tmp_path / "r.fits"
        back["r"].writeFits(single)
        assert Exposure.readFits(single).getPsf() == back["r"].getPsf()

    def test_reader_checks_the_grid(self, mExposure, tmp_path):
        path = tmp_path / "grid.fits"
        self._gridded(mExposure).writeFits(path)

        def notAGrid(h):
            h["PSF_POSITIONS"].data["x"][1] = 1006.0

        for edit, message in [(lambda h: h.pop(h.index_of("PSF_POSITIONS")), r"\[PSF_POSITIONS\]: missing extension"),
                              (notAGrid, r"\[PSF_POSITIONS\]: the 4 positions are not a rectangular grid"),
                              (lambda h: h["PSF"].data.__setitem__((2, 3, 0, 0), np.nan),
                               r"\[PSF\]: band 'r' node 3 kernel has non-finite")]:
            bad = rewrite(path, tmp_path / "bad.fits", edit)
            with pytest.raises(FitsFormatError, match=message):
                MultibandExposure.readFits(bad)


class TestWcs:
    """A FITS WCS in the IMAGE header (array frame) is the exposure's SkyWcs in parent coordinates; PIXSCALE
    gives the pixel scale without one."""

    @staticmethod
    def _wcs():
        from lsst.meas.extensions.madness import Point2D, SpherePoint, degrees, makeSkyWcs

        scale = 0.2 / 3600
        cd = np.array([[-scale * np.cos(0.3), scale * np.sin(0.3)], [scale * np.sin(0.3), scale * np.cos(0.3)]])
        return makeSkyWcs(Point2D(1020.0, -4.5), SpherePoint(53.1, -27.8, degrees), cd)

    def test_wcs_round_trips_and_astropy_reads_the_file(self, mExposure, tmp_path):
        from astropy.wcs import WCS

        wcs = self._wcs()
        mExposure.setWcs(wcs)
        path = tmp_path / "wcs.fits"
        mExposure.writeFits(path)
        back = MultibandExposure.readFits(path)
        xs, ys = np.array([1000.0, 1020.0, 1040.0, 1013.3]), np.array([-20.0, -4.5, 11.0, 0.7])
        want = np.rad2deg(np.array(wcs.pixelToSkyArray(xs, ys)))
        np.testing.assert_allclose(np.rad2deg(np.array(back.getWcs().pixelToSkyArray(xs, ys))), want,
                                   rtol=0, atol=1e-11)
        with fits.open(path) as hdus:
            header = hdus["IMAGE"].header
            assert (header["CRPIX1"], header["CRPIX2"]) == (1020.0 + 1 - 1000, -4.5 + 1 + 20)  # the array's frame
            ra, dec = WCS(header, naxis=2).all_pix2world(xs - 1000, ys + 20, 0)
        np.testing.assert_allclose(np.stack([ra, dec]), want, rtol=0, atol=1e-11)
        assert back["r"].getWcs() is back.getWcs() and back.getPixelScale().asArcseconds() == pytest.approx(0.2)
        single = tmp_path / "r.fits"
        back["r"].writeFits(single)
        assert Exposure.readFits(single).getWcs() == back.getWcs()

    def test_pixscale_without_wcs(self, mExposure, tmp_path):
        from lsst.meas.extensions.madness import arcseconds

        assert mExposure.getWcs() is None and mExposure.getPixelScale() is None
        mExposure.setPixelScale(0.168 * arcseconds)
        path = tmp_path / "hsc.fits"
        mExposure.writeFits(path)
        with fits.open(path) as hdus:
            assert hdus[0].header["PIXSCALE"] == pytest.approx(0.168) and "CTYPE1" not in hdus["IMAGE"].header
        back = MultibandExposure.readFits(path)
        assert back.getWcs() is None and back.getPixelScale().asArcseconds() == pytest.approx(0.168)
        bad = rewrite(path, tmp_path / "bad.fits", lambda h: h[0].header.set("PIXSCALE", -1.0))
        with pytest.raises(FitsFormatError, match=r"bad.fits\[PRIMARY\]: PIXSCALE = -1.0 is not a positive"):
            MultibandExposure.readFits(bad)

    def test_unreadable_wcs_names_the_extension(self, mExposure, tmp_path):
        mExposure.setWcs(self._wcs())
        path = tmp_path / "wcs.fits"
        mExposure.writeFits(path)
        bad = rewrite(path, tmp_path / "bad.fits", lambda h: h["IMAGE"].header.set("CTYPE1", "PIXEL"))
        with pytest.raises(FitsFormatError, match=r"bad.fits\[IMAGE\]: the WCS cannot be read: .*celestial"):
            MultibandExposure.readFits(bad)


class TestCalibration:
    """BUNIT = 'nJy' or MAGZERO per band in the primary header; magZero= for files that state neither."""

    def test_zero_points_round_trip(self, mExposure, tmp_path):
        path = tmp_path / "counts.fits"
        mExposure.writeFits(path)
        with fits.open(path) as hdus:
            assert "BUNIT" not in hdus[0].header
            np.testing.assert_allclose([float(m) for m in hdus[0].header["MAGZERO"].split(",")], ZERO_POINTS)
        back = MultibandExposure.readFits(path)
        for band, m in zip(BANDS, ZERO_POINTS):
            calib = back[band].getPhotoCalib()
            assert calib.instFluxToMagnitude(1.0) == pytest.approx(m, abs=1e-12)
            assert calib.getCalibrationMean() == pytest.approx(mExposure[band].getPhotoCalib().getCalibrationMean(),
                                                               rel=1e-13)

    def test_nanojansky_images_say_bunit(self, mExposure, tmp_path):
        mExposure.setAllPhotoCalibs([PhotoCalib(1.0)] * len(BANDS))
        path = tmp_path / "nJy.fits"
        mExposure.writeFits(path)
        with fits.open(path) as hdus:
            assert hdus[0].header["BUNIT"] == "nJy" and "MAGZERO" not in hdus[0].header
        assert MultibandExposure.readFits(path).getPhotoCalibs() == [PhotoCalib(1.0)] * len(BANDS)

    def test_magzero_argument_supplies_a_missing_calibration(self, mExposure, tmp_path):
        path = rewrite(self._written(mExposure, tmp_path), tmp_path / "bare.fits",
                       lambda h: h[0].header.remove("MAGZERO"))
        with pytest.raises(FitsFormatError) as info:
            MultibandExposure.readFits(path)
        message = str(info.value)
        assert str(path) in message and "BUNIT" in message and "MAGZERO" in message and "--magzero" in message
        one = MultibandExposure.readFits(path, magZero=27.0)
        assert [c.instFluxToMagnitude(1.0) for c in one.getPhotoCalibs()] == pytest.approx([27.0] * 6)
        each = MultibandExposure.readFits(path, magZero=ZERO_POINTS)
        assert [c.instFluxToMagnitude(1.0) for c in each.getPhotoCalibs()] == pytest.approx(ZERO_POINTS)
        with pytest.raises(FitsFormatError, match=r"magZero \(--magzero\) gives 2 zero points for 6 band"):
            MultibandExposure.readFits(path, magZero=[27.0, 28.0])

    def test_magzero_argument_must_agree_with_the_header(self, mExposure, tmp_path):
        path = self._written(mExposure, tmp_path)
        assert MultibandExposure.readFits(path, magZero=list(ZERO_POINTS)).bands == BANDS
        with pytest.raises(FitsFormatError, match=r"states its calibration \(MAGZERO = '26.5,.*disagrees"):
            MultibandExposure.readFits(path, magZero=27.0)

    def test_single_band_files_read_bunit_from_the_image_header(self, mExposure, tmp_path):
        """afw writes BUNIT in the image HDU; a numeric MAGZERO card is one zero point."""
        written = tmp_path / "r.fits"
        mExposure["r"].writeFits(written)
        assert Exposure.readFits(written).getPhotoCalib().instFluxToMagnitude(1.0) == pytest.approx(28.1)

        def toImageHeader(h):
            h[0].header.remove("MAGZERO")
            h["IMAGE"].header["BUNIT"] = "nJy"

        calibrated = rewrite(written, tmp_path / "nJy.fits", toImageHeader)
        assert Exposure.readFits(calibrated).getPhotoCalib() == PhotoCalib(1.0)
        numeric = rewrite(written, tmp_path / "numeric.fits", lambda h: h[0].header.set("MAGZERO", 30.0))
        assert Exposure.readFits(numeric).getPhotoCalib().instFluxToMagnitude(1.0) == pytest.approx(30.0)
        bare = rewrite(written, tmp_path / "bare.fits", lambda h: h[0].header.remove("MAGZERO"))
        with pytest.raises(FitsFormatError, match=r"bare.fits\[PRIMARY\]: no photometric calibration"):
            MultibandExposure.readFits([bare])
        assert MultibandExposure.readFits([bare], magZero=[29.0])["r"].getPhotoCalib().instFluxToMagnitude(1.0) == \
            pytest.approx(29.0)

    @staticmethod
    def _written(mExposure, tmp_path):
        path = tmp_path / "exposure.fits"
        mExposure.writeFits(path)
        return path


def test_footprint_of_peaks_only_round_trips(tmp_path):
    """A deblend_zeroFlux child keeps its peak and has no pixel; its catalogue must read back."""
    from lsst.meas.extensions.madness.afw.detection import Footprint, SpanSet
    from lsst.meas.extensions.madness.afw.geom import Box2I, Extent2I, Point2I
    from lsst.meas.extensions.madness.afw.table import SourceCatalog, SourceTable

    catalog = SourceCatalog(SourceTable.make(SourceTable.makeMinimalSchema()))
    parent = catalog.addNew()
    footprint = Footprint(SpanSet(Box2I(Point2I(0, 0), Extent2I(5, 5))))
    footprint.addPeak(2, 3, 1.0)
    parent.setFootprint(footprint)
    child = catalog.addNew()
    child.setParent(parent.getId())
    child.setFootprint(Footprint(SpanSet(), [footprint.getPeaks()[0]]))
    catalog.writeFits(tmp_path / "catalog.fits")
    back = SourceCatalog.readFits(tmp_path / "catalog.fits")
    peaks = back[1].getFootprint().getPeaks()
    assert back[1].getFootprint().getSpans().isEmpty() and [(p.getIx(), p.getIy()) for p in peaks] == [(2, 3)]
