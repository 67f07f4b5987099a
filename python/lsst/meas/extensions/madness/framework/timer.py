"""Timing and resource-usage records in task metadata.

Mirrors ``lsst.utils.timer``: `timeMethod` decorates a task method and
`logInfo` records one snapshot (``<prefix>CpuTime``, ``<prefix>Utc``, ...).
"""

from __future__ import annotations

__all__ = ["logInfo", "logPairs", "timeMethod"]

import datetime
import functools
import logging
import os
import platform
import sys
import time
from collections.abc import Callable, Collection, MutableMapping
from typing import Any, TypeVar, overload

try:
    import resource
except ImportError:  # Windows has no resource module.
    resource = None  # type: ignore[assignment]

# ru_maxrss is in kilobytes on Linux and bytes on macOS; metadata is bytes.
_RUSAGE_MEMORY_MULTIPLIER = 1 if sys.platform == "darwin" else 1024


def _addToMetadata(metadata: MutableMapping, name: str, value: Any) -> None:
    if hasattr(metadata, "add"):
        metadata.add(name, value)
        return
    # Plain dicts get one list per key, growing with each call.
    metadata.setdefault(name, []).append(value)


def _usage() -> list[tuple[str, Any]]:
    usage: list[tuple[str, Any]] = [("CpuTime", time.process_time())]
    if resource is not None:
        res = resource.getrusage(resource.RUSAGE_SELF)
        usage += [
            ("UserTime", res.ru_utime),
            ("SystemTime", res.ru_stime),
            ("MaxResidentSetSize", int(res.ru_maxrss * _RUSAGE_MEMORY_MULTIPLIER)),
            ("MinorPageFaults", res.ru_minflt),
            ("MajorPageFaults", res.ru_majflt),
            ("BlockInputs", res.ru_inblock),
            ("BlockOutputs", res.ru_oublock),
            ("VoluntaryContextSwitches", res.ru_nvcsw),
            ("InvoluntaryContextSwitches", res.ru_nivcsw),
        ]
    return usage


