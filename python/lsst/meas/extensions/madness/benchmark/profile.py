"""Where the time of a MADNESS run goes: one test field deblended under ``cProfile``.

The profile's cumulative times (``cProfile``) are grouped into the stages of the data flow: blends (cutting the
canvases), the starting latents (VAE-deblender encoder), the MAP steps (decoder and flow forward,
backward pass, Adam update), the children (decoding, heavy footprints, columns) and the rest.
"""

from __future__ import annotations

import cProfile
import pstats
import time
from pathlib import Path

__all__ = ["STAGES", "profileMadness", "writeProfile"]

#: Stage → (file suffix, function name) whose cumulative time is the stage's.
STAGES: dict[str, tuple[str, str]] = {
    "blends (canvases, weights, cutouts)": ("deblend/blends.py", "makeBlend"),
    "MAP: backward pass": ("torch/_tensor.py", "backward"),
    "MAP: Adam step": ("torch/optim/optimizer.py", "wrapper"),
    "MAP: whole optimisation": ("deblend/mapCore.py", "fitLatents"),
    "all of fitBlends (encoder, MAP, decoding)": ("deblend/fit.py", "fitBlends"),
    "children (heavy footprints, columns)": ("deblend/baseTask.py", "_addChildren"),
}


def profileMadness(seed: int = 0, index: int = 0, populationSize: int = 120_000, device: str = "auto") -> dict:
    """Profile MadnessDeblendTask on TestFields field ``index``; seconds per stage and in total."""
    from ..afw.table import SourceTable
    from ..deblend import MadnessDeblendConfig, MadnessDeblendTask
    from ..detect import detectParents
    from ..sim import TestFields, generatePopulation
    from ..sim.inputs import fieldExposure

    fields = TestFields(generatePopulation(populationSize, seed=seed), seed=seed)
    scene = fields.make(index)
    mExposure = fieldExposure(scene, fields)
    parents = detectParents(mExposure, peaks=scene.positions)
    task = MadnessDeblendTask(SourceTable.makeMinimalSchema(), config=MadnessDeblendConfig(device=device))
    task.run(mExposure, parents)  # warm-up: TorchScript compiles on its first calls
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    task.run(mExposure, parents)
    profiler.disable()
    total = time.perf_counter() - start
    # {(file, line, name): (cc, nc, tt, ct, callers)}, the table typeshed leaves out.
    stats = pstats.Stats(profiler).stats  # type: ignore[attr-defined]
    seconds = {}
    for stage, (suffix, name) in STAGES.items():
        seconds[stage] = sum(v[3] for (f, _, n), v in stats.items() if f.endswith(suffix) and n == name)
    # The scripted objective's forward is not a Python frame cProfile sees: it is the optimisation's rest.
    seconds["MAP: objective forward (decoder, flow, likelihood; the rest of the optimisation)"] = (
        seconds["MAP: whole optimisation"] - seconds["MAP: backward pass"] - seconds["MAP: Adam step"])
    return {"seconds": seconds, "total": total, "galaxies": len(scene), "parents": len(parents)}


def writeProfile(path: str | Path, **kwargs) -> Path:
    """Profile one field (:func:`profileMadness`) and write the table to ``path`` (Markdown)."""
    result = profileMadness(**kwargs)
    lines = [f"One TestFields field ({result['galaxies']} galaxies, {result['parents']} parents), MADNESS on "
             f"this machine after a warm-up run: {result['total']:.2f} s in total. Made by `madness-bench profile`.",
             "", "| stage | seconds | share |", "|---|---|---|"]
    for stage, value in result["seconds"].items():
        lines.append(f"| {stage} | {value:.2f} | {100 * value / result['total']:.0f} % |")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
