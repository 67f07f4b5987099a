"""The one error type raised by the package's file readers."""

from __future__ import annotations

from os import PathLike

__all__ = ["FitsFormatError"]


class FitsFormatError(ValueError):
    """A file does not follow the package's FITS formats.

    The message names the file and, where they apply, the extension, the column and the
    (0-based) row, so the user can go straight to the bad value.

    Attributes
    ----------
    path, extension, column, row
        Where the problem is (``None`` where it does not apply).
    reason
        What is wrong, without the location.

    Examples
    --------
    >>> str(FitsFormatError("x1 < x0", path="cat.fits", extension="SPANS", column="x1", row=3))
    "cat.fits[SPANS] column 'x1' row 3: x1 < x0"
    """

    def __init__(
        self,
        reason: str,
        *,
        path: str | PathLike,
        extension: str | None = None,
        column: str | None = None,
        row: int | None = None,
    ):
        self.path = str(path)
        self.extension = extension
        self.column = column
        self.row = None if row is None else int(row)
        self.reason = reason
        where = self.path
        if extension is not None:
            where += f"[{extension}]"
        if column is not None:
            where += f" column {column!r}"
        if self.row is not None:
            where += f" row {self.row}"
        super().__init__(f"{where}: {reason}")
