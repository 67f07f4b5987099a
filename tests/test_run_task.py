"""madness-run-task and the pipeline step retargeted to MADNESS from config/."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lsst.meas.extensions.madness.afw.table import SourceCatalog
from lsst.meas.extensions.madness.deblendCoaddSources import (
    DeblendCoaddSourcesMultiConfig,
    DeblendCoaddSourcesMultiTask,
    overridePath,
)
from lsst.meas.extensions.madness.runTask import main
from lsst.meas.extensions.madness.testing import makeMockMultibandExposure

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

_POSITIONS = np.array([[25, 25], [34, 28], [80, 60]], float)


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, tinyModelDirectory):
    """Exposure and parent catalogue files, and a config file pointing at tiny models."""
    directory = tmp_path_factory.mktemp("run-task")
    mock = makeMockMultibandExposure(shape=(100, 100), nGalaxies=3, seed=3, positions=_POSITIONS, hlrRange=(0.3, 0.6))
    mock.mExposure.writeFits(directory / "exposure.fits")
    mock.catalog.writeFits(directory / "parents.fits", bbox=mock.mExposure.getBBox())
    (directory / "config.py").write_text(
        f"config.modelDir = {str(tinyModelDirectory)!r}\nconfig.maxIter = 5\nconfig.minIter = 2\n")
    return directory, mock


def test_run_task_writes_the_catalogue_config_metadata_and_plots(inputs, capsys, device):
    directory, _mock = inputs
    output = directory / "out"
    status = main(["--exposure", str(directory / "exposure.fits"), "--catalog", str(directory / "parents.fits"),
                   "--output", str(output), "--config", str(directory / "config.py"), "--device", device,
                   "--plot", "1", "--no-progress"])
    assert status == 0
    printed = capsys.readouterr().out
    assert "Deblended 2 of 2 parents into 3 children" in printed and "deblendedCatalog.fits" in printed
    catalog = SourceCatalog.readFits(output / "deblendedCatalog.fits")
    assert len(catalog) == 2 + 3 and (catalog["parent"][2:] > 0).all()
    assert all(child.getFootprint().isHeavy() for child in catalog[2:])
    config = (output / "config.py").read_text()
    assert "config.maxIter = 5" in config and "fallback" in config
    metadata = json.loads((output / "metadata.json").read_text())
    assert metadata["counts"]["nChildren"] == 3 and metadata["resolvedDevice"] == device
    assert len(metadata["models"]["cardSha256"]) == 64 and metadata["versions"]["torch"] == torch.__version__
    assert metadata["flags"]["parents"]["deblend_failed"] == 0
    (plot,) = metadata["outputs"]["plots"]
    assert (output / plot).stat().st_size > 10_000
    # The model data: every deblended parent, each child drawn again from the file alone.
    from lsst.meas.extensions.madness.deblend.blendModel import ModelData

    assert metadata["outputs"]["modelData"] == "modelData.fits" and "modelData.fits" in printed
    modelData = ModelData.readFits(output / "modelData.fits")
    assert set(modelData.blends) == set(catalog["id"][:2])
    for child in catalog[2:]:
        drawn = modelData.renderChild(child.getParent(), child.get("deblend_peakId"))
        assert drawn.shape[0] == len(modelData.bands) and drawn.sum() > 0
        assert modelData.childIds[child.getParent()][modelData.childIndex(child.getParent(),
                                                                          child.get("deblend_peakId"))] == child.getId()
    # The written config reproduces the run's settings.
    from lsst.meas.extensions.madness.deblend import MadnessDeblendConfig

    reloaded = MadnessDeblendConfig()
    reloaded.load(str(output / "config.py"))
    assert reloaded.maxIter == 5 and reloaded.device == device


def test_bad_input_exits_2_with_the_file_named(inputs, tmp_path, capsys):
    directory, _ = inputs
    missing = tmp_path / "nope.fits"
    status = main(["--exposure", str(missing), "--catalog", str(directory / "parents.fits"),
                   "--output", str(tmp_path / "o")])
    assert status == 2 and str(missing) in capsys.readouterr().err
    broken = tmp_path / "broken.py"
    broken.write_text("config.noSuchField = 3\n")
    status = main(["--exposure", str(directory / "exposure.fits"), "--catalog", str(directory / "parents.fits"),
                   "--output", str(tmp_path / "o"), "--config", str(broken)])
    assert status == 2 and "noSuchField" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit:
        main(["--exposure", str(directory / "exposure.fits")])
    assert exit.value.code == 2


def test_failed_parents_exit_1(inputs, tmp_path, monkeypatch, capsys):
    from lsst.meas.extensions.madness.deblend import fit as fitModule

    def broken(models, blends, **kwargs):
        raise RuntimeError("simulated core failure")

    monkeypatch.setattr(fitModule, "fitBlends", broken)
    directory, _ = inputs
    config = tmp_path / "config.py"
    config.write_text((directory / "config.py").read_text() + "config.fallbackOnFailure = False\n")
    status = main(["--exposure", str(directory / "exposure.fits"), "--catalog", str(directory / "parents.fits"),
                   "--output", str(tmp_path / "o"), "--config", str(config), "--no-progress"])
    assert status == 1
    assert "2 parents failed (RuntimeError)" in capsys.readouterr().err
    catalog = SourceCatalog.readFits(tmp_path / "o" / "deblendedCatalog.fits")
    assert list(catalog["deblend_failed"]) == [True, True] and list(catalog["deblend_error"]) == ["RuntimeError"] * 2


def test_several_exposures_resume_and_interrupted_runs_look_incomplete(inputs, tmp_path, monkeypatch, capsys, device):
    import shutil

    from lsst.meas.extensions.madness import runTask as runTaskModule

    directory, _ = inputs
    exposures, catalogs = [], []
    for name in ("patchA", "patchB", "patchC"):
        shutil.copy(directory / "exposure.fits", tmp_path / f"{name}.fits")
        exposures.append(str(tmp_path / f"{name}.fits"))
        catalogs.append(str(directory / "parents.fits"))
    output = tmp_path / "out"
    common = ["--output", str(output), "--config", str(directory / "config.py"), "--device", device, "--no-progress"]
    # patchB is interrupted while its catalogue is written: no file of it may look complete.
    original = runTaskModule.SourceCatalog.writeFits

    def killedWhileWriting(self, path, bbox=None):
        if "patchB" in str(path):
            from lsst.meas.extensions.madness.io.atomic import atomicPath

            with atomicPath(path) as temporary:
                Path(temporary).write_bytes(b"SIMPLE  =                    T" + b" " * 100)
                raise KeyboardInterrupt("simulated kill")
        return original(self, path, bbox=bbox)

    monkeypatch.setattr(runTaskModule.SourceCatalog, "writeFits", killedWhileWriting)
    with pytest.raises(KeyboardInterrupt):
        main(["--exposure", *exposures, "--catalog", *catalogs, *common])
    assert (output / "patchA" / "metadata.json").is_file()
    assert not (output / "patchB").exists() or not any((output / "patchB").iterdir())  # no partial file left
    assert not (output / "patchC").exists()
    monkeypatch.setattr(runTaskModule.SourceCatalog, "writeFits", original)
    before = (output / "patchA" / "metadata.json").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["--exposure", *exposures, "--catalog", *catalogs, *common, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert "patchA: complete (metadata.json), skipped (--resume)" in printed.replace(str(output) + "/", "")
    assert (output / "patchA" / "metadata.json").stat().st_mtime_ns == before
    for name in ("patchB", "patchC"):
        assert len(SourceCatalog.readFits(output / name / "deblendedCatalog.fits")) == 5
        assert json.loads((output / name / "metadata.json").read_text())["invariantViolations"] == []
    # Without --resume a rerun removes the completion marker once it has checked its inputs, before it
    # deblends: one interrupted while reading them leaves the complete output as it was, one interrupted
    # while deblending leaves it incomplete.
    single = ["--exposure", exposures[0], "--catalog", catalogs[0], "--output", str(output / "patchA"), *common[2:]]
    original = runTaskModule._read
    monkeypatch.setattr(runTaskModule, "_read", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        main(single)
    assert (output / "patchA" / "metadata.json").stat().st_mtime_ns == before
    monkeypatch.setattr(runTaskModule, "_read", original)
    monkeypatch.setattr(runTaskModule, "_deblend", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        main(single)
    assert not (output / "patchA" / "metadata.json").exists()


def test_several_exposures_need_one_catalogue_each(inputs, capsys):
    directory, _ = inputs
    with pytest.raises(SystemExit) as exit_:
        main(["--exposure", str(directory / "exposure.fits"), str(directory / "exposure.fits"),
              "--catalog", str(directory / "parents.fits"), "--output", str(directory / "x")])
    assert exit_.value.code == 2 and "2 exposures but 1 catalogues" in capsys.readouterr().err


def test_pipeline_step_retargeted_from_the_config_directory(inputs, tinyModelDirectory):
    _directory, mock = inputs
    assert overridePath() == Path(__file__).resolve().parents[1] / "config" / "deblendCoaddSourcesMulti.py"
    config = DeblendCoaddSourcesMultiConfig()
    assert config.multibandDeblend.target.__name__ == "ScarletDeblendTask"
    config.load(str(overridePath()))
    config.multibandDeblend.modelDir = str(tinyModelDirectory)
    config.multibandDeblend.maxIter, config.multibandDeblend.minIter = 5, 2
    task = DeblendCoaddSourcesMultiTask(schema=mock.catalog.schema, config=config)
    assert type(task.multibandDeblend).__name__ == "MadnessDeblendTask"
    assert task.multibandDeblend.getFullName() == "deblendCoaddSourcesMulti.multibandDeblend"
    coadds = [mock.mExposure[band] for band in mock.mExposure.bands]
    result = task.runExposures(coadds, mock.mExposure.bands, mock.catalog)
    catalog = result.deblendedCatalog
    assert len(catalog) == 5 and not catalog["deblend_fallback"].any()
    assert "madness_logPrior" in task.schema and "madness_logPrior" not in mock.catalog.schema
    assert set(result.modelData.blends) == set(mock.catalog["id"])


def _stripCalibration(path: Path, out: Path) -> Path:
    from astropy.io import fits

    with fits.open(path) as hdus:
        hdus = fits.HDUList([hdu.copy() for hdu in hdus])
    for key in ("BUNIT", "MAGZERO"):
        hdus[0].header.remove(key, ignore_missing=True)
    hdus.writeto(out)
    return out


def test_an_exposure_without_calibration_exits_2_unless_magzero_gives_it(inputs, tmp_path, capsys, device):
    directory, mock = inputs
    bare = _stripCalibration(directory / "exposure.fits", tmp_path / "bare.fits")
    common = ["--catalog", str(directory / "parents.fits"), "--config", str(directory / "config.py"),
              "--device", device, "--no-progress"]
    assert main(["--exposure", str(bare), "--output", str(tmp_path / "refused"), *common]) == 2
    error = capsys.readouterr().err
    assert f"{bare}[PRIMARY]: no photometric calibration" in error and "BUNIT" in error and "MAGZERO" in error
    assert not (tmp_path / "refused" / "metadata.json").exists()
    assert main(["--exposure", str(bare), "--output", str(tmp_path / "o"), "--magzero", "27", "28", *common]) == 2
    assert "gives 2 zero points for 6 band(s)" in capsys.readouterr().err
    zeroPoints = [calib.instFluxToMagnitude(1.0) for calib in mock.mExposure.getPhotoCalibs()]
    assert main(["--exposure", str(bare), "--output", str(tmp_path / "o"), "--magzero",
                 *map(repr, zeroPoints), *common]) == 0
    metadata = json.loads((tmp_path / "o" / "metadata.json").read_text())
    expected = {band: calib.getCalibrationMean() for band, calib in zip(mock.mExposure.bands,
                                                                        mock.mExposure.getPhotoCalibs())}
    assert metadata["inputs"]["nanojanskyPerImageUnit"] == pytest.approx(expected, rel=1e-12)
    # A header that states its calibration wins, and a --magzero that contradicts it is refused.
    assert main(["--exposure", str(directory / "exposure.fits"), "--output", str(tmp_path / "c"),
                 "--magzero", "27", *common]) == 2
    assert "disagrees with it" in capsys.readouterr().err


def test_nanojansky_and_counts_with_magzero_give_the_same_children(tmp_path, device):
    """The same field in nJy (BUNIT) and in counts of zero point 27 (MAGZERO), deblended with the shipped
    models: same children, fluxes in nJy, heavy footprints in each file's own units."""
    from lsst.meas.extensions.madness.afw import PhotoCalib

    mock = makeMockMultibandExposure(shape=(100, 100), nGalaxies=3, seed=3, positions=_POSITIONS,
                                     hlrRange=(0.3, 0.6), magZero=27.0)
    counts = mock.mExposure
    nJyPerCount = counts["r"].getPhotoCalib().getCalibrationMean()
    assert nJyPerCount == pytest.approx(10 ** (-0.4 * (27.0 - 31.4000656)), rel=1e-6)
    calibrated = counts.clone()
    calibrated.image.array[:] = counts.image.array * np.float32(nJyPerCount)
    calibrated.variance.array[:] = counts.variance.array * np.float32(nJyPerCount**2)
    calibrated.setAllPhotoCalibs([PhotoCalib(1.0)] * len(counts.bands))
    counts.writeFits(tmp_path / "counts.fits")
    calibrated.writeFits(tmp_path / "nJy.fits")
    mock.catalog.writeFits(tmp_path / "parents.fits", bbox=counts.getBBox())
    (tmp_path / "config.py").write_text("config.maxIter = 60\nconfig.minIter = 20\n")
    catalogs = {}
    for name in ("counts", "nJy"):
        assert main(["--exposure", str(tmp_path / f"{name}.fits"), "--catalog", str(tmp_path / "parents.fits"),
                     "--output", str(tmp_path / name), "--config", str(tmp_path / "config.py"), "--device", device,
                     "--no-progress"]) == 0
        catalogs[name] = SourceCatalog.readFits(tmp_path / name / "deblendedCatalog.fits")
    fromCounts, fromNJy = catalogs["counts"], catalogs["nJy"]
    assert len(fromCounts) == len(fromNJy) == 5
    assert fromNJy.schema.find("madness_flux_r").field.units == "nJy"
    assert list(fromCounts["deblend_iterations"]) == list(fromNJy["deblend_iterations"])
    assert (fromCounts["madness_flux_r"][2:] > 1000).all()  # nJy: r ~ 23-25 mag galaxies
    for band in counts.bands:
        column = f"madness_flux_{band}"
        np.testing.assert_allclose(fromNJy[column][2:], fromCounts[column][2:], rtol=1e-4,
                                   atol=1e-4 * np.abs(fromCounts[column][2:]).max())  # the shipped models draw no u
    for a, b in zip(fromCounts[2:], fromNJy[2:]):
        assert a.getFootprint().getSpans() == b.getFootprint().getSpans()
        pixels = a.getFootprint().getImageArray()
        np.testing.assert_allclose(b.getFootprint().getImageArray() / nJyPerCount, pixels, rtol=1e-4,
                                   atol=1e-4 * np.abs(pixels).max())


