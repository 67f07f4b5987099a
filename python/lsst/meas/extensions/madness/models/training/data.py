r"""Training data: per-galaxy data sets, DataLoaders and plain iterables, all as batches of tensors.

:math:`\sigma_b = \sqrt{\bar s_b}/10^4` is the sky noise of band :math:`b` (mean sky
:math:`\bar s_b` electrons per pixel for gain 1); it is read from the data set (simulator or
shard description), or estimated as the smallest value of each stamp's variance plane.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import torch

from ..config import ModelConfig
from .configs import TrainingConfig
from .stages import _checkBatch

__all__: list[str] = []


class _Collate:
    """Stack the wanted keys of per-galaxy dicts into batch tensors (picklable for workers)."""

    def __init__(self, keys: Sequence[str], optional: Sequence[str] = (), what: str = "data"):
        self.keys, self.optional, self.what = tuple(keys), tuple(optional), what

    def __call__(self, items: list[dict]) -> dict[str, torch.Tensor]:
        first = items[0]
        missing = [k for k in self.keys if k not in first]
        if missing:
            raise ValueError(f"{self.what}: the stamps {missing} are needed but the items have only {sorted(first)}")
        wanted = self.keys + tuple(k for k in self.optional if k in first)
        return {
            k: torch.stack([torch.as_tensor(np.asarray(item[k], dtype=np.float32)) for item in items]) for k in wanted
        }


def _isBatched(item: dict) -> bool:
    """Whether a dict is already a batch (4-d stamps) rather than one galaxy (3-d)."""
    stamps = item.get("blended", item.get("isolated"))
    return stamps is not None and np.ndim(stamps) == 4


class _BatchSource:
    """Batches from any data the training functions accept, epoch after epoch.

    * a map-style data set (``SimulationShards``, a list of per-galaxy dicts): shuffled with a
      permutation seeded by ``(seed, pass)``, so the order, and a resumed run's order, is
      reproducible; :meth:`state` records the pass and position;
    * an iterable data set (``SimulationStream``): batched by a DataLoader, in stream order;
    * a ``DataLoader`` or any re-iterable of dicts: used as it is (per-galaxy dicts are
      batched here).
    """

    def __init__(self, data: Any, keys: Sequence[str], batchSize: int, workers: int, shuffle: bool, seed: int,
                 pinMemory: bool, what: str, optional: Sequence[str] = ()):
        if data is None:
            raise ValueError(f"no {what}")
        self.data, self.keys, self.optional = data, tuple(keys), tuple(optional)
        self.batchSize, self.workers = batchSize, workers
        self.shuffle, self.seed, self.pinMemory, self.what = shuffle, seed, pinMemory, what
        self.passIndex, self.position = 0, 0
        self._iterator: Iterator[dict] | None = None
        if isinstance(data, torch.utils.data.DataLoader):
            self.kind = "loader"
        elif isinstance(data, torch.utils.data.IterableDataset):
            self.kind = "stream"
        elif hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, dict):
            self.kind = "map" if len(data) == 0 or not _isBatched(data[0]) else "loader"
        elif isinstance(data, Iterable) and not isinstance(data, Iterator):
            self.kind = "loader"
        else:
            raise ValueError(f"{what}: expected a data set, a DataLoader or a re-iterable of dicts, got "
                             f"{type(data).__name__} (a one-shot iterator cannot serve several epochs)")
        self.endless = getattr(data, "stop", 0) is None or getattr(getattr(data, "dataset", None), "stop", 0) is None

    def _loader(self, **kwargs) -> torch.utils.data.DataLoader:
        if self.workers > 0:
            from ...sim.parallel import startMethod

            kwargs.setdefault("multiprocessing_context", startMethod())
        return torch.utils.data.DataLoader(
            self.data, batch_size=self.batchSize, num_workers=self.workers, pin_memory=self.pinMemory,
            collate_fn=_Collate(self.keys, self.optional, self.what), **kwargs,
        )

    def _pass(self, skip: int = 0) -> Iterator[dict]:
        if self.kind == "map":
            n = len(self.data)
            if self.shuffle:
                generator = torch.Generator().manual_seed(int(self.seed) * 1_000_003 + self.passIndex)
                order = torch.randperm(n, generator=generator).tolist()
            else:
                order = list(range(n))
            return iter(self._loader(sampler=order[skip:]))
        if self.kind == "stream":
            return iter(self._loader())
        return self._rebatch(iter(self.data))

    def _rebatch(self, items: Iterator[dict]) -> Iterator[dict]:
        collate, pending = _Collate(self.keys, self.optional, self.what), []
        for item in items:
            if _isBatched(item):
                yield {k: torch.as_tensor(v) for k, v in item.items() if k in self.keys + self.optional}
                continue
            pending.append(item)
            if len(pending) == self.batchSize:
                yield collate(pending)
                pending = []
        if pending:
            yield collate(pending)

    def stepsPerPass(self) -> int | None:
        """Batches in one pass, where known."""
        if self.kind == "map":
            return math.ceil(len(self.data) / self.batchSize)
        data = self.data
        iterable = isinstance(getattr(data, "dataset", None), torch.utils.data.IterableDataset)
        if isinstance(data, torch.utils.data.DataLoader) and not iterable:
            return len(data)
        return None

    def epoch(self, steps: int | None) -> Iterator[dict]:
        """One epoch's batches: ``steps`` of them (continuing from the last epoch), or one pass."""
        if steps is None:
            if self.endless:
                raise ValueError(f"{self.what} is an endless stream: set stepsPerEpoch (--steps-per-epoch)")
            self._iterator = None
            for batch in self._pass():
                self.position += len(next(iter(batch.values())))
                yield batch
            self.passIndex, self.position = self.passIndex + 1, 0
            return
        for _ in range(steps):
            yield self.next()

    def next(self) -> dict:
        """The next batch, starting a new pass when one runs out."""
        for _ in range(2):  # the current pass, then one fresh pass
            if self._iterator is None:
                self._iterator = self._pass(self.position)
            try:
                batch = next(self._iterator)
            except StopIteration:
                self._iterator, self.passIndex, self.position = None, self.passIndex + 1, 0
                continue
            self.position += len(next(iter(batch.values())))
            return batch
        raise ValueError(f"{self.what} is empty")

    def first(self, count: int) -> list[dict]:
        """The first ``count`` stamps (one pass, unshuffled), as CPU batches."""
        batches, have = [], 0
        iterator = self._pass()
        try:
            for batch in iterator:
                n = len(next(iter(batch.values())))
                take = min(n, count - have)
                batches.append({k: v[:take] for k, v in batch.items()})
                have += take
                if have >= count:
                    break
        finally:
            del iterator  # stops DataLoader workers of an endless stream
        if not have:
            raise ValueError(f"{self.what} is empty")
        return batches

    def state(self) -> dict:
        return {"passIndex": self.passIndex, "position": self.position}

    def restore(self, state: dict) -> None:
        # Map-style data resume exactly where they stopped; streams restart from their beginning.
        self._iterator = None
        if self.kind == "map":
            self.passIndex, self.position = int(state["passIndex"]), int(state["position"])


