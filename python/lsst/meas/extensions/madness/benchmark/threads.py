"""``madness-bench threads``: deblend time against CPU threads, on an idle and on a busy machine.

A simulated LSST-like field (the ``madness-run-task --demo`` field) is deblended by
``madness-run-task --threads T`` in a fresh process, for each thread count T, while L other
processes keep L cores busy (each spins in a Python loop), for each load L. Each setting runs
``repeats`` times, the thread counts interleaved so that drifts of the machine touch them alike.
Per setting the report gives the median wall time of the whole command, of its deblend step
(``metadata.json`` ``timing.deblendSeconds``) and the CPU time the command used; and, per load, which
thread count was fastest and which one ``--threads auto`` would choose
(:mod:`lsst.meas.extensions.madness.models.threads`).

The loads are simulated, so the table says how the thread count behaves on a machine shared with
other work, not how busy this machine was: the report states the one-minute load average before
the run, which should be near 0.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from .output import writeMarkdownAndJson

__all__ = ["measureThreads", "threadsMarkdown", "writeThreadsReport"]

#: A process that keeps one core busy until it is killed.
SPINNER = "while True: pass"


def _demoInputs(directory: Path, seed: int) -> tuple[Path, Path]:
    from ..sim import SimulationConfig, TestFields, generatePopulation
    from ..sim.inputs import writeFieldInputs

    fields = TestFields(generatePopulation(3000, seed=seed), seed=seed, config=SimulationConfig())
    files = writeFieldInputs(fields.make(0), fields, directory / "inputs", "threads", peaks="detected")
    return files.exposure, files.parents


def _runOnce(exposure: Path, catalog: Path, output: Path, threads: int, device: str) -> dict:
    """One ``madness-run-task`` process: wall, deblend and CPU seconds."""
    environment = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    command = [sys.executable, "-m", "lsst.meas.extensions.madness.runTask", "--exposure", str(exposure),
               "--catalog", str(catalog), "--output", str(output), "--threads", str(threads), "--device", device,
               "--no-progress", "--log-level", "WARNING"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(command, env=environment, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited with {done.returncode}:\n{done.stderr[-2000:]}")
    metadata = json.loads((output / "metadata.json").read_text())
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall": wall, "deblend": metadata["timing"]["deblendSeconds"], "cpu": cpu}


def measureThreads(work: Path, threads: list[int], loads: list[int], repeats: int = 2, seed: int = 1,
                   device: str = "cpu", progress=print) -> dict:
    """Time the deblend of one simulated field per thread count and load (module docstring).

    Parameters
    ----------
    work : `Path`
        Directory for the simulated inputs and the outputs (overwritten).
    threads : `list` [`int`]
        The thread counts to time.
    loads : `list` [`int`]
        The numbers of other busy processes to time them under.
    repeats : `int`
        Runs per setting; the report gives medians.
    seed : `int`
        Seed of the simulated field.
    device : `str`
        Torch device of the deblend (``cpu``: threads matter only there).
    progress : callable
        Called with one line per finished run.

    Returns
    -------
    results : `dict`
        ``settings``: one entry per (load, threads) with the runs and their medians; and the
        machine's description.
    """
    from ..models.threads import AUTO_MAX_THREADS

    if repeats < 1 or not threads or not loads or min(threads) < 1 or min(loads) < 0:
        raise ValueError("threads need positive counts, loads counts >= 0, repeats >= 1")
    work = Path(work)
    exposure, catalog = _demoInputs(work, seed)
    loadBefore = os.getloadavg()[0]
    settings = []
    for load in loads:
        spinners = [subprocess.Popen([sys.executable, "-c", SPINNER]) for _ in range(load)]
        try:
            runs: dict[int, list[dict]] = {count: [] for count in threads}
            for repeat in range(repeats):
                for count in threads:
                    run = _runOnce(exposure, catalog, work / f"out-{load}-{count}", count, device)
                    runs[count].append(run)
                    progress(f"load {load}, {count} thread(s), run {repeat + 1}/{repeats}: "
                             f"{run['wall']:.1f} s wall, {run['deblend']:.1f} s deblend, {run['cpu']:.1f} s CPU")
        finally:
            for spinner in spinners:
                spinner.kill()
                spinner.wait()
        for count in threads:
            settings.append({"load": load, "threads": count, "runs": runs[count],
                             **{key: statistics.median(r[key] for r in runs[count])
                                for key in ("wall", "deblend", "cpu")}})
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"settings": settings, "cores": cores, "loadAverageBefore": loadBefore, "repeats": repeats,
            "autoMaxThreads": AUTO_MAX_THREADS,
            "machine": f"{platform.processor() or platform.machine()}, {cores} cores",
            "python": platform.python_version()}


def _autoChoice(cores: int, load: int, maxThreads: int) -> int:
    """What ``--threads auto`` chooses with ``load`` other cores busy (its load average ≈ load)."""
    return max(1, min(maxThreads, cores - load))


def threadsMarkdown(results: dict, command: str) -> str:
    """The report of :func:`measureThreads` as Markdown."""
    lines = [
        "# Deblend time against CPU threads",
        "",
        f"Written by `{command}` on {results['machine']} (one-minute load average "
        f"{results['loadAverageBefore']:.2f} before the run). One simulated LSST-like field (the "
        "`madness-run-task --demo` field), deblended by `madness-run-task --threads T` in a fresh process "
        f"while L other processes each keep a core busy; medians of {results['repeats']} runs.",
        "",
        "| busy processes L | threads T | wall (s) | deblend (s) | CPU (s) | CPU / wall |",
        "|---|---|---|---|---|---|",
    ]
    for s in results["settings"]:
        lines.append(f"| {s['load']} | {s['threads']} | {s['wall']:.1f} | {s['deblend']:.1f} | {s['cpu']:.1f} | "
                     f"{s['cpu'] / s['wall']:.2f} |")
    lines += ["", "| busy processes L | fastest deblend | `--threads auto` chooses |", "|---|---|---|"]
    for load in sorted({s["load"] for s in results["settings"]}):
        rows = [s for s in results["settings"] if s["load"] == load]
        best = min(rows, key=lambda s: s["deblend"])
        auto = _autoChoice(results["cores"], load, results["autoMaxThreads"])
        lines.append(f"| {load} | {best['threads']} thread(s), {best['deblend']:.1f} s | {auto} |")
    lines += ["", "`auto` counts the cores less the rounded one-minute load average, so a load of L busy "
              "processes reads as L busy cores; the rule is in `lsst.meas.extensions.madness.models.threads`."]
    return "\n".join(lines) + "\n"


def writeThreadsReport(results: dict, command: str, document: Path) -> str:
    """Write the Markdown report and its JSON beside it; the Markdown."""
    return writeMarkdownAndJson(document, threadsMarkdown(results, command), results)
