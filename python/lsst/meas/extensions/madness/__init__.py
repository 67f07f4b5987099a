"""MADNESS deblender for the LSST Science Pipelines.

The top level re-exports the public names, as LSST packages do:
the afw-like data model (``MultibandExposure``, ``SourceCatalog``, ``HeavyFootprint``, ...),
the Task/Config framework (``Task``, ``Config``, ``Struct``, ...), the file readers, and the
deblend tasks (``MadnessDeblendTask``, ``ScarletDeblendTask``, ``DeblendCoaddSourcesMultiTask``
and their configs).

The framework (lsst-utils, whose timer needs astropy) and the file readers (astropy) load on
first use, so that training on a bare GPU machine (torch, numpy, pydantic, zuko) imports the
package without either; the deblend tasks (torch, and JAX for SCARLET) load on first use too.
"""

from .afw import *  # noqa: F403
from .version import __version__  # noqa: F401

# Subpackages whose public names are loaded on the first access to one of them.
_LAZY_SUBPACKAGES = ("framework", "io")
# The tasks, by the module that defines them.
_LAZY_TASKS = {
    "MadnessDeblendTask": "deblend", "MadnessDeblendConfig": "deblend",
    "ScarletDeblendTask": "deblend", "ScarletDeblendConfig": "deblend",
    "DeblendCoaddSourcesMultiTask": "deblendCoaddSources", "DeblendCoaddSourcesMultiConfig": "deblendCoaddSources",
}


def __getattr__(name: str):
    if name in _LAZY_TASKS:
        import importlib

        value = getattr(importlib.import_module(f"{__name__}.{_LAZY_TASKS[name]}"), name)
        globals()[name] = value
        return value
    if not name.startswith("_") and name not in _LAZY_SUBPACKAGES:
        import importlib

        for subpackage in _LAZY_SUBPACKAGES:
            module = importlib.import_module(f"{__name__}.{subpackage}")
            if name in module.__all__:
                value = getattr(module, name)
                globals()[name] = value  # later lookups skip this function
                return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