def test_children_and_parents_get_sky_coordinates_of_the_wcs(tmp_path, tinyModelDirectory, device):
    """A simulated field (written with a WCS): every child's coord_ra/coord_dec is its peak's position through
    the file's WCS as astropy reads it, every parent's its footprint's centroid."""
    from astropy.io import fits
    from astropy.wcs import WCS

    from lsst.meas.extensions.madness.sim import SimulationConfig, TestFields, generatePopulation
    from lsst.meas.extensions.madness.sim.inputs import writeFieldInputs

    config = SimulationConfig(fieldSize=81, fieldInnerSize=50, fieldGalaxies=(4, 4))
    fields = TestFields(generatePopulation(60, seed=5), config=config)
    files = writeFieldInputs(fields.make(0), fields, tmp_path / "inputs", "field", peaks="truth")
    (tmp_path / "config.py").write_text(
        f"config.modelDir = {str(tinyModelDirectory)!r}\nconfig.maxIter = 3\nconfig.minIter = 1\n")
    assert main(["--exposure", str(files.exposure), "--catalog", str(files.parents), "--output", str(tmp_path / "o"),
                 "--config", str(tmp_path / "config.py"), "--device", device, "--no-progress"]) == 0
    catalog = SourceCatalog.readFits(tmp_path / "o" / "deblendedCatalog.fits")
    with fits.open(files.exposure) as hdus:
        header = hdus["IMAGE"].header
        x0, y0 = -header.get("LTV1", 0), -header.get("LTV2", 0)
        astropyWcs = WCS(header, naxis=2)
    assert astropyWcs.has_celestial and astropyWcs.wcs.ctype[0] == "RA---TAN"
    isParent = catalog["parent"] == 0
    positions = np.array([tuple(r.getFootprint().getSpans().computeCentroid() if parent
                                else r.getFootprint().getPeaks()[0].getCentroid())
                          for r, parent in zip(catalog, isParent)])
    assert isParent.sum() == files.nParents and (~isParent).sum() == files.nPeaks
    ra, dec = astropyWcs.all_pix2world(positions[:, 0] - x0, positions[:, 1] - y0, 0)
    assert np.isfinite(catalog["coord_ra"]).all() and np.isfinite(catalog["coord_dec"]).all()
    separation = np.hypot((np.rad2deg(catalog["coord_ra"]) - ra) * np.cos(np.deg2rad(dec)),
                          np.rad2deg(catalog["coord_dec"]) - dec) * 3600
    assert separation.max() < 1e-6, separation  # arcsec
    assert catalog.schema.find("coord_ra").field.units == "rad"
    # The field is centred on SIMULATED_FIELD_CENTRE with LSST's pixels.
    assert abs(ra.mean() - 150.1) < 81 * 0.2 / 3600 and abs(dec.mean() - 2.2) < 81 * 0.2 / 3600
    assert np.hypot(*astropyWcs.pixel_scale_matrix[:, 0]) * 3600 == pytest.approx(0.2)


