"""`Struct`: the attribute namespace returned by task ``run`` methods.

Mirrors ``lsst.pipe.base.Struct``.
"""

from __future__ import annotations

__all__ = ["Struct", "StructItemError"]

from typing import TYPE_CHECKING, Any


class StructItemError(ValueError, RuntimeError):
    """Raised when an item cannot be added to a `Struct`.

    It derives from `ValueError` and also from `RuntimeError`, the type that
    ``lsst.pipe.base.Struct`` raises, so code written against either
    catches it.
    """


class Struct:
    """A container to which fields can be added as attributes.

    Parameters
    ----------
    **keyArgs : `~typing.Any`
        Names and values of the fields.

    Raises
    ------
    StructItemError
        Raised if a name starts with ``__`` or clashes with an attribute of
        the class (``getDict``, ``copy``, ...).

    Notes
    -----
    Used as the return value of ``Task.run`` and other task methods, so that
    results are accessed by name rather than by tuple position: adding a
    result never breaks a caller, and a removed or renamed one fails loudly.

    Examples
    --------
    >>> result = Struct(model=1.5, nIter=12)
    >>> result.nIter
    12
    >>> len(result)
    2
    >>> result
    Struct(model=1.5; nIter=12)
    """

    def __init__(self, **keyArgs: Any) -> None:
        for name, val in keyArgs.items():
            self.__safeAdd(name, val)

    if TYPE_CHECKING:  # the fields are attributes set at run time
        def __getattr__(self, name: str) -> Any: ...

    def __safeAdd(self, name: str, val: Any) -> None:
        # Dunder names would shadow Python machinery and silently misbehave.
        if name.startswith("__"):
            raise StructItemError(f"Item name {name!r} invalid; must not begin with __")
        if hasattr(self, name):
            raise StructItemError(f"Item {name!r} already exists")
        setattr(self, name, val)

    def getDict(self) -> dict[str, Any]:
        """Get a dictionary of the fields in this struct.

        Returns
        -------
        structDict : `dict` [`str`, `~typing.Any`]
            Field names and values; a shallow copy.
        """
        return self.__dict__.copy()

    def mergeItems(self, struct: Struct, *nameList: str) -> None:
        """Copy named fields from another struct.

        Parameters
        ----------
        struct : `Struct`
            Struct from which to copy.
        *nameList : `str`
            Names of the items to copy.

        Raises
        ------
        StructItemError
            Raised if an item of ``nameList`` already exists in ``self`` (the
            items before it have been copied).
        AttributeError
            Raised if ``struct`` has no item of that name.
        """
        for name in nameList:
            self.__safeAdd(name, getattr(struct, name))

    def copy(self) -> Struct:
        """Make a one-level-deep copy (values are shared, not copied).

        Returns
        -------
        copy : `Struct`
            The copy.
        """
        return Struct(**self.getDict())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Struct):
            return NotImplemented
        return self.__dict__ == other.__dict__

    # Structs are mutable containers: equal ones may hash differently.
    __hash__ = None  # type: ignore[assignment]

    def __len__(self) -> int:
        return len(self.__dict__)

    def __repr__(self) -> str:
        itemsStr = "; ".join(f"{name}={val}" for name, val in self.getDict().items())
        return f"{self.__class__.__name__}({itemsStr})"
