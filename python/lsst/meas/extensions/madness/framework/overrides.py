"""File machinery of `~lsst.meas.extensions.madness.framework.config.Config`.

Two kinds of config file exist. Override files (``.py``, pex_config syntax:
``config.maxIter = 300``) are trusted Python code, run with the user's
rights exactly as ``lsst.pex.config`` runs them; this module writes them
(Python literals and import lines) and turns their failures into a
`ConfigLoadError` that names the file and line. Data configs (``.yaml``,
``.yml``, ``.json``) hold a mapping of field names to plain values and run no
code; this module reads them (refusing YAML tags that would construct
objects) and writes their values.
"""

from __future__ import annotations

__all__ = [
    "DATA_CONFIG_SUFFIXES",
]

import importlib
import json
import math
import numbers
import os
import re
import types
from collections.abc import Mapping
from typing import Any

from .configErrors import ConfigLoadError, UnknownFieldError

DATA_CONFIG_SUFFIXES: Mapping[str, str] = types.MappingProxyType({".yaml": "YAML", ".yml": "YAML", ".json": "JSON"})
"""File suffixes (lower case) of data configs, and their formats; any other suffix is an override file."""


def _resolveDotted(path: str) -> Any:
    """Resolve ``"package.module.Class"`` given as a subtask target.

    Only Python callers reach this (`Config.fromDict`, `Config.update`,
    keyword arguments); data configs never retarget, so they import nothing.
    """
    parts = path.split(".")
    for i in range(len(parts) - 1, 0, -1):
        moduleName = ".".join(parts[:i])
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
    raise ImportError(f"cannot resolve {path!r}: no importable module provides it")


def _dottedName(obj: Any, where: str) -> str:
    qualname = obj.__qualname__
    if "<locals>" in qualname:
        raise ValueError(f"cannot write {where}: {qualname} is defined inside a function, so it cannot be imported")
    return f"{obj.__module__}.{qualname}"


# ---------------------------------------------------------------------------
# Override-file writing


def _literal(value: Any, where: str) -> str:
    """Python source that evaluates to ``value`` (builtins only, no imports)."""
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
    if source:
        message += f"\n    {source}"
    return ConfigLoadError(message, filename=label, lineno=lineno)


# ---------------------------------------------------------------------------
# Data configs: writing (YAML, and JSON with the same values)


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


# ---------------------------------------------------------------------------
# Data configs: reading

# The YAML tags of plain values. Any other tag (``!!python/object/apply:...``,
# ``!!binary``, a timestamp, an application tag) would construct an object, so
# a data config refuses it before anything is constructed.
_YAML_PLAIN_TAGS = frozenset(
    f"tag:yaml.org,2002:{name}" for name in ("null", "bool", "int", "float", "str", "seq", "map", "merge")
)


def _dataFormat(filename: str) -> str | None:
    """Return ``"YAML"`` or ``"JSON"`` for a data config by its suffix, `None` for an override file."""
    return DATA_CONFIG_SUFFIXES.get(os.path.splitext(filename)[1].lower())


def _keyPath(path: tuple[str, ...]) -> str:
    return "".join(part if part.startswith("[") else f".{part}" for part in path).lstrip(".")


