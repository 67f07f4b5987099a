"""MADNESS deblender for the LSST Science Pipelines.

The top level re-exports the public names, as LSST packages do:
the afw-like data model (``MultibandExposure``, ``SourceCatalog``, ``HeavyFootprint``, ...),
the Task/Config framework (``Task``, ``Config``, ``Struct``, ...) and the file readers.

The file readers (astropy) load on first use, so that training on a bare GPU machine
(torch, numpy, pydantic, zuko) imports the package without astropy.
"""

from .version import __version__  # noqa: F401
from .afw import *  # noqa: F401,F403
from .framework import *  # noqa: F401,F403


def __getattr__(name: str):
    if not name.startswith("_") and name != "io":
        import importlib

        io = importlib.import_module(f"{__name__}.io")
        if name in io.__all__:
            return getattr(io, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
