"""Source catalogues with footprints, peaks and heavy-footprint pixels in one FITS file.

==============  ===========================================================================
HDU             content
==============  ===========================================================================
primary         no data; ``BBOX_X0, BBOX_Y0, BBOX_W, BBOX_H``: the image the footprints
                belong to (optional)
``SOURCES``     one row per record, one column per schema field (``id``, ``parent``, ...);
                ``TDOCn`` holds each field's doc, ``TAFWn`` its afw type code
``SPANS``       ``source_id, y, x0, x1`` (x1 inclusive), each source's spans in span order
``PEAKS``       ``source_id, id, i_x, i_y, f_x, f_y, peakValue`` (+ extra peak fields)
``HEAVY``       only when heavy footprints are present: ``source_id`` and the vector
                columns ``IMAGE, MASK, VARIANCE`` (one element per band), one row per
                footprint pixel in span order; header ``HEAVYTYP`` = ``SINGLE`` or
                ``MULTIBAND`` and ``BANDS``
==============  ===========================================================================

A record without a footprint has no SPANS or PEAKS rows.
"""

from __future__ import annotations

from os import PathLike

import numpy as np
from astropy.io import fits

from ..afw.detection import Footprint, HeavyFootprint, MultibandFootprint, PeakRecord, SpanSet
from ..afw.geom import Box2I, Extent2I, Point2I
from ..afw.table import FIELD_TYPES, Schema, SourceCatalog, SourceRecord, SourceTable
from .atomic import atomicPath
from .fitsFile import FitsReader

__all__ = ["writeSourceCatalogFits", "readSourceCatalogFits"]

_FITS_FORMATS = {"I": "J", "L": "K", "F": "E", "D": "D", "Flag": "L", "Angle": "D"}
_PEAK_COLUMNS = ("id", "i_x", "i_y", "f_x", "f_y", "peakValue")


def _heavyKind(catalog: SourceCatalog) -> tuple[str | None, tuple[str, ...]]:
    """Whether the catalogue's heavy footprints are single-band or multiband, and their bands."""
    kinds = set()
    bands: set[tuple[str, ...]] = set()
    for record in catalog:
        footprint = record.getFootprint()
        if isinstance(footprint, MultibandFootprint):
            kinds.add("MULTIBAND")
            bands.add(footprint.bands)
        elif isinstance(footprint, HeavyFootprint):
            kinds.add("SINGLE")
    if len(kinds) > 1 or len(bands) > 1:
        raise ValueError(
            "a catalogue's heavy footprints must all be single-band or all multiband with the same bands; "
            f"found {sorted(kinds)} with bands {sorted(bands)}"
        )
    return (kinds.pop() if kinds else None), (bands.pop() if bands else ())


def _sourcesHdu(catalog: SourceCatalog) -> fits.BinTableHDU:
    columns = []
    for field in catalog.schema.getFields():
        values = catalog.column(field.name)
        if field.type == "String":
            width = max([len(v) for v in values] + [1])
            column = fits.Column(name=field.name, format=f"{width}A", array=values.astype(str),
                                 unit=field.units or None)
        else:
            column = fits.Column(name=field.name, format=_FITS_FORMATS[field.type], array=values,
                                 unit=field.units or None)
        columns.append(column)
    hdu = fits.BinTableHDU.from_columns(columns, name="SOURCES")
    for i, field in enumerate(catalog.schema.getFields(), start=1):
        hdu.header[f"TDOC{i}"] = field.doc
        hdu.header[f"TAFW{i}"] = field.type
    return hdu


def _footprintRows(catalog: SourceCatalog):
    spanRows, heavyRows = [], []
    peakRows: list[tuple[int, PeakRecord]] = []
    for record in catalog:
        footprint = record.getFootprint()
        if footprint is None:
            continue
        sourceId = record.getId()
        spans = footprint.getSpans()
        spanRows.append((np.full(len(spans), sourceId, np.int64), spans.y, spans.x0, spans.x1))
        peakRows.extend((sourceId, peak) for peak in footprint.getPeaks())
        if isinstance(footprint, MultibandFootprint):
            heavyRows.append((sourceId, footprint.getImageArray(), footprint.getMaskArray(),
                              footprint.getVarianceArray()))
        elif isinstance(footprint, HeavyFootprint):
            heavyRows.append(
                (sourceId, footprint.getImageArray()[None], footprint.getMaskArray()[None],
                 footprint.getVarianceArray()[None])
            )
    return spanRows, peakRows, heavyRows


