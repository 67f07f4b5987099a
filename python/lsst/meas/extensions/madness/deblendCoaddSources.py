"""The coadd deblend step, mirroring ``lsst.pipe.tasks.deblendCoaddSourcesPipeline.DeblendCoaddSourcesMultiTask``.

Per-band coadds and the merged detection catalogue (``deepCoadd_mergeDet``: parents with
footprints and peaks) go in; the deblended catalogue and the model data come out. The deblender
is the ``multibandDeblend`` subtask, SCARLET by default as in the LSST pipelines; the override
file ``config/deblendCoaddSourcesMulti.py`` retargets it to MADNESS:

.. code-block:: python

    from lsst.meas.extensions.madness.deblend import MadnessDeblendTask
    config.multibandDeblend.retarget(MadnessDeblendTask)

Examples
--------
>>> from lsst.meas.extensions.madness.afw.table import SourceTable
>>> config = DeblendCoaddSourcesMultiConfig()
>>> config.load(str(overridePath()))
>>> task = DeblendCoaddSourcesMultiTask(schema=SourceTable.makeMinimalSchema(), config=config)
>>> type(task.multibandDeblend).__name__
'MadnessDeblendTask'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .afw.exposure import Exposure, MultibandExposure
from .afw.table import Schema, SourceCatalog
from .deblend.scarletTask import ScarletDeblendTask
from .framework import Config, ConfigurableField, Struct, Task, timeMethod

if TYPE_CHECKING:
    from .deblend.blendModel import ModelData

__all__ = [
    "DeblendCoaddSourcesMultiConfig",
    "DeblendCoaddSourcesMultiTask",
    "makeMultibandDeblend",
    "overridePath",
    "runMultibandDeblend",
]


def overridePath() -> Path:
    """The override file that retargets ``multibandDeblend`` to MADNESS (``config/`` of this package)."""
    for root in (Path(__file__).resolve().parents[5], Path(__file__).resolve().parent):
        candidate = root / "config" / "deblendCoaddSourcesMulti.py"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError("config/deblendCoaddSourcesMulti.py is not in this installation")


def makeMultibandDeblend(task: Any, schema: Schema, peakSchema: Schema | None = None) -> Schema:
    """Make ``task.multibandDeblend``, the deblender, for parents of ``schema``.

    Shared by `DeblendCoaddSourcesMultiTask` and the ``PipelineTask`` of
    :mod:`lsst.meas.extensions.madness.pipeline`, so both build the same deblender.

    Parameters
    ----------
    task : `Task` or ``lsst.pipe.base.Task``
        The deblend step, whose config has the ``multibandDeblend`` field.
    schema : `Schema`
        Schema of the merged detection catalogue; left as it is.
    peakSchema : `Schema` or `None`, optional
        Schema of the footprints' peaks.

    Returns
    -------
    outputSchema : `Schema`
        A copy of ``schema`` with the deblender's columns added: the schema
        of the deblended catalogue.
    """
    outputSchema = schema.copy()
    task.makeSubtask("multibandDeblend", schema=outputSchema, peakSchema=peakSchema)
    return outputSchema


def runMultibandDeblend(task: Any, mExposure: MultibandExposure,
                        mergedDetections: SourceCatalog) -> tuple[SourceCatalog, ModelData]:
    """Deblend the merged detections of a patch with ``task.multibandDeblend``.

    Parameters
    ----------
    task : `Task` or ``lsst.pipe.base.Task``
        The deblend step, after `makeMultibandDeblend`.
    mExposure : `MultibandExposure`
        The multiband coadd of the patch.
    mergedDetections : `SourceCatalog`
        The parents, with footprints and peaks, in the schema given to
        `makeMultibandDeblend`.

    Returns
    -------
    deblendedCatalog : `SourceCatalog`
        The parents, flagged, then their children.
    modelData : `~lsst.meas.extensions.madness.deblend.blendModel.ModelData`
        The deblender's models.
    """
    result = task.multibandDeblend.run(mExposure, mergedDetections)
    return result.deblendedCatalog, result.modelData


class DeblendCoaddSourcesMultiConfig(Config):
    """Configuration of :class:`DeblendCoaddSourcesMultiTask`."""

    multibandDeblend: ConfigurableField = ConfigurableField(
        doc="Task to deblend the merged detections on the multiband coadd.", target=ScarletDeblendTask)


class DeblendCoaddSourcesMultiTask(Task):
    """Deblend the merged detections of a patch on its multiband coadd.

    Parameters
    ----------
    schema
        Schema of the merged detection catalogue (``initInputs["inputSchema"].schema`` in the
        LSST pipeline); the deblender's columns are added to a copy, :attr:`schema`.
    peakSchema
        Schema of the footprints' peaks.
    initInputs
        As the LSST PipelineTask: ``{"inputSchema": catalogue}``, used when ``schema`` is None.
    """

    ConfigClass = DeblendCoaddSourcesMultiConfig
    _DefaultName = "deblendCoaddSourcesMulti"

    def __init__(self, *, schema: Schema | None = None, peakSchema: Schema | None = None,
                 initInputs: Mapping | None = None, **kwargs):
        super().__init__(**kwargs)
        if schema is None:
            if initInputs is None or "inputSchema" not in initInputs:
                raise ValueError("DeblendCoaddSourcesMultiTask needs schema= or initInputs={'inputSchema': catalog}")
            schema = initInputs["inputSchema"].schema
        self.peakSchema = peakSchema
        self.schema = makeMultibandDeblend(self, schema, peakSchema)

    def runExposures(self, coadds: Sequence[Exposure], bands: Sequence[str], mergedDetections: SourceCatalog) -> Struct:
        """Deblend from per-band coadds (``deepCoadd_calexp``), combined as the LSST pipeline does."""
        if len(coadds) != len(bands):
            raise ValueError(f"{len(coadds)} coadds for {len(bands)} bands {list(bands)}")
        return self.run(MultibandExposure.fromExposures(bands, coadds), mergedDetections)

    @timeMethod
    def run(self, mExposure: MultibandExposure, mergedDetections: SourceCatalog) -> Struct:
        """``Struct(deblendedCatalog, modelData)`` of the ``multibandDeblend`` subtask."""
        deblendedCatalog, modelData = runMultibandDeblend(self, mExposure, mergedDetections)
        return Struct(deblendedCatalog=deblendedCatalog, modelData=modelData)
