r"""Training losses of the MADNESS networks (paper Sec. 3.2-3.4, App. B; reference code).

All images are normalised (electrons / 10⁴). With noiseless target :math:`y`, prediction
:math:`\hat y` and per-band sky noise :math:`\sigma_b` (normalised), the VAE's
reconstruction term is the Gaussian approximation of the Poisson likelihood,

.. math:: \mathcal{L}_{\rm rec} = \sum_{\rm pixels,\,bands} \frac{(y - \hat y)^2}{\sigma_b^2 + y / 10^4},

summed over pixels and bands and averaged over the batch, and the β-VAE loss is
:math:`\mathcal{L}_{\rm rec} + \beta\,\mathrm{KL}` (β = 0.01). During the warm-up it is
multiplied by :math:`1 - \alpha\,\mathrm{SSIM}(y, \hat y)`, SSIM computed on each band
divided by its maximum, with :math:`\alpha` falling linearly from 1 to 0.

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender", Eq. 2-3, App. B.1.
Wang et al. 2004, IEEE Trans. Image Processing 13, 600, "Image quality assessment: from
error visibility to structural similarity" (SSIM).
"""

from __future__ import annotations

import torch

from .networks import klToStandardNormal

__all__ = ["reconstructionLoss", "betaVaeLoss", "ssim", "latentDistance"]


def reconstructionLoss(target: torch.Tensor, prediction: torch.Tensor, skyNoise: torch.Tensor,
                       normalisation: float = 1e4) -> torch.Tensor:
    r"""Per-sample :math:`\sum (y - \hat y)^2 / (\sigma_b^2 + y/10^4)` (``skyNoise`` is :math:`\sigma_b` per band).

    Parameters
    ----------
    target : `torch.Tensor`
        (N, bands, S, S) noiseless stamps :math:`y`, normalised.
    prediction : `torch.Tensor`
        (N, bands, S, S) decoded stamps :math:`\hat y`.
    skyNoise : `torch.Tensor`
        (bands,) sky noise per pixel :math:`\sigma_b`, normalised.
    normalisation : `float`, optional
        Electrons per normalised unit: the Poisson variance of :math:`y` is :math:`y / {\rm normalisation}`.

    Returns
    -------
    loss : `torch.Tensor`
        (N,) the weighted squared residuals summed over pixels and bands.

    Examples
    --------
    >>> y = torch.zeros(1, 2, 3, 3)
    >>> float(reconstructionLoss(y, y + 1.0, torch.tensor([1.0, 2.0]))[0])  # 9/1 + 9/4
    11.25
    """
    variance = skyNoise.view(1, -1, 1, 1) ** 2 + target.clamp(min=0) / normalisation
    return ((target - prediction) ** 2 / variance).sum(dim=(1, 2, 3))


def ssim(x: torch.Tensor, y: torch.Tensor, window: int = 7) -> torch.Tensor:
    r"""Mean structural similarity per sample, each band scaled by its maximum in ``x`` and ``y``.

    Uses a uniform ``window`` and the usual constants :math:`C_1 = (0.01)^2`,
    :math:`C_2 = (0.03)^2` for a unit dynamic range.

    Parameters
    ----------
    x, y : `torch.Tensor`
        (N, bands, H, W) images, H and W at least ``window``.
    window : `int`, optional
        Side of the uniform averaging window, pixels.

    Returns
    -------
    similarity : `torch.Tensor`
        (N,) the SSIM index averaged over windows and bands; 1 for identical images.

    Examples
    --------
    >>> x = torch.rand(2, 3, 20, 20)
    >>> torch.allclose(ssim(x, x), torch.ones(2))
    True
    """
    def scaled(image: torch.Tensor) -> torch.Tensor:
        peak = image.amax(dim=(2, 3), keepdim=True).clamp(min=1e-12)
        return image / peak

    x, y = scaled(x), scaled(y)
    pool = torch.nn.functional.avg_pool2d
    muX, muY = pool(x, window, 1), pool(y, window, 1)
    varX = pool(x * x, window, 1) - muX**2
    varY = pool(y * y, window, 1) - muY**2
    cov = pool(x * y, window, 1) - muX * muY
    c1, c2 = 0.01**2, 0.03**2
    index = ((2 * muX * muY + c1) * (2 * cov + c2)) / ((muX**2 + muY**2 + c1) * (varX + varY + c2))
    return index.mean(dim=(1, 2, 3))


def betaVaeLoss(
    target: torch.Tensor,
    prediction: torch.Tensor,
    mean: torch.Tensor,
    scaleTril: torch.Tensor,
    skyNoise: torch.Tensor,
    beta: float = 0.01,
    ssimWeight: float = 0.0,
    normalisation: float = 1e4,
) -> torch.Tensor:
    r"""Batch mean of :math:`(\mathcal{L}_{\rm rec} + \beta\,\mathrm{KL})(1 - \alpha\,\mathrm{SSIM})`,
    :math:`\alpha` = ``ssimWeight``.

    Parameters
    ----------
    target : `torch.Tensor`
        (N, bands, S, S) noiseless stamps, normalised.
    prediction : `torch.Tensor`
        (N, bands, S, S) decoded stamps.
    mean, scaleTril : `torch.Tensor`
        (N, D) and (N, D, D): the encoder's posterior (:class:`~.networks.Encoder`).
    skyNoise : `torch.Tensor`
        (bands,) sky noise per pixel, normalised.
    beta : `float`, optional
        Weight :math:`\beta` of the KL term.
    ssimWeight : `float`, optional
        :math:`\alpha` in [0, 1] (:func:`~.training.configs.ssimWeight` during the warm-up); 0: no SSIM factor.
    normalisation : `float`, optional
        Electrons per normalised unit (:func:`reconstructionLoss`).

    Returns
    -------
    loss : `torch.Tensor`
        Scalar, the batch mean.

    Examples
    --------
    A perfect reconstruction with the prior as posterior costs nothing:

    >>> import torch
    >>> y = torch.rand(2, 1, 9, 9)
    >>> float(betaVaeLoss(y, y, torch.zeros(2, 3), torch.eye(3).expand(2, 3, 3), torch.ones(1), ssimWeight=0.5))
    0.0
    """
    loss = reconstructionLoss(target, prediction, skyNoise, normalisation) + beta * klToStandardNormal(mean, scaleTril)
    if ssimWeight > 0:
        loss = loss * (1.0 - ssimWeight * ssim(target, prediction))
    return loss.mean()


def latentDistance(latent: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    r"""Batch mean of :math:`\lVert z - z_{\rm ref} \rVert^2`: the VAE-deblender's loss (Sec. 3.4).

    Parameters
    ----------
    latent : `torch.Tensor`
        (N, D) the VAE-deblender encoder's means for blended stamps.
    reference : `torch.Tensor`
        (N, D) the VAE encoder's means for the isolated galaxies.

    Returns
    -------
    loss : `torch.Tensor`
        Scalar, the mean squared Euclidean distance.

    Examples
    --------
    >>> import torch
    >>> float(latentDistance(torch.tensor([[3.0, 4.0], [0.0, 0.0]]), torch.zeros(2, 2)))
    12.5
    """
    return ((latent - reference) ** 2).sum(-1).mean()
