"""Field declaration of `~lsst.meas.extensions.madness.framework.config.Config` and its value containers.

`Field` declares a config field (pydantic's, with the pex_config ``doc=``
spelling); the frozen containers hold list and dict values of a frozen
config, and the per-field validators check values changed in place.
"""

from __future__ import annotations

__all__ = ["Field"]

from typing import TYPE_CHECKING, Annotated, Any

import pydantic
from pydantic import TypeAdapter
from pydantic_core import PydanticUndefined

from .configErrors import _frozenError

if TYPE_CHECKING:
    from .config import Config


def Field(
    default: Any = PydanticUndefined,
    *,
    doc: str | None = None,
    description: str | None = None,
    **kwargs: Any,
) -> Any:
    """Declare a config field: `pydantic.Field` plus the pex-style ``doc=``.

    Parameters
    ----------
    default : `~typing.Any`, optional
        Default value. Every config field needs a default (or a
        ``default_factory``), as every pex_config field has one.
    doc : `str`, optional
        Description, pex_config spelling.
    description : `str`, optional
        Description, pydantic spelling. One of ``doc`` and ``description``
        is required (enforced when the config class is defined).
    **kwargs : `~typing.Any`
        Anything `pydantic.Field` accepts: ``ge``, ``le``, ``gt``,
        ``min_length``, ``default_factory``...

    Returns
    -------
    field : `pydantic.fields.FieldInfo`
        The field declaration.

    Raises
    ------
    TypeError
        Raised if ``doc`` and ``description`` are both given and differ.
    """
    if doc is not None and description is not None and doc != description:
        raise TypeError("give either doc= or description=, not both")
    return pydantic.Field(default, description=description if description is not None else doc, **kwargs)



# ---------------------------------------------------------------------------
# Frozen containers


class _FrozenList(list):
    """List that refuses modification once its config is frozen."""

    def __init__(self, items: Any = (), where: str = "a frozen config list") -> None:
        super().__init__(items)
        self._where = where

    def _blocked(self, *args: Any, **kwargs: Any) -> Any:
        raise _frozenError(self._where)

    append = extend = insert = remove = pop = clear = sort = reverse = _blocked
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _blocked

    def __reduce_ex__(self, protocol: Any) -> Any:
        # The default list protocol rebuilds by appending, which is blocked.
        return (type(self), (list(self), self._where))


class _FrozenDict(dict):
    """Dict that refuses modification once its config is frozen."""

    def __init__(self, items: Any = (), where: str = "a frozen config dict") -> None:
        super().__init__(items)
        self._where = where

    def _blocked(self, *args: Any, **kwargs: Any) -> Any:
        raise _frozenError(self._where)

    clear = pop = popitem = setdefault = update = _blocked
    __setitem__ = __delitem__ = __ior__ = _blocked

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (type(self), (dict(self), self._where))


def _freezeValue(value: Any, where: str) -> Any:
    if isinstance(value, list):
        return _FrozenList((_freezeValue(v, f"{where}[{i}]") for i, v in enumerate(value)), where)
    if isinstance(value, dict):
        return _FrozenDict(((k, _freezeValue(v, f"{where}[{k!r}]")) for k, v in value.items()), where)
    if isinstance(value, set):
        return frozenset(value)
    return value



_ADAPTERS: dict[tuple[type, str], TypeAdapter] = {}


def _fieldAdapter(cls: type[Config], name: str) -> TypeAdapter:
    key = (cls, name)
    adapter = _ADAPTERS.get(key)
    if adapter is None:
        info = cls.model_fields[name]
        annotation: Any = Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
        adapter = TypeAdapter(annotation)
        _ADAPTERS[key] = adapter
    return adapter
