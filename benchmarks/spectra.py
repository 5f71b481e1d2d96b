"""Benchmark: log-spectra of gated random products, ours vs a naive baseline vs a floor.

Run from the repository root::

    .venv/bin/python benchmarks/spectra.py                  # n=128 L=100 batch=32 p=0.5, CPU
    .venv/bin/python benchmarks/spectra.py --p 1
    .venv/bin/python benchmarks/spectra.py --quick           # tiny smoke run (seconds)
    .venv/bin/python benchmarks/spectra.py --device cuda     # needs a CUDA build of torch

All workloads run on the SAME layers (float64, sampled once, outside the timers), in
interleaved rounds (a discarded warm-up round, then ``--repeats`` >= 7 rounds); each time is
reported as the median, minimum and interquartile range of the rounds, ratios are ratios of
medians, and the main comparisons carry the verdict of ``benchmarks/timing.py``. The
workloads and the lines of the report are described in ``benchmarks/README.md``. The run
is split into :func:`run` (timings and outputs), :func:`check` (accuracy of every output) and
:func:`report` (text); the result is written as strict JSON to
``<out-dir>/<device>-<n>-<L>-<batch>[-p<p>].json``.
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # baselines.py beside this file

import timing  # noqa: E402
from baselines import (  # noqa: E402
    MISMATCH_TOL,
    compare_naive_ours,
    floor_products,
    max_err,
    naive_spectra_by_depth,
    reference_check,
    same_zeros,
)

import fgln  # noqa: E402
from fgln.base.atomic import atomic_write  # noqa: E402
from fgln.base.laws import LayerLaw  # noqa: E402
from fgln.products.accumulator import SpectrumAccumulator  # noqa: E402
from fgln.products.sampling import sample_layers  # noqa: E402
from fgln.products.spectra import log_singular_values, log_spectra_by_depth, lyapunov_estimates  # noqa: E402

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_REORTH = "1,2,4"

# ----------------------------------------------------------------------------- setting up


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=128, help="width (default 128)")
    ap.add_argument("--L", type=int, default=100, help="depth (default 100)")
    ap.add_argument("--batch", type=int, default=32, help="independent chains (default 32)")
    ap.add_argument("--p", type=float, default=0.5, help="gate probability (default 0.5)")
    ap.add_argument("--sigma", type=float, default=None, help="weight std (default 1/sqrt(n))")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--method", default="auto", choices=["auto", "householder", "cholqr"],
                    help="QR method of ours (auto: cholqr on CUDA, householder on CPU)")
    ap.add_argument("--repeats", type=int, default=timing.MIN_ROUNDS,
                    help=f"timed rounds, interleaved (>= {timing.MIN_ROUNDS})")
    ap.add_argument("--repeats-every-depth", type=int, default=None,
                    help="rounds for the every-depth workloads (default: --repeats)")
    ap.add_argument("--reorth", default=DEFAULT_REORTH,
                    help="fixed reorth_every values timed beside the adaptive default")
    ap.add_argument("--no-every-depth", action="store_true",
                    help="skip the every-depth workloads (naive and ours)")
    ap.add_argument("--ref-n", type=int, default=16, help="mpmath reference width")
    ap.add_argument("--ref-L", type=int, default=40, help="mpmath reference depth")
    ap.add_argument("--ref-chains", type=int, default=2)
    ap.add_argument("--ref-p", type=float, default=1.0,
                    help="mpmath reference gate probability (default 1: widest dynamic range)")
    ap.add_argument("--no-reference", action="store_true", help="skip the mpmath check")
    ap.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    ap.add_argument("--no-save", action="store_true", help="do not write the JSON")
    ap.add_argument("--quick", action="store_true",
                    help="tiny smoke run: n=16 L=12 batch=4, reference n=8 L=24")
    return ap


def parse_args(argv=None) -> argparse.Namespace:
    ap = build_parser()
    args = ap.parse_args(argv)
    if args.quick:
        args.n, args.L, args.batch = 16, 12, 4
        args.ref_n, args.ref_L, args.ref_chains = 8, 24, 1
    if args.repeats_every_depth is None:
        args.repeats_every_depth = args.repeats
    if min(args.repeats, args.repeats_every_depth) < timing.MIN_ROUNDS:
        ap.error(f"--repeats and --repeats-every-depth must be at least {timing.MIN_ROUNDS}")
    args.reorth = sorted({1} | {int(x) for x in str(args.reorth).split(",") if x.strip()})
    return args


def resolve_device(name: str) -> torch.device:
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(
                f"--device {name}: CUDA is not available in this torch build/machine "
                f"(torch {torch.__version__}, torch.cuda.is_available() is False). "
                "Use --device cpu, or run on a machine with a CUDA GPU and a CUDA build of torch.")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SystemExit(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise SystemExit(f"--device {name}: only cpu and cuda are supported")
    return dev


def environment(args, device: torch.device) -> dict:
    """Versions, hardware and the problem size (the ``meta`` block of the result)."""
    return {
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "fgln_version": fgln.__version__,
        "torch_version": torch.__version__, "numpy_version": np.__version__,
        "python": platform.python_version(),
        "cpu_model": timing.cpu_model(), "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "dtype": "float64",
        "n": args.n, "L": args.L, "batch": args.batch, "p": args.p,
        "sigma": args.sigma if args.sigma is not None else 1.0 / math.sqrt(args.n),
        "seed": args.seed, "method": args.method, "repeats": args.repeats,
        "repeats_every_depth": args.repeats_every_depth,
        "loadavg_start": timing.loadavg(),
    }


# ----------------------------------------------------------------------------- running


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device):
    """``(seconds, result)`` of one call of ``fn``."""
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return time.perf_counter() - t0, out


@contextmanager
def counting_qr_steps():
    """Collect the number of layers multiplied into each QR step (outside the timers)."""
    counts: list[int] = []
    step = SpectrumAccumulator.step

    def counted(self, Z, count=1, rank_bound=None, scale=None):
        counts.append(count)
        return step(self, Z, count, rank_bound, scale)

    SpectrumAccumulator.step = counted
    try:
        yield counts
    finally:
        SpectrumAccumulator.step = step


def workloads(layers: torch.Tensor, args) -> list[tuple[str, str, object, bool]]:
    """``(key, label, fn, every_depth)`` of every timed workload."""
    meth = args.method
    out = [("floor", "floor: matmuls + renorm", lambda: floor_products(layers), False)]
    if not args.no_every_depth:
        out.append(("naive", "naive: product + SVD at every depth",
                    lambda: naive_spectra_by_depth(layers), True))
        out.append(("ours_all", "ours: every depth, all n values",
                    lambda: log_spectra_by_depth(layers, method=meth), True))
        for k in (1, 10):
            if k <= args.n:
                out.append((f"ours_k{k}", f"ours: every depth, top k={k}",
                            lambda k=k: log_spectra_by_depth(layers, k=k, method=meth), True))
    for kind, label, fn in (("final", "exact final spectrum", log_singular_values),
                            ("lyapunov", "exponents (QR estimator)", lyapunov_estimates)):
        out.append((f"{kind}_auto", f"{label}, adaptive interval",
                    lambda fn=fn: fn(layers, method=meth), False))
        for m in args.reorth:
            out.append((f"{kind}_m{m}", f"{label}, reorth_every={m}",
                        lambda fn=fn, m=m: fn(layers, reorth_every=m, method=meth), False))
    return out


def run(layers: torch.Tensor, args, device: torch.device, log=print) -> tuple[dict, dict]:
    """Time every workload; returns ``(timings, outputs)`` (outputs on the CPU).

    The rounds are interleaved (every workload once per round, the every-depth ones in the
    first ``repeats_every_depth`` rounds only), after a warm-up round whose times are
    discarded, so that a slow spell of the machine touches all workloads alike. Per
    workload: ``all_seconds`` (the rounds), their summary (``min``, ``median``, ``iqr``, ...)
    and ``seconds`` = the median; ``over_floor`` / ``over_naive`` are ratios of medians.
    """
    work = workloads(layers, args)
    timings = {key: {"label": label, "all_seconds": []} for key, label, _, _ in work}
    outputs: dict[str, torch.Tensor] = {}
    for rnd in range(max(args.repeats, args.repeats_every_depth) + 1):  # 0: warm-up
        for key, label, fn, every_depth in work:
            if rnd > (args.repeats_every_depth if every_depth else args.repeats):
                continue
            seconds, out = timed(fn, device)
            if rnd:
                timings[key]["all_seconds"].append(seconds)
            if key != "floor":
                outputs[key] = out.cpu()
            out = None  # free it before the next workload
            log(f"  ... {f'round {rnd}' if rnd else 'warm-up'}: {label:<48s} {seconds:9.3f} s")
    for t in timings.values():
        s = timing.summary(t["all_seconds"])
        del s["rounds"]
        t.update(s, seconds=s["median"])
    for kind, fn in (("final", log_singular_values), ("lyapunov", lyapunov_estimates)):
        with counting_qr_steps() as counts:
            fn(layers, method=args.method)
        timings[f"{kind}_auto"].update(qr_steps=len(counts), layers_pushed=sum(counts))
    floor_t = timings["floor"]["seconds"]
    for t in timings.values():
        t["over_floor"] = t["seconds"] / floor_t
        if "naive" in timings:
            t["over_naive"] = t["seconds"] / timings["naive"]["seconds"]
    return timings, outputs


COMPARISONS = (("final_auto", "floor"), ("lyapunov_auto", "floor"), ("final_auto", "final_m1"),
               ("lyapunov_auto", "lyapunov_m1"), ("ours_all", "naive"), ("ours_k1", "naive"),
               ("ours_k10", "naive"))


def comparisons(timings: dict) -> dict:
    """The verdict (``benchmarks/timing.py``) of the main pairs of workloads, keyed
    ``"a / b"``; pairs timed over different numbers of rounds are compared on the common
    first rounds."""
    out = {}
    for a, b in COMPARISONS:
        if a in timings and b in timings:
            ra, rb = timings[a]["all_seconds"], timings[b]["all_seconds"]
            r = min(len(ra), len(rb))
            out[f"{a} / {b}"] = timing.compare(ra[:r], rb[:r])
    return out


# ----------------------------------------------------------------------------- checking


def check(outputs: dict, args) -> dict:
    """Accuracy of every output: each interval against one QR step per layer, naive vs
    ours at every depth, top-k vs all values."""
    acc: dict[str, dict] = {}
    half = args.n // 2
    for kind, scale in (("final", 1.0), ("lyapunov", float(args.L))):
        base = outputs[f"{kind}_m1"]
        for key in [f"{kind}_auto"] + [f"{kind}_m{m}" for m in args.reorth if m > 1]:
            v = outputs[key]
            acc[key] = {"max_abs_err_log_sv": max_err(v, base) * scale,
                        "max_abs_err_log_sv_top_half": max_err(v[:, :half], base[:, :half]) * scale,
                        "max_abs_err_exponent": max_err(v, base) * scale / args.L,
                        "inf_pattern_equal": same_zeros(v, base)}
    res = {"vs_one_step_per_layer": acc}
    if "ours_all" in outputs:
        ours = outputs["ours_all"]
        res["naive_vs_ours"] = compare_naive_ours(outputs["naive"], ours)
        res["top_k_vs_all"] = {
            f"k{k}": {"max_abs": max_err(outputs[f"ours_k{k}"], ours[..., :k]),
                      "inf_pattern_equal": same_zeros(outputs[f"ours_k{k}"], ours[..., :k])}
            for k in (1, 10) if f"ours_k{k}" in outputs}
    return res


# ----------------------------------------------------------------------------- reporting


def _fmt(x, spec: str) -> str:
    return "" if x is None else format(x, spec)


def report(result: dict) -> str:
    """The text report of a result (see benchmarks/README.md for what each line means)."""
    meta, timings, checks = result["meta"], result["timings"], result["checks"]
    lines = [f"{'workload':<50s}{'median [s]':>11s}{'min [s]':>9s}{'IQR [s]':>9s}"
             f"{'/ floor':>9s}{'/ naive':>9s}", "-" * 97]
    for key, t in timings.items():
        naive = t.get("over_naive") if key.startswith(("naive", "ours")) else None
        lines.append(f"{t['label']:<50s}{t['seconds']:11.3f}{t['min']:9.3f}{t['iqr']:9.3f}"
                     f"{t['over_floor']:9.2f}{_fmt(naive, '9.3f'):>9s}")
    lines += ["", "ratio of medians [sign-test interval of the paired round ratios]: verdict"]
    for name, c in result.get("comparisons", {}).items():
        a, b = name.split(" / ")
        lines.append(f"  {name:<28s} {timing.describe(c, a, b)}")
    for kind, what in (("final", "exact final spectrum"), ("lyapunov", "exponent estimates")):
        auto = timings[f"{kind}_auto"]
        lines += ["", f"{what}: adaptive interval {auto['over_floor']:.2f} x floor, "
                      f"{auto['qr_steps']} QR steps for {meta['L']} layers "
                      f"({auto['layers_pushed']} pushed); vs one QR step per layer:",
                  f"  {'interval':>10s} {'/ floor':>8s} "
                  f"{'max|dlog s|' if kind == 'final' else 'max|dL*est|':>12s} {'top half':>10s} "
                  f"{'max|dexp|':>10s} {'-inf same':>9s}"]
        for key, a in checks["vs_one_step_per_layer"].items():
            if key.startswith(kind):
                lines.append(f"  {key.split('_')[1]:>10s} {timings[key]['over_floor']:8.2f} "
                             f"{a['max_abs_err_log_sv']:12.2e} "
                             f"{a['max_abs_err_log_sv_top_half']:10.2e} "
                             f"{a['max_abs_err_exponent']:10.2e} {a['inf_pattern_equal']!s:>9s}")
    cmp = checks.get("naive_vs_ours")
    if cmp is not None:
        lines += ["", f"naive vs ours at every depth ({cmp['values_total']} log-singular values):",
                  f"  both finite: {cmp['values_compared']}; differ by > {MISMATCH_TOL:g}: "
                  f"{cmp['values_differing']} ({100 * cmp['fraction_differing']:.1f}%), at the "
                  f"final depth: {cmp['final_depth_values_differing']}; first depth with a "
                  f"difference: {cmp['first_depth_index_with_difference']}",
                  f"  max |diff| overall: {cmp['max_abs_diff']:.3e}; on the top singular value: "
                  f"{cmp['max_abs_diff_top_sv']:.3e}",
                  f"  exact zeros (-inf): ours {cmp['ours_exact_zeros']}, naive "
                  f"{cmp['naive_exact_zeros']}; naive reports finite values at "
                  f"{cmp['naive_finite_where_ours_zero']} of ours' zeros (log(sv/sv_max) max "
                  f"{_fmt(cmp['naive_log_rel_at_ours_zeros_max'], '.1f')})",
                  "  top-k vs all: " + ", ".join(f"{k}: {v['max_abs']:.1e}"
                                                 for k, v in checks["top_k_vs_all"].items())]
    ref = result.get("reference")
    if ref is not None:
        lines += ["", f"mpmath reference: n={ref['n']} L={ref['L']} p={ref['p']:g} "
                      f"chains={ref['chains']} "
                      f"depths={ref['depths']}; dynamic range {ref['dynamic_range_digits']} digits "
                      f"(float64: ~16); mp.dps={ref['dps']} (self-check at {ref['dps_check']}: "
                      f"{ref['reference_self_consistency_max_abs']:.1e}); "
                      f"{ref['reference_seconds']:.1f} s",
                  f"  ours : max |log sv - ref| = {ref['ours_max_abs_err']:.3e}; "
                  f"{ref['ours_values_off_by_more_than_1e-6']}/{ref['values_compared']} off by "
                  f"> 1e-6; zero pattern matches: {ref['ours_zero_pattern_matches']}",
                  f"  naive: max |log sv - ref| = {ref['naive_max_abs_err']:.3e} (top sv "
                  f"{ref['naive_max_abs_err_top_sv']:.1e}); "
                  f"{ref['naive_values_off_by_more_than_1e-6']}/{ref['values_compared']} off "
                  f"by > 1e-6"]
    lines.append(f"\nload average at start {meta['loadavg_start']}, at end {meta['loadavg_end']}")
    return "\n".join(lines)


def _jsonable(x):
    """Recursively convert to strict-JSON values (non-finite floats as strings)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def save(result: dict, out_dir: Path) -> Path:
    """Write ``result`` as strict JSON, atomically, under its documented name."""
    meta = result["meta"]
    suffix = "" if meta["p"] == 1.0 else f"-p{meta['p']:g}"
    dev = torch.device(meta["device"]).type
    path = Path(out_dir) / f"{dev}-{meta['n']}-{meta['L']}-{meta['batch']}{suffix}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(_jsonable(result), indent=2, allow_nan=False) + "\n"
    return atomic_write(path, lambda fh: fh.write(text), mode="w")


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = resolve_device(args.device)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    meta = environment(args, device)
    print(f"fgln spectra benchmark: n={args.n} L={args.L} batch={args.batch} p={args.p} "
          f"sigma={meta['sigma']:.6g} device={device} float64 method={args.method}; torch "
          f"{meta['torch_version']}, {meta['torch_threads']} threads, CPU: {meta['cpu_model']} "
          f"({meta['cpu_count']} cores)" + (f", GPU: {meta['gpu']}" if meta["gpu"] else ""),
          flush=True)
    layers = sample_layers(LayerLaw(args.n, args.p, args.sigma).product(args.L), args.batch,
                           seed=args.seed, dtype=torch.float64, device=device)
    _sync(device)
    timings, outputs = run(layers, args, device, log=lambda s: print(s, flush=True))
    result = {"meta": meta, "timings": timings, "comparisons": comparisons(timings),
              "checks": check(outputs, args)}
    if not args.no_reference:
        result["reference"] = reference_check(args.ref_n, args.ref_L, args.ref_chains,
                                              args.ref_p, args.sigma, args.seed + 1, args.method,
                                              device)
    timing.finish(meta)
    print()
    print(report(result))
    if not args.no_save:
        result["json_path"] = str(save(result, args.out_dir))
        print(f"results written to {result['json_path']}")
    return result


if __name__ == "__main__":
    main()
