"""``make demo``: the main job on the embedded default data.

The MADNESS deblender is not in this release yet. Until it is, the demo runs what exists
end to end (mock a patch, detect parents, write and re-read the run_task input files) and
says what is missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .afw.exposure import MultibandExposure
from .afw.table import SourceCatalog
from .testing import makeMockMultibandExposure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="madness-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("demo_output"), help="folder for the files written")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the mocked patch")
    args = parser.parse_args(argv)

    args.output.mkdir(parents=True, exist_ok=True)
    mock = makeMockMultibandExposure(shape=(120, 120), nGalaxies=6, seed=args.seed)
    exposurePath = args.output / "exposure.fits"
    catalogPath = args.output / "parents.fits"
    mock.mExposure.writeFits(exposurePath)
    mock.catalog.writeFits(catalogPath, bbox=mock.mExposure.getBBox())
    mExposure = MultibandExposure.readFits(exposurePath)
    parents = SourceCatalog.readFits(catalogPath)
    nPeaks = sum(len(r.getFootprint().getPeaks()) for r in parents)
    print(f"Mocked patch: {len(mock.truth)} galaxies in bands {','.join(mExposure.bands)}, bbox {mExposure.getBBox()}")
    print(f"Detected {len(parents)} parent footprints with {nPeaks} peaks")
    print(f"Wrote {exposurePath} and {catalogPath} (the run_task input formats; see doc/file-formats.md)")
    print(
        "The MADNESS deblender (trained VAE, flow and MAP core, MadnessDeblendTask and run_task) is not in\n"
        "this release yet, so there is nothing to deblend these files with; once it lands, `make demo`\n"
        "deblends the embedded default patch and writes the child catalogue."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
