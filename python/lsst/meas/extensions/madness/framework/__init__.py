"""Task and configuration framework mirroring ``lsst.pipe.base`` and ``lsst.pex.config``.

Tasks (`Task`, `Struct`, `TaskMetadata`) follow the LSST Science Pipelines
API; configurations (`Config`, `Field`, `ConfigurableField`) are pydantic
models with pex_config behaviour, and `to_pex_config` mirrors them as
``lsst.pex.config`` classes for use in an LSST pipeline. Logging
(`getLogger`, `LsstLogAdapter`, `TRACE`, `VERBOSE`) and timing
(`timeMethod`, `logInfo`) are lsst-utils' own (``lsst.utils.logging``,
``lsst.utils.timer``), re-exported here; `consoleLogging` and `LOG_LEVELS`
are the package's console set-up for its commands.
"""

from lsst.utils.logging import TRACE, VERBOSE, LsstLogAdapter, getLogger
from lsst.utils.timer import logInfo, timeMethod

from .config import (
    DATA_CONFIG_SUFFIXES,
    Config,
    ConfigLoadError,
    ConfigurableField,
    ConfigurableInstance,
    Field,
    FieldValidationError,
    UnknownFieldError,
)
from .logging import LOG_LEVELS, consoleLogging
from .metadata import TaskMetadata
from .pexConfigBridge import to_pex_config, to_pex_target
from .struct import Struct, StructItemError
from .task import Task, TaskError

__all__ = [
    "DATA_CONFIG_SUFFIXES",
    "LOG_LEVELS",
    "TRACE",
    "VERBOSE",
    "Config",
    "ConfigLoadError",
    "ConfigurableField",
    "ConfigurableInstance",
    "Field",
    "FieldValidationError",
    "LsstLogAdapter",
    "Struct",
    "StructItemError",
    "Task",
    "TaskError",
    "TaskMetadata",
    "UnknownFieldError",
    "consoleLogging",
    "getLogger",
    "logInfo",
    "timeMethod",
    "to_pex_config",
    "to_pex_target",
]
