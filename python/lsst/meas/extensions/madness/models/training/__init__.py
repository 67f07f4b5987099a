r"""Training of the MADNESS networks: β-VAE, latent flow prior and VAE-deblender (paper App. B).

Three stages, each run by one function, each writing to ``outDir/<stage>/`` (all pixels
divided by ``normalisation`` = 10⁴):

:func:`.trainVae`
    Denoising β-VAE on IsolatedSims: input the noisy stamp :math:`x`, target the noiseless
    stamp :math:`y`, :math:`z \sim q(z \mid x)`, loss
    :math:`\big(\sum (y - \hat y)^2 / (\sigma_b^2 + y/10^4) + \beta\,\mathrm{KL}\big)
    \,(1 - \alpha_e\,\mathrm{SSIM})` with the SSIM weight
    :math:`\alpha_e = \max(0, 1 - e / E_{\rm warm})` in epoch :math:`e` (App. B.1: 1 → 0 in
    steps of 0.02 over 50 epochs). As in the reference code the SSIM factor multiplies the
    whole loss; the paper's Eq. 2 applies it to the likelihood term only (with β = 0.01 the
    two differ little).
:func:`.trainFlow`
    :math:`-\frac1N \sum_n \log p_\phi(z_n)` on latent *samples* :math:`z_n \sim q(z \mid x_n)`
    of the frozen VAE encoder applied to noisy isolated stamps (Sec. 3.3, App. B.2).
:func:`.trainDeblender`
    A copy of the VAE encoder, on BlendedSims stamps :math:`x_d`: Eq. 4,
    :math:`\lVert z_d - z_i \rVert^2` with :math:`z_d \sim q_d(z \mid x_d)` (or its mean) and
    :math:`z_i \sim q(z \mid y + \sigma_b \epsilon)` from the frozen VAE encoder on the
    isolated central galaxy plus Gaussian sky noise (Sec. 3.4, App. B.3).

:math:`\sigma_b` is the sky noise of band :math:`b` (see :mod:`.training.data`).

The package's modules, one per part of a run:

:mod:`.training.configs`
    :class:`.TrainingConfig` and :class:`.StageConfig` (the paper's defaults), the
    learning-rate and SSIM schedules, :class:`.TrainResult` and :func:`.stagePath`.
:mod:`.training.data`
    Batches from data sets, streams, DataLoaders and plain iterables; the sky level.
:mod:`.training.stages`
    What differs between the three stages: networks, losses, batch preparation.
:mod:`.training.checkpoints`
    Checkpoints (with random-number states), metrics files and loss plots;
    :func:`.loadCheckpointModels` and :func:`.requireVaeCheckpoint`.
:mod:`.training.loop`
    The epoch loop shared by the stages and the three training functions.

Every name of :data:`__all__` imports from here, as it did when this package was one module.

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 3.2-3.4 and App. B.1-B.3.
Higgins et al. 2017, ICLR, "β-VAE: learning basic visual concepts with a constrained
variational framework".
Kingma & Ba 2015, ICLR, "Adam: a method for stochastic optimization".
Wang et al. 2004, IEEE Trans. Image Processing 13, 600 (SSIM).
Arcelin et al. 2021, MNRAS 500, 531, "Deblending galaxies with variational autoencoders"
(retraining the encoder as a deblender).
"""

from __future__ import annotations

from ..device import resolveDevice
from .checkpoints import loadCheckpointModels, requireVaeCheckpoint
from .configs import STAGES, StageConfig, TrainingConfig, TrainResult, learningRateFactor, ssimWeight, stagePath
from .loop import trainDeblender, trainFlow, trainVae

__all__ = [
    "STAGES",
    "StageConfig",
    "TrainingConfig",
    "TrainResult",
    "learningRateFactor",
    "ssimWeight",
    "resolveDevice",
    "stagePath",
    "loadCheckpointModels",
    "requireVaeCheckpoint",
    "trainVae",
    "trainFlow",
    "trainDeblender",
]
