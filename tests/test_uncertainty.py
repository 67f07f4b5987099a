"""Laplace uncertainties (deblend/uncertainty.py): the known answer of a linear-Gaussian problem, the
empirical scatter of MAP fluxes, anticorrelated neighbours, and the task's columns."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from lsst.meas.extensions.madness.deblend.mapCore import MapConfig, MapObjective, fitLatents
from lsst.meas.extensions.madness.deblend.uncertainty import laplaceUncertainties, posteriorCovariance
from lsst.meas.extensions.madness.testing import makeMockMultibandExposure
from lsst.meas.extensions.madness.testing.deblenders import quickMadnessTask

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

D, C, S = 4, 2, 9


class LinearDecoder(nn.Module):
    """stamp = A z (+ offset): latent 0 scales a Gaussian blob, the others add small patterns."""

    def __init__(self, seed: int = 0, offset: float = 0.0):
        super().__init__()
        generator = torch.Generator().manual_seed(seed)
        yy, xx = torch.meshgrid(torch.arange(S) - S // 2, torch.arange(S) - S // 2, indexing="ij")
        blob = torch.exp(-(xx**2 + yy**2) / (2 * 1.5**2))
        columns = [blob.expand(C, S, S) * torch.tensor([1.0, 0.7]).view(C, 1, 1)]
        columns += [0.3 * torch.randn(C, S, S, generator=generator) * blob for _ in range(D - 1)]
        self.register_buffer("matrix", torch.stack(columns).reshape(D, C * S * S))
        self.offset = offset

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.matrix + self.offset).view(-1, C, S, S)


class GaussianLogProb(nn.Module):
    """log N(z; 0, τ² I) (up to a constant)."""

    def __init__(self, tau: float = 1.0):
        super().__init__()
        self.tau = tau

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return -0.5 * (z**2).sum(dim=1) / self.tau**2


def _twoGalaxies(separation: int, noise: float = 0.1, height: int = 12, width: int = 24):
    rows = torch.tensor([[1, 1]])
    cols = torch.tensor([[2, 2 + separation]])
    present = torch.ones(1, 2, dtype=torch.bool)
    weight = torch.full((1, C, height, width), 1.0 / noise**2)
    return rows, cols, present, weight


def _exactCovariance(decoder: LinearDecoder, rows, cols, weight, tau: float) -> torch.Tensor:
    """(AᵀWA + I/τ²)⁻¹ with A the design matrix of the placed stamps, built pixel by pixel."""
    height, width = weight.shape[2:]
    matrix = decoder.matrix.view(D, C, S, S).double()
    design = torch.zeros(C, height, width, 2 * D, dtype=torch.float64)
    for k in range(2):
        r, c = int(rows[0, k]), int(cols[0, k])
        design[:, r:r + S, c:c + S, k * D:(k + 1) * D] = matrix.permute(1, 2, 3, 0)
    a = design.reshape(-1, 2 * D)
    w = weight[0].reshape(-1).double()
    return torch.linalg.inv(a.T @ (w[:, None] * a) + torch.eye(2 * D, dtype=torch.float64) / tau**2)


def _on(device, *tensors):
    return [t.to(device) for t in tensors]


def test_linear_gaussian_posterior_is_exact(device):
    """A linear decoder and a Gaussian prior: the Laplace covariance is the exact posterior covariance, and
    the flux σ the exact σ of the linear flux."""
    decoder, prior = LinearDecoder(), GaussianLogProb(tau=2.0)
    rows, cols, present, weight = _twoGalaxies(separation=3)
    latents = torch.randn(1, 2, D)
    result = laplaceUncertainties(decoder.to(device), prior, *_on(device, latents, weight, rows, cols, present))
    exact = _exactCovariance(decoder.cpu(), rows, cols, weight, tau=2.0)  # on the CPU, in float64
    np.testing.assert_allclose(result.covariance[0].cpu().numpy(), exact.numpy(), rtol=1e-4, atol=1e-9)
    gradient = decoder.matrix.view(D, C, S * S).sum(dim=-1).double()  # d flux_c / d z_k (D, C)
    for k in range(2):
        block = exact[k * D:(k + 1) * D, k * D:(k + 1) * D]
        expected = torch.sqrt(torch.einsum("dc,de,ec->c", gradient, block, gradient)).numpy()
        np.testing.assert_allclose(result.fluxErr[0, k], expected, rtol=1e-4)
    assert int(result.clipped[0]) == 0


def test_sigma_matches_the_scatter_of_map_fluxes_over_noise_realisations(device):
    """A nonlinear decoder (softplus of the linear one) fitted by the MAP core on 200 noise realisations of
    one blend: the Laplace σ of each galaxy's flux, at the MAP of each realisation, matches the scatter of
    the MAP fluxes (within 15 %; the σ's own scatter and 200 realisations' sampling error are ~5 %)."""
    torch.manual_seed(0)

    class SoftplusDecoder(LinearDecoder):
        def forward(self, z):
            return nn.functional.softplus(3.0 * super().forward(z)) / 3.0

    decoder, prior = SoftplusDecoder(seed=1).to(device), GaussianLogProb(tau=3.0)
    rows, cols, present, weight = _on(device, *_twoGalaxies(separation=4, noise=0.05))
    truth = torch.tensor([[[2.0, 0.3, -0.2, 0.1], [1.5, -0.3, 0.2, 0.0]]], device=device)
    objective = MapObjective(decoder, prior)
    n = 200
    with torch.no_grad():
        from lsst.meas.extensions.madness.deblend.mapCore import placeStamps

        clean = placeStamps(decoder(truth.view(2, D)).view(1, 2, C, S, S), rows, cols, present, *weight.shape[2:])
    data = clean + 0.05 * torch.randn(n, *clean.shape[1:]).to(device)  # the CPU's numbers on every device
    expand = lambda t: t.expand(n, *t.shape[1:])  # noqa: E731
    result = fitLatents(objective, expand(truth).clone(), data, expand(weight), expand(rows), expand(cols),
                        expand(present), MapConfig(lr=0.02, maxIter=600, minIter=300, tolerance=0.0))
    fluxes = decoder(result.latents.reshape(2 * n, D)).sum(dim=(-2, -1)).view(n, 2, C).detach().cpu().numpy()
    laplace = laplaceUncertainties(decoder, prior, result.latents.detach(), expand(weight), expand(rows),
                                   expand(cols), expand(present))
    scatter = fluxes.std(axis=0, ddof=1)  # (2, C)
    predicted = np.sqrt(np.mean(laplace.fluxErr**2, axis=0))
    np.testing.assert_allclose(predicted, scatter, rtol=0.15)


def test_overlapping_galaxies_have_anticorrelated_fluxes(device):
    decoder, prior = LinearDecoder(), GaussianLogProb(tau=10.0)
    gradient = decoder.matrix.view(D, C, S * S).sum(dim=-1).double()[:, 0]  # band 0
    correlations = []
    for separation in (1, 12):
        rows, cols, present, weight = _twoGalaxies(separation, width=30)
        covariance = laplaceUncertainties(decoder.to(device), prior, *_on(device, torch.zeros(1, 2, D), weight, rows,
                                                                          cols, present)).covariance[0].cpu()
        cross = gradient @ covariance[:D, D:] @ gradient
        variances = [gradient @ covariance[k * D:(k + 1) * D, k * D:(k + 1) * D] @ gradient for k in range(2)]
        correlations.append(float(cross / torch.sqrt(variances[0] * variances[1])))
    assert correlations[0] < -0.3, correlations  # one pixel apart: strongly anticorrelated
    assert abs(correlations[1]) < 0.05, correlations  # 12 pixels apart, stamps of 9: independent


def test_guard_raises_non_positive_eigenvalues(device):
    hessian = torch.tensor([[[2.0, 0.0], [0.0, -1.0]]], dtype=torch.float64, device=device)
    covariance, clipped = posteriorCovariance(hessian, minCurvature=0.5)
    np.testing.assert_allclose(covariance[0].cpu().numpy(), np.diag([0.5, 2.0]))
    assert int(clipped[0]) == 1


_POSITIONS = np.array([[25, 25], [33, 28], [85, 85], [80, 28]], float)


@pytest.mark.parametrize("forceFallback", [False, True])
def test_task_columns(tinyModelDirectory, forceFallback, device):
    """MADNESS children get finite, positive flux errors and finite shapes; fallback children NaN."""
    mock = makeMockMultibandExposure(shape=(110, 110), nGalaxies=4, seed=5, positions=_POSITIONS, hlrRange=(0.3, 0.6))
    task = quickMadnessTask(tinyModelDirectory, mock.catalog.schema.copy(), forceFallback=forceFallback,
                            device=device)
    catalog = task.run(mock.mExposure, mock.catalog).deblendedCatalog
    children = catalog[len(mock.catalog):]
    assert len(children) == 4
    columns = [task.columns.fluxErrColumn(b) for b in task.bands] + ["madness_e1Err", "madness_e2Err"]
    values = np.array([[child.get(name) for name in columns] for child in children])
    shapes = np.array([[child.get(name) for name in ("madness_e1", "madness_e2")] for child in children])
    if forceFallback:
        assert np.isnan(values).all() and np.isnan(shapes).all()
    else:
        errors = values[:, :len(task.bands)]
        fluxes = np.array([[child.get(task.columns.fluxColumn(b)) for b in task.bands] for child in children])
        # The untrained tiny decoder draws nothing in some bands (zero flux, zero gradient, zero σ).
        assert np.isfinite(errors).all() and (errors >= 0).all() and (errors[fluxes != 0] > 0).all()
        assert (errors > 0).any()
        # The untrained tiny decoder's stamps may defeat HSM; where it measures a shape, its σ is finite.
        measured = np.isfinite(shapes).all(axis=1)
        assert np.isfinite(values[measured, len(task.bands):]).all()
        assert (np.abs(shapes[measured]) <= 1).all()


def test_task_applies_its_error_model(tinyModelDirectory, device):
    """The columns are the Laplace σ with the config's error model applied, term by term."""
    from lsst.meas.extensions.madness.deblend.errorModel import ErrorModel

    mock = makeMockMultibandExposure(shape=(110, 110), nGalaxies=4, seed=5, positions=_POSITIONS, hlrRange=(0.3, 0.6))
    plain = quickMadnessTask(tinyModelDirectory, mock.catalog.schema.copy(), device=device,
                             **ErrorModel().configOverrides()).run(mock.mExposure, mock.catalog)
    model = ErrorModel(fluxScale=2.0, fluxFloor=0.1, fluxBlendedness=0.5, shapeScale=1.5, shapeFloor=0.05,
                       shapeBlendedness=0.2, shapeNoise=0.8, chi2Inflation=True)
    modelled = quickMadnessTask(tinyModelDirectory, mock.catalog.schema.copy(), device=device,
                                **model.configOverrides()).run(mock.mExposure, mock.catalog)
    n = len(mock.catalog)
    for a, b in zip(plain.deblendedCatalog[n:], modelled.deblendedCatalog[n:]):
        flux, laplace = a.get("madness_flux_r"), a.get("madness_fluxErr_r")
        inflation = math.sqrt(max(1.0, a.get("deblend_chi2")))
        share = min(max(a.get("deblend_blendedness"), 0.0), 1.0)
        assert b.get("madness_fluxErr_r") == pytest.approx(
            inflation * math.sqrt((2 * laplace) ** 2 + (0.1 * flux) ** 2 + (0.5 * share * flux) ** 2), rel=1e-4)
        if np.isfinite(a.get("madness_e1Err")) and laplace > 0:
            expected = inflation * math.sqrt((1.5 * a.get("madness_e1Err")) ** 2 + 0.05**2 + (0.2 * share) ** 2
                                             + (0.8 * laplace / abs(flux)) ** 2)
            assert b.get("madness_e1Err") == pytest.approx(expected, rel=1e-4)


