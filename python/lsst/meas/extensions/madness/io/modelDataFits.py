"""The deblender's models of one exposure in one FITS file: every child's full model, re-drawable without networks.

==============  ===========================================================================
HDU             content
==============  ===========================================================================
primary         no data; ``MDFORMAT = 'MADNESS-MODELDATA'``, ``MDVERS = 1``,
                ``BANDS = 'u,g,...'`` (the models' bands, in order) and ``TODEBLND``: per
                band, the deblender's pixel units per exposure unit (comma-separated)
``PARENTS``     one row per modelled parent: ``parent_id`` (int64); its canvas
                ``x0, y0, width, height`` (int32, exposure pixel coordinates); ``method``
                and ``fallbackReason`` (strings); ``iterations`` (int32); ``converged``,
                ``timedOut`` (logical); ``runtime`` (ms) and ``logLikelihood`` (float64);
                ``nChild`` (int32)
``CHILDREN``    one row per child, grouped by parent in ``PARENTS`` order and in peak order
                within a parent: ``parent_id``, ``child_id`` (the deblended catalogue's id,
                0 if unknown), ``peak_id`` (int64); the stamp's corner on the canvas
                ``row, col`` and its size ``height, width`` (int32); ``logPrior`` (float64,
                NaN for children of no MADNESS fit); the variable-length float32 columns
                ``latent`` (D values for a MADNESS child, none otherwise) and ``model``
                (the stamp, bands × height × width values in C order)
==============  ===========================================================================

The stamps are in the EXPOSURE's pixel units (the in-memory models' divided by ``TODEBLND``),
float32: :meth:`~lsst.meas.extensions.madness.deblend.blendModel.ModelData.renderChild` draws a
child from them alone, exactly as the deblender fitted it (to float32 precision), with no model
weights. The latents are kept as well, so that a child of a MADNESS fit can be decoded again with
the models that made it (its ``model`` is then the decoded stamp, convolved and shifted as the
fit drew it). :func:`readModelDataFits` gives the models back in the deblender's units, as the
deblend tasks return them.

Only each child's stamp is stored, not its parent's canvas: 48.6 kB per child with the shipped
models (6 bands, 45×45 stamps), 746 kB for a simulated 205×205 field of 15 children, a quarter
of its exposure file (``doc/file-formats.md``).
"""

from __future__ import annotations

from os import PathLike
from typing import TYPE_CHECKING

import numpy as np
from astropy.io import fits

from .atomic import atomicPath
from .fitsFile import FitsReader

if TYPE_CHECKING:
    from ..deblend.blendModel import ModelData

__all__ = ["MODEL_DATA_FORMAT", "MODEL_DATA_VERSION", "readModelDataFits", "writeModelDataFits"]

#: ``MDFORMAT`` of the primary header: what the file is.
MODEL_DATA_FORMAT = "MADNESS-MODELDATA"
#: ``MDVERS``: the version of the layout that this module writes and reads.
MODEL_DATA_VERSION = 1

_PARENT_COLUMNS = {"parent_id": "i", "x0": "i", "y0": "i", "width": "i", "height": "i", "method": "any",
                   "fallbackReason": "any", "iterations": "i", "converged": "any", "timedOut": "any",
                   "runtime": "f", "logLikelihood": "f", "nChild": "i"}
_CHILD_COLUMNS = {"parent_id": "i", "child_id": "i", "peak_id": "i", "row": "i", "col": "i", "height": "i",
                  "width": "i", "logPrior": "f", "latent": "any", "model": "any"}


def _text(values: list[str], name: str) -> fits.Column:
    # "0A" is not a FITS column: a column of empty strings is one character wide.
    width = max([len(v) for v in values] + [1])
    return fits.Column(name=name, format=f"{width}A", array=np.array(values, dtype=f"U{width}"))


def _variable(arrays: list[np.ndarray], name: str) -> fits.Column:
    # An object array, so that numpy does not try to stack stamps of one size into a 2-d array.
    column = np.empty(len(arrays), dtype=object)
    column[:] = [np.ascontiguousarray(a, dtype=np.float32).ravel() for a in arrays]
    return fits.Column(name=name, format="PE()", array=column)


