"""LSST-like simulation: survey conditions, galaxy populations, rendering and data sets.

Every name loads with its module on first use: the GalSim and astropy parts stay out of a
process that only draws training stamps with torch (:mod:`.fourier`, :mod:`.trainingStamps`).
"""

import importlib

# Submodules whose public names the package exposes, in the order they are searched.
_MODULES = ("survey", "catsim", "snr", "population", "galaxies", "render", "splits", "datasets", "shards",
            "inputs", "fourier", "trainingStamps", "stream")


def __getattr__(name: str):
    if name in _MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if not name.startswith("_"):
        for module in _MODULES:
            loaded = importlib.import_module(f"{__name__}.{module}")
            if name in getattr(loaded, "__all__", ()):
                return getattr(loaded, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULES))
