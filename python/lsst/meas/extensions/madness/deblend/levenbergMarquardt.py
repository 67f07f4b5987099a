r"""Levenberg-Marquardt in latent space: a second-order optimiser for the MAP core.

The MAP loss of a blend (:mod:`.mapCore`) is a weighted least-squares term plus the flow's
negative log-prior,

.. math::

    \mathcal L(Z) = \tfrac12 \sum_p w_p \big(y_p - m_p(Z)\big)^2 - \sum_k \log p_\varphi(z_k),

over the :math:`K \times D` latents of its galaxies (:math:`D = 16`: small). Each step linearises the
model pixels, :math:`m(Z + \Delta) \approx m(Z) + J \Delta`, and solves

.. math::

    \big(H + \lambda \,\mathrm{diag}(H)\big)\, \Delta = -g, \qquad
    H = J^\top W J + \Big[-\nabla^2 \log p_\varphi(z_k)\Big]_{+}, \qquad g = \nabla \mathcal L(Z),

with :math:`J^\top W J` the Gauss-Newton Hessian of the likelihood (:func:`~.uncertainty.gaussNewtonHessian`,
joint over overlapping galaxies), :math:`[\cdot]_+` the flow's Hessian per galaxy with its
negative eigenvalues set to zero (the flow's log-density is not concave), and :math:`g` the exact
gradient (autograd). The step is taken when it lowers :math:`\mathcal L`, and the damping
:math:`\lambda` of that blend is divided by :data:`DAMPING_DOWN`; otherwise :math:`\lambda` is
multiplied by :data:`DAMPING_UP` and the step solved again with the same :math:`H` (at most
:data:`MAX_RETRIES` times per step). The diagonal scaling (Marquardt's) makes the damping
independent of the latents' units.

The Jacobians are forward differences (:func:`~.uncertainty.stampJacobians`, step
:data:`JACOBIAN_STEP`; a galaxy's stamp depends on its own latent only): :math:`D` decoder passes
without automatic differentiation per galaxy, a few Adam steps' worth, whatever :math:`K`. Their
error (about 1 %) changes the steps, not the optimum: the gradient is exact.

Stopping: a blend stops (converged) when :data:`PATIENCE` steps in a row lowered its loss by less than
``lmTolerance`` (loss units: half a :math:`\chi^2`) or by less than ``lmRelativeTolerance`` times
what the fit has gained since its start (a long, shallow valley: a model that cannot fit the
data creeps on for many steps otherwise), or when no damping up to
:math:`\lambda_0 \cdot \mathrm{DAMPING\_UP}^{\mathrm{MAX\_RETRIES}}` finds a lower loss (a stationary
point); it stops unconverged at ``maxIter`` steps or when ``timeLimit`` runs out. The result has
the bookkeeping of :func:`~.mapCore.fitLatents` (:class:`~.mapCore.MapResult`): ``iterations``
counts Jacobian evaluations.

References
----------
Levenberg 1944, Q. Appl. Math. 2, 164; Marquardt 1963, SIAM J. Appl. Math. 11, 431;
Nocedal & Wright 2006, "Numerical Optimization", Ch. 10 (nonlinear least squares);
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 3.5 (the objective).

Examples
--------
A linear "decoder" with a flat prior: one step reaches the least-squares solution.

>>> import torch
>>> from lsst.meas.extensions.madness.deblend.mapCore import MapConfig, MapObjective
>>> class Linear(torch.nn.Module):
...     def forward(self, z):
...         return (z @ torch.tensor([[1.0, 0.0, 2.0], [0.0, 1.0, 1.0]])).view(-1, 3, 1, 1)
>>> class Flat(torch.nn.Module):
...     def forward(self, z):
...         return torch.zeros(z.shape[0])
>>> data = torch.tensor([1.0, 2.0, 4.0]).view(1, 3, 1, 1)
>>> zero = torch.zeros(1, 1, dtype=torch.long)
>>> result = fitLatentsLM(MapObjective(Linear(), Flat()), torch.zeros(1, 1, 2), data, torch.ones(1, 3, 1, 1),
...                       zero, zero, torch.ones(1, 1, dtype=torch.bool), MapConfig(optimizer="lm"))
>>> [round(v, 4) for v in result.latents.flatten().tolist()], bool(result.converged[0])
([1.0, 2.0], True)
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

from .mapCore import MapConfig, MapObjective, MapResult
from .uncertainty import gaussNewtonHessian, priorHessian, stampJacobians

__all__ = ["DAMPING_UP", "DAMPING_DOWN", "JACOBIAN_STEP", "MAX_RETRIES", "PATIENCE", "PRIOR_STEP", "fitLatentsLM"]

#: Factor on a blend's damping after a step that did not lower its loss.
DAMPING_UP = 4.0
#: Divisor of a blend's damping after a step that lowered its loss.
DAMPING_DOWN = 3.0
#: Latent step of the forward-difference Jacobians (:func:`~.uncertainty.stampJacobians`).
JACOBIAN_STEP = 1e-3
#: Latent step of the prior's finite-difference Hessian (:func:`~.uncertainty.priorHessian`).
PRIOR_STEP = 1e-3
#: Consecutive steps that gain less than the tolerances before a blend stops.
PATIENCE = 2
#: Most re-solves with a larger damping within one step (then the blend is at a stationary point).
MAX_RETRIES = 8


def _positivePart(hessians: torch.Tensor) -> torch.Tensor:
    """Symmetric matrices (..., D, D) with their negative eigenvalues set to zero."""
    values, vectors = torch.linalg.eigh(0.5 * (hessians + hessians.transpose(-1, -2)))
    return (vectors * values.clamp(min=0).unsqueeze(-2)) @ vectors.transpose(-1, -2)


def _pick(tensor: torch.Tensor | None, idx: torch.Tensor) -> torch.Tensor | None:
    return None if tensor is None else tensor[idx]


def _solve(hessian: torch.Tensor, gradient: torch.Tensor, damping: torch.Tensor) -> torch.Tensor:
    """Steps (B, N) solving (H + λ diag H) Δ = −g per blend, float64, with a unit floor on diag H."""
    diagonal = hessian.diagonal(dim1=-2, dim2=-1).clamp(min=1.0)
    system = hessian + torch.diag_embed(damping.view(-1, 1) * diagonal)
    return torch.linalg.solve(system, -gradient.unsqueeze(-1)).squeeze(-1)


def fitLatentsLM(objective: MapObjective, initial: torch.Tensor, data: torch.Tensor, weight: torch.Tensor,
                 rows: torch.Tensor, cols: torch.Tensor, present: torch.Tensor,
                 config: MapConfig = MapConfig(optimizer="lm"), offsets: torch.Tensor | None = None,
                 timeLimit: float | None = None, kernels: torch.Tensor | None = None, ratio: float = 1.0,
                 channels: torch.Tensor | None = None,
                 onStop: Callable[[int], None] | None = None) -> MapResult:
    """Minimise the MAP objective of a batch of blends by Levenberg-Marquardt (module docstring).

    Parameters
    ----------
    objective : `~.mapCore.MapObjective`
        A :class:`~.mapCore.MapObjective`: its ``decoder`` and ``flowLogProb`` give the Jacobians
        and the prior's Hessian.
    initial : `torch.Tensor`
        Starting latents (B, K, D).
    data, weight : `torch.Tensor`
        Each blend's pixels and inverse-variance weights (B, C, H, W), in the networks' units.
    rows, cols : `torch.Tensor`
        Stamp corners (B, K) on the canvas.
    present : `torch.Tensor`
        (B, K) False for the padding to the largest K.
    config : `~.mapCore.MapConfig`
        ``maxIter``, ``lmDamping`` (the initial λ), ``lmTolerance`` and ``lmRelativeTolerance`` are used.
    offsets, kernels, ratio, channels
        The observation model, as for :func:`~.mapCore.fitLatents`.
    timeLimit : `float`, optional
        Seconds after which the blends still running stop, marked ``timedOut``.
    onStop : callable, optional
        Told the number of blends that stop at each step.

    Returns
    -------
    result : `~.mapCore.MapResult`
        The latents of each blend's lowest loss, with its bookkeeping.

    Examples
    --------
    Two overlapping galaxies of a linear "decoder" under a flat prior, found in a few steps:

    >>> import torch
    >>> from torch import nn
    >>> from lsst.meas.extensions.madness.deblend.mapCore import placeStamps
    >>> _ = torch.manual_seed(0)
    >>> decoder = nn.Sequential(nn.Linear(2, 9), nn.Unflatten(1, (1, 3, 3)))   # latents (N, 2) → (N, 1, 3, 3)
    >>> flatPrior = nn.Sequential(nn.Linear(2, 1), nn.Flatten(0))
    >>> _ = nn.init.zeros_(flatPrior[0].weight), nn.init.zeros_(flatPrior[0].bias)
    >>> truth = torch.tensor([[[0.5, -1.0], [1.0, 2.0]]])                      # (B, K, D) = (1, 2, 2)
    >>> rows, cols = torch.tensor([[0, 1]]), torch.tensor([[0, 2]])
    >>> present = torch.ones(1, 2, dtype=torch.bool)
    >>> with torch.no_grad():
    ...     data = placeStamps(decoder(truth[0]).unsqueeze(0), rows, cols, present, 4, 5)
    >>> result = fitLatentsLM(MapObjective(decoder, flatPrior), torch.zeros(1, 2, 2), data, torch.ones_like(data),
    ...                       rows, cols, present)
    >>> result.latents.round(decimals=3).tolist(), bool(result.converged[0])
    ([[[0.5, -1.0], [1.0, 2.0]]], True)
    """
    start = time.perf_counter()
    b, k, d = initial.shape
    decoder, flowLogProb = objective.decoder, objective.flowLogProb

    def evaluate(latents: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            loss, _, _ = objective(latents, data[idx], weight[idx], rows[idx], cols[idx], present[idx],
                                   _pick(offsets, idx), _pick(kernels, idx), ratio, channels)
        return loss.detach().double()

    everything = torch.arange(b, device=initial.device)
    latents = initial.detach().clone()
    loss = evaluate(latents, everything)
    first = loss.clone()
    damping = torch.full((b,), config.lmDamping, dtype=torch.float64, device=latents.device)
    stopped = torch.zeros(b, dtype=torch.bool, device=latents.device)
    converged = torch.zeros_like(stopped)
    timedOut = torch.zeros_like(stopped)
    iterations = torch.zeros(b, dtype=torch.long, device=latents.device)
    slow = torch.zeros(b, dtype=torch.long, device=latents.device)  # consecutive steps that gained little
    history = [loss.cpu()]
    for _ in range(config.maxIter):
        if timeLimit is not None and time.perf_counter() - start > timeLimit:
            timedOut = ~stopped
            break
        # Only the blends still running are linearised and stepped: a batch costs what its live blends cost.
        idx = (~stopped).nonzero().flatten()
        n = len(idx)
        z, live = latents[idx], present[idx]
        absent = (~live).repeat_interleave(d, dim=1)  # (n, K·D): padding gets an identity block, no step
        variable = z.clone().requires_grad_(True)
        value, _, _ = objective(variable, data[idx], weight[idx], rows[idx], cols[idx], live, _pick(offsets, idx),
                                _pick(kernels, idx), ratio, channels)
        gradient = torch.autograd.grad(value.sum(), variable)[0].detach().reshape(n, k * d).double()
        flatOffsets = None if offsets is None else offsets[idx].reshape(n * k, 2)
        flatKernels = None if kernels is None else kernels[idx].repeat_interleave(k, dim=0)
        _, jacobians = stampJacobians(decoder, z.reshape(n * k, d), flatOffsets, flatKernels, ratio, channels,
                                      step=JACOBIAN_STEP)
        hessian = gaussNewtonHessian(jacobians.view(n, k, d, *jacobians.shape[2:]), weight[idx], rows[idx], cols[idx],
                                     live)
        prior = _positivePart(priorHessian(flowLogProb, z, live, step=PRIOR_STEP))
        for i in range(k):
            hessian[:, i * d:(i + 1) * d, i * d:(i + 1) * d] += prior[:, i]
        hessian[absent.unsqueeze(-1) & absent.unsqueeze(-2)] = 0.0
        hessian += torch.diag_embed(absent.to(hessian.dtype))
        gradient = torch.where(absent, torch.zeros_like(gradient), gradient)
        current, lam = loss[idx], damping[idx]
        pending = torch.ones(n, dtype=torch.bool, device=latents.device)
        decrease = torch.zeros(n, dtype=torch.float64, device=latents.device)
        for _ in range(MAX_RETRIES + 1):
            step = _solve(hessian, gradient, lam).to(z.dtype).view(n, k, d)
            trial = z + step * pending.view(-1, 1, 1).to(z.dtype)
            trialLoss = evaluate(trial, idx)
            taken = pending & torch.isfinite(trialLoss) & (trialLoss < current)
            decrease = torch.where(taken, current - trialLoss, decrease)
            z = torch.where(taken.view(-1, 1, 1), trial, z)
            current = torch.where(taken, trialLoss, current)
            lam = torch.where(taken, (lam / DAMPING_DOWN).clamp(min=1e-9), lam)
            pending &= ~taken
            if not bool(pending.any()):
                break
            lam = torch.where(pending, lam * DAMPING_UP, lam)
        latents[idx], loss[idx], damping[idx] = z, current, lam
        iterations[idx] += 1
        history.append(loss.cpu())
        # A blend stops when two steps in a row gained almost nothing (absolutely, or against what the
        # fit has gained so far: one small step is often a damping change), or when no damping found a lower loss.
        small = (decrease < config.lmTolerance) | (decrease < config.lmRelativeTolerance * (first[idx] - current))
        slow[idx] = torch.where(small, slow[idx] + 1, torch.zeros_like(slow[idx]))
        rule = torch.zeros_like(stopped)
        rule[idx] = pending | (slow[idx] >= PATIENCE)
        if bool(rule.any()):
            converged |= rule
            stopped |= rule
            if onStop is not None:
                onStop(int(rule.sum()))
        if bool(stopped.all()):
            break
    with torch.no_grad():
        final, logLikelihood, logPrior = objective(latents, data, weight, rows, cols, present, offsets, kernels,
                                                   ratio, channels)
    return MapResult(latents, final, logLikelihood, logPrior, iterations.cpu(), converged.cpu(),
                     torch.stack(history), timedOut.cpu())
