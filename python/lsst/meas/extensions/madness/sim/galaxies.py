"""The galaxy catalogue a simulation draws from: a CatSim file, or the built-in population."""

from __future__ import annotations

import os

import numpy as np
from astropy.table import Table

from .catsim import readCatsimCatalog
from .population import generatePopulation
from .snr import catalogSnr
from .survey import LSST_CONDITIONS, SurveyConditions

__all__ = ["loadGalaxies"]


def loadGalaxies(
    path: str | os.PathLike | None = None,
    *,
    nGalaxies: int = 20_000,
    seed: int = 0,
    snrCut: float | None = 10.0,
    snrBand: str = "r",
    conditions: SurveyConditions = LSST_CONDITIONS,
) -> Table:
    """Galaxies with CatSim columns (plus derived ones) that pass the paper's S/N cut.

    With ``path``, the CatSim-format catalogue there (e.g. the OneDegSq catalogue the paper
    used) is read and checked (:func:`~.catsim.readCatsimCatalog`), and only galaxies with
    App. A S/N >= ``snrCut`` in ``snrBand`` are kept, as in the paper's Sec. 2. Without it,
    ``nGalaxies`` galaxies of the built-in population (:func:`~.population.generatePopulation`)
    that pass the same cut. ``snrCut=None`` keeps every galaxy.

    Raises
    ------
    FitsFormatError
        For a malformed catalogue file (naming file, column and row).
    ValueError
        If no galaxy of the file passes the cut.
    """
    if path is None:
        return generatePopulation(nGalaxies, seed, conditions=conditions, snrCut=snrCut, snrBand=snrBand)
    galaxies = readCatsimCatalog(path)
    galaxies[f"snr_{snrBand}"] = catalogSnr(galaxies, conditions, snrBand)
    if snrCut is not None:
        kept = np.asarray(galaxies[f"snr_{snrBand}"]) >= snrCut
        if not kept.any():
            raise ValueError(f"{path}: none of its {len(galaxies)} galaxies has {snrBand}-band S/N >= {snrCut}")
        galaxies = galaxies[kept]
    return galaxies
