r"""The latent prior: a masked autoregressive flow (zuko) on the VAE's 16-d latents.

.. math:: \log p(z) = \log \mathcal{N}\big(f(z); 0, I\big) + \log\left|\det \frac{\partial f}{\partial z}\right|

with :math:`f` a chain of ``transforms`` affine MAF transforms, each autoregressive network
having hidden units ``hiddenFeatures`` and tanh activations, and the variable order rolled by
``roll`` between transforms (the reference code's fixed permutation). No batch norm: the
reference code builds one but drops it.

References
----------
Papamakarios, Pavlakou & Murray 2017, "Masked Autoregressive Flow for Density Estimation".
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 3.3, App. B.2.
Rozet et al., "zuko: normalizing flows in PyTorch".

Examples
--------
>>> import torch
>>> from lsst.meas.extensions.madness.models import ModelConfig
>>> flow = makeFlow(ModelConfig())
>>> tuple(flow().log_prob(torch.zeros(4, 16)).shape)
(4,)
"""

from __future__ import annotations

import torch
import zuko
from torch import nn

from .config import ModelConfig

__all__ = ["makeFlow", "FlowLogProb"]


def makeFlow(config: ModelConfig) -> zuko.flows.Flow:
    """An untrained flow with the configured transforms, hidden units and order rolls.

    Parameters
    ----------
    config : `~.config.ModelConfig`
        Its ``latentDim`` and ``flow`` (transforms, hidden units, roll) fix the flow.

    Returns
    -------
    flow : `zuko.flows.Flow`
        An unconditional masked autoregressive flow over ``latentDim`` variables with a standard normal base;
        ``flow().log_prob(z)`` is :math:`\\log p(z)` for latents (N, latentDim).

    Examples
    --------
    >>> import torch
    >>> from lsst.meas.extensions.madness.models import ModelConfig
    >>> flow = makeFlow(ModelConfig.fromProfile("tiny"))
    >>> tuple(flow().log_prob(torch.zeros(3, 16)).shape), len(flow.transform.transforms)
    ((3,), 2)
    """
    d, f = config.latentDim, config.flow
    transforms = [
        zuko.flows.MaskedAutoregressiveTransform(
            features=d,
            order=torch.roll(torch.arange(d), f.roll * i),
            hidden_features=tuple(f.hiddenFeatures),
            activation=nn.Tanh,
        )
        for i in range(f.transforms)
    ]
    base = zuko.flows.UnconditionalDistribution(
        zuko.distributions.DiagNormal, loc=torch.zeros(d), scale=torch.ones(d), buffer=True
    )
    return zuko.flows.Flow(transforms, base)


class FlowLogProb(nn.Module):
    """``z → log p(z)``, the one function of the flow the deblender needs (traceable).

    Parameters
    ----------
    flow : `zuko.flows.Flow`
        The latent prior (:func:`makeFlow`).

    Examples
    --------
    >>> import torch
    >>> from lsst.meas.extensions.madness.models import ModelConfig
    >>> flow = makeFlow(ModelConfig.fromProfile("tiny"))
    >>> z = torch.randn(4, 16)
    >>> torch.equal(FlowLogProb(flow)(z), flow().log_prob(z))
    True
    """

    def __init__(self, flow: zuko.flows.Flow):
        super().__init__()
        self.flow = flow

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """The log-density of latents.

        Parameters
        ----------
        z : `torch.Tensor`
            (N, D) latents.

        Returns
        -------
        logProb : `torch.Tensor`
            (N,) :math:`\\log p(z)`.
        """
        return self.flow().log_prob(z)