def writeModelDataFits(modelData: ModelData, path: str | PathLike) -> None:
    """Write ``modelData`` to ``path`` (atomically; overwrites it).

    Parameters
    ----------
    modelData
        The models, as a deblend task returns them (``Struct.modelData``).
    path
        The file.

    Raises
    ------
    ValueError
        If a parent has no canvas box, or its peak ids do not match its children.
    """
    bands = tuple(modelData.bands)
    nBands = len(bands)
    scale = np.ones(nBands) if modelData.toDeblender is None else np.asarray(modelData.toDeblender, np.float64)
    if scale.shape != (nBands,):
        raise ValueError(f"toDeblender has shape {scale.shape} for {nBands} bands")
    parents: dict[str, list] = {name: [] for name in _PARENT_COLUMNS}
    children: dict[str, list] = {name: [] for name in _CHILD_COLUMNS}
    for parentId, model in modelData.blends.items():
        if parentId not in modelData.boxes:
            raise ValueError(f"parent {parentId} has a model but no canvas box")
        box = modelData.boxes[parentId]
        nChild = len(model.children)
        peakIds = modelData.peakIds.get(parentId)
        if peakIds is None or len(peakIds) != nChild:
            raise ValueError(f"parent {parentId} has {nChild} children but peak ids {peakIds}: each child is "
                             "stored under its peak's id")
        childIds = modelData.childIds.get(parentId) or [0] * nChild
        if len(childIds) != nChild:
            raise ValueError(f"parent {parentId} has {nChild} children but child ids {childIds}")
        for name, value in (("parent_id", parentId), ("x0", box.getMinX()), ("y0", box.getMinY()),
                            ("width", box.getWidth()), ("height", box.getHeight()), ("method", model.method),
                            ("fallbackReason", model.fallbackReason), ("iterations", model.iterations),
                            ("converged", model.converged), ("timedOut", model.timedOut),
                            ("runtime", model.runtime), ("logLikelihood", model.logLikelihood), ("nChild", nChild)):
            parents[name].append(value)
        for k, image in enumerate(model.children.images):
            height, width = image.shape[-2:]
            children["parent_id"].append(parentId)
            children["child_id"].append(int(childIds[k]))
            children["peak_id"].append(int(peakIds[k]))
            children["row"].append(int(model.children.rows[k]))
            children["col"].append(int(model.children.cols[k]))
            children["height"].append(height)
            children["width"].append(width)
            children["logPrior"].append(float(model.logPrior[k]) if model.logPrior is not None else np.nan)
            children["latent"].append(np.zeros(0) if model.latents is None else np.asarray(model.latents[k]))
            children["model"].append(np.asarray(image, np.float64) / scale[:, None, None])
    primary = fits.PrimaryHDU()
    primary.header["MDFORMAT"] = (MODEL_DATA_FORMAT, "meas_extensions_madness model data")
    primary.header["MDVERS"] = (MODEL_DATA_VERSION, "layout version")
    primary.header["BANDS"] = (",".join(bands), "bands of the models, in order")
    # repr keeps every digit, so the deblender's units come back exactly. No comment: six bands' worth of
    # digits overflow one card, and astropy would warn that it cuts the comment of a long (CONTINUE) value.
    primary.header["TODEBLND"] = ",".join(repr(float(s)) for s in scale)
    primary.header["MODUNITS"] = ("exposure", "model stamps in exposure units")
    parentHdu = fits.BinTableHDU.from_columns([
        fits.Column(name="parent_id", format="K", array=np.array(parents["parent_id"], np.int64)),
        *(fits.Column(name=name, format="J", array=np.array(parents[name], np.int32))
          for name in ("x0", "y0", "width", "height")),
        _text(parents["method"], "method"),
        _text(parents["fallbackReason"], "fallbackReason"),
        fits.Column(name="iterations", format="J", array=np.array(parents["iterations"], np.int32)),
        fits.Column(name="converged", format="L", array=np.array(parents["converged"], bool)),
        fits.Column(name="timedOut", format="L", array=np.array(parents["timedOut"], bool)),
        fits.Column(name="runtime", format="D", unit="ms", array=np.array(parents["runtime"], np.float64)),
        fits.Column(name="logLikelihood", format="D", array=np.array(parents["logLikelihood"], np.float64)),
        fits.Column(name="nChild", format="J", array=np.array(parents["nChild"], np.int32)),
    ], name="PARENTS")
    childHdu = fits.BinTableHDU.from_columns([
        *(fits.Column(name=name, format="K", array=np.array(children[name], np.int64))
          for name in ("parent_id", "child_id", "peak_id")),
        *(fits.Column(name=name, format="J", array=np.array(children[name], np.int32))
          for name in ("row", "col", "height", "width")),
        fits.Column(name="logPrior", format="D", array=np.array(children["logPrior"], np.float64)),
        _variable(children["latent"], "latent"),
        _variable(children["model"], "model"),
    ], name="CHILDREN")
    with atomicPath(path) as temporary:
        fits.HDUList([primary, parentHdu, childHdu]).writeto(temporary, overwrite=True)


