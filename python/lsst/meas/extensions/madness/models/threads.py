"""How many CPU threads a deblend uses: the rule behind ``--threads auto``.

Torch's default is one OpenMP thread per core. A MAP step works on small batches (a few blends of
45×45×6 pixels), so extra threads help only when their cores are idle: OpenMP threads busy-wait for
each other, and on a core that another process holds that wait costs a time slice each step. On the
development machine (2 cores, ``madness-bench threads``, ``doc/_generated/threads.md``), the deblend
of a simulated field took

========================  ==========  ==========
other busy processes      1 thread    2 threads
========================  ==========  ==========
none                      6.9 s       5.3 s
one                       7.0 s       12.6 s
two                       10.1 s      25.4 s
========================  ==========  ==========

(medians of 3 runs), so a second thread gains 1.3× on an idle machine and loses 1.8× as soon as one other process runs
(2.5× with two), using twice the CPU time.
``auto`` therefore counts the cores left idle by the rest of the machine (the cores this process may
use less the rounded one-minute load average) and uses that many threads, at least one and at most
:data:`AUTO_MAX_THREADS`, the most whose gain was measured. An ``OMP_NUM_THREADS`` set in the
environment (LSST's ``pipetask`` sets it to 1 for its worker processes) wins over ``auto``.

Examples
--------
>>> chooseThreads(3)
3
>>> 1 <= chooseThreads("auto") <= AUTO_MAX_THREADS or "OMP_NUM_THREADS" in os.environ
True
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

__all__ = ["AUTO_MAX_THREADS", "chooseThreads", "idleCores", "useThreads"]

#: The most threads ``auto`` chooses: the largest count whose gain was measured (2 cores here).
AUTO_MAX_THREADS = 2


def idleCores() -> int:
    """The cores this process may run on, less the rounded one-minute load average (at least 0).

    Returns
    -------
    cores : `int`
        The idle cores, from 0 to the cores of this process's CPU affinity.

    Examples
    --------
    >>> 0 <= idleCores() <= (os.cpu_count() or 1)
    True
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
    return max(0, cores - round(load))


def chooseThreads(requested: int | str = "auto") -> int:
    """The CPU thread count for ``requested``: a positive count, or ``"auto"`` (module docstring).

    Parameters
    ----------
    requested : `int` or `str`, optional
        A positive count (or its string, as a command line gives it), or ``"auto"``.

    Returns
    -------
    threads : `int`
        ``requested`` itself; for ``"auto"``, ``OMP_NUM_THREADS`` when set, else the idle cores between
        1 and :data:`AUTO_MAX_THREADS`.

    Raises
    ------
    ValueError
        If ``requested`` is neither ``"auto"`` nor a positive integer (nor is ``OMP_NUM_THREADS``,
        when ``auto`` reads it).

    Examples
    --------
    >>> chooseThreads("2")
    2
    >>> chooseThreads(0)
    Traceback (most recent call last):
    ...
    ValueError: threads must be 'auto' or a positive integer, not 0
    """
    if requested == "auto":
        environment = os.environ.get("OMP_NUM_THREADS")
        if environment is not None:
            return _positive(environment, "OMP_NUM_THREADS")
        return max(1, min(AUTO_MAX_THREADS, idleCores()))
    return _positive(requested, "threads")


def _positive(value: int | str, name: str) -> int:
    try:
        count = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be 'auto' or a positive integer, not {value!r}") from None
    if count < 1:
        raise ValueError(f"{name} must be 'auto' or a positive integer, not {value!r}")
    return count


@contextlib.contextmanager
def useThreads(count: int) -> Iterator[None]:
    """Within the block, torch (and JAX, if it starts there) computes with ``count`` CPU threads.

    The process's previous settings come back on exit, so a library call leaves its caller's
    threads as they were. JAX reads its thread count once, when it starts (``XLA_FLAGS``); a
    process that already ran JAX keeps its count.

    Parameters
    ----------
    count : `int`
        The threads within the block (:func:`chooseThreads`).

    Yields
    ------
    None
        Nothing: the block runs with the threads set.

    Examples
    --------
    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with useThreads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    import torch

    previous, flags = torch.get_num_threads(), os.environ.get("XLA_FLAGS")
    torch.set_num_threads(count)
    if "jax" not in sys.modules and "intra_op_parallelism_threads" not in (flags or ""):
        extra = f"--xla_cpu_multi_thread_eigen={'true' if count > 1 else 'false'} intra_op_parallelism_threads={count}"
        os.environ["XLA_FLAGS"] = f"{flags or ''} {extra}".strip()
    try:
        yield
    finally:
        torch.set_num_threads(previous)
        if flags is None:
            os.environ.pop("XLA_FLAGS", None)
        else:
            os.environ["XLA_FLAGS"] = flags
