"""MADNESS deblender for the LSST Science Pipelines.

The top level re-exports the public names, as LSST packages do:
the afw-like data model (``MultibandExposure``, ``SourceCatalog``, ``HeavyFootprint``, ...),
the Task/Config framework (``Task``, ``Config``, ``Struct``, ...) and the file readers.

The framework (lsst-utils, whose timer needs astropy) and the file readers (astropy) load on
first use, so that training on a bare GPU machine (torch, numpy, pydantic, zuko) imports the
package without either.
"""

from .version import __version__  # noqa: F401
from .afw import *  # noqa: F401,F403

# Subpackages whose public names are loaded on the first access to one of them.
_LAZY_SUBPACKAGES = ("framework", "io")


def __getattr__(name: str):
    if not name.startswith("_") and name not in _LAZY_SUBPACKAGES:
        import importlib

        for subpackage in _LAZY_SUBPACKAGES:
            module = importlib.import_module(f"{__name__}.{subpackage}")
            if name in module.__all__:
                value = getattr(module, name)
                globals()[name] = value  # later lookups skip this function
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
