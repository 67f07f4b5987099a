r"""Standardised latents: an affine change of latent coordinates folded into the trained networks.

The MAP fit moves latents with Adam at a fixed learning rate (0.05 per step), tuned for a
latent space of order unity. A VAE whose KL term lost to its reconstruction term (β = 0.01
against a χ² of thousands per stamp, or a fine-tune whose input units changed) can end with
latents spread over tens of units, where 200 such steps barely move a galaxy. The change of
coordinates :math:`z = m + s \odot z'`, with :math:`m` and :math:`s` the mean and standard
deviation of the encoder's posterior means over held-out galaxies, is exact for the decoder
and the prior and is folded into their weights:

.. math::

    p_\theta'(z') = p_\theta(m + s \odot z'), \qquad
    \log p'(z') = \log p(m + s \odot z') + \sum_i \log s_i,

    \mu'(x) = (\mu(x) - m) / s, \qquad L' = \mathrm{diag}(1/s)\, L .

The decoder's first dense layer absorbs :math:`m` and :math:`s` (:math:`W' = W\,\mathrm{diag}(s)`,
:math:`b' = b + W m`), each encoder's mean rows and lower-triangular rows are divided by
:math:`s` (the mean's bias shifted by :math:`m`), and the flow gets the affine map in front.
The diagonal of :math:`L` passes through a softplus, which no linear fold divides exactly; its
pre-activation is shifted by :math:`-\log s_i`, exact in the softplus' exponential regime where
posterior widths of :math:`\ll 1` lie. Only the posterior means enter the deblender.

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 3.5 (the optimiser these latents serve).
Kingma & Welling 2014, "Auto-Encoding Variational Bayes" (reparameterisation).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch
from torch import nn

from .networks import Decoder, Encoder

__all__ = ["latentStatistics", "StandardisedFlowLogProb", "standardiseLatents"]


@torch.no_grad()
def latentStatistics(encoder: Encoder, stamps: torch.Tensor, batchSize: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and standard deviation (each ``(d,)``) of the posterior means of ``stamps`` (N, bands, S, S).

    Parameters
    ----------
    encoder : `~.networks.Encoder`
        The VAE encoder.
    stamps : `torch.Tensor`
        (N, bands, S, S) held-out galaxies in the networks' units, N at least 2.
    batchSize : `int`, optional
        Stamps encoded at once.

    Returns
    -------
    mean, std : `torch.Tensor`
        (D,) each: :math:`m` and :math:`s` of the module docstring (``std`` at least :math:`10^{-6}`).

    Examples
    --------
    >>> from lsst.meas.extensions.madness.models import ModelConfig
    >>> mean, std = latentStatistics(Encoder(ModelConfig.fromProfile("tiny")), torch.rand(5, 6, 45, 45), batchSize=2)
    >>> tuple(mean.shape), tuple(std.shape), bool((std > 0).all())
    ((16,), (16,), True)
    """
    means = torch.cat([encoder(stamps[i:i + batchSize])[0] for i in range(0, len(stamps), batchSize)])
    return means.mean(0), means.std(0).clamp(min=1e-6)


class StandardisedFlowLogProb(nn.Module):
    r""":math:`z' \mapsto \log p(m + s \odot z') + \sum_i \log s_i` of a zuko flow (traceable).

    Parameters
    ----------
    flow : `zuko.flows.Flow`
        The prior in the original coordinates :math:`z`.
    mean, std : `torch.Tensor`
        (D,) :math:`m` and :math:`s` (:func:`latentStatistics`).

    Examples
    --------
    With :math:`m = 0` and :math:`s = 1` the density is the flow's:

    >>> from lsst.meas.extensions.madness.models import ModelConfig, makeFlow
    >>> flow = makeFlow(ModelConfig.fromProfile("tiny"))
    >>> z = torch.randn(3, 16)
    >>> torch.allclose(StandardisedFlowLogProb(flow, torch.zeros(16), torch.ones(16))(z), flow().log_prob(z))
    True
    """

    if TYPE_CHECKING:  # buffers; not class annotations at run time, which torch.jit would read
        mean: torch.Tensor
        std: torch.Tensor

    def __init__(self, flow, mean: torch.Tensor, std: torch.Tensor):
        super().__init__()
        self.flow = flow
        self.register_buffer("mean", mean.detach().clone())
        self.register_buffer("std", std.detach().clone())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """The log-density of standardised latents.

        Parameters
        ----------
        z : `torch.Tensor`
            (N, D) latents :math:`z'` in the standardised coordinates.

        Returns
        -------
        logProb : `torch.Tensor`
            (N,) :math:`\\log p'(z')`.
        """
        return self.flow().log_prob(self.mean + self.std * z) + torch.log(self.std).sum()


@torch.no_grad()
def _foldIntoEncoder(encoder: Encoder, mean: torch.Tensor, std: torch.Tensor) -> None:
    head = cast(nn.Linear, encoder.head[-1])
    d = encoder.latentDim
    head.weight[:d] /= std[:, None]
    head.bias[:d] = (head.bias[:d] - mean) / std
    scale = std[encoder.trilRows]  # entry (i, j) of L belongs to row i
    offDiagonal = d + torch.nonzero(~encoder.diagonal).flatten()
    onDiagonal = d + torch.nonzero(encoder.diagonal).flatten()
    head.weight[offDiagonal] = head.weight[offDiagonal] / scale[offDiagonal - d][:, None]
    head.bias[offDiagonal] = head.bias[offDiagonal] / scale[offDiagonal - d]
    head.bias[onDiagonal] = head.bias[onDiagonal] - torch.log(scale[onDiagonal - d])


@torch.no_grad()
def standardiseLatents(encoder: Encoder, deblender: Encoder, decoder: Decoder, flow, mean: torch.Tensor,
                       std: torch.Tensor) -> StandardisedFlowLogProb:
    r"""Fold :math:`z = m + s z'` into ``encoder``, ``deblender`` and ``decoder`` (in place); return
    the flow's log-density in the new coordinates.

    Parameters
    ----------
    encoder, deblender : `~.networks.Encoder`
        The VAE encoder and the VAE-deblender encoder, changed in place.
    decoder : `~.networks.Decoder`
        The decoder, changed in place.
    flow : `zuko.flows.Flow`
        The latent prior in the old coordinates (not changed).
    mean, std : `torch.Tensor`
        (D,) :math:`m` and :math:`s` (:func:`latentStatistics`).

    Returns
    -------
    prior : `StandardisedFlowLogProb`
        :math:`\log p'(z')`, to export in place of the flow.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.models import ModelConfig, makeFlow
    >>> config = ModelConfig.fromProfile("tiny")
    >>> encoder, deblender, decoder = Encoder(config), Encoder(config), Decoder(config)
    >>> x = torch.rand(4, 6, 45, 45)
    >>> before = decoder(encoder(x)[0])
    >>> prior = standardiseLatents(encoder, deblender, decoder, makeFlow(config), torch.ones(16), 3 * torch.ones(16))
    >>> torch.allclose(decoder(encoder(x)[0]), before, atol=1e-5)
    True
    """
    first = cast(nn.Linear, decoder.dense[0])
    std = std.to(first.weight)
    mean = mean.to(std)
    first.bias.add_(first.weight @ mean)
    first.weight *= std[None, :]
    _foldIntoEncoder(encoder, mean, std)
    _foldIntoEncoder(deblender, mean, std)
    return StandardisedFlowLogProb(flow, mean, std)
