"""Source catalogues named as in ``lsst.afw.table``: Schema, SourceCatalog, SourceRecord.

Records hold their values in a small dict and their footprint as an object; column access
(``catalog["deblend_nChild"]``) builds a numpy array. Catalogues have a few thousand rows
per patch, so per-record storage costs little and keeps appends and footprints simple.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from os import PathLike
from typing import Any

import numpy as np

__all__ = ["Key", "Field", "SchemaItem", "Schema", "IdFactory", "SourceTable", "SourceRecord", "SourceCatalog"]

# afw type codes → numpy dtypes. "Flag" is a bool; "String" is a Python str.
FIELD_TYPES: dict[str, np.dtype] = {
    "I": np.dtype(np.int32),
    "L": np.dtype(np.int64),
    "F": np.dtype(np.float32),
    "D": np.dtype(np.float64),
    "Flag": np.dtype(bool),
    "String": np.dtype(object),
    "Angle": np.dtype(np.float64),
}
_DEFAULTS = {"I": 0, "L": 0, "F": np.nan, "D": np.nan, "Flag": False, "String": "", "Angle": np.nan}
_PY_TYPES = {int: "L", float: "D", bool: "Flag", str: "String"}


@dataclass(frozen=True)
class Key:
    """A handle to one column of a schema."""

    name: str
    type: str

    def getName(self) -> str:
        return self.name

    def isValid(self) -> bool:
        return bool(self.name)


@dataclass(frozen=True)
class Field:
    """A column definition: name, afw type code, documentation and units."""

    name: str
    type: str
    doc: str = ""
    units: str = ""
    size: int = 0

    def getName(self) -> str:
        return self.name

    def getTypeString(self) -> str:
        return self.type

    def getDoc(self) -> str:
        return self.doc

    def getUnits(self) -> str:
        return self.units


@dataclass(frozen=True)
class SchemaItem:
    key: Key
    field: Field


class Schema:
    """An ordered set of typed, documented columns.

    Examples
    --------
    >>> schema = SourceTable.makeMinimalSchema()
    >>> key = schema.addField("deblend_nChild", type="I", doc="Number of children")
    >>> schema.getNames()[:2], schema.find("deblend_nChild").field.doc
    (['id', 'coord_ra'], 'Number of children')
    """

    def __init__(self) -> None:
        self._fields: dict[str, Field] = {}

    def addField(
        self,
        name: str | Field,
        type: str | type | None = None,
        doc: str = "",
        units: str = "",
        size: int = 0,
        doReplace: bool = False,
    ) -> Key:
        """Add a column and return its key; a name already present raises unless ``doReplace``."""
        if isinstance(name, Field):
            field = name
        else:
            if type is None:
                raise TypeError(f"addField({name!r}) needs a type")
            code = _PY_TYPES.get(type, type) if not isinstance(type, str) else type
            if code not in FIELD_TYPES:
                raise TypeError(f"field {name!r}: unknown type {type!r}; use one of {sorted(FIELD_TYPES)}")
            field = Field(name, code, doc, units, size)
        if field.name in self._fields and not doReplace:
            raise ValueError(f"field {field.name!r} already exists in the schema")
        self._fields[field.name] = field
        return Key(field.name, field.type)

    def find(self, name: str | Key) -> SchemaItem:
        name = name.name if isinstance(name, Key) else name
        try:
            field = self._fields[name]
        except KeyError:
            raise KeyError(f"no field {name!r} in the schema") from None
        return SchemaItem(Key(name, field.type), field)

    def getNames(self, topOnly: bool = False) -> list[str]:
        return list(self._fields)

    def getFields(self) -> list[Field]:
        return list(self._fields.values())

    def __contains__(self, name: str) -> bool:
        return name in self._fields

    def __iter__(self) -> Iterator[SchemaItem]:
        for name, field in self._fields.items():
            yield SchemaItem(Key(name, field.type), field)

    def __len__(self) -> int:
        return len(self._fields)

    def __getitem__(self, name: str) -> Key:
        return self.find(name).key

    def getFieldCount(self) -> int:
        return len(self._fields)

    def copy(self) -> Schema:
        schema = Schema()
        schema._fields = dict(self._fields)
        return schema

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Schema):
            return NotImplemented
        return list(self._fields.values()) == list(other._fields.values())

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Schema({', '.join(f'{f.name}:{f.type}' for f in self._fields.values())})"


class IdFactory:
    """Makes unique record ids: ``(expId << reserved) | counter``, counting from 1.

    Examples
    --------
    >>> ids = IdFactory.makeSource(5, 32)
    >>> ids() == (5 << 32) + 1, ids() == (5 << 32) + 2
    (True, True)
    """

    def __init__(self, expId: int = 0, reserved: int = 64):
        if reserved < 64 and expId >= (1 << (64 - reserved)):
            raise ValueError(f"exposure id {expId} does not fit above {reserved} reserved bits")
        self._expId = int(expId)
        self._reserved = int(reserved)
        self._last = 0

    @classmethod
    def makeSimple(cls) -> IdFactory:
        return cls(0, 64)

    @classmethod
    def makeSource(cls, expId: int, reserved: int) -> IdFactory:
        return cls(expId, reserved)

    def __call__(self) -> int:
        self._last += 1
        if self._reserved < 64 and self._last >= (1 << self._reserved):
            raise RuntimeError(f"id factory exhausted its {self._reserved} bits")
        return (self._expId << self._reserved) | self._last if self._reserved < 64 else self._last

    def notify(self, id: int) -> None:
        """Record that ``id`` is used, so later ids are larger."""
        counter = int(id) & ((1 << self._reserved) - 1) if self._reserved < 64 else int(id)
        self._last = max(self._last, counter)

    def clone(self) -> IdFactory:
        other = IdFactory(self._expId, self._reserved)
        other._last = self._last
        return other


class SourceTable:
    """The schema and id factory shared by the records of a catalogue."""

    def __init__(self, schema: Schema, idFactory: IdFactory | None = None):
        for required in ("id", "parent"):
            if required not in schema:
                raise ValueError(f"a source schema needs an {required!r} field (use makeMinimalSchema)")
        self._schema = schema
        self._idFactory = IdFactory.makeSimple() if idFactory is None else idFactory

    @classmethod
    def make(cls, schema: Schema, idFactory: IdFactory | None = None) -> SourceTable:
        return cls(schema, idFactory)

    @staticmethod
    def makeMinimalSchema() -> Schema:
        schema = Schema()
        schema.addField("id", type="L", doc="unique ID")
        schema.addField("coord_ra", type="Angle", doc="position in ra/dec", units="rad")
        schema.addField("coord_dec", type="Angle", doc="position in ra/dec", units="rad")
        schema.addField("parent", type="L", doc="unique ID of parent source")
        return schema

    @property
    def schema(self) -> Schema:
        return self._schema

    def getSchema(self) -> Schema:
        return self._schema

    def getIdFactory(self) -> IdFactory:
        return self._idFactory

    def makeRecord(self) -> SourceRecord:
        record = SourceRecord(self)
        record.setId(self._idFactory())
        return record


class SourceRecord:
    """One row: typed values by column name plus an optional footprint."""

    __slots__ = ("_table", "_values", "_footprint")

    def __init__(self, table: SourceTable):
        self._table = table
        self._values: dict[str, Any] = {
            field.name: _DEFAULTS[field.type] for field in table.schema.getFields()
        }
        self._footprint = None

    @property
    def schema(self) -> Schema:
        return self._table.schema

    def getSchema(self) -> Schema:
        return self._table.schema

    def getTable(self) -> SourceTable:
        return self._table

    def getId(self) -> int:
        return self._values["id"]

    def setId(self, value: int) -> None:
        self._values["id"] = int(value)
        self._table.getIdFactory().notify(int(value))

    def getParent(self) -> int:
        return self._values["parent"]

    def setParent(self, value: int) -> None:
        self._values["parent"] = int(value)

    def getFootprint(self):
        return self._footprint

    def setFootprint(self, footprint) -> None:
        self._footprint = footprint

    def get(self, key: str | Key):
        name = key.name if isinstance(key, Key) else key
        try:
            return self._values[name]
        except KeyError:
            raise KeyError(f"no field {name!r} in the schema") from None

    def set(self, key: str | Key, value) -> None:
        name = key.name if isinstance(key, Key) else key
        field = self._table.schema.find(name).field
        self._values[name] = _coerce(field, value)

    def __getitem__(self, key: str | Key):
        return self.get(key)

    def __setitem__(self, key: str | Key, value) -> None:
        self.set(key, value)

    def assign(self, other: SourceRecord) -> None:
        """Copy the values of the fields both schemas share, and the footprint."""
        for name, value in other._values.items():
            if name in self._values:
                self.set(name, value)
        self._footprint = other._footprint

    def __repr__(self) -> str:
        return f"SourceRecord(id={self.getId()}, parent={self.getParent()})"


def _coerce(field: Field, value):
    if field.type == "String":
        return str(value)
    if field.type == "Flag":
        return bool(value)
    dtype = FIELD_TYPES[field.type]
    if np.issubdtype(dtype, np.integer):
        if isinstance(value, (float, np.floating)) and not float(value).is_integer():
            raise ValueError(f"field {field.name!r} is an integer; got {value!r}")
        return int(value)
    return float(dtype.type(value))


class SourceCatalog:
    """A list of :class:`SourceRecord` sharing a :class:`SourceTable`.

    Parameters
    ----------
    table
        A :class:`SourceTable`, or a :class:`Schema` (a table with a simple id factory
        is made for it).

    Examples
    --------
    >>> catalog = SourceCatalog(SourceTable.makeMinimalSchema())
    >>> parent = catalog.addNew()
    >>> child = catalog.addNew(); child.setParent(parent.getId())
    >>> [r.getId() for r in catalog.getChildren(parent.getId())], catalog["parent"].tolist()
    ([2], [0, 1])
    """

    def __init__(self, table: SourceTable | Schema):
        if isinstance(table, Schema):
            table = SourceTable(table)
        self._table = table
        self._records: list[SourceRecord] = []

    @property
    def table(self) -> SourceTable:
        return self._table

    def getTable(self) -> SourceTable:
        return self._table

    @property
    def schema(self) -> Schema:
        return self._table.schema

    def getSchema(self) -> Schema:
        return self._table.schema

    def addNew(self) -> SourceRecord:
        record = self._table.makeRecord()
        self._records.append(record)
        return record

    def append(self, record: SourceRecord) -> None:
        if record.getSchema() is not self.schema and record.getSchema() != self.schema:
            raise ValueError("record schema differs from the catalogue schema; copy it with addNew().assign()")
        self._records.append(record)
        self._table.getIdFactory().notify(record.getId())

    def extend(self, records: Iterable[SourceRecord], deep: bool = False) -> None:
        for record in records:
            if deep:
                copy = SourceRecord(self._table)
                copy.assign(record)
                copy.setId(record.getId())
                record = copy
            self.append(record)

    def find(self, id: int) -> SourceRecord | None:
        """The record with this id, or ``None``."""
        for record in self._records:
            if record.getId() == id:
                return record
        return None

    def getChildren(self, parent: int | Sequence[int]) -> SourceCatalog:
        """Records whose ``parent`` column equals ``parent`` (or is one of several ids)."""
        parents = {int(parent)} if isinstance(parent, (int, np.integer)) else {int(p) for p in parent}
        return self._subset([r for r in self._records if r.getParent() in parents])

    def _subset(self, records: list[SourceRecord]) -> SourceCatalog:
        subset = SourceCatalog(self._table)
        subset._records = records
        return subset

    def sort(self, key: str | Key = "id") -> None:
        name = key.name if isinstance(key, Key) else key
        self._records.sort(key=lambda r: r.get(name))

    def isSorted(self, key: str | Key = "id") -> bool:
        values = self[key.name if isinstance(key, Key) else key]
        return bool(np.all(values[1:] >= values[:-1])) if len(values) > 1 else True

    def copy(self, deep: bool = False) -> SourceCatalog:
        if not deep:
            return self._subset(list(self._records))
        result = SourceCatalog(SourceTable(self.schema, self._table.getIdFactory().clone()))
        result.extend(self._records, deep=True)
        return result

    def column(self, name: str) -> np.ndarray:
        field = self.schema.find(name).field
        values = [record._values[name] for record in self._records]
        return np.array(values, dtype=FIELD_TYPES[field.type]) if values else np.zeros(0, FIELD_TYPES[field.type])

    def __getitem__(self, key):
        if isinstance(key, (str, Key)):
            return self.column(key.name if isinstance(key, Key) else key)
        if isinstance(key, slice):
            return self._subset(self._records[key])
        if isinstance(key, np.ndarray) and key.dtype == bool:
            if key.shape != (len(self),):
                raise IndexError(f"boolean index of shape {key.shape} for a catalogue of {len(self)} rows")
            return self._subset([r for r, keep in zip(self._records, key) if keep])
        return self._records[key]

    def __setitem__(self, key: str | Key, values) -> None:
        name = key.name if isinstance(key, Key) else key
        values = np.broadcast_to(np.asarray(values), (len(self),))
        for record, value in zip(self._records, values):
            record.set(name, value)

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[SourceRecord]:
        return iter(self._records)

    def asAstropy(self, copy: bool = True):
        """The columns as an ``astropy.table.Table`` (footprints are not included)."""
        from astropy.table import Table

        table = Table()
        for field in self.schema.getFields():
            column = self.column(field.name)
            if field.type == "String":
                column = column.astype(str)
            table[field.name] = column
            table[field.name].description = field.doc
            if field.units:
                table[field.name].unit = field.units
        return table

    def writeFits(self, path: str | PathLike, bbox=None) -> None:
        """Write the catalogue with its footprints (see ``doc/file-formats``).

        ``bbox`` records the image the footprints belong to (default: a footprint's region).
        """
        from ..io.catalogFits import writeSourceCatalogFits

        writeSourceCatalogFits(self, path, bbox=bbox)

    @classmethod
    def readFits(cls, path: str | PathLike, bbox=None) -> SourceCatalog:
        """Read a catalogue written by :meth:`writeFits`; ``bbox`` checks spans lie in the image."""
        from ..io.catalogFits import readSourceCatalogFits

        return readSourceCatalogFits(path, bbox=bbox)

    def __repr__(self) -> str:
        return f"SourceCatalog({len(self)} records, {len(self.schema)} fields)"
