"""FITS readers and writers for multiband exposures and source catalogues with footprints."""

from .atomic import *  # noqa: F401,F403
from .errors import *  # noqa: F401,F403
from .exposureFits import *  # noqa: F401,F403
from .catalogFits import *  # noqa: F401,F403
