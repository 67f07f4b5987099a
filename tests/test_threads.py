"""The CPU thread count: ``--threads``, the ``auto`` rule and its benchmark's report."""

from __future__ import annotations

import os

import pytest
import torch

from lsst.meas.extensions.madness.benchmark.threads import measureThreads, threadsMarkdown
from lsst.meas.extensions.madness.models import threads
from lsst.meas.extensions.madness.models.threads import AUTO_MAX_THREADS, chooseThreads, useThreads


def test_auto_uses_the_idle_cores_at_most_the_measured_maximum(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(8)), raising=False)
    for load, expected in ((0.2, AUTO_MAX_THREADS), (6.6, 1), (7.4, 1), (30.0, 1)):
        monkeypatch.setattr(os, "getloadavg", lambda load=load: (load, load, load))
        assert chooseThreads("auto") == expected, load
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.setattr(os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert chooseThreads("auto") == 1  # one core: never more threads than cores


def test_omp_num_threads_wins_over_auto_and_bad_counts_are_refused(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert chooseThreads("auto") == 3 and chooseThreads(5) == 5 and chooseThreads("4") == 4
    monkeypatch.setenv("OMP_NUM_THREADS", "many")
    with pytest.raises(ValueError, match="OMP_NUM_THREADS"):
        chooseThreads("auto")
    for bad in (0, -1, "two", "1.5"):
        with pytest.raises(ValueError, match="positive integer"):
            chooseThreads(bad)


def test_use_threads_sets_and_restores_torch_and_jax_threads(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    monkeypatch.delitem(__import__("sys").modules, "jax", raising=False)
    before = torch.get_num_threads()
    with useThreads(1):
        assert torch.get_num_threads() == 1
        assert "intra_op_parallelism_threads=1" in os.environ["XLA_FLAGS"]
    assert torch.get_num_threads() == before and "XLA_FLAGS" not in os.environ


def test_the_threads_report_names_the_fastest_count_and_autos_choice():
    settings = [{"load": load, "threads": t, "wall": w + 2, "deblend": w, "cpu": c}
                for load, t, w, c in ((0, 1, 7.0, 9.0), (0, 2, 5.0, 11.0), (1, 1, 7.1, 9.5), (1, 2, 14.0, 20.0))]
    text = threadsMarkdown({"settings": settings, "cores": 2, "loadAverageBefore": 0.1, "repeats": 3,
                            "autoMaxThreads": 2, "machine": "x86_64, 2 cores"}, "madness-bench threads --work w")
    assert "| 0 | 2 thread(s), 5.0 s | 2 |" in text and "| 1 | 1 thread(s), 7.1 s | 1 |" in text
    assert "| 1 | 2 | 16.0 | 14.0 | 20.0 | 1.25 |" in text


def test_the_threads_benchmark_refuses_settings_before_simulating(tmp_path):
    for threadCounts, loads, repeats in (([0], [0], 1), ([1], [-1], 1), ([1], [0], 0), ([], [0], 1)):
        with pytest.raises(ValueError):
            measureThreads(tmp_path / "work", threadCounts, loads, repeats=repeats)
    assert not (tmp_path / "work").exists()
    assert threads.idleCores() >= 0