def _concat(parts, index, dtype):
    return np.concatenate([p[index] for p in parts]).astype(dtype) if parts else np.zeros(0, dtype)


def _extraFormat(values) -> str:
    if all(isinstance(v, (bool, np.bool_)) for v in values):
        return "L"
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
        return "K"
    if all(isinstance(v, (int, float, np.integer, np.floating)) for v in values):
        return "D"
    return f"{max([len(str(v)) for v in values] + [1])}A"  # "0A" is not a FITS column


def _peaksHdu(peakRows) -> fits.BinTableHDU:
    extras = sorted({name for _, peak in peakRows for name in peak.extra})
    columns = [
        fits.Column(name="source_id", format="K", array=np.array([s for s, _ in peakRows], np.int64)),
        fits.Column(name="id", format="K", array=np.array([p.id for _, p in peakRows], np.int64)),
        fits.Column(name="i_x", format="J", array=np.array([p.ix for _, p in peakRows], np.int32)),
        fits.Column(name="i_y", format="J", array=np.array([p.iy for _, p in peakRows], np.int32)),
        fits.Column(name="f_x", format="D", array=np.array([p.fx for _, p in peakRows], np.float64)),
        fits.Column(name="f_y", format="D", array=np.array([p.fy for _, p in peakRows], np.float64)),
        fits.Column(name="peakValue", format="D", array=np.array([p.peakValue for _, p in peakRows], np.float64)),
    ]
    for name in extras:
        missing = [s for s, p in peakRows if name not in p.extra]
        if missing:
            raise ValueError(f"peak field {name!r} is set on some peaks but not on those of source {missing[0]}")
        values = [p.extra[name] for _, p in peakRows]
        fmt = _extraFormat(values)
        array = np.array([str(v) for v in values]) if fmt.endswith("A") else np.array(values)
        columns.append(fits.Column(name=name, format=fmt, array=array))
    return fits.BinTableHDU.from_columns(columns, name="PEAKS")


def writeSourceCatalogFits(catalog: SourceCatalog, path: str | PathLike, bbox: Box2I | None = None) -> None:
    """Write a catalogue and its footprints (overwrites ``path``).

    ``bbox`` (default: the region of the first footprint that has one) is recorded so the
    reader can check that every span lies inside the image.
    """
    heavyKind, bands = _heavyKind(catalog)
    if bbox is None:
        bbox = next(
            (r.getFootprint().getRegion() for r in catalog
             if isinstance(r.getFootprint(), Footprint) and r.getFootprint().getRegion() is not None),
            None,
        )
    primary = fits.PrimaryHDU()
    if bbox is not None:
        primary.header["BBOX_X0"] = (bbox.getMinX(), "image bounding box the footprints belong to")
        primary.header["BBOX_Y0"] = bbox.getMinY()
        primary.header["BBOX_W"] = bbox.getWidth()
        primary.header["BBOX_H"] = bbox.getHeight()
    spanRows, peakRows, heavyRows = _footprintRows(catalog)
    spansHdu = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="source_id", format="K", array=_concat(spanRows, 0, np.int64)),
            fits.Column(name="y", format="J", array=_concat(spanRows, 1, np.int32)),
            fits.Column(name="x0", format="J", array=_concat(spanRows, 2, np.int32)),
            fits.Column(name="x1", format="J", array=_concat(spanRows, 3, np.int32)),
        ],
        name="SPANS",
    )
    hdus = [primary, _sourcesHdu(catalog), spansHdu, _peaksHdu(peakRows)]
    if heavyKind is not None:
        nBands = len(bands) if heavyKind == "MULTIBAND" else 1
        sourceIds = np.concatenate([np.full(image.shape[1], s, np.int64) for s, image, _, _ in heavyRows])
        image = np.concatenate([rows[1].T for rows in heavyRows]).astype(np.float32)
        mask = np.concatenate([rows[2].T for rows in heavyRows]).astype(np.int32)
        variance = np.concatenate([rows[3].T for rows in heavyRows]).astype(np.float32)
        heavyHdu = fits.BinTableHDU.from_columns(
            [
                fits.Column(name="source_id", format="K", array=sourceIds),
                fits.Column(name="IMAGE", format=f"{nBands}E", array=image),
                fits.Column(name="MASK", format=f"{nBands}J", array=mask),
                fits.Column(name="VARIANCE", format=f"{nBands}E", array=variance),
            ],
            name="HEAVY",
        )
        heavyHdu.header["HEAVYTYP"] = heavyKind
        heavyHdu.header["BANDS"] = ",".join(bands)
        hdus.append(heavyHdu)
    with atomicPath(path) as temporary:
        fits.HDUList(hdus).writeto(temporary, overwrite=True)


