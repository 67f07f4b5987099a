"""Pydantic task configuration that behaves like ``lsst.pex.config``.

A `Config` is a `pydantic.BaseModel` with pex_config semantics on top:
``setDefaults``/``validate``/``freeze`` hooks, subtasks declared with
`ConfigurableField` and retargeted with ``config.<sub>.retarget(...)``,
override files in pex_config syntax (``config.maxIter = 300``), which are
trusted Python code, data configs (YAML or JSON mappings of field values),
which run no code, and conversion from ``lsst.pex.config`` objects (see
`~lsst.meas.extensions.madness.framework.pexConfigBridge`).

`Field` and the containers of frozen values are in
`~lsst.meas.extensions.madness.framework.configFields`; the file methods
(override files and data configs) in
`~lsst.meas.extensions.madness.framework.configFiles`. Every name of
``__all__`` imports from here.
"""

from __future__ import annotations

__all__ = [
    "DATA_CONFIG_SUFFIXES",
    "Config",
    "ConfigLoadError",
    "ConfigurableField",
    "ConfigurableInstance",
    "Field",
    "FieldValidationError",
    "UnknownFieldError",
]

import copy
import math
import numbers
from collections.abc import Callable, Mapping
from typing import Any, TypeGuard, TypeVar

import pydantic
from pydantic import ConfigDict, PrivateAttr, ValidationError

from .configErrors import (
    ConfigLoadError,
    FieldValidationError,
    UnknownFieldError,
    _convertValidationError,
    _frozenError,
)
from .configFields import Field, _fieldAdapter, _freezeValue, _FrozenDict, _FrozenList
from .configFiles import _ConfigFiles
from .configurable import ConfigurableField, ConfigurableInstance, _configurableSpecs
from .overrides import DATA_CONFIG_SUFFIXES

_ConfigT = TypeVar("_ConfigT", bound="Config")


