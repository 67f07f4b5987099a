"""Task loggers with the LSST ``TRACE`` and ``VERBOSE`` levels.

Mirrors ``lsst.utils.logging``: a `logging.LoggerAdapter` around a standard
`logging.Logger`, so handlers, levels and ``caplog`` work as usual.
"""

from __future__ import annotations

__all__ = ["TRACE", "VERBOSE", "LsstLogAdapter", "getLogger"]

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

TRACE = 5
"""Level below `logging.DEBUG` for very chatty per-iteration output."""
logging.addLevelName(TRACE, "TRACE")

VERBOSE = (logging.INFO + logging.DEBUG) // 2
"""Level between `logging.DEBUG` and `logging.INFO` (15)."""
logging.addLevelName(VERBOSE, "VERBOSE")


def _baseStacklevel(default: int, offset: int) -> int:
    # Python < 3.11 does not skip logging's own frames when applying
    # stacklevel, so one more frame has to be skipped there.
    return default if sys.version_info >= (3, 11) else default + offset


class LsstLogAdapter(logging.LoggerAdapter):
    """Logger adapter providing ``trace`` and ``verbose`` methods.

    Parameters
    ----------
    logger : `logging.Logger`
        The logger to wrap.
    extra : `dict`, optional
        Contextual information, as for `logging.LoggerAdapter`.

    Notes
    -----
    The level constants are attached to the class (``log.TRACE``,
    ``log.VERBOSE``, ``log.DEBUG``...) so task code can use them without
    importing this module.

    Examples
    --------
    >>> log = getLogger("lsst.example")
    >>> log.name
    'lsst.example'
    >>> log.getChild("deblend").name
    'lsst.example.deblend'
    >>> log.isEnabledFor(log.TRACE) == log.logger.isEnabledFor(5)
    True
    """

    CRITICAL = logging.CRITICAL
    ERROR = logging.ERROR
    WARNING = logging.WARNING
    INFO = logging.INFO
    DEBUG = logging.DEBUG
    FATAL = logging.FATAL
    WARN = logging.WARN
    TRACE = TRACE
    VERBOSE = VERBOSE

    # Makes the record point at the caller of trace()/verbose(), not at us.
    _stacklevel = _baseStacklevel(2, 1)

    def __init__(self, logger: logging.Logger, extra: dict[str, Any] | None = None) -> None:
        super().__init__(logger, extra or {})

    @property
    def level(self) -> int:
        """Level set on the underlying logger (`int`)."""
        return self.logger.level

    def getChild(self, name: str) -> LsstLogAdapter:
        """Get the named child logger.

        Parameters
        ----------
        name : `str`
            Name relative to this logger.

        Returns
        -------
        child : `LsstLogAdapter`
            Adapter around ``<this name>.<name>``.
        """
        return getLogger(name=name, logger=self.logger)

    def _stack(self, kwargs: dict[str, Any]) -> int:
        stacklevel = self._stacklevel
        if "stacklevel" in kwargs:
            # A caller asking for stacklevel=1 means "my line", which the
            # default already achieves.
            stacklevel += kwargs.pop("stacklevel") - 1
        return stacklevel

    def trace(self, fmt: str, *args: Any, **kwargs: Any) -> None:
        """Issue a `TRACE` (5) level message; arguments as for `logging.Logger.debug`.

        Parameters
        ----------
        fmt : `str`
            Message, %-formatted with ``args``.
        *args : `~typing.Any`
            Message arguments.
        **kwargs : `~typing.Any`
            Forwarded to `logging.Logger.log`.
        """
        stacklevel = self._stack(kwargs)
        self.log(TRACE, fmt, *args, stacklevel=stacklevel, **kwargs)

    def verbose(self, fmt: str, *args: Any, **kwargs: Any) -> None:
        """Issue a `VERBOSE` (15) level message; arguments as for `logging.Logger.info`.

        Parameters
        ----------
        fmt : `str`
            Message, %-formatted with ``args``.
        *args : `~typing.Any`
            Message arguments.
        **kwargs : `~typing.Any`
            Forwarded to `logging.Logger.log`.
        """
        stacklevel = self._stack(kwargs)
        self.log(VERBOSE, fmt, *args, stacklevel=stacklevel, **kwargs)

    def fatal(self, msg: str, *args: Any, **kwargs: Any) -> None:
        """Issue a `logging.CRITICAL` message (alias kept for LSST code).

        Parameters
        ----------
        msg : `str`
            Message, %-formatted with ``args``.
        *args : `~typing.Any`
            Message arguments.
        **kwargs : `~typing.Any`
            Forwarded to `logging.Logger.log`.
        """
        stacklevel = self._stack(kwargs)
        self.log(logging.CRITICAL, msg, *args, stacklevel=stacklevel, **kwargs)

    def setLevel(self, level: int | str) -> None:
        """Set the level of the underlying logger.

        Parameters
        ----------
        level : `int` or `str`
            New level. Values above `logging.CRITICAL` are taken to be
            ``lsst.log`` levels (1000 times larger) and scaled down.
        """
        if isinstance(level, int) and level > logging.CRITICAL:
            level //= 1000
        self.logger.setLevel(level)

    @contextmanager
    def temporary_log_level(self, level: int | str) -> Iterator[None]:
        """Set the level of this logger for the duration of a ``with`` block.

        Parameters
        ----------
        level : `int` or `str`
            Temporary level.

        Yields
        ------
        None
        """
        old = self.level
        self.setLevel(level)
        try:
            yield
        finally:
            self.setLevel(old)

    @property
    def handlers(self) -> list[logging.Handler]:
        """Handlers attached to the underlying logger."""
        return self.logger.handlers

    def addHandler(self, handler: logging.Handler) -> None:
        """Attach a handler to the underlying logger.

        Parameters
        ----------
        handler : `logging.Handler`
            The handler.
        """
        self.logger.addHandler(handler)

    def removeHandler(self, handler: logging.Handler) -> None:
        """Detach a handler from the underlying logger.

        Parameters
        ----------
        handler : `logging.Handler`
            The handler.
        """
        self.logger.removeHandler(handler)


def getLogger(name: str | None = None, logger: logging.Logger | None = None) -> LsstLogAdapter:
    """Get an `LsstLogAdapter`.

    Parameters
    ----------
    name : `str`, optional
        Logger name; the root logger if `None`. When ``logger`` is given,
        the name is relative to it.
    logger : `logging.Logger` or `LsstLogAdapter`, optional
        Logger to wrap (or whose child to wrap).

    Returns
    -------
    log : `LsstLogAdapter`
        The adapter.
    """
    if isinstance(logger, logging.LoggerAdapter):
        logger = logger.logger
    if logger is None:
        logger = logging.getLogger(name)
    elif name:
        logger = logger.getChild(name)
    return LsstLogAdapter(logger)
