r"""Laplace uncertainties of the MAP children: the latents' posterior covariance and what it means for fluxes
and shapes.

At the MAP latents :math:`\hat Z = (\hat z_1, \dots, \hat z_K)` of a blend (:mod:`.mapCore`, paper
Eq. 8-10) the posterior is approximated by a Gaussian (Laplace's approximation) whose precision is
the Hessian of the MAP loss :math:`\mathcal L(Z) = \tfrac12 \sum_p w_p (y_p - m_p(Z))^2 - \sum_k \log p_\varphi(z_k)`:

.. math::

    H = \underbrace{J^\top W J}_{\text{Gauss-Newton}} \; - \; \mathrm{blockdiag}_k\,\nabla^2 \log p_\varphi(\hat z_k),
    \qquad \Sigma = H^{-1},

with :math:`J = \partial m / \partial Z` the Jacobian of the blend's model pixels (every band, after
the observation model: difference kernels, resampling, sub-pixel shifts) with respect to all
:math:`K \times D` latents, and :math:`W` the inverse-variance weights (zero on masked, padded and
other parents' pixels). The Gauss-Newton term drops the residuals' curvature
:math:`\sum_p w_p (m_p - y_p) \nabla^2 m_p`, which is zero on average at the truth. The covariance is
joint: galaxies whose stamps overlap share pixels, and their fluxes come out anticorrelated.

Guard. The flow's log-density is not concave, and the fit stops before the exact optimum, so
:math:`H` can have eigenvalues at or below zero. :math:`H` is symmetrised and every eigenvalue below
``minCurvature`` (default :math:`10^{-2}`, a posterior standard deviation of 10 latent units, ten times
the VAE's unit-Gaussian prior) is raised to it: directions that neither the data nor the prior
constrain get a large but finite variance. The number raised is returned (``clipped``).

Propagation (linearised). Child :math:`k`'s flux in band :math:`b` is the sum of its stamp,
:math:`f_{kb} = s_b \sum_p m^{(k)}_{bp}` (:math:`s_b` the image scale), linear in the pixels, so
:math:`g = \partial f_{kb}/\partial Z` is exact and :math:`\sigma^2(f_{kb}) = g^\top \Sigma g` (only
:math:`z_k` enters :math:`g`: :math:`\sigma^2 = g_k^\top \Sigma_{kk} g_k`, and :math:`\Sigma_{kk}` holds
what the neighbours' uncertainty does to it). The ellipticity :math:`(e_1, e_2)` is the benchmark's
(:func:`~..benchmark.morphology.ellipticity`: adaptive moments, galsim HSM, the distortion of the
PSF-convolved r-band image), which is not differentiable; it is linearised in the pixels instead:
with :math:`\Sigma_{kk} = L L^\top` and :math:`J_k` the child's stamp Jacobian,

.. math::

    \sigma^2(e) = \sum_{i=1}^{D} \left(\frac{e(m_k + h J_k L_i) - e(m_k - h J_k L_i)}{2h}\right)^2,

central differences along the columns of :math:`L` (:math:`h = 0.5`; :math:`0.1` where HSM fails at
:math:`0.5`; NaN where it fails at both), which is :math:`g^\top \Sigma_{kk} g` for the gradient
:math:`g` of :math:`e` along the linearised model.

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 3.5, Eq. 8-10 (the MAP objective);
MacKay 2003, "Information Theory, Inference, and Learning Algorithms", Ch. 27 (Laplace's method).

Examples
--------
A linear-Gaussian toy: with a linear "decoder" and a flat prior the Laplace covariance is the
exact posterior covariance :math:`(A^\top W A)^{-1}`.

>>> import torch
>>> a = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 2.0]])
>>> jac = a.T.reshape(1, 1, 2, 3, 1, 1)          # (B, K, D, C, S, S): a 1x1 stamp in 3 bands
>>> weight = torch.full((1, 3, 1, 1), 4.0)
>>> h = gaussNewtonHessian(jac, weight, torch.zeros(1, 1, dtype=torch.long), torch.zeros(1, 1, dtype=torch.long),
...                        torch.ones(1, 1, dtype=torch.bool))
>>> cov, clipped = posteriorCovariance(h)
>>> torch.allclose(cov[0], torch.linalg.inv(a.T.double() @ a.double() * 4.0)), int(clipped[0])
(True, 0)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .mapCore import shiftStamps
from .observation import convolveStamps

__all__ = ["SHAPE_BAND", "LaplaceResult", "observeLatents", "stampJacobians", "gaussNewtonHessian", "priorHessian",
           "posteriorCovariance", "laplaceUncertainties", "ellipticityWithError"]

#: The band of the children's shapes (``madness_e1``, ``madness_e2``): the benchmark's.
SHAPE_BAND = "r"

#: Central-difference steps (in units of the posterior's standard deviations) of the ellipticity's error.
ELLIPTICITY_STEPS = (0.5, 0.1)


@dataclass
class LaplaceResult:
    """Laplace uncertainties of a batch of B blends of at most K galaxies (padding: NaN)."""

    covariance: torch.Tensor  # (B, K*D, K*D) float64, joint over the blend's latents
    fluxErr: np.ndarray  # (B, K, bands): σ of each child's flux, image units; NaN in bands not fitted
    e1: np.ndarray  # (B, K): r-band adaptive-moment distortion of each child's model
    e2: np.ndarray
    e1Err: np.ndarray  # (B, K)
    e2Err: np.ndarray
    clipped: np.ndarray  # (B,) eigenvalues of H raised to minCurvature


def observeLatents(decoder: torch.nn.Module, latents: torch.Tensor, offsets: torch.Tensor | None = None,
                   kernels: torch.Tensor | None = None, ratio: float = 1.0,
                   channels: torch.Tensor | None = None) -> torch.Tensor:
    """Decoded ``latents`` (N, D) through the observation model, in the networks' units (N, C, S', S'):
    exactly what :class:`~.mapCore.MapObjective` places on the canvas (``kernels`` and ``offsets`` per
    galaxy, (N, ...)).

    Parameters
    ----------
    decoder : `torch.nn.Module`
        The models' decoder, latents (N, D) → stamps (N, C', S, S).
    latents : `torch.Tensor`
        (N, D) latents.
    offsets : `torch.Tensor`, optional
        Sub-pixel shifts (N, 2) = (dy, dx), pixels; None: none.
    kernels : `torch.Tensor`, optional
        Difference-kernel spectra (N, C, M, M // 2 + 1) for model-frame decoders; None: none.
    ratio : `float`, optional
        Exposure pixel side over the model frame's (with ``kernels`` only).
    channels : `torch.Tensor`, optional
        Indices of the decoder's bands to keep; None: all.

    Returns
    -------
    stamps : `torch.Tensor`
        (N, C, S', S') observed stamps, in the networks' units.

    Examples
    --------
    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> decoder = nn.Sequential(nn.Linear(2, 9), nn.Unflatten(1, (1, 3, 3)))   # latents (N, 2) → (N, 1, 3, 3)
    >>> tuple(observeLatents(decoder, torch.zeros(4, 2), offsets=torch.zeros(4, 2)).shape)
    (4, 1, 3, 3)
    """
    stamps = decoder(latents)
    if channels is not None:
        stamps = stamps.index_select(1, channels)
    if kernels is not None:
        return convolveStamps(stamps, kernels, offsets, ratio)
    if offsets is not None:
        return shiftStamps(stamps, offsets)
    return stamps


def _fullPrecision():
    """cuDNN without TF32 convolutions (its default on Ampere and later GPUs), which round to about
    1e-3: as large as a finite-difference step. Nothing changes on a CPU."""
    cudnn = torch.backends.cudnn
    return cudnn.flags(enabled=cudnn.enabled, benchmark=cudnn.benchmark, deterministic=cudnn.deterministic,
                       allow_tf32=False)


def stampJacobians(decoder: torch.nn.Module, latents: torch.Tensor, offsets: torch.Tensor | None = None,
                   kernels: torch.Tensor | None = None, ratio: float = 1.0,
                   channels: torch.Tensor | None = None, step: float | None = None,
                   chunk: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    r"""Observed stamps (N, C, S', S') and their Jacobians (N, D, C, S', S') with respect to each
    galaxy's own latent (a galaxy's stamp depends on its latent only).

    Parameters
    ----------
    decoder : `torch.nn.Module`
        The models' decoder.
    latents : `torch.Tensor`
        (N, D) latents.
    offsets, kernels, ratio, channels
        The observation model per galaxy, as for :func:`observeLatents`.
    step : `float`, optional
        None: exact, by forward-mode automatic differentiation (D Jacobian-vector products, each along
        one latent axis for all N galaxies at once). A step :math:`h`: forward differences,
        :math:`(m(z + h e_i) - m(z)) / h`, the N·D shifted latents decoded in batches of ``chunk``
        without automatic differentiation: about three times faster on a CPU, with an error of
        order :math:`h` times the decoder's curvature (1 % at :math:`h = 10^{-3}` for the shipped weights).
    chunk : `int`
        Shifted latents decoded together (forward differences).

    Returns
    -------
    stamps, jacobians : `torch.Tensor`
        (N, C, S', S') and (N, D, C, S', S').

    Examples
    --------
    The Jacobian of a linear decoder is its weight matrix, exactly or by forward differences:

    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> decoder = nn.Sequential(nn.Linear(2, 9), nn.Unflatten(1, (1, 3, 3)))   # latents (N, 2) → (N, 1, 3, 3)
    >>> stamps, jacobians = stampJacobians(decoder, torch.zeros(3, 2))
    >>> tuple(jacobians.shape), torch.allclose(jacobians[0].reshape(2, 9), decoder[0].weight.T)
    ((3, 2, 1, 3, 3), True)
    >>> _, approximate = stampJacobians(decoder, torch.zeros(3, 2), step=1e-3)
    >>> torch.allclose(approximate, jacobians, atol=1e-3)
    True
    """
    import torch.autograd.forward_ad as fwAD

    n, d = latents.shape
    latents = latents.detach()
    with torch.no_grad(), _fullPrecision():
        stamps = observeLatents(decoder, latents, offsets, kernels, ratio, channels)
    if step is not None:
        eye = torch.eye(d, dtype=latents.dtype, device=latents.device)
        shifted = (latents.unsqueeze(1) + step * eye).reshape(n * d, d)
        parts = []
        with torch.no_grad(), _fullPrecision():
            for begin in range(0, n * d, chunk):
                rows = torch.arange(begin, min(begin + chunk, n * d), device=latents.device)
                galaxy = torch.div(rows, d, rounding_mode="floor")
                parts.append(observeLatents(decoder, shifted[rows],
                                            None if offsets is None else offsets[galaxy],
                                            None if kernels is None else kernels[galaxy], ratio, channels))
        moved = torch.cat(parts).view(n, d, *stamps.shape[1:])
        return stamps, (moved - stamps.unsqueeze(1)) / step
    columns = []
    for i in range(d):
        tangent = torch.zeros_like(latents)
        tangent[:, i] = 1.0
        with fwAD.dual_level():
            dual = fwAD.make_dual(latents, tangent)
            out = observeLatents(decoder, dual, offsets, kernels, ratio, channels)
            columns.append(fwAD.unpack_dual(out).tangent.detach())
    return stamps, torch.stack(columns, dim=1)


def gaussNewtonHessian(jacobians: torch.Tensor, weight: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor,
                       present: torch.Tensor) -> torch.Tensor:
    r""":math:`J^\top W J` (B, K·D, K·D), float64, of B blends from the stamps' Jacobians
    (B, K, D, C, S, S) placed at corners ``rows``, ``cols`` (B, K) on canvases the shape of ``weight``
    (B, C, H, W); absent galaxies (``present`` False) contribute nothing.

    Block :math:`(k, l)` is :math:`\sum_p w_p J_{k,p} J_{l,p}^\top` over the pixels where the stamps of
    galaxies :math:`k` and :math:`l` overlap (zero where they do not), so memory stays that of the stamps
    whatever the canvas and K.

    Parameters
    ----------
    jacobians : `torch.Tensor`
        (B, K, D, C, S, S) each galaxy's stamp Jacobian (:func:`stampJacobians`).
    weight : `torch.Tensor`
        (B, C, H, W) inverse-variance weights in the networks' units.
    rows, cols : `torch.Tensor`
        Integer canvas corners (B, K) of the stamps.
    present : `torch.Tensor`
        (B, K) False for padding galaxies.

    Returns
    -------
    hessian : `torch.Tensor`
        (B, K·D, K·D) float64, symmetric; latent :math:`i` of galaxy :math:`k` is row :math:`k D + i`.

    Examples
    --------
    Two 1×1 galaxies on different pixels do not share any: the Hessian is block diagonal.

    >>> import torch
    >>> jacobians = torch.ones(1, 2, 1, 1, 1, 1)                # (B, K, D, C, S, S)
    >>> weight = torch.tensor([[[[2.0, 3.0]]]])                 # (B, C, H, W)
    >>> gaussNewtonHessian(jacobians, weight, torch.tensor([[0, 0]]), torch.tensor([[0, 1]]),
    ...                    torch.ones(1, 2, dtype=torch.bool))[0].tolist()
    [[2.0, 0.0], [0.0, 3.0]]
    """
    b, k, d = jacobians.shape[:3]
    size = jacobians.shape[-1]
    out = torch.zeros(b, k * d, k * d, dtype=torch.float64, device=jacobians.device)
    corners = torch.stack([rows, cols], dim=-1).cpu().tolist()
    live = present.cpu().tolist()
    for blend in range(b):
        for i in range(k):
            if not live[blend][i]:
                continue
            ri, ci = corners[blend][i]
            for j in range(i, k):
                if not live[blend][j]:
                    continue
                rj, cj = corners[blend][j]
                top, bottom = max(ri, rj), min(ri, rj) + size
                left, right = max(ci, cj), min(ci, cj) + size
                if top >= bottom or left >= right:
                    continue
                w = weight[blend, :, top:bottom, left:right].double()
                a = jacobians[blend, i, :, :, top - ri:bottom - ri, left - ci:right - ci].double()
                c = jacobians[blend, j, :, :, top - rj:bottom - rj, left - cj:right - cj].double()
                block = torch.einsum("dchw,chw,echw->de", a, w, c)
                out[blend, i * d:(i + 1) * d, j * d:(j + 1) * d] = block
                if j != i:
                    out[blend, j * d:(j + 1) * d, i * d:(i + 1) * d] = block.T
    return out


def priorHessian(flowLogProb: torch.nn.Module, latents: torch.Tensor, present: torch.Tensor,
                 step: float | None = None) -> torch.Tensor:
    r""":math:`-\nabla^2 \log p_\varphi(z_k)` (B, K, D, D) of each galaxy's latent (zero for absent ones).

    Parameters
    ----------
    flowLogProb : `torch.nn.Module`
        The flow's log-density, (N, D) → (N,).
    latents : `torch.Tensor`
        (B, K, D).
    present : `torch.Tensor`
        (B, K) False for padding.
    step : `float`, optional
        None: exact (``torch.func.hessian``). A step :math:`h`: central differences of the exact
        gradient, :math:`(\nabla \log p(z + h e_i) - \nabla \log p(z - h e_i)) / 2h`, symmetrised: one
        batched backward pass over the :math:`2D` shifted latents of every galaxy, several times faster.

    Returns
    -------
    hessian : `torch.Tensor`
        (B, K, D, D), float64.

    Examples
    --------
    A standard normal prior has minus the identity as the Hessian of its log-density:

    >>> import torch
    >>> class StandardNormal(torch.nn.Module):
    ...     def forward(self, z):
    ...         return -0.5 * (z**2).sum(-1)
    >>> present = torch.tensor([[True, False]])
    >>> hessian = priorHessian(StandardNormal(), torch.zeros(1, 2, 3), present)
    >>> hessian[0, 0].tolist() == torch.eye(3).tolist(), bool((hessian[0, 1] == 0).all())
    (True, True)
    >>> torch.allclose(priorHessian(StandardNormal(), torch.zeros(1, 2, 3), present, step=1e-2), hessian)
    True
    """
    b, k, d = latents.shape
    flat = latents.detach().reshape(b * k, d)
    if step is not None:
        eye = step * torch.eye(d, dtype=flat.dtype, device=flat.device)
        shifted = torch.cat([flat.unsqueeze(1) + eye, flat.unsqueeze(1) - eye], dim=1).reshape(-1, d)
        shifted.requires_grad_(True)
        total = flowLogProb(shifted).sum()
        if not total.requires_grad:  # a log-density that does not depend on z (a flat prior)
            return torch.zeros(b, k, d, d, dtype=torch.float64, device=flat.device)
        gradient = torch.autograd.grad(total, shifted)[0].view(b * k, 2, d, d).double()
        hessians = (gradient[:, 0] - gradient[:, 1]) / (2 * step)  # row i: d(grad)/dz_i
        hessians = 0.5 * (hessians + hessians.transpose(-1, -2))
    else:
        def logProb(z: torch.Tensor) -> torch.Tensor:
            return flowLogProb(z.view(1, d)).sum()

        hessians = torch.func.vmap(torch.func.hessian(logProb))(flat).double()
    return -(hessians.detach().view(b, k, d, d) * present.to(torch.float64).view(b, k, 1, 1))


def posteriorCovariance(hessian: torch.Tensor, minCurvature: float = 1e-2) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of each symmetrised Hessian (B, N, N) with eigenvalues below ``minCurvature`` raised to
    it (module docstring, "Guard"); and how many were raised per blend (B,).

    Parameters
    ----------
    hessian : `torch.Tensor`
        (B, N, N) Hessians of the MAP loss (N = K·D), symmetric up to rounding.
    minCurvature : `float`, optional
        Eigenvalue floor; a posterior variance of at most ``1 / minCurvature`` along any direction.

    Returns
    -------
    covariance : `torch.Tensor`
        (B, N, N), the guarded inverse, symmetric positive definite.
    clipped : `torch.Tensor`
        (B,) number of eigenvalues raised to ``minCurvature``.

    Examples
    --------
    >>> import torch
    >>> covariance, clipped = posteriorCovariance(torch.tensor([[[4.0, 0.0], [0.0, -1.0]]]))
    >>> covariance[0].tolist(), clipped.tolist()
    ([[0.25, 0.0], [0.0, 100.0]], [1])
    """
    symmetric = 0.5 * (hessian + hessian.transpose(-1, -2))
    values, vectors = torch.linalg.eigh(symmetric)
    clipped = (values < minCurvature).sum(dim=-1)
    values = values.clamp(min=minCurvature)
    return (vectors / values.unsqueeze(-2)) @ vectors.transpose(-1, -2), clipped


