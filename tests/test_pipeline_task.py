"""The deblend step under the real Rubin middleware: formatters, a butler of simulated patches,
``MadnessDeblendPipelineTask`` run by ``SimplePipelineExecutor``, and its metadata.

Needs ``pip install -e '.[lsst]'`` (``make install`` installs it); without it the module is skipped
with that reason.
"""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest

_REASON = ("the real Rubin middleware (lsst.pipe.base, lsst.daf.butler) is not installed: "
           "pip install -e '.[lsst]' (make install does)")
pipeBase = pytest.importorskip("lsst.pipe.base", reason=_REASON)
dafButler = pytest.importorskip("lsst.daf.butler", reason=_REASON)

from lsst.meas.extensions.madness.afw.exposure import MultibandExposure  # noqa: E402
from lsst.meas.extensions.madness.afw.table import SourceCatalog  # noqa: E402
from lsst.meas.extensions.madness.deblend.blendModel import ModelData  # noqa: E402
from lsst.meas.extensions.madness.pipeline import (  # noqa: E402
    COADD_DATASET_TYPE,
    DEBLENDED_DATASET_TYPE,
    MODEL_DATA_DATASET_TYPE,
    MODEL_DATA_STORAGE_CLASS,
    MULTIBAND_EXPOSURE_STORAGE_CLASS,
    PARENTS_DATASET_TYPE,
    PATCH_DIMENSIONS,
    SOURCE_CATALOG_STORAGE_CLASS,
)
from lsst.meas.extensions.madness.pipeline.butlerConfig import makeSeedConfig  # noqa: E402
from lsst.meas.extensions.madness.pipeline.pipelineConfig import MadnessDeblendPipelineConfig  # noqa: E402
from lsst.meas.extensions.madness.pipeline.pipelineTask import MadnessDeblendPipelineTask  # noqa: E402
from lsst.meas.extensions.madness.pipeline.simRepo import (  # noqa: E402
    INPUT_RUN,
    SKYMAP_NAME,
    makeSimulatedRepo,
    registerPatches,
)
from lsst.meas.extensions.madness.testing import makeMockMultibandExposure  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

PIPELINE = Path(__file__).resolve().parents[1] / "pipelines" / "MadnessDeblend.yaml"


def _fastOverrides(modelDirectory: Path) -> dict[str, object]:
    """multibandDeblend settings for tiny untrained models: a few CPU steps per parent."""
    return {"modelDir": str(modelDirectory), "device": "cpu", "maxIter": 3, "minIter": 1}


def _smallFields():
    from lsst.meas.extensions.madness.sim import SimulationConfig, TestFields, generatePopulation

    config = SimulationConfig(fieldSize=81, fieldInnerSize=50, fieldGalaxies=(3, 4))
    return TestFields(generatePopulation(60, seed=5), config=config)


# --------------------------------------------------------------------------------------------
# Formatters.


def test_formatters_round_trip_through_a_butler(tmp_path):
    dafButler.Butler.makeRepo(str(tmp_path), config=makeSeedConfig())
    butler = dafButler.Butler.from_config(str(tmp_path), writeable=True, run="test")
    (dataId,) = registerPatches(butler, 1)
    for name, storageClass in (("coadd", MULTIBAND_EXPOSURE_STORAGE_CLASS), ("parents", SOURCE_CATALOG_STORAGE_CLASS)):
        butler.registry.registerDatasetType(
            dafButler.DatasetType(name, PATCH_DIMENSIONS, storageClass, universe=butler.dimensions))
    mock = makeMockMultibandExposure(shape=(50, 60), nGalaxies=3, seed=2, xy0=(100, 200))
    butler.put(mock.mExposure, "coadd", dataId)
    butler.put(mock.catalog, "parents", dataId)
    # A new butler, so the datasets come from the files, not a cache.
    reader = dafButler.Butler.from_config(str(tmp_path), collections="test")
    mExposure = reader.get("coadd", dataId)
    catalog = reader.get("parents", dataId)
    assert type(mExposure) is MultibandExposure and type(catalog) is SourceCatalog
    assert reader.getURI("coadd", dataId).getExtension() == ".fits"

    assert tuple(mExposure.bands) == tuple(mock.mExposure.bands)
    assert mExposure.getBBox() == mock.mExposure.getBBox()
    for plane in ("image", "mask", "variance"):
        np.testing.assert_array_equal(getattr(mExposure, plane).array, getattr(mock.mExposure, plane).array)
    for band in mExposure.bands:
        np.testing.assert_allclose(mExposure[band].getPsf().computeKernelImage(None).array,
                                   mock.mExposure[band].getPsf().computeKernelImage(None).array)
    assert list(catalog["id"]) == list(mock.catalog["id"]) and catalog.schema == mock.catalog.schema
    for read, written in zip(catalog, mock.catalog):
        assert read.getFootprint().getArea() == written.getFootprint().getArea()
        assert [(p.getIx(), p.getIy()) for p in read.getFootprint().getPeaks()] == \
            [(p.getIx(), p.getIy()) for p in written.getFootprint().getPeaks()]
    reader.close()
    butler.close()


