"""Mirror pydantic configs as ``lsst.pex.config`` classes.

The LSST pipeline (``pipetask``, pipeline YAML files) configures tasks with
``lsst.pex.config``. `to_pex_config` builds, for a pydantic `Config`, an
``lsst.pex.config.Config`` subclass with the same fields, defaults and
descriptions, so that our tasks can be retargeted into a pex_config pipeline
and built from its config::

    config.sub.retarget(MyTask, ConfigClass=to_pex_config(MyTask.ConfigClass))
    config.sub.maxIter = 10
    task = config.sub.apply(name="sub")   # a MyTask whose pydantic config has maxIter == 10

Generated classes live in this module under names that encode the model's
module and qualified name (``PexConfig__<module>__<qualname>``); the module
resolves such names on demand, so pex_config files saved by
``saveToStream`` and pickled pex_config objects load in a fresh process.
``lsst.pex.config`` is imported only when a function here is called.
"""

from __future__ import annotations

__all__ = ["to_pex_config", "to_pex_target"]

import collections.abc
import importlib
import re
import types
import typing
from typing import Any, Literal, Union

from .config import Config, _configurableSpecs, _isConfigType

_PEX_CONFIGS: dict[type, type] = {}
_PEX_TARGETS: dict[type, type] = {}
_SCALAR_TYPES = (bool, int, float, str)


def _importPexConfig() -> types.ModuleType:
    try:
        import lsst.pex.config as pexConfig
    except ImportError as err:
        raise ImportError(
            "the pex_config bridge needs lsst.pex.config: install it with `pip install lsst-pex-config` "
            "or set up pex_config in an LSST stack environment"
        ) from err
    return pexConfig


def _encode(text: str) -> str:
    # Injective and free of "__", so "__" can separate the encoded parts.
    return text.replace("_", "_u").replace(".", "_d")


def _decode(text: str) -> str:
    return re.sub(r"_(.)", lambda match: {"u": "_", "d": "."}.get(match.group(1), match.group(0)), text)


def _generatedName(kind: str, cls: type) -> str:
    return f"{kind}__{_encode(cls.__module__)}__{_encode(cls.__qualname__)}"


def __getattr__(name: str) -> type:
    # Resolves generated class names written by pex_config's saveToStream
    # or stored by pickle, importing the model's module when needed.
    kind, sep, rest = name.partition("__")
    if sep and kind in ("PexConfig", "PexTarget") and rest.count("__") == 1:
        module, qualname = (_decode(part) for part in rest.split("__"))
        obj: Any = importlib.import_module(module)
        for attr in qualname.split("."):
            obj = getattr(obj, attr)
        return to_pex_config(obj) if kind == "PexConfig" else to_pex_target(obj)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def to_pex_config(model: type[Config]) -> type:
    """Build (once per model class) the ``lsst.pex.config`` mirror of a config.

    Parameters
    ----------
    model : `type` [`Config`]
        Pydantic config class.

    Returns
    -------
    pexConfigClass : `type` [`lsst.pex.config.Config`]
        Subclass with one pex_config field per model field:

        - `int`, `float`, `bool`, `str` (optionally ``| None``) →
          ``Field(doc=description, dtype=..., default=..., optional=...)``;
        - ``Literal[...]`` → ``ChoiceField`` with ``allowed={value: "value"}``;
        - ``list[x]`` and ``tuple[x, ...]`` → ``ListField``;
        - ``dict[str, x]`` → ``DictField``;
        - a nested `Config` → ``ConfigField`` of its mirror;
        - a `ConfigurableField` → ``ConfigurableField`` whose target is
          ``to_pex_target(default target)``.

        Its ``setDefaults`` applies the model's defaults (including those
        set by the model's ``setDefaults``), and its ``validate`` converts
        to the model and runs the model's validation, so pydantic
        constraints (``ge=1``...) are enforced. The class attribute
        ``_madnessModel`` is ``model``.

    Raises
    ------
    ImportError
        Raised if ``lsst.pex.config`` is not installed.
    TypeError
        Raised if ``model`` is not a `Config` subclass or a field type has
        no pex_config equivalent.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.framework import Config, Field
    >>> class FitConfig(Config):
    ...     maxIter: int = Field(300, description="Maximum number of iterations.", ge=1)
    >>> PexFitConfig = to_pex_config(FitConfig)
    >>> pexConfig = PexFitConfig()
    >>> pexConfig.maxIter = 12
    >>> FitConfig.fromPexConfig(pexConfig).maxIter
    12
    """
    if not (isinstance(model, type) and issubclass(model, Config)):
        raise TypeError(f"to_pex_config needs a Config subclass, not {model!r}")
    cached = _PEX_CONFIGS.get(model)
    if cached is not None:
        return cached
    pexConfig = _importPexConfig()
    name = _generatedName("PexConfig", model)
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "__qualname__": name,
        "__doc__": f"lsst.pex.config mirror of {model.__module__}.{model.__qualname__}.\n\n{model.__doc__ or ''}",
        "_madnessModel": model,
        "setDefaults": _pexSetDefaults,
        "validate": _pexValidate,
    }
    for fieldName, info in model.model_fields.items():
        namespace[fieldName] = _pexField(pexConfig, model, fieldName, info)
    pexClass = type(pexConfig.Config)(name, (pexConfig.Config,), namespace)
    _PEX_CONFIGS[model] = pexClass
    return pexClass


