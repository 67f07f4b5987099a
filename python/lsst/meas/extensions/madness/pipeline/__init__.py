"""The deblend step as a ``PipelineTask`` under the real Rubin middleware (``lsst.pipe.base``,
``lsst.daf.butler``).

Only `butlerConfigDirectory`, the dataset type names and the install hint are imported here, so
that this package imports without the middleware; the modules that need it are imported by their
full names, and raise an `ImportError` naming ``pip install 'lsst-meas-extensions-madness[lsst]'``
when it is missing:

- :mod:`.formatters`: butler formatters of the package's `MultibandExposure`, `SourceCatalog` and
  `~lsst.meas.extensions.madness.deblend.blendModel.ModelData`;
- :mod:`.connections`, :mod:`.pipelineConfig`, :mod:`.pipelineTask`: ``MadnessDeblendPipelineTask``;
- :mod:`.simRepo`: a butler repository of simulated patches (``madness-sim butler``).
"""

from .butlerConfig import *  # noqa: F403
from .butlerConfig import __all__  # noqa: F401
