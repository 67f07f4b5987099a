"""What must hold of a deblend step's input before it starts and of its output when it ends.

A deblend step runs unattended over millions of parents, so its bookkeeping is checked rather
than trusted:

- :func:`checkInputCatalog`, before any work: the catalogue holds parents only (no record with a
  ``parent`` link), with unique ids and a footprint each, on the exposure. A violation is the
  user's input and raises :class:`InputCatalogError` naming the row.
- :func:`checkInvariants`, after the run: every input parent is in the output, in order; every
  peak of a deblended parent has exactly one child (or the parent carries a flag saying why
  not); ids are unique and every child links to an input parent; no child flux or heavy-footprint
  pixel is NaN or infinite, except the fluxes of the bands the exposure lacks, which are NaN; heavy-footprint pixels lie inside the parent footprint. A violation
  is a bug of this package: the tasks report it in their metadata, and raise
  :class:`InvariantError` when ``strictInvariants`` is set or the environment variable
  ``MADNESS_STRICT_INVARIANTS=1`` is (as the test suite does).

Examples
--------
>>> from lsst.meas.extensions.madness.afw.table import SourceCatalog, SourceTable
>>> catalog = SourceCatalog(SourceTable.make(SourceTable.makeMinimalSchema()))
>>> checkInvariants(catalog, catalog)
[]
"""

from __future__ import annotations

from collections import Counter

import numpy as np

__all__ = ["InputCatalogError", "InvariantError", "checkInputCatalog", "checkInvariants", "STRICT_ENVIRONMENT"]

#: Environment variable that makes every invariant violation raise.
STRICT_ENVIRONMENT = "MADNESS_STRICT_INVARIANTS"

#: Parent flags that say why a parent has no child per peak.
_NO_CHILDREN_FLAGS = ("deblend_skipped", "deblend_failed")


class InputCatalogError(ValueError):
    """The parent catalogue cannot be deblended as given; the message names the row."""


class InvariantError(RuntimeError):
    """The deblended catalogue breaks an invariant of the module docstring (a bug)."""


def checkInputCatalog(mergedSources, bbox=None) -> None:
    """Raise :class:`InputCatalogError` for a record that is a child, a repeated id, a missing footprint,
    or (given the exposure's ``bbox``) a footprint with pixels off the exposure, as the FITS reader does."""
    seen: dict[int, int] = {}
    for row, record in enumerate(mergedSources):
        sourceId = record.getId()
        if record.getParent() != 0:
            raise InputCatalogError(f"mergedSources row {row} (id {sourceId}) is a child of {record.getParent()}: "
                                    "give the deblender parents only (children are what it makes)")
        if sourceId in seen:
            raise InputCatalogError(f"mergedSources row {row}: id {sourceId} repeats row {seen[sourceId]}")
        seen[sourceId] = row
        footprint = record.getFootprint()
        if footprint is None:
            raise InputCatalogError(f"mergedSources row {row} (id {sourceId}) has no footprint")
        spans = footprint.getSpans()
        if bbox is not None and spans.clippedTo(bbox).getArea() != spans.getArea():
            raise InputCatalogError(f"mergedSources row {row} (id {sourceId}): the footprint (bbox "
                                    f"{spans.getBBox()}) has pixels off the exposure ({bbox})")


def checkInvariants(mergedSources, deblendedCatalog, absentBands=()) -> list[str]:
    """The violated invariants of the module docstring, one message each (empty when all hold);
    ``absentBands`` are the bands the exposure lacked."""
    problems: list[str] = []
    nParents = len(mergedSources)
    inputIds = [record.getId() for record in mergedSources]
    outputIds = [record.getId() for record in deblendedCatalog]
    if outputIds[:nParents] != inputIds:
        missing = sorted(set(inputIds) - set(outputIds))
        problems.append(f"the output does not start with the {nParents} input parents in order"
                        + (f" (missing ids {missing[:10]})" if missing else ""))
    if len(set(outputIds)) != len(outputIds):
        repeated = sorted(i for i, n in Counter(outputIds).items() if n > 1)
        problems.append(f"ids repeat in the output: {repeated[:10]}")
    parents = {record.getId(): record for record in deblendedCatalog[:nParents]}
    children: dict[int, list] = {sourceId: [] for sourceId in parents}
    for record in deblendedCatalog[nParents:]:
        parentId = record.getParent()
        if parentId not in children:
            problems.append(f"child {record.getId()} links to {parentId}, which is not an input parent")
            continue
        children[parentId].append(record)
    schema = deblendedCatalog.schema
    fluxColumns = [f.getName() for f in schema.getFields()
                   if f.getName().startswith("madness_flux_") and f.getTypeString() in ("F", "D")]
    absentColumns = [f"madness_flux_{band}" for band in absentBands]
    fluxColumns = [c for c in fluxColumns if c not in absentColumns]
    hasFlags = all(flag in schema for flag in _NO_CHILDREN_FLAGS)
    for parentId, parent in parents.items():
        kids = children[parentId]
        problems += _checkChildren(parent, kids, hasFlags)
        parentSpans = None if parent.getFootprint() is None else parent.getFootprint().getSpans()
        for child in kids:
            problems += _checkChild(child, parentSpans, fluxColumns)
            invented = [c for c in absentColumns if c in schema and not np.isnan(child.get(c))]
            if invented:
                problems.append(f"child {child.getId()} has a flux in {invented}, bands the exposure lacks")
    return problems


def _checkChildren(parent, kids: list, hasFlags: bool) -> list[str]:
    footprint = parent.getFootprint()
    peakIds = [] if footprint is None else [peak.getId() for peak in footprint.getPeaks()]
    excused = hasFlags and any(parent.get(flag) for flag in _NO_CHILDREN_FLAGS)
    if excused:
        return [] if not kids else [f"parent {parent.getId()} is skipped or failed but has {len(kids)} children"]
    if "deblend_skipped_isolatedParent" in parent.schema and parent.get("deblend_skipped_isolatedParent"):
        expected = peakIds[:1]
    else:
        expected = peakIds
    if "deblend_peakId" not in parent.schema:
        return [] if len(kids) == len(expected) else [
            f"parent {parent.getId()} has {len(expected)} peaks to model and {len(kids)} children"]
    got = sorted(child.get("deblend_peakId") for child in kids)
    if got != sorted(expected):
        return [f"parent {parent.getId()}: peaks {sorted(expected)} but children for peaks {got}, "
                "and no flag says why"]
    return []


def _checkChild(child, parentSpans, fluxColumns: list[str]) -> list[str]:
    problems = []
    bad = [c for c in fluxColumns if not np.isfinite(child.get(c))]
    if bad:
        problems.append(f"child {child.getId()} has non-finite {bad}")
    footprint = child.getFootprint()
    if footprint is None:
        return problems + [f"child {child.getId()} has no footprint"]
    spans = footprint.getSpans()
    if parentSpans is not None and not spans.isEmpty() and spans.intersectNot(parentSpans).getArea() > 0:
        problems.append(f"child {child.getId()}'s footprint has pixels outside its parent's footprint")
    image = _heavyImage(footprint)
    if image is not None and not np.all(np.isfinite(image)):
        problems.append(f"child {child.getId()}'s heavy footprint has non-finite pixel values")
    return problems


def _heavyImage(footprint) -> np.ndarray | None:
    """The pixel values of a (multiband) heavy footprint; None for a plain footprint."""
    getImageArray = getattr(footprint, "getImageArray", None)
    return None if getImageArray is None else np.asarray(getImageArray())
