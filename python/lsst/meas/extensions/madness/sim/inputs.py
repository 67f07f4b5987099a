"""TestFields written as deblender (``run_task``) inputs, with their truth.

For each field ``<name>`` three files:

``<name>_exposure.fits``
    The multiband exposure (package format, :doc:`/file-formats`): noisy image, variance
    and one PSF kernel per band, in ADU of the survey's coadds (``MAGZERO`` per band), with a WCS.
``<name>_parents.fits``
    The parent catalogue from :func:`~lsst.meas.extensions.madness.detect.detectParents`
    on the band-combined detection image: footprints from photutils segmentation, and
    peaks either at the true centres (``peaks="truth"``, the paper's setting; each peak's
    ``truth_index`` is its galaxy's row in the truth) or from the peak finder
    (``peaks="detected"``, the realistic setting).
``<name>_truth.fits``
    ``TRUTH`` table (one row per galaxy: catalogue parameters, true ``x``, ``y``,
    ``flux_<band>`` in ADU, ``stamp_x0``, ``stamp_y0``), image cubes ``ISOLATED`` and
    ``ISOLATED_NOISY`` (``(galaxy, band, y, x)`` stamps) and ``NOISELESS`` (the field's
    summed noiseless galaxies). Header keywords ``KIND``, ``SPLIT``, ``SEED``, ``INDEX``,
    ``BANDS``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from astropy.io import fits
from astropy.table import Table

from ..afw import Box2I, Extent2I, MultibandExposure, Point2I
from ..afw.table import SourceCatalog
from ..detect import detectParents
from ..io.errors import FitsFormatError
from .datasets import Scene, TestFields
from .parallel import makeScenes

__all__ = ["FieldFiles", "FieldTruth", "fieldExposure", "fieldInputs", "writeFieldInputs", "writeTestFieldInputs",
           "readFieldTruth", "readFieldInputs"]

PeakSource = Literal["truth", "detected"]

#: Pixels within which a peak counts as finding a galaxy, in the summaries of written fields.
MATCH_RADIUS = 3.0


@dataclass(frozen=True)
class FieldFiles:
    """The three files written for one field and what detection found."""

    exposure: Path
    parents: Path
    truth: Path
    nGalaxies: int
    nParents: int
    nPeaks: int
    #: Galaxies with a peak within ``MATCH_RADIUS`` pixels of their true centre.
    nMatched: int
    #: Peaks with no galaxy within ``MATCH_RADIUS`` pixels.
    nUnmatchedPeaks: int


@dataclass(frozen=True, eq=False)
class FieldTruth:
    """The content of a ``<name>_truth.fits`` file."""

    truth: Table
    isolated: np.ndarray
    isolatedNoisy: np.ndarray
    noiseless: np.ndarray
    bands: tuple[str, ...]
    header: dict


def fieldExposure(scene: Scene, dataset: TestFields) -> MultibandExposure:
    """The noisy field of ``scene`` as a :class:`MultibandExposure` with the band PSFs, the survey's
    calibration (its coadds' ADU: written as ``MAGZERO``) and a tangent-plane WCS of the survey's pixel
    scale centred on ``SIMULATED_FIELD_CENTRE``."""
    height, width = scene.image.shape[1:]
    conditions = dataset.renderer.conditions
    bbox = Box2I(Point2I(0, 0), Extent2I(width, height))
    return MultibandExposure.fromArrays(
        dataset.bands,
        scene.image,
        np.zeros(scene.image.shape, np.int32),
        scene.variance,
        bbox=bbox,
        psfs=dataset.renderer.psfs,
        photoCalibs=[conditions.photoCalib(band) for band in dataset.bands],
        wcs=conditions.skyWcs(bbox),
    )


def fieldInputs(scene: Scene, dataset: TestFields,
                peaks: PeakSource = "truth") -> tuple[MultibandExposure, SourceCatalog]:
    """The deblender's inputs of one field: its exposure (:func:`fieldExposure`) and its parent catalogue.

    The parents come from :func:`~lsst.meas.extensions.madness.detect.detectParents` with peaks at the
    true centres (``peaks="truth"``) or from the peak finder (``peaks="detected"``). Written as files by
    :func:`writeFieldInputs`, put in a data butler by ``madness-sim butler``.
    """
    if peaks not in ("truth", "detected"):
        raise ValueError(f"peaks must be 'truth' or 'detected', got {peaks!r}")
    mExposure = fieldExposure(scene, dataset)
    catalog = detectParents(mExposure, peaks=scene.positions if peaks == "truth" else "detected")
    return mExposure, catalog


def writeFieldInputs(
    scene: Scene, dataset: TestFields, directory: str | os.PathLike, name: str, peaks: PeakSource = "truth"
) -> FieldFiles:
    """Write one field's exposure, parent catalogue and truth (see the module docstring)."""
    mExposure, catalog = fieldInputs(scene, dataset, peaks)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    found = np.array([[p.getFx(), p.getFy()] for record in catalog for p in record.getFootprint().getPeaks()])
    distance = np.hypot(*(scene.positions[:, None, :] - found.reshape(1, -1, 2)).transpose(2, 0, 1))
    files = FieldFiles(
        exposure=directory / f"{name}_exposure.fits",
        parents=directory / f"{name}_parents.fits",
        truth=directory / f"{name}_truth.fits",
        nGalaxies=len(scene),
        nParents=len(catalog),
        nPeaks=len(found),
        nMatched=int(np.sum(distance.min(axis=1, initial=np.inf) <= MATCH_RADIUS)),
        nUnmatchedPeaks=int(np.sum(distance.min(axis=0, initial=np.inf) > MATCH_RADIUS)),
    )
    mExposure.writeFits(files.exposure)
    catalog.writeFits(files.parents, bbox=mExposure.getBBox())
    header = fits.Header()
    header["KIND"] = (scene.meta["kind"], "simulated data set")
    header["SPLIT"] = (scene.meta["split"], "galaxy split")
    header["SEED"] = (scene.meta["seed"], "data set seed")
    header["INDEX"] = (scene.meta["index"], "scene index in the data set")
    header["BANDS"] = (",".join(dataset.bands), "band order of the cubes")
    header["PEAKS"] = (peaks, "parent peaks: truth or detected")
    hdus = [
        fits.PrimaryHDU(header=header),
        fits.BinTableHDU(scene.truth, name="TRUTH"),
        fits.ImageHDU(scene.isolated, name="ISOLATED"),
        fits.ImageHDU(scene.isolatedNoisy, name="ISOLATED_NOISY"),
        fits.ImageHDU(scene.noiseless, name="NOISELESS"),
    ]
    fits.HDUList(hdus).writeto(files.truth, overwrite=True)
    return files


def writeTestFieldInputs(
    dataset: TestFields,
    directory: str | os.PathLike,
    nFields: int,
    *,
    start: int = 0,
    peaks: PeakSource = "truth",
    workers: int | None = None,
    progress: bool = True,
) -> list[FieldFiles]:
    """Write fields ``start .. start + nFields`` as ``field_<nnnnn>_*.fits`` run_task inputs.

    Examples
    --------
    >>> import tempfile
    >>> from lsst.meas.extensions.madness.sim import SimulationConfig, generatePopulation
    >>> config = SimulationConfig(fieldSize=61, fieldInnerSize=20, fieldGalaxies=(2, 3))
    >>> fields = TestFields(generatePopulation(60, seed=5), bands=["g", "r"], config=config)
    >>> files = writeTestFieldInputs(fields, tempfile.mkdtemp(), 1, workers=1, progress=False)
    >>> files[0].exposure.name, files[0].nGalaxies == files[0].nPeaks
    ('field_00000_exposure.fits', True)
    """
    from tqdm.auto import tqdm

    if nFields < 1:
        raise ValueError(f"nFields must be at least 1, got {nFields}")
    written = []
    indices = range(start, start + nFields)
    with tqdm(total=nFields, unit="field", desc="run_task inputs", disable=not progress) as bar:
        for index, scene in zip(indices, makeScenes(dataset, indices, workers)):
            written.append(writeFieldInputs(scene, dataset, directory, f"field_{index:05d}", peaks))
            bar.update(1)
    return written


def readFieldTruth(path: str | os.PathLike) -> FieldTruth:
    """Read a ``<name>_truth.fits`` file; errors name the file and extension.

    Raises
    ------
    FitsFormatError
        Missing file or extension, or cubes whose shapes disagree with the table or bands.
    """
    try:
        hdul = fits.open(path)
    except FileNotFoundError:
        raise FitsFormatError("no such file", path=path) from None
    except OSError as error:
        raise FitsFormatError(f"not a FITS file ({error})", path=path) from None
    with hdul:
        names = [hdu.name for hdu in hdul]
        for extension in ("TRUTH", "ISOLATED", "ISOLATED_NOISY", "NOISELESS"):
            if extension not in names:
                raise FitsFormatError(f"missing extension; found {names}", path=path, extension=extension)
        header = dict(hdul[0].header)
        if "BANDS" not in header:
            raise FitsFormatError("primary header lacks the BANDS keyword", path=path, extension="PRIMARY")
        bands = tuple(str(header["BANDS"]).split(","))
        truth = Table(hdul["TRUTH"].data)
        cubes = {name: np.asarray(hdul[name].data, dtype=np.float32)
                 for name in ("ISOLATED", "ISOLATED_NOISY", "NOISELESS")}
    for name in ("ISOLATED", "ISOLATED_NOISY"):
        cube = cubes[name]
        if cube.ndim != 4 or cube.shape[:2] != (len(truth), len(bands)):
            raise FitsFormatError(
                f"shape {cube.shape} is not ({len(truth)} galaxies, {len(bands)} bands, y, x)",
                path=path, extension=name
            )
    if cubes["NOISELESS"].ndim != 3 or cubes["NOISELESS"].shape[0] != len(bands):
        raise FitsFormatError(f"shape {cubes['NOISELESS'].shape} is not ({len(bands)} bands, y, x)", path=path,
                              extension="NOISELESS")
    for column in ("x", "y", "stamp_x0", "stamp_y0", "galtileid"):
        if column not in truth.colnames:
            raise FitsFormatError("missing column", path=path, extension="TRUTH", column=column)
    return FieldTruth(truth, cubes["ISOLATED"], cubes["ISOLATED_NOISY"], cubes["NOISELESS"], bands, header)


def readFieldInputs(directory: str | os.PathLike, name: str) -> tuple[MultibandExposure, SourceCatalog, FieldTruth]:
    """Read back the three files :func:`writeFieldInputs` wrote for field ``name``."""
    directory = Path(directory)
    mExposure = MultibandExposure.readFits(directory / f"{name}_exposure.fits")
    catalog = SourceCatalog.readFits(directory / f"{name}_parents.fits", bbox=mExposure.getBBox())
    return mExposure, catalog, readFieldTruth(directory / f"{name}_truth.fits")