def _plainValue(value: Any) -> Any:
    """Deep copy of a field value as plain containers and dicts of sub-configs."""
    if isinstance(value, Config):
        return value.toDict()
    if isinstance(value, ConfigurableInstance):
        return value.value.toDict()
    if isinstance(value, list):
        return [_plainValue(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plainValue(v) for v in value)
    if isinstance(value, dict):
        return {k: _plainValue(v) for k, v in value.items()}
    if isinstance(value, (set, frozenset)):
        return set(value)
    return copy.deepcopy(value)



def _isConfigType(annotation: Any) -> TypeGuard[type[Config]]:
    return isinstance(annotation, type) and issubclass(annotation, Config)


# ---------------------------------------------------------------------------
# Comparison


def _valuesEqual(a: Any, b: Any) -> bool:
    return _compareValues("", a, b, rtol=0.0, atol=0.0, output=None, shortcut=True)


def _compareValues(
    name: str,
    a: Any,
    b: Any,
    *,
    rtol: float,
    atol: float,
    output: Callable[[str], Any] | None,
    shortcut: bool,
) -> bool:
    def report(message: str) -> bool:
        if output is not None:
            output(message)
        return False

    if isinstance(a, Config) and isinstance(b, Config):
        if type(a) is not type(b):
            return report(f"Config types differ for {name or 'config'}: {type(a).__name__} != {type(b).__name__}")
        equal = True
        for field in type(a).model_fields:
            sub = f"{name}.{field}" if name else field
            if not _compareValues(
                sub, a.__dict__[field], b.__dict__[field], rtol=rtol, atol=atol, output=output, shortcut=shortcut
            ):
                equal = False
                if shortcut:
                    return False
        return equal
    if isinstance(a, ConfigurableInstance) and isinstance(b, ConfigurableInstance):
        if a.target is not b.target:
            return report(f"Inequality in target for {name}: {a.target!r} != {b.target!r}")
        if a.ConfigClass is not b.ConfigClass:
            return report(f"Inequality in ConfigClass for {name}: {a.ConfigClass!r} != {b.ConfigClass!r}")
        return _compareValues(name, a.value, b.value, rtol=rtol, atol=atol, output=output, shortcut=shortcut)
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        if a == b or math.isclose(a, b, rel_tol=rtol, abs_tol=atol):
            return True
        return report(f"Inequality in {name}: {a!r} != {b!r}")
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if isinstance(a, tuple) != isinstance(b, tuple) or len(a) != len(b):
            return report(f"Inequality in {name}: {a!r} != {b!r}")
        return all(
            _compareValues(f"{name}[{i}]", x, y, rtol=rtol, atol=atol, output=output, shortcut=shortcut)
            for i, (x, y) in enumerate(zip(a, b))
        )
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return report(f"Inequality in {name}: keys {sorted(map(str, a))} != {sorted(map(str, b))}")
        return all(
            _compareValues(f"{name}[{k!r}]", a[k], b[k], rtol=rtol, atol=atol, output=output, shortcut=shortcut)
            for k in a
        )
    if (a == b and type(a) is type(b)) or (isinstance(a, (set, frozenset)) and a == b):
        return True
    if isinstance(a, numbers.Number) and isinstance(b, numbers.Number) and not isinstance(a, bool) and a == b:
        return True
    return report(f"Inequality in {name}: {a!r} != {b!r}")


# ---------------------------------------------------------------------------
# Config (its file methods, save, load and YAML, come from the mixin in configFiles, to keep each module short)


class Config(_ConfigFiles, pydantic.BaseModel):
    """Base class for task configurations.

    Notes
    -----
    Subclasses declare fields with `Field` (every field needs a description
    and a default, checked when the class is defined) and subtasks with
    `ConfigurableField`. Behaviour follows ``lsst.pex.config.Config``:

    - construction runs `setDefaults` (override it to change defaults of a
      subclass or of sub-configs) and then applies the keyword arguments;
    - assignments are validated immediately; a bad value raises
      `FieldValidationError`, an unknown name `UnknownFieldError`;
    - `validate` re-checks everything (including lists changed in place) and
      is the hook for cross-field checks;
    - `freeze` makes the config and every sub-config read-only;
    - `save`/`load` write and read override files in pex_config syntax
      (``.py``, trusted Python code) or data configs (``.yaml``, ``.yml``,
      ``.json``: field values only, no code run, no retargets).

    Examples
    --------
    >>> class FitConfig(Config):
    ...     maxIter: int = Field(300, description="Maximum number of iterations.", ge=1)
    ...     prior: str = Field("flow", description="Latent-space prior.")
    ...     def setDefaults(self):
    ...         super().setDefaults()
    ...         self.maxIter = 200
    >>> config = FitConfig(prior="none")
    >>> config.maxIter, config.prior
    (200, 'none')
    >>> try:
    ...     config.maxIter = -3
    ... except FieldValidationError as err:
    ...     print(err)
    FitConfig.maxIter = -3 is invalid: Input should be greater than or equal to 1
    >>> print(config.saveToString().splitlines()[-2:])
    ['config.maxIter = 200', "config.prior = 'none'"]
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)

    _frozen: bool = PrivateAttr(default=False)
    _root: str | None = PrivateAttr(default=None)
    _path: tuple[str, ...] = PrivateAttr(default=())

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        for name, info in cls.model_fields.items():
            if not (isinstance(info.description, str) and info.description.strip()):
                raise TypeError(
                    f"{cls.__qualname__}.{name} has no description: every config field must be documented, "
                    "e.g. Field(..., description='...')"
                )
            if info.is_required():
                raise TypeError(
                    f"{cls.__qualname__}.{name} has no default: every config field needs one, so that "
                    f"{cls.__qualname__}() can be built"
                )

    # -- construction -------------------------------------------------------

    def __init__(self, **data: Any) -> None:
        cls = type(self)
        unknown = [name for name in data if name not in cls.model_fields]
        if unknown:
            raise UnknownFieldError(
                f"{cls.__name__} has no field {unknown[0]!r}", configName=cls.__name__, fieldPath=unknown[0]
            )
        specs = _configurableSpecs(cls)
        # Subtask values and dicts for sub-configs are applied on top of the
        # defaults (after setDefaults), as pex_config does.
        deferred = {
            name: data.pop(name)
            for name in list(data)
            if name in specs or (isinstance(data[name], Mapping) and _isConfigType(cls.model_fields[name].annotation))
        }
        try:
            super().__init__(**data)
        except ValidationError as err:
            raise _convertValidationError(err, cls.__name__, ()) from None
        if deferred:
            self._applyMapping(deferred)

    def model_post_init(self, context: Any) -> None:
        """Run `setDefaults`, keeping values given to the constructor.

        Parameters
        ----------
        context : `~typing.Any`
            Pydantic validation context (unused).
        """
        self._attach(type(self).__name__, ())
        if type(self).setDefaults is not Config.setDefaults:
            explicit = {name: copy.deepcopy(self.__dict__[name]) for name in self.model_fields_set}
            self.setDefaults()
            self.__dict__.update(explicit)
            self._attach(type(self).__name__, ())

    def setDefaults(self) -> None:
        """Subclass hook to change default values; called on construction.

        Override it (calling ``super().setDefaults()``) to set defaults that
        differ from the field declarations, e.g. sub-config values or a
        retargeted subtask.
        """

    @classmethod
    def fromDict(cls: type[_ConfigT], mapping: Mapping[str, Any]) -> _ConfigT:
        """Build a config from a nested mapping (as written by `toYaml`).

        Parameters
        ----------
        mapping : `~collections.abc.Mapping`
            Field values; sub-configs as nested mappings, subtasks either as
            their sub-config mapping or as ``{"target": ..., "config": {...}}``
            (target a class or a dotted path).

        Returns
        -------
        config : `Config`
            Defaults, with ``mapping`` applied on top.

        Raises
        ------
        FieldValidationError
            Raised for invalid values; `UnknownFieldError` for unknown names.
        """
        config = cls()
        config._applyMapping(mapping)
        return config

    @classmethod
    def fromPexConfig(cls: type[_ConfigT], pexConfig: Any) -> _ConfigT:
        """Convert an ``lsst.pex.config.Config`` with the same fields.

        Parameters
        ----------
        pexConfig : `lsst.pex.config.Config`
            Typically an instance of ``to_pex_config(cls)``. Values come
            from ``pexConfig.toDict()``; subtask targets from its
            ``ConfigurableField`` proxies.

        Returns
        -------
        config : `Config`
            The equivalent pydantic config.

        Raises
        ------
        TypeError
            Raised if a subtask's pex config class was not made by
            ``to_pex_config``.
        FieldValidationError
            Raised if a value is invalid for this config.
        """
        return cls.fromDict(_mappingFromPex(cls, pexConfig))

    def update(self, **kwargs: Any) -> None:
        """Set several fields; nested mappings update sub-configs in place.

        Parameters
        ----------
        **kwargs : `~typing.Any`
            Field names and values.
        """
        self._applyMapping(kwargs)

    def _applyMapping(self, mapping: Mapping[str, Any], dataOnly: bool = False) -> None:
        """Set fields from a nested mapping.

        ``dataOnly`` is for data configs: subtask entries then set field
        values only, and a ``target`` naming another class is refused
        (`ConfigurableInstance._applyData`), so the file chooses no code.
        """
        cls = type(self)
        specs = _configurableSpecs(cls)
        for name, value in mapping.items():
            if name not in cls.model_fields:
                raise self._unknownField(name)
            current: Any = self.__dict__.get(name)
            if name in specs:
                if self._frozen:
                    raise _frozenError(self._where(name))
                if dataOnly:
                    current._applyData(value)
                else:
                    current._assign(value)
            elif isinstance(value, Mapping) and isinstance(current, Config):
                current._applyMapping(value, dataOnly)
            else:
                setattr(self, name, value)

    # -- attribute access ---------------------------------------------------

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            super().__setattr__(name, value)
            return
        cls = type(self)
        if name not in cls.model_fields:
            raise self._unknownField(name)
        if self._frozen:
            raise _frozenError(self._where(name))
        if name in _configurableSpecs(cls):
            self.__dict__[name]._assign(value)
            return
        try:
            super().__setattr__(name, value)
        except ValidationError as err:
            raise _convertValidationError(err, self._rootName, self._path) from None
        new = self.__dict__[name]
        if isinstance(new, Config):
            new._attach(self._rootName, (*self._path, name))

    @property
    def _rootName(self) -> str:
        return self._root or type(self).__name__

    def _where(self, name: str | None = None) -> str:
        return ".".join((self._rootName, *self._path, *((name,) if name else ())))

    def _unknownField(self, name: str) -> UnknownFieldError:
        where = self._where()
        return UnknownFieldError(
            f"{where} has no field {name!r} ({type(self).__name__} fields: {', '.join(type(self).model_fields)})",
            configName=self._rootName,
            fieldPath=".".join((*self._path, name)),
        )

    def _attach(self, root: str, path: tuple[str, ...]) -> None:
        """Record where this config sits, so errors name the full field path."""
        self._root = root
        self._path = path
        for name, value in self.__dict__.items():
            if isinstance(value, (Config, ConfigurableInstance)):
                value._attach(root, (*path, name))

    def keys(self) -> list[str]:
        """Return the field names.

        Returns
        -------
        names : `list` [`str`]
            Field names in declaration order.
        """
        return list(type(self).model_fields)

    def values(self) -> list[Any]:
        """Return the field values (subtasks as `ConfigurableInstance`).

        Returns
        -------
        values : `list`
            Field values in declaration order.
        """
        return [self.__dict__[name] for name in type(self).model_fields]

    def items(self) -> list[tuple[str, Any]]:
        """Return ``(name, value)`` pairs.

        Returns
        -------
        items : `list` [`tuple` [`str`, `~typing.Any`]]
            Field names and values in declaration order.
        """
        return [(name, self.__dict__[name]) for name in type(self).model_fields]

    def names(self) -> set[str]:
        """Return the dotted names of all fields, sub-config fields included.

        Returns
        -------
        names : `set` [`str`]
            E.g. ``{"maxIter", "deblend", "deblend.minIter"}``.
        """
        names = set()
        for name, value in self.items():
            names.add(name)
            sub = value.value if isinstance(value, ConfigurableInstance) else value
            if isinstance(sub, Config):
                names.update(f"{name}.{item}" for item in sub.names())
        return names

    # -- validation, freezing, copying ---------------------------------------

    # pex_config's instance validate(), not pydantic's deprecated BaseModel.validate classmethod.
    def validate(self) -> None:  # type: ignore[override]
        """Check every field again, then the sub-configs.

        Raises
        ------
        FieldValidationError
            Raised for the first invalid field.

        Notes
        -----
        Assignments are validated when made, but containers can be changed
        in place (``config.bands.append(...)``), which this catches.
        Override it for cross-field checks (call ``super().validate()``).
        """
        cls = type(self)
        specs = _configurableSpecs(cls)
        for name in cls.model_fields:
            value = self.__dict__[name]
            if name in specs:
                value.value.validate()
            elif isinstance(value, Config):
                value.validate()
            else:
                try:
                    _fieldAdapter(cls, name).validate_python(value)
                except ValidationError as err:
                    raise _convertValidationError(err, self._rootName, (*self._path, name)) from None

    def freeze(self) -> None:
        """Make this config and all its sub-configs read-only.

        Afterwards assignments, retargets and in-place changes of list or
        dict values raise `FieldValidationError` (message says "frozen").
        """
        self._frozen = True
        for name, value in list(self.__dict__.items()):
            if isinstance(value, Config):
                value.freeze()
            elif isinstance(value, ConfigurableInstance):
                value._freeze()
            else:
                self.__dict__[name] = _freezeValue(value, self._where(name))

    def _thaw(self) -> None:
        self._frozen = False
        for name, value in list(self.__dict__.items()):
            if isinstance(value, (Config, ConfigurableInstance)):
                value._thaw()
            elif isinstance(value, (_FrozenList, _FrozenDict)):
                self.__dict__[name] = _plainValue(value)

    @property
    def frozen(self) -> bool:
        """Whether `freeze` has been called (`bool`)."""
        return self._frozen

    def copy(self: _ConfigT) -> _ConfigT:  # type: ignore[override]
        """Return a deep copy that is not frozen.

        Returns
        -------
        config : `Config`
            The copy, a new top-level config.
        """
        result = copy.deepcopy(self)
        result._thaw()
        result._attach(type(result).__name__, ())
        return result

    def toDict(self) -> dict[str, Any]:
        """Return the values as plain nested dictionaries.

        Returns
        -------
        values : `dict` [`str`, `~typing.Any`]
            Field values; sub-configs and subtasks as nested dicts of their
            fields (the subtask target is not included; see `toYaml`).
        """
        return {name: _plainValue(value) for name, value in self.items()}

    def compare(
        self,
        other: Config,
        shortcut: bool = True,
        rtol: float = 1e-8,
        atol: float = 1e-8,
        output: Callable[[str], Any] | None = None,
    ) -> bool:
        """Compare two configs field by field.

        Parameters
        ----------
        other : `Config`
            Config to compare with.
        shortcut : `bool`, optional
            Stop at the first difference.
        rtol, atol : `float`, optional
            Relative and absolute tolerance for float fields.
        output : `~collections.abc.Callable`, optional
            Called with a message for each difference.

        Returns
        -------
        equal : `bool`
            `True` if types, targets and values agree.
        """
        return _compareValues("", self, other, rtol=rtol, atol=atol, output=output, shortcut=shortcut)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Config):
            return NotImplemented
        return _valuesEqual(self, other)

    __hash__ = None  # type: ignore[assignment]


def _mappingFromPex(cls: type[Config], pexConfig: Any) -> dict[str, Any]:
    data = dict(pexConfig.toDict())
    specs = _configurableSpecs(cls)
    for name in list(data):
        if name not in cls.model_fields:
            continue
        if name in specs:
            proxy = getattr(pexConfig, name)
            # Adapters made by to_pex_target remember the task they build.
            target = getattr(proxy.target, "_madnessTask", proxy.target)
            model = getattr(proxy.ConfigClass, "_madnessModel", None)
            if model is None:
                raise TypeError(
                    f"{cls.__name__}.{name}: the pex_config class {proxy.ConfigClass.__name__} was not made by "
                    "to_pex_config, so it cannot be converted"
                )
            data[name] = {"target": target, "ConfigClass": model, "config": _mappingFromPex(model, proxy.value)}
        elif _isConfigType(annotation := cls.model_fields[name].annotation):
            data[name] = _mappingFromPex(annotation, getattr(pexConfig, name))
    return data
