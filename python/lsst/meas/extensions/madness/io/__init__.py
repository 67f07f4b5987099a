"""FITS readers and writers for multiband exposures, source catalogues with footprints, and model data."""

from . import atomic, catalogFits, errors, exposureFits, modelDataFits
from .atomic import *  # noqa: F403
from .catalogFits import *  # noqa: F403
from .errors import *  # noqa: F403
from .exposureFits import *  # noqa: F403
from .modelDataFits import *  # noqa: F403

__all__ = [*atomic.__all__, *errors.__all__, *exposureFits.__all__, *catalogFits.__all__, *modelDataFits.__all__]
