"""Reading CatSim-format galaxy catalogues (e.g. the LSST DESC "OneDegSq" catalogue).

A CatSim galaxy is a DeVaucouleurs bulge plus an Exponential disk (plus an optional AGN
point source). Its columns:

==================================  ============================================================
column                              meaning
==================================  ============================================================
``galtileid``                       unique galaxy id
``ra``, ``dec``                     position, degrees
``redshift``                        redshift
``fluxnorm_bulge/disk/agn``         flux normalisation of each component (their ratio splits
                                    the total flux between components)
``a_b``, ``b_b``, ``a_d``, ``b_d``  half-light semi-major and semi-minor axes of bulge and
                                    disk, arcsec (0 when the component is absent)
``pa_bulge``, ``pa_disk``           position angles, degrees
``u_ab`` ... ``y_ab``               total AB magnitude per LSST band
==================================  ============================================================
"""

from __future__ import annotations

from os import PathLike

import numpy as np
from astropy.table import Table

from ..io.errors import FitsFormatError

__all__ = ["CATSIM_COLUMNS", "checkCatsimTable", "deriveCatsimColumns", "readCatsimCatalog"]

CATSIM_COLUMNS: tuple[str, ...] = (
    "galtileid", "ra", "dec", "redshift",
    "fluxnorm_bulge", "fluxnorm_disk", "fluxnorm_agn",
    "a_b", "b_b", "a_d", "b_d", "pa_bulge", "pa_disk",
    "u_ab", "g_ab", "r_ab", "i_ab", "z_ab", "y_ab",
)  # fmt: skip
_NON_NEGATIVE = ("redshift", "fluxnorm_bulge", "fluxnorm_disk", "fluxnorm_agn", "a_b", "b_b", "a_d", "b_d")


def _fail(path, reason: str, column: str | None = None, row: int | None = None) -> FitsFormatError:
    return FitsFormatError(reason, path="<in-memory table>" if path is None else path, extension="catalog",
                           column=column, row=row)


def readCatsimCatalog(path: str | PathLike) -> Table:
    """Read and check a CatSim-format catalogue (FITS, or any table astropy reads).

    Returns
    -------
    table
        The catalogue's CatSim columns plus derived ``bulge_fraction`` (share of the
        bulge in bulge + disk flux), ``agn_fraction``, and per component ``hlr_bulge``,
        ``q_bulge``, ``hlr_disk``, ``q_disk`` (half-light radius √(a·b) and axis ratio b/a;
        0 and 1 where the component is absent).

    Raises
    ------
    FitsFormatError
        Naming the file, the column and the (0-based) row: unreadable file, missing
        column, repeated ``galtileid``, non-finite values, negative sizes or flux
        normalisations, ``b > a``, or a galaxy with no component.

    Examples
    --------
    >>> import tempfile, os
    >>> row = dict(galtileid=[1], ra=[0.0], dec=[0.0], redshift=[0.5], fluxnorm_bulge=[1.0],
    ...            fluxnorm_disk=[3.0], fluxnorm_agn=[0.0], a_b=[0.4], b_b=[0.1], a_d=[1.0],
    ...            b_d=[0.5], pa_bulge=[10.0], pa_disk=[10.0],
    ...            **{f"{b}_ab": [24.0] for b in "ugrizy"})
    >>> path = os.path.join(tempfile.mkdtemp(), "cat.fits")
    >>> Table(row).write(path)
    >>> galaxies = readCatsimCatalog(path)
    >>> float(galaxies["bulge_fraction"][0]), round(float(galaxies["hlr_disk"][0]), 4)
    (0.25, 0.7071)
    """
    try:
        table = Table.read(path)
    except FileNotFoundError:
        raise _fail(path, "no such file") from None
    except Exception as error:  # noqa: BLE001 - astropy raises many types for unreadable input
        raise _fail(path, f"not a readable table ({error})") from None
    return deriveCatsimColumns(checkCatsimTable(table, path))


def checkCatsimTable(table: Table, path: str | PathLike | None = None) -> Table:
    """Check that ``table`` is a valid CatSim catalogue; return its CatSim columns.

    ``path`` names the source in error messages (``None`` for an in-memory table).

    Raises
    ------
    FitsFormatError
        Naming the column and the (0-based) row: missing column, repeated ``galtileid``,
        non-finite values, negative sizes or flux normalisations, ``b > a``, or a galaxy
        with no component.
    """
    missing = [c for c in CATSIM_COLUMNS if c not in table.colnames]
    if missing:
        raise _fail(path, f"missing CatSim column(s) {missing}", column=missing[0])
    table = table[list(CATSIM_COLUMNS)]
    ids = np.asarray(table["galtileid"])
    _, first = np.unique(ids, return_index=True)
    if first.size != ids.size:
        row = int(np.setdiff1d(np.arange(ids.size), first)[0])
        raise _fail(path, f"galtileid {ids[row]} appears more than once", "galtileid", row)
    for column in CATSIM_COLUMNS[1:]:
        values = np.asarray(table[column], dtype=float)
        bad = np.flatnonzero(~np.isfinite(values))
        if bad.size:
            raise _fail(path, f"non-finite value {values[bad[0]]}", column, int(bad[0]))
        if column in _NON_NEGATIVE:
            bad = np.flatnonzero(values < 0)
            if bad.size:
                raise _fail(path, f"negative value {values[bad[0]]}", column, int(bad[0]))
    for a, b in (("a_b", "b_b"), ("a_d", "b_d")):
        bad = np.flatnonzero(np.asarray(table[b]) > np.asarray(table[a]))
        if bad.size:
            raise _fail(path, f"semi-minor axis {table[b][bad[0]]} exceeds semi-major axis {table[a][bad[0]]}",
                        b, int(bad[0]))
    bulge, disk, agn = (np.asarray(table[f"fluxnorm_{c}"], dtype=float) for c in ("bulge", "disk", "agn"))
    total = bulge + disk + agn
    empty = np.flatnonzero(total <= 0)
    if empty.size:
        raise _fail(path, "the galaxy has no bulge, disk or AGN flux", "fluxnorm_disk", int(empty[0]))
    return table


def deriveCatsimColumns(table: Table) -> Table:
    """Add ``bulge_fraction``, ``agn_fraction``, ``hlr_bulge``, ``q_bulge``, ``hlr_disk``
    and ``q_disk`` to a checked CatSim table (in place; also returned)."""
    bulge, disk, agn = (np.asarray(table[f"fluxnorm_{c}"], dtype=float) for c in ("bulge", "disk", "agn"))
    total = bulge + disk + agn
    table["bulge_fraction"] = np.where(bulge + disk > 0, bulge / np.maximum(bulge + disk, 1e-300), 0.0)
    table["agn_fraction"] = agn / total
    for component, (a, b) in (("bulge", ("a_b", "b_b")), ("disk", ("a_d", "b_d"))):
        aa = np.asarray(table[a], dtype=float)
        bb = np.asarray(table[b], dtype=float)
        table[f"hlr_{component}"] = np.sqrt(aa * bb)
        table[f"q_{component}"] = np.where(aa > 0, bb / np.where(aa > 0, aa, 1.0), 1.0)
    return table
