"""Interleaved timing rounds for the benchmarks, their summaries and the verdict.

A benchmark compares workloads (``{name: callable}``, each call one round of that workload,
e.g. 200 training steps or one epoch). :func:`interleave` runs them round-robin: round 1 of
every workload, then round 2 of every workload, ... (an optional warm-up round first,
discarded), so that a change of the machine's load during the run hits all workloads alike,
and round ``i`` of one workload is paired with round ``i`` of another.

:func:`summary` gives, per workload, the minimum, the median, the quartiles, the maximum
and the interquartile range of its rounds. :func:`compare` gives the ratio of two workloads
and the verdict:

    The rounds are paired (round i of A, round i of B, run back to back) and their ratios
    ``r_i = a_i / b_i`` form the sample. The verdict rests on the distribution-free
    confidence interval of the median ratio from order statistics (the interval of the
    sign test): ``[r_(k), r_(R+1-k)]`` with the largest ``k`` such that
    ``2 P(Binomial(R, 1/2) < k) <= 0.05`` (R rounds; R = 7 gives ``[min, max]``,
    confidence 98.4%). R must be at least 6 for the interval to exist. The verdict:

    * ``"same cost"`` when the interval lies inside ``[1/(1 + m), 1 + m]``, the equivalence
      margin ``m`` (:data:`SAME_COST_MARGIN`, 10 %: smaller than what a user notices, and
      the size of this kind of machine's drift between runs), fixed before any measurement;
    * ``"faster"`` / ``"slower"`` when the interval lies below / above 1 and not inside the
      margin;
    * ``"inconclusive"`` when it holds 1 but reaches outside the margin: the rounds cannot
      tell a cost within 10 % from a larger difference (more rounds may decide).

:func:`machine` records the date, CPU model, core count, torch version and threads, and the
load average (at the start; call :func:`finish` at the end for the end load).
"""
from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import subprocess
import time
from typing import Callable, Mapping

import torch

MIN_ROUNDS = 7
CONFIDENCE = 0.95
# Two workloads cost the same when the interval of their ratio lies in [1/1.1, 1.1].
SAME_COST_MARGIN = 0.10


def loadavg() -> list[float] | None:
    """The 1, 5 and 15 minute load averages (None where the system has none)."""
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        return None


def cpu_model() -> str:
    """The CPU's model name (``lscpu``; ``platform.processor()`` when not available)."""
    try:
        txt = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in txt.splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine() or "unknown"


def machine(device: torch.device | None = None) -> dict:
    """Where and when the benchmark runs: UTC date, CPU model, cores, torch version and
    intra-op threads, the device, and the load average now (``loadavg_start``)."""
    dev = torch.device("cpu") if device is None else torch.device(device)
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(), "cpu_count": os.cpu_count(),
        "torch_version": torch.__version__, "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "device": (torch.cuda.get_device_name(dev) if dev.type == "cuda" else dev.type),
        "loadavg_start": loadavg(),
    }


def finish(meta: dict) -> dict:
    """Add the load average at the end (``loadavg_end``) to ``meta``; returns ``meta``."""
    meta["loadavg_end"] = loadavg()
    return meta


def _sync(device: torch.device | None) -> None:
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def interleave(workloads: Mapping[str, Callable[[], object]], rounds: int = MIN_ROUNDS, *,
               warmup: bool = True, device: torch.device | None = None,
               per: float = 1.0) -> dict[str, list[float]]:
    """Seconds of each round of each workload, the workloads run round-robin.

    ``workloads``: ``{name: fn}``, ``fn()`` runs one round. ``rounds`` (>= 7) timed rounds
    per workload, after one discarded warm-up round of each when ``warmup``. ``per``: the
    times are divided by it (e.g. the steps of a round, to get seconds per step). On CUDA
    every round is bracketed by ``torch.cuda.synchronize``. Returns ``{name: [seconds]}``.
    """
    if not isinstance(rounds, int) or rounds < MIN_ROUNDS:
        raise ValueError(f"rounds must be an integer >= {MIN_ROUNDS}, got {rounds!r}")
    if not workloads:
        raise ValueError("workloads must name at least one workload")
    if not per > 0:
        raise ValueError(f"per must be positive, got {per!r}")
    out: dict[str, list[float]] = {name: [] for name in workloads}
    for r in range(rounds + bool(warmup)):
        for name, fn in workloads.items():
            _sync(device)
            t = time.perf_counter()
            fn()
            _sync(device)
            if r or not warmup:
                out[name].append((time.perf_counter() - t) / per)
    return out


