"""Exceptions raised by `~lsst.meas.extensions.madness.framework.config.Config`.

`FieldValidationError` (and its subclass `UnknownFieldError`) report bad
field values and changes to frozen configs; `ConfigLoadError` reports
override or YAML files that cannot be applied.
"""

from __future__ import annotations

__all__ = [
    "ConfigLoadError",
    "FieldValidationError",
    "UnknownFieldError",
]

from typing import Any

from pydantic import ValidationError

_NOVALUE: Any = object()


# ---------------------------------------------------------------------------
# Errors


class FieldValidationError(ValueError):
    """Raised when a config field is given a bad value or modified while frozen.

    Parameters
    ----------
    message : `str`
        Complete message.
    configName : `str`, optional
        Name of the (top-level) config class.
    fieldPath : `str`, optional
        Dotted path of the field below that class, e.g. ``deblend.maxIter``.
    value : `~typing.Any`, optional
        The offending value, when there is one.

    Notes
    -----
    Messages read ``MyConfig.deblend.maxIter = -3 is invalid: Input should
    be greater than or equal to 1``.
    """

    def __init__(self, message: str, *, configName: str = "", fieldPath: str = "", value: Any = _NOVALUE):
        super().__init__(message)
        self.configName = configName
        self.fieldPath = fieldPath
        self.value = None if value is _NOVALUE else value


class UnknownFieldError(FieldValidationError, AttributeError):
    """Raised when assigning to a field that the config does not have.

    It is both a `FieldValidationError` (so a `ValueError`) and an
    `AttributeError`, so either ``except`` clause catches it.
    """


class ConfigLoadError(ValueError):
    """Raised when an override or YAML file cannot be applied.

    Parameters
    ----------
    message : `str`
        Complete message; it starts with ``"<file>, line <n>:"``.
    filename : `str`
        The file (``"<string>"`` for code without a file).
    lineno : `int` or `None`
        Line in the file, when known.

    Notes
    -----
    The original exception (for instance a `FieldValidationError` or the
    `ImportError` of a forbidden import) is the ``__cause__``.
    """

    def __init__(self, message: str, *, filename: str = "<string>", lineno: int | None = None):
        super().__init__(message)
        self.filename = filename
        self.lineno = lineno


# ---------------------------------------------------------------------------
# Error construction


def _frozenError(where: str) -> FieldValidationError:
    return FieldValidationError(f"Cannot modify {where}: the config is frozen", fieldPath=where)


def _convertValidationError(err: ValidationError, root: str, path: tuple[str, ...]) -> FieldValidationError:
    """Turn a pydantic error into a message naming the field path and value."""
    messages = []
    first: tuple[str, Any] | None = None
    for item in err.errors(include_url=False):
        fieldPath = ".".join(path)
        for part in item["loc"]:
            if isinstance(part, int):
                fieldPath += f"[{part}]"
            else:
                fieldPath = f"{fieldPath}.{part}" if fieldPath else str(part)
        value = item.get("input")
        if fieldPath:
            messages.append(f"{root}.{fieldPath} = {value!r} is invalid: {item['msg']}")
        else:
            messages.append(f"{root} is invalid: {item['msg']}")
        if first is None:
            first = (fieldPath, value)
    fieldPath, value = first if first is not None else ("", _NOVALUE)
    return FieldValidationError("\n".join(messages), configName=root, fieldPath=fieldPath, value=value)
