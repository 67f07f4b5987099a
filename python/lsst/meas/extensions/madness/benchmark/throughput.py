"""MADNESS throughput of the MAP core against batch size and against the number of fields.

The blends of ``nFields`` TestFields fields (peaks at the true centres, as in the paper) are cut
once with :func:`~lsst.meas.extensions.madness.deblend.blends.makeBlend`, exactly as
``MadnessDeblendTask`` cuts them; then :func:`~lsst.meas.extensions.madness.deblend.fit.fitBlends`
(starting latents, MAP optimisation, decoding) is timed on them in two sweeps:

- **batch size**: all blends of all fields, with at most ``B`` galaxies in one optimisation, for
  each ``B`` of ``batchSizes``. A batch stops when its slowest parent meets the stopping rule,
  so larger batches trade steps for parallelism;
- **fields**: the blends of the first ``n`` fields, for each ``n`` of ``fieldCounts``, at one
  batch size: the cost of deblending a patch as it grows.

Throughput is galaxies (peaks) per second of wall time, after one warm-up fit (TorchScript
compiles on its first calls). Peak memory is ``torch.cuda.max_memory_allocated`` on a GPU and the
process's maximum resident set on a CPU (which includes the simulation, so it is an upper bound).

References
----------
Biswas et al. 2025, MADNESS, Sec. 5.3: about 16 galaxies/s on one V100 GPU.

Examples
--------
A sweep on the CPU is minutes long, so it is shown rather than run here:

.. code-block:: python

    result = measureThroughput(nFields=4, batchSizes=(8, 32), fieldCounts=(1, 4), device="cpu")
    result["batch"][0]["galaxiesPerSecond"]
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import torch

__all__ = ["fieldBlends", "measureThroughput", "writeThroughput"]


def fieldBlends(nFields: int, stampSize: int, seed: int = 0, populationSize: int = 120_000) -> list[list]:
    """The blends of TestFields fields ``0 .. nFields-1`` with peaks at the true centres, one list per field."""
    from ..deblend.blends import makeBlend
    from ..detect import detectParents
    from ..sim import TestFields, generatePopulation
    from ..sim.inputs import fieldExposure

    fields = TestFields(generatePopulation(populationSize, seed=seed), seed=seed)
    blends = []
    for index in range(nFields):
        scene = fields.make(index)
        mExposure = fieldExposure(scene, fields)
        parents = detectParents(mExposure, peaks=scene.positions)
        blends.append([makeBlend(mExposure, parent.getFootprint(), stampSize) for parent in parents])
    return blends


def _timeFit(models, blends: Sequence, maxGalaxies: int, config) -> dict:
    import torch

    from ..deblend.fit import fitBlends

    device = models.device
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    fits = fitBlends(models, blends, config, maxGalaxies=maxGalaxies)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    galaxies = sum(blend.nPeaks for blend in blends)
    if device.type == "cuda":
        memoryMB = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        memoryMB = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"maxGalaxies": int(maxGalaxies), "blends": len(blends), "galaxies": int(galaxies),
            "seconds": seconds, "galaxiesPerSecond": galaxies / seconds,
            "meanIterations": float(np.mean([fit.iterations for fit in fits])), "peakMemoryMB": memoryMB}


def measureThroughput(nFields: int = 8, batchSizes: Sequence[int] = (8, 16, 32, 64, 128),
                      fieldCounts: Sequence[int] | None = None, fieldBatchSize: int = 64,
                      device: str | torch.device | None = None,
                      seed: int = 0, populationSize: int = 120_000, models=None, mapConfig=None,
                      progress: bool = True) -> dict:
    """Run both sweeps of the module docstring; ``models`` defaults to the shipped ones.

    ``fieldCounts`` defaults to 1, 2, 4, … up to ``nFields``; ``mapConfig`` to MadnessDeblendTask's.
    The fits run on the models' device: the shipped models load on ``device`` (None: ``"auto"``); given
    ``models`` stay where they are, or move to ``device`` if one is given (``MadnessModels.to``).
    """
    from tqdm.auto import tqdm

    from ..deblend import MadnessDeblendConfig

    if nFields < 1:
        raise ValueError(f"nFields must be at least 1, got {nFields}")
    if fieldCounts is None:
        fieldCounts = sorted({min(2**k, nFields) for k in range(int(np.log2(nFields)) + 2)})
    if max(fieldCounts) > nFields or min(fieldCounts) < 1:
        raise ValueError(f"fieldCounts {list(fieldCounts)} must lie within 1 .. nFields={nFields}")
    if models is None:
        from ..models.export import loadShippedModels

        models = loadShippedModels(device="auto" if device is None else device)
    elif device is not None:
        models.to(device)
    torchDevice = models.device
    config = mapConfig if mapConfig is not None else MadnessDeblendConfig().mapConfig(models.mapLearningRate)
    byField = fieldBlends(nFields, models.stampSize, seed=seed, populationSize=populationSize)
    everything = [blend for blends in byField for blend in blends]
    _timeFit(models, byField[0][:1], 1, config)  # warm-up: TorchScript compiles here
    runs = [("batch", everything, size) for size in batchSizes]
    runs += [("fields", [b for blends in byField[:n] for b in blends], fieldBatchSize) for n in fieldCounts]
    result = {"device": str(torchDevice), "deviceName": _deviceName(torchDevice), "nFields": nFields,
              "galaxies": sum(b.nPeaks for b in everything), "blends": len(everything), "batch": [], "fields": []}
    for (sweep, blends, size), n in zip(tqdm(runs, desc="throughput", unit="fit", disable=not progress),
                                        [None] * len(batchSizes) + list(fieldCounts)):
        row = _timeFit(models, blends, size, config)
        if n is not None:
            row["fields"] = int(n)
        result[sweep].append(row)
    return result


def _deviceName(device) -> str:
    import platform

    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} torch threads"


def writeThroughput(doc: str | Path, static: str | Path | None = None, results: str | Path | None = None,
                    **kwargs) -> dict:
    """Measure (:func:`measureThroughput`) and write a Markdown table, a figure and the JSON."""
    result = measureThroughput(**kwargs)
    lines = [f"MADNESS MAP core on {result['deviceName']} (`{result['device']}`): {result['blends']} parents, "
             f"{result['galaxies']} galaxies from {result['nFields']} TestFields fields (true peaks), after a "
             "warm-up fit. Made by `madness-bench throughput`; the paper's anchor is about 16 galaxies/s on a V100.",
             "", "| galaxies per batch | seconds | galaxies/s | mean steps | peak memory (MB) |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['maxGalaxies']} | {r['seconds']:.1f} | {r['galaxiesPerSecond']:.2f} | {r['meanIterations']:.0f} "
              f"| {r['peakMemoryMB']:.0f} |" for r in result["batch"]]
    lines += ["", f"Fields deblended together (batches of at most {result['fields'][0]['maxGalaxies']} galaxies):", "",
              "| fields | galaxies | seconds | galaxies/s |", "|---|---|---|---|"]
    lines += [f"| {r['fields']} | {r['galaxies']} | {r['seconds']:.1f} | {r['galaxiesPerSecond']:.2f} |"
              for r in result["fields"]]
    doc = Path(doc)
    doc.parent.mkdir(parents=True, exist_ok=True)
    if static is not None:
        figure = _plot(result, Path(static))
        lines += ["", f"![MADNESS throughput](_static/{figure.name})"]
    doc.write_text("\n".join(lines) + "\n")
    if results is not None:
        Path(results).write_text(json.dumps(result, indent=1) + "\n")
    return result


def _plot(result: dict, static: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    static.mkdir(parents=True, exist_ok=True)
    figure, (left, right) = plt.subplots(1, 2, figsize=(9, 3.5))
    left.plot([r["maxGalaxies"] for r in result["batch"]], [r["galaxiesPerSecond"] for r in result["batch"]], "o-")
    left.axhline(16, ls=":", c="grey", label="paper, V100")
    left.set(xscale="log", xlabel="galaxies per batch", ylabel="galaxies / s", title=result["deviceName"])
    left.legend()
    right.plot([r["galaxies"] for r in result["fields"]], [r["seconds"] for r in result["fields"]], "o-")
    for r in result["fields"]:
        right.annotate(f"{r['fields']}", (r["galaxies"], r["seconds"]), textcoords="offset points", xytext=(4, -10))
    right.set(xlabel="galaxies (fields deblended together, labelled)", ylabel="seconds")
    figure.tight_layout()
    path = static / f"bench_throughput_{result['device'].split(':')[0]}.png"
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
