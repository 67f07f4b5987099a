"""The task pages' config tables match the configs, and every column is documented."""

from __future__ import annotations

from pathlib import Path

import pytest

from lsst.meas.extensions.madness.deblend import MadnessDeblendConfig, ScarletDeblendConfig
from lsst.meas.extensions.madness.deblendCoaddSources import DeblendCoaddSourcesMultiConfig
from lsst.meas.extensions.madness.framework.configTable import configTable

DOC = Path(__file__).resolve().parents[1] / "doc"
TABLES = {"madnessDeblend": MadnessDeblendConfig, "scarletDeblend": ScarletDeblendConfig,
          "deblendCoaddSourcesMulti": DeblendCoaddSourcesMultiConfig}


@pytest.mark.parametrize("name", sorted(TABLES))
def test_config_tables_are_current(name):
    path = DOC / "_generated" / f"config-{name}.md"
    assert path.read_text() == configTable(TABLES[name]) + "\n", (
        f"{path} is out of date; regenerate it with configTable({TABLES[name].__name__})")


def test_every_deblend_column_is_on_the_task_page():
    from lsst.meas.extensions.madness.afw.table import SourceTable
    from lsst.meas.extensions.madness.deblend import DeblendColumns

    schema = SourceTable.makeMinimalSchema()
    DeblendColumns(schema, ["r"])
    page = (DOC / "madness-deblend.md").read_text()
    added = [n for n in schema.getNames() if n.startswith(("deblend_", "madness_"))]
    missing = [n for n in added if n.replace("madness_flux_r", "madness_flux_<band>")
               .replace("madness_fluxErr_r", "madness_fluxErr_<band>") not in page]
    assert not missing, f"columns not documented in doc/madness-deblend.md: {missing}"
