"""A corpus of malformed and hostile inputs (doc/reliability.md lists every case).

Each case either fails fast, before any deblending, with an error that names where the problem
is (file, extension, column, row; exit status 2 from ``madness-run-task``), or is handled per
parent: the bad parent is skipped with a ``deblend_skipped_*`` flag, fails with
``deblend_error``, or has its bad pixels (or missing band) at zero weight, while the rest of the
catalogue is deblended as usual. Every input is built here, in memory or under ``tmp_path``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits

from lsst.meas.extensions.madness.afw import Box2I, Extent2I, Point2I, SpanSet
from lsst.meas.extensions.madness.afw.detection import Footprint
from lsst.meas.extensions.madness.afw.table import SourceCatalog, SourceTable
from lsst.meas.extensions.madness.deblend import MadnessDeblendTask
from lsst.meas.extensions.madness.models import Decoder, Encoder, ModelConfig, exportModels, makeFlow
from lsst.meas.extensions.madness.runTask import main
from lsst.meas.extensions.madness.testing import makeMockMultibandExposure
from lsst.meas.extensions.madness.testing.deblenders import quickMadnessTask

pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning"),
    # astropy warns about truncated or non-standard files before the reader rejects them.
    pytest.mark.filterwarnings("ignore::astropy.io.fits.verify.VerifyWarning"),
    pytest.mark.filterwarnings("ignore::astropy.utils.exceptions.AstropyUserWarning"),
]


#: Two pairs and two single galaxies: parents (ids 1-4) with 2, 1, 2 and 1 peaks.
_POSITIONS = np.array([[25, 25], [34, 28], [85, 85], [80, 28], [28, 82], [36, 88]], float)
_BANDS = ("u", "g", "r", "i", "z", "y")


@pytest.fixture(scope="module")
def mock():
    mock = makeMockMultibandExposure(shape=(120, 120), nGalaxies=6, seed=3, positions=_POSITIONS, hlrRange=(0.3, 0.6))
    # The cases below pick their victim by row; they rely on this layout.
    assert [len(r.getFootprint().getPeaks()) for r in mock.catalog] == [2, 1, 2, 1]
    assert list(mock.catalog["id"]) == [1, 2, 3, 4]
    return mock


def _fresh(mock):
    """A private exposure and parent catalogue (footprints copied too) that a case may damage."""
    catalog = mock.catalog.copy(deep=True)
    for record in catalog:
        record.setFootprint(record.getFootprint().copy())
    return mock.mExposure.clone(), catalog


def _task(modelDir, schema, **config) -> MadnessDeblendTask:
    # SCARLET compiles JAX for many seconds; the stand-in fallback keeps the corpus fast.
    return quickMadnessTask(modelDir, schema, **config)


def _run(modelDir, mExposure, catalog, **config):
    task = _task(modelDir, catalog.schema.copy(), **config)
    return task, task.run(mExposure, catalog)


def _pixels(catalog, row):
    """(ys, xs) array indices of a parent's footprint (the mock's xy0 is (0, 0))."""
    return catalog[row].getFootprint().getSpans().indices()


def _assertInvariants(catalog, result, absent=()):
    from lsst.meas.extensions.madness.deblend.invariants import checkInvariants

    assert checkInvariants(catalog, result.deblendedCatalog, absent) == []


def _assertDeblended(result, catalog, ids=None, absent=()):
    """The parents (all, or those of ``ids``) have one child per peak and no skip or failure flag; their
    fluxes are finite, NaN in the ``absent`` bands."""
    out = result.deblendedCatalog
    for record in out[:len(catalog)]:
        if ids is not None and record.getId() not in ids:
            continue
        kids = out.getChildren(record.getId())
        nPeaks = len(record.getFootprint().getPeaks())
        state = {name: record.get(name) for name in ("deblend_skipped", "deblend_failed", "deblend_error")}
        assert not record.get("deblend_skipped") and not record.get("deblend_failed"), (record.getId(), state)
        assert record.get("deblend_nChild") == len(kids) == nPeaks > 0, record.getId()
        for child in kids:
            fluxes = [child.get(f"madness_flux_{band}") for band in _BANDS]
            assert list(np.isfinite(fluxes)) == [band not in absent for band in _BANDS], (child.getId(), fluxes)


def _assertFlagged(result, catalog, parentId):
    """The parent is skipped with a deblend_skipped_* flag, or failed with a deblend_error; no children."""
    out = result.deblendedCatalog
    record = next(r for r in out[:len(catalog)] if r.getId() == parentId)
    skipFlags = [n for n in out.schema.getNames() if n.startswith("deblend_skipped_") and record.get(n)]
    skipped = bool(record.get("deblend_skipped")) and bool(skipFlags)
    failed = bool(record.get("deblend_failed")) and record.get("deblend_error") != ""
    assert skipped or failed, (
        f"parent {parentId}: deblend_skipped={record.get('deblend_skipped')} flags={skipFlags} "
        f"deblend_failed={record.get('deblend_failed')} deblend_error={record.get('deblend_error')!r}")
    assert record.get("deblend_nChild") == 0 and len(out.getChildren(parentId)) == 0


def _assertHandledPerParent(result, catalog, badIds):
    for parentId in badIds:
        _assertFlagged(result, catalog, parentId)
    _assertDeblended(result, catalog, ids=[r.getId() for r in catalog if r.getId() not in badIds])
    _assertInvariants(catalog, result)


def _assertZeroWeight(result, catalog, incompleteIds, absent=()):
    """Every parent deblended; deblend_incompleteData exactly on ``incompleteIds``."""
    _assertDeblended(result, catalog, absent=absent)
    out = result.deblendedCatalog
    flagged = [r.getId() for r in out[:len(catalog)] if r.get("deblend_incompleteData")]
    assert flagged == sorted(incompleteIds)
    _assertInvariants(catalog, result, absent)


# --------------------------------------------------------------------------------------------
# Files given to madness-run-task: exit status 2, the file and the extension/column/row named.


@pytest.fixture(scope="module")
def files(tmp_path_factory, mock, tinyModelDirectory):
    directory = tmp_path_factory.mktemp("reliability")
    mock.mExposure.writeFits(directory / "exposure.fits")
    mock.catalog.writeFits(directory / "parents.fits", bbox=mock.mExposure.getBBox())
    (directory / "config.py").write_text(_configText(tinyModelDirectory))
    return directory


def _configText(modelDir) -> str:
    # With the fallback rules off a parent MADNESS cannot model fails instead of going to SCARLET,
    # which would compile JAX for many seconds.
    return (f"config.modelDir = {str(modelDir)!r}\nconfig.maxIter = 5\nconfig.minIter = 2\nconfig.device = 'cpu'\n"
            "config.fallbackOnFailure = False\nconfig.fallbackNonFinite = False\n")


def _cli(capsys, files, tmp_path, exposure=None, catalog=None, config=None):
    capsys.readouterr()
    status = main(["--exposure", str(exposure or files / "exposure.fits"),
                   "--catalog", str(catalog or files / "parents.fits"),
                   "--output", str(tmp_path / "out"), "--config", str(config or files / "config.py"), "--no-progress"])
    return status, capsys.readouterr().err


def _rewrite(source: Path, target: Path, edit) -> Path:
    with fits.open(source, memmap=False, lazy_load_hdus=False) as hdus:
        edit(hdus)
        hdus.writeto(target)
    return target


def _dataOffset(path: Path, extension: str) -> int:
    with fits.open(path, memmap=False) as hdus:
        return hdus.fileinfo(hdus.index_of(extension))["datLoc"]


def _replaceCard(raw: bytes, start: int, old: bytes, new: bytes) -> bytes:
    at = raw.index(old, start)
    return raw[:at] + new + raw[at + len(old):]


def _setData(extension, make):
    def edit(hdus):
        hdus[extension].data = make(hdus[extension].data)
    return edit


def _setPixel(extension, index, value):
    def edit(hdus):
        hdus[extension].data[index] = value
    return edit


def _evenPsf(psf):
    cube = np.pad(psf, ((0, 0), (0, 1), (0, 1)))
    return (cube / cube.sum(axis=(1, 2), keepdims=True)).astype(np.float32)


def _nanPsf(psf):
    psf = psf.copy()
    psf[2, 20, 20] = np.nan
    return psf


_EXPOSURE_CASES = {
    # case: (edit of the good file, extension the message must name, further text it must hold)
    "psf_missing": (lambda hdus: hdus.pop(hdus.index_of("PSF")), "PSF", "missing extension"),
    "psf_even_size": (_setData("PSF", _evenPsf), "PSF", "42x42"),
    "psf_not_unit_sum": (_setData("PSF", lambda psf: psf * 1.5), "PSF", "not 1"),
    "psf_nan": (_setData("PSF", _nanPsf), "PSF", "non-finite"),
    "psf_band_count": (_setData("PSF", lambda psf: psf[:5]), "PSF", "5 planes"),
    "mask_band_count": (_setData("MASK", lambda mask: mask[:5]), "MASK", "5 planes"),
    "variance_shape": (_setData("VARIANCE", lambda var: var[:, :-1, :]), "VARIANCE", "(6, 119, 120)"),
    "negative_variance": (_setPixel("VARIANCE", (3, 10, 7), -1.0), "VARIANCE", "band 'i' pixel (x=7, y=10)"),
    "image_integer_dtype": (_setData("IMAGE", lambda image: np.round(image).astype(np.int32)), "IMAGE",
                            "floating-point"),
    "mask_float_dtype": (_setData("MASK", lambda mask: mask.astype(np.float32)), "MASK", "integer"),
    "bands_keyword_missing": (lambda hdus: hdus[0].header.remove("BANDS"), "PRIMARY", "BANDS"),
    "bands_repeated": (lambda hdus: hdus[0].header.set("BANDS", "u,g,r,r,z,y"), "PRIMARY", "repeats a band"),
}


@pytest.mark.parametrize("case", list(_EXPOSURE_CASES))
def test_malformed_exposure_file_exits_2_naming_the_extension(case, files, tmp_path, capsys):
    edit, extension, detail = _EXPOSURE_CASES[case]
    path = _rewrite(files / "exposure.fits", tmp_path / f"{case}.fits", edit)
    status, err = _cli(capsys, files, tmp_path, exposure=path)
    assert status == 2, err
    assert f"{path}[{extension}]" in err and detail in err, err


def _editTable(extension, column, row, value):
    def edit(hdus):
        hdus[extension].data[column][row] = value
    return edit


def _floatIds(hdus):
    sources = hdus["SOURCES"]
    columns = [fits.Column(name="id", format="D", array=sources.data["id"].astype(np.float64)) if c.name == "id"
               else c for c in sources.columns]
    hdus[hdus.index_of("SOURCES")] = fits.BinTableHDU.from_columns(columns, name="SOURCES")


_CATALOG_CASES = {
    # case: (edit of the good file, location the message must name)
    "duplicate_id": (_editTable("SOURCES", "id", 2, 2), "[SOURCES] column 'id' row 2"),
    "orphan_parent_link": (_editTable("SOURCES", "parent", 1, 999), "[SOURCES] column 'parent' row 1"),
    "id_float_dtype": (_floatIds, "[SOURCES] column 'id'"),
    "span_outside_image": (_editTable("SPANS", "x1", 3, 130), "[SPANS] column 'x1' row 3"),
    "peak_outside_footprint": (lambda hdus: (_editTable("PEAKS", "i_x", 1, 2)(hdus),
                                             _editTable("PEAKS", "i_y", 1, 2)(hdus)), "[PEAKS] column 'i_x' row 1"),
    "peak_position_nan": (_editTable("PEAKS", "f_y", 2, np.nan), "[PEAKS] column 'f_y' row 2"),
    "peaks_extension_missing": (lambda hdus: hdus.pop(hdus.index_of("PEAKS")), "[PEAKS]"),
}


@pytest.mark.parametrize("case", list(_CATALOG_CASES))
def test_malformed_catalogue_file_exits_2_naming_the_row(case, files, tmp_path, capsys):
    edit, location = _CATALOG_CASES[case]
    path = _rewrite(files / "parents.fits", tmp_path / f"{case}.fits", edit)
    status, err = _cli(capsys, files, tmp_path, catalog=path)
    assert status == 2, err
    assert f"{path}{location}" in err, err


def test_truncated_exposure_exits_2_naming_the_extension(files, tmp_path, capsys):
    raw = (files / "exposure.fits").read_bytes()
    path = tmp_path / "truncated.fits"
    path.write_bytes(raw[:_dataOffset(files / "exposure.fits", "IMAGE") + 1000])
    status, err = _cli(capsys, files, tmp_path, exposure=path)
    assert status == 2, err
    assert str(path) in err and "IMAGE" in err, err


def test_exposure_truncated_in_its_last_extension_exits_2(files, tmp_path, capsys):
    raw = (files / "exposure.fits").read_bytes()
    path = tmp_path / "truncated-psf.fits"
    path.write_bytes(raw[:_dataOffset(files / "exposure.fits", "PSF") + 100])
    status, err = _cli(capsys, files, tmp_path, exposure=path)
    assert status == 2, err
    assert str(path) in err and "PSF" in err, err


def test_truncated_catalogue_exits_2_naming_the_extension(files, tmp_path, capsys):
    raw = (files / "parents.fits").read_bytes()
    path = tmp_path / "truncated-parents.fits"
    path.write_bytes(raw[:_dataOffset(files / "parents.fits", "SPANS") + 100])
    status, err = _cli(capsys, files, tmp_path, catalog=path)
    assert status == 2, err
    assert str(path) in err and "SPANS" in err, err


def test_corrupt_header_card_exits_2_naming_the_file(files, tmp_path, capsys):
    raw = (files / "exposure.fits").read_bytes()
    with fits.open(files / "exposure.fits") as hdus:
        start = hdus.fileinfo(hdus.index_of("IMAGE"))["hdrLoc"]
    path = tmp_path / "corrupt-bitpix.fits"
    path.write_bytes(_replaceCard(raw, start, b"BITPIX  =                  -32", b"BITPIX  =                  -17"))
    status, err = _cli(capsys, files, tmp_path, exposure=path)
    assert status == 2, err
    assert str(path) in err, err


def test_corrupt_extension_type_exits_2_naming_the_extension(files, tmp_path, capsys):
    raw = (files / "exposure.fits").read_bytes()
    with fits.open(files / "exposure.fits") as hdus:
        start = hdus.fileinfo(hdus.index_of("MASK"))["hdrLoc"]
    path = tmp_path / "corrupt-xtension.fits"
    path.write_bytes(_replaceCard(raw, start, b"XTENSION= 'IMAGE   '", b"XTENSION= 'IMGAE   '"))
    status, err = _cli(capsys, files, tmp_path, exposure=path)
    assert status == 2, err
    assert f"{path}[MASK]" in err, err


def test_non_fits_exposure_exits_2_naming_the_file(files, tmp_path, capsys):
    path = tmp_path / "exposure.csv"
    path.write_text("id,x,y\n1,25.0,25.0\n")
    status, err = _cli(capsys, files, tmp_path, exposure=path)
    assert status == 2, err
    assert str(path) in err and "FITS" in err, err


def test_empty_catalogue_file_of_zero_bytes_exits_2(files, tmp_path, capsys):
    path = tmp_path / "empty.fits"
    path.write_bytes(b"")
    status, err = _cli(capsys, files, tmp_path, catalog=path)
    assert status == 2, err
    assert str(path) in err, err


def test_missing_catalogue_file_exits_2_naming_it(files, tmp_path, capsys):
    path = tmp_path / "no-such-parents.fits"
    status, err = _cli(capsys, files, tmp_path, catalog=path)
    assert status == 2, err
    assert str(path) in err, err


def test_catalogue_without_parents_exits_2(files, mock, tmp_path, capsys):
    path = tmp_path / "no-parents.fits"
    SourceCatalog(SourceTable(mock.catalog.schema.copy())).writeFits(path, bbox=mock.mExposure.getBBox())
    status, err = _cli(capsys, files, tmp_path, catalog=path)
    assert status == 2, err
    assert str(path) in err and "no parents" in err, err


def _withChild(catalog):
    """The catalogue plus, at its last row, a child of parent 1 (as in an already deblended catalogue)."""
    parent = catalog[0].getFootprint()
    child = catalog.addNew()
    child.setParent(catalog[0].getId())
    child.setFootprint(Footprint(parent.getSpans().copy(), [parent.getPeaks().copy()[0]], parent.getRegion()))
    return catalog


def test_catalogue_file_with_children_exits_2_naming_the_row(files, mock, tmp_path, capsys):
    _, catalog = _fresh(mock)
    path = tmp_path / "with-children.fits"
    _withChild(catalog).writeFits(path, bbox=mock.mExposure.getBBox())
    status, err = _cli(capsys, files, tmp_path, catalog=path)
    assert status == 2, err
    assert str(path) in err and "row 4" in err, err


def test_exposure_without_u_band_deblends_from_the_command_line(files, mock, tmp_path, capsys):
    path = tmp_path / "des-like.fits"
    mock.mExposure[list(_BANDS[1:])].writeFits(path)
    status, err = _cli(capsys, files, tmp_path, exposure=path)
    assert status == 0, err
    out = SourceCatalog.readFits(tmp_path / "out" / "deblendedCatalog.fits")
    parents = out[:len(mock.catalog)]
    assert parents["deblend_incompleteData"].all() and (parents["deblend_nChild"] > 0).all()


@pytest.fixture
def modelling(monkeypatch):
    """The blends handed to the deblender's modelling (none when a run is refused before any work)."""
    calls = []
    original = MadnessDeblendTask.modelBlends

    def spy(self, *args, **kwargs):
        calls.append(args)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(MadnessDeblendTask, "modelBlends", spy)
    return calls


