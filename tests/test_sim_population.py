"""The built-in CatSim-like population generator and the paper's App. A S/N."""

import math

import numpy as np
import pytest
from astropy.table import Table
from pydantic import ValidationError

from lsst.meas.extensions.madness.sim import (
    CATSIM_COLUMNS,
    LSST_CONDITIONS,
    PopulationConfig,
    SurveyConditions,
    catalogSnr,
    checkCatsimTable,
    cumulativeCounts,
    generatePopulation,
    redshiftScale,
    templateColours,
)

DERIVED = ("bulge_fraction", "agn_fraction", "hlr_bulge", "q_bulge", "hlr_disk", "q_disk")


@pytest.fixture(scope="module")
def uncut():
    """A population before the S/N cut, large enough for the statistical tests (~0.2 s)."""
    return generatePopulation(40_000, seed=11, snrCut=None)


def _ids(table):
    return set(np.asarray(table["galtileid"]).tolist())


class TestCatalogSnr:
    def test_matches_hand_computation_of_appendix_a(self):
        # Row 0: disk only. Row 1: the disk has the longer axis but the bulge the larger
        # sqrt(ab), so the bulge sets FWHM_gal. Row 2: no extended component.
        table = Table(dict(
            r_ab=[25.0, 24.0, 26.0],
            a_b=[0.0, 0.6, 0.0], b_b=[0.0, 0.5, 0.0],
            a_d=[0.5, 1.0, 0.0], b_d=[0.2, 0.2, 0.0],
        ))  # fmt: skip
        source = 5520 * 10 ** (-0.4 * (np.array([25.0, 24.0, 26.0]) - 28.10))
        sky = 5520 * 10 ** (-0.4 * (21.20 - 28.10)) * 0.2**2
        fwhmGal = np.array([2 * math.sqrt(0.5 * 0.2), 2 * math.sqrt(0.6 * 0.5), 0.0])
        nEff = 2.266 * (0.81**2 + fwhmGal**2) / 0.2**2
        expected = source / np.sqrt(source + sky * nEff)
        np.testing.assert_allclose(catalogSnr(table), expected, rtol=1e-12)
        # A deeper survey is a configuration: four times the exposure doubles the
        # background-limited S/N.
        deep = SurveyConditions(
            name="deep", pixelScale=0.2, gain=1.0,
            bands={"r": LSST_CONDITIONS.band("r").model_copy(update={"exposureTime": 4 * 5520})},
        )  # fmt: skip
        faint = Table(dict(r_ab=[28.0], a_b=[0.0], b_b=[0.0], a_d=[0.3], b_d=[0.3]))
        assert catalogSnr(faint, deep)[0] == pytest.approx(2 * catalogSnr(faint)[0], rel=1e-3)
        with pytest.raises(KeyError, match="no band 'g'"):
            catalogSnr(table.copy(), deep, band="g")