def summary(times: list[float]) -> dict:
    """``min``, ``q1``, ``median``, ``q3``, ``max``, ``iqr`` (q3 - q1) and ``rel_iqr``
    (iqr / median) of the rounds' times, with the rounds themselves (``rounds``)."""
    if len(times) < 2:
        raise ValueError(f"times must hold at least 2 rounds, got {len(times)}")
    q1, med, q3 = statistics.quantiles(times, n=4, method="inclusive")
    return {"min": min(times), "q1": q1, "median": med, "q3": q3, "max": max(times),
            "iqr": q3 - q1, "rel_iqr": (q3 - q1) / med if med > 0 else float("nan"),
            "rounds": list(times)}


def median_interval_rank(rounds: int, confidence: float = CONFIDENCE) -> int:
    """The largest ``k`` with ``2 P(Binomial(rounds, 1/2) < k) <= 1 - confidence`` (0 when none):
    ``[x_(k), x_(rounds+1-k)]`` (order statistics, 1-based) then covers the median with
    probability at least ``confidence``, whatever the distribution."""
    k, tail = 0, 0.0
    while True:
        tail_next = tail + math.comb(rounds, k) / 2 ** rounds  # P(Bin < k + 1)
        if 2 * tail_next > 1 - confidence:
            return k
        k, tail = k + 1, tail_next


def verdict(lo: float, hi: float, margin: float = SAME_COST_MARGIN) -> str:
    """The verdict on a ratio whose interval is ``[lo, hi]``: ``"same cost"`` (inside
    ``[1/(1 + margin), 1 + margin]``), else ``"faster"`` (below 1), ``"slower"`` (above 1) or
    ``"inconclusive"`` (holds 1, reaches outside the margin)."""
    if not 0 < lo <= hi:
        raise ValueError(f"need 0 < lo <= hi, got [{lo!r}, {hi!r}]")
    if not margin > 0:
        raise ValueError(f"margin must be positive, got {margin!r}")
    if 1 / (1 + margin) <= lo and hi <= 1 + margin:
        return "same cost"
    return "slower" if lo > 1 else "faster" if hi < 1 else "inconclusive"


def compare(a: list[float], b: list[float], confidence: float = CONFIDENCE,
            margin: float = SAME_COST_MARGIN) -> dict:
    """``a`` against ``b`` (paired rounds of two workloads): ratio of the medians, ratio of
    the minima, the median paired round ratio and its distribution-free interval, the
    equivalence margin, and ``verdict`` (:func:`verdict`): ``"same cost"``, ``"faster"``,
    ``"slower"`` or ``"inconclusive"``."""
    if len(a) != len(b):
        raise ValueError(f"a and b must hold the same rounds, got {len(a)} and {len(b)}")
    ratios = sorted(x / y for x, y in zip(a, b))
    k = median_interval_rank(len(ratios), confidence)
    if k == 0:
        raise ValueError(f"{len(ratios)} rounds are too few for a {confidence:.0%} interval")
    lo, hi = ratios[k - 1], ratios[len(ratios) - k]
    return {"ratio_median": statistics.median(a) / statistics.median(b),
            "ratio_min": min(a) / min(b), "round_ratio_median": statistics.median(ratios),
            "round_ratio_interval": [lo, hi], "confidence": 1 - 2 * sum(
                math.comb(len(ratios), j) for j in range(k)) / 2 ** len(ratios),
            "margin": margin, "verdict": verdict(lo, hi, margin)}


def describe(c: dict, a: str = "ours", b: str = "plain") -> str:
    """One line: ``1.04 [0.98, 1.07]: same cost (within 10 %)``."""
    lo, hi = c["round_ratio_interval"]
    m = f"{c.get('margin', SAME_COST_MARGIN):.0%}"
    word = {"same cost": f"same cost (within {m})", "slower": f"{a} slower than {b}",
            "faster": f"{a} faster than {b}",
            "inconclusive": f"inconclusive (holds 1, reaches beyond {m})"}[c["verdict"]]
    return f"{c['ratio_median']:.2f} [{lo:.2f}, {hi:.2f}]: {word}"
