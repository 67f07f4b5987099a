"""``madness-map-settings``: measure MAP-fit settings side by side on the same simulated blends.

Each setting (learning rate, decay, sub-pixel shift) deblends the same blends with the shipped
weights, peaks at the true centres, and is scored by the children's r-band model flux against the
galaxies' noiseless isolated stamps, :math:`|F_{\\rm model}/F_{\\rm true} - 1|`. Two samples:

- ``population``: BlendedSims scenes (2-3 galaxies within 20 px, the paper's blend training
  geometry) drawn from the test split, i.e. mostly faint galaxies;
- ``bright``: 2-3 bright (r < 22.5), compact (disk hlr < 0.8") galaxies 18 px apart, one blend
  each.

The table goes to ``doc/_generated/map-settings.md`` (``--output``), with the command that made it.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

__all__ = ["SETTINGS", "brightBlends", "populationBlends", "scoreSetting", "main"]

#: name → MadnessDeblendConfig overrides.
SETTINGS: dict[str, dict] = {
    "paper (lr 0.05, x0.8/30, rounded peaks)": dict(lr=0.05, lrDecay=0.8, subpixelShift=False),
    "lr 0.05, x0.8/30, sub-pixel shift": dict(lr=0.05, lrDecay=0.8, subpixelShift=True),
    "lr 0.1, x0.9/30, rounded peaks": dict(lr=0.1, lrDecay=0.9, subpixelShift=False),
    "default (lr 0.1, x0.9/30, sub-pixel shift)": dict(lr=0.1, lrDecay=0.9, subpixelShift=True),
}


def populationBlends(nScenes: int, seed: int = 12, split: str = "test"):
    """(scene, exposure, parents) of ``nScenes`` BlendedSims scenes of 2-3 galaxies of ``split``."""
    from ..detect import detectParents
    from ..sim import BlendedSims, SimulationConfig, generatePopulation
    from ..sim.inputs import fieldExposure

    sims = BlendedSims(generatePopulation(3000, seed=seed), seed=seed, split=split,
                       config=SimulationConfig(blendGalaxies=(2, 3)))
    for index in range(nScenes):
        scene = sims.make(index)
        mExposure = fieldExposure(scene, sims)
        yield scene, mExposure, detectParents(mExposure, peaks=scene.positions)


def brightBlends(nScenes: int, seed: int = 11, separation: float = 18.0):
    """(scene, exposure, parents) of blends of 2-3 bright compact galaxies ``separation`` pixels apart."""
    from ..detect import detectParents
    from ..sim import BlendedSims, generatePopulation
    from ..sim.inputs import fieldExposure

    sims = BlendedSims(generatePopulation(2000, seed=seed), seed=seed, split="test")
    magnitude, radius = np.asarray(sims.galaxies["r_ab"]), np.asarray(sims.galaxies["hlr_disk"])
    bright = np.flatnonzero((magnitude < 22.5) & (radius < 0.8))
    rng = np.random.default_rng(seed)
    for index in range(nScenes):
        n = 2 + index % 2
        rows = rng.choice(bright, n, replace=False)
        angles = rng.uniform(0, 2 * np.pi) + 2 * np.pi * np.arange(n) / n
        positions = 40 + separation / (2 * np.sin(np.pi / n)) * np.stack([np.cos(angles), np.sin(angles)], axis=1)
        scene = sims.compose(rows, positions + rng.uniform(-0.5, 0.5, (n, 2)), 81, index=index)
        mExposure = fieldExposure(scene, sims)
        yield scene, mExposure, detectParents(mExposure, peaks=scene.positions)


def scoreSetting(blends, overrides: dict) -> dict:
    """Deblend ``blends`` with MADNESS under ``overrides``; flux errors, iterations and time.

    The r-band statistics are of :math:`|F_{\\rm model}/F_{\\rm true} - 1|`; ``perBand`` holds the
    mean of that error capped at 1 in every band (so one lost child counts as much as a total miss,
    no more), and ``score`` their mean over bands.
    """
    from ..afw.table import SourceTable
    from ..deblend.madnessTask import MadnessDeblendConfig, MadnessDeblendTask

    config = MadnessDeblendConfig(**overrides)
    task = MadnessDeblendTask(SourceTable.makeMinimalSchema(), config=config)
    errors, iterations, start = [], [], time.perf_counter()
    bands: list[str] = []
    for scene, mExposure, parents in blends:
        catalog = task.run(mExposure, parents).deblendedCatalog
        iterations += list(catalog[: len(parents)]["deblend_iterations"])
        bands = list(mExposure.bands)
        for child in catalog[len(parents):]:
            j = int(np.argmin(np.hypot(*(scene.positions - [child["deblend_peak_center_x"],
                                                            child["deblend_peak_center_y"]]).T)))
            errors.append([abs(mExposure[band].getPhotoCalib().nanojanskyToInstFlux(child[f"madness_flux_{band}"])
                               / scene.isolated[j, b].sum() - 1)
                           for b, band in enumerate(bands)])
    errorArray = np.array(errors)
    r = errorArray[:, bands.index("r")]
    perBand = {band: float(np.minimum(errorArray[:, b], 1.0).mean()) for b, band in enumerate(bands)}
    return {"n": len(errorArray), "median": float(np.median(r)), "mean": float(r.mean()),
            "p90": float(np.percentile(r, 90)), "within10": float(np.mean(r < 0.1)), "perBand": perBand,
            "score": float(np.mean(list(perBand.values()))),
            "iterations": float(np.mean(iterations)), "seconds": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="madness-map-settings", description=__doc__.splitlines()[0])
    parser.add_argument("--population", type=int, default=160, help="BlendedSims scenes (default 160)")
    parser.add_argument("--bright", type=int, default=20, help="bright-galaxy blends (default 20)")
    parser.add_argument("--output", type=Path, default=Path("doc/_generated/map-settings.md"))
    args = parser.parse_args(argv)
    samples = {"population": list(populationBlends(args.population)), "bright": list(brightBlends(args.bright))}
    lines = ["| setting | sample | galaxies | median | mean | p90 | within 10 % | mean steps | time (s) |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, overrides in SETTINGS.items():
        for sample, blends in samples.items():
            s = scoreSetting(blends, overrides)
            lines.append(f"| {name} | {sample} | {s['n']} | {s['median']:.3f} | {s['mean']:.3f} | {s['p90']:.3f} "
                         f"| {100 * s['within10']:.0f} % | {s['iterations']:.0f} | {s['seconds']:.0f} |")
            print(lines[-1], flush=True)
    command = "madness-map-settings " + " ".join(argv if argv is not None else sys.argv[1:])
    text = ("r-band model flux error |F_model / F_true - 1| of MADNESS children, shipped weights, peaks at the true "
            f"centres, CPU. Made by `{command.strip()}`.\n\n" + "\n".join(lines) + "\n")
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(f"Wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