def _describedData(data: Any) -> tuple[np.ndarray | None, tuple[str, ...] | None]:
    """Sky variance per band and band names, from a simulator or shard description if reachable."""
    for _ in range(4):  # DataLoader → stream → simulated set, or ConcatDataset → shards
        renderer = getattr(data, "renderer", None)
        if renderer is not None and hasattr(renderer, "sky"):
            gain = float(getattr(renderer, "gain", 1.0))
            return np.asarray(renderer.sky, dtype=float) / gain, tuple(getattr(renderer, "bands", ()))
        description = getattr(data, "description", None)
        if isinstance(description, dict) and "conditions" in description and "bands" in description:
            from ...sim.survey import SurveyConditions

            conditions = SurveyConditions.model_validate(description["conditions"])
            bands = tuple(description["bands"])
            # Pixels are in ADU; the sky's noise variance is sky_ADU / gain = sky_e / gain².
            sky = np.array([conditions.skyPerPixel(b) for b in bands]) / conditions.gain**2
            return sky, bands
        # One level down: a DataLoader's or stream's data set, or a ConcatDataset's first part.
        parts = getattr(data, "datasets", None)
        data = parts[0] if isinstance(parts, Sequence) and parts else getattr(data, "dataset", None)
        if data is None:
            break
    return None, None


def _skyVariance(explicit: Sequence[float] | np.ndarray | None, datas: Sequence[Any], validation: list[dict] | None,
                 trainSample: Callable[[], list[dict]], modelConfig: ModelConfig, stage: str) -> np.ndarray:
    """σ_b² per band: given, described by the data, or the median over stamps of their variance planes' minimum."""
    nBands = len(modelConfig.bands)
    for data in datas:
        sky, bands = _describedData(data)
        if bands and tuple(bands) != tuple(modelConfig.bands):
            raise ValueError(f"{stage}: the data have bands {''.join(bands)} but the model expects "
                             f"{''.join(modelConfig.bands)}; simulate those bands or change the model's bands")
        if explicit is None and sky is not None:
            explicit = sky
    if explicit is None:
        # Far from the galaxy a stamp's variance plane is the sky's, (0 + sky)/gain.
        batches = [b for b in (validation or []) if "blendedVariance" in b] or [
            b for b in trainSample() if "blendedVariance" in b]
        if batches:
            minima = torch.cat([b["blendedVariance"].amin(dim=(2, 3)) for b in batches])
            explicit = minima.median(dim=0).values.double().numpy()
    if explicit is None:
        raise ValueError(f"{stage}: cannot tell the sky level: the data carry no 'blendedVariance' and no survey "
                         "description; pass skyVariance (mean sky per band in electrons for gain 1)")
    sky = np.asarray(explicit, dtype=float).reshape(-1)
    if sky.size != nBands or not np.all(sky > 0):
        raise ValueError(
            f"{stage}: need {nBands} positive sky variances (bands {''.join(modelConfig.bands)}), got {sky}"
        )
    return sky


def _inputs(stage: str, keys: tuple[str, ...], modelConfig: ModelConfig, config: TrainingConfig, trainData: Any,
            validationData: Any, skyVariance: Sequence[float] | None) -> tuple[list[dict] | None, np.ndarray]:
    """The validation stamps (kept in memory, with their variance planes) and the sky variance per band."""
    stageConfig = config.stage(stage)
    validation = None
    if validationData is not None:
        source = _BatchSource(validationData, keys, stageConfig.batchSize, config.workers, False, config.seed, False,
                              f"{stage} validation data", ("blendedVariance",))
        validation = source.first(config.validationStamps)
        for batch in validation:
            _checkBatch(batch, stage, keys, modelConfig)

    def trainSample() -> list[dict]:
        return _BatchSource(trainData, keys, stageConfig.batchSize, 0, False, config.seed, False,
                            f"{stage} training data", ("blendedVariance",)).first(min(256, config.validationStamps))

    sky = _skyVariance(skyVariance, [trainData, validationData], validation, trainSample, modelConfig, stage)
    return validation, sky
