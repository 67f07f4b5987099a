"""`TaskMetadata`: hierarchical, dict-like store for task metadata.

Mirrors ``lsst.pipe.base.TaskMetadata``: scalars, arrays and nested metadata
are kept in three pydantic-validated slots so the object serializes
predictably (``model_dump_json``).
"""

from __future__ import annotations

__all__ = ["TaskMetadata"]

import itertools
import numbers
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictFloat, StrictInt, StrictStr

_PRIMITIVE_TYPES = (str, float, int, bool)


def _isListLike(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


def _splitKey(key: str) -> list[str]:
    try:
        return key.split(".")
    except AttributeError:
        raise KeyError(f"Invalid key {key!r}: only string keys are allowed") from None


class TaskMetadata(BaseModel):
    """Dict-like object for storing task metadata.

    Keys may be dotted (``md["a.b"]``): every component but the last names a
    nested `TaskMetadata`. Values are `str`, `float`, `int`, `bool`, lists
    of one of those types, or nested metadata.

    Notes
    -----
    ``md[key]`` returns the *last* element when the item holds a list (as
    ``lsst.daf.base.PropertySet`` does); use `getArray` for all of them.
    `add` appends, which is how `lsst.utils.timer.timeMethod` records one
    entry per call (lacking PropertySet's ``addLongLong``, this class gets
    ``add`` from it, and item assignment for ``__version__`` and
    ``nodeName``).

    Examples
    --------
    >>> md = TaskMetadata()
    >>> md.add("runStartCpuTime", 1.0)
    >>> md.add("runStartCpuTime", 2.5)
    >>> md["runStartCpuTime"]
    2.5
    >>> md.getArray("runStartCpuTime")
    [1.0, 2.5]
    >>> md["deblend.nIter"] = 12
    >>> md["deblend"]["nIter"]
    12
    >>> sorted(md.names())
    ['deblend', 'deblend.nIter', 'runStartCpuTime']
    >>> md.to_dict()
    {'runStartCpuTime': [1.0, 2.5], 'deblend': {'nIter': 12}}
    """

    # Pipelines produce NaN and inf; keep them representable in JSON.
    model_config = ConfigDict(ser_json_inf_nan="constants")

    scalars: dict[str, StrictFloat | StrictInt | StrictBool | StrictStr] = Field(
        default_factory=dict, description="Single values."
    )
    arrays: dict[str, list[StrictFloat] | list[StrictInt] | list[StrictBool] | list[StrictStr]] = Field(
        default_factory=dict, description="Lists of values of one type."
    )
    metadata: dict[str, TaskMetadata] = Field(default_factory=dict, description="Nested metadata.")

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskMetadata:
        """Create metadata from a possibly nested mapping.

        Parameters
        ----------
        d : `~collections.abc.Mapping`
            Mapping to convert; nested mappings become nested metadata.

        Returns
        -------
        metadata : `TaskMetadata`
            The new metadata.
        """
        metadata = cls()
        for key, value in d.items():
            metadata[key] = value
        return metadata

    def to_dict(self) -> dict[str, Any]:
        """Convert to plain nested dictionaries.

        Returns
        -------
        d : `dict`
            Scalars, lists and nested `dict` objects for nested metadata.
        """
        d: dict[str, Any] = {}
        d.update(self.scalars)
        d.update({k: list(v) for k, v in self.arrays.items()})
        for key, value in self.metadata.items():
            d[key] = value.to_dict()
        return d

    def add(self, name: str, value: Any) -> None:
        """Append a value, turning the item into a list if needed.

        Parameters
        ----------
        name : `str`
            Item name; may be dotted.
        value : `~typing.Any`
            Primitive value or list of primitive values.

        Raises
        ------
        ValueError
            Raised if the value is not primitive, if its type differs from
            the values already stored, or if ``name`` holds nested metadata.
        """
        keys = _splitKey(name)
        key0 = keys.pop(0)
        if keys:
            if key0 not in self.metadata:
                self[key0] = TaskMetadata()
            self.metadata[key0].add(".".join(keys), value)
            return
        slotType, value = self._validateValue(value)
        if slotType == "metadata":
            raise ValueError("add() can only be used for primitive types or sequences of those types.")
        values = value if slotType == "array" else [value]
        if key0 in self.metadata:
            raise ValueError(f"Can not add() to key {name!r} since that is a TaskMetadata")
        if key0 in self.scalars:
            self.arrays[key0] = [self.scalars.pop(key0)]  # type: ignore[assignment]  # one value: one type
        if key0 in self.arrays and self.arrays[key0] and values:
            current, new = type(self.arrays[key0][0]), type(values[0])
            if current is not new:
                raise ValueError(f"Type mismatch in add() -- currently {current} but adding {new}")
            self.arrays[key0].extend(values)
        elif key0 in self.arrays:
            self.arrays[key0].extend(values)
        else:
            self.arrays[key0] = list(values)

    def getScalar(self, key: str) -> str | int | float | bool:
        """Get an item; the last element if the item is a list.

        Parameters
        ----------
        key : `str`
            Item name; may be dotted.

        Returns
        -------
        value : `str`, `int`, `float` or `bool`
            The value.

        Raises
        ------
        KeyError
            Raised if there is no such item.
        """
        return self[key]

    def getArray(self, key: str) -> list[Any]:
        """Get an item as a list, even if it is a scalar.

        Parameters
        ----------
        key : `str`
            Item name; may be dotted.

        Returns
        -------
        values : `list`
            All values stored under ``key``.

        Raises
        ------
        KeyError
            Raised if there is no such item.
        """
        keys = _splitKey(key)
        key0 = keys.pop(0)
        if not keys:
            if key0 in self.arrays:
                return self.arrays[key0]
            if key0 in self.scalars:
                return [self.scalars[key0]]
            if key0 in self.metadata:
                return [self.metadata[key0]]
            raise KeyError(f"'{key}' not found")
        try:
            return self.metadata[key0].getArray(".".join(keys))
        except KeyError:
            raise KeyError(f"'{key}' not found") from None

    def names(self) -> set[str]:
        """Return all keys, dotted ones for nested items included.

        Returns
        -------
        names : `set` [`str`]
            Top-level keys and the full names of all nested items.
        """
        names = set()
        for key, value in self.items():
            names.add(key)
            if isinstance(value, TaskMetadata):
                names.update(f"{key}.{item}" for item in value.names())
        return names

    def paramNames(self, topLevelOnly: bool) -> set[str]:
        """Return the names of the items that are not nested metadata.

        Parameters
        ----------
        topLevelOnly : `bool`
            If `True` only top-level items are returned; otherwise the
            dotted names of nested items are included.

        Returns
        -------
        names : `set` [`str`]
            Item names.
        """
        names: set[str] = set()
        for key, value in self.items():
            if isinstance(value, TaskMetadata):
                if not topLevelOnly:
                    names.update(f"{key}.{item}" for item in value.paramNames(topLevelOnly=False))
            else:
                names.add(key)
        return names

    def keys(self) -> tuple[str, ...]:
        """Return the top-level keys.

        Returns
        -------
        keys : `tuple` [`str`, ...]
            The keys.
        """
        return tuple(self)

    def items(self) -> Iterator[tuple[str, Any]]:
        """Iterate over the top-level items.

        Yields
        ------
        item : `tuple` [`str`, `~typing.Any`]
            Key and value (lists are yielded whole).
        """
        yield from itertools.chain(self.scalars.items(), self.arrays.items(), self.metadata.items())

    def get(self, key: str, default: Any = None) -> Any:
        """Get an item as ``md[key]`` does, or ``default`` if it is missing.

        Parameters
        ----------
        key : `str`
            Item name; may be dotted.
        default : `~typing.Any`, optional
            Returned when the item does not exist.

        Returns
        -------
        value : `~typing.Any`
            The value (last element of a list) or ``default``.
        """
        try:
            return self[key]
        except KeyError:
            return default

    def get_dict(self, key: str) -> dict[str, Any]:
        """Return nested metadata as plain dictionaries.

        Parameters
        ----------
        key : `str`
            Key of nested metadata.

        Returns
        -------
        value : `dict`
            Deep copy as plain dictionaries; empty if ``key`` is absent.
        """
        value = self.get(key)
        return value.to_dict() if isinstance(value, TaskMetadata) else {}

    def set_dict(self, key: str, value: Mapping[str, Any]) -> None:
        """Store a nested mapping as nested metadata.

        Parameters
        ----------
        key : `str`
            Key to store it under.
        value : `~collections.abc.Mapping`
            Possibly nested mapping of primitive values.
        """
        self[key] = value

    def __len__(self) -> int:
        return len(self.scalars) + len(self.arrays) + len(self.metadata)

    # pydantic's BaseModel iterates over fields; a mapping iterates keys.
    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        return itertools.chain(iter(self.scalars), iter(self.arrays), iter(self.metadata))

    def __getitem__(self, key: str) -> Any:
        keys = _splitKey(key)
        key0 = keys.pop(0)
        if not keys:
            if key0 in self.scalars:
                return self.scalars[key0]
            if key0 in self.metadata:
                return self.metadata[key0]
            if key0 in self.arrays:
                return self.arrays[key0][-1]
            raise KeyError(f"'{key}' not found")
        try:
            return self.metadata[key0][".".join(keys)]
        except KeyError:
            raise KeyError(f"'{key}' not found") from None

    def __setitem__(self, key: str, item: Any) -> None:
        keys = _splitKey(key)
        key0 = keys.pop(0)
        if not keys:
            slotType, item = self._validateValue(item)
            slots: dict[str, dict[str, Any]] = {
                "scalar": self.scalars,
                "array": self.arrays,
                "metadata": self.metadata,
            }
            slots.pop(slotType)[key0] = item
            for other in slots.values():
                other.pop(key0, None)
            return
        if key0 not in self.metadata:
            self.metadata[key0] = TaskMetadata()
        self.metadata[key0][".".join(keys)] = item
        self.scalars.pop(key0, None)
        self.arrays.pop(key0, None)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, str):
            return False
        keys = _splitKey(key)
        key0 = keys.pop(0)
        if not keys:
            return key0 in self.scalars or key0 in self.arrays or key0 in self.metadata
        return key0 in self.metadata and ".".join(keys) in self.metadata[key0]

    def __delitem__(self, key: str) -> None:
        keys = _splitKey(key)
        key0 = keys.pop(0)
        if not keys:
            for slot in (self.scalars, self.arrays, self.metadata):
                if key0 in slot:
                    del slot[key0]
                    return
            raise KeyError(f"'{key}' not found")
        try:
            del self.metadata[key0][".".join(keys)]
        except KeyError:
            raise KeyError(f"'{key}' not found") from None

    def _validateValue(self, value: Any) -> tuple[str, Any]:
        if type(value) in _PRIMITIVE_TYPES:
            return "scalar", value
        if isinstance(value, TaskMetadata):
            return "metadata", value
        if isinstance(value, Mapping):
            return "metadata", self.from_dict(value)
        if _isListLike(value):
            value = list(value)
            if not value:
                return "array", value
            type0 = type(value[0])
            if any(type(v) is not type0 for v in value):
                raise ValueError(
                    "Type mismatch in supplied list. TaskMetadata requires all elements to have the same type."
                )
            if type0 not in _PRIMITIVE_TYPES:
                # numpy scalars are the common case here.
                if isinstance(value[0], numbers.Integral):
                    value = [int(v) for v in value]
                elif isinstance(value[0], numbers.Real):
                    value = [float(v) for v in value]
                else:
                    raise ValueError(
                        f"Supplied list has element of type {type0!r}. "
                        "TaskMetadata can only accept primitive types in lists."
                    )
            return "array", value
        if isinstance(value, numbers.Integral):
            return "scalar", int(value)
        if isinstance(value, numbers.Real):
            return "scalar", float(value)
        raise ValueError(f"TaskMetadata does not support values of type {value!r}.")


TaskMetadata.model_rebuild()