def test_pulls_report_and_error_model_calibration(tmp_path, tinyFrameModelDirectory, device):
    from lsst.meas.extensions.madness.benchmark.pulls import calibrateErrorModel, pullsReport, pullTable, writePulls
    from lsst.meas.extensions.madness.deblend.errorModel import ErrorModel

    report = pullsReport(1, calibrationFields=1, populationSize=3000, modelDir=str(tinyFrameModelDirectory),
                         device=device, progress=lambda line: None)
    laplace = report["tables"]["laplace"]
    assert report["nChildren"] >= 3 and sum(row["flux"]["n"] for row in laplace) == report["nChildren"]
    assert report["uncertaintyMsPerParent"] > 0
    assert {"default", "scaleAndFloor", "calibrated", "calibratedTrusted"} <= set(report["tables"])
    text = writePulls(report, "madness-bench pulls --fields 1", tmp_path / "pulls.md")
    assert "| 0–10 |" in text and "`errChi2Inflation` = True" in text and (tmp_path / "pulls.json").is_file()

    rng = np.random.default_rng(0)

    def rows(n: int, fluxErr, snr=50.0, **extra) -> list[dict]:
        truth = rng.uniform(100, 1000, n)
        out = []
        for t in truth:
            row = {"snr": snr, "fluxTrue": t, "fluxErr": fluxErr(t), "e1": 0.0, "e1True": 0.0, "e1Err": 1.0,
                   "chi2": 1.0, "blendedness": 0.0}
            row.update(extra)
            out.append(row)
        return out

    # Errors of 10 % where the Laplace σ says 1e-6: the fractional floor that makes the pulls 1 is found.
    sample = rows(600, lambda t: 1e-6 * t)
    for row in sample:
        row["flux"] = row["fluxTrue"] * (1 + 0.1 * rng.normal())
    model = calibrateErrorModel(sample, ("floor",), chi2Inflation=False)
    assert model.fluxFloor == pytest.approx(0.1, rel=0.15)
    assert pullTable(sample, model)[2]["flux"]["std"] == pytest.approx(1.0, rel=0.15)
    # Noise twice the Laplace σ at every flux: the scale finds it, the floor stays ~0.
    sample = rows(300, lambda t: 5.0, snr=5.0) + rows(300, lambda t: 5.0, snr=200.0)
    for row in sample:
        row["flux"] = row["fluxTrue"] + 10.0 * rng.normal()
    model = calibrateErrorModel(sample, ("scale", "floor"), chi2Inflation=False)
    assert model.fluxScale == pytest.approx(2.0, abs=0.3) and model.fluxFloor < 0.01
    # An error that grows with the blendedness, none without: the blendedness term carries it, and a
    # scale and floor alone cannot calibrate both blended and isolated children.
    sample = rows(300, lambda t: 1.0, blendedness=0.0) + rows(300, lambda t: 1.0, blendedness=0.5)
    for row in sample:
        row["flux"] = row["fluxTrue"] * (1 + 0.2 * row["blendedness"] * rng.normal()) + rng.normal()
    full = calibrateErrorModel(sample, ("scale", "floor", "blendedness"), chi2Inflation=False)
    assert full.fluxBlendedness == pytest.approx(0.2, rel=0.2)
    blended = [row for row in sample if row["blendedness"] > 0]
    isolated = [row for row in sample if row["blendedness"] == 0]
    for part in (blended, isolated):
        assert pullTable(part, full)[2]["flux"]["std"] == pytest.approx(1.0, rel=0.2)
    assert pullTable(isolated, ErrorModel(fluxFloor=0.1))[2]["flux"]["std"] < 0.8


def test_failed_uncertainties_leave_the_fit(tinyModelDirectory, monkeypatch, device):
    """Uncertainties that raise give NaN columns; the parents keep their MADNESS children."""
    import lsst.meas.extensions.madness.deblend.uncertainty as uncertainty

    def broken(*args, **kwargs):
        raise RuntimeError("broken")

    monkeypatch.setattr(uncertainty, "laplaceUncertainties", broken)
    mock = makeMockMultibandExposure(shape=(110, 110), nGalaxies=4, seed=5, positions=_POSITIONS, hlrRange=(0.3, 0.6))
    task = quickMadnessTask(tinyModelDirectory, mock.catalog.schema.copy(), device=device)
    children = task.run(mock.mExposure, mock.catalog).deblendedCatalog[len(mock.catalog):]
    assert not any(child.get("deblend_fallback") for child in children)
    assert all(np.isnan(child.get("madness_fluxErr_r")) for child in children)
