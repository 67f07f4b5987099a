"""Benchmark of deblenders on simulated test fields (Biswas et al. 2025, Sec. 4).

:mod:`.metrics` holds the per-galaxy measurements (aperture photometry, blendedness,
contamination, colour, SSIM, cosine similarity, adaptive-moment ellipticity); its public
names are re-exported here.
"""

from .metrics import *  # noqa: F403