def to_pex_target(taskClass: type) -> type:
    """Build (once per task class) a pex_config-compatible stand-in for a task.

    Parameters
    ----------
    taskClass : `type`
        A `Task` subclass whose ``ConfigClass`` is a pydantic `Config`.

    Returns
    -------
    target : `type`
        Class with ``ConfigClass = to_pex_config(taskClass.ConfigClass)``
        (and ``_DefaultName``); calling it with ``config=<pex config>``
        returns a ``taskClass`` instance built from the converted config.
        Use it as ``config.sub.retarget(to_pex_target(MyTask))``.

    Raises
    ------
    ImportError
        Raised if ``lsst.pex.config`` is not installed.
    TypeError
        Raised if ``taskClass`` has no pydantic ``ConfigClass``.
    """
    cached = _PEX_TARGETS.get(taskClass)
    if cached is not None:
        return cached
    ConfigClass = getattr(taskClass, "ConfigClass", None)
    if not _isConfigType(ConfigClass):
        raise TypeError(f"to_pex_target needs a task whose ConfigClass is a framework Config, not {taskClass!r}")
    name = _generatedName("PexTarget", taskClass)
    namespace: dict[str, Any] = {
        "__module__": __name__,
        "__qualname__": name,
        "__doc__": f"pex_config stand-in that builds {taskClass.__module__}.{taskClass.__qualname__}.",
        "ConfigClass": to_pex_config(ConfigClass),
        "_madnessTask": taskClass,
        "__new__": _buildTask,
    }
    if hasattr(taskClass, "_DefaultName"):
        namespace["_DefaultName"] = taskClass._DefaultName
    adapter = type(name, (), namespace)
    _PEX_TARGETS[taskClass] = adapter
    return adapter


def _buildTask(cls: Any, *args: Any, **kwargs: Any) -> Any:
    # Returning a task (not an adapter instance) means __init__ is skipped.
    return cls._madnessTask(*args, **kwargs)


def _pexSetDefaults(self: Any) -> None:
    pexConfig = _importPexConfig()
    pexConfig.Config.setDefaults(self)
    _copyModelToPex(type(self)._madnessModel(), self)


def _pexValidate(self: Any) -> None:
    pexConfig = _importPexConfig()
    pexConfig.Config.validate(self)
    type(self)._madnessModel.fromPexConfig(self).validate()


def _pexValue(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return [_pexValue(v) for v in value]
    if isinstance(value, dict):
        return {k: _pexValue(v) for k, v in value.items()}
    return value


def _copyModelToPex(model: Config, pexInstance: Any) -> None:
    specs = _configurableSpecs(type(model))
    for name, value in model.items():
        if name in specs:
            proxy = getattr(pexInstance, name)
            spec = specs[name]
            if value.target is not spec.target or value.ConfigClass is not spec.ConfigClass:
                proxy.retarget(to_pex_target(value.target), ConfigClass=to_pex_config(value.ConfigClass))
            _copyModelToPex(value.value, proxy.value)
        elif isinstance(value, Config):
            _copyModelToPex(value, getattr(pexInstance, name))
        else:
            setattr(pexInstance, name, _pexValue(value))


def _unwrapOptional(annotation: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _unwrapOptional(typing.get_args(annotation)[0])
    if origin is Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        optional = len(args) < len(typing.get_args(annotation))
        if len(args) == 1:
            inner, innerOptional = _unwrapOptional(args[0])
            return inner, optional or innerOptional
    return annotation, False


def _scalarType(annotation: Any) -> type | None:
    annotation, _ = _unwrapOptional(annotation)
    return annotation if annotation in _SCALAR_TYPES else None


def _pexField(pexConfig: types.ModuleType, model: type[Config], name: str, info: Any) -> Any:
    doc = info.description
    spec = _configurableSpecs(model).get(name)
    if spec is not None:
        return pexConfig.ConfigurableField(
            doc=doc, target=to_pex_target(spec.target), ConfigClass=to_pex_config(spec.ConfigClass)
        )
    annotation, optional = _unwrapOptional(info.annotation)
    if _isConfigType(annotation):
        return pexConfig.ConfigField(doc=doc, dtype=to_pex_config(annotation))
    default = info.get_default(call_default_factory=True)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)

    def unsupported() -> TypeError:
        return TypeError(
            f"to_pex_config: {model.__qualname__}.{name} has type {info.annotation!r}, "
            "which has no lsst.pex.config equivalent"
        )

    if annotation in _SCALAR_TYPES:
        if annotation is float and isinstance(default, int) and not isinstance(default, bool):
            default = float(default)
        return pexConfig.Field(doc=doc, dtype=annotation, default=default, optional=optional)
    if origin is Literal:
        dtypes = {type(arg) for arg in args}
        if len(dtypes) != 1 or next(iter(dtypes)) not in _SCALAR_TYPES:
            raise unsupported()
        return pexConfig.ChoiceField(
            doc=doc,
            dtype=dtypes.pop(),
            allowed={arg: str(arg) for arg in args},
            default=default,
            optional=optional,
        )
    if origin in (list, tuple, collections.abc.Sequence):
        length = None
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            if not args or len(set(args)) != 1:
                raise unsupported()
            length = len(args)
        itemType = _scalarType(args[0]) if args else None
        if itemType is None:
            raise unsupported()
        return pexConfig.ListField(
            doc=doc,
            dtype=itemType,
            default=None if default is None else _pexValue(default),
            optional=optional,
            length=length,
        )
    if origin in (dict, collections.abc.Mapping):
        keyType = _scalarType(args[0]) if args else None
        itemType = _scalarType(args[1]) if args else None
        if keyType is None or itemType is None:
            raise unsupported()
        return pexConfig.DictField(
            doc=doc,
            keytype=keyType,
            itemtype=itemType,
            default=None if default is None else dict(default),
            optional=optional,
        )
    raise unsupported()