def test_parent_id_near_the_int64_maximum_exits_2_before_deblending(files, mock, tmp_path, capsys, modelling):
    # The children's ids follow the largest id: 6 peaks past 2**63 - 3 overflow int64, which the writer
    # found only after the whole deblend.
    _, catalog = _fresh(mock)
    catalog[3].setId(2**63 - 3)
    path = tmp_path / "huge-id.fits"
    catalog.writeFits(path, bbox=mock.mExposure.getBBox())
    status, err = _cli(capsys, files, tmp_path, catalog=path)
    assert status == 2, err
    assert f"{path}[SOURCES]" in err and "row 3" in err and "int64" in err, err
    assert modelling == []


def test_parent_ids_just_below_the_int64_maximum_are_accepted():
    from lsst.meas.extensions.madness.deblend.invariants import INT64_MAX, checkInputCatalog

    mock = makeMockMultibandExposure(shape=(120, 120), nGalaxies=6, seed=3, positions=_POSITIONS,
                                     hlrRange=(0.3, 0.6))
    catalog = mock.catalog
    catalog[3].setId(INT64_MAX - 6)  # six peaks: the last child gets INT64_MAX itself
    checkInputCatalog(catalog, mock.mExposure.getBBox())
    catalog[3].setId(INT64_MAX - 5)
    with pytest.raises(ValueError, match="row 3"):
        checkInputCatalog(catalog, mock.mExposure.getBBox())


