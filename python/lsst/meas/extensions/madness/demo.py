"""``make demo``: simulate a small LSST-like field and deblend it with the shipped MADNESS weights.

The same as ``madness-run-task --demo DIR``: writes ``DIR/inputs`` (exposure, parents, truth),
``DIR/deblendedCatalog.fits``, ``DIR/config.py``, ``DIR/metadata.json`` and a diagnostic plot, and
prints where they are and how the children's fluxes compare with the truth.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .framework import LOG_LEVELS
from .runTask import main as runTaskMain


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="madness-demo", description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, default=Path("demo_output"), help="folder for the files written")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the simulated field")
    parser.add_argument("--device", default=None, help="torch device (default: auto)")
    parser.add_argument("--log-level", type=str.upper, choices=LOG_LEVELS, default="INFO", metavar="LEVEL",
                        help="lowest level of the log messages shown: DEBUG, INFO (default), WARNING or ERROR")
    args = parser.parse_args(argv)
    extra = ["--device", args.device] if args.device else []
    return runTaskMain(["--demo", str(args.output), "--seed", str(args.seed), "--plot", "2",
                        "--log-level", args.log_level, *extra])


if __name__ == "__main__":
    sys.exit(main())