def test_model_data_round_trips_through_a_butler(tmp_path, tinyModelDirectory):
    from lsst.meas.extensions.madness.testing.deblenders import quickMadnessTask

    dafButler.Butler.makeRepo(str(tmp_path), config=makeSeedConfig())
    butler = dafButler.Butler.from_config(str(tmp_path), writeable=True, run="test")
    (dataId,) = registerPatches(butler, 1)
    butler.registry.registerDatasetType(
        dafButler.DatasetType("models", PATCH_DIMENSIONS, MODEL_DATA_STORAGE_CLASS, universe=butler.dimensions))
    mock = makeMockMultibandExposure(shape=(60, 60), nGalaxies=2, seed=4, hlrRange=(0.3, 0.6))
    modelData = quickMadnessTask(tinyModelDirectory, mock.catalog.schema.copy()).run(
        mock.mExposure, mock.catalog).modelData
    butler.put(modelData, "models", dataId)
    reader = dafButler.Butler.from_config(str(tmp_path), collections="test")
    read = reader.get("models", dataId)
    assert type(read) is ModelData and set(read.blends) == set(modelData.blends) and len(read) > 0
    assert reader.getURI("models", dataId).getExtension() == ".fits"
    for parentId, peakIds in modelData.peakIds.items():
        for peakId in peakIds:
            np.testing.assert_allclose(read.renderChild(parentId, peakId), modelData.renderChild(parentId, peakId),
                                       rtol=1e-6, atol=1e-30)
    reader.close()
    butler.close()


def test_middleware_modules_name_the_install_command_when_it_is_missing(monkeypatch):
    for name in ("lsst.daf.butler", "lsst.pipe.base"):
        monkeypatch.setitem(sys.modules, name, None)
    for module in ("formatters", "connections", "pipelineConfig", "pipelineTask", "simRepo"):
        fullName = f"lsst.meas.extensions.madness.pipeline.{module}"
        monkeypatch.delitem(sys.modules, fullName, raising=False)
        with pytest.raises(ImportError, match=r"pip install 'lsst-meas-extensions-madness\[lsst\]'"):
            importlib.import_module(fullName)


# --------------------------------------------------------------------------------------------
# A repository of simulated patches, and the pipeline on it.


@pytest.fixture(scope="module")
def simulatedRepo(tmp_path_factory):
    """A repository of two small simulated patches (the madness-sim butler code path)."""
    root = tmp_path_factory.mktemp("butler") / "repo"
    patches = makeSimulatedRepo(root, _smallFields(), 2, workers=1)
    return root, patches


def test_simulated_repository_holds_the_patches(simulatedRepo):
    root, patches = simulatedRepo
    assert [p.dataId["patch"] for p in patches] == [0, 1]
    # A fresh process needs no DAF_BUTLER_CONFIG_PATH: the repository's config has the storage classes.
    butler = dafButler.Butler.from_config(str(root), collections=INPUT_RUN)
    for patch in patches:
        catalog = butler.get(PARENTS_DATASET_TYPE, patch.dataId)
        assert len(catalog) == patch.nParents > 0
        assert sum(len(r.getFootprint().getPeaks()) for r in catalog) == patch.nPeaks == patch.nGalaxies
        assert type(butler.get(COADD_DATASET_TYPE, patch.dataId)) is MultibandExposure
    records = list(butler.registry.queryDimensionRecords("patch", skymap=SKYMAP_NAME))
    assert sorted((r.id, r.cell_x, r.cell_y) for r in records) == [(0, 0, 0), (1, 1, 0)]
    butler.close()
    with pytest.raises(ValueError, match="already holds a butler repository"):
        makeSimulatedRepo(root, _smallFields(), 1, workers=1)


