"""Package-level checks: the lsst namespace, top-level re-exports, the docs build, the demo."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "imports",
    [
        "import lsst.pex.config, lsst.meas.extensions.madness",
        "import lsst.meas.extensions.madness, lsst.pex.config",
    ],
)
def test_lsst_namespace_coexists_with_pypi_lsst_packages(imports):
    pytest.importorskip(
        "lsst.pex.config", reason="lsst-pex-config is not installed: pip install -e '.[dev,lsst]' (make install does)")
    code = f"{imports}; import lsst; print(len(lsst.__path__))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip()) >= 2  # our lsst/ and site-packages' lsst/ are both on the path


def test_top_level_reexports():
    import lsst.meas.extensions.madness as madness

    for name in (
        "MultibandExposure", "Exposure", "SourceCatalog", "SourceRecord", "Schema", "HeavyFootprint",
        "makeHeavyFootprint", "MultibandFootprint", "SpanSet", "Footprint", "Box2I", "Point2I",
        "FitsFormatError", "Task", "Config", "Struct", "ConfigurableField", "timeMethod",
    ):
        assert hasattr(madness, name), name
    from lsst.meas.extensions.madness import MadnessDeblendConfig, MadnessDeblendTask
    from lsst.meas.extensions.madness.deblend import madnessTask

    assert MadnessDeblendTask is madnessTask.MadnessDeblendTask
    assert MadnessDeblendConfig is madnessTask.MadnessDeblendConfig
    for name in ("ScarletDeblendTask", "ScarletDeblendConfig", "DeblendCoaddSourcesMultiTask",
                 "DeblendCoaddSourcesMultiConfig"):
        assert isinstance(getattr(madness, name), type), name


def test_training_imports_without_lsst_utils_or_astropy():
    """A bare GPU machine carries torch, numpy, scipy, pydantic and zuko only (``make gpu-train``): the
    trainer imports the package there, so the framework (lsst-utils, whose timer needs astropy) loads on
    first use, not with the package."""
    code = ("import sys\n"
            "for name in ('lsst.utils', 'astropy', 'yaml', 'galsim', 'matplotlib'):\n"
            "    sys.modules[name] = None\n"
            "import lsst.meas.extensions.madness.models.trainCli\n"
            "assert 'lsst.meas.extensions.madness.framework' not in sys.modules\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_ups_table_and_layout():
    table = (ROOT / "ups" / "meas_extensions_madness.table").read_text()
    assert "envPrepend(PYTHONPATH, ${PRODUCT_DIR}/python)" in table
    assert "setupRequired(" in table
    # Every directory the table puts on a path exists (there is no bin/: the commands are console scripts).
    for line in table.splitlines():
        if line.startswith("env") and "${PRODUCT_DIR}" in line:
            directory = line.split("${PRODUCT_DIR}/", 1)[1].rstrip(")")
            assert (ROOT / directory).is_dir(), line
    for path in ("python/lsst/__init__.py", "python/lsst/meas/__init__.py", "python/lsst/meas/extensions/__init__.py"):
        assert "extend_path" in (ROOT / path).read_text()


def test_docs_build_without_warnings(tmp_path):
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(ROOT / "doc"), str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "file-formats.html").exists() and (tmp_path / "api.html").exists()


def test_demo_runs(tmp_path, device):
    from lsst.meas.extensions.madness.demo import main

    assert main(["--output", str(tmp_path), "--device", device]) == 0
    for name in ("inputs/demo_exposure.fits", "inputs/demo_parents.fits", "inputs/demo_truth.fits",
                 "deblendedCatalog.fits", "modelData.fits", "config.py", "metadata.json"):
        assert (tmp_path / name).is_file(), name
    assert len(list((tmp_path / "plots").glob("parent_*.png"))) == 2
