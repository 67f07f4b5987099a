"""Fresh simulated galaxies on the fly: an iterable dataset over DataLoader workers.

Training can draw new scenes instead of storing them. Worker ``w`` of ``W`` makes scenes
``start + w, start + w + W, ...``, each from its own random stream, so a run is reproducible
whatever the number of workers (the order in which batches interleave aside) and no two
workers repeat a scene.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch

from .datasets import _SimulatedSet

__all__ = ["SimulationStream"]


class SimulationStream(torch.utils.data.IterableDataset):
    """Stream the galaxies of consecutive scenes of a simulated data set.

    Each item is one galaxy: a dict with a float32 array per name in ``arrays`` (default:
    the data set's ``galaxyArrays``, e.g. ``blended``, ``blendedVariance``, ``isolated``)
    and its ``galtileid``.

    Parameters
    ----------
    dataset
        :class:`~.datasets.IsolatedSims`, :class:`~.datasets.BlendedSims` or
        :class:`~.datasets.TestFields`.
    start, stop
        Scene indices to stream, ``stop`` excluded; ``stop=None`` streams for ever.
    arrays
        Names of the :class:`~.datasets.Scene` per-galaxy arrays to yield.

    Examples
    --------
    >>> from lsst.meas.extensions.madness.sim import BlendedSims, generatePopulation
    >>> stream = SimulationStream(BlendedSims(generatePopulation(40, seed=3), bands=["r"]), stop=3)
    >>> batch = next(iter(torch.utils.data.DataLoader(stream, batch_size=2)))
    >>> tuple(batch["blended"].shape)
    (2, 1, 45, 45)
    """

    def __init__(self, dataset: _SimulatedSet, *, start: int = 0, stop: int | None = None,
                 arrays: Sequence[str] | None = None):
        super().__init__()
        if start < 0 or (stop is not None and stop < start):
            raise ValueError(f"need 0 <= start <= stop, got start={start}, stop={stop}")
        self.dataset = dataset
        self.start, self.stop = int(start), stop
        self.arrays = tuple(dataset.galaxyArrays if arrays is None else arrays)

    def __iter__(self) -> Iterator[dict]:
        info = torch.utils.data.get_worker_info()
        worker, nWorkers = (0, 1) if info is None else (info.id, info.num_workers)
        index = self.start + worker
        while self.stop is None or index < self.stop:
            scene = self.dataset.make(index)
            ids = np.asarray(scene.truth["galtileid"])
            for g in range(len(scene)):
                item = {name: getattr(scene, name)[g] for name in self.arrays}
                item["galtileid"] = int(ids[g])
                yield item
            index += nWorkers