@pytest.fixture(scope="module")
def deblendedRepo(simulatedRepo, tinyModelDirectory):
    """The shipped pipeline YAML run on the simulated patches by SimplePipelineExecutor."""
    from lsst.pipe.base import Pipeline
    from lsst.pipe.base.simple_pipeline_executor import SimplePipelineExecutor

    root, patches = simulatedRepo
    pipeline = Pipeline.from_uri(str(PIPELINE))
    for field, value in _fastOverrides(tinyModelDirectory).items():
        pipeline.addConfigOverride("deblend", f"multibandDeblend.{field}", value)
    butler = SimplePipelineExecutor.prep_butler(str(root), inputs=[INPUT_RUN], output="madness/deblend")
    executor = SimplePipelineExecutor.from_pipeline(pipeline, butler=butler)
    quanta = executor.run(register_dataset_types=True)
    yield butler, patches, quanta
    butler.close()


def test_pipeline_accounts_for_every_parent_and_peak(deblendedRepo):
    butler, patches, quanta = deblendedRepo
    assert len(quanta) == len(patches) == 2
    for patch in patches:
        parents = butler.get(PARENTS_DATASET_TYPE, patch.dataId)
        deblended = butler.get(DEBLENDED_DATASET_TYPE, patch.dataId)
        isParent = deblended["parent"] == 0
        assert list(deblended["id"][isParent]) == list(parents["id"])
        detected = {record.getId(): len(record.getFootprint().getPeaks()) for record in parents}
        assert sum(detected.values()) == patch.nPeaks
        # Each detected peak has its child, and so has each peak the residual search added.
        added = dict(zip(deblended["id"][isParent], deblended["madness_nResidualPeaks"][isParent]))
        nPeaks = {i: n + int(added[i]) for i, n in detected.items()}
        assert (~isParent).sum() == sum(nPeaks.values())
        childParents = deblended["parent"][~isParent]
        assert set(childParents) <= set(nPeaks)
        for parentId, count in nPeaks.items():
            assert np.sum(childParents == parentId) == count, parentId
        assert (deblended["deblend_nChild"][isParent] == [nPeaks[i] for i in parents["id"]]).all()
        assert (~isParent).sum() - np.sum(deblended["deblend_residualPeak"][~isParent]) == patch.nPeaks
        assert not deblended["deblend_failed"].any()
        assert all(record.getFootprint().isHeavy() for record in deblended if record.getParent() != 0)


def test_pipeline_writes_the_model_data_of_every_deblended_parent(deblendedRepo):
    """deepCoadd_madnessModelData reads back through the butler and draws each child as the fit in memory did."""
    butler, patches, _ = deblendedRepo
    config = butler.get("deblend_config")
    task = MadnessDeblendPipelineTask(config=config)
    for patch in patches:
        modelData = butler.get(MODEL_DATA_DATASET_TYPE, patch.dataId)
        deblended = butler.get(DEBLENDED_DATASET_TYPE, patch.dataId)
        assert type(modelData) is ModelData
        assert butler.getURI(MODEL_DATA_DATASET_TYPE, patch.dataId).getExtension() == ".fits"
        children = [record for record in deblended if record.getParent() != 0]
        assert set(modelData.blends) == {record.getParent() for record in children}
        # The same inputs and config in this process: the fit the pipeline wrote.
        inMemory = task.run(butler.get(COADD_DATASET_TYPE, patch.dataId),
                            butler.get(PARENTS_DATASET_TYPE, patch.dataId)).modelData
        assert set(inMemory.blends) == set(modelData.blends)
        for child in children:
            parentId, peakId = child.getParent(), child.get("deblend_peakId")
            assert modelData.childIds[parentId][modelData.childIndex(parentId, peakId)] == child.getId()
            drawn = modelData.renderChild(parentId, peakId)
            assert drawn.sum() > 0
            np.testing.assert_allclose(drawn, inMemory.renderChild(parentId, peakId), rtol=1e-5,
                                       atol=1e-6 * np.abs(drawn).max())


def test_pipeline_metadata_is_the_middlewares_and_holds_the_deblenders(deblendedRepo):
    butler, patches, _ = deblendedRepo
    metadata = butler.get("deblend_metadata", patches[0].dataId)
    assert type(metadata) is pipeBase.TaskMetadata
    deblender = metadata["deblend:multibandDeblend"]
    assert type(deblender) is pipeBase.TaskMetadata
    assert deblender["nChildren"] == patches[0].nPeaks and deblender["nInvariantViolations"] == 0
    assert "runEndCpuTime" in deblender and "runEndCpuTime" in metadata["deblend"]
    config = butler.get("deblend_config")
    assert type(config) is MadnessDeblendPipelineConfig and config.multibandDeblend.maxIter == 3


