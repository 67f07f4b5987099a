"""Task and configuration framework mirroring ``lsst.pipe.base`` and ``lsst.pex.config``.

Tasks (`Task`, `Struct`, `TaskMetadata`, `timeMethod`) follow the LSST
Science Pipelines API; configurations (`Config`, `Field`,
`ConfigurableField`) are pydantic models with pex_config behaviour, and
`to_pex_config` mirrors them as ``lsst.pex.config`` classes for use in an
LSST pipeline.
"""

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
from .logging import LOG_LEVELS, TRACE, VERBOSE, LsstLogAdapter, consoleLogging, getLogger
from .metadata import TaskMetadata
from .pexConfigBridge import to_pex_config, to_pex_target
from .struct import Struct, StructItemError
from .task import Task, TaskError
from .timer import logInfo, logPairs, timeMethod

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
    "logPairs",
    "timeMethod",
    "to_pex_config",
    "to_pex_target",
]
