"""Levenberg-Marquardt in latent space (deblend/levenbergMarquardt.py): it reaches the optimum Adam
reaches, in fewer steps; its bookkeeping; the finite-difference Jacobians and prior Hessians it uses;
and the task with ``optimizer="lm"``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lsst.meas.extensions.madness.afw.table import SourceTable
from lsst.meas.extensions.madness.deblend.levenbergMarquardt import fitLatentsLM
from lsst.meas.extensions.madness.deblend.mapCore import MapConfig, MapObjective, fitLatents, placeStamps
from lsst.meas.extensions.madness.deblend.uncertainty import priorHessian, stampJacobians
from lsst.meas.extensions.madness.models import ModelConfig, loadModels
from lsst.meas.extensions.madness.testing import makeMockMultibandExposure
from lsst.meas.extensions.madness.testing.deblenders import quickMadnessTask

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")

TINY = ModelConfig.fromProfile("tiny")


@pytest.fixture(scope="module")
def models(tinyModelDirectory, device):
    return loadModels(tinyModelDirectory, device=device)


def _blends(models, nBlends=3, k=2, size=70, seed=1, noise=0.01):
    """Noisy data decoded from known latents, with a weight that makes the likelihood matter."""
    generator = torch.Generator().manual_seed(seed)  # on the CPU: the same numbers on every device
    truth = (0.7 * torch.randn(nBlends, k, TINY.latentDim, generator=generator)).to(models.device)
    rows = torch.randint(0, size - 45, (nBlends, k), generator=generator).to(models.device)
    cols = torch.randint(0, size - 45, (nBlends, k), generator=generator).to(models.device)
    present = torch.ones(nBlends, k, dtype=torch.bool, device=models.device)
    with torch.no_grad():
        stamps = models.decode(truth.reshape(-1, TINY.latentDim)).view(nBlends, k, 6, 45, 45)
        data = placeStamps(stamps, rows, cols, present, size, size)
    scale = float(data.abs().max())
    data = data / scale + noise * torch.randn(data.shape, generator=generator).to(models.device)
    weight = torch.full_like(data, 1 / noise**2)
    return truth, data, weight, rows, cols, present, scale


class _Scaled(torch.nn.Module):
    """The tiny decoder's stamps divided by a constant, so that the data are of order one."""

    def __init__(self, decoder, scale):
        super().__init__()
        self.decoder, self.scale = decoder, scale

    def forward(self, z):
        return self.decoder(z) / self.scale


def test_lm_reaches_adams_optimum_in_fewer_steps(models, tolerance):
    truth, data, weight, rows, cols, present, scale = _blends(models)
    objective = MapObjective(_Scaled(models.decoder, scale), models.flowLogProb)
    start = truth + 0.3 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(3)).to(models.device)
    adam = fitLatents(objective, start, data, weight, rows, cols, present,
                      MapConfig(lr=0.02, maxIter=2000, minIter=300, tolerance=1e-4))
    lm = fitLatentsLM(objective, start, data, weight, rows, cols, present, MapConfig(optimizer="lm", maxIter=100))
    assert bool(lm.converged.all()), lm.iterations
    # Both end at the same loss (LM no higher), LM in far fewer (more expensive) steps.
    assert torch.all(lm.loss <= adam.loss + 0.05 * adam.loss.abs().clamp(min=1)), (lm.loss, adam.loss)
    assert torch.all(lm.iterations < adam.iterations // 5), (lm.iterations, adam.iterations)
    # Its loss never rises, and the returned numbers are those of the returned latents.
    assert torch.all(lm.history[1:] <= lm.history[:-1])
    torch.testing.assert_close(objective(lm.latents, data, weight, rows, cols, present)[0], lm.loss, **tolerance)


def test_padding_and_bookkeeping(models):
    truth, data, weight, rows, cols, present, scale = _blends(models, nBlends=2, k=3)
    present[0, 2] = False  # blend 0 has two galaxies, padded to three
    objective = MapObjective(_Scaled(models.decoder, scale), models.flowLogProb)
    start = torch.zeros_like(truth)
    start[0, 2] = 5.0
    result = fitLatentsLM(objective, start, data, weight, rows, cols, present, MapConfig(optimizer="lm", maxIter=3))
    torch.testing.assert_close(result.latents[0, 2], start[0, 2])  # the padding never moves
    assert torch.all(result.iterations <= 3) and result.history.shape[1] == 2
    assert not bool(result.timedOut.any())
    # Out of time before the first step: every blend is marked, and keeps its start.
    late = fitLatentsLM(objective, start, data, weight, rows, cols, present, MapConfig(optimizer="lm"), timeLimit=0.0)
    assert bool(late.timedOut.all()) and not bool(late.converged.any())
    torch.testing.assert_close(late.latents, start)


def test_a_blend_at_its_optimum_stops_at_once(models):
    """Data decoded from the start and a flat prior: no step gains, so the blend stops after one."""

    class Flat(torch.nn.Module):
        def forward(self, z):
            return 0.0 * z.sum(dim=1)

    truth, _, _, rows, cols, present, scale = _blends(models, nBlends=1, noise=1e-6)
    decoder = _Scaled(models.decoder, scale)
    with torch.no_grad():
        exact = placeStamps(decoder(truth.reshape(-1, TINY.latentDim)).view(1, 2, 6, 45, 45), rows, cols, present,
                            70, 70)
    result = fitLatentsLM(MapObjective(decoder, Flat()), truth, exact, torch.ones_like(exact), rows, cols, present,
                          MapConfig(optimizer="lm"))
    assert bool(result.converged[0]) and int(result.iterations[0]) == 1


def test_finite_difference_jacobians_and_prior_hessians_match_the_exact_ones(models, tolerance):
    latents = 0.5 * torch.randn(4, TINY.latentDim, generator=torch.Generator().manual_seed(5)).to(models.device)
    stamps, exact = stampJacobians(models.decoder, latents)
    again, approximate = stampJacobians(models.decoder, latents, step=1e-3, chunk=7)
    torch.testing.assert_close(again, stamps, **tolerance)
    assert float((approximate - exact).norm() / exact.norm()) < 0.05
    present = torch.ones(2, 2, dtype=torch.bool, device=models.device)
    present[1, 1] = False
    grid = latents.view(2, 2, -1)
    hessian = priorHessian(models.flowLogProb, grid, present)
    differenced = priorHessian(models.flowLogProb, grid, present, step=1e-3)
    assert float((differenced - hessian).norm() / hessian.norm()) < 0.02
    assert float(differenced[1, 1].abs().max()) == 0.0


def test_task_with_lm_deblends_every_peak(tinyModelDirectory, device):
    mock = makeMockMultibandExposure(shape=(110, 110), nGalaxies=4, seed=5, hlrRange=(0.3, 0.6))
    parents = mock.catalog
    task = quickMadnessTask(tinyModelDirectory, parents.schema.copy(), optimizer="lm", device=device)
    catalog = task.run(mock.mExposure, parents).deblendedCatalog
    children = catalog[len(parents):]
    assert len(children) == sum(len(p.getFootprint().getPeaks()) for p in parents)
    assert np.all(np.isfinite(children["madness_flux_r"]))
    assert np.all(catalog[:len(parents)]["deblend_iterations"] <= 5)


def test_the_task_rejects_an_unknown_optimizer(tinyModelDirectory):
    with pytest.raises(Exception, match="optimizer"):
        quickMadnessTask(tinyModelDirectory, SourceTable.makeMinimalSchema(), optimizer="lbfgs")
