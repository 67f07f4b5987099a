r"""The β-VAE's encoder and decoder, and the latent Gaussian they share.

The encoder maps a normalised stamp :math:`x` (bands × 45 × 45, electrons / 10⁴) to a
full-covariance Gaussian posterior :math:`q(z \mid x) = \mathcal{N}(\mu, L L^\top)` on the
16-d latent space: :math:`d` means and the :math:`d(d+1)/2` entries of a lower-triangular
:math:`L` whose diagonal is made positive by a softplus (plus :math:`10^{-5}`), as
TensorFlow Probability's ``MultivariateNormalTriL`` in the reference code. The decoder maps
a latent :math:`z` back to a non-negative stamp (ReLU output, or softplus, whose gradient
never vanishes, so no band can die). Both are plain
``torch.nn.Module`` s that ``torch.jit.script`` compiles.

Shapes, with :math:`c_i` the encoder filters and stride-2 "same" convolutions,
45 → 23 → 12 → 6 → 3; the decoder upsamples a 6 × 6 seed 6 → 12 → 24 → 48 and crops
one row/column at the start and two at the end, 48 → 45.

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 3.2, App. B.1.
Kingma & Welling 2014, "Auto-Encoding Variational Bayes".

Examples
--------
>>> import torch
>>> from lsst.meas.extensions.madness.models import ModelConfig
>>> config = ModelConfig()
>>> encoder, decoder = Encoder(config), Decoder(config)
>>> mean, scaleTril = encoder(torch.zeros(2, 6, 45, 45))
>>> tuple(mean.shape), tuple(scaleTril.shape), tuple(decoder(mean).shape)
((2, 16), (2, 16, 16), (2, 6, 45, 45))
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
from torch import nn

from .config import ModelConfig

__all__ = ["Encoder", "Decoder", "sampleLatent", "klToStandardNormal"]

_SCALE_SHIFT = 1e-5


def _convOutput(size: int, kernel: int, stride: int = 2) -> int:
    """Output side of a "same"-padded stride-2 convolution: ceil(size / stride)."""
    return math.ceil(size / stride)


class Encoder(nn.Module):
    """Stamp → (posterior mean, lower-triangular scale) of the latent Gaussian.

    Parameters
    ----------
    config : `~.config.ModelConfig`
        Bands, stamp size, latent dimension and ``encoder`` sizes.

    Examples
    --------
    >>> import torch
    >>> from lsst.meas.extensions.madness.models import ModelConfig
    >>> mean, scaleTril = Encoder(ModelConfig.fromProfile("tiny"))(torch.zeros(2, 6, 45, 45))
    >>> tuple(mean.shape), tuple(scaleTril.shape), bool((torch.diagonal(scaleTril, dim1=1, dim2=2) > 0).all())
    ((2, 16), (2, 16, 16), True)
    """

    if TYPE_CHECKING:  # not class annotations at run time: TorchScript reads those, as unresolvable strings
        # Buffers (register_buffer): the row, column and diagonal flag of each entry of the scale's triangle.
        trilRows: torch.Tensor
        trilCols: torch.Tensor
        diagonal: torch.Tensor

    def __init__(self, config: ModelConfig):
        super().__init__()
        e = config.encoder
        layers: list[nn.Module] = []
        channels, size = len(config.bands), config.stampSize
        for out in e.channels:
            layers += [nn.Conv2d(channels, out, e.kernelSize, stride=2, padding=e.kernelSize // 2), nn.PReLU(out)]
            channels, size = out, _convOutput(size, e.kernelSize)
        self.features = nn.Sequential(*layers)
        d = config.latentDim
        self.latentDim = d
        self.scaleShift = _SCALE_SHIFT
        self.head = nn.Sequential(
            nn.Flatten(),
            nn.Linear(channels * size * size, e.denseUnits),
            nn.PReLU(),
            nn.Linear(e.denseUnits, d + d * (d + 1) // 2),
        )
        rows, cols = torch.tril_indices(d, d)
        self.register_buffer("trilRows", rows, persistent=False)
        self.register_buffer("trilCols", cols, persistent=False)
        self.register_buffer("diagonal", (rows == cols), persistent=False)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The posterior of the latents of stamps.

        Parameters
        ----------
        x : `torch.Tensor`
            (N, bands, S, S) stamps in the networks' units.

        Returns
        -------
        mean : `torch.Tensor`
            (N, D) posterior means.
        scaleTril : `torch.Tensor`
            (N, D, D) lower-triangular scale :math:`L` (positive diagonal): covariance :math:`L L^\\top`.
        """
        out = self.head(self.features(x))
        d = self.latentDim
        mean = out[:, :d]
        entries = out[:, d:]
        # A positive diagonal makes L a valid Cholesky factor.
        entries = torch.where(self.diagonal, nn.functional.softplus(entries) + self.scaleShift, entries)
        scaleTril = torch.zeros(out.shape[0], d, d, dtype=out.dtype, device=out.device)
        scaleTril[:, self.trilRows, self.trilCols] = entries
        return mean, scaleTril