def test_catalogue_of_another_image_exits_2_naming_both_boxes(files, mock, tmp_path, capsys, modelling):
    # Every footprint lies inside both boxes: only the recorded box tells that the catalogue is not
    # this exposure's.
    other = Box2I(Point2I(-20, -20), Extent2I(160, 160))
    path = tmp_path / "other-image.fits"
    mock.catalog.writeFits(path, bbox=other)
    status, err = _cli(capsys, files, tmp_path, catalog=path)
    assert status == 2, err
    assert f"{path}[PRIMARY]" in err and repr(other) in err and repr(mock.mExposure.getBBox()) in err, err
    assert modelling == []


def _makeReadOnly(directory: Path, monkeypatch) -> None:
    import errno
    import os

    directory.mkdir()
    directory.chmod(0o555)
    if os.geteuid() == 0:
        # Root writes in a directory of mode 555 all the same: a read-only file system is what it cannot
        # write, so refuse creating files there as one would.
        create = os.open

        def readOnlyOpen(path, flags, *args, **kwargs):
            if Path(path).parent == directory and flags & os.O_CREAT:
                raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(path))
            return create(path, flags, *args, **kwargs)

        monkeypatch.setattr(os, "open", readOnlyOpen)


def _existingFile(path: Path, monkeypatch) -> None:
    path.write_text("not a directory\n")


