"""How fast the simulator makes galaxies: a benchmark whose table goes into doc/."""

from __future__ import annotations

import datetime
import os
import platform
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from astropy.table import Table

from .datasets import DATASETS
from .parallel import makeScenes
from .shards import writeShards

__all__ = ["ThroughputResult", "measureThroughput", "throughputMarkdown"]


@dataclass(frozen=True)
class ThroughputResult:
    """Galaxies per second of one data set with a number of workers, made in memory or written."""

    kind: str
    workers: int
    written: bool
    nScenes: int
    nGalaxies: int
    seconds: float

    @property
    def galaxiesPerSecond(self) -> float:
        return self.nGalaxies / self.seconds


def measureThroughput(
    galaxies: Table,
    scenes: dict[str, int],
    workers: Sequence[int] = (1, os.cpu_count() or 1),
    *,
    bands: Sequence[str] | None = None,
    seed: int = 0,
) -> list[ThroughputResult]:
    """Time making ``scenes[kind]`` scenes of each data set kind with each worker count,
    in memory (:func:`~.parallel.makeScenes`) and written to float32 HDF5 shards in a
    temporary folder (:func:`~.shards.writeShards`)."""
    results = []
    for kind, nScenes in scenes.items():
        dataset = DATASETS[kind](galaxies, seed=seed, bands=bands)
        for nWorkers in dict.fromkeys(workers):  # unique, in order
            began = time.perf_counter()
            nGalaxies = sum(len(scene) for scene in makeScenes(dataset, range(nScenes), nWorkers))
            results.append(ThroughputResult(kind, nWorkers, False, nScenes, nGalaxies, time.perf_counter() - began))
            with tempfile.TemporaryDirectory() as directory:
                summary = writeShards(dataset, directory, nScenes, workers=nWorkers, progress=False)
            results.append(ThroughputResult(kind, nWorkers, True, nScenes, summary.nGalaxies, summary.seconds))
    return results


def throughputMarkdown(results: Sequence[ThroughputResult], command: str) -> str:
    """A Markdown table of ``results`` with the machine and the ``command`` that made them."""
    lines = [
        f"Measured {datetime.date.today().isoformat()} on {platform.machine()} with {os.cpu_count()} cores "
        f"({platform.processor() or platform.platform()}), Python {platform.python_version()}, by",
        "",
        "```bash",
        command,
        "```",
        "",
        "| data set | workers | output | scenes | galaxies | seconds | galaxies/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        output = "HDF5 shards (float32)" if r.written else "in memory"
        lines.append(
            f"| {r.kind} | {r.workers} | {output} | {r.nScenes} | {r.nGalaxies} | {r.seconds:.1f} | "
            f"{r.galaxiesPerSecond:.0f} |"
        )
    return "\n".join(lines) + "\n"


def writeThroughput(results: Sequence[ThroughputResult], command: str, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(throughputMarkdown(results, command))
    return path
