"""Butler connections of `~lsst.meas.extensions.madness.pipeline.pipelineTask.MadnessDeblendPipelineTask`."""

from __future__ import annotations

__all__ = ["MadnessDeblendConnections"]

from .butlerConfig import (
    INSTALL_HINT,
    MODEL_DATA_STORAGE_CLASS,
    MULTIBAND_EXPOSURE_STORAGE_CLASS,
    PATCH_DIMENSIONS,
    SOURCE_CATALOG_STORAGE_CLASS,
)

try:
    from lsst.pipe.base import PipelineTaskConnections
    from lsst.pipe.base import connectionTypes as cT
except ImportError as error:
    raise ImportError(f"lsst.meas.extensions.madness.pipeline.connections: {INSTALL_HINT}") from error


class MadnessDeblendConnections(
    PipelineTaskConnections,
    dimensions=PATCH_DIMENSIONS,
    defaultTemplates={"inputCoaddName": "deep", "outputCoaddName": "deep"},
):
    """One quantum per patch: the multiband coadd and the merged detections in, the deblended
    catalogue and the model data out.

    The names follow LSST's deblend step (``{inputCoaddName}Coadd_mergeDet`` in,
    ``{outputCoaddName}Coadd_deblendedCatalog`` out, and ``{outputCoaddName}Coadd_madnessModelData``
    where LSST writes ``deepCoadd_scarletModelData``; see
    :mod:`~lsst.meas.extensions.madness.pipeline.butlerConfig`), the storage classes are the
    package's.

    Parameters
    ----------
    config : `lsst.pipe.base.PipelineTaskConfig`
        The task's config, which may rename the datasets
        (``config.connections.mergeDet = "..."``) or change the templates.
    """

    mExposure = cT.Input(
        doc="Multiband coadd of the patch, all bands in one dataset.",
        name="{inputCoaddName}Coadd_calexp_multiband",
        storageClass=MULTIBAND_EXPOSURE_STORAGE_CLASS,
        dimensions=PATCH_DIMENSIONS,
    )
    mergeDet = cT.Input(
        doc="Merged detections of the patch: the parents, with footprints and peaks.",
        name="{inputCoaddName}Coadd_mergeDet",
        storageClass=SOURCE_CATALOG_STORAGE_CLASS,
        dimensions=PATCH_DIMENSIONS,
    )
    deblendedCatalog = cT.Output(
        doc="The parents, flagged, then their children, with heavy footprints.",
        name="{outputCoaddName}Coadd_deblendedCatalog",
        storageClass=SOURCE_CATALOG_STORAGE_CLASS,
        dimensions=PATCH_DIMENSIONS,
    )
    modelData = cT.Output(
        doc="The deblender's models of every deblended parent: each child's full model stamp, in the "
            "coadd's pixel units, and the latents of MADNESS children.",
        name="{outputCoaddName}Coadd_madnessModelData",
        storageClass=MODEL_DATA_STORAGE_CLASS,
        dimensions=PATCH_DIMENSIONS,
    )