def _readSchema(reader: FitsReader, hdu) -> Schema:
    schema = Schema()
    header = hdu.header
    for i, column in enumerate(hdu.columns, start=1):
        code = header.get(f"TAFW{i}")
        if code is None:
            code = _typeFromFormat(column.format)
        if code not in FIELD_TYPES:
            raise reader.error(f"unknown field type {code!r} (TAFW{i})", "SOURCES", column=column.name)
        schema.addField(column.name, type=code, doc=header.get(f"TDOC{i}", ""), units=column.unit or "")
    return schema


def _typeFromFormat(fmt) -> str:
    code = str(fmt)[-1]
    return {"J": "I", "I": "I", "K": "L", "E": "F", "D": "D", "L": "Flag", "A": "String", "B": "I"}.get(code, code)


def _readBBox(reader: FitsReader) -> Box2I | None:
    header = reader.primaryHeader
    keys = ("BBOX_X0", "BBOX_Y0", "BBOX_W", "BBOX_H")
    if not all(k in header for k in keys):
        return None
    x0, y0, w, h = (header[k] for k in keys)
    return Box2I(Point2I(x0, y0), Extent2I(w, h))


def _groups(sourceIds: np.ndarray):
    """Row indices of each source id, keeping file order within a source."""
    order = np.argsort(sourceIds, kind="stable")
    ids, starts = np.unique(sourceIds[order], return_index=True)
    return dict(zip(ids.tolist(), np.split(order, starts[1:])))


def _checkKnown(reader, extension, sourceIds, known: np.ndarray) -> None:
    unknown = np.flatnonzero(~np.isin(sourceIds, known))
    if unknown.size:
        row = int(unknown[0])
        raise reader.error(f"source_id {sourceIds[row]} is not an id in SOURCES", extension, "source_id", row)


def _readSources(reader: FitsReader) -> tuple[SourceCatalog, np.ndarray]:
    data = reader.table("SOURCES", {"id": "i", "parent": "i"})
    schema = _readSchema(reader, reader.hdu("SOURCES"))
    ids = np.asarray(data["id"]).astype(np.int64)
    parents = np.asarray(data["parent"]).astype(np.int64)
    unique, first = np.unique(ids, return_index=True)
    if unique.size != ids.size:
        duplicated = np.setdiff1d(np.arange(ids.size), first)[0]
        raise reader.error(f"id {ids[duplicated]} appears more than once", "SOURCES", "id", int(duplicated))
    orphans = np.flatnonzero((parents != 0) & ~np.isin(parents, ids))
    if orphans.size:
        row = int(orphans[0])
        raise reader.error(f"parent {parents[row]} is not an id in the catalogue", "SOURCES", "parent", row)
    catalog = SourceCatalog(SourceTable(schema))
    columns = {}
    for field in schema.getFields():
        values = np.asarray(data[field.name])
        if field.type == "String":
            columns[field.name] = [str(v) for v in values]
        elif field.type == "Flag":
            columns[field.name] = values.astype(bool).tolist()
        else:
            columns[field.name] = values.astype(FIELD_TYPES[field.type]).tolist()
    names = list(columns)
    for row in range(ids.size):
        record = SourceRecord(catalog.table)
        record._values.update({name: columns[name][row] for name in names})
        catalog.append(record)
    return catalog, ids


