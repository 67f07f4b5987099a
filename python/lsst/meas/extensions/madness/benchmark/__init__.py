"""Benchmark of deblenders on simulated test fields (Biswas et al. 2025, Sec. 4).

:mod:`.metrics` holds the per-galaxy photometry and blending measurements (aperture photometry,
blendedness, contamination, colour), :mod:`.morphology` the morphology ones (SSIM, cosine
similarity, adaptive-moment ellipticity); their public names are re-exported here.
"""

from .metrics import *  # noqa: F403
from .morphology import *  # noqa: F403