def _checkYamlNode(node: Any, path: tuple[str, ...], label: str, lines: dict, seen: set[int]) -> None:
    """Refuse non-plain tags and repeated keys; record the line of each key path."""
    import yaml

    # An alias shares its anchor's node: check each node once, which also
    # ends the walk through recursive or exponentially aliased documents.
    if id(node) in seen:
        return
    seen.add(id(node))
    line = node.start_mark.line + 1
    if node.tag not in _YAML_PLAIN_TAGS:
        raise ConfigLoadError(
            f"{label}, line {line}: {_keyPath(path) or 'the document'}: the YAML tag {node.tag!r} is not allowed: "
            "a data config holds plain values only (null, booleans, numbers, strings, lists and mappings) and "
            "constructs no objects (quote a value that is meant as a string)",
            filename=label,
            lineno=line,
        )
    if isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _checkYamlNode(item, (*path, f"[{i}]"), label, lines, seen)
    elif isinstance(node, yaml.MappingNode):
        keys: set[Any] = set()
        for keyNode, valueNode in node.value:
            _checkYamlNode(keyNode, path, label, lines, seen)
            if keyNode.tag == "tag:yaml.org,2002:merge":
                _checkYamlNode(valueNode, path, label, lines, seen)
                continue
            key = keyNode.value if isinstance(keyNode, yaml.ScalarNode) else f"<{keyNode.id}>"
            keyPath = (*path, key)
            keyLine = keyNode.start_mark.line + 1
            if key in keys:
                raise ConfigLoadError(
                    f"{label}, line {keyLine}: {_keyPath(keyPath)} is given twice", filename=label, lineno=keyLine
                )
            keys.add(key)
            lines.setdefault(keyPath, keyLine)
            _checkYamlNode(valueNode, keyPath, label, lines, seen)


def _yamlSyntaxError(err: Exception, label: str) -> ConfigLoadError:
    mark = getattr(err, "problem_mark", None)
    lineno = mark.line + 1 if mark is not None else None
    where = f"{label}, line {lineno}" if lineno else label
    return ConfigLoadError(f"{where}: invalid YAML: {err}", filename=label, lineno=lineno)


def _readYaml(text: str, label: str) -> tuple[Any, dict[tuple[str, ...], int]]:
    import yaml

    lines: dict[tuple[str, ...], int] = {}
    try:
        # Composing builds the node tree only; nothing is constructed before
        # every tag has been checked.
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        if root is None:
            return {}, lines
        _checkYamlNode(root, (), label, lines, set())
        return yaml.safe_load(text), lines
    except yaml.YAMLError as err:
        raise _yamlSyntaxError(err, label) from err


def _readJson(text: str, label: str) -> Any:
    def uniqueKeys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for key, value in pairs:
            if key in data:
                raise ConfigLoadError(f"{label}: key {key!r} is given twice in one JSON object", filename=label)
            data[key] = value
        return data

    try:
        return json.loads(text, object_pairs_hook=uniqueKeys)
    except json.JSONDecodeError as err:
        raise ConfigLoadError(
            f"{label}, line {err.lineno}: invalid JSON: {err.msg}", filename=label, lineno=err.lineno
        ) from err


def _readDataConfig(text: str, label: str, format: str) -> tuple[Mapping[str, Any], dict[tuple[str, ...], int]]:
    """Parse a data config into plain values, running no code.

    Parameters
    ----------
    text : `str`
        The document.
    label : `str`
        File name for messages.
    format : `str`
        ``"YAML"`` or ``"JSON"``.

    Returns
    -------
    data : `~collections.abc.Mapping`
        Field names to plain values (an empty document gives ``{}``).
    lines : `dict` [`tuple` [`str`, ...], `int`]
        Line of each key path (YAML only), for messages.

    Raises
    ------
    ConfigLoadError
        Raised, naming the file (and line where known), for syntax errors,
        repeated keys, YAML tags of non-plain values, and a document that
        is not a mapping.
    """
    data, lines = _readYaml(text, label) if format == "YAML" else (_readJson(text, label), {})
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigLoadError(
            f"{label}: a {format} config must be a mapping of field names to values, not a {type(data).__name__}",
            filename=label,
        )
    return data, lines


def _dataError(err: Exception, label: str, lines: Mapping[tuple[str, ...], int]) -> ConfigLoadError:
    """A `ConfigLoadError` for a value of a data config, naming the file and the key's line."""
    parts = tuple(re.findall(r"\[\d+\]|[^.\[\]]+", getattr(err, "fieldPath", "") or ""))
    lineno = next((lines[parts[:n]] for n in range(len(parts), 0, -1) if parts[:n] in lines), None)
    where = f"{label}, line {lineno}" if lineno is not None else label
    if isinstance(err, UnknownFieldError):
        where += f": unknown key {_keyPath(parts)}"
    return ConfigLoadError(f"{where}: {err}", filename=label, lineno=lineno)