# --------------------------------------------------------------------------------------------
# The output directory: one run at a time, its old content removed only after the inputs are checked.


def _command(directory: Path, output: Path, *extra: str) -> list[str]:
    return ["--exposure", str(directory / "exposure.fits"), "--catalog", str(directory / "parents.fits"),
            "--output", str(output), "--config", str(directory / "config.py"), "--device", "cpu", "--no-progress",
            *extra]


def _python(code: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], text=True, **kwargs)


def test_a_second_run_on_a_locked_output_exits_2_naming_the_holder(inputs, tmp_path, capsys, monkeypatch):
    from lsst.meas.extensions.madness.deblend import MadnessDeblendTask
    from lsst.meas.extensions.madness.io.atomic import LOCK_NAME, lockDirectory

    directory, _ = inputs
    output = tmp_path / "out"
    output.mkdir()
    calls = []
    monkeypatch.setattr(MadnessDeblendTask, "modelBlends", lambda self, *a: calls.append(a))
    # Another process holds the directory: the second run is refused, naming its PID, and deblends nothing.
    holder = _python(f"import sys\nfrom lsst.meas.extensions.madness.io.atomic import lockDirectory\n"
                     f"with lockDirectory({str(output)!r}):\n    print('held', flush=True)\n    sys.stdin.read()\n",
                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert holder.stdout.readline().strip() == "held"
        capsys.readouterr()
        assert main(_command(directory, output)) == 2
        err = capsys.readouterr().err
        assert f"PID {holder.pid} on host {socket.gethostname()!r}" in err and str(output / LOCK_NAME) in err, err
    finally:
        holder.communicate("", timeout=60)
    assert holder.returncode == 0 and not (output / LOCK_NAME).exists() and calls == []
    # So is a run started while this process holds it.
    with lockDirectory(output):
        assert main(_command(directory, output)) == 2
        assert f"PID {os.getpid()}" in capsys.readouterr().err
    assert calls == []


def test_a_killed_run_leaves_a_lock_and_a_partial_file_that_the_next_run_clears(inputs, tmp_path, capsys):
    from lsst.meas.extensions.madness.io.atomic import LOCK_NAME

    directory, _ = inputs
    output = tmp_path / "out"
    output.mkdir()
    # A run killed (SIGKILL) while it writes its catalogue: its lock file and its temporary file stay.
    killed = _python(f"import os, signal\nfrom pathlib import Path\n"
                     f"from lsst.meas.extensions.madness.io.atomic import atomicPath, lockDirectory\n"
                     f"with lockDirectory({str(output)!r}):\n"
                     f"    with atomicPath(Path({str(output)!r}) / 'deblendedCatalog.fits') as temporary:\n"
                     f"        temporary.write_bytes(b'SIMPLE  =')\n"
                     f"        os.kill(os.getpid(), signal.SIGKILL)\n")
    killed.wait(timeout=120)
    assert killed.returncode == -signal.SIGKILL
    partial = output / f".deblendedCatalog.partial-{killed.pid}.fits"
    assert partial.is_file() and json.loads((output / LOCK_NAME).read_text())["pid"] == killed.pid
    # A temporary file of a process still running (this one) is not stale, and stays.
    live = output / f".notes.partial-{os.getpid()}.txt"
    live.write_text("being written")
    capsys.readouterr()
    assert main(_command(directory, output)) == 0
    err = capsys.readouterr().err
    assert f"taking over the lock of a run that ended without removing it (PID {killed.pid}" in err, err
    assert f"removed {partial}" in err and not partial.exists() and live.exists()
    assert not (output / LOCK_NAME).exists() and (output / "metadata.json").is_file()


def test_a_lock_of_another_host_is_not_taken_over(inputs, tmp_path, capsys):
    from lsst.meas.extensions.madness.io.atomic import LOCK_NAME

    directory, _ = inputs
    output = tmp_path / "out"
    output.mkdir()
    (output / LOCK_NAME).write_text(json.dumps({"pid": 1234, "host": "elsewhere.example", "started": "then"}))
    assert main(_command(directory, output)) == 2
    err = capsys.readouterr().err
    assert "PID 1234 on host 'elsewhere.example'" in err and f"remove {output / LOCK_NAME}" in err, err
    assert (output / LOCK_NAME).exists() and not (output / "metadata.json").exists()


def test_a_rerun_with_bad_arguments_keeps_the_complete_output(inputs, tmp_path, capsys):
    directory, _ = inputs
    output = tmp_path / "out"
    assert main(_command(directory, output, "--plot", "1")) == 0
    before = {p.name: p.stat().st_mtime_ns for p in output.iterdir()}
    mistakes = (["--exposure", str(tmp_path / "typo.fits")], ["--config", str(tmp_path / "no-such-config.py")],
                ["--deblender", "scarlet"])  # --device is MADNESS's only
    for mistake in mistakes:
        command = _command(directory, output)
        if mistake[0] in command:
            command[command.index(mistake[0]) + 1] = mistake[1]
        else:
            command += mistake
        capsys.readouterr()
        assert main(command) == 2, mistake
        assert {p.name: p.stat().st_mtime_ns for p in output.iterdir()} == before, mistake
    assert json.loads((output / "metadata.json").read_text())["outputs"]["plots"]


def test_a_rerun_without_plots_removes_the_plots_of_the_previous_run(inputs, tmp_path):
    directory, _ = inputs
    output = tmp_path / "out"
    assert main(_command(directory, output, "--plot", "2")) == 0
    assert sorted(p.name for p in (output / "plots").iterdir()) == ["parent_1.png", "parent_2.png"]
    assert main(_command(directory, output, "--plot", "1")) == 0
    assert [p.name for p in (output / "plots").iterdir()] == [
        Path(json.loads((output / "metadata.json").read_text())["outputs"]["plots"][0]).name]
    notes = output / "plots" / "notes.txt"  # not a file of this command's: kept
    notes.write_text("mine")
    assert main(_command(directory, output)) == 0
    assert [p.name for p in (output / "plots").iterdir()] == ["notes.txt"]
    notes.unlink()
    assert main(_command(directory, output)) == 0
    assert not (output / "plots").exists()
    assert json.loads((output / "metadata.json").read_text())["outputs"]["plots"] == []


# --------------------------------------------------------------------------------------------
# The console: a summary that names every outcome, and log lines with a logger name and a level.


def test_the_summary_counts_unconverged_and_fallback_parents(inputs, tmp_path, capsys):
    directory, _ = inputs
    config = tmp_path / "config.py"
    # One step: no parent can meet the stopping rule, so every one stops at maxIter.
    config.write_text((directory / "config.py").read_text() + "config.maxIter = 1\nconfig.minIter = 1\n")
    command = _command(directory, tmp_path / "out")
    command[command.index("--config") + 1] = str(config)
    assert main(command) == 0
    printed = capsys.readouterr().out
    counts = json.loads((tmp_path / "out" / "metadata.json").read_text())["counts"]
    assert counts["nNotConverged"] == 2 and counts["nFailed"] == 0
    assert (f"Deblended 2 of 2 parents into 3 children (0 skipped, 0 failed, 2 not converged, "
            f"{counts['nFallback']} by the fallback)") in printed, printed
    assert "2 parents stopped at maxIter before converging" in printed, printed


def test_the_summary_says_so_when_every_parent_converged(inputs, capsys):
    from lsst.meas.extensions.madness.runTask import _summary

    counts = {"nDeblended": 2, "nParents": 2, "nChildren": 3, "nSkipped": 0, "nFailed": 0, "nNotConverged": 0,
              "nFallback": 1}
    assert _summary(counts).endswith("(0 skipped, 0 failed, 0 not converged, 1 by the fallback)")


def test_log_lines_carry_logger_name_and_level_and_log_level_filters_them(inputs, tmp_path, capsys, monkeypatch):
    import logging

    from lsst.meas.extensions.madness import runTask as runTaskModule

    directory, _ = inputs
    original = runTaskModule._read

    def readWithDebugLine(*args):
        logging.getLogger("lsst.madnessDeblend").debug("simulated debug line")
        return original(*args)

    monkeypatch.setattr(runTaskModule, "_read", readWithDebugLine)
    root, package = logging.getLogger(), logging.getLogger("lsst")
    before = (list(root.handlers), root.level, package.level)
    assert main(_command(directory, tmp_path / "info")) == 0
    err = capsys.readouterr().err
    # The task's summary, as pipetask writes log lines: logger name, level, message.
    assert "lsst.madnessDeblend INFO: deblended 2 of 2 parents into 3 children" in err, err
    assert "simulated debug line" not in err
    assert main(_command(directory, tmp_path / "debug", "--log-level", "debug")) == 0
    err = capsys.readouterr().err
    assert "lsst.madnessDeblend DEBUG: simulated debug line" in err and "lsst.madnessDeblend INFO: " in err, err
    assert main(_command(directory, tmp_path / "warning", "--log-level", "WARNING")) == 0
    captured = capsys.readouterr()
    assert " INFO: " not in captured.err and " DEBUG: " not in captured.err, captured.err
    assert "Deblended 2 of 2 parents" in captured.out  # the command's own summary is not a log line
    # The command leaves the logging of its caller as it found it.
    assert (list(root.handlers), root.level, package.level) == before
    with pytest.raises(SystemExit) as exit_:
        main(_command(directory, tmp_path / "bad", "--log-level", "LOUD"))
    assert exit_.value.code == 2 and "--log-level" in capsys.readouterr().err


def test_warnings_become_log_lines_that_log_level_error_hides(inputs, tmp_path, capsys, monkeypatch):
    import warnings

    from lsst.meas.extensions.madness import runTask as runTaskModule

    directory, _ = inputs
    original = runTaskModule._read

    def readWithWarning(*args):
        warnings.warn("simulated warning of a library", UserWarning, stacklevel=1)
        return original(*args)

    monkeypatch.setattr(runTaskModule, "_read", readWithWarning)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(_command(directory, tmp_path / "shown")) == 0
        assert "py.warnings WARNING: UserWarning: simulated warning of a library" in capsys.readouterr().err
        assert main(_command(directory, tmp_path / "hidden", "--log-level", "ERROR")) == 0
        assert "simulated warning" not in capsys.readouterr().err


def test_run_task_refuses_a_bad_thread_count_and_records_the_one_used(inputs, tmp_path, capsys):
    directory, _ = inputs
    with pytest.raises(SystemExit) as exit:
        main(_command(directory, tmp_path / "bad", "--threads", "0"))
    assert exit.value.code == 2 and "--threads" in capsys.readouterr().err
    assert not (tmp_path / "bad").exists()
    before = torch.get_num_threads()
    assert main(_command(directory, tmp_path / "out", "--threads", "1")) == 0
    assert "(1 CPU thread)" in capsys.readouterr().out
    assert json.loads((tmp_path / "out" / "metadata.json").read_text())["threads"] == 1
    assert torch.get_num_threads() == before
