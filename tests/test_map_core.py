"""The MAP core: stamp placement, the scriptable objective, and the batched fit with its stopping rule.

Tiny random networks exported as TorchScript play the decoder and the flow; data are decoded
from known latents, so the optimum is known. The networks and tensors are on ``--device``.
"""

from __future__ import annotations

import pytest
import torch

from lsst.meas.extensions.madness.deblend import MapConfig, MapObjective, fitLatents, placeStamps
from lsst.meas.extensions.madness.models import ModelConfig, loadModels

TINY = ModelConfig.fromProfile("tiny")


@pytest.fixture(scope="module")
def models(tinyModelDirectory, device):
    return loadModels(tinyModelDirectory, device=device)


def _blends(models, nBlends=3, k=2, size=70, seed=1):
    """Data decoded from known latents: (truth latents, data, weight, rows, cols, present)."""
    generator = torch.Generator().manual_seed(seed)
    truth = torch.randn(nBlends, k, TINY.latentDim, generator=generator).to(models.device)
    rows = torch.randint(0, size - 45, (nBlends, k), generator=generator).to(models.device)
    cols = torch.randint(0, size - 45, (nBlends, k), generator=generator).to(models.device)
    present = torch.ones(nBlends, k, dtype=torch.bool, device=models.device)
    with torch.no_grad():
        stamps = models.decode(truth.reshape(-1, TINY.latentDim)).view(nBlends, k, 6, 45, 45)
        data = placeStamps(stamps, rows, cols, present, size, size)
    # The tiny decoder's stamps are faint: a high weight makes the likelihood dominate the prior.
    weight = torch.full_like(data, 1e9)
    return truth, data, weight, rows, cols, present


def test_place_stamps_matches_a_loop(device):
    generator = torch.Generator().manual_seed(0)
    stamps = torch.rand(2, 3, 2, 5, 5, generator=generator).to(device)
    rows = torch.tensor([[0, 3, 7], [1, 1, 6]], device=device)
    cols = torch.tensor([[0, 8, 2], [4, 4, 0]], device=device)
    present = torch.tensor([[True, True, False], [True, True, True]], device=device)
    canvas = placeStamps(stamps, rows, cols, present, 12, 13)
    expected = torch.zeros(2, 2, 12, 13, device=device)
    for b in range(2):
        for k in range(3):
            if present[b, k]:
                expected[b, :, rows[b, k]:rows[b, k] + 5, cols[b, k]:cols[b, k] + 5] += stamps[b, k]
    torch.testing.assert_close(canvas, expected)


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_objective_scripts_and_agrees_with_eager(models, tolerance):
    _, data, weight, rows, cols, present = _blends(models)
    latents = torch.randn(3, 2, TINY.latentDim, device=models.device)
    eager = MapObjective(models.decoder, models.flowLogProb)
    scripted = torch.jit.script(eager)
    for a, b in zip(eager(latents, data, weight, rows, cols, present), scripted(latents, data, weight, rows, cols,
                                                                                 present)):
        torch.testing.assert_close(a, b, **tolerance)
    loss, logLikelihood, logPrior = eager(latents, data, weight, rows, cols, present)
    torch.testing.assert_close(loss, -(logLikelihood + logPrior.sum(1)), **tolerance)


def test_absent_galaxies_change_nothing(models, tolerance):
    _, data, weight, rows, cols, present = _blends(models, k=2)
    objective = MapObjective(models.decoder, models.flowLogProb)
    latents = torch.randn(3, 2, TINY.latentDim, device=models.device)
    padded = torch.cat([latents, 50 * torch.randn(3, 1, TINY.latentDim, device=models.device)], dim=1)
    pad = lambda t: torch.cat([t, torch.zeros(3, 1, dtype=t.dtype, device=t.device)], dim=1)  # noqa: E731
    reference = objective(latents, data, weight, rows, cols, present)[0]
    withPadding = objective(padded, data, weight, pad(rows), pad(cols), pad(present))[0]
    torch.testing.assert_close(reference, withPadding, **tolerance)


def test_fit_recovers_the_data_and_stops(models, tolerance):
    truth, data, weight, rows, cols, present = _blends(models)
    objective = MapObjective(models.decoder, models.flowLogProb)
    start = truth + 0.5 * torch.randn(truth.shape, generator=torch.Generator().manual_seed(3)).to(models.device)
    result = fitLatents(objective, start, data, weight, rows, cols, present)
    initialMisfit = -objective(start, data, weight, rows, cols, present)[1]
    assert torch.all(-result.logLikelihood < 0.05 * initialMisfit), (initialMisfit, result.logLikelihood)
    assert torch.all(result.history[-1] < result.history[0])
    assert result.converged.any() and torch.all(result.iterations <= 200)
    assert torch.all(result.iterations[result.converged] >= 40)
    # The returned numbers are those of the returned latents.
    again = objective(result.latents, data, weight, rows, cols, present)[0]
    torch.testing.assert_close(again, result.loss, **tolerance)


