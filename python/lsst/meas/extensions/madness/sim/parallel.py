"""Making many scenes of a data set on all cores, in order."""

from __future__ import annotations

import multiprocessing
import os
import sys
from collections.abc import Generator, Iterable

from .datasets import Scene, _SimulatedSet

__all__ = ["makeScenes", "startMethod"]

_workerDataset: _SimulatedSet | None = None


def _initWorker(dataset: _SimulatedSet) -> None:
    global _workerDataset
    _workerDataset = dataset


def _makeScene(index: int) -> Scene:
    assert _workerDataset is not None  # set by _initWorker
    return _workerDataset.make(index)


def startMethod() -> str:
    """How to start worker processes here: ``fork`` unless JAX is loaded, then ``forkserver`` or ``spawn``.

    fork shares the catalogue with the workers for free; spawn (macOS, Windows) pickles it. Forking
    a process whose JAX threads are running (after a SCARLET fit) can deadlock the children.
    """
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and "jax" not in sys.modules:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def makeScenes(dataset: _SimulatedSet, indices: Iterable[int],
               workers: int | None = None) -> Generator[Scene, None, None]:
    """Yield ``dataset.make(k)`` for each ``k`` of ``indices``, in order, made by ``workers``
    processes (default: all cores; 1: in this process).

    Scenes depend only on their index, so the result does not depend on ``workers``.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.sim import IsolatedSims, generatePopulation
    >>> sims = IsolatedSims(generatePopulation(30, seed=4), bands=["r"])
    >>> [len(scene) for scene in makeScenes(sims, range(3), workers=1)]
    [1, 1, 1]
    """
    workers = (os.cpu_count() or 1) if workers is None else max(1, int(workers))
    if workers == 1:
        yield from (dataset.make(k) for k in indices)
        return
    with multiprocessing.get_context(startMethod()).Pool(workers, initializer=_initWorker, initargs=(dataset,)) as pool:
        yield from pool.imap(_makeScene, indices, chunksize=4)
