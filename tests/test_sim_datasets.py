"""Rendering, data sets, shards, streaming, run_task inputs and the madness-sim command."""

from __future__ import annotations

import numpy as np
import pytest
from astropy.table import Table

from lsst.meas.extensions.madness.afw import MultibandExposure
from lsst.meas.extensions.madness.afw.table import SourceCatalog
from lsst.meas.extensions.madness.io.errors import FitsFormatError
from lsst.meas.extensions.madness.sim import (
    LSST_CONDITIONS,
    BlendedSims,
    IsolatedSims,
    SceneRenderer,
    SimulationConfig,
    SimulationShards,
    TestFields,
    deriveCatsimColumns,
    readFieldInputs,
    readFieldTruth,
    selectSplit,
    splitOf,
    writeShards,
    writeTestFieldInputs,
)
from lsst.meas.extensions.madness.sim.cli import main as simMain


def makeCatalog(n: int = 300, seed: int = 0, *, bulgeFraction: float | None = None, agn: bool = False) -> Table:
    """A small valid CatSim-format catalogue (no S/N cut needed by the data sets)."""
    rng = np.random.default_rng(seed)
    aDisk = rng.uniform(0.3, 1.0, n)
    aBulge = rng.uniform(0.1, 0.4, n)
    bulge = rng.uniform(0, 1, n) if bulgeFraction is None else np.full(n, bulgeFraction)
    pa = rng.uniform(0, 180, n)
    rMag = rng.uniform(21.0, 24.5, n)
    table = Table(
        {
            "galtileid": np.arange(1000, 1000 + n, dtype=np.int64),
            "ra": rng.uniform(0, 1, n),
            "dec": rng.uniform(0, 1, n),
            "redshift": rng.uniform(0.1, 2.0, n),
            "fluxnorm_bulge": bulge,
            "fluxnorm_disk": 1.0 - bulge,
            "fluxnorm_agn": np.where(rng.uniform(size=n) < 0.2, 0.05, 0.0) if agn else np.zeros(n),
            "a_b": np.where(bulge > 0, aBulge, 0.0),
            "b_b": np.where(bulge > 0, aBulge * rng.uniform(0.5, 1, n), 0.0),
            "a_d": np.where(bulge < 1, aDisk, 0.0),
            "b_d": np.where(bulge < 1, aDisk * rng.uniform(0.2, 1, n), 0.0),
            "pa_bulge": pa,
            "pa_disk": pa,
            **{f"{b}_ab": rMag + d for b, d in zip("ugrizy", (1.2, 0.5, 0.0, -0.3, -0.4, -0.5))},
        }
    )
    return deriveCatsimColumns(table)


@pytest.fixture(scope="module")
def catalog() -> Table:
    return makeCatalog()


