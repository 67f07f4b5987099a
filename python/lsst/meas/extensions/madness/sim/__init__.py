"""LSST-like simulation: survey conditions, galaxy populations and rendering."""

from .survey import *  # noqa: F401,F403
from .catsim import *  # noqa: F401,F403
