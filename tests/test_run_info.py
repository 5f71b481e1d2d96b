"""The run line of the chapters (fgln.book.run_info) and the cache counts behind it."""
from __future__ import annotations

import re
import time

import pytest
import torch

from fgln.book.cache import cache_counts, cached
from fgln.book.run_info import (
    PageRun,
    cache_text,
    cpu_model,
    format_seconds,
    machine_text,
    page_report,
    software_text,
    start_page,
)


def test_cache_counts_read_and_computed(tmp_path):
    before = cache_counts()
    calls = []

    def compute():
        calls.append(1)
        return {"x": 1.0}

    cached("count", {"a": 1}, compute, cache_dir=tmp_path)
    cached("count", {"a": 1}, compute, cache_dir=tmp_path)
    cached("count", {"a": 1}, compute, cache_dir=tmp_path)
    after = cache_counts()
    assert len(calls) == 1
    assert after["computed"] - before["computed"] == 1
    assert after["read"] - before["read"] == 2


def test_page_run_counts_only_what_follows_its_start(tmp_path):
    cached("before", {}, lambda: {"x": 1.0}, cache_dir=tmp_path)
    run = start_page()
    assert run.cache_since() == (0, 0)
    cached("before", {}, lambda: {"x": 1.0}, cache_dir=tmp_path)   # read
    cached("after", {}, lambda: {"x": 2.0}, cache_dir=tmp_path)    # computed
    assert run.cache_since() == (1, 1)


def test_elapsed_is_wall_time():
    run = start_page()
    assert run.elapsed(run.started + 12.5) == pytest.approx(12.5)
    time.sleep(0.01)
    assert run.elapsed() >= 0.01


@pytest.mark.parametrize("seconds, text", [(0, "0.0 s"), (4.24, "4.2 s"), (59.94, "59.9 s"),
                                           (687, "11 min 27 s"), (3725, "1 h 02 min")])
def test_format_seconds(seconds, text):
    assert format_seconds(seconds) == text


@pytest.mark.parametrize("bad", [-1.0, float("nan")])
def test_format_seconds_rejects_bad_values(bad):
    with pytest.raises(ValueError, match="seconds"):
        format_seconds(bad)


def test_cache_text_says_where_the_results_came_from():
    assert "computed in this run" in cache_text(0, 3)
    assert "read from the cache" in cache_text(2, 0)
    both = cache_text(2, 1)
    assert "1 was computed" in both and "2 read from the cache" in both
    assert "caches no results" in cache_text(0, 0)
    with pytest.raises(ValueError):
        cache_text(-1, 0)


def test_cpu_model_from_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: AMD  EPYC 7763 64-Core Processor\n")
    assert cpu_model(info) == "AMD EPYC 7763 64-Core Processor"
    assert cpu_model(tmp_path / "missing")  # falls back to platform, never empty


def test_machine_text():
    assert machine_text("Xeon", 2, []) == "Xeon (2 cores)"
    assert machine_text("Xeon", 1, ["NVIDIA H200"]) == "Xeon (1 core) and 1 GPU (NVIDIA H200)"
    assert machine_text("Xeon", 16, ["A", "A"]) == "Xeon (16 cores) and 2 GPUs (A)"


def test_page_report_names_time_machine_torch_and_cache(tmp_path):
    run = start_page()
    cached("report", {}, lambda: {"x": 1.0}, cache_dir=tmp_path)
    text = page_report(run, now=run.started + 75.0, machine="Xeon (2 cores)")
    assert text == (f"*Run: this page took 1 min 15 s (wall time) on Xeon (2 cores), with "
                    f"{software_text()}; its 1 heavy result was computed in this run.*")
    soft = software_text()
    assert soft.startswith("Python 3.") and f"torch {torch.__version__}" in soft
    for name in ("numpy", "scipy", "matplotlib", "jupyter-book", "myst-nb"):
        assert re.search(rf"{name} \d+\.\d+", soft), (name, soft)
    with pytest.raises(TypeError, match="run"):
        page_report("now")


def test_page_run_is_a_value():
    run = PageRun(started=1.0, read=0, computed=0)
    with pytest.raises(AttributeError):
        run.started = 2.0
