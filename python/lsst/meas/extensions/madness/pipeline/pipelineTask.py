"""The MADNESS deblend step as an ``lsst.pipe.base.PipelineTask``.

It runs the same deblender as the standalone step
`~lsst.meas.extensions.madness.deblendCoaddSources.DeblendCoaddSourcesMultiTask`, through the
same functions (:func:`~lsst.meas.extensions.madness.deblendCoaddSources.makeMultibandDeblend`,
:func:`~lsst.meas.extensions.madness.deblendCoaddSources.runMultibandDeblend`), so a pipeline
and ``madness-run-task`` give the same catalogue for the same inputs and config. Run it with
``pipetask run -p pipelines/MadnessDeblend.yaml`` (see ``doc/pipeline.md``).
"""

from __future__ import annotations

__all__ = ["MadnessDeblendPipelineTask"]

from collections.abc import Mapping
from typing import Any

from .butlerConfig import INSTALL_HINT

try:
    import lsst.pipe.base as pipeBase
    from lsst.utils.timer import timeMethod
except ImportError as error:
    raise ImportError(f"lsst.meas.extensions.madness.pipeline.pipelineTask: {INSTALL_HINT}") from error

from ..afw.exposure import MultibandExposure
from ..afw.table import Schema, SourceCatalog
from ..deblendCoaddSources import makeMultibandDeblend, runMultibandDeblend
from .pipelineConfig import MadnessDeblendPipelineConfig


class MadnessDeblendPipelineTask(pipeBase.PipelineTask):
    """Deblend the merged detections of a patch on its multiband coadd, under a butler.

    Parameters
    ----------
    schema : `Schema` or `None`, optional
        Schema of the merged detection catalogues; when given the deblender
        (and its models) is made now, otherwise by the first `run`, from
        the schema of the catalogue it gets.
    peakSchema : `Schema` or `None`, optional
        Schema of the footprints' peaks.
    initInputs : `~collections.abc.Mapping` or `None`, optional
        Init-input datasets from the butler; this task declares none, so it
        is ignored (LSST's step reads its schema from the
        ``deepCoadd_mergeDet_schema`` init-input, which the package's inputs
        do not have yet).
    **kwargs : `~typing.Any`
        Arguments of `lsst.pipe.base.PipelineTask` (``config``, ``log``,
        ``name``...).

    Notes
    -----
    The deblender is the package's
    `~lsst.meas.extensions.madness.deblend.MadnessDeblendTask` built from
    the pex_config subtask config; it keeps its metadata in
    ``lsst.pipe.base.TaskMetadata`` like its parent, so ``pipetask`` writes
    the hierarchy's metadata as for any LSST task.
    """

    ConfigClass = MadnessDeblendPipelineConfig
    _DefaultName = "madnessDeblend"

    def __init__(self, *, schema: Schema | None = None, peakSchema: Schema | None = None,
                 initInputs: Mapping[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(initInputs=initInputs, **kwargs)
        self.peakSchema = peakSchema
        self.inputSchema: Schema | None = None
        self.schema: Schema | None = None
        if schema is not None:
            self._makeDeblender(schema)

    def _makeDeblender(self, schema: Schema) -> None:
        """Make the deblender for merged detections of ``schema``.

        Parameters
        ----------
        schema : `Schema`
            Schema of the merged detection catalogue.
        """
        self.schema = makeMultibandDeblend(self, schema, self.peakSchema)
        self.inputSchema = schema.copy()

    @timeMethod
    def run(self, mExposure: MultibandExposure, mergeDet: SourceCatalog) -> pipeBase.Struct:
        """Deblend one patch.

        Parameters
        ----------
        mExposure : `MultibandExposure`
            The multiband coadd of the patch.
        mergeDet : `SourceCatalog`
            The merged detections: parents with footprints and peaks.

        Returns
        -------
        result : `lsst.pipe.base.Struct`
            ``deblendedCatalog``: the parents, flagged, then their children
            (``parent`` = the parent's id), with heavy footprints;
            ``modelData``: the deblender's models
            (`~lsst.meas.extensions.madness.deblend.blendModel.ModelData`),
            written as ``deepCoadd_madnessModelData``.
        """
        # Without an init-input schema the deblender's columns can be added only once the catalogue is
        # read; a task that runs several catalogues (a test, a notebook) makes it again only when the
        # schema changes. (pipetask makes a new task per quantum, so there the models load per patch.)
        if self.inputSchema is None or mergeDet.schema != self.inputSchema:
            if self.inputSchema is not None:
                self.log.info("the merged detections have a new schema: making the deblender again")
            self._makeDeblender(mergeDet.schema)
        deblendedCatalog, modelData = runMultibandDeblend(self, mExposure, mergeDet)
        return pipeBase.Struct(deblendedCatalog=deblendedCatalog, modelData=modelData)