class _Flat(torch.nn.Module):
    """An objective that no step can improve."""

    def forward(self, latents, data, weight, rows, cols, present, offsets=None, kernels=None, ratio=1.0, channels=None):
        loss = latents.sum(dim=(1, 2)) * 0 + 1
        return loss, -loss, torch.zeros(latents.shape[:2], device=latents.device)


def test_a_blend_that_cannot_improve_stops_at_min_iter(models):
    _, data, weight, rows, cols, present = _blends(models, nBlends=2)
    result = fitLatents(_Flat(), torch.zeros(2, 2, TINY.latentDim, device=models.device), data, weight, rows, cols,
                        present, MapConfig(maxIter=60, minIter=20))
    assert result.converged.all() and result.iterations.tolist() == [20, 20]
    assert len(result.history) == 21


class _Stiff(torch.nn.Module):
    """A narrow quadratic bowl (minimum at 0) on which Adam's learning rate overshoots and oscillates."""

    def forward(self, latents, data, weight, rows, cols, present, offsets=None, kernels=None, ratio=1.0, channels=None):
        loss = 1e4 * (latents**2).sum(dim=(1, 2))
        return loss, -loss, torch.zeros(latents.shape[:2], device=latents.device)


def test_a_blend_keeps_the_lowest_loss_it_reached(device):
    """Steps that overshoot are not kept: without backtracking the optimiser ends above where it started
    but the latents of the lowest loss seen are returned; with it (the default) a blend whose loss rose
    goes back and steps shorter, so its loss never rises and ends below the plain optimiser's."""
    initial = torch.full((2, 1, 4), 0.05, device=device)
    initial[1] = 0.5
    args = (torch.zeros(1, device=device), torch.zeros(1, device=device), torch.zeros(2, 1, device=device),
            torch.zeros(2, 1, device=device), torch.ones(2, 1, dtype=torch.bool, device=device))
    settings = dict(lr=0.3, maxIter=20, minIter=20, lrDecay=1.0)
    plain = fitLatents(_Stiff(), initial, *args, MapConfig(backtrack=False, **settings))
    assert float(plain.history[-1, 0]) > float(plain.history[0, 0])  # it ended above where it started ...
    torch.testing.assert_close(plain.loss.double(), plain.history.min(dim=0).values)  # ... the best step is kept
    careful = fitLatents(_Stiff(), initial, *args, MapConfig(**settings))
    assert bool((careful.history[1:] <= careful.history[:-1]).all())
    assert bool((careful.loss < plain.loss).all())


def test_progress_is_told_as_blends_stop(models):
    """``onStop`` hears of each blend when it stops, during the fit, not all at the end."""
    _, data, weight, rows, cols, present = _blends(models, nBlends=2)
    heard = []
    result = fitLatents(_Flat(), torch.zeros(2, 2, TINY.latentDim, device=models.device), data, weight, rows, cols,
                        present, MapConfig(maxIter=60, minIter=20), onStop=heard.append)
    assert sum(heard) == int(result.converged.sum()) == 2 and len(result.history) < 61


def test_max_iter_bounds_a_blend_that_keeps_improving(models):
    truth, data, weight, rows, cols, present = _blends(models, nBlends=1)
    objective = MapObjective(models.decoder, models.flowLogProb)
    result = fitLatents(objective, truth + 1.0, data, weight, rows, cols, present, MapConfig(maxIter=5, minIter=5))
    assert int(result.iterations[0]) == 5 and not bool(result.converged[0]) and len(result.history) == 6


def test_shift_stamps_moves_the_centroid_and_keeps_the_flux(device):
    from lsst.meas.extensions.madness.deblend import shiftStamps

    y, x = torch.meshgrid(torch.arange(45.0, device=device), torch.arange(45.0, device=device), indexing="ij")
    galaxy = torch.exp(-((y - 22) ** 2 + (x - 22) ** 2) / (2 * 2.0**2)).expand(1, 2, 45, 45)
    shifted = shiftStamps(galaxy, torch.tensor([[0.3, -0.4]], device=device))
    assert torch.allclose(shiftStamps(galaxy, torch.zeros(1, 2, device=device)), galaxy, atol=1e-6)
    assert torch.allclose(shifted.sum(dim=(2, 3)), galaxy.sum(dim=(2, 3)), rtol=1e-5)
    flux = shifted[0, 0].sum()
    assert abs(float((shifted[0, 0] * y).sum() / flux) - 22.3) < 0.03
    assert abs(float((shifted[0, 0] * x).sum() / flux) - 21.6) < 0.03


def test_objective_with_offsets_scripts_and_agrees_with_eager(models):
    latents, data, weight, rows, cols, present = _blends(models, nBlends=2)
    offsets = torch.rand(*rows.shape, 2, device=models.device) - 0.5
    eager = MapObjective(models.decoder, models.flowLogProb)
    scripted = torch.jit.script(eager)
    reference = eager(latents, data, weight, rows, cols, present, offsets)
    for a, b in zip(reference, scripted(latents, data, weight, rows, cols, present, offsets)):
        assert torch.allclose(a, b, rtol=1e-5, atol=1e-4)
    # An offset changes the model, hence the likelihood.
    assert not torch.allclose(reference[1], eager(latents, data, weight, rows, cols, present)[1])