def ellipticityWithError(stamp: np.ndarray, directions: np.ndarray) -> tuple[float, float, float, float]:
    """``(e1, e2, σ(e1), σ(e2))`` of one band's model ``stamp`` (S, S) whose pixel errors are
    linearised along ``directions`` (D, S, S) = :math:`J_k L_i` (module docstring).

    Parameters
    ----------
    stamp : `numpy.ndarray`
        (S, S) the child's model in one band (the benchmark's: r), PSF-convolved as observed.
    directions : `numpy.ndarray`
        (D, S, S) the model's changes along the columns of the Cholesky factor of the child's latent
        covariance: one standard deviation each.

    Returns
    -------
    e1, e2 : `float`
        Adaptive-moment distortion (:func:`~..benchmark.morphology.ellipticity`); NaN where HSM fails.
    e1Err, e2Err : `float`
        Their linearised standard deviations; NaN where HSM fails at both steps along a direction.

    Examples
    --------
    A Gaussian twice as wide as high, whose only uncertainty is its brightness (which leaves its shape
    as it is):

    >>> import numpy as np
    >>> y, x = np.mgrid[:31, :31] - 15
    >>> stamp = np.exp(-(x**2 / (2 * 3.0**2) + y**2 / (2 * 2.0**2)))
    >>> e1, e2, e1Err, e2Err = ellipticityWithError(stamp, 0.01 * stamp[None])
    >>> round(e1, 3), abs(e2) < 1e-6, e1Err < 1e-6, e2Err < 1e-6
    (0.385, True, True, True)
    """
    from ..benchmark.morphology import ellipticity

    e1, e2 = ellipticity(stamp)
    if not (np.isfinite(e1) and np.isfinite(e2)):
        return float("nan"), float("nan"), float("nan"), float("nan")
    variance = np.zeros(2)
    for direction in directions:
        for step in ELLIPTICITY_STEPS:
            plus = np.array(ellipticity(stamp + step * direction))
            minus = np.array(ellipticity(stamp - step * direction))
            if np.isfinite(plus).all() and np.isfinite(minus).all():
                variance += ((plus - minus) / (2 * step)) ** 2
                break
        else:
            return e1, e2, float("nan"), float("nan")
    return e1, e2, float(np.sqrt(variance[0])), float(np.sqrt(variance[1]))


