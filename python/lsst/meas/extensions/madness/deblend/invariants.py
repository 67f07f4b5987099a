"""What must hold of a deblend step's input before it starts and of its output when it ends.

A deblend step runs unattended over millions of parents, so its bookkeeping is checked rather
than trusted:

- :func:`checkInputCatalog`, before any work: the catalogue holds parents only (no record with a
  ``parent`` link), with unique non-zero ids that leave room for the children's, and a footprint
  each, on the exposure, with unique peak ids. A violation is the user's input and raises
  :class:`InputCatalogError` naming the row.
- :func:`checkMaskPlanes`, before any work: the mask planes a config names exist.
- :func:`checkInvariants`, after the run: every input parent is in the output, in order; every
  peak of a deblended parent has exactly one child (or the parent carries a flag saying why
  not); ids are unique and every child links to an input parent; no child flux or heavy-footprint
  pixel is NaN or infinite, except the fluxes of the bands the exposure lacks, which are NaN;
  heavy-footprint pixels lie inside the parent footprint. A violation
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
from collections.abc import Iterable, Mapping

import numpy as np

__all__ = ["InputCatalogError", "InvariantError", "checkInputCatalog", "checkInvariants", "checkMaskPlanes",
           "STRICT_ENVIRONMENT", "UnknownMaskPlaneError"]

#: Environment variable that makes every invariant violation raise.
STRICT_ENVIRONMENT = "MADNESS_STRICT_INVARIANTS"

#: Parent flags that say why a parent has no child per peak.
_NO_CHILDREN_FLAGS = ("deblend_skipped", "deblend_failed")


class InputCatalogError(ValueError):
    """The parent catalogue cannot be deblended as given; the message names the row."""


class UnknownMaskPlaneError(ValueError):
    """A config names a mask plane that the exposure does not have (:func:`checkMaskPlanes`)."""


class InvariantError(RuntimeError):
    """The deblended catalogue breaks an invariant of the module docstring (a bug)."""


#: The largest id a record can have: ids are written as 64-bit signed integers.
INT64_MAX = int(np.iinfo(np.int64).max)


def checkInputCatalog(mergedSources, bbox=None) -> None:
    """Refuse a parent catalogue the deblender cannot turn into a correct output, naming the row.

    Parameters
    ----------
    mergedSources : `~lsst.meas.extensions.madness.afw.table.SourceCatalog`
        The parent catalogue given to the deblend task.
    bbox : `~lsst.meas.extensions.madness.afw.geom.Box2I`, optional
        The exposure's bounding box; None: the footprints' positions are not checked.

    Raises
    ------
    InputCatalogError
        For a record that is a child; an id of 0 (the ``parent`` value of a record without parent,
        so its children would read back as parents); a repeated id; a record without a footprint;
        given the exposure's ``bbox``, a footprint with pixels off the exposure (as the FITS reader
        does); a peak id that repeats within a footprint or across parents (children are matched to
        their peak by ``deblend_peakId``); or ids so large that the children's ids, which follow the
        largest one, would pass the int64 maximum.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.afw import Box2I, Extent2I, Footprint, Point2I, SpanSet
    >>> from lsst.meas.extensions.madness.afw.table import SourceCatalog, SourceTable
    >>> catalog = SourceCatalog(SourceTable.make(SourceTable.makeMinimalSchema()))
    >>> record = catalog.addNew()
    >>> try:
    ...     checkInputCatalog(catalog)
    ... except InputCatalogError as error:
    ...     print(error)
    mergedSources row 0 (id 1) has no footprint
    >>> footprint = Footprint(SpanSet(Box2I(Point2I(2, 2), Extent2I(4, 4))))
    >>> _ = footprint.addPeak(3, 3, 1.0)
    >>> record.setFootprint(footprint)
    >>> checkInputCatalog(catalog, Box2I(Point2I(0, 0), Extent2I(10, 10)))
    """
    seen: dict[int, int] = {}
    peakRows: dict[int, int] = {}
    nPeaks = 0
    largest: tuple[int, int] | None = None  # (id, row) of the largest id
    for row, record in enumerate(mergedSources):
        sourceId = record.getId()
        if record.getParent() != 0:
            raise InputCatalogError(f"mergedSources row {row} (id {sourceId}) is a child of {record.getParent()}: "
                                    "give the deblender parents only (children are what it makes)")
        if sourceId == 0:
            raise InputCatalogError(f"mergedSources row {row}: id 0 is the parent value of a record without "
                                    "parent, so its children would read back as parents; give parents ids > 0")
        if sourceId in seen:
            raise InputCatalogError(f"mergedSources row {row}: id {sourceId} repeats row {seen[sourceId]}")
        seen[sourceId] = row
        if largest is None or sourceId > largest[0]:
            largest = (sourceId, row)
        footprint = record.getFootprint()
        if footprint is None:
            raise InputCatalogError(f"mergedSources row {row} (id {sourceId}) has no footprint")
        spans = footprint.getSpans()
        if bbox is not None and spans.clippedTo(bbox).getArea() != spans.getArea():
            raise InputCatalogError(f"mergedSources row {row} (id {sourceId}): the footprint (bbox "
                                    f"{spans.getBBox()}) has pixels off the exposure ({bbox})")
        for peak in footprint.getPeaks():
            peakId = peak.getId()
            if peakId in peakRows:
                first = peakRows[peakId]
                where = (f"row {row} (id {sourceId}) has peak id {peakId} twice" if first == row else
                         f"rows {first} and {row} (ids {mergedSources[first].getId()} and {sourceId}) both have "
                         f"peak id {peakId}")
                raise InputCatalogError(f"mergedSources {where}: peak ids must be unique, as each child is "
                                        "matched to its peak by deblend_peakId")
            peakRows[peakId] = row
        nPeaks += len(footprint.getPeaks())
    # Children get the ids after the largest one, at most one per peak; checked now, as the writer would
    # only find the overflow after the whole deblend.
    if largest is not None and largest[0] + nPeaks > INT64_MAX:
        largestId, row = largest
        raise InputCatalogError(f"mergedSources row {row} (id {largestId}): the children's ids (one per peak, "
                                f"{nPeaks}) follow the largest id and would pass the int64 maximum {INT64_MAX}; "
                                "renumber the parents with smaller ids")


#: Mask planes an exposure may lack without a config that names them being wrong: afw's default
#: planes and those of LSST's coadds. A plane that is neither one of these nor the exposure's is
#: most likely a typing error, which would otherwise silently mask nothing.
KNOWN_MASK_PLANES = frozenset({
    "BAD", "SAT", "INTRP", "CR", "EDGE", "DETECTED", "DETECTED_NEGATIVE", "SUSPECT", "NO_DATA",
    "BRIGHT_OBJECT", "CLIPPED", "CROSSTALK", "INEXACT_PSF", "INJECTED", "NOT_DEBLENDED", "REJECTED",
    "SENSOR_EDGE", "STREAK", "UNMASKEDNAN", "VIGNETTED",
})


def checkMaskPlanes(planes: Mapping[str, Iterable[str]], mask) -> None:
    """Refuse mask-plane names that neither the exposure's ``mask`` nor LSST knows.

    Parameters
    ----------
    planes : mapping of `str` to iterable of `str`
        The plane names by the config field that gives them, e.g.
        ``{"badMask": config.badMask, "maskLimits": config.maskLimits}``.
    mask : `~lsst.meas.extensions.madness.afw.image.Mask`
        The exposure's mask (``getMaskPlaneDict``).

    Raises
    ------
    UnknownMaskPlaneError
        Naming the field, the plane and the exposure's planes. A plane of :data:`KNOWN_MASK_PLANES`
        the exposure lacks is accepted: no pixel has it.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.afw import Extent2I
    >>> from lsst.meas.extensions.madness.afw.image import Mask
    >>> checkMaskPlanes({"badMask": ["BAD", "STREAK"]}, Mask(Extent2I(2, 2)))
    >>> try:
    ...     checkMaskPlanes({"badMask": ["SATURATED"]}, Mask(Extent2I(2, 2)))
    ... except UnknownMaskPlaneError as error:
    ...     print(error)  # doctest: +ELLIPSIS
    config.badMask: mask plane 'SATURATED' is not a plane of the exposure (BAD, SAT, ...) nor one of LSST's
    """
    defined = dict(mask.getMaskPlaneDict())
    for field, names in planes.items():
        for name in names:
            if name not in defined and name not in KNOWN_MASK_PLANES:
                raise UnknownMaskPlaneError(
                    f"config.{field}: mask plane {name!r} is not a plane of the exposure "
                    f"({', '.join(sorted(defined, key=lambda plane: defined[plane]))}) nor one of LSST's")


def checkInvariants(mergedSources, deblendedCatalog, absentBands=()) -> list[str]:
    """The violated invariants of the module docstring, one message each (empty when all hold);
    ``absentBands`` are the bands the exposure lacked.

    Parameters
    ----------
    mergedSources : `~lsst.meas.extensions.madness.afw.table.SourceCatalog`
        The deblend step's input parents.
    deblendedCatalog : `~lsst.meas.extensions.madness.afw.table.SourceCatalog`
        Its output: the parents, then their children.
    absentBands : sequence of `str`, optional
        Bands the exposure lacked, whose ``madness_flux_<band>`` columns must be NaN.

    Returns
    -------
    problems : `list` [`str`]
        One message per violation, naming the record; empty when every invariant holds.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.afw import Box2I, Extent2I, Footprint, Point2I, SpanSet
    >>> from lsst.meas.extensions.madness.afw.table import SourceCatalog, SourceTable
    >>> parents = SourceCatalog(SourceTable.make(SourceTable.makeMinimalSchema()))
    >>> footprint = Footprint(SpanSet(Box2I(Point2I(2, 2), Extent2I(4, 4))))
    >>> _ = footprint.addPeak(3, 3, 1.0)
    >>> parents.addNew().setFootprint(footprint)
    >>> output = SourceCatalog(parents.getTable())
    >>> output.extend(parents, deep=True)                  # the parent, but not its child
    >>> checkInvariants(parents, output)
    ['parent 1 has 1 peaks to model and 0 children']
    """
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