def assertScenesEqual(a, b):
    for name in ("image", "variance", "noiseless", "positions", "blended", "isolated", "isolatedNoisy"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    assert list(a.truth["galtileid"]) == list(b.truth["galtileid"])


# --- rendering -------------------------------------------------------------------------------

def test_flux_matches_catalogue_within_truncation():
    """Disk galaxies of hlr <= 1" keep >= 99.5 % of their catalogue flux on the 97-px render
    stamp (the Kolmogorov wing and the exponential tail beyond 48 px hold the rest) and
    >= 98 % on a 45-px stamp; no stamp ever has more flux than the catalogue."""
    galaxies = makeCatalog(20, seed=3, bulgeFraction=0.0)
    renderer = SceneRenderer()
    for row in galaxies:
        stamp = renderer.drawGalaxy(row, 50.3, 49.8)
        catalogue = np.array([LSST_CONDITIONS.electrons(b, row[f"{b}_ab"]) for b in "ugrizy"])
        ratio = stamp.array.sum(axis=(1, 2), dtype=np.float64) / catalogue
        assert np.all(ratio > 0.995) and np.all(ratio < 1.0005), (row["hlr_disk"], ratio)
        central = stamp.cutout(50 - 22, 50 - 22, 45, 45).sum(axis=(1, 2), dtype=np.float64) / catalogue
        assert np.all(central > 0.98) and np.all(central <= ratio + 1e-6), (row["hlr_disk"], central)


def test_bulge_disk_and_agn_flux_split():
    """A bulge + disk + AGN galaxy: the total flux is kept, and the AGN puts a point source
    at the centre (more central flux than without it)."""
    galaxies = makeCatalog(2, seed=4, bulgeFraction=0.3)
    row = dict(zip(galaxies.colnames, galaxies[0]))
    renderer = SceneRenderer(bands=["r"])
    plain = renderer.drawGalaxy(row, 0.0, 0.0).array[0]
    withAgn = renderer.drawGalaxy(dict(row, agn_fraction=0.5), 0.0, 0.0).array[0]
    assert withAgn.sum() == pytest.approx(plain.sum(), rel=2e-3)
    centre = plain.shape[0] // 2
    assert withAgn[centre, centre] > 1.5 * plain[centre, centre]


def test_noise_matches_variance_plane(catalog):
    """Pixels of (noisy - noiseless) have the variance of the variance plane within 2 %."""
    scene = TestFields(catalog, seed=7).make(0)
    residual = scene.image.astype(np.float64) - scene.noiseless
    ratio = (residual**2).mean(axis=(1, 2)) / scene.variance.mean(axis=(1, 2), dtype=np.float64)
    assert np.all(np.abs(ratio - 1) < 0.02), ratio
    # Galaxy pixels too: the variance there includes the galaxy's own Poisson noise.
    bright = scene.noiseless > 5 * np.sqrt(scene.variance - scene.noiseless)
    pulls = residual[bright] / np.sqrt(scene.variance[bright])
    assert bright.sum() > 500 and abs(pulls.std() - 1) < 0.05
    # The isolated noisy stamps carry the field's noise, rescaled to the galaxy alone.
    sky = SceneRenderer().sky[None, :, None, None]
    noise = scene.isolatedNoisy - scene.isolated
    expected = np.maximum(scene.isolated, 0) + sky
    assert abs((noise**2 / expected).mean() - 1) < 0.02


# --- determinism and splits ----------------------------------------------------------------

@pytest.mark.parametrize("cls", [IsolatedSims, BlendedSims, TestFields])
def test_same_seed_same_data(catalog, cls):
    first = cls(catalog, seed=11, bands=["g", "r", "i"])
    again = cls(catalog, seed=11, bands=["g", "r", "i"])
    for k in (0, 3):
        assertScenesEqual(first[k], again[k])
    other = cls(catalog, seed=12, bands=["g", "r", "i"])[0]
    assert not np.array_equal(first[0].image, other.image)


def test_splits_are_disjoint_and_cover_the_catalogue(catalog):
    ids = {split: set(selectSplit(catalog, split)["galtileid"]) for split in ("train", "validation", "test")}
    assert not (ids["train"] & ids["validation"] or ids["train"] & ids["test"] or ids["validation"] & ids["test"])
    assert set().union(*ids.values()) == set(catalog["galtileid"])
    # The fractions follow the paper's 150k / 50k / 117k.
    names = splitOf(np.arange(200_000))
    assert np.mean(names == "train") == pytest.approx(150 / 317, abs=0.005)
    # Scenes only ever show galaxies of their split.
    for cls, split in ((IsolatedSims, "validation"), (BlendedSims, "train"), (TestFields, "test")):
        data = cls(catalog, split, seed=1, bands=["r"])
        shown = {int(g) for k in range(4) for g in data[k].truth["galtileid"]}
        assert shown <= ids[split], cls.__name__
    with pytest.raises(ValueError, match="unknown split"):
        IsolatedSims(catalog, "training")


def test_isolated_sims_epoch_shows_each_galaxy_once(catalog):
    sims = IsolatedSims(catalog, "train", seed=2, bands=["r"])
    n = len(sims.galaxies)
    shown = [int(sims[k].truth["galtileid"][0]) for k in range(n)]
    assert sorted(shown) == sorted(int(i) for i in sims.galaxies["galtileid"])
    scene = sims[0]
    assert scene.blended.shape == (1, 1, 45, 45)
    # Centred within the central pixel.
    assert np.all(np.abs(scene.positions - 22) <= 0.5)


def test_blended_sims_geometry(catalog):
    sims = BlendedSims(catalog, seed=5, bands=["r"])
    counts = []
    for k in range(30):
        scene = sims[k]
        counts.append(len(scene))
        centre = sims.sceneSize // 2
        assert np.all(np.abs(scene.positions - centre) <= 10)
        # Each stamp is centred on its galaxy; the stamp minus all galaxies is pure noise.
        for g, (x, _y) in enumerate(scene.positions):
            assert scene.truth["stamp_x0"][g] == int(np.floor(x + 0.5)) - 22
        allGalaxies = np.stack(list(scene.isolated)).sum(axis=0)
        if len(scene) == 1:
            np.testing.assert_allclose(allGalaxies, scene.isolated[0])
    assert set(counts) == {1, 2, 3}


def test_test_fields_geometry(catalog):
    fields = TestFields(catalog, seed=9)
    for k in range(6):
        scene = fields[k]
        assert scene.image.shape == (6, 205, 205)
        assert 12 <= len(scene) <= 20
        # Centres in the inner 150x150 pixels: pixels 27..176.
        pixels = np.floor(scene.positions + 0.5).astype(int)
        assert pixels.min() >= 27 and pixels.max() <= 176
        assert len({tuple(p) for p in pixels}) == len(scene)
        assert scene.isolated.shape == (len(scene), 6, 45, 45)
        np.testing.assert_allclose(
            scene.noiseless.sum(), np.sum([s.sum() for s in scene.isolated]), rtol=0.05
        )


def test_config_validation():
    with pytest.raises(ValueError, match="stampSize"):
        SimulationConfig(stampSize=44)
    with pytest.raises(ValueError, match="fieldGalaxies"):
        SimulationConfig(fieldGalaxies=(5, 2))
    with pytest.raises(ValueError):
        SimulationConfig(unknown=1)


# --- shards and streaming ------------------------------------------------------------------

def test_shards_round_trip_and_worker_independence(catalog, tmp_path):
    sims = BlendedSims(catalog, seed=3, bands=["g", "r"])
    one = writeShards(sims, tmp_path / "one", 7, shardSize=3, workers=1, progress=False)
    two = writeShards(sims, tmp_path / "two", 7, shardSize=3, workers=2, progress=False)
    assert [p.name for p in one.paths] == ["blended-train-00000.h5", "blended-train-00001.h5", "blended-train-00002.h5"]
    assert one.nGalaxies == two.nGalaxies == sum(len(sims[k]) for k in range(7))
    a, b = SimulationShards(tmp_path / "one"), SimulationShards(tmp_path / "two")
    assert len(a) == len(b) == one.nGalaxies
    expected = [(k, g) for k in range(7) for g in range(len(sims[k]))]
    for i in (0, len(a) // 2, len(a) - 1):
        k, g = expected[i]
        scene = sims[k]
        np.testing.assert_array_equal(a[i]["blended"], scene.blended[g])
        np.testing.assert_array_equal(b[i]["isolated"], scene.isolated[g])
        assert a[i]["galtileid"] == scene.truth["galtileid"][g] and a[i]["scene"] == k
    assert len(a.truth()) == len(a)


def test_float16_shards(catalog, tmp_path):
    fields = TestFields(catalog, seed=1, bands=["r"])
    summary = writeShards(fields, tmp_path, 2, float16=True, workers=1, progress=False)
    import h5py

    with h5py.File(summary.paths[0]) as h5:
        assert h5["scenes/image"].dtype == np.float16 and h5["scenes/image"].shape == (2, 1, 205, 205)
        assert h5["scenes/image"].attrs["scale"] == 1e4
    shards = SimulationShards(tmp_path, arrays=["isolated"])
    first = fields[0].isolated[0]
    np.testing.assert_allclose(shards[0]["isolated"], first, rtol=1e-3, atol=1e-3 * first.max())


def test_shard_errors(tmp_path, catalog):
    (tmp_path / "bad.h5").write_bytes(b"not hdf5")
    with pytest.raises(ValueError, match=r"bad\.h5"):
        SimulationShards(tmp_path / "bad.h5")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="empty"):
        SimulationShards(tmp_path / "empty")
    writeShards(IsolatedSims(catalog, seed=0, bands=["r"]), tmp_path / "s", 2, workers=1, progress=False)
    with pytest.raises(ValueError, match="no galaxy array"):
        SimulationShards(tmp_path / "s", arrays=["nope"])


def test_stream_over_workers(catalog):
    import torch

    from lsst.meas.extensions.madness.sim import SimulationStream

    sims = IsolatedSims(catalog, seed=4, bands=["r"])
    stream = SimulationStream(sims, stop=8)
    from lsst.meas.extensions.madness.sim.parallel import startMethod

    # Earlier tests may have loaded JAX, whose threads make a plain fork unsafe.
    loader = torch.utils.data.DataLoader(stream, batch_size=4, num_workers=2, multiprocessing_context=startMethod())
    ids = sorted(int(i) for batch in loader for i in batch["galtileid"])
    assert ids == sorted(int(sims[k].truth["galtileid"][0]) for k in range(8))
    batch = next(iter(torch.utils.data.DataLoader(SimulationStream(sims, stop=2), batch_size=2)))
    np.testing.assert_array_equal(batch["blended"][1].numpy(), sims[1].blended[0])


# --- run_task inputs and the command line ----------------------------------------------------

@pytest.mark.parametrize("peaks", ["truth", "detected"])
def test_written_inputs_read_back_and_validate(catalog, tmp_path, peaks):
    fields = TestFields(catalog, seed=2, bands=["g", "r", "i"])
    files = writeTestFieldInputs(fields, tmp_path, 1, peaks=peaks, workers=1, progress=False)[0]
    mExposure, parents, truth = readFieldInputs(tmp_path, "field_00000")
    scene = fields[0]
    np.testing.assert_array_equal(mExposure.image.array, scene.image)
    np.testing.assert_array_equal(mExposure.variance.array, scene.variance)
    assert mExposure.bands == ("g", "r", "i")
    assert len(parents) == files.nParents > 0
    peakRecords = [p for record in parents for p in record.getFootprint().getPeaks()]
    assert len(peakRecords) == files.nPeaks
    if peaks == "truth":
        # Every galaxy is a peak of some parent, at its true position.
        indices = sorted(p.extra["truth_index"] for p in peakRecords if p.extra["truth_index"] >= 0)
        assert indices == list(range(len(scene)))
    assert len(truth.truth) == len(scene) and truth.bands == ("g", "r", "i")
    np.testing.assert_array_equal(truth.isolated, scene.isolated)
    assert truth.header["PEAKS"] == peaks
    if peaks == "truth":
        assert files.nMatched == len(scene) and files.nUnmatchedPeaks == files.nPeaks - len(scene)
    else:
        assert files.nMatched >= 0.75 * len(scene)


def test_truth_reader_errors(tmp_path):
    from astropy.io import fits

    path = tmp_path / "t.fits"
    fits.HDUList([fits.PrimaryHDU()]).writeto(path)
    with pytest.raises(FitsFormatError, match=r"t.fits\[TRUTH\]"):
        readFieldTruth(path)
    with pytest.raises(FitsFormatError, match="no such file"):
        readFieldTruth(tmp_path / "missing.fits")


def test_command_line(catalog, tmp_path, capsys):
    path = tmp_path / "catalog.fits"
    catalog.write(path)
    code = simMain(["isolated", "--catalog", str(path), "--snr-cut", "0", "--scenes", "3", "--bands", "gr",
                    "--workers", "1", "--quiet", "--out", str(tmp_path / "iso")])
    assert code == 0
    out = capsys.readouterr().out
    assert "3 scenes, 3 galaxies" in out and "galaxies/s" in out
    assert len(SimulationShards(tmp_path / "iso")) == 3
    code = simMain(["inputs", "--catalog", str(path), "--snr-cut", "0", "--scenes", "1", "--bands", "r",
                    "--workers", "1", "--quiet", "--out", str(tmp_path / "fields")])
    assert code == 0 and (tmp_path / "fields" / "field_00000_parents.fits").exists()
    MultibandExposure.readFits(tmp_path / "fields" / "field_00000_exposure.fits")
    SourceCatalog.readFits(tmp_path / "fields" / "field_00000_parents.fits")
    # A bad catalogue is reported with the file and column, not a traceback.
    Table({"galtileid": [1]}).write(tmp_path / "bad.fits")
    code = simMain(["blended", "--catalog", str(tmp_path / "bad.fits"), "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2 and "bad.fits[catalog]" in err and "missing CatSim column" in err


def test_command_line_conditions_file(catalog, tmp_path, capsys):
    """Another survey is a conditions file, not new code; a bad one is named."""
    import yaml

    deeper = LSST_CONDITIONS.model_dump(mode="json")
    deeper["name"] = "deeper"
    deeper["bands"]["r"]["exposureTime"] *= 4
    (tmp_path / "deep.yaml").write_text(yaml.safe_dump(deeper))
    catalog.write(tmp_path / "catalog.fits")
    common = ["--catalog", str(tmp_path / "catalog.fits"), "--snr-cut", "0", "--scenes", "1", "--bands", "r",
              "--workers", "1", "--quiet"]
    assert simMain(["isolated", *common, "--conditions", str(tmp_path / "deep.yaml"),
                    "--out", str(tmp_path / "d")]) == 0
    assert simMain(["isolated", *common, "--out", str(tmp_path / "l")]) == 0
    deep, lsst = SimulationShards(tmp_path / "d"), SimulationShards(tmp_path / "l")
    assert deep.description["conditions"]["name"] == "deeper"
    assert deep[0]["isolated"].sum() == pytest.approx(4 * lsst[0]["isolated"].sum(), rel=1e-3)
    (tmp_path / "bad.yaml").write_text("name: x\npixelScale: -1\n")
    assert simMain(["isolated", *common, "--conditions", str(tmp_path / "bad.yaml"), "--out", str(tmp_path / "b")]) == 2
    assert "bad.yaml: not valid survey conditions" in capsys.readouterr().err


def test_command_line_help(capsys):
    with pytest.raises(SystemExit) as exit:
        simMain(["--help"])
    assert exit.value.code == 0
    text = capsys.readouterr().out
    for command in ("isolated", "blended", "fields", "inputs", "population", "examples", "throughput"):
        assert command in text
    with pytest.raises(SystemExit):
        simMain(["inputs", "--help"])
    assert "--peaks" in capsys.readouterr().out


def test_throughput_table(catalog, tmp_path):
    from lsst.meas.extensions.madness.sim.throughput import measureThroughput, throughputMarkdown

    results = measureThroughput(catalog, {"isolated": 3, "fields": 1}, workers=(1,), bands=["r"])
    assert [(r.kind, r.written) for r in results] == [("isolated", False), ("isolated", True),
                                                      ("fields", False), ("fields", True)]
    assert results[0].nGalaxies == 3 and all(r.galaxiesPerSecond > 0 for r in results)
    text = throughputMarkdown(results, "madness-sim throughput")
    assert "| isolated | 1 | in memory | 3 | 3 |" in text and "madness-sim throughput" in text