def _readHeader(reader: FitsReader) -> tuple[tuple[str, ...], np.ndarray]:
    header = reader.primaryHeader
    if header.get("MDFORMAT") != MODEL_DATA_FORMAT:
        raise reader.error(f"MDFORMAT = {header.get('MDFORMAT')!r}, not {MODEL_DATA_FORMAT!r}: not a model-data file",
                           "PRIMARY")
    if header.get("MDVERS") != MODEL_DATA_VERSION:
        raise reader.error(f"MDVERS = {header.get('MDVERS')!r}; this reader knows version {MODEL_DATA_VERSION}",
                           "PRIMARY")
    bands = tuple(b for b in str(header.get("BANDS", "")).split(",") if b)
    if not bands or len(set(bands)) != len(bands):
        raise reader.error(f"BANDS = {header.get('BANDS')!r}: expected distinct comma-separated bands", "PRIMARY")
    try:
        scale = np.array([float(v) for v in str(header.get("TODEBLND", "")).split(",")])
    except ValueError:
        scale = np.zeros(0)
    if scale.shape != (len(bands),) or not (np.isfinite(scale) & (scale > 0)).all():
        raise reader.error(f"TODEBLND = {header.get('TODEBLND')!r}: expected one positive number per band of "
                           f"{list(bands)}", "PRIMARY")
    return bands, scale


def _strings(values) -> list[str]:
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


