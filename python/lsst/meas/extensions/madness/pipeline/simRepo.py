"""A butler repository of simulated patches: the inputs of the deblend ``PipelineTask``
(``madness-sim butler``).

Each patch is one field of :class:`~lsst.meas.extensions.madness.sim.TestFields`: its multiband
exposure as ``deepCoadd_calexp_multiband`` and its parents as ``deepCoadd_mergeDet``, in the run
collection ``madness/inputs``. The repository is made with the package's storage classes and
formatters in its seed config (:func:`~.butlerConfig.makeSeedConfig`), so the processes that
read it need no ``DAF_BUTLER_CONFIG_PATH``; the skymap, tract and patch dimension records are
inserted by hand (a one-tract skymap, patches on a square grid, no sky regions), which is all
patch-level datasets need.
"""

from __future__ import annotations

__all__ = ["INPUT_RUN", "SKYMAP_NAME", "SimulatedPatch", "makeSimulatedRepo", "registerPatches"]

import hashlib
import math
import os
from dataclasses import dataclass
from pathlib import Path

from .butlerConfig import (
    COADD_DATASET_TYPE,
    INSTALL_HINT,
    MULTIBAND_EXPOSURE_STORAGE_CLASS,
    PARENTS_DATASET_TYPE,
    PATCH_DIMENSIONS,
    SOURCE_CATALOG_STORAGE_CLASS,
    makeSeedConfig,
)

try:
    from lsst.daf.butler import Butler, DatasetType
except ImportError as error:
    raise ImportError(f"lsst.meas.extensions.madness.pipeline.simRepo: {INSTALL_HINT}") from error

from ..sim.datasets import TestFields
from ..sim.inputs import PeakSource, fieldInputs
from ..sim.parallel import makeScenes

#: Run collection of the simulated inputs.
INPUT_RUN = "madness/inputs"
#: Name of the skymap dimension record of the simulated patches.
SKYMAP_NAME = "madness-sim"


@dataclass(frozen=True)
class SimulatedPatch:
    """What was put in the repository for one patch.

    Parameters
    ----------
    dataId : `dict` [`str`, `int` or `str`]
        ``skymap``, ``tract`` and ``patch`` of the patch's datasets.
    sceneIndex : `int`
        Index of the field in the `TestFields` data set.
    nGalaxies : `int`
        Galaxies drawn in the field.
    nParents : `int`
        Parents of the field's ``deepCoadd_mergeDet``.
    nPeaks : `int`
        Peaks of those parents.
    """

    dataId: dict
    sceneIndex: int
    nGalaxies: int
    nParents: int
    nPeaks: int


def makeSimulatedRepo(
    root: str | os.PathLike,
    dataset: TestFields,
    nPatches: int,
    *,
    start: int = 0,
    peaks: PeakSource = "truth",
    workers: int | None = None,
    run: str = INPUT_RUN,
    tract: int = 0,
) -> list[SimulatedPatch]:
    """Make a butler repository at ``root`` holding ``nPatches`` simulated patches.

    Parameters
    ----------
    root : `str` or `os.PathLike`
        Folder of the new repository; it must not hold one already.
    dataset : `~lsst.meas.extensions.madness.sim.TestFields`
        The fields; patch ``k`` is field ``start + k``.
    nPatches : `int`
        Number of patches, at least 1.
    start : `int`, optional
        Index of the first field.
    peaks : `str`, optional
        Parent peaks at the true centres (``"truth"``) or from the peak
        finder (``"detected"``).
    workers : `int` or `None`, optional
        Processes drawing the fields (`None`: all cores).
    run : `str`, optional
        Run collection of the datasets.
    tract : `int`, optional
        Tract of the patches.

    Returns
    -------
    patches : `list` [`SimulatedPatch`]
        One per patch, in order.

    Raises
    ------
    ValueError
        Raised if ``nPatches`` is below 1 or ``root`` already holds a
        repository.
    """
    if nPatches < 1:
        raise ValueError(f"--patches must be at least 1, got {nPatches}")
    root = Path(root)
    if (root / "butler.yaml").exists():
        raise ValueError(f"{root} already holds a butler repository; give a new folder")
    Butler.makeRepo(str(root), config=makeSeedConfig())
    butler = Butler.from_config(str(root), writeable=True, run=run)
    try:
        dataIds = registerPatches(butler, nPatches, tract)
        for name, storageClass in ((COADD_DATASET_TYPE, MULTIBAND_EXPOSURE_STORAGE_CLASS),
                                   (PARENTS_DATASET_TYPE, SOURCE_CATALOG_STORAGE_CLASS)):
            butler.registry.registerDatasetType(
                DatasetType(name, PATCH_DIMENSIONS, storageClass, universe=butler.dimensions))
        patches = []
        indices = range(start, start + nPatches)
        for dataId, index, scene in zip(dataIds, indices, makeScenes(dataset, indices, workers)):
            mExposure, catalog = fieldInputs(scene, dataset, peaks)
            butler.put(mExposure, COADD_DATASET_TYPE, dataId)
            butler.put(catalog, PARENTS_DATASET_TYPE, dataId)
            nPeaks = sum(len(record.getFootprint().getPeaks()) for record in catalog)
            patches.append(SimulatedPatch(dataId, index, len(scene), len(catalog), nPeaks))
    finally:
        butler.close()
    return patches


def registerPatches(butler: Butler, nPatches: int, tract: int = 0) -> list[dict]:
    """Insert the dimension records of a one-tract skymap of ``nPatches`` patches.

    Parameters
    ----------
    butler : `lsst.daf.butler.Butler`
        A writeable butler of a repository without skymap ``SKYMAP_NAME``.
    nPatches : `int`
        Number of patches, numbered from 0 on a square grid.
    tract : `int`, optional
        Tract of the patches.

    Returns
    -------
    dataIds : `list` [`dict`]
        The patches' data IDs (``skymap``, ``tract``, ``patch``), in order.
    """
    # Patches on a square grid, numbered row by row as LSST's skymaps number them.
    nx = math.ceil(math.sqrt(nPatches))
    ny = math.ceil(nPatches / nx)
    skymapHash = hashlib.sha1(f"{SKYMAP_NAME} {nx}x{ny} tract {tract}".encode()).digest()
    registry = butler.registry
    registry.insertDimensionData("skymap", {"name": SKYMAP_NAME, "hash": skymapHash, "tract_max": tract + 1,
                                            "patch_nx_max": nx, "patch_ny_max": ny})
    registry.insertDimensionData("tract", {"skymap": SKYMAP_NAME, "id": tract})
    registry.insertDimensionData("patch", *[{"skymap": SKYMAP_NAME, "tract": tract, "id": k,
                                             "cell_x": k % nx, "cell_y": k // nx} for k in range(nPatches)])
    return [{"skymap": SKYMAP_NAME, "tract": tract, "patch": k} for k in range(nPatches)]
