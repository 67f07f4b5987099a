"""Collection settings for the whole repository (the test fixtures are in ``tests/conftest.py``).

``--doctest-modules`` imports every module of the package; those of ``pipeline/`` that need the
Rubin middleware raise an ImportError by design where it is not installed, so they are left out
of collection there, and the report header says so.
"""

from __future__ import annotations

import importlib.util

_MIDDLEWARE_MODULES = ["formatters.py", "connections.py", "pipelineConfig.py", "pipelineTask.py", "simRepo.py"]


def _middlewareInstalled() -> bool:
    try:
        return all(importlib.util.find_spec(name) is not None for name in ("lsst.daf.butler", "lsst.pipe.base"))
    except ModuleNotFoundError:  # lsst.daf or lsst.pipe itself is missing
        return False


collect_ignore = [] if _middlewareInstalled() else [
    f"python/lsst/meas/extensions/madness/pipeline/{name}" for name in _MIDDLEWARE_MODULES
]


def pytest_report_header(config) -> list[str]:
    if collect_ignore:
        return ["Rubin middleware not installed (pip install -e '.[lsst]'): pipeline/ modules that need it "
                "are not collected for doctests"]
    return []
