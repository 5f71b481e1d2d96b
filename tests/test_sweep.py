"""fgln.sweep: grids of cached tasks give the same arrays on every executor, report failed
tasks by name, and lose nothing finished when interrupted."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
import pytest

from fgln.base.laws import LayerLaw
from fgln.book.sweep import (
    SweepError,
    executor_from_env,
    make_executor,
    parse_executor,
    run_grid,
    usable_cores,
)
from fgln.initialization.alignment import appendix_g_panel
from fgln.initialization.depth_scaling import top_values_by_depth
from fgln.mnist.data import BundledMnistWarning, load_mnist
from fgln.mnist.model import MnistConfig
from fgln.runs.mnist_tasks import cached_run, train_point, train_task
from fgln.training.synthetic_runs import synthetic_run
from grid_tasks import computed, logged_square, torch_thread_count

TESTS_DIR = Path(__file__).resolve().parent


def _grid() -> list:
    """A few cheap grid points of the book's own computations: the paper's object bound to
    the function (its fields in the task's name), the JSON parameters in the cache key."""
    fig02, panel = LayerLaw(8, 0.5).product(6), LayerLaw(8, 1.0).product(4, "fgln")
    return [
        *[("fig02-n8-p0.5-L6", dict(k=3, replicates=4, seed=s),
           partial(top_values_by_depth, fig02)) for s in (0, 1)],
        ("appendix_g_profiles-n8-p1-L4-fgln", dict(k=3, replicates=3, seed=0),
         partial(appendix_g_panel, panel)),
        ("synthetic_run", dict(seed=0, n=6, L=3, p=0.5, rank=2, samples=30, lr=0.05, t_max=0.5,
                               record_dt=0.25, k=3, diagnostics=False),
         partial(synthetic_run, progress=False)),
    ]


def _assert_same(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for ra, rb in zip(a, b):
        keys = {k for k in ra if "seconds" not in k}  # wall times differ run to run
        assert keys == {k for k in rb if "seconds" not in k}
        for k in keys:
            np.testing.assert_array_equal(ra[k], rb[k], err_msg=k)


@pytest.fixture(scope="module")
def pool():
    """``processes:2``: a ProcessPoolExecutor of two spawned workers, shared by the tests of
    this file."""
    with make_executor("processes:2") as ex:
        assert isinstance(ex, ProcessPoolExecutor) and ex._max_workers == 2
        assert ex._mp_context.get_start_method() == "spawn"
        yield ex


def test_serial_processes_and_dask_give_identical_arrays(tmp_path, pool):
    pytest.importorskip("distributed")
    serial = run_grid(_grid(), cache_dir=tmp_path / "serial")
    assert len(list((tmp_path / "serial").glob("*.npz"))) == len(_grid())
    threads = [("threads", {"tag": i}, torch_thread_count) for i in range(2)]
    procs = run_grid(_grid() + threads, executor=pool, cache_dir=tmp_path / "processes")
    _assert_same(serial, procs[: len(serial)])
    share = max(1, usable_cores() // 2)  # torch threads per worker: its share of the cores
    assert [r["threads"] for r in procs[len(serial):]] == [share] * 2
    with pytest.raises(SweepError, match=r'lambda_task {"x": 1}: .*[Pp]ickl'):
        run_grid([("lambda_task", {"x": 1}, lambda x: {"y": x})], executor=pool,
                 cache_dir=tmp_path / "processes")  # a grid point must be top-level
    # make_executor("dask-local:2") = LocalCluster(n_workers=2, threads_per_worker=1,
    # processes=True); computed on the workers, written to this cache folder by them
    with make_executor("dask-local:2") as ex:
        dask = run_grid(_grid() + threads, executor=ex, cache_dir=tmp_path / "dask")
    _assert_same(serial, dask[: len(serial)])
    assert [r["threads"] for r in dask[len(serial):]] == [share] * 2
    # a rerun reads everything from the cache: the results are those computed
    _assert_same(dask, run_grid(_grid() + threads, cache_dir=tmp_path / "dask",
                                executor="dask:tcp://127.0.0.1:1"))


@pytest.mark.parametrize("where", ["serial", "processes"])
def test_failed_task_is_named_and_the_rerun_computes_only_it(tmp_path, pool, where):
    executor = pool if where == "processes" else None
    log, flag = tmp_path / "log", tmp_path / "broken"
    flag.touch()

    def tasks():
        return [("square", {"x": x}, partial(logged_square, log=str(log),
                                             broken=str(flag) if x == 2 else ""))
                for x in range(4)]

    with pytest.raises(SweepError) as err:
        run_grid(tasks(), executor=executor, cache_dir=tmp_path / "cache")
    assert 'square {"x": 2}: ValueError: task 2 is broken' in str(err.value)
    assert "1 of 4 tasks failed" in str(err.value)
    assert [(name, params) for name, params, _ in err.value.failures] == [("square", {"x": 2})]
    assert sorted(computed(log)) == [0, 1, 2, 3]
    flag.unlink()
    log.unlink()
    res = run_grid(tasks(), executor=executor, cache_dir=tmp_path / "cache")
    assert computed(log) == [2]
    assert [r["y"][0] for r in res] == [0.0, 1.0, 4.0, 9.0]
    assert [r["x"] for r in res] == [0, 1, 2, 3]


def test_killed_sweep_loses_nothing_finished(tmp_path):
    cache, log = tmp_path / "cache", tmp_path / "log"
    script = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(TESTS_DIR)!r})
        from functools import partial
        from fgln.book.sweep import run_grid
        from grid_tasks import logged_square
        run_grid([("square", {{"x": x}}, partial(logged_square, log={str(log)!r}, pause=0.5))
                  for x in range(8)], cache_dir={str(cache)!r}, progress=False)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 40
    try:
        while len(list(cache.glob("*.npz"))) < 2:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the sweep cached nothing in 40 s"
            time.sleep(0.05)
    finally:
        proc.kill()
        proc.wait()
    finished = len(list(cache.glob("*.npz")))
    assert 2 <= finished < 8
    log.unlink()
    res = run_grid([("square", {"x": x}, partial(logged_square, log=str(log)))
                    for x in range(8)], cache_dir=cache)
    assert len(computed(log)) == 8 - finished  # the finished tasks are not computed again
    assert [r["y"][0] for r in res] == [float(x * x) for x in range(8)]


@pytest.mark.parametrize("spec", ["", "threads", "processes", "processes:0", "processes:two",
                                  "dask-local:", "dask:", "dask: ", "Serial"])
def test_bad_executor_names_raise_value_error(spec):
    with pytest.raises(ValueError, match="executor"):
        parse_executor(spec)
    with pytest.raises(ValueError, match="executor"):
        run_grid([], executor=spec)


def test_executor_names_and_types():
    assert parse_executor("serial") == ("serial", None)
    assert parse_executor(" processes:3 ") == ("processes", 3)
    assert parse_executor("dask-local:2") == ("dask-local", 2)
    assert parse_executor("dask:tcp://10.0.0.1:8786") == ("dask", "tcp://10.0.0.1:8786")
    with pytest.raises(TypeError):
        parse_executor(2)
    with pytest.raises(TypeError, match="executor"):
        run_grid([], executor=2)
    with pytest.raises(TypeError, match="tasks"):
        run_grid([("name", {}, "not callable")])


def test_executor_from_env(monkeypatch):
    monkeypatch.delenv("FGLN_EXECUTOR", raising=False)
    with executor_from_env() as ex:
        assert ex is None
    monkeypatch.setenv("FGLN_EXECUTOR", "processes:many")
    with pytest.raises(ValueError, match="processes:many"):
        with executor_from_env():
            pass


@pytest.mark.parametrize("spec", ["dask-local:2", "dask:tcp://127.0.0.1:8786"])
def test_dask_executors_without_dask_name_the_extra(monkeypatch, spec):
    monkeypatch.setitem(sys.modules, "distributed", None)  # import distributed -> ImportError
    with pytest.raises(ImportError, match=r"pip install -e '\.\[cluster\]'"):
        with make_executor(spec):
            pass


def test_mnist_task_is_the_cached_run_entry_and_checks_the_data(tmp_path):
    """mnist.train_task: the cache entry of mnist.cached_run; its grid point refuses MNIST
    files other than those the task was made for."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BundledMnistWarning)
        data = load_mnist(download=False)
    config = MnistConfig(train_size=64, test_size=50, epochs=1)
    name, params, fn = train_task(config, 3, data, cache_dir=tmp_path)
    assert name == "mnist_train"
    assert params == {**config.params(), "seed": 3, "source": data.source,
                      "n_train_total": len(data.train), "n_test_total": len(data.test)}
    assert fn.keywords["cache_dir"] == str(tmp_path.absolute())  # the checkpoints live there
    assert fn.keywords["workers"] == 1 and "data" not in fn.keywords  # loaded where it runs
    assert fn.keywords["device"] == "cpu"  # the CPU unless the task is made for another device
    other = "full" if data.source == "bundled" else "bundled"
    with pytest.raises(ValueError, match=f"the task needs {other}"):
        fn(**dict(params, source=other))
    with pytest.raises(ValueError, match="same MNIST files"):
        train_point(**dict(params, n_train_total=1), cache_dir=tmp_path)
    # trained once by cached_run (on `data`), then read back by the grid: one cache entry
    small = MnistConfig(train_size=64, test_size=50, epochs=1, batch_size=32)
    run = cached_run(small, 3, data, cache_dir=tmp_path, workers=0, progress=False)
    assert len(list(tmp_path.glob("mnist_train-*.npz"))) == 1
    assert list((tmp_path / "checkpoints").glob("*")) == []
    (again,) = run_grid([train_task(small, 3, data, cache_dir=tmp_path)], cache_dir=tmp_path,
                        executor="dask:tcp://127.0.0.1:1")  # nothing left to compute
    np.testing.assert_array_equal(again["test_acc"], run["test_acc"])
