"""A CI-sized run of ``madness-bench``: one field per peak setting through all four methods, then the report."""

from __future__ import annotations

import json

import numpy as np
import pytest

from lsst.meas.extensions.madness.benchmark.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")


def test_quick_benchmark_run_resume_and_report(tmp_path, device):
    run = tmp_path / "run"
    assert main(["run", "--out", str(run), "--quick", "--peaks", "truth", "--device", device]) == 0
    lines = (run / "fields-truth.jsonl").read_text().splitlines()
    assert len(lines) == 1
    record = json.loads(lines[0])
    assert set(record["seconds"]) == {"none", "vae", "madness", "scarlet", "fidelity", "template"}
    galaxy = record["galaxies"][0]
    assert 0.5 < galaxy["fidelity"]["cosine"][2] <= 1
    assert len(galaxy["madness"]["deltaF"]) == 6 and "cosine" in galaxy["scarlet"] and "cosine" not in galaxy["none"]
    # A second run without --resume refuses; with it, nothing is evaluated again.
    assert main(["run", "--out", str(run), "--quick", "--peaks", "truth"]) == 2
    assert main(["run", "--out", str(run), "--quick", "--peaks", "truth", "--resume"]) == 0
    assert len((run / "fields-truth.jsonl").read_text().splitlines()) == 1
    doc, static, results = tmp_path / "bench.md", tmp_path / "static", tmp_path / "results.json"
    assert main(["report", str(run), "--doc", str(doc), "--static", str(static), "--results", str(results)]) == 0
    text = doc.read_text()
    assert "| mean \\|δF/F\\|, κ ≤ 5 |" in text and "*paper: mean cosine similarity*" in text
    summary = json.loads(results.read_text())["summaries"]["truth"]
    assert summary["nGalaxies"] == record["nGalaxies"]
    assert 0 < summary["methods"]["madness"]["mean cosine similarity"] <= 1
    assert sorted(p.name for p in static.iterdir()) == ["bench_truth_flux.png", "bench_truth_morphology.png"]


