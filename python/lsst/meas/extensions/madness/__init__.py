"""MADNESS deblender for the LSST Science Pipelines.

The top level re-exports the public names, as LSST packages do:
the afw-like data model (``MultibandExposure``, ``SourceCatalog``, ``HeavyFootprint``, ...),
the Task/Config framework (``Task``, ``Config``, ``Struct``, ...) and the file readers.
"""

from .version import __version__  # noqa: F401
from .afw import *  # noqa: F401,F403
from .framework import *  # noqa: F401,F403
from .io import *  # noqa: F401,F403
