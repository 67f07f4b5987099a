r"""Disjoint train / validation / test galaxies.

A galaxy's split is a pure function of its ``galtileid``: the id is hashed (SplitMix64) to a
number :math:`u \in [0, 1)` and the split is the first whose cumulative fraction exceeds
:math:`u`. So splits never share a galaxy, whatever catalogue or subset the galaxy comes
from, and the assignment needs no stored state.

The default fractions are the paper's (Sec. 2.1-2.2): of about 317k galaxies, 150k train,
50k validate and the remaining ~117k test.

References
----------
Biswas et al. 2025, A&A, "MADNESS deblender", Sec. 2.1 and 2.2.
Steele, Lea & Flood 2014, "Fast splittable pseudorandom number generators" (SplitMix64).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from astropy.table import Table

__all__ = ["SPLITS", "DEFAULT_SPLIT_FRACTIONS", "splitOf", "selectSplit"]

SPLITS: tuple[str, ...] = ("train", "validation", "test")
DEFAULT_SPLIT_FRACTIONS: tuple[float, float, float] = (150 / 317, 50 / 317, 117 / 317)


def _hashUnit(ids: np.ndarray) -> np.ndarray:
    """SplitMix64 finaliser of each id, mapped to [0, 1)."""
    z = np.asarray(ids).astype(np.uint64, copy=True)
    with np.errstate(over="ignore"):
        z += np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z = z ^ (z >> np.uint64(31))
    return (z >> np.uint64(11)).astype(np.float64) / float(2**53)


def _checkFractions(fractions: Sequence[float] | np.ndarray) -> np.ndarray:
    values = np.asarray(fractions, dtype=np.float64)
    if values.shape != (len(SPLITS),) or np.any(values < 0) or not np.isclose(values.sum(), 1.0):
        raise ValueError(f"split fractions must be {len(SPLITS)} non-negative numbers summing to 1, "
                         f"got {values.tolist()}")
    return values


def splitOf(galtileid: np.ndarray, fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS) -> np.ndarray:
    """The split name (``"train"``, ``"validation"`` or ``"test"``) of each galaxy id.

    Examples
    --------
    >>> names = splitOf(np.arange(100_000))
    >>> bool(abs(np.mean(names == "train") - 150 / 317) < 0.01)
    True
    >>> bool(np.all(splitOf(np.arange(5)) == splitOf(np.arange(5))))
    True
    """
    cumulative = np.cumsum(_checkFractions(fractions))
    index = np.minimum(np.searchsorted(cumulative, _hashUnit(galtileid), side="right"), len(SPLITS) - 1)
    return np.asarray(SPLITS)[index]


def selectSplit(catalog: Table, split: str, fractions: Sequence[float] = DEFAULT_SPLIT_FRACTIONS) -> Table:
    """The rows of a CatSim-format ``catalog`` that belong to ``split``."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {SPLITS}")
    rows = catalog[splitOf(np.asarray(catalog["galtileid"]), fractions) == split]
    if len(rows) == 0:
        raise ValueError(f"no galaxy of the {len(catalog)}-row catalogue falls in the {split!r} split")
    return rows