def test_fields_from_another_first_index(tmp_path):
    """``--first-field`` evaluates other fields (for choosing settings); a resume must keep it."""
    run = tmp_path / "run"
    assert main(["run", "--out", str(run), "--fields", "1", "--first-field", "3", "--peaks", "truth",
                 "--methods", "none", "--device", "cpu"]) == 0
    records = [json.loads(line) for line in (run / "fields-truth.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == [3]
    assert json.loads((run / "run.json").read_text())["settings"]["firstField"] == 3
    assert main(["run", "--out", str(run), "--fields", "1", "--peaks", "truth", "--methods", "none",
                 "--resume"]) == 2


def test_model_variants_run_side_by_side(tmp_path, tinyFrameModelDirectory, device):
    """A model-frame model set beside the shipped one, on the same field, with its verdict rows."""
    run = tmp_path / "run"
    assert main(["run", "--out", str(run), "--quick", "--peaks", "truth", "--device", device, "--methods", "madness",
                 "fidelity", "--compare-models", f"frame={tinyFrameModelDirectory}"]) == 0
    record = json.loads((run / "fields-truth.jsonl").read_text().splitlines()[0])
    assert set(record["seconds"]) == {"madness", "fidelity", "madness:frame", "fidelity:frame"}
    galaxy = record["galaxies"][0]
    assert galaxy["madness:frame"]["deltaF"] != galaxy["madness"]["deltaF"]
    doc = tmp_path / "bench.md"
    assert main(["report", str(run), "--doc", str(doc), "--static", str(tmp_path / "static"),
                 "--results", str(tmp_path / "results.json")]) == 0
    text = doc.read_text()
    assert "MADNESS [frame]" in text and "| MADNESS [frame] − MADNESS |" in text
    with pytest.raises(SystemExit, match="LABEL=DIR"):
        main(["run", "--out", str(tmp_path / "bad"), "--quick", "--compare-models", "frame"])


def test_model_set_joins_a_finished_run(tmp_path, tinyFrameModelDirectory, device):
    """Retrained weights join a run: only their methods run, on the fields already done, and the report
    shows them beside the methods that ran first."""
    run = tmp_path / "run"
    base = ["run", "--out", str(run), "--quick", "--peaks", "truth", "--device", device]
    assert main(base + ["--methods", "none", "madness"]) == 0
    first = (run / "fields-truth.jsonl").read_text()
    assert main(base + ["--resume", "--compare-models", f"frame={tinyFrameModelDirectory}"]) == 0
    assert (run / "fields-truth.jsonl").read_text() == first
    added = json.loads((run / "fields-truth+frame.jsonl").read_text().splitlines()[0])
    assert set(added["seconds"]) == {"madness:frame"}
    stored = json.loads((run / "run.json").read_text())
    assert [a["label"] for a in stored["additions"]] == ["frame"]
    assert stored["settings"]["methods"] == ["none", "madness", "madness:frame"]
    # Resuming again evaluates nothing; another directory under the same label is refused.
    assert main(base + ["--resume", "--compare-models", f"frame={tinyFrameModelDirectory}"]) == 0
    assert len((run / "fields-truth+frame.jsonl").read_text().splitlines()) == 1
    assert main(base + ["--resume", "--compare-models", f"frame={tmp_path}"]) == 2
    doc = tmp_path / "bench.md"
    assert main(["report", str(run), "--doc", str(doc), "--static", str(tmp_path / "static"),
                 "--results", str(tmp_path / "results.json")]) == 0
    assert "| MADNESS [frame] − MADNESS |" in doc.read_text()


def test_profile_splits_a_madness_run_into_stages(tmp_path, device):
    from lsst.meas.extensions.madness.benchmark.profile import profileMadness

    result = profileMadness(populationSize=3000, device=device)
    seconds = result["seconds"]
    assert result["galaxies"] >= 12 and result["total"] > 0
    assert seconds["MAP: whole optimisation"] <= seconds["all of fitBlends (encoder, MAP, decoding)"] <= result["total"]
    assert seconds["MAP: backward pass"] > 0 and seconds["blends (canvases, weights, cutouts)"] > 0


def test_throughput_sweeps_batch_sizes_and_fields(tmp_path, device):
    from lsst.meas.extensions.madness.benchmark.throughput import writeThroughput
    from lsst.meas.extensions.madness.deblend.mapCore import MapConfig

    doc, static, results = tmp_path / "throughput.md", tmp_path / "static", tmp_path / "throughput.json"
    result = writeThroughput(doc, static, results, nFields=2, batchSizes=(4, 64), populationSize=3000,
                             device=device, mapConfig=MapConfig(maxIter=3, minIter=1), progress=False)
    assert [r["maxGalaxies"] for r in result["batch"]] == [4, 64]
    assert [r["fields"] for r in result["fields"]] == [1, 2]
    # Every sweep fits the blends it says: all of them in the batch sweep, the first fields' in the other.
    assert all(r["galaxies"] == result["galaxies"] and r["blends"] == result["blends"] for r in result["batch"])
    assert result["fields"][-1]["galaxies"] == result["galaxies"] > result["fields"][0]["galaxies"] > 0
    assert all(r["galaxiesPerSecond"] > 0 and r["meanIterations"] == 3 for r in result["batch"] + result["fields"])
    assert json.loads(results.read_text())["galaxies"] == result["galaxies"]
    assert "| 64 |" in doc.read_text() and (static / f"bench_throughput_{device.split(':')[0]}.png").exists()
    with pytest.raises(ValueError, match="fieldCounts"):
        writeThroughput(doc, nFields=2, fieldCounts=(3,), populationSize=3000, device=device)


def test_fields_observed_with_other_psfs_and_pixels(tmp_path, tinyFrameModelDirectory, device):
    """--psf-scale and --pixel-scale: the same sky on HSC-like pixels with sharper PSFs; the run records
    them and a resume with other ones is refused."""
    from lsst.meas.extensions.madness.benchmark.run import benchmarkFields

    nominal, hsc = benchmarkFields(3000, 0), benchmarkFields(3000, 0, psfScale=0.7, pixelScale=0.168)
    assert hsc.renderer.conditions.pixelScale == 0.168 and hsc.config.stampSize == 55
    assert hsc.config.fieldSize * 0.168 == pytest.approx(nominal.config.fieldSize * 0.2, abs=0.2)
    for band in "ugrizy":
        assert hsc.renderer.conditions.band(band).psfFwhm == pytest.approx(
            0.7 * nominal.renderer.conditions.band(band).psfFwhm)
    run = tmp_path / "run"
    base = ["run", "--out", str(run), "--quick", "--peaks", "truth", "--device", device, "--methods", "madness", "vae",
            "fidelity", "--model-dir", str(tinyFrameModelDirectory), "--pixel-scale", "0.168"]
    assert main(base + ["--psf-scale", "0.7"]) == 0
    settings = json.loads((run / "run.json").read_text())["settings"]
    assert settings["psfScale"] == 0.7 and settings["pixelScale"] == 0.168
    record = json.loads((run / "fields-truth.jsonl").read_text().splitlines()[0])
    for method in ("madness", "vae", "fidelity"):
        assert all(np.isfinite(g[method]["cosine"]).all() for g in record["galaxies"])
    assert main(base + ["--psf-scale", "1.4", "--resume"]) == 2
    # Beside a nominal run, the observations report gives MADNESS's flux error over its nominal value.
    nominal = tmp_path / "nominal"
    assert main(base[:2] + [str(nominal)] + base[3:-2]) == 0
    doc, results = tmp_path / "obs.md", tmp_path / "obs.json"
    assert main(["observations", str(nominal), str(run), "--doc", str(doc), "--results", str(results)]) == 0
    runs = {r["label"]: r["summary"]["methods"]["madness"] for r in json.loads(results.read_text())["runs"]}
    assert set(runs) == {"nominal (LSST)", "PSF × 0.7, 0.168″ pixels"}
    assert runs["nominal (LSST)"]["over nominal"] == 1.0
    assert runs["PSF × 0.7, 0.168″ pixels"]["over nominal"] == pytest.approx(
        runs["PSF × 0.7, 0.168″ pixels"]["mean |δF/F|, κ ≤ 5"] / runs["nominal (LSST)"]["mean |δF/F|, κ ≤ 5"])
    assert "| PSF × 0.7, 0.168″ pixels | MADNESS |" in doc.read_text()
    # The per-blendedness table: the run's methods, each bin's matched galaxies and their mean error.
    for observed in json.loads(results.read_text())["runs"]:
        bins = observed["kappaBins"]
        assert set(bins) == set(observed["summary"]["methods"])
        assert sum(c["n"] for c in bins["madness"]) <= observed["summary"]["nMatched"]
        assert all(c["n"] == 0 or np.isfinite(c["mean"]) for c in bins["madness"])
    assert "| nominal (LSST) | MADNESS | " in doc.read_text().split("blendedness bin")[1]
    assert main(["observations", str(run), "--doc", str(doc), "--results", str(results)]) == 2  # no nominal run


def test_flag_rates_count_every_child_and_list_the_flagged(tmp_path, tinyFrameModelDirectory, device):
    from lsst.meas.extensions.madness.benchmark.flags import flagRates, writeFlagRates

    with pytest.raises(ValueError):
        flagRates(0)
    rates = flagRates(1, populationSize=3000, modelDir=str(tinyFrameModelDirectory), device=device,
                      progress=lambda line: None)
    assert rates["nChildren"] >= 5 and rates["nParents"] >= 1
    flagged = list(rates["flagged"])
    assert len(flagged) == sum(1 for c in flagged if c["badFit"] or c["lowPrior"])
    assert rates["childrenBadFit"] == sum(c["badFit"] for c in flagged)
    # The untrained tiny models have no quantile table: no child can be lowPrior.
    assert rates["childrenLowPrior"] == 0
    assert 0 <= rates["childrenResidualPeakFlagged"] <= rates["childrenResidualPeak"] <= rates["nChildren"]
    text = writeFlagRates(rates, "madness-bench flags --fields 1", tmp_path / "flags.md")
    assert f"of {rates['nChildren']} |" in text and (tmp_path / "flags.json").is_file()
    assert f"(`deblend_residualPeak`; with truth peaks, every one spurious): {rates['childrenResidualPeak']}" in text


def test_template_fit_recovers_the_amplitudes_of_overlapping_galaxies():
    """Known shapes, overlapping: noiseless data give amplitude 1 exactly; noisy data scatter about it as
    the Gauss-Markov σ says."""
    from types import SimpleNamespace

    import numpy as np

    from lsst.meas.extensions.madness.benchmark.fields import templateFit

    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[:15, :15] - 7
    blob = lambda s: np.exp(-(xx**2 + yy**2) / (2 * s**2))  # noqa: E731
    isolated = np.stack([np.stack([blob(2.0), 0.5 * blob(2.0)]), np.stack([blob(3.0), 2 * blob(3.0)])]) * 10
    truth = {"stamp_y0": np.array([2, 5]), "stamp_x0": np.array([3, 6])}
    noiseless = np.zeros((2, 24, 24))
    for i in range(2):
        y0, x0 = truth["stamp_y0"][i], truth["stamp_x0"][i]
        noiseless[:, y0:y0 + 15, x0:x0 + 15] += isolated[i]
    scene = SimpleNamespace(isolated=isolated, truth=truth, image=noiseless, variance=np.ones((2, 24, 24)))
    out = templateFit(scene, np.zeros((2, 2, 24, 24)))
    np.testing.assert_allclose(out.sum(axis=0), noiseless, atol=1e-9)
    amplitudes = []
    for _ in range(300):
        scene.image = noiseless + rng.normal(size=noiseless.shape)
        fitted = templateFit(scene, np.zeros((2, 2, 24, 24)))
        amplitudes.append(fitted[:, 0].sum(axis=(1, 2)) / isolated[:, 0].sum(axis=(1, 2)))
    amplitudes = np.array(amplitudes)
    assert np.all(np.abs(amplitudes.mean(axis=0) - 1) < 4 * amplitudes.std(axis=0) / np.sqrt(300))
    assert np.all(amplitudes.std(axis=0) > 0)


def test_missed_galaxies_say_where_they_are_and_whether_a_residual_peak_found_them(tmp_path, device):
    """With detected peaks, every missed galaxy records ``inFootprint`` and, under each deblender, ``recovered``:
    as many as the field's count of recovered residual peaks, none without the search."""
    run = tmp_path / "run"
    assert main(["run", "--out", str(run), "--fields", "3", "--peaks", "detected", "--device", device, "--methods",
                 "madness", "--compare-config", "resid=residualPeakRounds=1,residualPeakThreshold=3",
                 "--compare-config", "off=residualPeakRounds=0"]) == 0
    records = [json.loads(line) for line in (run / "fields-detected.jsonl").read_text().splitlines()]
    missed = [(record, g) for record in records for g in record["galaxies"] if not g["matched"]]
    assert sum(record["nMissed"] for record in records) == len(missed) > 0
    assert all(isinstance(g["inFootprint"], bool) for _, g in missed)
    assert all("inFootprint" not in g for record in records for g in record["galaxies"] if g["matched"])
    for record in records:
        found = [g["madness:resid"]["recovered"] for g in record["galaxies"] if not g["matched"]]
        assert sum(found) == record["residualPeaks"]["madness:resid"]["recovered"]
        assert "recoveredGalaxies" not in record["residualPeaks"]["madness:resid"]
        assert not any(g["madness:off"].get("recovered") for g in record["galaxies"])  # no search: none recovered
