"""No module of the package is over 600 lines (issue 19): split one along a seam of one purpose instead."""

from __future__ import annotations

from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "python" / "lsst" / "meas" / "extensions" / "madness"
MAX_LINES = 600


def test_no_module_over_600_lines():
    modules = sorted(PACKAGE.rglob("*.py"))
    assert modules, f"no Python modules under {PACKAGE}"
    offenders = []
    for path in modules:
        with path.open(encoding="utf-8") as stream:
            lines = sum(1 for _ in stream)
        if lines > MAX_LINES:
            offenders.append(f"{path.relative_to(PACKAGE)} ({lines} lines)")
    assert not offenders, f"modules over {MAX_LINES} lines: {', '.join(offenders)}"