def readModelDataFits(path: str | PathLike) -> ModelData:
    """Read a file written by :func:`writeModelDataFits`, checking what it reads.

    Parameters
    ----------
    path
        The file.

    Returns
    -------
    ModelData
        The models in the deblender's units (``toDeblender`` from ``TODEBLND``), with their canvas
        boxes, peak ids and child ids.

    Raises
    ------
    FitsFormatError
        Naming the file, extension, column and row: not a model-data file (``MDFORMAT``), an unknown
        ``MDVERS``, bad ``BANDS`` or ``TODEBLND``, a missing extension or column, a repeated parent, a
        child of an unknown parent, a parent whose ``nChild`` differs from its rows, a canvas or stamp of
        no pixel, a stamp off its canvas, a ``model`` whose length is not bands × height × width or that
        is not finite, latents of different lengths within a parent.
    """
    from ..afw.geom import Box2I, Extent2I, Point2I
    from ..deblend.blendModel import BlendModel, ModelData
    from ..deblend.footprints import ChildModels

    with FitsReader(path) as reader:
        bands, scale = _readHeader(reader)
        parents = reader.table("PARENTS", _PARENT_COLUMNS)
        children = reader.table("CHILDREN", _CHILD_COLUMNS)
        parentIds = np.asarray(parents["parent_id"]).astype(np.int64)
        unique, first = np.unique(parentIds, return_index=True)
        if unique.size != parentIds.size:
            row = int(np.setdiff1d(np.arange(parentIds.size), first)[0])
            raise reader.error(f"parent {parentIds[row]} appears more than once", "PARENTS", "parent_id", row)
        geometry = {name: np.asarray(parents[name]).astype(np.int64) for name in ("x0", "y0", "width", "height")}
        for name in ("width", "height"):
            bad = np.flatnonzero(geometry[name] <= 0)
            if bad.size:
                raise reader.error(f"a canvas of {geometry[name][bad[0]]} pixels", "PARENTS", name, int(bad[0]))
        childParents = np.asarray(children["parent_id"]).astype(np.int64)
        unknown = np.flatnonzero(~np.isin(childParents, parentIds))
        if unknown.size:
            row = int(unknown[0])
            raise reader.error(f"parent {childParents[row]} is not in PARENTS", "CHILDREN", "parent_id", row)
        columns = {name: np.asarray(children[name]).astype(np.int64)
                   for name in ("child_id", "peak_id", "row", "col", "height", "width")}
        for name in ("height", "width"):
            bad = np.flatnonzero(columns[name] <= 0)
            if bad.size:
                raise reader.error(f"a stamp of {columns[name][bad[0]]} pixels", "CHILDREN", name, int(bad[0]))
        logPriors = np.asarray(children["logPrior"]).astype(np.float64)
        latents, stamps = children["latent"], children["model"]
        # One stable sort, not a scan of CHILDREN per parent: a patch has tens of thousands of each.
        order = np.argsort(childParents, kind="stable")
        starts = np.searchsorted(childParents[order], parentIds, side="left")
        ends = np.searchsorted(childParents[order], parentIds, side="right")
        methods, reasons = _strings(parents["method"]), _strings(parents["fallbackReason"])
        modelData = ModelData(bands, toDeblender=scale)
        for index, parentId in enumerate(parentIds.tolist()):
            rows = order[starts[index]:ends[index]]
            nChild = int(parents["nChild"][index])
            if rows.size != nChild:
                raise reader.error(f"nChild = {nChild} but CHILDREN has {rows.size} rows of parent {parentId}",
                                   "PARENTS", "nChild", index)
            width, height = int(geometry["width"][index]), int(geometry["height"][index])
            images, parentLatents = [], []
            for row in rows.tolist():
                h, w = int(columns["height"][row]), int(columns["width"][row])
                r, c = int(columns["row"][row]), int(columns["col"][row])
                if r < 0 or c < 0 or r + h > height or c + w > width:
                    raise reader.error(f"a {h}×{w} stamp at (row {r}, col {c}) is off its {height}×{width} canvas",
                                       "CHILDREN", "row", row)
                values = np.asarray(stamps[row], dtype=np.float32)
                if values.size != len(bands) * h * w:
                    raise reader.error(f"{values.size} values for {len(bands)} bands × {h} × {w}", "CHILDREN",
                                       "model", row)
                if not np.isfinite(values).all():
                    raise reader.error("model values that are not finite", "CHILDREN", "model", row)
                images.append(values.reshape(len(bands), h, w).astype(np.float64) * scale[:, None, None])
                parentLatents.append(np.asarray(latents[row], dtype=np.float32))
            sizes = {latent.size for latent in parentLatents}
            if len(sizes) > 1:
                raise reader.error(f"latents of lengths {sorted(sizes)} among the children of parent {parentId}",
                                   "CHILDREN", "latent", int(rows[0]))
            hasLatents = bool(sizes) and sizes != {0}
            childModels = ChildModels(images, columns["row"][rows].copy(), columns["col"][rows].copy())
            modelData.blends[parentId] = BlendModel(
                childModels, int(parents["iterations"][index]), bool(parents["converged"][index]),
                float(parents["runtime"][index]), methods[index], float(parents["logLikelihood"][index]),
                logPrior=logPriors[rows].copy() if np.isfinite(logPriors[rows]).any() else None,
                latents=np.stack(parentLatents) if hasLatents else None,
                fallbackReason=reasons[index], timedOut=bool(parents["timedOut"][index]))
            modelData.boxes[parentId] = Box2I(Point2I(int(geometry["x0"][index]), int(geometry["y0"][index])),
                                              Extent2I(width, height))
            modelData.peakIds[parentId] = columns["peak_id"][rows].tolist()
            modelData.childIds[parentId] = columns["child_id"][rows].tolist()
    return modelData
