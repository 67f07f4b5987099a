"""Opening FITS files and reading their parts with errors that say where the problem is."""

from __future__ import annotations

from os import PathLike

import numpy as np
from astropy.io import fits

from .errors import FitsFormatError

__all__ = ["FitsReader"]


class FitsReader:
    """An open FITS file whose accessors raise :class:`FitsFormatError` naming the location.

    Use as a context manager; the HDU list is closed on exit.
    """

    def __init__(self, path: str | PathLike):
        self.path = str(path)
        try:
            # Memory mapping would keep the file open behind returned arrays; read eagerly.
            self.hdus = fits.open(self.path, memmap=False)
            self.hdus.verify("exception")
        except FileNotFoundError:
            raise FitsFormatError("no such file", path=self.path) from None
        except (OSError, fits.VerifyError, ValueError) as error:
            raise FitsFormatError(f"not a readable FITS file ({error})", path=self.path) from None

    def __enter__(self) -> FitsReader:
        return self

    def __exit__(self, *exc) -> None:
        self.hdus.close()

    def error(self, reason: str, extension: str | None = None, column: str | None = None, row: int | None = None):
        return FitsFormatError(reason, path=self.path, extension=extension, column=column, row=row)

    def has(self, extension: str) -> bool:
        return extension in self.hdus

    def hdu(self, extension: str):
        if extension not in self.hdus:
            present = [h.name for h in self.hdus]
            raise self.error(f"missing extension; the file has {present}", extension)
        return self.hdus[extension]

    @property
    def primaryHeader(self) -> fits.Header:
        return self.hdus[0].header

    def imageData(self, extension: str, kind: str, ndim: int) -> np.ndarray:
        """An image HDU's data as a native-endian array, checked for type kind and dimension.

        ``kind`` is ``"f"`` for floating point or ``"i"`` for integer.
        """
        hdu = self.hdu(extension)
        if not isinstance(hdu, (fits.ImageHDU, fits.PrimaryHDU, fits.CompImageHDU)):
            raise self.error(f"expected an image extension, found {type(hdu).__name__}", extension)
        data = self._data(hdu, extension)
        if data is None:
            raise self.error("the extension has no data", extension)
        if data.ndim != ndim:
            raise self.error(f"expected a {ndim}-d array, found shape {data.shape}", extension)
        wanted = {"f": "floating-point", "i": "integer"}[kind]
        if data.dtype.kind != kind and not (kind == "i" and data.dtype.kind == "u"):
            raise self.error(f"expected {wanted} pixels, found dtype {data.dtype}", extension)
        return data.astype(data.dtype.newbyteorder("="), copy=False)

    def _data(self, hdu, extension: str):
        """``hdu.data``, which astropy reads only now: a truncated file shows here, not at open."""
        try:
            return hdu.data
        except (ValueError, OSError, TypeError, IndexError) as error:
            raise self.error(f"cannot read the data (is the file truncated?): {error}", extension) from None

    def table(self, extension: str, columns: dict[str, str]):
        """A binary table's data, checking that each named column exists with the given kind.

        ``columns`` maps a column name to ``"i"`` (integer), ``"f"`` (floating point) or
        ``"any"``.
        """
        hdu = self.hdu(extension)
        if not isinstance(hdu, fits.BinTableHDU):
            raise self.error(f"expected a binary table, found {type(hdu).__name__}", extension)
        data = self._data(hdu, extension)
        names = [] if data is None else list(data.columns.names)
        for name, kind in columns.items():
            if name not in names:
                raise self.error(f"missing column; the table has {names}", extension, column=name)
            if kind == "any":
                continue
            dtype = data[name].dtype
            ok = dtype.kind in ("i", "u") if kind == "i" else dtype.kind == "f"
            if not ok:
                wanted = {"i": "integer", "f": "floating-point"}[kind]
                raise self.error(f"expected an {wanted} column, found dtype {dtype}", extension, column=name)
        return data

    def column(self, extension: str, data, name: str, dtype) -> np.ndarray:
        """A column as a native array of ``dtype``."""
        return np.asarray(data[name]).astype(dtype)
