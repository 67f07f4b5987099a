r"""The MAP core: all galaxies of many blends fitted together by gradient descent in latent space.

For a blend with data :math:`y` (bands × H × W, divided by the normalisation), inverse-variance
weights :math:`w` (zero on masked, padded and out-of-footprint pixels) and K galaxies with latents
:math:`z_i` whose decoded stamps are placed with their lower-left corner at :math:`(r_i, c_i)`:

.. math::

    \mathcal L(Z) = \tfrac12 \sum_{\rm pixels} w\,\Big(y - \sum_i \mathrm{place}\big(p_\theta(z_i), r_i, c_i\big)\Big)^2
    - \sum_i \log p_\varphi(z_i)

(paper Eq. 8-10, with the Gaussian likelihood's ½).

The decoder draws a galaxy centred on its stamp's central pixel. The paper places stamps at the
rounded peak positions, which leaves each galaxy up to half a pixel off. With sub-pixel offsets
:math:`(\delta_y, \delta_x)` given, every decoded stamp is first shifted by them with a
separable Lanczos-3 interpolation (:func:`shiftStamps`):

.. math:: p'(i, j) = \sum_{m, n} L(i - m - \delta_y)\, L(j - n - \delta_x)\, p(m, n),
   \qquad L(t) = \mathrm{sinc}(t)\,\mathrm{sinc}(t/3)\ (|t| < 3),

normalised so that a shift conserves flux. :math:`\delta = 0` is the paper's rounding exactly.
:func:`fitLatents` minimises it with Adam
(lr 0.05, ×0.8 every 30 steps) for a batch of blends padded to the largest K, and stops each
blend when the exponentially weighted loss decrease over the last ``window`` steps falls below
``tolerance`` times the mean decrease of its first ``window`` steps (after ``minIter`` steps;
at most ``maxIter``). A blend keeps the latents of the lowest loss it reached up to the step it
stopped at. Adam's steps are the learning rate in every latent direction at once, and where the
decoder is steep (bright galaxies, latents the VAE barely uses) a step can overshoot; so a blend
whose loss rises goes back to its best latents, forgets its momentum and takes steps half as long
from then on (``backtrack``): its loss never ends above where it started.

:class:`MapObjective` is the per-step computation (placing stamps, likelihood, prior) as a
``torch.jit.script``-able module built from the exported decoder and flow.

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 3.5, Eq. 8-10.

Examples
--------
>>> import torch
>>> stamps = torch.ones(1, 2, 1, 3, 3)            # one blend, two 3×3 single-band stamps
>>> rows, cols = torch.tensor([[0, 2]]), torch.tensor([[0, 1]])
>>> placeStamps(stamps, rows, cols, torch.ones(1, 2, dtype=torch.bool), 5, 5)[0, 0].int().tolist()
[[1, 1, 1, 0, 0], [1, 1, 1, 0, 0], [1, 2, 2, 1, 0], [0, 1, 1, 1, 0], [0, 1, 1, 1, 0]]
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from .observation import convolveStamps

__all__ = ["DEFAULT_MAP_LR", "MapConfig", "shiftMatrices", "shiftStamps", "resampleStamps", "placeStamps",
           "MapObjective", "MapResult", "fitLatents"]


#: MAP step size of models whose card does not choose one (measured on the first shipped weights;
#: the paper's 0.05 left bright galaxies unconverged after 200 steps, doc/madness-deblend.md).
DEFAULT_MAP_LR = 0.1


class MapConfig(BaseModel):
    """Optimiser and stopping rule of the MAP fit (paper Sec. 3.5; reference code).

    The defaults are the deblend task's (``MadnessDeblendConfig`` takes its own from here), so a
    direct call of the core fits as the task does.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: float = Field(DEFAULT_MAP_LR, gt=0, description="Initial Adam learning rate in latent space.")
    lrDecay: float = Field(0.9, gt=0, le=1, description="Factor applied to the learning rate every lrDecayEvery steps "
                                                        "(the paper: 0.8).")
    lrDecayEvery: int = Field(30, ge=1, description="Steps between learning-rate decays.")
    maxIter: int = Field(200, ge=1, description="Most optimisation steps.")
    minIter: int = Field(40, ge=1, description="Fewest steps before a blend may stop.")
    window: int = Field(15, ge=1, description="Steps over which loss decreases are compared.")
    tolerance: float = Field(
        0.05, ge=0, description="Stop when the recent loss decrease is below this fraction of the first one.")
    backtrack: bool = Field(
        True, description="A blend whose loss rises goes back to its best latents and halves its step length.")
    optimizer: Literal["adam", "lm"] = Field(
        "adam", description="'adam': first-order steps (the paper's; lr to backtrack apply). 'lm': "
                            "Levenberg-Marquardt with Gauss-Newton curvature (levenbergMarquardt.py; maxIter, "
                            "lmDamping and lmTolerance apply).")
    lmDamping: float = Field(1e-3, gt=0, description="Levenberg-Marquardt: initial damping, relative to the "
                                                     "Hessian's diagonal.")
    lmTolerance: float = Field(
        0.01, gt=0, description="Levenberg-Marquardt: stop a blend when a step lowers its loss (half a chi^2) by "
                                "less than this.")
    lmRelativeTolerance: float = Field(
        1e-3, ge=0, description="Levenberg-Marquardt: stop a blend when a step lowers its loss by less than this "
                                "fraction of what the fit has gained since its start.")


