"""Butler configuration of the package's data types, and the dataset types of the deblend step.

The storage classes and formatters are package data in ``pipeline/butler/``:
``storageClasses.yaml`` (top-level ``storageClasses:``) and ``datastore.yaml`` (top-level
``datastore: formatters:``). `makeSeedConfig` merges both into the seed config of a new
repository (``Butler.makeRepo(root, config=makeSeedConfig())``), which stores them in the
repository's ``butler.yaml``: every later process reads them from there, with no environment
variable. For an existing repository, ``DAF_BUTLER_CONFIG_PATH=<butlerConfigDirectory()>`` adds
them to every process that sets it.

Dataset types keep the LSST pipelines' names (``deepCoadd_mergeDet`` in,
``deepCoadd_deblendedCatalog`` out) so that the step reads as the coadd deblend step of the
pipelines; the model data, LSST's ``deepCoadd_scarletModelData``, is ``deepCoadd_madnessModelData``
(the package's own format); the coadd, which LSST stores per band as ``deepCoadd_calexp``, is one multiband
dataset here, ``deepCoadd_calexp_multiband``. The storage classes are the package's own
(``Madness*``), not afw's: in a repository that already holds LSST's ``deepCoadd_mergeDet``
(storage class ``SourceCatalog``), rename the connections (``config.connections.mergeDet``...).
"""

from __future__ import annotations

__all__ = [
    "COADD_DATASET_TYPE",
    "DEBLENDED_DATASET_TYPE",
    "INSTALL_HINT",
    "MODEL_DATA_DATASET_TYPE",
    "MODEL_DATA_STORAGE_CLASS",
    "MULTIBAND_EXPOSURE_STORAGE_CLASS",
    "PARENTS_DATASET_TYPE",
    "PATCH_DIMENSIONS",
    "SOURCE_CATALOG_STORAGE_CLASS",
    "butlerConfigDirectory",
    "makeSeedConfig",
]

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import lsst.daf.butler

#: How to get the middleware, for the ImportErrors of the modules that need it.
INSTALL_HINT = (
    "the Rubin middleware (lsst.pipe.base, lsst.daf.butler) is not installed: "
    "pip install 'lsst-meas-extensions-madness[lsst]' (or, in a checkout, pip install -e '.[lsst]')"
)

#: Storage class of `~lsst.meas.extensions.madness.afw.MultibandExposure`.
MULTIBAND_EXPOSURE_STORAGE_CLASS = "MadnessMultibandExposure"
#: Storage class of `~lsst.meas.extensions.madness.afw.table.SourceCatalog`.
SOURCE_CATALOG_STORAGE_CLASS = "MadnessSourceCatalog"
#: Storage class of `~lsst.meas.extensions.madness.deblend.blendModel.ModelData`.
MODEL_DATA_STORAGE_CLASS = "MadnessModelData"

#: The multiband coadd of a patch (input).
COADD_DATASET_TYPE = "deepCoadd_calexp_multiband"
#: The merged detections of a patch: parents with footprints and peaks (input).
PARENTS_DATASET_TYPE = "deepCoadd_mergeDet"
#: The deblended catalogue of a patch: the parents, then their children (output).
DEBLENDED_DATASET_TYPE = "deepCoadd_deblendedCatalog"
#: The deblender's models of a patch: every child's full model (output; LSST's analogue is
#: ``deepCoadd_scarletModelData``).
MODEL_DATA_DATASET_TYPE = "deepCoadd_madnessModelData"
#: Dimensions of the four, as LSST's coadd datasets (less ``band``).
PATCH_DIMENSIONS = ("skymap", "tract", "patch")


def butlerConfigDirectory() -> Path:
    """The folder of the package's butler configuration files.

    Returns
    -------
    directory : `pathlib.Path`
        ``pipeline/butler/`` of the installed package, holding
        ``storageClasses.yaml`` and ``datastore.yaml``; a valid
        ``DAF_BUTLER_CONFIG_PATH``.

    Examples
    --------
    >>> sorted(path.name for path in butlerConfigDirectory().glob("*.yaml"))
    ['datastore.yaml', 'storageClasses.yaml']
    """
    return Path(__file__).resolve().parent / "butler"


def makeSeedConfig() -> lsst.daf.butler.Config:
    """The seed config of a repository that stores the package's data types.

    Returns
    -------
    config : `lsst.daf.butler.Config`
        The ``storageClasses`` of ``storageClasses.yaml`` and the
        ``datastore.formatters`` of ``datastore.yaml``.

    Raises
    ------
    ImportError
        Raised if ``lsst.daf.butler`` is not installed.
    """
    try:
        from lsst.daf.butler import Config
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    import yaml

    seed: dict = {}
    for name in ("storageClasses.yaml", "datastore.yaml"):
        # The two files have different top-level keys, so a flat merge loses nothing.
        seed.update(yaml.safe_load((butlerConfigDirectory() / name).read_text()))
    return Config(seed)