def logPairs(
    obj: Any,
    pairs: Collection[tuple[str, Any]],
    logLevel: int = logging.DEBUG,
    metadata: MutableMapping | None = None,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> None:
    """Record ``(name, value)`` pairs in ``obj.metadata`` and log them.

    Parameters
    ----------
    obj : `object` or `None`
        Object with a ``metadata`` and/or a ``log`` attribute.
    pairs : `~collections.abc.Collection` [`tuple` [`str`, `~typing.Any`]]
        Names and values; each value is appended to the metadata item.
    logLevel : `int`, optional
        Level of the log message.
    metadata : `~collections.abc.MutableMapping`, optional
        Metadata to use instead of ``obj.metadata``.
    logger : `logging.Logger` or `logging.LoggerAdapter`, optional
        Logger to use instead of ``obj.log``; the message goes to its
        ``timer.``-prefixed sibling so timing output can be silenced
        separately.
    """
    if obj is not None:
        if metadata is None:
            metadata = getattr(obj, "metadata", None)
        if logger is None:
            logger = getattr(obj, "log", None)
    for name, value in pairs:
        if metadata is not None:
            _addToMetadata(metadata, name, value)
    if logger is not None:
        timerLogger = logging.getLogger("timer." + logger.name)
        if timerLogger.isEnabledFor(logLevel):
            timerLogger.log(logLevel, "; ".join(f"{name}={value}" for name, value in pairs))


def logInfo(
    obj: Any,
    prefix: str,
    logLevel: int = logging.DEBUG,
    metadata: MutableMapping | None = None,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
) -> None:
    """Record a timing and resource-usage snapshot.

    Parameters
    ----------
    obj : `object` or `None`
        Object with a ``metadata`` and/or a ``log`` attribute (a task).
    prefix : `str`
        Prefix of the item names, e.g. ``"runStart"``.
    logLevel : `int`, optional
        Level of the log message.
    metadata : `~collections.abc.MutableMapping`, optional
        Metadata to use instead of ``obj.metadata``.
    logger : `logging.Logger` or `logging.LoggerAdapter`, optional
        Logger to use instead of ``obj.log``.

    Notes
    -----
    Items (each appended, so repeated calls accumulate):

    - ``<prefix>Utc``: ISO-8601 UTC time (metadata only);
    - ``<prefix>CpuTime``: process CPU time in seconds (only differences
      are meaningful);
    - where `resource` exists: ``<prefix>UserTime``,
      ``<prefix>SystemTime`` (seconds), ``<prefix>MaxResidentSetSize``
      (bytes) and the page-fault, block-I/O and context-switch counters.

    As in ``lsst.utils`` the metadata also gets ``__version__ = 1`` (max
    RSS in bytes) and ``nodeName``.
    """
    if metadata is None and obj is not None:
        metadata = getattr(obj, "metadata", None)
    if metadata is not None:
        now = datetime.datetime.now(datetime.timezone.utc)
        _addToMetadata(metadata, prefix + "Utc", now.isoformat())
        metadata["__version__"] = 1
        metadata["nodeName"] = platform.node()
    logPairs(
        obj=obj,
        pairs=[(prefix + name, value) for name, value in _usage()],
        logLevel=logLevel,
        metadata=metadata,
        logger=logger,
    )


_F = TypeVar("_F", bound=Callable[..., Any])


@overload
def timeMethod(_func: _F) -> _F: ...


@overload
def timeMethod(
    *,
    metadata: MutableMapping | None = None,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
    logLevel: int = logging.DEBUG,
) -> Callable[[_F], _F]: ...


def timeMethod(
    _func: Callable[..., Any] | None = None,
    *,
    metadata: MutableMapping | None = None,
    logger: logging.Logger | logging.LoggerAdapter | None = None,
    logLevel: int = logging.DEBUG,
) -> Callable[..., Any]:
    """Decorate a method to record its start and end in ``self.metadata``.

    Parameters
    ----------
    _func : `~collections.abc.Callable`, optional
        The method, when used as a bare decorator.
    metadata : `~collections.abc.MutableMapping`, optional
        Metadata to use when the instance has no ``metadata`` attribute.
    logger : `logging.Logger` or `logging.LoggerAdapter`, optional
        Logger to use when the instance has no ``log`` attribute.
    logLevel : `int`, optional
        Level of the timing log messages.

    Returns
    -------
    decorated : `~collections.abc.Callable`
        The wrapped method, or a decorator when called with keywords only.

    Notes
    -----
    For a method ``run`` it appends ``runStartUtc``, ``runStartCpuTime``,
    ``runStartUserTime``, ``runStartSystemTime``,
    ``runStartMaxResidentSetSize``... before the call and the matching
    ``runEnd*`` items after it, also when the method raises. Setting the
    environment variable ``LSST_UTILS_DISABLE_TIMER`` (at import of the
    decorated code) disables it, as in ``lsst.utils``.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.framework import TaskMetadata
    >>> class Worker:
    ...     def __init__(self):
    ...         self.metadata = TaskMetadata()
    ...     @timeMethod
    ...     def run(self, x):
    ...         return 2 * x
    >>> worker = Worker()
    >>> worker.run(3)
    6
    >>> worker.metadata["runStartCpuTime"] <= worker.metadata["runEndCpuTime"]
    True
    """

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def timeMethod_wrapper(self: Any, *args: Any, **keyArgs: Any) -> Any:
            logInfo(self, func.__name__ + "Start", logLevel=logLevel, metadata=metadata, logger=logger)
            try:
                return func(self, *args, **keyArgs)
            finally:
                logInfo(self, func.__name__ + "End", logLevel=logLevel, metadata=metadata, logger=logger)

        return timeMethod_wrapper

    if "LSST_UTILS_DISABLE_TIMER" in os.environ:
        return _func if _func is not None else (lambda func: func)
    return decorator if _func is None else decorator(_func)
