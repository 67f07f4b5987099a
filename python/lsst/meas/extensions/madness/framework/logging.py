"""Task loggers with the LSST ``TRACE`` and ``VERBOSE`` levels, and console logging for commands.

Mirrors ``lsst.utils.logging``: a `logging.LoggerAdapter` around a standard
`logging.Logger`, so handlers, levels and ``caplog`` work as usual.
`consoleLogging` sets up the console as the LSST command-line tools
(``pipetask``, ``butler``) do: ``<logger name> <LEVEL>: <message>`` lines on
standard error, the ``lsst`` loggers at the level asked for and other
libraries' loggers at ``WARNING``.
"""

from __future__ import annotations

__all__ = ["CONSOLE_FORMAT", "LOG_LEVELS", "TRACE", "VERBOSE", "LsstLogAdapter", "consoleLogging", "getLogger"]

import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

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


CONSOLE_FORMAT = "{name} {levelname}: {message}"
"""Format of console log lines (`str.format` style): the one of the LSST
command-line tools without ``--long-log``, so their log-reading habits and
``grep`` patterns carry over."""

LOG_LEVELS = ("TRACE", "DEBUG", "VERBOSE", "INFO", "WARNING", "ERROR", "CRITICAL")
"""Level names a command's ``--log-level`` accepts, most verbose first."""

#: The logger hierarchy that ``--log-level`` sets: every task logger (``lsst.<task>``) and module
#: logger (``lsst.meas.extensions.madness...``) of the package is in it.
_PACKAGE_ROOT_LOGGER = "lsst"


class _ConsoleHandler(logging.StreamHandler):
    """Stream handler that writes around running progress bars.

    A log line written while a ``tqdm`` bar is drawn on the same stream
    would be spliced into the bar; ``tqdm.write`` clears the bars, writes the
    line and draws them again.
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm
        except ImportError:  # tqdm is a dependency, but logging must never be what fails
            super().emit(record)
            return
        try:
            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except Exception:  # noqa: BLE001 - logging's own convention: report, never raise
            self.handleError(record)


def _levelNumber(level: int | str) -> int:
    if isinstance(level, int):
        return level
    number = logging.getLevelName(level.upper())
    if not isinstance(number, int):
        raise ValueError(f"unknown log level {level!r}; use one of {', '.join(LOG_LEVELS)}")
    return number


def _logWarning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                file: TextIO | None = None, line: str | None = None) -> None:
    # A `warnings.showwarning` that logs, like `logging.captureWarnings`, but without the source
    # file and line, which name the package's internals rather than anything the user can act on.
    logging.getLogger("py.warnings").warning("%s: %s", category.__name__, message)


@contextmanager
def consoleLogging(level: int | str = "INFO", stream: TextIO | None = None) -> Iterator[logging.Handler]:
    """Print log records on the console for the duration of a ``with`` block.

    For command-line programs. Installs a handler on the root logger that
    writes ``<logger name> <LEVEL>: <message>`` lines (`CONSOLE_FORMAT`), sets
    the ``lsst`` logger hierarchy (every task and module of this package) to
    ``level`` and leaves other libraries' loggers at ``WARNING`` (or at
    ``level`` when that is higher), as LSST's ``pipetask`` does. Python
    warnings (`warnings.warn`) become records of the ``py.warnings`` logger,
    so they too carry a name and a level. Everything is put back on exit, so
    a program called in-process (a test) leaves the logging of its caller as
    it found it.

    Parameters
    ----------
    level : `int` or `str`, optional
        Lowest level shown from the ``lsst`` loggers: a number or one of
        `LOG_LEVELS` (any case).
    stream : `typing.TextIO`, optional
        Where the lines go; `sys.stderr` (as it is when the block starts) if
        `None`, which keeps standard output for the program's own results.

    Yields
    ------
    handler : `logging.Handler`
        The handler installed.

    Raises
    ------
    ValueError
        Raised if ``level`` is not a level name.

    Examples
    --------
    >>> import io
    >>> console = io.StringIO()
    >>> with consoleLogging("WARNING", stream=console):
    ...     getLogger("lsst.madnessDeblend").info("not shown")
    ...     getLogger("lsst.madnessDeblend").warning("%d parents skipped", 2)
    >>> print(console.getvalue(), end="")
    lsst.madnessDeblend WARNING: 2 parents skipped
    """
    number = _levelNumber(level)
    handler = _ConsoleHandler(sys.stderr if stream is None else stream)
    savedShowwarning = warnings.showwarning
    handler.setFormatter(logging.Formatter(CONSOLE_FORMAT, style="{"))
    root, package = logging.getLogger(), logging.getLogger(_PACKAGE_ROOT_LOGGER)
    saved = root.level, package.level
    root.addHandler(handler)
    # Other libraries (JAX, matplotlib, torch) say useful things at WARNING and too much below it.
    root.setLevel(max(number, logging.WARNING))
    package.setLevel(number)
    warnings.showwarning = _logWarning
    try:
        yield handler
    finally:
        warnings.showwarning = savedShowwarning
        root.removeHandler(handler)
        root.setLevel(saved[0])
        package.setLevel(saved[1])