class Decoder(nn.Module):
    """Latent → non-negative stamp (bands × stampSize × stampSize).

    Parameters
    ----------
    config : `~.config.ModelConfig`
        Bands, stamp size, latent dimension and ``decoder`` sizes.

    Examples
    --------
    >>> import torch
    >>> from lsst.meas.extensions.madness.models import ModelConfig
    >>> stamps = Decoder(ModelConfig.fromProfile("tiny"))(torch.zeros(3, 16))
    >>> tuple(stamps.shape), bool((stamps >= 0).all())
    ((3, 6, 45, 45), True)
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        dc = config.decoder
        self.seedChannels, self.seedSize = dc.seedChannels, dc.seedSize
        self.dense = nn.Sequential(
            nn.Linear(config.latentDim, dc.denseUnits),
            nn.PReLU(),
            nn.Linear(dc.denseUnits, dc.seedChannels * dc.seedSize**2),
            nn.PReLU(),
        )
        layers: list[nn.Module] = []
        channels = dc.seedChannels
        for out in dc.channels:
            pad = dc.kernelSize // 2
            layers += [nn.ConvTranspose2d(channels, out, dc.kernelSize, stride=2, padding=pad, output_padding=1),
                       nn.PReLU(out)]
            channels = out
        output = nn.Softplus() if dc.outputActivation == "softplus" else nn.ReLU()
        layers += [nn.ConvTranspose2d(channels, len(config.bands), 3, stride=1, padding=1), output]
        self.upsample = nn.Sequential(*layers)
        produced = dc.seedSize * 2 ** len(dc.channels)
        # Crop as the reference does: one more row/column off the end than the start.
        extra = produced - config.stampSize
        self.cropStart = extra // 2
        self.cropStop = self.cropStart + config.stampSize

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """The stamps of latents.

        Parameters
        ----------
        z : `torch.Tensor`
            (N, D) latents.

        Returns
        -------
        stamps : `torch.Tensor`
            (N, bands, S, S) non-negative stamps in the networks' units.
        """
        seed = self.dense(z).view(-1, self.seedChannels, self.seedSize, self.seedSize)
        image = self.upsample(seed)
        return image[:, :, self.cropStart : self.cropStop, self.cropStart : self.cropStop]


def sampleLatent(mean: torch.Tensor, scaleTril: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    r"""A reparameterised sample :math:`z = \mu + L \epsilon`, :math:`\epsilon \sim \mathcal{N}(0, I)`.

    Parameters
    ----------
    mean : `torch.Tensor`
        (N, D) posterior means :math:`\mu`.
    scaleTril : `torch.Tensor`
        (N, D, D) lower-triangular scales :math:`L`.
    generator : `torch.Generator`, optional
        Source of :math:`\epsilon`; None: torch's global one.

    Returns
    -------
    z : `torch.Tensor`
        (N, D) samples, differentiable with respect to ``mean`` and ``scaleTril``.

    Examples
    --------
    >>> import torch
    >>> z = sampleLatent(torch.zeros(10000, 2), 2 * torch.eye(2).expand(10000, 2, 2),
    ...                  generator=torch.Generator().manual_seed(0))
    >>> [round(s, 1) for s in z.std(0).tolist()]
    [2.0, 2.0]
    """
    noise = torch.randn(mean.shape, generator=generator, dtype=mean.dtype, device=mean.device)
    return mean + (scaleTril @ noise.unsqueeze(-1)).squeeze(-1)


def klToStandardNormal(mean: torch.Tensor, scaleTril: torch.Tensor) -> torch.Tensor:
    r"""Per-sample :math:`\mathrm{KL}\big(\mathcal{N}(\mu, LL^\top) \,\|\, \mathcal{N}(0, I)\big)`.

    .. math:: \tfrac12\Big(\operatorname{tr}(LL^\top) + \mu^\top\mu - d - 2\sum_i \log L_{ii}\Big)

    Parameters
    ----------
    mean : `torch.Tensor`
        (N, D) posterior means :math:`\mu`.
    scaleTril : `torch.Tensor`
        (N, D, D) lower-triangular scales :math:`L` with a positive diagonal.

    Returns
    -------
    kl : `torch.Tensor`
        (N,) the divergence of each sample's posterior from the standard normal, nats.

    Examples
    --------
    >>> d = 3
    >>> float(klToStandardNormal(torch.zeros(1, d), torch.eye(d)[None])[0])
    0.0
    """
    d = mean.shape[-1]
    trace = (scaleTril**2).sum(dim=(-2, -1))
    logDet = 2.0 * torch.log(torch.diagonal(scaleTril, dim1=-2, dim2=-1)).sum(-1)
    return 0.5 * (trace + (mean**2).sum(-1) - d - logDet)