def _symlinkLoop(path: Path, monkeypatch) -> None:
    path.symlink_to(path.with_name("loop-b"))
    path.with_name("loop-b").symlink_to(path)


_OUTPUT_CASES = {"read_only_directory": (_makeReadOnly, "Read-only file system|Permission denied"),
                 "existing_file": (_existingFile, "exists and is not a directory"),
                 "symlink_loop": (_symlinkLoop, "Too many levels of symbolic links")}


@pytest.mark.parametrize("case", list(_OUTPUT_CASES))
def test_unusable_output_directory_exits_2_before_deblending(case, files, tmp_path, capsys, monkeypatch,
                                                             modelling):
    import re

    make, reason = _OUTPUT_CASES[case]
    output = tmp_path / "out"
    make(output, monkeypatch)
    status, err = _cli(capsys, files, tmp_path)
    assert status == 2, err
    assert f"{output}: cannot" in err and re.search(reason, err), err
    assert modelling == []


@pytest.mark.parametrize("device", ["", "gpu", "cuda:x"])
def test_a_device_torch_does_not_know_exits_2_before_reading(device, files, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--exposure", str(files / "exposure.fits"), "--catalog", str(files / "parents.fits"),
              "--output", str(tmp_path / "out"), "--config", str(files / "config.py"), "--device", device])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and f"--device {device!r}" in err and "cpu" in err, err
    assert not (tmp_path / "out").exists()


