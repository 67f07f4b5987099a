"""``bps submit`` of the deblend step with the shipped local parsl config (opt-in: about 1-4 minutes).

Runs only with ``MADNESS_TEST_BPS=1`` and the BPS packages installed (``pip install -e '.[lsst,bps]'``);
otherwise it is skipped with the reason. It makes a repository of two small simulated patches,
submits ``bps/local.yaml`` with a pipeline that points the deblender at tiny models, and checks
that both patches' deblended catalogues are in the butler with every parent and peak accounted for.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

if os.environ.get("MADNESS_TEST_BPS") != "1":
    pytest.skip("bps submit takes minutes: opt in with MADNESS_TEST_BPS=1 (needs pip install -e '.[lsst,bps]')",
                allow_module_level=True)
pytest.importorskip("lsst.ctrl.bps.parsl", reason="the BPS parsl plugin is not installed: pip install -e '.[lsst,bps]'")
dafButler = pytest.importorskip("lsst.daf.butler", reason="the Rubin middleware is not installed")


def test_bps_submit_runs_two_patches_locally(tmp_path, tinyModelDirectory):
    from lsst.meas.extensions.madness.afw.table import SourceCatalog
    from lsst.meas.extensions.madness.pipeline.simRepo import makeSimulatedRepo
    from lsst.meas.extensions.madness.sim import SimulationConfig, TestFields, generatePopulation

    fields = TestFields(generatePopulation(60, seed=5),
                        config=SimulationConfig(fieldSize=81, fieldInnerSize=50, fieldGalaxies=(3, 4)))
    repo = tmp_path / "repo"
    makeSimulatedRepo(repo, fields, 2)
    # The shipped config, run from a copy of the repository layout it expects (pipelines/, bps/).
    work = tmp_path / "work"
    shutil.copytree(ROOT / "bps", work / "bps")
    (work / "pipelines").mkdir(parents=True)
    (work / "pipelines" / "MadnessDeblend.yaml").write_text(
        (ROOT / "pipelines" / "MadnessDeblend.yaml").read_text()
        + "    config:\n"
        + f"      multibandDeblend.modelDir: {str(tinyModelDirectory)!r}\n"
        + "      multibandDeblend.device: cpu\n      multibandDeblend.maxIter: 3\n      multibandDeblend.minIter: 1\n")
    prefix = str(Path(sys.executable).parents[1])
    environment = {**os.environ, "CTRL_MPEXEC_DIR": prefix, "DAF_BUTLER_DIR": prefix, "PWD": str(work),
                   "OMP_NUM_THREADS": "1", "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
    done = subprocess.run([str(Path(sys.executable).parent / "bps"), "submit", "bps/local.yaml", "-b", str(repo)],
                          cwd=work, env=environment, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    butler = dafButler.Butler.from_config(str(repo), collections="madness/deblend-bps")
    refs = list(butler.registry.queryDatasets("deepCoadd_deblendedCatalog", collections="madness/deblend-bps"))
    assert len(refs) == 2
    for ref in refs:
        catalog = butler.get(ref)
        assert isinstance(catalog, SourceCatalog)
        parents = catalog[catalog["parent"] == 0]
        children = catalog[catalog["parent"] > 0]
        assert len(children) == sum(len(p.getFootprint().getPeaks()) for p in parents)
