"""MADNESS networks: β-VAE encoder and decoder, latent flow prior, VAE-deblender encoder.

The flow (:mod:`.flow`, which needs zuko) is imported on first use, so that loading
exported models (:func:`.export.loadModels`) needs nothing but torch.
"""

from .config import *  # noqa: F403
from .device import *  # noqa: F403
from .export import *  # noqa: F403
from .losses import *  # noqa: F403
from .modelCard import *  # noqa: F403
from .networks import *  # noqa: F403
from .validation import *  # noqa: F403

_FLOW_NAMES = ("makeFlow", "FlowLogProb")


def __getattr__(name: str):
    if name in _FLOW_NAMES:
        from . import flow

        return getattr(flow, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