def test_a_device_torch_does_not_know_in_the_config_file_exits_2(files, tmp_path, capsys, modelling):
    config = tmp_path / "gpu-config.py"
    config.write_text((files / "config.py").read_text() + "config.device = 'gpu'\n")
    status, err = _cli(capsys, files, tmp_path, config=config)
    assert status == 2, err
    assert "device 'gpu' is not a torch device name" in err, err
    assert modelling == []


_CONFIG_CASES = {
    # case: (lines added to the config file, texts the message must hold)
    "unknown_bad_mask_plane": ("config.badMask = ['BAD', 'SATURATED']\n", ["[MASK]", "config.badMask", "'SATURATED'"]),
    "unknown_mask_limit_plane": ("config.maskLimits = {'NODATA': 0.5}\n", ["[MASK]", "config.maskLimits", "'NODATA'"]),
    "min_iter_above_max_iter": ("config.minIter = 50\n", ["minIter (50)", "maxIter (5)"]),
}


@pytest.mark.parametrize("case", list(_CONFIG_CASES))
def test_config_values_that_cannot_work_exit_2_before_deblending(case, files, tinyModelDirectory, tmp_path, capsys,
                                                                 modelling):
    lines, fragments = _CONFIG_CASES[case]
    config = tmp_path / f"{case}.py"
    config.write_text(_configText(tinyModelDirectory) + lines)
    status, err = _cli(capsys, files, tmp_path, config=config)
    assert status == 2, err
    assert all(fragment in err for fragment in fragments), err
    assert modelling == []


def test_bad_mask_planes_of_lsst_that_the_exposure_lacks_are_accepted(files, tinyModelDirectory, tmp_path, capsys):
    # STREAK is one of LSST's planes: an exposure without it simply has no streak.
    config = tmp_path / "streak.py"
    config.write_text(_configText(tinyModelDirectory) + "config.badMask = ['BAD', 'SAT', 'STREAK']\n")
    status, err = _cli(capsys, files, tmp_path, config=config)
    assert status == 0, err


@pytest.mark.parametrize("bands", [["g", "r", "i"], ["r", "i", "z", "y", "g"]])
def test_plots_of_an_exposure_lacking_bands_are_written(bands, files, mock, tmp_path, capsys):
    path = tmp_path / "gri.fits"
    mock.mExposure[bands].writeFits(path)
    capsys.readouterr()
    status = main(["--exposure", str(path), "--catalog", str(files / "parents.fits"), "--output",
                   str(tmp_path / "out"), "--config", str(files / "config.py"), "--no-progress", "--plot", "2"])
    err = capsys.readouterr().err
    assert status == 0, err
    metadata = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert metadata["plotErrors"] == [] and len(metadata["outputs"]["plots"]) == 2
    assert all((tmp_path / "out" / plot).stat().st_size > 10_000 for plot in metadata["outputs"]["plots"])


def test_a_failing_plot_does_not_fail_the_run(files, tmp_path, capsys, monkeypatch):
    from lsst.meas.extensions.madness.deblend import plots

    def broken(*args, **kwargs):
        raise ValueError("simulated plot failure")

    monkeypatch.setattr(plots, "drawBlendDiagnostics", broken)
    capsys.readouterr()
    status = main(["--exposure", str(files / "exposure.fits"), "--catalog", str(files / "parents.fits"), "--output",
                   str(tmp_path / "out"), "--config", str(files / "config.py"), "--no-progress", "--plot", "2"])
    err = capsys.readouterr().err
    assert status == 0, err
    assert "no plot of parent" in err and "simulated plot failure" in err, err
    metadata = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert metadata["outputs"]["plots"] == [] and len(metadata["plotErrors"]) == 2
    assert metadata["plotErrors"][0]["error"] == "ValueError: simulated plot failure"
    assert len(SourceCatalog.readFits(tmp_path / "out" / "deblendedCatalog.fits")) == 4 + 6


def test_madness_sim_bands_with_commas_or_unknown_bands(tmp_path, capsys):
    from lsst.meas.extensions.madness.sim.cli import main as simMain

    for bands, fragment in (("g,x,i", "unknown band(s) ['x']"), ("g,r,r", "repeats ['r']"), (",", "unknown band(s)")):
        assert simMain(["inputs", "--bands", bands, "--out", str(tmp_path / "sims")]) == 2
        err = capsys.readouterr().err
        assert f"--bands {bands!r}" in err and fragment in err and "Traceback" not in err, err
    assert not (tmp_path / "sims").exists()
    # Commas are what a user of madness-run-task's band lists types: they are read as separators.
    assert simMain(["inputs", "--bands", "g,r,i", "--scenes", "1", "--population-size", "400", "--workers", "1",
                    "--quiet", "--out", str(tmp_path / "sims")]) == 0
    (exposure,) = (tmp_path / "sims").glob("*_exposure.fits")
    assert fits.getheader(exposure)["BANDS"] == "g,r,i"


# --------------------------------------------------------------------------------------------
# Model directories: exit status 2 (or an error at set-up) naming the directory or file.


@pytest.fixture(scope="module")
def fiveBandModelDirectory(tmp_path_factory):
    import torch

    config = ModelConfig.fromProfile("tiny", bands=("g", "r", "i", "z", "y"))
    torch.manual_seed(1)
    directory = tmp_path_factory.mktemp("tiny-grizy-models")
    exportModels(directory, config, Encoder(config), Decoder(config), makeFlow(config), Encoder(config))
    return directory


def _models(tinyModelDirectory, tmp_path) -> Path:
    return Path(shutil.copytree(tinyModelDirectory, tmp_path / "models"))


def _modelCli(capsys, files, tmp_path, modelDir):
    config = tmp_path / "models-config.py"
    config.write_text(_configText(modelDir))
    return _cli(capsys, files, tmp_path, config=config)


