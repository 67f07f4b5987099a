"""Subtask fields of `~lsst.meas.extensions.madness.framework.config.Config`.

`ConfigurableField` declares a subtask (as
``lsst.pex.config.ConfigurableField``); in each config its value is a
`ConfigurableInstance`, a retargetable subtask config.
"""

from __future__ import annotations

__all__ = [
    "ConfigurableField",
    "ConfigurableInstance",
]

import copy
import importlib
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import pydantic
from pydantic_core import core_schema

from .configErrors import FieldValidationError, _frozenError
from .overrides import _resolveDotted

if TYPE_CHECKING:
    from .config import Config


# ---------------------------------------------------------------------------
# Subtask fields


def _validateTarget(target: Any, ConfigClass: Any, where: str) -> type[Config]:
    """Return the config class for ``target``, checking that it is usable."""
    # Config is defined on top of this module (a true cycle): import it lazily.
    from .config import Config

    if isinstance(target, str) or not callable(target):
        raise FieldValidationError(
            f"Cannot target {where} at {target!r}: the target must be a class (a Task)",
            fieldPath=where,
            value=target,
        )
    if ConfigClass is None:
        ConfigClass = getattr(target, "ConfigClass", None)
        if ConfigClass is None:
            raise FieldValidationError(
                f"Cannot target {where} at {target!r}: it has no ConfigClass attribute", fieldPath=where
            )
    if not (isinstance(ConfigClass, type) and issubclass(ConfigClass, Config)):
        raise FieldValidationError(
            f"Cannot target {where} at {target!r}: its ConfigClass {ConfigClass!r} is not a "
            f"{Config.__module__}.Config (an lsst.pex.config task cannot be a subtask of a pydantic config)",
            fieldPath=where,
        )
    return ConfigClass


class _ConfigurableSpec:
    """Pydantic annotation carrying the default target of a `ConfigurableField`.

    Lives in the ``FieldInfo.metadata`` of the field, where pydantic keeps it
    when fields are inherited or merged.
    """

    def __init__(self, target: Any, ConfigClass: Any) -> None:
        self._target = target
        self._ConfigClass = ConfigClass
        self._resolved = False
        if not isinstance(target, str) and not isinstance(ConfigClass, str):
            # Fail at class definition rather than at first use.
            self._resolve()

    def _resolve(self) -> None:
        if isinstance(self._target, str):
            self._target = _importString(self._target)
        if isinstance(self._ConfigClass, str):
            self._ConfigClass = _importString(self._ConfigClass)
        self._ConfigClass = _validateTarget(self._target, self._ConfigClass, "ConfigurableField")
        self._resolved = True

    @property
    def target(self) -> Any:
        """The default target, imported on first use when given as a string."""
        if not self._resolved:
            self._resolve()
        return self._target

    @property
    def ConfigClass(self) -> type[Config]:
        """The default config class (``target.ConfigClass`` unless overridden)."""
        if not self._resolved:
            self._resolve()
        return self._ConfigClass

    def makeInstance(self) -> ConfigurableInstance:
        return ConfigurableInstance(self)

    def _coerce(self, value: Any) -> ConfigurableInstance:
        if isinstance(value, ConfigurableInstance):
            # A fresh default (never attached to a config) is used as is.
            return value if value._root is None else copy.deepcopy(value)
        instance = self.makeInstance()
        instance._assign(value)
        return instance

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> core_schema.CoreSchema:
        return core_schema.no_info_plain_validator_function(
            self._coerce,
            serialization=core_schema.plain_serializer_function_ser_schema(lambda v: v.value.toDict()),
        )

    def __get_pydantic_json_schema__(self, schema: Any, handler: Any) -> dict[str, Any]:
        return {"type": "object"}

    def __deepcopy__(self, memo: dict[int, Any]) -> _ConfigurableSpec:
        # Declarations are immutable; copies would break identity checks.
        return self


def _importString(path: str) -> Any:
    moduleName, _, attr = path.rpartition(".")
    if not moduleName:
        raise ImportError(f"{path!r} is not a dotted path to a class")
    return getattr(importlib.import_module(moduleName), attr)


