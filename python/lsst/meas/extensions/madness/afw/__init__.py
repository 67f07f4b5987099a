"""afw-like data model: the class and method names of ``lsst.afw`` and ``lsst.geom``."""

from .detection import *  # noqa: F403
from .exposure import *  # noqa: F403
from .geom import *  # noqa: F403
from .image import *  # noqa: F403
from .photoCalib import *  # noqa: F403
from .psf import *  # noqa: F403
from .skyWcs import *  # noqa: F403
from .spans import *  # noqa: F403
from .table import *  # noqa: F403
