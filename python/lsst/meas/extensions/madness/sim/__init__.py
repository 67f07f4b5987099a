"""LSST-like simulation: survey conditions, galaxy populations, rendering and data sets.

``SimulationStream`` (which needs torch) is imported on first use.
"""

from .survey import *  # noqa: F401,F403
from .catsim import *  # noqa: F401,F403
from .snr import *  # noqa: F401,F403
from .population import *  # noqa: F401,F403
from .galaxies import *  # noqa: F401,F403
from .render import *  # noqa: F401,F403
from .splits import *  # noqa: F401,F403
from .datasets import *  # noqa: F401,F403
from .shards import *  # noqa: F401,F403
from .inputs import *  # noqa: F401,F403


def __getattr__(name: str):
    if name == "SimulationStream":
        from .stream import SimulationStream

        return SimulationStream
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