def _readSpans(reader: FitsReader, ids: np.ndarray, bbox: Box2I | None) -> dict[int, SpanSet]:
    data = reader.table("SPANS", {"source_id": "i", "y": "i", "x0": "i", "x1": "i"})
    sourceIds = np.asarray(data["source_id"]).astype(np.int64)
    y, x0, x1 = (np.asarray(data[c]).astype(np.int64) for c in ("y", "x0", "x1"))
    _checkKnown(reader, "SPANS", sourceIds, ids)
    backwards = np.flatnonzero(x1 < x0)
    if backwards.size:
        row = int(backwards[0])
        raise reader.error(f"x1 = {x1[row]} is less than x0 = {x0[row]}", "SPANS", "x1", row)
    if bbox is not None:
        for column, values, low, high in (
            ("y", y, bbox.getMinY(), bbox.getMaxY()),
            ("x0", x0, bbox.getMinX(), bbox.getMaxX()),
            ("x1", x1, bbox.getMinX(), bbox.getMaxX()),
        ):
            outside = np.flatnonzero((values < low) | (values > high))
            if outside.size:
                row = int(outside[0])
                raise reader.error(
                    f"{column} = {values[row]} is outside the image box {bbox} (source {sourceIds[row]})",
                    "SPANS",
                    column,
                    row,
                )
    spans = {}
    for sourceId, rows in _groups(sourceIds).items():
        spanSet = SpanSet.fromArrays(y[rows], x0[rows], x1[rows])
        if spanSet.getArea() != int((x1[rows] - x0[rows] + 1).sum()):
            raise reader.error(f"spans of source {sourceId} overlap", "SPANS", "x0", int(rows[0]))
        spans[sourceId] = spanSet
    return spans


def _readPeaks(reader: FitsReader, ids: np.ndarray, spans: dict[int, SpanSet]) -> dict[int, list[PeakRecord]]:
    columns = {"source_id": "i", "id": "i", "i_x": "i", "i_y": "i", "f_x": "f", "f_y": "f", "peakValue": "f"}
    data = reader.table("PEAKS", columns)
    sourceIds = np.asarray(data["source_id"]).astype(np.int64)
    _checkKnown(reader, "PEAKS", sourceIds, ids)
    values = {name: np.asarray(data[name]) for name in data.columns.names}
    for name in ("f_x", "f_y"):
        bad = np.flatnonzero(~np.isfinite(values[name]))
        if bad.size:
            raise reader.error(f"non-finite peak position {values[name][bad[0]]}", "PEAKS", name, int(bad[0]))
    extras = [name for name in data.columns.names if name != "source_id" and name not in _PEAK_COLUMNS]
    peaks: dict[int, list[PeakRecord]] = {}
    for sourceId, rows in _groups(sourceIds).items():
        # A footprint of peaks only (a deblend_zeroFlux child: its peak, no pixel) is allowed.
        spanSet = spans.get(sourceId)
        inside = (np.ones(len(rows), bool) if spanSet is None else
                  spanSet.containsPixels(values["i_x"][rows].astype(np.int64), values["i_y"][rows].astype(np.int64)))
        if not inside.all():
            row = int(rows[np.flatnonzero(~inside)[0]])
            raise reader.error(
                f"peak at ({values['i_x'][row]}, {values['i_y'][row]}) is outside the footprint of source {sourceId}",
                "PEAKS",
                "i_x",
                row,
            )
        peaks[sourceId] = [
            PeakRecord(
                int(values["id"][row]),
                int(values["i_x"][row]),
                int(values["i_y"][row]),
                float(values["f_x"][row]),
                float(values["f_y"][row]),
                float(values["peakValue"][row]),
                {name: _pythonScalar(values[name][row]) for name in extras},
            )
            for row in rows.tolist()
        ]
    return peaks


def _pythonScalar(value):
    if isinstance(value, (bytes, np.bytes_)):
        return value.decode()
    return value.item() if hasattr(value, "item") else value


