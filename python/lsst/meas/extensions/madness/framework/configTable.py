"""Config fields as a Markdown table, for the task pages of the documentation.

Examples
--------
>>> from lsst.meas.extensions.madness.framework import Config, Field
>>> class FitConfig(Config):
...     maxIter: int = Field(300, doc="Most iterations.")
>>> print(configTable(FitConfig))
| field | default | description |
|---|---|---|
| `maxIter` | `300` | Most iterations. |
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Config

__all__ = ["configTable"]


def configTable(ConfigClass: type[Config]) -> str:
    """One row per field of ``ConfigClass``: name, default (a subtask's target) and doc."""
    config = ConfigClass()
    rows = ["| field | default | description |", "|---|---|---|"]
    for name, info in ConfigClass.model_fields.items():
        value = getattr(config, name)
        target = getattr(value, "target", None)
        default = f"subtask: {target.__name__}" if target is not None else repr(value)
        doc = " ".join((info.description or "").split()).replace("|", "\\|")
        rows.append(f"| `{name}` | `{default}` | {doc} |")
    return "\n".join(rows)