def _lanczos3(x: torch.Tensor) -> torch.Tensor:
    return torch.where(x.abs() < 3, torch.sinc(x) * torch.sinc(x / 3), torch.zeros_like(x))


def shiftMatrices(offsets: torch.Tensor, size: int, outSize: int = -1, step: float = 1.0) -> torch.Tensor:
    r"""Lanczos-3 matrices (N, outSize, size) that sample a length-``size`` profile, shifted by
    ``offsets`` (N,) pixels, at ``outSize`` (default ``size``) points ``step`` pixels apart, the
    central points of both aligned.

    Row ``i`` samples the input at :math:`c + (i - c') s - \delta` (:math:`c`, :math:`c'` the central
    pixels, :math:`s` the step); each row's taps are normalised to unit sum, so an interior
    profile keeps its flux per unit length.

    Parameters
    ----------
    offsets : `torch.Tensor`
        Shifts :math:`\delta` (N,), in input pixels; a positive shift moves the profile to higher indices.
        Its dtype and device are the matrices'.
    size : `int`
        Length of the input profile, pixels.
    outSize : `int`, optional
        Number of output points; negative (the default) for ``size``.
    step : `float`, optional
        Spacing of the output points, in input pixels (1: the input's own pixels).

    Returns
    -------
    matrices : `torch.Tensor`
        (N, outSize, size): output profile = ``matrices[n] @ profile``.

    Examples
    --------
    A zero shift is the identity, a shift by one pixel moves every sample one row down:

    >>> import torch
    >>> torch.allclose(shiftMatrices(torch.zeros(1), 5)[0], torch.eye(5), atol=1e-6)
    True
    >>> shiftMatrices(torch.tensor([1.0]), 5)[0].abs().round(decimals=6).int().tolist()
    [[0, 0, 0, 0, 0], [1, 0, 0, 0, 0], [0, 1, 0, 0, 0], [0, 0, 1, 0, 0], [0, 0, 0, 1, 0]]
    >>> tuple(shiftMatrices(torch.zeros(2), 9, outSize=3, step=2.0).shape)
    (2, 3, 9)
    """
    out = size if outSize < 0 else outSize
    index = torch.arange(size, device=offsets.device, dtype=offsets.dtype)
    points = (torch.arange(out, device=offsets.device, dtype=offsets.dtype) - float(out // 2)) * step + float(size // 2)
    positions = points.view(1, out) - offsets.view(-1, 1)  # (N, out)
    t = positions.unsqueeze(-1) - index.view(1, 1, size)
    fraction = positions - torch.floor(positions)
    taps = torch.arange(-3, 5, device=offsets.device, dtype=offsets.dtype).view(1, 1, 8)
    total = _lanczos3(fraction.unsqueeze(-1) - taps).sum(dim=-1, keepdim=True)
    return _lanczos3(t) / total


def shiftStamps(stamps: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
    """Stamps (N, C, S, S) shifted by ``offsets`` (N, 2) = (dy, dx) pixels (see the module docstring).

    Parameters
    ----------
    stamps : `torch.Tensor`
        Square stamps (N, C, S, S): N galaxies, C bands.
    offsets : `torch.Tensor`
        Sub-pixel shifts (N, 2) = (dy, dx), in pixels, of each stamp; positive moves to higher row
        and column indices.

    Returns
    -------
    shifted : `torch.Tensor`
        (N, C, S, S), Lanczos-3 interpolated; flux is conserved away from the stamp's edges.

    Examples
    --------
    >>> import torch
    >>> stamp = torch.zeros(1, 1, 5, 5); stamp[0, 0, 2, 2] = 1.0
    >>> shifted = shiftStamps(stamp, torch.tensor([[1.0, 0.0]]))   # one pixel up in rows
    >>> divmod(int(shifted[0, 0].argmax()), 5), round(float(shifted.sum()), 4)
    ((3, 2), 1.0)
    """
    size = stamps.shape[-1]
    rows = shiftMatrices(offsets[:, 0].to(stamps.dtype), size)
    cols = shiftMatrices(offsets[:, 1].to(stamps.dtype), size)
    return torch.matmul(torch.matmul(rows.unsqueeze(1), stamps), cols.transpose(1, 2).unsqueeze(1))


def resampleStamps(stamps: torch.Tensor, outSize: int, step: float) -> torch.Tensor:
    """Stamps (N, C, S, S) sampled at ``outSize`` × ``outSize`` points ``step`` pixels apart about their
    central pixel (Lanczos-3), in flux per output pixel (times the step squared): how an exposure's cutouts are
    taken to the model frame's pixels.

    Parameters
    ----------
    stamps : `torch.Tensor`
        Square stamps (N, C, S, S) in flux per input pixel.
    outSize : `int`
        Side of the resampled stamps, output pixels.
    step : `float`
        Output pixel side in input pixels (the model frame's pixel over the exposure's).

    Returns
    -------
    resampled : `torch.Tensor`
        (N, C, outSize, outSize), in flux per output pixel.

    Examples
    --------
    A flat image of 1 per pixel is 4 per pixel twice as large:

    >>> import torch
    >>> resampleStamps(torch.ones(1, 1, 9, 9), 3, 2.0)[0, 0].tolist()
    [[4.0, 4.0, 4.0], [4.0, 4.0, 4.0], [4.0, 4.0, 4.0]]
    """
    zero = torch.zeros(stamps.shape[0], device=stamps.device, dtype=stamps.dtype)
    matrix = shiftMatrices(zero, stamps.shape[-1], outSize, step)
    return torch.matmul(torch.matmul(matrix.unsqueeze(1), stamps), matrix.transpose(1, 2).unsqueeze(1)) * step**2


def placeStamps(stamps: torch.Tensor, rows: torch.Tensor, cols: torch.Tensor, present: torch.Tensor,
                height: int, width: int) -> torch.Tensor:
    """Sum of stamps (B, K, C, S, S) placed at corners (rows, cols) (B, K) on (B, C, height, width).

    Every stamp must lie inside the canvas (the caller pads the canvas); stamps of absent
    galaxies (``present`` False, the padding to the largest K) add nothing.

    Parameters
    ----------
    stamps : `torch.Tensor`
        Stamps (B, K, C, S, S): B blends of K galaxies in C bands.
    rows, cols : `torch.Tensor`
        Integer canvas row and column (B, K) of each stamp's first pixel (its lower-left corner).
    present : `torch.Tensor`
        Booleans (B, K): False for the padding galaxies of blends with fewer than K.
    height, width : `int`
        Canvas size, pixels.

    Returns
    -------
    canvas : `torch.Tensor`
        (B, C, height, width), the sum of each blend's present stamps.

    Examples
    --------
    >>> import torch
    >>> stamps = torch.ones(1, 2, 1, 2, 2)
    >>> rows, cols = torch.tensor([[0, 1]]), torch.tensor([[0, 1]])
    >>> placeStamps(stamps, rows, cols, torch.tensor([[True, True]]), 3, 3)[0, 0].tolist()
    [[1.0, 1.0, 0.0], [1.0, 2.0, 1.0], [0.0, 1.0, 1.0]]
    >>> placeStamps(stamps, rows, cols, torch.tensor([[True, False]]), 3, 3)[0, 0].tolist()
    [[1.0, 1.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    """
    b, k, c, s, _ = stamps.shape
    offsets = torch.arange(s, device=stamps.device)
    pixelRows = rows.unsqueeze(-1) + offsets  # (B, K, S)
    pixelCols = cols.unsqueeze(-1) + offsets
    flat = (pixelRows.unsqueeze(-1) * width + pixelCols.unsqueeze(-2)).reshape(b, k * s * s)
    values = (stamps * present.to(stamps.dtype).view(b, k, 1, 1, 1)).permute(0, 2, 1, 3, 4).reshape(b, c, k * s * s)
    canvas = torch.zeros(b, c, height * width, dtype=stamps.dtype, device=stamps.device)
    canvas = canvas.scatter_add(2, flat.unsqueeze(1).expand(b, c, k * s * s), values)
    return canvas.view(b, c, height, width)


class MapObjective(nn.Module):
    """Per-blend loss, log-likelihood and per-galaxy log-prior of latents (B, K, D); scriptable.

    Parameters
    ----------
    decoder : `torch.nn.Module`
        Latents (N, D) → stamps (N, C', S, S), in the networks' units.
    flowLogProb : `torch.nn.Module`
        Latents (N, D) → log-prior (N,).

    Examples
    --------
    A linear "decoder" of 3×3 single-band stamps and a flat prior (zero log-density):

    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> decoder = nn.Sequential(nn.Linear(2, 9), nn.Unflatten(1, (1, 3, 3)))
    >>> flatPrior = nn.Sequential(nn.Linear(2, 1), nn.Flatten(0))
    >>> _ = nn.init.zeros_(flatPrior[0].weight), nn.init.zeros_(flatPrior[0].bias)
    >>> objective = MapObjective(decoder, flatPrior)
    >>> latents = torch.zeros(1, 1, 2)                         # B = 1 blend, K = 1 galaxy, D = 2
    >>> rows = cols = torch.zeros(1, 1, dtype=torch.long)
    >>> present = torch.ones(1, 1, dtype=torch.bool)
    >>> with torch.no_grad():
    ...     data = placeStamps(decoder(latents[0]).unsqueeze(0), rows, cols, present, 3, 3) + 1.0  # residuals of 1
    ...     loss, logLikelihood, logPrior = objective(latents, data, torch.ones_like(data), rows, cols, present)
    >>> [round(float(v), 4) for v in (loss[0], logLikelihood[0], logPrior[0, 0])]
    [4.5, -4.5, 0.0]
    """

    def __init__(self, decoder: nn.Module, flowLogProb: nn.Module):
        super().__init__()
        self.decoder = decoder
        self.flowLogProb = flowLogProb

    def forward(self, latents: torch.Tensor, data: torch.Tensor, weight: torch.Tensor, rows: torch.Tensor,
                cols: torch.Tensor, present: torch.Tensor, offsets: torch.Tensor | None = None,
                kernels: torch.Tensor | None = None, ratio: float = 1.0,
                channels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The MAP loss of each blend, and its two terms.

        Parameters
        ----------
        latents : `torch.Tensor`
            Latents (B, K, D) of K galaxies in each of B blends.
        data : `torch.Tensor`
            Blend canvases (B, C, H, W) in the networks' units.
        weight : `torch.Tensor`
            Inverse-variance weights (B, C, H, W) in the networks' units, zero where ignored.
        rows, cols : `torch.Tensor`
            Integer canvas corners (B, K) of the galaxies' stamps.
        present : `torch.Tensor`
            Booleans (B, K): False for padding galaxies, which add neither light nor prior.
        offsets : `torch.Tensor`, optional
            Sub-pixel shifts (B, K, 2) = (dy, dx) of the galaxies, pixels; None: no shift.
        kernels : `torch.Tensor`, optional
            Difference-kernel spectra (B, C, M, M // 2 + 1) for model-frame decoders
            (:func:`~.observation.differenceKernelSpectrum`); None: the decoded stamps are the observed ones.
        ratio : `float`, optional
            Exposure pixel side over the model frame's (with ``kernels`` only).
        channels : `torch.Tensor`, optional
            Indices of the decoder's output bands that ``data``, ``weight`` and ``kernels`` hold; None: all.

        Returns
        -------
        loss : `torch.Tensor`
            (B,) minus the log-likelihood minus the summed log-prior of the present galaxies.
        logLikelihood : `torch.Tensor`
            (B,) :math:`-\\tfrac12 \\sum w (y - m)^2`.
        logPrior : `torch.Tensor`
            (B, K) each galaxy's log-prior, zero for padding.
        """
        b, k, d = latents.shape
        flat = latents.reshape(b * k, d)
        stamps = self.decoder(flat)
        if channels is not None:
            stamps = stamps.index_select(1, channels)
        if kernels is not None:
            # Model-frame stamps: each blend's difference kernels, with the sub-pixel shift as a phase.
            flatOffsets = offsets.reshape(b * k, 2) if offsets is not None else None
            stamps = convolveStamps(stamps, kernels.repeat_interleave(k, dim=0), flatOffsets, ratio)
        elif offsets is not None:
            stamps = shiftStamps(stamps, offsets.reshape(b * k, 2))
        stamps = stamps.view(b, k, stamps.shape[1], stamps.shape[2], stamps.shape[3])
        model = placeStamps(stamps, rows, cols, present, data.shape[2], data.shape[3])
        logLikelihood = -0.5 * (weight * (data - model) ** 2).sum(dim=(1, 2, 3))
        logPrior = self.flowLogProb(flat).view(b, k) * present.to(latents.dtype)
        return -(logLikelihood + logPrior.sum(dim=1)), logLikelihood, logPrior


@dataclass
class MapResult:
    """What :func:`fitLatents` found for each blend of the batch."""

    latents: torch.Tensor  # (B, K, D), at each blend's stopping step
    loss: torch.Tensor  # (B,)
    logLikelihood: torch.Tensor  # (B,)
    logPrior: torch.Tensor  # (B, K)
    iterations: torch.Tensor  # (B,) steps taken
    converged: torch.Tensor  # (B,) stopped by the rule before maxIter
    history: torch.Tensor  # (steps + 1, B) loss per step, for diagnostics
    timedOut: torch.Tensor | None = None  # (B,) still running when ``timeLimit`` ran out


def fitLatents(objective: nn.Module, initial: torch.Tensor, data: torch.Tensor, weight: torch.Tensor,
               rows: torch.Tensor, cols: torch.Tensor, present: torch.Tensor,
               config: MapConfig = MapConfig(), offsets: torch.Tensor | None = None,
               timeLimit: float | None = None, kernels: torch.Tensor | None = None, ratio: float = 1.0,
               channels: torch.Tensor | None = None, onStop: Callable[[int], None] | None = None) -> MapResult:
    """Minimise the MAP objective for a batch of blends from ``initial`` latents (B, K, D).

    Adam with step decay, per-blend backtracking and the stopping rule of the module docstring;
    ``config.optimizer`` is not read here (:func:`~.levenbergMarquardt.fitLatentsLM` is the
    Levenberg-Marquardt fit, with the same arguments). After ``timeLimit`` seconds the
    optimisation stops; the blends that had not met the stopping rule are marked ``timedOut``.

    Parameters
    ----------
    objective : `torch.nn.Module`
        The per-step computation, a :class:`MapObjective` (or a module with its ``forward``
        arguments and its three outputs).
    initial : `torch.Tensor`
        Starting latents (B, K, D): B blends padded to K galaxies of D latent dimensions (the
        VAE-deblender encoder's posterior means in :func:`~.fit.fitBlends`).
    data : `torch.Tensor`
        Blend canvases (B, C, H, W) in the networks' units (image units over the models' image scale).
    weight : `torch.Tensor`
        Inverse-variance weights (B, C, H, W) in the networks' units, zero on ignored and padding pixels.
    rows, cols : `torch.Tensor`
        Integer canvas corners (B, K) of the galaxies' stamps; every stamp lies inside the canvas.
    present : `torch.Tensor`
        Booleans (B, K): False for the padding galaxies of blends with fewer than K.
    config : `MapConfig`, optional
        Learning rate, its decay, and the stopping rule (``lr`` to ``backtrack``).
    offsets : `torch.Tensor`, optional
        Sub-pixel shifts (B, K, 2) = (dy, dx), in pixels, of the galaxies from their stamps' central
        pixels; None: the positions are rounded.
    timeLimit : `float`, optional
        Seconds after which the fit stops, whatever the rule says; None: no limit.
    kernels : `torch.Tensor`, optional
        Each blend's difference-kernel spectra (B, C, M, M // 2 + 1) for model-frame decoders
        (:mod:`.observation`); None for decoders that draw as observed.
    ratio : `float`, optional
        The exposure's pixel side over the model frame's (:func:`~.observation.pixelScaleRatio`);
        read with ``kernels`` only.
    channels : `torch.Tensor`, optional
        Indices of the decoder's output bands that ``data``, ``weight`` and ``kernels`` hold (the others
        are not fitted); None: all.
    onStop : callable, optional
        ``onStop(n)`` is told of the ``n`` blends that stopped at each step (progress bars).

    Returns
    -------
    result : `MapResult`
        Per blend: the latents of the lowest loss reached, that loss and its two terms, the steps
        taken, whether the rule stopped it, the loss history and the ``timedOut`` flags.

    Examples
    --------
    One galaxy drawn by a linear "decoder" under a flat prior: the fit finds the latents that made the data.

    >>> import torch
    >>> from torch import nn
    >>> _ = torch.manual_seed(0)
    >>> decoder = nn.Sequential(nn.Linear(2, 9), nn.Unflatten(1, (1, 3, 3)))   # latents (N, 2) → (N, 1, 3, 3)
    >>> flatPrior = nn.Sequential(nn.Linear(2, 1), nn.Flatten(0))
    >>> _ = nn.init.zeros_(flatPrior[0].weight), nn.init.zeros_(flatPrior[0].bias)
    >>> truth = torch.tensor([[[0.5, -1.0]]])                                   # (B, K, D) = (1, 1, 2)
    >>> rows = cols = torch.zeros(1, 1, dtype=torch.long)
    >>> present = torch.ones(1, 1, dtype=torch.bool)
    >>> with torch.no_grad():
    ...     data = placeStamps(decoder(truth[0]).unsqueeze(0), rows, cols, present, 3, 3)
    >>> result = fitLatents(MapObjective(decoder, flatPrior), torch.zeros(1, 1, 2), data, torch.ones_like(data),
    ...                     rows, cols, present)
    >>> result.latents.round(decimals=2).tolist(), bool(result.converged[0]), int(result.iterations[0]) <= 200
    ([[[0.5, -1.0]]], True, True)
    """
    start = time.perf_counter()
    latents = initial.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([latents], lr=config.lr)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, config.lrDecayEvery, config.lrDecay)
    b = initial.shape[0]
    best = initial.detach().clone()
    lowest = torch.full((b,), float("inf"), dtype=torch.float64)
    gain = torch.ones(b, dtype=torch.float64)  # each blend's step length, in units of the learning rate
    stopped = torch.zeros(b, dtype=torch.bool)
    iterations = torch.full((b,), config.maxIter, dtype=torch.long)
    alpha = 2.0 / (config.window + 1)
    recent = torch.zeros(b, dtype=torch.float64)
    first = torch.zeros(b, dtype=torch.float64)
    history = []
    timedOut = torch.zeros(b, dtype=torch.bool)
    for step in range(config.maxIter + 1):
        loss, _, _ = objective(latents, data, weight, rows, cols, present, offsets, kernels, ratio, channels)
        current = loss.detach().double().cpu()
        history.append(current)
        better = (current < lowest) & ~stopped
        if bool(better.any()):
            onDevice = better.to(latents.device)
            best[onDevice] = latents.detach()[onDevice]
            lowest = torch.where(better, current, lowest)
        rose = (current > lowest) & ~stopped if config.backtrack else torch.zeros_like(stopped)
        if bool(rose.any()):
            current = torch.where(rose, lowest, current)  # where the blend goes back to
            history[-1] = current
        if step > 0:
            decrease = history[-2] - current
            recent = alpha * decrease + (1 - alpha) * recent if step > 1 else decrease
            if step <= config.window:
                first += decrease / config.window
            if step >= max(config.minIter, config.window):
                # "<=": a blend that starts at its optimum (no decrease at all) stops too.
                rule = (recent <= config.tolerance * first) & ~stopped
                if bool(rule.any()):
                    iterations[rule] = step
                    stopped |= rule
                    if onStop is not None:
                        onStop(int(rule.sum()))
        if step == config.maxIter or bool(stopped.all()):
            break
        if timeLimit is not None and time.perf_counter() - start > timeLimit:
            timedOut = ~stopped
            break
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()
        before = latents.detach().clone()
        optimizer.step()
        with torch.no_grad():
            latents.copy_(before + gain.to(latents.device, latents.dtype).view(-1, 1, 1) * (latents - before))
            if bool(rose.any()):
                # A blend that overshot skips this step: back to its best latents, without its momentum.
                onDevice = rose.to(latents.device)
                latents[onDevice] = best[onDevice]
                optimizer.state[latents]["exp_avg"][onDevice] = 0.0
                gain = torch.where(rose, gain * 0.5, gain)
        scheduler.step()
    with torch.no_grad():
        loss, logLikelihood, logPrior = objective(best, data, weight, rows, cols, present, offsets, kernels, ratio,
                                                  channels)
    iterations[timedOut] = len(history) - 1
    return MapResult(best, loss, logLikelihood, logPrior, iterations, stopped.clone(), torch.stack(history), timedOut)