class ConfigurableField:
    """Declare a subtask field of a `Config` (as ``lsst.pex.config.ConfigurableField``).

    Parameters
    ----------
    doc : `str`
        Description of the field (or use ``description=``).
    target : `type` or `str`
        Default subtask class (a `Task` subclass with a ``ConfigClass``), or
        its dotted import path when the module cannot be imported yet
        (resolved on first use).
    ConfigClass : `type` [`Config`] or `str`, optional
        Config class of the subtask; ``target.ConfigClass`` if omitted.
    description : `str`, optional
        Alternative spelling of ``doc``.

    Returns
    -------
    field : `pydantic.fields.FieldInfo`
        Calling the class returns a pydantic field declaration whose value,
        in each config instance, is its own `ConfigurableInstance`.

    Notes
    -----
    Declare the field with ``ConfigurableField`` as both annotation and
    default::

        deblend: ConfigurableField = ConfigurableField(doc="...", target=DeblendTask)

    (``ConfigurableInstance`` is accepted as the annotation too).

    Examples
    --------
    >>> from lsst.meas.extensions.madness.framework import Config, Field, Task
    >>> class FitConfig(Config):
    ...     maxIter: int = Field(300, description="Maximum number of iterations.", ge=1)
    >>> class FitTask(Task):
    ...     ConfigClass = FitConfig
    ...     _DefaultName = "fit"
    >>> class TopConfig(Config):
    ...     fit: ConfigurableField = ConfigurableField(doc="Fitter to use.", target=FitTask)
    >>> config = TopConfig()
    >>> config.fit.maxIter = 20
    >>> config.fit.target is FitTask, config.fit.value.maxIter
    (True, 20)
    """

    def __new__(
        cls,
        doc: str | None = None,
        target: Any = None,
        ConfigClass: Any = None,
        *,
        description: str | None = None,
    ) -> Any:
        if target is None:
            raise TypeError("ConfigurableField needs a target (the default subtask class)")
        if doc is not None and description is not None and doc != description:
            raise TypeError("give either doc= or description=, not both")
        spec = _ConfigurableSpec(target, ConfigClass)
        info = pydantic.Field(default_factory=spec.makeInstance, description=description or doc)
        info.metadata.append(spec)
        return info

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: Any) -> core_schema.CoreSchema:
        raise TypeError(
            "a field annotated with ConfigurableField needs a ConfigurableField(doc=..., target=...) default"
        )


