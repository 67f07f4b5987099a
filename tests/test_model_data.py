"""Model data: every child's full model in one FITS file, read back and drawn again (io/modelDataFits.py)."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.io import fits

from lsst.meas.extensions.madness.afw.geom import Box2I, Extent2I, Point2I
from lsst.meas.extensions.madness.deblend.blendModel import ModelData
from lsst.meas.extensions.madness.io.errors import FitsFormatError
from lsst.meas.extensions.madness.io.modelDataFits import readModelDataFits
from lsst.meas.extensions.madness.testing import makeMockMultibandExposure
from lsst.meas.extensions.madness.testing.deblenders import quickMadnessTask

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

# Two parents: one of two blended galaxies, one alone.
_POSITIONS = np.array([[25, 25], [34, 28], [80, 60]], float)


@pytest.fixture(scope="module")
def deblended(tinyModelDirectory):
    """A MADNESS run in which the two-peak parent goes to the (equal-share) fallback: both kinds of model."""
    mock = makeMockMultibandExposure(shape=(100, 100), nGalaxies=3, seed=3, positions=_POSITIONS,
                                     hlrRange=(0.3, 0.6), magZero=28.0)
    task = quickMadnessTask(tinyModelDirectory, mock.catalog.schema.copy(), maxMadnessPeaks=1)
    result = task.run(mock.mExposure, mock.catalog)
    return mock, result


@pytest.fixture(scope="module")
def written(deblended, tmp_path_factory):
    _, result = deblended
    path = tmp_path_factory.mktemp("model-data") / "modelData.fits"
    result.modelData.writeFits(path)
    return path


def test_the_fit_has_a_madness_parent_and_a_fallback_parent_in_other_units(deblended):
    _, result = deblended
    methods = sorted(model.method for model in result.modelData.blends.values())
    assert methods == ["equalShare", "madness"], methods
    # MAGZERO 28 is not the models' units: the round trip must undo toDeblender.
    assert not np.allclose(result.modelData.toDeblender, 1.0)


def test_round_trip_keeps_every_parent_child_and_diagnostic(deblended, written):
    _, result = deblended
    original, read = result.modelData, ModelData.readFits(written)
    assert read.bands == original.bands and set(read.blends) == set(original.blends)
    np.testing.assert_array_equal(read.toDeblender, original.toDeblender)
    for parentId, model in original.blends.items():
        again = read.blends[parentId]
        assert read.boxes[parentId] == original.boxes[parentId]
        assert read.peakIds[parentId] == original.peakIds[parentId]
        assert read.childIds[parentId] == original.childIds[parentId]
        for name in ("iterations", "converged", "method", "fallbackReason", "timedOut", "runtime"):
            assert getattr(again, name) == getattr(model, name), name
        np.testing.assert_equal(again.logLikelihood, model.logLikelihood)
        np.testing.assert_array_equal(again.children.rows, model.children.rows)
        np.testing.assert_array_equal(again.children.cols, model.children.cols)
        if model.latents is None:
            assert again.latents is None and again.logPrior is None
        else:
            np.testing.assert_array_equal(again.latents, np.asarray(model.latents, np.float32))
            np.testing.assert_array_equal(again.logPrior, model.logPrior)
        # Both in the deblender's units, to float32 precision.
        np.testing.assert_allclose(read.modelImage(parentId), original.modelImage(parentId), rtol=1e-6, atol=1e-30)


def test_render_child_is_the_fits_child_model_in_exposure_units(deblended, written):
    mock, result = deblended
    original, read = result.modelData, ModelData.readFits(written)
    catalog = result.deblendedCatalog
    children = [record for record in catalog if record.getParent() != 0]
    assert len(children) == 3
    scale = np.asarray(original.toDeblender)[:, None, None]
    for child in children:
        parentId, peakId = child.getParent(), child.get("deblend_peakId")
        k = original.childIndex(parentId, peakId)
        assert original.childIds[parentId][k] == child.getId()
        model = original.blends[parentId].children
        expected = np.zeros((len(original.bands), *original.modelImage(parentId).shape[1:]))
        expected[(slice(None), *model.slices(k))] = model.images[k] / scale
        drawn = read.renderChild(parentId, peakId)
        np.testing.assert_allclose(drawn, expected, rtol=1e-6, atol=1e-30)
        # What was stored is exactly the float32 of the fit's model.
        stamp, box = read.childStamp(parentId, peakId)
        np.testing.assert_array_equal(stamp.astype(np.float32), (model.images[k] / scale).astype(np.float32))
        assert box.getDimensions() == Extent2I(model.images[k].shape[-1], model.images[k].shape[-2])
        # Its flux is the catalogue's (nJy = exposure units × calibration).
        calibs = mock.mExposure.getPhotoCalibs()
        for b, band in enumerate(original.bands):
            nJy = calibs[b].instFluxToNanojansky(float(drawn[b].sum()))
            assert nJy == pytest.approx(child.get(f"madness_flux_{band}"), rel=1e-5)
    # The children of a parent sum to its model.
    for parentId in original.blends:
        total = sum(read.renderChild(parentId, p) for p in read.peakIds[parentId])
        np.testing.assert_allclose(total, read.modelImage(parentId, exposureUnits=True), rtol=1e-12, atol=1e-30)


def test_render_child_on_another_box_cuts_and_pads(deblended):
    _, result = deblended
    modelData = result.modelData
    parentId = next(iter(modelData.blends))
    peakId = modelData.peakIds[parentId][0]
    stamp, box = modelData.childStamp(parentId, peakId)
    shifted = Box2I(Point2I(box.getMinX() + 3, box.getMinY() - 2), box.getDimensions())
    drawn = modelData.renderChild(parentId, peakId, bbox=shifted)
    np.testing.assert_array_equal(drawn[:, 2:, :-3], stamp[:, :-2, 3:])
    assert not drawn[:, :2].any() and not drawn[:, :, -3:].any()
    far = Box2I(Point2I(box.getMaxX() + 10, box.getMaxY() + 10), Extent2I(4, 5))
    assert modelData.renderChild(parentId, peakId, bbox=far).shape == (len(modelData.bands), 5, 4)
    with pytest.raises(KeyError, match="no peak 123456"):
        modelData.renderChild(parentId, 123456)
    with pytest.raises(KeyError, match="has no model"):
        modelData.renderChild(-5, peakId)


def _rewrite(source, target, edit):
    with fits.open(source, memmap=False) as hdus:
        for hdu in hdus[1:]:
            _ = hdu.data  # read now: the variable-length columns' heap is gone once the file is closed
        edit(hdus)
        hdus.writeto(target, overwrite=True)


def _dropColumn(name, column):
    def edit(hdus):
        table = hdus[name]
        hdus[name] = fits.BinTableHDU.from_columns([c for c in table.columns if c.name != column], name=name,
                                                   header=table.header)
    return edit


def _remove(name):
    def edit(hdus):
        del hdus[name]
    return edit


def _setHeader(key, value):
    def edit(hdus):
        hdus[0].header[key] = value
    return edit


def _setValue(name, column, value):
    def edit(hdus):
        hdus[name].data[column][0] = value
    return edit


@pytest.mark.parametrize("edit, where", [
    (_remove("CHILDREN"), r"modelData\.fits\[CHILDREN\]: missing extension"),
    (_dropColumn("CHILDREN", "model"), r"\[CHILDREN\] column 'model': missing column"),
    (_dropColumn("PARENTS", "x0"), r"\[PARENTS\] column 'x0': missing column"),
    (_setHeader("MDFORMAT", "SOMETHING"), r"\[PRIMARY\]: MDFORMAT = 'SOMETHING'"),
    (_setHeader("TODEBLND", "1.0"), r"\[PRIMARY\]: TODEBLND = '1.0'"),
    (_setValue("PARENTS", "nChild", 7), r"\[PARENTS\] column 'nChild' row 0: nChild = 7"),
    (_setValue("CHILDREN", "height", 3), r"\[CHILDREN\] column 'model' row 0: .* values for"),
    (_setValue("CHILDREN", "row", 10_000), r"\[CHILDREN\] column 'row' row 0: .* off its"),
    (_setValue("CHILDREN", "parent_id", 999_999), r"\[CHILDREN\] column 'parent_id' row 0: parent 999999"),
])
def test_a_malformed_file_names_file_extension_and_column(written, tmp_path, edit, where):
    target = tmp_path / "modelData.fits"
    _rewrite(written, target, edit)
    with pytest.raises(FitsFormatError, match=where) as caught:
        readModelDataFits(target)
    assert caught.value.path == str(target)


def test_a_file_that_is_not_fits_is_named(tmp_path):
    path = tmp_path / "modelData.fits"
    path.write_text("not fits")
    with pytest.raises(FitsFormatError, match=r"modelData\.fits: not a readable FITS file"):
        ModelData.readFits(path)


def test_an_empty_model_data_round_trips(tmp_path):
    empty = ModelData(("g", "r"))
    empty.writeFits(tmp_path / "empty.fits")
    read = ModelData.readFits(tmp_path / "empty.fits")
    assert read.bands == ("g", "r") and len(read) == 0
