"""Survey conditions (paper Table 1) and the CatSim catalogue reader."""

import numpy as np
import pytest
from astropy.table import Table
from pydantic import ValidationError

from lsst.meas.extensions.madness import FitsFormatError
from lsst.meas.extensions.madness.sim import LSST_CONDITIONS, BandConditions, SurveyConditions, readCatsimCatalog


class TestSurveyConditions:
    def test_lsst_sky_levels_match_paper_table(self):
        # Sky electrons per pixel implied by Table 1 (0.2" pixels, gain 1).
        expected = {"u": 1.55e3, "g": 2.41e4, "r": 1.27e5, "i": 1.84e5, "z": 2.51e5, "y": 2.91e5}
        for band, value in expected.items():
            assert LSST_CONDITIONS.skyPerPixel(band) == pytest.approx(value, rel=0.01)

    def test_zero_point_definition(self):
        r = LSST_CONDITIONS.band("r")
        assert r.electrons(r.zeroPoint) == pytest.approx(r.exposureTime)
        assert r.magnitude(r.electrons(24.3)) == pytest.approx(24.3)
        assert LSST_CONDITIONS.electrons("i", 25.0) == pytest.approx(5520 * 10 ** (-0.4 * (25.0 - 27.78)))

    def test_other_survey_is_a_config(self):
        deep = SurveyConditions(
            name="deeper-r",
            pixelScale=0.2,
            gain=1.0,
            bands={"r": LSST_CONDITIONS.band("r").model_copy(update={"exposureTime": 11040})},
        )
        assert deep.skyPerPixel("r") == pytest.approx(2 * LSST_CONDITIONS.skyPerPixel("r"))
        with pytest.raises(KeyError, match="no band 'g'"):
            deep.band("g")
        with pytest.raises(ValidationError, match="psfFwhm"):
            BandConditions(zeroPoint=28, skyBrightness=21, psfFwhm=-1, exposureTime=1, effectiveWavelength=600)
        with pytest.raises(ValidationError):
            LSST_CONDITIONS.pixelScale = 0.3


def catsimTable(n=5, seed=0):
    rng = np.random.default_rng(seed)
    a_d = rng.uniform(0.2, 1.5, n)
    a_b = rng.uniform(0.1, 0.5, n)
    columns = dict(
        galtileid=np.arange(100, 100 + n, dtype=np.int64),
        ra=rng.uniform(0, 0.1, n),
        dec=rng.uniform(0, 0.1, n),
        redshift=rng.uniform(0.1, 2.0, n),
        fluxnorm_bulge=rng.uniform(0, 1e-17, n),
        fluxnorm_disk=rng.uniform(1e-18, 1e-17, n),
        fluxnorm_agn=np.zeros(n),
        a_b=a_b, b_b=a_b * rng.uniform(0.3, 1.0, n), a_d=a_d, b_d=a_d * rng.uniform(0.2, 1.0, n),
        pa_bulge=rng.uniform(0, 180, n), pa_disk=rng.uniform(0, 180, n),
    )  # fmt: skip
    for band in "ugrizy":
        columns[f"{band}_ab"] = rng.uniform(22, 26, n)
    return Table(columns)


DEFECTS = {
    "missing column": (lambda t: t.remove_column("b_d"), "column 'b_d': missing CatSim column"),
    "duplicate id": (lambda t: t["galtileid"].__setitem__(3, 100),
                     "column 'galtileid' row 3: galtileid 100 appears more than once"),
    "nan magnitude": (lambda t: t["r_ab"].__setitem__(2, np.nan), "column 'r_ab' row 2: non-finite"),
    "negative size": (lambda t: t["a_d"].__setitem__(1, -0.5), "column 'a_d' row 1: negative value"),
    "b exceeds a": (lambda t: t["b_b"].__setitem__(4, 9.0), "column 'b_b' row 4: semi-minor axis"),
    "no component": (
        lambda t: [t[c].__setitem__(0, 0.0) for c in ("fluxnorm_bulge", "fluxnorm_disk", "fluxnorm_agn")],
        "row 0: the galaxy has no bulge, disk or AGN flux",
    ),
}


class TestCatsimReader:
    def test_reads_and_derives(self, tmp_path):
        table = catsimTable()
        path = tmp_path / "catsim.fits"
        table.write(path)
        galaxies = readCatsimCatalog(path)
        np.testing.assert_array_equal(galaxies["galtileid"], table["galtileid"])
        total = table["fluxnorm_bulge"] + table["fluxnorm_disk"]
        np.testing.assert_allclose(galaxies["bulge_fraction"], table["fluxnorm_bulge"] / total)
        np.testing.assert_allclose(galaxies["hlr_disk"], np.sqrt(table["a_d"] * table["b_d"]))
        np.testing.assert_allclose(galaxies["q_bulge"], table["b_b"] / table["a_b"])

    @pytest.mark.parametrize("defect", sorted(DEFECTS))
    def test_rejects(self, defect, tmp_path):
        table = catsimTable()
        edit, message = DEFECTS[defect]
        edit(table)
        path = tmp_path / "bad.fits"
        table.write(path)
        with pytest.raises(FitsFormatError) as info:
            readCatsimCatalog(path)
        assert str(path) in str(info.value) and message in str(info.value), str(info.value)