def _readHeavy(reader: FitsReader, ids: np.ndarray, spans: dict[int, SpanSet]):
    hdu = reader.hdu("HEAVY")
    kind = hdu.header.get("HEAVYTYP")
    if kind not in ("SINGLE", "MULTIBAND"):
        raise reader.error(f"HEAVYTYP = {kind!r}; expected 'SINGLE' or 'MULTIBAND'", "HEAVY")
    bands = tuple(b for b in str(hdu.header.get("BANDS", "")).split(",") if b)
    if kind == "MULTIBAND" and not bands:
        raise reader.error("multiband heavy footprints need a BANDS keyword", "HEAVY")
    nBands = len(bands) if kind == "MULTIBAND" else 1
    data = reader.table("HEAVY", {"source_id": "i", "IMAGE": "f", "MASK": "i", "VARIANCE": "f"})
    sourceIds = np.asarray(data["source_id"]).astype(np.int64)
    _checkKnown(reader, "HEAVY", sourceIds, ids)
    planes = {}
    for name in ("IMAGE", "MASK", "VARIANCE"):
        array = np.asarray(data[name])
        array = array.reshape(array.shape[0], -1)
        if array.shape[1] != nBands:
            raise reader.error(f"{array.shape[1]} values per pixel for {nBands} band(s)", "HEAVY", name)
        planes[name] = array.astype(np.int32 if name == "MASK" else np.float32)
    heavy = {}
    for sourceId, rows in _groups(sourceIds).items():
        area = spans[sourceId].getArea() if sourceId in spans else 0
        if rows.size != area:
            raise reader.error(
                f"source {sourceId} has {rows.size} heavy pixels but its spans cover {area}",
                "HEAVY",
                "source_id",
                int(rows[0]),
            )
        heavy[sourceId] = tuple(planes[name][rows].T for name in ("IMAGE", "MASK", "VARIANCE"))
    return kind, bands, heavy


def readSourceCatalogFits(path: str | PathLike, bbox: Box2I | None = None) -> SourceCatalog:
    """Read a catalogue written by :func:`writeSourceCatalogFits`, checking what it reads.

    Parameters
    ----------
    path
        The file.
    bbox
        The image the footprints must lie in; defaults to the box recorded in the file, and
        must equal it when the file records one.

    Raises
    ------
    FitsFormatError
        Naming file, extension, column and row: missing extension or column, a recorded
        image box other than ``bbox``, wrong column types, duplicate ids, a parent that is not in the
        catalogue, a span or peak of an
        unknown source, a span with x1 < x0 or outside the image, overlapping spans, a peak
        outside its footprint, or heavy pixels that do not match their footprint.
    """
    with FitsReader(path) as reader:
        catalog, ids = _readSources(reader)
        recorded = _readBBox(reader)
        if bbox is not None and recorded is not None and recorded != bbox:
            # Footprints of another image could still fall inside this one's box, and be deblended on the
            # wrong pixels without a word.
            raise reader.error(f"BBOX_X0, BBOX_Y0, BBOX_W, BBOX_H describe the image {recorded}, not the one the "
                               f"catalogue is read for, {bbox}: the footprints belong to another image", "PRIMARY")
        bbox = recorded if bbox is None else bbox
        spans = _readSpans(reader, ids, bbox)
        peaks = _readPeaks(reader, ids, spans)
        heavyKind, bands, heavy = (None, (), {})
        if reader.has("HEAVY"):
            heavyKind, bands, heavy = _readHeavy(reader, ids, spans)
        for record in catalog:
            sourceId = record.getId()
            if sourceId not in spans and sourceId not in peaks:
                continue
            footprint = Footprint(spans.get(sourceId, SpanSet()), peaks.get(sourceId, []), bbox)
            if sourceId in heavy:
                image, mask, variance = heavy[sourceId]
                if heavyKind == "SINGLE":
                    footprint = HeavyFootprint(footprint, image[0], mask[0], variance[0])
                else:
                    record.setFootprint(MultibandFootprint(
                        bands, [HeavyFootprint(footprint, image[b], mask[b], variance[b]) for b in range(len(bands))]
                    ))
                    continue
            record.setFootprint(footprint)
    return catalog
