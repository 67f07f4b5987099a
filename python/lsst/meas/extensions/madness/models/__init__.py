"""MADNESS networks: β-VAE encoder and decoder, latent flow prior, VAE-deblender encoder."""

from .config import *  # noqa: F401,F403
from .networks import *  # noqa: F401,F403
from .flow import *  # noqa: F401,F403
