"""Fixed simulated sets as sharded HDF5 files, written by all cores and read back per galaxy.

A shard ``<kind>-<split>-<nnnnn>.h5`` holds consecutive scenes of one data set:

============================  ======================================================================
HDF5 path                     content
============================  ======================================================================
attribute ``description``     JSON: kind, split, seed, bands, geometry and survey conditions
attribute ``firstScene``      index of the shard's first scene; ``nScenes`` their number
``galaxies/<array>``          ``(galaxy, band, y, x)`` stamps, e.g. ``blended``, ``isolated``
``galaxies/scene``            index of each galaxy's scene
``galaxies/truth/<col>``      truth table columns (catalogue parameters, ``x``, ``y``, fluxes)
``scenes/<array>``            ``(scene, band, y, x)`` whole scenes (TestFields: ``image`` ...)
============================  ======================================================================

Arrays are float32, or float16 when asked (half the size). LSST coadd pixels exceed
float16's largest value (65504), so float16 arrays are stored divided by ``FLOAT16_SCALE``
(1e4, the paper's normalisation) and carry it as their ``scale`` attribute; the reader
multiplies it back. About 3 significant digits remain, ample for noisy pixels. Item ``k`` is made from its own
random stream (:mod:`.datasets`), so the files are the same whatever the number of worker
processes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from tqdm.auto import tqdm

from .datasets import Scene, _SimulatedSet
from .parallel import makeScenes

__all__ = ["FLOAT16_SCALE", "ShardSummary", "writeShards", "SimulationShards"]

_FLOAT16_MAX = float(np.finfo(np.float16).max)
FLOAT16_SCALE = 1e4


@dataclass(frozen=True)
class ShardSummary:
    """What :func:`writeShards` wrote and how fast."""

    paths: list[Path]
    nScenes: int
    nGalaxies: int
    seconds: float
    workers: int

    @property
    def galaxiesPerSecond(self) -> float:
        return self.nGalaxies / self.seconds if self.seconds > 0 else float("inf")


def _stack(scenes: list[Scene], name: str, dtype) -> np.ndarray:
    return np.concatenate([getattr(scene, name) for scene in scenes]).astype(dtype)


def _storeArray(group: h5py.Group, name: str, array: np.ndarray, dtype, path: Path) -> None:
    scale = FLOAT16_SCALE if dtype == np.float16 else 1.0
    scaled = array / scale
    if dtype == np.float16 and np.abs(scaled).max(initial=0.0) > _FLOAT16_MAX:
        raise OverflowError(f"{path}: {name} exceeds the float16 range even scaled by {scale}; write float32")
    group.create_dataset(name, data=scaled.astype(dtype)).attrs["scale"] = scale


def _writeShard(path: Path, dataset: _SimulatedSet, scenes: list[Scene], first: int, dtype) -> None:
    tmp = path.with_suffix(".h5.partial")
    with h5py.File(tmp, "w") as h5:
        h5.attrs["description"] = json.dumps(dataset.describe())
        h5.attrs["firstScene"] = first
        h5.attrs["nScenes"] = len(scenes)
        galaxies = h5.create_group("galaxies")
        for name in dataset.galaxyArrays:
            _storeArray(galaxies, name, _stack(scenes, name, np.float32), dtype, path)
        galaxies.create_dataset("scene", data=np.concatenate([np.full(len(s), first + i)
                                                              for i, s in enumerate(scenes)]))
        truth = galaxies.create_group("truth")
        for column in scenes[0].truth.colnames:
            truth.create_dataset(column, data=np.concatenate([np.asarray(s.truth[column]) for s in scenes]))
        group = h5.create_group("scenes")
        for name in dataset.sceneArrays:
            _storeArray(group, name, np.stack([getattr(s, name) for s in scenes]), dtype, path)
    # Renamed only when complete, so an interrupted run never leaves a shard that looks whole.
    os.replace(tmp, path)


def writeShards(
    dataset: _SimulatedSet,
    directory: str | os.PathLike,
    nScenes: int | None = None,
    *,
    start: int = 0,
    shardSize: int = 1000,
    float16: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> ShardSummary:
    """Make scenes ``start .. start + nScenes`` of ``dataset`` and write them as HDF5 shards.

    Parameters
    ----------
    dataset
        An :class:`~.datasets.IsolatedSims`, :class:`~.datasets.BlendedSims` or
        :class:`~.datasets.TestFields`.
    directory
        Created if needed; shards are named ``<kind>-<split>-<nnnnn>.h5`` after the index of
        their first scene divided by ``shardSize``.
    nScenes
        Number of scenes (default: the data set's length).
    shardSize
        Scenes per file.
    float16
        Store arrays as float16 instead of float32.
    workers
        Worker processes (default: all cores); 1 makes the scenes in this process.
    progress
        Show a progress bar (galaxies rendered) on stderr.

    Examples
    --------
    >>> import tempfile
    >>> from lsst.meas.extensions.madness.sim import IsolatedSims, generatePopulation
    >>> sims = IsolatedSims(generatePopulation(40, seed=2), bands=["r"])
    >>> summary = writeShards(sims, tempfile.mkdtemp(), 5, shardSize=2, workers=1, progress=False)
    >>> [p.name for p in summary.paths], summary.nGalaxies
    (['isolated-train-00000.h5', 'isolated-train-00001.h5', 'isolated-train-00002.h5'], 5)
    """
    nScenes = len(dataset) if nScenes is None else int(nScenes)
    if nScenes < 1 or start < 0 or shardSize < 1:
        raise ValueError(f"need nScenes >= 1, start >= 0 and shardSize >= 1, got {nScenes}, {start}, {shardSize}")
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    dtype = np.float16 if float16 else np.float32
    indices = range(start, start + nScenes)
    paths: list[Path] = []
    nGalaxies = 0
    began = time.perf_counter()
    bar = tqdm(total=nScenes, unit="scene", desc=f"{dataset.kind}/{dataset.split}", disable=not progress)
    scenes = makeScenes(dataset, indices, workers)
    try:
        pending: list[Scene] = []
        first = start
        for k, scene in zip(indices, scenes):
            pending.append(scene)
            nGalaxies += len(scene)
            bar.update(1)
            bar.set_postfix(galaxies=nGalaxies, refresh=False)
            if len(pending) == shardSize or k == indices[-1]:
                path = directory / f"{dataset.kind}-{dataset.split}-{first // shardSize:05d}.h5"
                _writeShard(path, dataset, pending, first, dtype)
                paths.append(path)
                first, pending = k + 1, []
    finally:
        bar.close()
        scenes.close()
    return ShardSummary(paths, nScenes, nGalaxies, time.perf_counter() - began, workers)


class SimulationShards:
    """Per-galaxy access to written shards; a map-style dataset for ``torch.utils.data.DataLoader``.

    Item ``i`` is a dict of float32 arrays (``arrays``, default every stored galaxy array)
    plus ``galtileid`` and ``scene``. Files are opened lazily in each process, so the object
    can be handed to DataLoader workers.

    Parameters
    ----------
    paths
        Shard files, or one directory whose ``*.h5`` files are all read (sorted by name).
    arrays
        Names of the galaxy arrays to return.

    Raises
    ------
    FileNotFoundError, ValueError
        Naming the file: no shards, a file that is not a shard, or shards of different
        data sets.
    """

    def __init__(self, paths: str | os.PathLike | Sequence[str | os.PathLike], arrays: Sequence[str] | None = None):
        if isinstance(paths, (str, os.PathLike)) and Path(paths).is_dir():
            directory = Path(paths)
            paths = sorted(directory.glob("*.h5"))
            if not paths:
                raise FileNotFoundError(f"no *.h5 shards in {directory}")
        elif isinstance(paths, (str, os.PathLike)):
            paths = [paths]
        self.paths = [Path(p) for p in paths]
        counts: list[int] = []
        descriptions: list[dict] = []
        stored: list[str] = []
        for path in self.paths:
            try:
                with h5py.File(path, "r") as h5:
                    description = json.loads(h5.attrs["description"])
                    galaxyArrays = sorted(k for k in h5["galaxies"] if k not in ("scene", "truth"))
                    counts.append(len(h5["galaxies/scene"]))
            except (OSError, KeyError) as error:
                raise ValueError(f"{path}: not a simulation shard ({error})") from None
            description = {k: description[k] for k in ("kind", "split", "seed", "bands", "config", "conditions")}
            if descriptions and description != descriptions[0]:
                raise ValueError(f"{path}: shards of different data sets ({description['kind']}/{description['split']} "
                                 f"seed {description['seed']} vs {descriptions[0]['kind']}/{descriptions[0]['split']} "
                                 f"seed {descriptions[0]['seed']})")
            descriptions.append(description)
            stored = galaxyArrays
        self.description = descriptions[0]
        self.arrays = tuple(stored if arrays is None else arrays)
        unknown = sorted(set(self.arrays) - set(stored))
        if unknown:
            raise ValueError(f"{self.paths[0]}: no galaxy array(s) {unknown}; stored: {stored}")
        self._offsets = np.concatenate([[0], np.cumsum(counts)])
        self._files: dict[int, h5py.File] = {}
        self._pid: int | None = None

    def __len__(self) -> int:
        return int(self._offsets[-1])

    def _file(self, i: int) -> h5py.File:
        if self._pid != os.getpid():  # h5py handles must not cross a fork
            self._files, self._pid = {}, os.getpid()
        if i not in self._files:
            self._files[i] = h5py.File(self.paths[i], "r")
        return self._files[i]

    def __getitem__(self, index: int) -> dict:
        index = int(index)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"galaxy {index} out of range for {len(self)} galaxies")
        shard = int(np.searchsorted(self._offsets, index, side="right") - 1)
        row = index - int(self._offsets[shard])
        galaxies = self._file(shard)["galaxies"]
        item: dict[str, Any] = {}
        for name in self.arrays:
            stored = galaxies[name]
            item[name] = np.asarray(stored[row], dtype=np.float32) * np.float32(stored.attrs.get("scale", 1.0))
        item["galtileid"] = int(galaxies["truth/galtileid"][row])
        item["scene"] = int(galaxies["scene"][row])
        return item

    def truth(self):
        """The truth table of every galaxy, in item order (``astropy.table.Table``)."""
        from astropy.table import Table, vstack

        tables = []
        for i in range(len(self.paths)):
            group = self._file(i)["galaxies/truth"]
            tables.append(Table({name: group[name][...] for name in group}))
        return vstack(tables)

    def close(self) -> None:
        for handle in self._files.values():
            handle.close()
        self._files = {}

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_files"], state["_pid"] = {}, None
        return state
