"""Config files of `~lsst.meas.extensions.madness.framework.config.Config`: override files and data configs.

Override files are Python in pex_config syntax (``config.maxIter = 300``),
trusted code; data configs are YAML or JSON mappings of field values, which
run no code and cannot retarget subtasks. `Config` has these methods from
the mixin here.
"""

from __future__ import annotations

__all__: list[str] = []

import io
import json
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any, TypeVar

from .configErrors import ConfigLoadError
from .configurable import ConfigurableInstance
from .overrides import (
    _dataError,
    _dataFormat,
    _dottedName,
    _ImportNamer,
    _literal,
    _loadError,
    _readDataConfig,
    _yamlValue,
)

if TYPE_CHECKING:
    from .config import Config

_ConfigT = TypeVar("_ConfigT", bound="Config")


class _ConfigFiles:
    """The file methods of `Config` (its only subclass): override files and data configs."""

    # No instance layout of its own, so pydantic's BaseModel slots stay as they are.
    __slots__ = ()

    if TYPE_CHECKING:  # what the file methods use of Config, the class they are part of
        def items(self) -> list[tuple[str, Any]]: ...

        def _applyMapping(self, mapping: Mapping[str, Any], dataOnly: bool = False) -> None: ...

    # -- override files -----------------------------------------------------

    def saveToStream(self, outfile: IO[str], root: str = "config") -> None:
        """Write an override file that `load` turns back into this config.

        Parameters
        ----------
        outfile : `typing.IO` [`str`]
            Text stream.
        root : `str`, optional
            Name of the config variable in the file.

        Raises
        ------
        TypeError
            Raised if a value has no literal form (only `None`, `bool`,
            numbers, `str`, and lists, tuples, sets and dicts of them do).
        ValueError
            Raised if a retargeted subtask class is defined inside a
            function (it could not be imported).
        """
        namer = _ImportNamer()
        body: list[str] = []
        # Retargets are written relative to what load() starts from: the
        # class defaults, which setDefaults may already have retargeted.
        self._saveLines(root, body, namer, type(self)())
        cls = type(self)
        outfile.write(f"# Overrides for {cls.__module__}.{cls.__qualname__}, written by Config.save().\n")
        for line in namer.importLines():
            outfile.write(line + "\n")
        for line in body:
            outfile.write(line + "\n")

    def _saveLines(self, prefix: str, lines: list[str], namer: _ImportNamer, defaults: _ConfigFiles) -> None:
        from .config import Config, _plainValue  # lazy: config imports this module

        for name, value in self.items():
            where = f"{prefix}.{name}"
            default = defaults.__dict__[name]
            if isinstance(value, ConfigurableInstance):
                subDefaults = default.value
                if value.target is not default.target or value.ConfigClass is not default.ConfigClass:
                    args = namer.ref(value.target, where)
                    if value.ConfigClass is not getattr(value.target, "ConfigClass", None):
                        args += f", ConfigClass={namer.ref(value.ConfigClass, where)}"
                    lines.append(f"{where}.retarget({args})")
                    if value.ConfigClass is not default.ConfigClass:
                        subDefaults = value.ConfigClass()
                value.value._saveLines(where, lines, namer, subDefaults)
            elif isinstance(value, Config):
                subDefaults = default if type(default) is type(value) else type(value)()
                value._saveLines(where, lines, namer, subDefaults)
            else:
                lines.append(f"{where} = {_literal(_plainValue(value), where)}")

    def saveToString(self, root: str = "config") -> str:
        """Return the override file that `save` would write.

        Parameters
        ----------
        root : `str`, optional
            Name of the config variable in the file.

        Returns
        -------
        text : `str`
            Python source in pex_config syntax.
        """
        stream = io.StringIO()
        self.saveToStream(stream, root=root)
        return stream.getvalue()

    def save(self, filename: str, root: str = "config") -> None:
        """Write a file that `load` turns back into this config.

        Parameters
        ----------
        filename : `str`
            Destination. A name ending in ``.yaml`` or ``.yml`` gets YAML
            (`toYaml`), one ending in ``.json`` JSON with the same content;
            any other an override file in pex_config syntax.
        root : `str`, optional
            Name of the config variable in an override file.

        Notes
        -----
        A data config records the subtask targets, but `load` refuses it if
        a target differs from the class in place (data configs cannot
        retarget): save a retargeted config as an override file.
        """
        filename = str(filename)
        format = _dataFormat(filename)
        if format == "YAML":
            text = self.toYaml()
        elif format == "JSON":
            text = json.dumps(self._yamlData(type(self).__name__), indent=2) + "\n"
        else:
            text = self.saveToString(root=root)
        with open(filename, "w") as outfile:
            outfile.write(text)

    def load(self, filename: str, root: str = "config") -> None:
        """Apply a config file: an override file or a data config, by its suffix.

        Parameters
        ----------
        filename : `str`
            A data config if the name ends in ``.yaml``, ``.yml`` or
            ``.json`` (see `loadYaml`); otherwise an override file, Python in
            pex_config syntax (``config.maxIter = 300``).
        root : `str`, optional
            Name of the config variable in an override file.

        Raises
        ------
        ConfigLoadError
            Raised, naming the file (and line where known), if the file
            fails: syntax error, exception, unknown field, invalid value, or
            in a data config a YAML tag or a retarget.

        Notes
        -----
        An override file is trusted code: it runs as ordinary Python with
        the user's rights (``config`` and ``__file__`` in its namespace, all
        builtins and imports available), as ``lsst.pex.config`` runs it.
        Load one only from a place you would run a script from. Configs from
        untrusted places belong in data configs, which run no code.
        """
        filename = str(filename)
        format = _dataFormat(filename)
        if format is not None:
            self._loadDataFile(filename, format)
            return
        self.loadFromString(_readText(filename), root=root, filename=filename)

    def loadFromStream(
        self,
        stream: IO[str],
        root: str = "config",
        filename: str | None = None,
        extraLocals: Mapping[str, Any] | None = None,
    ) -> None:
        """Apply an override file read from a stream (see `loadFromString`).

        Parameters
        ----------
        stream : `typing.IO` [`str`]
            Text stream.
        root : `str`, optional
            Name of the config variable in the code.
        filename : `str`, optional
            Name used in error messages.
        extraLocals : `~collections.abc.Mapping`, optional
            Additional names visible to the code.
        """
        self.loadFromString(stream.read(), root=root, filename=filename, extraLocals=extraLocals)

    def loadFromString(
        self,
        code: str,
        root: str = "config",
        filename: str | None = None,
        extraLocals: Mapping[str, Any] | None = None,
    ) -> None:
        """Apply override code in pex_config syntax.

        Parameters
        ----------
        code : `str`
            Python source, e.g. ``"config.maxIter = 300"``.
        root : `str`, optional
            Name of the config variable in the code.
        filename : `str`, optional
            Name used in error messages (``"<string>"`` if omitted).
        extraLocals : `~collections.abc.Mapping`, optional
            Additional names visible to the code.

        Raises
        ------
        ConfigLoadError
            Raised, naming the file and line, if the code fails.

        Notes
        -----
        The code is trusted: it runs as ordinary Python (see `load`).
        """
        label = filename or "<string>"
        try:
            compiled = compile(code, label, "exec")
        except SyntaxError as err:
            raise ConfigLoadError(
                f"{label}, line {err.lineno}: invalid syntax: {err.msg}", filename=label, lineno=err.lineno
            ) from err
        # Plain Python, as pex_config runs it: the code is trusted, and a
        # filter on imports or builtins would only pretend otherwise.
        namespace: dict[str, Any] = {"__file__": filename}
        if extraLocals:
            if root in extraLocals:
                raise ValueError(f"extraLocals must not contain the root name {root!r}")
            namespace.update(extraLocals)
        namespace[root] = self
        try:
            exec(compiled, namespace)
        except Exception as err:
            raise _loadError(err, label, code) from err

    # -- data configs (YAML, JSON) -------------------------------------------

    def _yamlData(self, where: str) -> dict[str, Any]:
        from .config import Config, _plainValue  # lazy: config imports this module

        data: dict[str, Any] = {}
        for name, value in self.items():
            sub = f"{where}.{name}"
            if isinstance(value, ConfigurableInstance):
                entry: dict[str, Any] = {"target": _dottedName(value.target, sub)}
                if value.ConfigClass is not getattr(value.target, "ConfigClass", None):
                    entry["ConfigClass"] = _dottedName(value.ConfigClass, sub)
                entry["config"] = value.value._yamlData(sub)
                data[name] = entry
            elif isinstance(value, Config):
                data[name] = value._yamlData(sub)
            else:
                data[name] = _yamlValue(_plainValue(value), sub)
        return data

    def toYaml(self) -> str:
        """Return the config as YAML.

        Returns
        -------
        text : `str`
            Nested mappings; subtasks as ``{target: "module.Class",
            config: {...}}``. The targets are a record: loading the text
            back (`fromYaml`, `loadYaml`) accepts them only where they name
            the class already in place.
        """
        import yaml

        return yaml.safe_dump(self._yamlData(type(self).__name__), sort_keys=False)

    @classmethod
    def fromYaml(cls: type[_ConfigT], text: str) -> _ConfigT:  # type: ignore[misc]  # cls: a Config class
        """Build a config from YAML text, a data config (see `loadYaml`).

        Parameters
        ----------
        text : `str`
            YAML mapping; fields left out keep their defaults.

        Returns
        -------
        config : `Config`
            The new config.

        Raises
        ------
        ConfigLoadError
            Raised for invalid YAML, a tag of a non-plain value or a
            document that is not a mapping.
        FieldValidationError
            Raised for invalid values, unknown fields and retargets.
        """
        config = cls()
        data, _ = _readDataConfig(text, "<string>", "YAML")
        config._applyMapping(data, dataOnly=True)
        return config

    def saveYaml(self, filename: str) -> None:
        """Write the config as YAML (see `toYaml`).

        Parameters
        ----------
        filename : `str`
            Destination.
        """
        text = self.toYaml()
        with open(filename, "w") as outfile:
            outfile.write(text)

    def loadYaml(self, filename: str) -> None:
        """Apply a YAML data config to this config; no code runs.

        Parameters
        ----------
        filename : `str`
            YAML file: a mapping of field names to values, sub-configs and
            subtasks as nested mappings (``fallback: {maxIter: 100}``);
            fields left out are unchanged.

        Raises
        ------
        ConfigLoadError
            Raised, naming the file and, where known, the line, for YAML
            errors, repeated keys, unknown fields (with their key path), bad
            values (with the field and value), tags of non-plain values
            and retargets.

        Notes
        -----
        The file is read with ``yaml.safe_load`` after a check that every
        node is a plain value (null, boolean, number, string, list,
        mapping), so that no tag constructs an object. A subtask entry may
        be written ``{target: ..., config: {...}}`` (as `toYaml` does), but
        only with the target already in place: choosing another class would
        let the file choose code, so retargets belong in override files.
        `load` calls this for names ending in ``.yaml`` or ``.yml``, and
        reads names ending in ``.json`` the same way as JSON.
        """
        self._loadDataFile(str(filename), "YAML")

    def _loadDataFile(self, filename: str, format: str) -> None:
        data, lines = _readDataConfig(_readText(filename), filename, format)
        try:
            self._applyMapping(data, dataOnly=True)
        except Exception as err:  # a data file from anywhere must end in a message, never a traceback
            raise _dataError(err, filename, lines) from err



def _readText(filename: str) -> str:
    """The text of a config file; one that is not text is a `ConfigLoadError`, not a decoding traceback."""
    try:
        with open(filename, encoding="utf-8") as infile:
            return infile.read()
    except UnicodeDecodeError as err:
        raise ConfigLoadError(f"{filename}: not a UTF-8 text file: {err}", filename=filename) from err