def test_model_directory_missing_exits_2(files, tmp_path, capsys):
    modelDir = tmp_path / "no-such-models"
    status, err = _modelCli(capsys, files, tmp_path, modelDir)
    assert status == 2, err
    assert str(modelDir) in err, err


def test_model_card_missing_exits_2(files, tinyModelDirectory, tmp_path, capsys):
    modelDir = _models(tinyModelDirectory, tmp_path)
    (modelDir / "model_card.json").unlink()
    status, err = _modelCli(capsys, files, tmp_path, modelDir)
    assert status == 2, err
    assert str(modelDir / "model_card.json") in err, err


def test_model_card_truncated_exits_2(files, tinyModelDirectory, tmp_path, capsys):
    modelDir = _models(tinyModelDirectory, tmp_path)
    card = modelDir / "model_card.json"
    card.write_text(card.read_text()[:200])
    status, err = _modelCli(capsys, files, tmp_path, modelDir)
    assert status == 2, err
    assert str(card) in err and "JSON" in err, err


def test_weights_file_missing_exits_2(files, tinyModelDirectory, tmp_path, capsys):
    modelDir = _models(tinyModelDirectory, tmp_path)
    (modelDir / "decoder.pt").unlink()
    status, err = _modelCli(capsys, files, tmp_path, modelDir)
    assert status == 2, err
    assert str(modelDir / "decoder.pt") in err, err


def test_weights_file_truncated_exits_2(files, tinyModelDirectory, tmp_path, capsys):
    modelDir = _models(tinyModelDirectory, tmp_path)
    weights = modelDir / "encoder.pt"
    weights.write_bytes(weights.read_bytes()[:1000])
    status, err = _modelCli(capsys, files, tmp_path, modelDir)
    assert status == 2, err
    assert str(weights) in err and "sha256" in err, err


def test_weights_file_from_another_band_set_exits_2(files, tinyModelDirectory, fiveBandModelDirectory, tmp_path,
                                                    capsys):
    modelDir = _models(tinyModelDirectory, tmp_path)
    shutil.copy(fiveBandModelDirectory / "decoder.pt", modelDir / "decoder.pt")
    status, err = _modelCli(capsys, files, tmp_path, modelDir)
    assert status == 2, err
    assert str(modelDir / "decoder.pt") in err and "sha256" in err, err


def test_model_card_from_another_band_set_exits_2(files, tinyModelDirectory, fiveBandModelDirectory, tmp_path,
                                                  capsys):
    modelDir = _models(tinyModelDirectory, tmp_path)
    shutil.copy(fiveBandModelDirectory / "model_card.json", modelDir / "model_card.json")
    status, err = _modelCli(capsys, files, tmp_path, modelDir)
    assert status == 2, err
    # The card's checksums are those of the other set: the first file it lists is named.
    assert str(modelDir / "encoder.pt") in err and "sha256" in err, err


def test_model_card_bands_edited_to_another_band_set_exits_2(files, tinyModelDirectory, tmp_path, capsys):
    modelDir = _models(tinyModelDirectory, tmp_path)
    card = modelDir / "model_card.json"
    content = json.loads(card.read_text())
    # The checksums cover the network files only, so this card still verifies: only the networks'
    # six input channels can tell that the five bands it now lists are wrong.
    content["bands"] = ["g", "r", "i", "z", "y"]
    card.write_text(json.dumps(content))
    status, err = _modelCli(capsys, files, tmp_path, modelDir)
    assert status == 2, err
    assert str(card) in err, err


# --------------------------------------------------------------------------------------------
# Catalogue content the task refuses before any deblending work: the row named.


