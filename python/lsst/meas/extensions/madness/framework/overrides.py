"""Override-file machinery of `~lsst.meas.extensions.madness.framework.config.Config`.

Override files in pex_config syntax run with only `SAFE_BUILTINS` in scope,
whose ``__import__`` allows the modules named by `OVERRIDE_IMPORT_PREFIXES`
and `OVERRIDE_IMPORT_MODULES`. This module also holds the helpers that
write override files (Python literals and import lines) and YAML values,
resolve dotted names of YAML ``target`` entries, and turn failures of an
override file into a `ConfigLoadError`.
"""

from __future__ import annotations

__all__ = [
    "OVERRIDE_IMPORT_MODULES",
    "OVERRIDE_IMPORT_PREFIXES",
    "SAFE_BUILTINS",
]

import builtins
import importlib
import math
import numbers
import sys
import types
from collections.abc import Mapping
from typing import Any

from .configErrors import ConfigLoadError


# ---------------------------------------------------------------------------
# Imports allowed in override files


OVERRIDE_IMPORT_PREFIXES: tuple[str, ...] = ("lsst.",)
"""Modules whose name starts with one of these may be imported by override files."""

OVERRIDE_IMPORT_MODULES: frozenset[str] = frozenset({"math", "numpy"})
"""Modules (exact names) that may also be imported by override files."""


def _importAllowed(name: str) -> bool:
    return name in OVERRIDE_IMPORT_MODULES or name.startswith(OVERRIDE_IMPORT_PREFIXES)


def _restrictedImport(
    name: str,
    globals: Mapping[str, Any] | None = None,
    locals: Mapping[str, Any] | None = None,
    fromlist: tuple[str, ...] | None = (),
    level: int = 0,
) -> types.ModuleType:
    if level != 0:
        raise ImportError("relative imports are not allowed in config override files")
    if not _importAllowed(name):
        allowed = ", ".join([f"{p}*" for p in OVERRIDE_IMPORT_PREFIXES] + sorted(OVERRIDE_IMPORT_MODULES))
        raise ImportError(f"importing {name!r} is not allowed in config override files (allowed: {allowed})")
    return builtins.__import__(name, globals, locals, fromlist, level)


SAFE_BUILTINS: Mapping[str, Any] = types.MappingProxyType(
    {
        "True": True,
        "False": False,
        "None": None,
        **{
            name: getattr(builtins, name)
            for name in (
                "int float str bool list dict tuple set len range min max abs round sorted enumerate zip"
            ).split()
        },
        "__import__": _restrictedImport,
    }
)
"""Builtins visible to override files; ``__import__`` is the restricted one."""


def _resolveDotted(path: str) -> Any:
    """Resolve ``"package.module.Class"`` for a YAML ``target``.

    Modules already imported are always usable (importing them again has no
    side effects); others must satisfy the override-file import policy.
    """
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        moduleName = ".".join(parts[:i])
        if moduleName not in sys.modules and not _importAllowed(moduleName):
            continue
        try:
            obj: Any = importlib.import_module(moduleName)
        except ModuleNotFoundError as err:
            if err.name is not None and moduleName.startswith(err.name):
                continue
            raise
        try:
            for attr in parts[i:]:
                obj = getattr(obj, attr)
        except AttributeError:
            continue
        return obj
    raise ImportError(
        f"cannot resolve {path!r}: no importable module provides it (modules must be imported "
        f"already or be allowed in override files)"
    )


def _dottedName(obj: Any, where: str) -> str:
    qualname = obj.__qualname__
    if "<locals>" in qualname:
        raise ValueError(f"cannot write {where}: {qualname} is defined inside a function, so it cannot be imported")
    return f"{obj.__module__}.{qualname}"


# ---------------------------------------------------------------------------
# Override-file writing


def _literal(value: Any, where: str) -> str:
    """Python source that evaluates, with `SAFE_BUILTINS`, to ``value``."""
    if value is None or isinstance(value, (bool, str)):
        return repr(value)
    if isinstance(value, numbers.Integral):
        return repr(int(value))
    if isinstance(value, numbers.Real):
        value = float(value)
        if math.isnan(value):
            return "float('nan')"
        if math.isinf(value):
            return "float('inf')" if value > 0 else "float('-inf')"
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v, where) for v in value) + "]"
    if isinstance(value, tuple):
        items = [_literal(v, where) for v in value]
        return "(" + ", ".join(items) + ("," if len(items) == 1 else "") + ")"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_literal(k, where)}: {_literal(v, where)}" for k, v in value.items()) + "}"
    if isinstance(value, (set, frozenset)):
        if not value:
            return "set()"
        return "{" + ", ".join(sorted(_literal(v, where) for v in value)) + "}"
    raise TypeError(f"cannot write {where} = {value!r} to an override file: unsupported type {type(value).__name__}")


class _ImportNamer:
    """Chooses the names under which saved override files import classes."""

    def __init__(self) -> None:
        self._aliases: dict[tuple[str, str], str] = {}

    def ref(self, obj: Any, where: str) -> str:
        _dottedName(obj, where)
        module, qualname = obj.__module__, obj.__qualname__
        top, _, rest = qualname.partition(".")
        key = (module, top)
        alias = self._aliases.get(key)
        if alias is None:
            taken = set(self._aliases.values())
            alias, n = top, 2
            while alias in taken or alias == "config":
                alias, n = f"{top}_{n}", n + 1
            self._aliases[key] = alias
        return f"{alias}.{rest}" if rest else alias

    def importLines(self) -> list[str]:
        lines = []
        for (module, top), alias in self._aliases.items():
            lines.append(f"from {module} import {top}" + (f" as {alias}" if alias != top else ""))
        return lines


# ---------------------------------------------------------------------------
# Override-file loading


def _loadError(err: Exception, label: str, code: str) -> ConfigLoadError:
    lineno = None
    tb = err.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == label:
            lineno = tb.tb_lineno
        tb = tb.tb_next
    lines = code.splitlines()
    source = lines[lineno - 1].strip() if lineno is not None and 0 < lineno <= len(lines) else ""
    message = f"{label}, line {lineno}: {type(err).__name__}: {err}"
    if isinstance(err, NameError) and getattr(err, "name", None) and hasattr(builtins, err.name):
        message += f" (override files may only use these builtins: {', '.join(sorted(SAFE_BUILTINS))})"
    if source:
        message += f"\n    {source}"
    return ConfigLoadError(message, filename=label, lineno=lineno)


# ---------------------------------------------------------------------------
# YAML writing


def _yamlValue(value: Any, where: str) -> Any:
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value) if isinstance(value, (set, frozenset)) else value
        return [_yamlValue(v, where) for v in items]
    if isinstance(value, dict):
        return {k: _yamlValue(v, where) for k, v in value.items()}
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    raise TypeError(f"cannot write {where} = {value!r} to YAML: unsupported type {type(value).__name__}")