def test_task_metadata_is_accepted_by_the_real_pipe_base(tinyModelDirectory):
    """The failure this guards against: pipe_base refused the package's own TaskMetadata nested in its own."""
    mock = makeMockMultibandExposure(shape=(60, 60), nGalaxies=2, seed=4, hlrRange=(0.3, 0.6))
    config = MadnessDeblendPipelineConfig()
    for field, value in _fastOverrides(tinyModelDirectory).items():
        setattr(config.multibandDeblend, field, value)
    config.freeze()
    task = MadnessDeblendPipelineTask(config=config, schema=mock.catalog.schema)
    subtasks = [task.multibandDeblend, task.multibandDeblend.fallback]
    assert all(type(subtask.metadata) is pipeBase.TaskMetadata for subtask in subtasks)
    result = task.run(mock.mExposure, mock.catalog)
    assert type(result) is pipeBase.Struct and len(result.deblendedCatalog) == len(mock.catalog) + 2
    full = task.getFullMetadata()
    assert set(full.keys()) == {"madnessDeblend", "madnessDeblend:multibandDeblend",
                                "madnessDeblend:multibandDeblend:fallback"}
    assert full["madnessDeblend:multibandDeblend.nChildren"] == 2
    assert pipeBase.TaskMetadata.model_validate_json(full.model_dump_json()) == full
    # A catalogue of the same schema reuses the deblender.
    deblender = task.multibandDeblend
    task.run(mock.mExposure, mock.catalog)
    assert task.multibandDeblend is deblender


def test_madness_sim_butler_command(tmp_path, capsys):
    from lsst.meas.extensions.madness.sim.cli import main

    repo = tmp_path / "repo"
    assert main(["butler", str(repo), "--patches", "1", "--bands", "gri", "--workers", "1", "--quiet"]) == 0
    assert "1 patches" in capsys.readouterr().out
    butler = dafButler.Butler.from_config(str(repo))
    refs = set(butler.query_datasets(PARENTS_DATASET_TYPE, collections=INPUT_RUN))
    assert len(refs) == 1 and next(iter(refs)).dataId["patch"] == 0
    dataId = next(iter(refs)).dataId
    assert tuple(butler.get(COADD_DATASET_TYPE, dataId, collections=INPUT_RUN).bands) == ("g", "r", "i")
    butler.close()
    assert main(["butler", str(repo), "--patches", "1", "--workers", "1", "--quiet"]) == 2
    assert "already holds a butler repository" in capsys.readouterr().err


def test_pipetask_and_butler_commands_as_the_readme_gives_them(simulatedRepo, tinyModelDirectory, tmp_path):
    """``pipetask run`` on the shipped pipeline YAML in a fresh process with no butler environment
    variable, then ``butler query-datasets`` lists the catalogue and model data of both patches."""
    import os
    import shutil
    import subprocess

    bin = Path(sys.executable).parent
    if not (bin / "pipetask").exists() or not (bin / "butler").exists():
        pytest.skip("pipetask/butler console scripts are not installed beside this Python")
    root = tmp_path / "repo"
    shutil.copytree(simulatedRepo[0], root)
    environment = {k: v for k, v in os.environ.items() if not k.startswith(("DAF_BUTLER", "CTRL_MPEXEC"))}
    environment["OMP_NUM_THREADS"] = "1"
    overrides = [f"-c deblend:multibandDeblend.{field}={value}"
                 for field, value in _fastOverrides(tinyModelDirectory).items()]
    run = subprocess.run([str(bin / "pipetask"), "run", "-b", str(root), "-i", INPUT_RUN, "-o", "madness/deblend-cli",
                          "-p", str(PIPELINE), "--register-dataset-types",
                          *[part for option in overrides for part in option.split(" ", 1)]],
                         env=environment, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    for datasetType in (DEBLENDED_DATASET_TYPE, "deepCoadd_madnessModelData"):
        # Its own output collection: the copied repository may hold the in-process run's "madness/deblend".
        listed = subprocess.run([str(bin / "butler"), "query-datasets", str(root), datasetType, "--collections",
                                 "madness/deblend-cli"], env=environment, capture_output=True, text=True, timeout=300)
        assert listed.returncode == 0, listed.stderr[-2000:]
        assert listed.stdout.count(datasetType) == 2, listed.stdout