class ConfigurableInstance:
    """Value of a `ConfigurableField` in a config: a retargetable subtask config.

    Parameters
    ----------
    spec : `_ConfigurableSpec`
        The field declaration (default target and config class).

    Notes
    -----
    Attribute reads and writes that are not ``target``, ``ConfigClass``,
    ``value``, ``apply`` or ``retarget`` are forwarded to the sub-config,
    so ``config.deblend.maxIter = 3`` sets a field of the deblender's
    config. `retarget` keeps the sub-config values when the new config class
    is the current one and resets them to the new class's defaults otherwise,
    exactly as pex_config does.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.framework import Config, Field, Task
    >>> class FitConfig(Config):
    ...     maxIter: int = Field(300, description="Maximum number of iterations.", ge=1)
    >>> class FitTask(Task):
    ...     ConfigClass = FitConfig
    ...     _DefaultName = "fit"
    >>> class QuickFitTask(FitTask):
    ...     pass
    >>> class SampleConfig(Config):
    ...     nSamples: int = Field(100, description="Number of samples.")
    >>> class SampleTask(Task):
    ...     ConfigClass = SampleConfig
    ...     _DefaultName = "sample"
    >>> class TopConfig(Config):
    ...     fit: ConfigurableField = ConfigurableField(doc="Fitter.", target=FitTask)
    >>> config = TopConfig()
    >>> config.fit.maxIter = 20
    >>> config.fit.retarget(QuickFitTask)
    >>> config.fit.maxIter
    20
    >>> config.fit.retarget(SampleTask)
    >>> config.fit.value
    SampleConfig(nSamples=100)
    >>> type(config.fit.apply(name="fit")).__name__
    'SampleTask'
    """

    _spec: _ConfigurableSpec
    _target: Any
    _ConfigClass: type[Config]
    _value: Config
    _frozen: bool
    _root: str | None
    _path: tuple[str, ...]

    def __init__(self, spec: _ConfigurableSpec) -> None:
        object.__setattr__(self, "_spec", spec)
        object.__setattr__(self, "_target", spec.target)
        object.__setattr__(self, "_ConfigClass", spec.ConfigClass)
        object.__setattr__(self, "_frozen", False)
        object.__setattr__(self, "_root", None)
        object.__setattr__(self, "_path", ())
        object.__setattr__(self, "_value", spec.ConfigClass())

    @property
    def target(self) -> Any:
        """The subtask class that `apply` builds (read-only; use `retarget`)."""
        return self._target

    @property
    def ConfigClass(self) -> type[Config]:
        """The config class of the subtask (read-only; use `retarget`)."""
        return self._ConfigClass

    @property
    def value(self) -> Config:
        """The sub-config, an instance of `ConfigClass`."""
        return self._value

    @property
    def _where(self) -> str:
        return ".".join((self._root or "config", *self._path))

    def apply(self, *args: Any, **kwargs: Any) -> Any:
        """Build the target with this sub-config.

        Parameters
        ----------
        *args : `~typing.Any`
            Positional arguments for the target.
        **kwargs : `~typing.Any`
            Keyword arguments for the target (``name``, ``parentTask``...).

        Returns
        -------
        task : `~typing.Any`
            ``target(*args, config=self.value, **kwargs)``.
        """
        return self._target(*args, config=self._value, **kwargs)

    def retarget(self, target: Any, ConfigClass: type[Config] | None = None) -> None:
        """Replace the subtask class.

        Parameters
        ----------
        target : `type`
            New subtask class.
        ConfigClass : `type` [`Config`], optional
            Its config class; ``target.ConfigClass`` if omitted.

        Raises
        ------
        FieldValidationError
            Raised if the config is frozen or the target has no usable
            config class.

        Notes
        -----
        The sub-config keeps its values when ``ConfigClass`` is the current
        config class, and is reset to the defaults of ``ConfigClass``
        otherwise.
        """
        if self._frozen:
            raise _frozenError(self._where)
        ConfigClass = _validateTarget(target, ConfigClass, self._where)
        object.__setattr__(self, "_target", target)
        if ConfigClass is not self._ConfigClass:
            object.__setattr__(self, "_ConfigClass", ConfigClass)
            self._setValue(ConfigClass())

    def _setValue(self, value: Config) -> None:
        object.__setattr__(self, "_value", value)
        if self._root is not None:
            value._attach(self._root, self._path)

    def _attach(self, root: str, path: tuple[str, ...]) -> None:
        object.__setattr__(self, "_root", root)
        object.__setattr__(self, "_path", path)
        self._value._attach(root, path)

    def _freeze(self) -> None:
        object.__setattr__(self, "_frozen", True)
        self._value.freeze()

    def _thaw(self) -> None:
        object.__setattr__(self, "_frozen", False)
        self._value._thaw()

    def _assign(self, value: Any) -> None:
        """Apply ``config.<field> = value`` with pex_config semantics."""
        if self._frozen:
            raise _frozenError(self._where)
        if isinstance(value, ConfigurableInstance):
            self.retarget(value.target, value.ConfigClass)
            self._setValue(value.value.copy())
        elif isinstance(value, type) and value is self._ConfigClass:
            self._setValue(value())
        elif type(value) is self._ConfigClass:
            self._setValue(value.copy())
        elif isinstance(value, Mapping):
            if _isTargetMapping(value, self._ConfigClass):
                target = value["target"]
                ConfigClass = value.get("ConfigClass")
                self.retarget(
                    _resolveDotted(target) if isinstance(target, str) else target,
                    _resolveDotted(ConfigClass) if isinstance(ConfigClass, str) else ConfigClass,
                )
                self._value._applyMapping(value.get("config") or {})
            else:
                self._value._applyMapping(value)
        else:
            raise FieldValidationError(
                f"{self._where} = {value!r} is invalid: expected a {self._ConfigClass.__name__}, a mapping "
                "of its fields, or a mapping {'target': ..., 'config': {...}}",
                configName=self._root or "",
                fieldPath=".".join(self._path),
                value=value,
            )

    def _applyData(self, value: Any) -> None:
        """Apply the entry of a data config (YAML, JSON): field values, never a retarget.

        A ``target`` (or ``ConfigClass``) entry is accepted only when it
        names the class already in place, as `Config.toYaml` writes it;
        naming another class would make the file choose code to run.
        """
        if self._frozen:
            raise _frozenError(self._where)
        if not isinstance(value, Mapping):
            raise FieldValidationError(
                f"{self._where} = {value!r} is invalid: expected a mapping of {self._ConfigClass.__name__} fields",
                configName=self._root or "",
                fieldPath=".".join(self._path),
                value=value,
            )
        fields = self._ConfigClass.model_fields
        if any(key in value and key not in fields for key in ("target", "ConfigClass")):
            for key, current in (("target", self._target), ("ConfigClass", self._ConfigClass)):
                named = value.get(key)
                if named is not None and named != f"{current.__module__}.{current.__qualname__}":
                    raise FieldValidationError(
                        f"{self._where}: {key} {named!r} is not allowed: a data config (YAML, JSON) sets field "
                        f"values only and cannot retarget a subtask (here "
                        f"{self._target.__module__}.{self._target.__qualname__}); retarget in a .py override "
                        f"file, which is trusted Python code: config.{'.'.join(self._path)}.retarget(...)",
                        configName=self._root or "",
                        fieldPath=".".join((*self._path, key)),
                        value=named,
                    )
            extra = sorted(map(str, set(value) - {"target", "ConfigClass", "config"}))
            if extra:
                raise FieldValidationError(
                    f"{self._where}: next to 'target', only 'ConfigClass' and 'config' may be given, not {extra}; "
                    "put field values under 'config'",
                    configName=self._root or "",
                    fieldPath=".".join((*self._path, extra[0])),
                )
            value = value.get("config") or {}
            if not isinstance(value, Mapping):
                raise FieldValidationError(
                    f"{self._where}.config = {value!r} is invalid: expected a mapping of "
                    f"{self._ConfigClass.__name__} fields",
                    configName=self._root or "",
                    fieldPath=".".join((*self._path, "config")),
                    value=value,
                )
        self._value._applyMapping(value, dataOnly=True)

    def __getattr__(self, name: str) -> Any:
        # Private names are never forwarded: copy and pickle probe them
        # before _value exists.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._value, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if self._frozen:
            raise _frozenError(f"{self._where}.{name}")
        setattr(self._value, name, value)

    def __dir__(self) -> list[str]:
        return sorted(set(object.__dir__(self)) | set(type(self._value).model_fields))

    def __deepcopy__(self, memo: dict[int, Any]) -> ConfigurableInstance:
        result = object.__new__(type(self))
        memo[id(self)] = result
        for key, item in self.__dict__.items():
            object.__setattr__(result, key, item if key != "_value" else copy.deepcopy(item, memo))
        return result

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ConfigurableInstance):
            return NotImplemented
        from .config import _valuesEqual  # lazy: config imports this module

        return _valuesEqual(self, other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        target = getattr(self._target, "__qualname__", repr(self._target))
        return f"ConfigurableInstance(target={target}, value={self._value!r})"


def _isTargetMapping(value: Mapping, ConfigClass: type[Config]) -> bool:
    keys = set(value)
    return "target" in keys and keys <= {"target", "ConfigClass", "config"} and "target" not in ConfigClass.model_fields


_SPECS: weakref.WeakKeyDictionary[type, dict[str, _ConfigurableSpec]] = weakref.WeakKeyDictionary()


def _configurableSpecs(cls: type[Config]) -> dict[str, _ConfigurableSpec]:
    specs = _SPECS.get(cls)
    if specs is None:
        specs = {
            name: item
            for name, info in cls.model_fields.items()
            for item in info.metadata
            if isinstance(item, _ConfigurableSpec)
        }
        _SPECS[cls] = specs
    return specs
