"""FITS readers and writers for multiband exposures and source catalogues with footprints."""

from . import atomic, catalogFits, errors, exposureFits
from .atomic import *  # noqa: F401,F403
from .errors import *  # noqa: F401,F403
from .exposureFits import *  # noqa: F401,F403
from .catalogFits import *  # noqa: F401,F403

__all__ = [*atomic.__all__, *errors.__all__, *exposureFits.__all__, *catalogFits.__all__]
