"""Wall time of the book's grids on each executor of ``fgln.book.sweep`` (``FGLN_EXECUTOR``).

    .venv/bin/python benchmarks/executors.py                 # quick sizes, 3 rounds
    .venv/bin/python benchmarks/executors.py --size paper    # the chapters' paper sizes
    .venv/bin/python benchmarks/executors.py --size tiny --rounds 1   # smoke run (a minute)

Workloads, each run by :func:`fgln.book.sweep.run_grid` into an empty cache folder (everything is
computed, and written to the cache by the worker that computed it, as in a cold build):

* ``appendix_g``: the four panels (n, p) of Appendix G (Figures 10-12);
* ``mnist``: the five training seeds of Chapter 8 (the MNIST at hand, never downloaded);
* ``empty``: ``--empty-tasks`` tasks that return at once: the per-task cost of the sweep
  (cache look-up, submission, result transfer, the worker's cache write) on each executor.

Each executor (``--executors``, default ``serial,processes:2,dask-local:2``) is started
(workers up, the package imported on each), given the grid and shut down; startup, grid and
shutdown are timed separately, and the wall time is their sum. Rounds are interleaved (every
executor once per round, in an order that rotates from round to round) so that a change of
machine load hits all of them alike; the JSON reports min, median and spread (max - min)
over the rounds, and checks that every executor returned the arrays of the first run.
Results: ``benchmarks/results/executors-<size>.json`` (atomic write).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import torch

import fgln
from fgln.base.atomic import atomic_write
from fgln.base.laws import LayerLaw
from fgln.book.sweep import make_executor, run_grid, usable_cores
from fgln.initialization.alignment import appendix_g_panel
from fgln.mnist.data import BundledMnistWarning, load_mnist
from fgln.mnist.model import MnistConfig
from fgln.runs.mnist_tasks import train_task

SIZES = {
    # appendix_g: widths, depth, networks per panel; mnist: configuration and seeds
    "tiny": dict(ns=(8, 12), L=4, seeds=2,
                 mnist=MnistConfig(train_size=128, test_size=100, epochs=1, batch_size=32,
                                   lr=0.02), mnist_seeds=5),
    "quick": dict(ns=(16, 32), L=10, seeds=6,
                  mnist=MnistConfig(train_size=512, test_size=500, epochs=1, batch_size=16,
                                    lr=0.02), mnist_seeds=5),
    "paper": dict(ns=(64, 128), L=20, seeds=40, mnist=MnistConfig(), mnist_seeds=5),
}


def empty_task(i: int) -> dict:
    """A grid point that does nothing."""
    return {"i": int(i)}


def warm_up(i: int) -> int:
    """Import the package on a worker (as its first grid point would)."""
    import fgln.book.sweep  # noqa: F401
    import fgln.mnist  # noqa: F401

    time.sleep(0.2)  # so that the warm-up tasks spread over the workers
    return i


def grid(workload: str, size: dict, empty_tasks: int, mnist_data) -> list:
    """The tasks ``(name, params, fn)`` of one workload."""
    if workload == "appendix_g":
        # the network is bound to the task (a product is not a JSON value); its width, gate
        # probability and depth enter the cache key through the task's name
        L = size["L"]
        return [(f"appendix_g_profiles-n{n}-p{p:g}-L{L}",
                 {"k": min(10, n), "replicates": size["seeds"], "seed": 0},
                 partial(appendix_g_panel, LayerLaw(n, p).product(L, "fgln")))
                for n in size["ns"] for p in (0.5, 1.0)]
    if workload == "mnist":
        return [train_task(size["mnist"], s, mnist_data, device="auto", workers=0,
                           progress=False)
                for s in range(size["mnist_seeds"])]
    if workload == "empty":
        return [("empty", {"i": i}, empty_task) for i in range(empty_tasks)]
    raise ValueError(f"unknown workload {workload!r}")


def timed_run(spec: str, tasks: list) -> tuple[dict, list[dict]]:
    """Start the executor ``spec``, run ``tasks`` into an empty cache, shut it down."""
    with tempfile.TemporaryDirectory(prefix="fgln-bench-") as cache:
        t0 = time.perf_counter()
        with make_executor(spec) as ex:
            if ex is not None:  # workers started, the package imported on each
                list(ex.map(warm_up, range(4 * usable_cores())))
            t1 = time.perf_counter()
            res = run_grid(tasks, executor=ex, cache_dir=cache, progress=False)
            t2 = time.perf_counter()
        t3 = time.perf_counter()
    return {"startup": t1 - t0, "grid": t2 - t1, "shutdown": t3 - t2, "wall": t3 - t0}, res


def same_arrays(a: list[dict], b: list[dict]) -> bool:
    """Every non-timing entry equal (NaN = NaN)."""
    for ra, rb in zip(a, b):
        for key in ra:
            if "second" in key or key in ("device", "epochs_run"):
                continue
            x, y = np.asarray(ra[key]), np.asarray(rb[key])
            if x.shape != y.shape or not np.array_equal(x, y, equal_nan=x.dtype.kind == "f"):
                return False
    return len(a) == len(b)


def summary(values: list[float]) -> dict:
    return {"min": min(values), "median": statistics.median(values),
            "spread": max(values) - min(values), "rounds": values}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="quick")
    ap.add_argument("--executors", default="serial,processes:2,dask-local:2")
    ap.add_argument("--workloads", default="appendix_g,mnist,empty")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--empty-tasks", type=int, default=50)
    ap.add_argument("--out-dir", default=str(Path(__file__).resolve().parent / "results"))
    ap.add_argument("--no-save", action="store_true")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.empty_tasks < 1:
        raise ValueError("--rounds and --empty-tasks must be >= 1")
    specs = [s.strip() for s in args.executors.split(",") if s.strip()]
    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    size = SIZES[args.size]
    mnist_data = None
    if "mnist" in workloads:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", BundledMnistWarning)
            mnist_data = load_mnist(download=False)
    load0 = os.getloadavg()
    times: dict = {w: {s: {k: [] for k in ("startup", "grid", "shutdown", "wall")}
                       for s in specs} for w in workloads}
    identical: dict = {w: {s: True for s in specs} for w in workloads}
    for w in workloads:
        tasks = grid(w, size, args.empty_tasks, mnist_data)
        reference = None
        for r in range(args.rounds):
            order = specs[r % len(specs):] + specs[: r % len(specs)]
            for spec in order:
                t, res = timed_run(spec, tasks)
                for k, v in t.items():
                    times[w][spec][k].append(v)
                if reference is None:
                    reference = res
                identical[w][spec] &= same_arrays(reference, res)
                print(f"{w:10s} round {r + 1}: {spec:14s} wall {t['wall']:7.2f} s "
                      f"(startup {t['startup']:.2f}, grid {t['grid']:.2f}, "
                      f"shutdown {t['shutdown']:.2f})", flush=True)
    report: dict = {"size": args.size, "rounds": args.rounds, "tasks": {}, "results": {}}
    for w in workloads:
        n_tasks = len(grid(w, size, args.empty_tasks, mnist_data))
        report["tasks"][w] = n_tasks
        report["results"][w] = {
            s: {**{k: summary(v) for k, v in times[w][s].items()},
                "grid_per_task": summary([g / n_tasks for g in times[w][s]["grid"]]),
                "identical_to_first": identical[w][s]}
            for s in specs}
    report["machine"] = {
        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
        "usable_cores": usable_cores(), "torch": torch.__version__, "numpy": np.__version__,
        "fgln": fgln.__version__, "torch_threads": torch.get_num_threads(),
        "mnist_source": mnist_data.source if mnist_data is not None else None,
        "load_start": load0, "load_end": os.getloadavg()}
    print("\nmin / median wall time [s] (spread), per-task grid time for 'empty'")
    for w in workloads:
        for s in specs:
            res = report["results"][w][s]
            extra = (f", {1e3 * res['grid_per_task']['median']:.1f} ms per task"
                     if w == "empty" else "")
            print(f"{w:10s} {s:14s} {res['wall']['min']:7.2f} / {res['wall']['median']:7.2f}"
                  f" ({res['wall']['spread']:.2f}){extra}"
                  f"{'' if res['identical_to_first'] else '  ARRAYS DIFFER'}")
    if not args.no_save:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        text = json.dumps(report, indent=2) + "\n"
        path = atomic_write(out / f"executors-{args.size}.json", lambda fh: fh.write(text), "w")
        print(f"written {path}")
    return report


if __name__ == "__main__":
    main()