def laplaceUncertainties(decoder: torch.nn.Module, flowLogProb: torch.nn.Module, latents: torch.Tensor,
                         weight: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, present: torch.Tensor,
                         offsets: torch.Tensor | None = None, kernels: torch.Tensor | None = None,
                         ratio: float = 1.0, channels: torch.Tensor | None = None,
                         imageScale: np.ndarray | None = None, nBands: int | None = None,
                         shapeBand: int | None = None, minCurvature: float = 1e-2) -> LaplaceResult:
    r"""Laplace uncertainties (module docstring) at the MAP ``latents`` (B, K, D) of B blends.

    Parameters
    ----------
    decoder, flowLogProb : `torch.nn.Module`
        The models' networks (:class:`~..models.export.MadnessModels`).
    latents : `torch.Tensor`
        MAP latents (B, K, D).
    weight, rows, cols, present, offsets, kernels, ratio, channels
        As given to :func:`~.mapCore.fitLatents`: the weights (B, C, H, W) in the networks' units,
        ``kernels`` (B, C, ...) per blend, ``channels`` the decoder's bands fitted (None: all).
    imageScale : `numpy.ndarray`, optional
        The models' per-band image scale (all decoder bands); fluxes are in image units with it.
    nBands : `int`, optional
        The decoder's bands (default: C).
    shapeBand : `int`, optional
        Decoder band of the ellipticity (the benchmark's: r); None: no shapes (NaN).
    minCurvature : `float`
        Eigenvalue floor of the Hessian.

    Returns
    -------
    result : `LaplaceResult`
        The joint covariance (B, K·D, K·D) of each blend's latents, the children's flux errors (B, K,
        bands) in image units, their ellipticities and errors (B, K; NaN without ``shapeBand``), and
        the number of eigenvalues clipped per blend.

    Examples
    --------
    Two overlapping galaxies of a linear decoder under a standard normal prior:

    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> decoder = nn.Sequential(nn.Linear(2, 9), nn.Unflatten(1, (1, 3, 3)))   # latents (N, 2) → (N, 1, 3, 3)
    >>> class StandardNormal(nn.Module):
    ...     def forward(self, z):
    ...         return -0.5 * (z**2).sum(-1)
    >>> rows, cols = torch.tensor([[0, 1]]), torch.tensor([[0, 2]])
    >>> present = torch.ones(1, 2, dtype=torch.bool)
    >>> result = laplaceUncertainties(decoder, StandardNormal(), torch.zeros(1, 2, 2), torch.ones(1, 1, 4, 5),
    ...                               rows, cols, present)
    >>> tuple(result.covariance.shape), result.fluxErr.shape, bool(np.isnan(result.e1).all()), result.clipped.tolist()
    ((1, 4, 4), (1, 2, 1), True, [0])
    """
    b, k, d = latents.shape
    c = weight.shape[1]
    nBands = c if nBands is None else nBands
    bandIndex = np.arange(c) if channels is None else channels.cpu().numpy()
    scale = np.ones(nBands) if imageScale is None else np.asarray(imageScale, dtype=float)
    flatKernels = None if kernels is None else kernels.repeat_interleave(k, dim=0)
    flatOffsets = None if offsets is None else offsets.reshape(b * k, 2)
    stamps, jac = stampJacobians(decoder, latents.reshape(b * k, d), flatOffsets, flatKernels, ratio, channels)
    stamps = stamps.view(b, k, *stamps.shape[1:])
    jac = jac.view(b, k, d, *jac.shape[2:])
    hessian = gaussNewtonHessian(jac, weight, rows, cols, present)
    prior = priorHessian(flowLogProb, latents, present)
    for i in range(k):
        hessian[:, i * d:(i + 1) * d, i * d:(i + 1) * d] += prior[:, i]
    absent = (~present).repeat_interleave(d, dim=1)  # padding: identity (>= minCurvature <= 1), out of the inverse
    hessian[absent.unsqueeze(-1) & absent.unsqueeze(-2)] = 0.0
    hessian += torch.diag_embed(absent.to(hessian.dtype))
    covariance, clipped = posteriorCovariance(hessian, minCurvature)
    blocks = torch.stack([covariance[:, i * d:(i + 1) * d, i * d:(i + 1) * d] for i in range(k)], dim=1)  # (B, K, D, D)
    gradients = jac.sum(dim=(-2, -1)).double()  # (B, K, D, C): d(stamp sum)/dz
    variance = torch.einsum("bkdc,bkde,bkec->bkc", gradients, blocks, gradients)
    fluxErr = np.full((b, k, nBands), np.nan)
    fluxErr[:, :, bandIndex] = variance.clamp(min=0).sqrt().cpu().numpy() * scale[bandIndex]
    shapes = np.full((4, b, k), np.nan)
    where = None if shapeBand is None else np.flatnonzero(bandIndex == shapeBand)
    if where is not None and len(where):
        band = int(where[0])
        cholesky = torch.linalg.cholesky(blocks)  # (B, K, D, D), SPD by the guard
        directions = torch.einsum("bkdhw,bkde->bkehw", jac[:, :, :, band].double(), cholesky).cpu().numpy()
        images = stamps[:, :, band].double().cpu().numpy()
        for blend in range(b):
            for i in range(k):
                if bool(present[blend, i]):
                    shapes[:, blend, i] = ellipticityWithError(images[blend, i], directions[blend, i])
    e1, e2, e1Err, e2Err = shapes
    return LaplaceResult(covariance, fluxErr, e1, e2, e1Err, e2Err, clipped=clipped.cpu().numpy())