def _spyOnModelling(task):
    calls = []
    original = task.modelBlends

    def spy(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    task.modelBlends = spy
    return calls


def _refuse(tinyModelDirectory, mExposure, catalog, *fragments):
    task = _task(tinyModelDirectory, catalog.schema.copy())
    calls = _spyOnModelling(task)
    with pytest.raises(ValueError) as raised:
        task.run(mExposure, catalog)
    assert all(fragment in str(raised.value) for fragment in fragments), str(raised.value)
    assert calls == []


def test_duplicate_ids_fail_fast_naming_the_row(mock, tinyModelDirectory):
    mExposure, catalog = _fresh(mock)
    catalog[1].setId(1)
    _refuse(tinyModelDirectory, mExposure, catalog, "row 1", "id 1")


def test_children_in_the_input_fail_fast_naming_the_row(mock, tinyModelDirectory):
    mExposure, catalog = _fresh(mock)
    _refuse(tinyModelDirectory, mExposure, _withChild(catalog), "row 4")


def test_record_without_footprint_fails_fast_naming_the_row(mock, tinyModelDirectory):
    mExposure, catalog = _fresh(mock)
    catalog[2].setFootprint(None)
    _refuse(tinyModelDirectory, mExposure, catalog, "row 2", "id 3")


def test_parent_id_zero_fails_fast_naming_the_row(mock, tinyModelDirectory):
    # Its children would be written with parent = 0 and read back as parents.
    mExposure, catalog = _fresh(mock)
    catalog[2].setId(0)
    _refuse(tinyModelDirectory, mExposure, catalog, "row 2", "id 0")


@pytest.mark.parametrize("case", ["within_a_parent", "across_parents"])
def test_repeated_peak_ids_fail_fast_naming_the_rows(case, mock, tinyModelDirectory):
    mExposure, catalog = _fresh(mock)
    first = catalog[0].getFootprint().getPeaks()[0]
    if case == "within_a_parent":
        catalog[0].getFootprint().getPeaks()[1].id = first.id
        _refuse(tinyModelDirectory, mExposure, catalog, "row 0 (id 1)", f"peak id {first.id} twice")
    else:
        catalog[2].getFootprint().getPeaks()[1].id = first.id
        _refuse(tinyModelDirectory, mExposure, catalog, "rows 0 and 2", f"peak id {first.id}")


def test_empty_catalogue_gives_an_empty_result(mock, tinyModelDirectory):
    mExposure, _ = _fresh(mock)
    empty = SourceCatalog(SourceTable(mock.catalog.schema.copy()))
    task, result = _run(tinyModelDirectory, mExposure, empty)
    assert len(result.deblendedCatalog) == 0 and task.metadata["nParents"] == 0
    _assertInvariants(empty, result)


# --------------------------------------------------------------------------------------------
# Bad pixels, bands and footprints: handled per parent, the rest deblended as usual.


def _nanPixels(mExposure, ys, xs):
    mExposure.image.array[2, ys, xs] = np.nan


def _infPixels(mExposure, ys, xs):
    mExposure.image.array[2, ys[::2], xs[::2]] = np.inf
    mExposure.image.array[2, ys[1::2], xs[1::2]] = -np.inf


def _zeroVariance(mExposure, ys, xs):
    mExposure.variance.array[2, ys, xs] = 0


def _negativeVariance(mExposure, ys, xs):
    mExposure.variance.array[2, ys, xs] = -5


def _nanVariance(mExposure, ys, xs):
    mExposure.variance.array[2, ys, xs] = np.nan


_BAD_PIXELS = {"nan_pixels": _nanPixels, "inf_pixels": _infPixels, "zero_variance": _zeroVariance,
               "negative_variance": _negativeVariance, "nan_variance": _nanVariance}


@pytest.mark.parametrize("case", list(_BAD_PIXELS))
def test_a_few_bad_pixels_get_zero_weight_in_their_parent(case, mock, tinyModelDirectory):
    mExposure, catalog = _fresh(mock)
    ys, xs = _pixels(catalog, 0)
    # A dozen pixels of parent 1's r band, around its first peak.
    peak = catalog[0].getFootprint().getPeaks()[0]
    near = np.argsort(np.hypot(xs - peak.getIx(), ys - peak.getIy()))[:12]
    _BAD_PIXELS[case](mExposure, ys[near], xs[near])
    _, result = _run(tinyModelDirectory, mExposure, catalog)
    _assertZeroWeight(result, catalog, [1])


def test_a_whole_band_of_nan_pixels_gets_zero_weight(mock, tinyModelDirectory):
    mExposure, catalog = _fresh(mock)
    mExposure.image.array[4] = np.nan
    _, result = _run(tinyModelDirectory, mExposure, catalog)
    _assertZeroWeight(result, catalog, [1, 2, 3, 4])


def test_missing_u_band_gets_zero_weight(mock, tinyModelDirectory):
    mExposure, catalog = _fresh(mock)
    task, result = _run(tinyModelDirectory, mExposure[list(_BANDS[1:])], catalog)
    # LSST's TaskMetadata gives an array's last element by key; getArray gives the list.
    assert task.metadata.getArray("missingBands") == ["u"]
    _assertZeroWeight(result, catalog, [1, 2, 3, 4], absent=("u",))
    # An absent band's flux is NaN, never invented; the invariants say so if one is not.
    from lsst.meas.extensions.madness.deblend.invariants import checkInvariants

    out = result.deblendedCatalog
    out[len(catalog)].set("madness_flux_u", 1.0)
    assert any("bands the exposure lacks" in p for p in checkInvariants(catalog, out, ("u",)))


def test_bands_in_another_order_give_the_same_children(mock, tinyModelDirectory):
    mExposure, catalog = _fresh(mock)
    _, expected = _run(tinyModelDirectory, mExposure, catalog)
    task, result = _run(tinyModelDirectory, mExposure[list(reversed(_BANDS))], catalog)
    assert task.metadata["nMissingBands"] == 0 and "missingBands" not in task.metadata
    _assertDeblended(result, catalog)
    _assertInvariants(catalog, result)
    got, want = result.deblendedCatalog, expected.deblendedCatalog
    assert list(got["deblend_peakId"]) == list(want["deblend_peakId"])
    for band in _BANDS:
        np.testing.assert_allclose(got[f"madness_flux_{band}"], want[f"madness_flux_{band}"], rtol=1e-5)


def test_peak_outside_its_footprint_is_handled_per_parent(mock, tinyModelDirectory):
    mExposure, catalog = _fresh(mock)
    footprint = catalog[0].getFootprint()
    # Inside the footprint's box but not the footprint, as near its first peak as can be: a peak
    # farther out would break the stamp cut and fail for that reason alone.
    box, peak = footprint.getBBox(), footprint.getPeaks()[0]
    holes = np.argwhere(footprint.getSpans().asArray(box) == 0) + [box.getMinY(), box.getMinX()]
    y, x = holes[np.argmin(np.hypot(holes[:, 1] - peak.getIx(), holes[:, 0] - peak.getIy()))]
    assert not footprint.contains(Point2I(int(x), int(y)))
    footprint.addPeak(float(x), float(y), 50.0, id=101)  # peak ids are unique over the catalogue
    _, result = _run(tinyModelDirectory, mExposure, catalog)
    _assertHandledPerParent(result, catalog, [1])


def test_peak_outside_the_image_is_handled_per_parent(mock, tinyModelDirectory):
    mExposure, catalog = _fresh(mock)
    catalog[2].getFootprint().addPeak(-6.0, 80.0, 50.0, id=101)
    _, result = _run(tinyModelDirectory, mExposure, catalog)
    _assertHandledPerParent(result, catalog, [3])


def test_peak_with_a_nan_position_is_handled_per_parent(mock, tinyModelDirectory):
    mExposure, catalog = _fresh(mock)
    peak = catalog[2].getFootprint().getPeaks()[1]
    peak.fx = peak.fy = float("nan")
    _, result = _run(tinyModelDirectory, mExposure, catalog)
    _assertHandledPerParent(result, catalog, [3])


def test_parent_without_peaks_is_handled_per_parent(mock, tinyModelDirectory):
    mExposure, catalog = _fresh(mock)
    catalog[1].getFootprint().getPeaks().clear()
    _, result = _run(tinyModelDirectory, mExposure, catalog)
    _assertHandledPerParent(result, catalog, [2])


def test_parent_with_an_empty_footprint_is_handled_per_parent(mock, tinyModelDirectory):
    mExposure, catalog = _fresh(mock)
    catalog[1].getFootprint().setSpans(SpanSet())
    _, result = _run(tinyModelDirectory, mExposure, catalog)
    _assertHandledPerParent(result, catalog, [2])


def test_fully_masked_parent_is_handled_per_parent(mock, tinyModelDirectory):
    mExposure, catalog = _fresh(mock)
    ys, xs = _pixels(catalog, 1)
    mExposure.mask.array[:, ys, xs] |= np.int32(mExposure.mask.getPlaneBitMask("BAD"))
    _, result = _run(tinyModelDirectory, mExposure, catalog)
    _assertHandledPerParent(result, catalog, [2])


def test_very_large_footprint_is_skipped_as_too_big(mock, tinyModelDirectory):
    mExposure, catalog = _fresh(mock)
    catalog[2].getFootprint().setSpans(SpanSet(Box2I(Point2I(10, 10), Extent2I(100, 100))))
    _, result = _run(tinyModelDirectory, mExposure, catalog, maxFootprintArea=5000)
    _assertHandledPerParent(result, catalog, [3])
    assert result.deblendedCatalog[2].get("deblend_skipped_parentTooBig")


def test_saturated_region_gets_zero_weight(mock, tinyModelDirectory):
    mExposure, catalog = _fresh(mock)
    ys, xs = _pixels(catalog, 0)
    peak = catalog[0].getFootprint().getPeaks()[0]
    core = np.hypot(xs - peak.getIx(), ys - peak.getIy()) <= 2
    mExposure.image.array[:, ys[core], xs[core]] = 65535.0
    mExposure.mask.array[:, ys[core], xs[core]] |= np.int32(mExposure.mask.getPlaneBitMask("SAT"))
    _, result = _run(tinyModelDirectory, mExposure, catalog)
    _assertZeroWeight(result, catalog, [1])


def test_footprint_reaching_off_the_image_fails_fast_naming_the_row(mock, tinyModelDirectory):
    # The same rule as the FITS reader's: a footprint must lie on its exposure.
    mExposure, catalog = _fresh(mock)
    footprint = catalog[3].getFootprint()
    footprint.setSpans(footprint.getSpans().union(SpanSet(Box2I(Point2I(95, 78), Extent2I(35, 12)))))
    assert not mExposure.getBBox().contains(footprint.getBBox())
    _refuse(tinyModelDirectory, mExposure, catalog, "row 3", "id 4", "off the exposure")


def test_overlapping_parents_are_deblended_independently(mock, tinyModelDirectory):
    mExposure, catalog = _fresh(mock)
    footprint = catalog[1].getFootprint()
    footprint.setSpans(footprint.getSpans().union(SpanSet(Box2I(Point2I(40, 20), Extent2I(30, 10)))))
    assert catalog[0].getFootprint().getSpans().intersect(footprint.getSpans()).getArea() > 0
    _, result = _run(tinyModelDirectory, mExposure, catalog)
    _assertDeblended(result, catalog)
    _assertInvariants(catalog, result)


def test_all_zero_image_gives_children_without_flux(mock, tinyModelDirectory):
    mExposure, catalog = _fresh(mock)
    mExposure.image.array[:] = 0
    _, result = _run(tinyModelDirectory, mExposure, catalog)
    _assertDeblended(result, catalog)
    _assertInvariants(catalog, result)
    for child in result.deblendedCatalog[len(catalog):]:
        if child.getFootprint().isHeavy():
            assert not np.any(child.getFootprint().getImageArray()), child.getId()


def test_extreme_flux_of_1e12_is_deblended_with_finite_children(mock, tinyModelDirectory):
    mExposure, catalog = _fresh(mock)
    ys, xs = _pixels(catalog, 0)
    pixels = mExposure.image.array[:, ys, xs]
    mExposure.image.array[:, ys, xs] = pixels * np.float32(1e12 / pixels.max())
    _, result = _run(tinyModelDirectory, mExposure, catalog)
    _assertDeblended(result, catalog)
    _assertInvariants(catalog, result)
    # The other parents are untouched by the bright one: MADNESS models them, not the fallback.
    assert not any(r.get("deblend_fallback") for r in result.deblendedCatalog[1:len(catalog)])


def test_negative_flux_region_is_deblended_with_finite_children(mock, tinyModelDirectory):
    mExposure, catalog = _fresh(mock)
    ys, xs = _pixels(catalog, 2)
    mExposure.image.array[:, ys, xs] = -np.abs(mExposure.image.array[:, ys, xs])
    _, result = _run(tinyModelDirectory, mExposure, catalog)
    _assertDeblended(result, catalog)
    _assertInvariants(catalog, result)
