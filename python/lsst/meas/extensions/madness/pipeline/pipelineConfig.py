"""Configuration of `~lsst.meas.extensions.madness.pipeline.pipelineTask.MadnessDeblendPipelineTask`."""

from __future__ import annotations

__all__ = ["MadnessDeblendPipelineConfig"]

from .butlerConfig import INSTALL_HINT

try:
    import lsst.pex.config as pexConfig
    from lsst.pipe.base import PipelineTaskConfig
except ImportError as error:
    raise ImportError(f"lsst.meas.extensions.madness.pipeline.pipelineConfig: {INSTALL_HINT}") from error

from ..deblend import MadnessDeblendTask
from .connections import MadnessDeblendConnections


class MadnessDeblendPipelineConfig(PipelineTaskConfig, pipelineConnections=MadnessDeblendConnections):
    """A real ``lsst.pex.config`` config: the deblender is the ``multibandDeblend`` subtask, MADNESS.

    The subtask's fields are those of
    `~lsst.meas.extensions.madness.deblend.MadnessDeblendConfig` (same names, defaults and docs,
    mirrored by :func:`~lsst.meas.extensions.madness.framework.to_pex_config`), so an override
    reads as in the standalone step::

        config.multibandDeblend.device = "cpu"
        config.multibandDeblend.maxIter = 100

    Another of the package's deblenders is a retarget away:
    ``config.multibandDeblend.retarget(ScarletDeblendTask.makePexTarget())``.
    """

    multibandDeblend = pexConfig.ConfigurableField(
        doc="Task to deblend the merged detections on the multiband coadd.",
        target=MadnessDeblendTask.makePexTarget(),
    )