class TestGeneratePopulation:
    def test_deterministic_and_ids_disjoint_between_seeds(self):
        first = generatePopulation(300, seed=3)
        again = generatePopulation(300, seed=3)
        other = generatePopulation(300, seed=4)
        for name in first.colnames:
            np.testing.assert_array_equal(first[name], again[name])
        assert not (_ids(first) & _ids(other))
        assert not np.allclose(first["i_ab"], other["i_ab"])
        # A run is the prefix of a longer one.
        prefix = generatePopulation(120, seed=3)
        for name in prefix.colnames:
            np.testing.assert_array_equal(prefix[name], first[name][:120])

    @pytest.mark.parametrize("n", [0, 1, 257])
    def test_exact_row_count_and_valid_catsim_table(self, n):
        table = generatePopulation(n, seed=5)
        assert len(table) == n
        assert len(checkCatsimTable(table)) == n
        assert set(CATSIM_COLUMNS + DERIVED + ("snr_r",)) <= set(table.colnames)
        assert table["galtileid"].dtype == np.int64

    def test_components_positions_and_ids(self):
        table = generatePopulation(2000, seed=2, area=0.25)
        ids = np.asarray(table["galtileid"])
        assert (ids // 1_000_000_000 == 2).all() and len(np.unique(ids)) == len(ids)
        assert ((table["ra"] >= 0) & (table["ra"] < 0.5)).all()
        assert ((table["dec"] >= -0.25) & (table["dec"] < 0.25)).all()
        np.testing.assert_array_equal(table["pa_bulge"], table["pa_disk"])
        assert ((table["pa_disk"] >= 0) & (table["pa_disk"] < 180)).all()
        # An absent component has zero axes; a present one non-zero axes.
        bulgeFraction = np.asarray(table["bulge_fraction"])
        assert ((table["a_b"] == 0) == (bulgeFraction == 0)).all()
        assert ((table["a_d"] == 0) == (bulgeFraction == 1)).all()
        np.testing.assert_allclose(table["hlr_disk"] ** 2, table["a_d"] * table["b_d"])
        agn = np.asarray(table["agn_fraction"])
        assert agn.max() <= 0.2 + 1e-12 and 0 < np.mean(agn > 0) < 0.05

    def test_snr_cut_and_uncut_population(self, uncut):
        cut = generatePopulation(500, seed=11)
        assert (cut["snr_r"] >= 10).all()
        np.testing.assert_allclose(cut["snr_r"], catalogSnr(cut))
        snr = np.asarray(uncut["snr_r"])
        assert (snr < 10).any() and (snr >= 10).any()
        assert (uncut["r_ab"] < 28).all()
        # About the paper's 317k / 858k = 37% survive the cut.
        assert 0.32 < np.mean(snr >= 10) < 0.42
        # The cut keeps each galaxy's id and properties: it is a subset of the uncut draws.
        lastDrawn = np.asarray(uncut["galtileid"]).max()
        common = np.asarray(cut["galtileid"]) <= lastDrawn
        assert common.sum() > 100
        position = {gid: k for k, gid in enumerate(np.asarray(uncut["galtileid"]))}
        rows = [position[gid] for gid in np.asarray(cut["galtileid"])[common]]
        np.testing.assert_array_equal(cut["redshift"][common], uncut["redshift"][rows])
        # Another band and another cut.
        iCut = generatePopulation(200, seed=1, snrCut=30.0, snrBand="i")
        assert (iCut["snr_i"] >= 30).all() and "snr_r" not in iCut.colnames

    def test_impossible_cut_fails_instead_of_looping(self):
        with pytest.raises(ValueError, match="passes the cuts"):
            generatePopulation(1, seed=0, snrCut=1e9, config=PopulationConfig(batchSize=64))

    def test_counts_follow_the_configured_slope(self, uncut):
        # Brightward of the break and of the r < 28 limit (which removes faint galaxies,
        # so fractions are taken within this range), the share of each magnitude bin follows
        # the count model; its logarithmic slope is countsSlope.
        edges = np.arange(20.0, 25.01, 0.5)
        counts = np.histogram(uncut["i_ab"], edges)[0]
        model = np.diff(cumulativeCounts(edges))
        np.testing.assert_allclose(counts / counts.sum(), model / model.sum(), rtol=0.2)
        slope = np.polyfit(0.5 * (edges[1:] + edges[:-1]), np.log10(counts), 1, w=np.sqrt(counts))[0]
        assert slope == pytest.approx(0.31, abs=0.03)
        steeper = generatePopulation(20_000, seed=11, snrCut=None, config=PopulationConfig(countsSlope=0.45))
        counts = np.histogram(steeper["i_ab"], edges)[0]
        slope = np.polyfit(0.5 * (edges[1:] + edges[:-1]), np.log10(counts), 1, w=np.sqrt(counts))[0]
        assert slope == pytest.approx(0.45, abs=0.04)

    def test_redshift_grows_with_magnitude(self, uncut):
        i = np.asarray(uncut["i_ab"])
        z = np.asarray(uncut["redshift"])
        medians = [np.median(z[(i >= lo) & (i < lo + 1.5)]) for lo in (21.0, 22.5, 24.0, 25.5)]
        assert np.all(np.diff(medians) > 0.05), medians
        # p(z|i) ∝ z² exp(-z/z0) has median 2.674 z0.
        band = (i >= 24.0) & (i < 24.5)
        assert np.median(z[band]) == pytest.approx(2.674 * redshiftScale(24.25), rel=0.1)
        assert (z > 0).all() and (z < 6).all()

    def test_sizes_shrink_with_magnitude(self, uncut):
        disks = np.asarray(uncut["bulge_fraction"]) == 0
        i = np.asarray(uncut["i_ab"])[disks]
        hlr = np.asarray(uncut["hlr_disk"])[disks]
        assert np.median(hlr[i < 24]) > 1.2 * np.median(hlr[i > 26])
        slope = np.polyfit(i, np.log(hlr), 1)[0]
        assert slope == pytest.approx(PopulationConfig().sizeSlope, abs=0.02)
        # Disks are flattened by inclination more than bulges are.
        hasBulge = np.asarray(uncut["hlr_bulge"]) > 0
        assert np.median(uncut["q_disk"][disks]) < np.median(uncut["q_bulge"][hasBulge]) - 0.1

    def test_colours(self, uncut):
        # At low redshift the elliptical template is far redder than the irregular one.
        z = np.array([0.1, 0.3, 0.5])
        elliptical = templateColours(np.zeros(3), z)
        irregular = templateColours(np.full(3, 3.0), z)
        for blue, red in ((0, 1), (1, 2)):  # u - g, g - r
            assert np.all(elliptical[:, blue] - elliptical[:, red] > irregular[:, blue] - irregular[:, red] + 0.3)
        # The same in the population: bulge-dominated galaxies are redder than disks.
        low = np.asarray(uncut["redshift"]) < 0.6
        gr = np.asarray(uncut["g_ab"] - uncut["r_ab"])
        bulgy = np.asarray(uncut["bulge_fraction"]) > 0.5
        assert np.median(gr[low & bulgy]) > np.median(gr[low & ~bulgy]) + 0.3
        # Intergalactic absorption makes galaxies beyond z ≈ 3.5 u-band dropouts.
        high = np.asarray(uncut["redshift"]) > 3.5
        ug = np.asarray(uncut["u_ab"] - uncut["g_ab"])
        assert np.median(ug[high]) > 1.5 > np.median(ug[~high])


class TestPopulationConfig:
    def test_frozen_rejects_unknown_and_inconsistent(self):
        config = PopulationConfig()
        with pytest.raises(ValidationError):
            config.countsSlope = 0.4
        with pytest.raises(ValidationError, match="countSlope"):
            PopulationConfig(countSlope=0.4)
        with pytest.raises(ValidationError, match="exceeds 1"):
            PopulationConfig(diskOnlyFraction=0.7, bulgeDominatedFraction=0.4)
        with pytest.raises(ValidationError, match="sizeRange"):
            PopulationConfig(sizeRange=(1.0, 0.5))
        for name, field in PopulationConfig.model_fields.items():
            assert field.description, name


def test_plots_write_small_pngs(tmp_path):
    plots = pytest.importorskip("lsst.meas.extensions.madness.sim.populationPlots")
    population = generatePopulation(400, seed=8, snrCut=None)
    reference = generatePopulation(60, seed=9, snrCut=None)
    paths = plots.plotPopulationComparison(population, reference, tmp_path / "figures", prefix="test")
    assert [p.name for p in paths] == ["test_snr_cut.png", "test_properties.png", "test_colours.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert 5_000 < path.stat().st_size < 150_000
