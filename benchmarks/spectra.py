"""Benchmark: log-spectra of gated random products, ours vs a naive baseline vs a floor.

Run from the repository root::

    .venv/bin/python benchmarks/spectra.py                       # n=128 L=200 batch=64 p=1
    .venv/bin/python benchmarks/spectra.py --p 0.5 --L 100
    .venv/bin/python benchmarks/spectra.py --quick                # tiny smoke run (seconds)
    .venv/bin/python benchmarks/spectra.py --device cuda          # needs a CUDA build of torch

All timed variants work on the SAME pre-sampled layers (float64, sampled once, outside
the timers); every timing is the minimum over ``--repeats`` runs.

Workloads
---------
floor          P <- M_l @ P for l = 1..L, renormalised by the Frobenius norm each layer
               (log-norm accumulated). No factorisation: the cost of the matmuls alone.
naive          the floor's explicit renormalised product plus an SVD at every depth
               (``numpy.linalg.svd(P, compute_uv=False)`` on CPU, ``torch.linalg.svdvals``
               on CUDA): the obvious way to get Figure 2 (log-spectra at every depth).
ours, all k    ``log_spectra_by_depth(layers)``: all n log-singular values at every depth.
ours, k=1/10   ``log_spectra_by_depth(layers, k=...)``: the top-k at every depth (Figure 2).
exponent, m    ``lyapunov_estimates(layers, reorth_every=m)``: the exponent workload, the
               QR (Benettin) estimate ``(1/L) sum log|R_ii|`` of every Lyapunov exponent,
               m layers multiplied between two QR steps. The issue's target (within 2x of
               the floor on CPU, 3x on a GPU) is judged on this workload.
final, m       ``log_singular_values(layers, reorth_every=m)``: the exact final-depth
               spectrum, m layers multiplied between QR steps.

Correctness: ours vs naive at every depth; both vs an mpmath reference (product formed in
high precision, ``mp.dps = 60 + dynamic range in digits``, checked against a second run
at 30 more digits) on a small problem whose dynamic range exceeds float64 precision.
Results are printed as a table and written atomically to
``benchmarks/results/<device>-<n>-<L>-<batch>[-p<p>].json`` (the ``-p<p>`` suffix only
when p != 1, so that runs at different p do not overwrite each other).
"""
from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

try:  # the benchmark is run as a script, not installed
    import fgln
    from fgln.sampling import sample_layers
    from fgln.spectra import log_singular_values, log_spectra_by_depth, lyapunov_estimates
except ImportError as exc:  # pragma: no cover - environment problem
    raise SystemExit(
        "cannot import fgln; install it into the venv first: .venv/bin/pip install -e . --no-deps"
    ) from exc

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_REORTH = (1, 2, 4, 5, 8)
MISMATCH_TOL = 1e-6  # "differ" threshold for naive vs ours (log-singular values)

# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_min(fn, device: torch.device, repeats: int):
    """Run ``fn`` ``repeats`` times; return (min seconds, all seconds, last result)."""
    times, out = [], None
    for _ in range(repeats):
        out = None  # free the previous result before the next run
        _sync(device)
        t0 = time.perf_counter()
        out = fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return min(times), times, out


def _cpu_model() -> str:
    try:
        txt = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in txt.splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or "unknown"


def _loadavg():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:  # pragma: no cover - not on Linux
        return None


def _jsonable(x):
    """Recursively convert to strict-JSON values (non-finite floats as strings)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (np.floating, np.integer)):
        x = x.item()
    if isinstance(x, torch.Tensor):
        return _jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x


def write_json_atomic(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(_jsonable(data), fh, indent=2, allow_nan=False)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# --------------------------------------------------------------------------------------
# floor and naive baseline
# --------------------------------------------------------------------------------------


def floor_products(layers: torch.Tensor):
    """P_L = M_L ... M_1 / ||.||_F by matmuls alone; returns (P, accumulated log-norm)."""
    b, L, n, _ = layers.shape
    P = torch.eye(n, dtype=layers.dtype, device=layers.device).expand(b, n, n)
    lognorm = torch.zeros(b, dtype=layers.dtype, device=layers.device)
    tiny = torch.finfo(layers.dtype).tiny
    for l in range(L):
        P = layers[:, l] @ P
        nrm = torch.linalg.matrix_norm(P).clamp_min(tiny)  # Frobenius
        P = P / nrm[:, None, None]
        lognorm = lognorm + torch.log(nrm)
    return P, lognorm


def naive_spectra_by_depth(layers: torch.Tensor, depths=None) -> torch.Tensor:
    """Explicit renormalised product + SVD at each depth; [batch, len(depths), n] log-svs.

    CPU: ``numpy.linalg.svd(P, compute_uv=False)``; CUDA: ``torch.linalg.svdvals`` on device.
    """
    b, L, n, _ = layers.shape
    wanted = set(range(1, L + 1) if depths is None else depths)
    on_cuda = layers.device.type == "cuda"
    P = torch.eye(n, dtype=layers.dtype, device=layers.device).expand(b, n, n)
    lognorm = torch.zeros(b, dtype=layers.dtype, device=layers.device)
    tiny = torch.finfo(layers.dtype).tiny
    out = []
    for l in range(1, L + 1):
        P = layers[:, l - 1] @ P
        nrm = torch.linalg.matrix_norm(P).clamp_min(tiny)
        P = P / nrm[:, None, None]
        lognorm = lognorm + torch.log(nrm)
        if l in wanted:
            if on_cuda:
                out.append(torch.log(torch.linalg.svdvals(P)) + lognorm[:, None])
            else:
                sv = np.linalg.svd(P.numpy(), compute_uv=False)
                with np.errstate(divide="ignore"):
                    lsv = np.log(sv) + lognorm.numpy()[:, None]
                out.append(torch.from_numpy(lsv))
    return torch.stack(out, 1)


# --------------------------------------------------------------------------------------
# comparisons
# --------------------------------------------------------------------------------------


def compare_naive_ours(naive: torch.Tensor, ours: torch.Tensor, tol: float = MISMATCH_TOL):
    """Every-depth comparison; both [batch, depths, n] (CPU float64)."""
    naive, ours = naive.double().cpu(), ours.double().cpu()
    both = torch.isfinite(naive) & torch.isfinite(ours)
    diff = torch.where(both, (naive - ours).abs(), torch.zeros_like(ours))
    bad = both & (diff > tol)
    ours_zero = torch.isneginf(ours)
    naive_zero = torch.isneginf(naive)
    # naive's stand-ins for ours' exact zeros, relative to its own top value (log scale)
    rel = naive - naive[..., :1]
    naive_at_zero = rel[ours_zero & torch.isfinite(naive)]
    depth_bad = bad.any(-1).any(0)  # [depths]
    first_bad = int(depth_bad.nonzero()[0, 0]) + 1 if bool(depth_bad.any()) else None
    top_both = both[..., 0]
    top_err = float((naive[..., 0] - ours[..., 0]).abs()[top_both].max()) if bool(top_both.any()) else 0.0
    return {
        "tol": tol,
        "values_compared": int(both.sum()),
        "values_total": int(ours.numel()),
        "values_differing": int(bad.sum()),
        "fraction_differing": float(bad.sum()) / max(int(both.sum()), 1),
        "first_depth_index_with_difference": first_bad,
        "final_depth_values_differing": int(bad[:, -1].sum()),
        "max_abs_diff": float(diff.max()) if diff.numel() else 0.0,
        "max_abs_diff_top_sv": top_err,
        "ours_exact_zeros": int(ours_zero.sum()),
        "naive_exact_zeros": int(naive_zero.sum()),
        "naive_finite_where_ours_zero": int(naive_at_zero.numel()),
        "naive_log_rel_at_ours_zeros_max": float(naive_at_zero.max()) if naive_at_zero.numel() else None,
        "naive_log_rel_at_ours_zeros_median": float(naive_at_zero.median()) if naive_at_zero.numel() else None,
        "ours_zeros_final_depth_per_chain": ours_zero[:, -1].sum(-1).tolist(),
    }


def mp_reference(layers: torch.Tensor, depths, dps: int):
    """log-singular values of the exact-ish products (mpmath, ``dps`` digits).

    Returns ([chains, len(depths), n] float64 log-svs with -inf for zeros, the relative
    zero threshold used). A singular value below ``top * 10**-(dps - 25)`` is rounding
    noise of the high-precision product, i.e. an exact zero.
    """
    import mpmath

    mp = mpmath.mp
    old = mp.dps
    mp.dps = dps
    try:
        c, L, n, _ = layers.shape
        lay = layers.double().cpu().numpy()
        wanted = set(depths)
        zero_rel = mpmath.mpf(10) ** (-(dps - 25))
        out = np.full((c, len(depths), n), -np.inf)
        for i in range(c):
            P = mp.eye(n)
            j = 0
            for l in range(1, L + 1):
                M = mp.matrix([[mpmath.mpf(float(v)) for v in row] for row in lay[i, l - 1]])
                P = M * P
                if l in wanted:
                    sv = sorted((abs(s) for s in mp.svd_r(P, compute_uv=False)), reverse=True)
                    top = sv[0]
                    for t, s in enumerate(sv):
                        if top > 0 and s > top * zero_rel:
                            out[i, j, t] = float(mpmath.log(s))
                    j += 1
        return torch.from_numpy(out), float(-(dps - 25))
    finally:
        mp.dps = old


def _max_err(x: torch.Tensor, ref: torch.Tensor):
    both = torch.isfinite(x) & torch.isfinite(ref)
    return float((x - ref).abs()[both].max()) if bool(both.any()) else 0.0


def reference_check(args, device: torch.device) -> dict:
    """Ours and naive vs mpmath on a small problem with dynamic range beyond float64."""
    n, L, c = args.ref_n, args.ref_L, args.ref_chains
    depths = sorted({max(1, round(L * f)) for f in (0.25, 0.5, 0.75, 1.0)})
    layers = sample_layers(n, L, args.p, args.sigma, batch=c, seed=args.seed + 1,
                           dtype=torch.float64, device=device)
    ours = log_spectra_by_depth(layers, depths=depths, method=args.method).cpu()
    naive = naive_spectra_by_depth(layers, depths).cpu()
    fin = ours[torch.isfinite(ours)]
    spread = float(fin.max() - fin.min()) if fin.numel() else 0.0  # nats
    range_digits = math.ceil(spread / math.log(10))
    dps = 60 + range_digits
    t0 = time.perf_counter()
    ref, zthr = mp_reference(layers, depths, dps)
    ref2, _ = mp_reference(layers, depths, dps + 30)  # the reference must agree with itself
    t_ref = time.perf_counter() - t0
    same_zeros = bool((torch.isneginf(ref) == torch.isneginf(ref2)).all())
    ref_self = _max_err(ref, ref2)
    ref_zero = torch.isneginf(ref)
    naive_rel = naive - naive[..., :1]
    naive_at_zero = naive_rel[ref_zero & torch.isfinite(naive)]
    # per singular-value index: how wrong naive is for the smallest values
    return {
        "n": n, "L": L, "chains": c, "depths": depths, "dps": dps, "dps_check": dps + 30,
        "dynamic_range_nats": spread, "dynamic_range_digits": range_digits,
        "float64_digits": 15.95,
        "reference_seconds": t_ref,
        "reference_self_consistency_max_abs": ref_self,
        "reference_zero_pattern_stable": same_zeros,
        "reference_zero_threshold_log10_rel": zthr,
        "ours_max_abs_err": _max_err(ours, ref),
        "ours_zero_pattern_matches": bool((torch.isneginf(ours) == ref_zero).all()),
        "naive_max_abs_err": _max_err(naive, ref),
        "naive_max_abs_err_top_sv": _max_err(naive[..., :1], ref[..., :1]),
        "ours_max_abs_err_top_sv": _max_err(ours[..., :1], ref[..., :1]),
        "naive_values_off_by_more_than_1e-6": int(
            ((naive - ref).abs() > 1e-6)[torch.isfinite(naive) & torch.isfinite(ref)].sum()),
        "ours_values_off_by_more_than_1e-6": int(
            ((ours - ref).abs() > 1e-6)[torch.isfinite(ours) & torch.isfinite(ref)].sum()),
        "values_compared": int((torch.isfinite(ref)).sum()),
        "reference_exact_zeros": int(ref_zero.sum()),
        "ours_exact_zeros": int(torch.isneginf(ours).sum()),
        "naive_finite_where_reference_zero": int(naive_at_zero.numel()),
        "naive_log_rel_at_reference_zeros_max": float(naive_at_zero.max()) if naive_at_zero.numel() else None,
    }


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=128, help="width (default 128)")
    ap.add_argument("--L", type=int, default=200, help="depth (default 200)")
    ap.add_argument("--batch", type=int, default=64, help="independent chains (default 64)")
    ap.add_argument("--p", type=float, default=1.0, help="gate probability (default 1)")
    ap.add_argument("--sigma", type=float, default=None, help="weight std (default 1/sqrt(n))")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="cpu", help="cpu or cuda[:i]")
    ap.add_argument("--method", default="auto", choices=["auto", "householder", "cholqr"],
                    help="QR method of ours (auto: cholqr on CUDA, householder on CPU)")
    ap.add_argument("--repeats", type=int, default=3, help="timing repeats, min is reported")
    ap.add_argument("--repeats-every-depth", type=int, default=None,
                    help="repeats for the (slow) every-depth workloads naive/ours "
                         "(default: --repeats)")
    ap.add_argument("--reorth", default=",".join(map(str, DEFAULT_REORTH)),
                    help="reorth_every values for the exponent workload (comma list)")
    ap.add_argument("--ref-n", type=int, default=16, help="mpmath reference width")
    ap.add_argument("--ref-L", type=int, default=40, help="mpmath reference depth")
    ap.add_argument("--ref-chains", type=int, default=2)
    ap.add_argument("--no-reference", action="store_true", help="skip the mpmath check")
    ap.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    ap.add_argument("--no-save", action="store_true", help="do not write the JSON")
    ap.add_argument("--quick", action="store_true",
                    help="tiny smoke run: n=16 L=12 batch=4, 1 repeat, reference n=8 L=24 1 chain")
    return ap


def _resolve_device(name: str) -> torch.device:
    dev = torch.device(name)
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise SystemExit(
                f"--device {name}: CUDA is not available in this torch build/machine "
                f"(torch {torch.__version__}, torch.cuda.is_available() is False). "
                "Use --device cpu, or run on a machine with a CUDA GPU and a CUDA build of torch."
            )
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise SystemExit(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise SystemExit(f"--device {name}: only cpu and cuda are supported")
    return dev


def main(argv=None) -> dict:
    args = build_parser().parse_args(argv)
    if args.quick:
        args.n, args.L, args.batch, args.repeats = 16, 12, 4, 1
        args.repeats_every_depth = 1
        args.ref_n, args.ref_L, args.ref_chains = 8, 24, 1
    reorth = sorted({int(x) for x in str(args.reorth).split(",") if x.strip()})
    if 1 not in reorth:
        reorth = [1] + reorth
    device = _resolve_device(args.device)
    dev_name = device.type
    torch.manual_seed(args.seed)

    meta = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "fgln_version": getattr(fgln, "__version__", None),
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "dtype": "float64",
        "n": args.n, "L": args.L, "batch": args.batch, "p": args.p,
        "sigma": args.sigma if args.sigma is not None else 1.0 / math.sqrt(args.n),
        "seed": args.seed, "method": args.method, "repeats": args.repeats,
        "loadavg_start": _loadavg(),
    }
    print(f"fgln spectra benchmark: n={args.n} L={args.L} batch={args.batch} p={args.p} "
          f"sigma={meta['sigma']:.6g} device={device} float64 method={args.method}")
    print(f"torch {torch.__version__}, {meta['torch_threads']} threads, CPU: {meta['cpu_model']} "
          f"({meta['cpu_count']} cores)" + (f", GPU: {meta['gpu']}" if meta["gpu"] else ""))
    rd = args.repeats if args.repeats_every_depth is None else args.repeats_every_depth
    print(f"load average at start: {meta['loadavg_start']}; timings: min of {args.repeats} run(s)"
          + (f" ({rd} for the every-depth workloads naive/ours)" if rd != args.repeats else ""))
    sys.stdout.flush()

    layers = sample_layers(args.n, args.L, args.p, args.sigma, batch=args.batch,
                           seed=args.seed, dtype=torch.float64, device=device)
    _sync(device)
    R = args.repeats
    R_depth = args.repeats if args.repeats_every_depth is None else args.repeats_every_depth
    meta["repeats_every_depth"] = R_depth
    timings: dict[str, dict] = {}

    def record(key, label, fn, repeats=R):
        tmin, ts, out = time_min(fn, device, repeats)
        timings[key] = {"label": label, "seconds": tmin, "all_seconds": ts}
        print(f"  ... {label:<44s} {tmin:9.3f} s  (runs: {', '.join(f'{t:.3f}' for t in ts)})")
        sys.stdout.flush()
        return out

    record("floor", "floor: matmuls + renorm", lambda: floor_products(layers))
    naive = record("naive", "naive: product + SVD at every depth",
                   lambda: naive_spectra_by_depth(layers), R_depth)
    ours = record("ours_all", "ours: every depth, all n values",
                  lambda: log_spectra_by_depth(layers, method=args.method), R_depth)
    ours_k = {}
    for k in (1, 10):
        if k <= args.n:
            ours_k[k] = record(f"ours_k{k}", f"ours: every depth, top k={k}",
                               lambda k=k: log_spectra_by_depth(layers, k=k, method=args.method),
                               R_depth)
    lyap = {}
    for m in reorth:
        lyap[m] = record(f"lyapunov_m{m}", f"exponents (QR estimator), reorth_every={m}",
                         lambda m=m: lyapunov_estimates(layers, reorth_every=m,
                                                        method=args.method))
    final = {}
    for m in reorth:
        final[m] = record(f"exponent_m{m}", f"exact final spectrum, reorth_every={m}",
                          lambda m=m: log_singular_values(layers, reorth_every=m,
                                                          method=args.method))
    naive = naive.cpu()
    ours = ours.cpu()

    floor_t, naive_t = timings["floor"]["seconds"], timings["naive"]["seconds"]
    for key, t in timings.items():
        t["over_floor"] = t["seconds"] / floor_t
        t["over_naive"] = t["seconds"] / naive_t

    # ---- accuracy ----------------------------------------------------------------------
    cmp = compare_naive_ours(naive, ours)
    consistency = {}
    for k, v in ours_k.items():  # top-k must be the leading k of the full spectra
        consistency[f"k{k}_vs_all_max_abs"] = _max_err(v.cpu(), ours[..., :k])
        consistency[f"k{k}_vs_all_inf_pattern_equal"] = bool(
            (torch.isneginf(v.cpu()) == torch.isneginf(ours[..., :k])).all())
    consistency["exponent_m1_vs_by_depth_final_max_abs"] = _max_err(final[1].cpu(), ours[:, -1])
    base = final[1].cpu()
    half = args.n // 2
    exp_acc = {}
    for m, v in final.items():
        v = v.cpu()
        same_inf = bool((torch.isneginf(v) == torch.isneginf(base)).all())
        err = _max_err(v, base)
        err_top = _max_err(v[:, :half], base[:, :half])
        exp_acc[m] = {"max_abs_err_log_sv": err, "max_abs_err_log_sv_top_half": err_top,
                      "max_abs_err_exponent": err / args.L, "inf_pattern_equal": same_inf}
        timings[f"exponent_m{m}"].update(exp_acc[m])
    lbase = lyap[1].cpu()
    for m, v in lyap.items():
        v = v.cpu()
        timings[f"lyapunov_m{m}"].update({
            "max_abs_err_exponent": _max_err(v, lbase),
            "inf_pattern_equal": bool((torch.isneginf(v) == torch.isneginf(lbase)).all())})

    ref = None
    if not args.no_reference:
        ref = reference_check(args, device)

    meta["loadavg_end"] = _loadavg()
    target = 3.0 if device.type == "cuda" else 2.0
    met = [m for m in reorth if timings[f"lyapunov_m{m}"]["over_floor"] <= target]

    # ---- table ---------------------------------------------------------------------------
    print()
    print(f"{'workload':<46s}{'time [s]':>10s}{'/ floor':>9s}{'/ naive':>9s}")
    print("-" * 74)
    for key, t in timings.items():
        show_naive = key.startswith(("naive", "ours"))
        print(f"{t['label']:<46s}{t['seconds']:10.3f}{t['over_floor']:9.2f}"
              + (f"{t['over_naive']:9.3f}" if show_naive else f"{'':>9s}"))
    print()
    print("exponent workload (QR estimator) accuracy vs reorth_every=1:")
    print(f"  {'m':>3s} {'/ floor':>8s} {'max|dexponent|':>15s} {'-inf same':>9s}")
    for m in reorth:
        t = timings[f"lyapunov_m{m}"]
        print(f"  {m:>3d} {t['over_floor']:8.2f} {t['max_abs_err_exponent']:15.3e} "
              f"{str(t['inf_pattern_equal']):>9s}")
    print(f"  target: exponent workload within {target:g}x of the floor on {device.type}: "
          + (f"MET for reorth_every in {met}" if met else "NOT met for any reorth_every tested"))
    print()
    print("exact final spectrum accuracy (vs reorth_every=1, final depth, "
          f"{args.batch}x{args.n} log-singular values):")
    print(f"  {'m':>3s} {'/ floor':>8s} {'max|dlog sv|':>13s} {'top half':>10s} "
          f"{'max|dexponent|':>15s} {'-inf same':>9s}")
    for m in reorth:
        t = timings[f"exponent_m{m}"]
        print(f"  {m:>3d} {t['over_floor']:8.2f} {t['max_abs_err_log_sv']:13.3e} "
              f"{t['max_abs_err_log_sv_top_half']:10.3e} {t['max_abs_err_exponent']:15.3e} "
              f"{str(t['inf_pattern_equal']):>9s}")
    print()
    print(f"naive vs ours at every depth ({cmp['values_total']} log-singular values):")
    print(f"  both finite: {cmp['values_compared']}; differ by > {MISMATCH_TOL:g}: "
          f"{cmp['values_differing']} ({100 * cmp['fraction_differing']:.1f}%), "
          f"at the final depth: {cmp['final_depth_values_differing']}; "
          f"first depth with a difference: {cmp['first_depth_index_with_difference']}")
    print(f"  max |diff| overall: {cmp['max_abs_diff']:.3e}; on the top singular value: "
          f"{cmp['max_abs_diff_top_sv']:.3e}")
    print(f"  exact zeros (-inf): ours {cmp['ours_exact_zeros']}, naive {cmp['naive_exact_zeros']}; "
          f"naive reports finite values at {cmp['naive_finite_where_ours_zero']} of ours' zeros"
          + (f" (log(sv/sv_max): max {cmp['naive_log_rel_at_ours_zeros_max']:.1f}, "
             f"median {cmp['naive_log_rel_at_ours_zeros_median']:.1f})"
             if cmp["naive_finite_where_ours_zero"] else ""))
    if args.p < 1.0:
        zs = cmp["ours_zeros_final_depth_per_chain"]
        print(f"  ours' exact zeros per chain at the final depth: min {min(zs)}, max {max(zs)}, "
              f"mean {sum(zs) / len(zs):.1f} (of n={args.n})")
    print("  consistency: " + ", ".join(
        f"{k}={v:.1e}" if isinstance(v, float) else f"{k}={v}" for k, v in consistency.items()))
    if ref is not None:
        print()
        print(f"mpmath reference: n={ref['n']} L={ref['L']} chains={ref['chains']} "
              f"depths={ref['depths']} p={args.p}; dynamic range {ref['dynamic_range_nats']:.1f} nats "
              f"= {ref['dynamic_range_digits']} digits (float64: ~16); mp.dps={ref['dps']} "
              f"(self-check at {ref['dps_check']}: max diff {ref['reference_self_consistency_max_abs']:.1e}, "
              f"zero pattern stable: {ref['reference_zero_pattern_stable']}); {ref['reference_seconds']:.1f} s")
        print(f"  ours : max |log sv - ref| = {ref['ours_max_abs_err']:.3e} "
              f"(top sv {ref['ours_max_abs_err_top_sv']:.1e}); "
              f"{ref['ours_values_off_by_more_than_1e-6']}/{ref['values_compared']} off by > 1e-6; "
              f"exact zeros {ref['ours_exact_zeros']} vs reference {ref['reference_exact_zeros']} "
              f"(pattern matches: {ref['ours_zero_pattern_matches']})")
        print(f"  naive: max |log sv - ref| = {ref['naive_max_abs_err']:.3e} "
              f"(top sv {ref['naive_max_abs_err_top_sv']:.1e}); "
              f"{ref['naive_values_off_by_more_than_1e-6']}/{ref['values_compared']} off by > 1e-6"
              + (f"; finite at {ref['naive_finite_where_reference_zero']} reference zeros "
                 f"(log(sv/sv_max) up to {ref['naive_log_rel_at_reference_zeros_max']:.1f})"
                 if ref["naive_finite_where_reference_zero"] else ""))
    print(f"\nload average at end: {meta['loadavg_end']}")

    result = {
        "meta": meta,
        "timings": timings,
        "target": {"factor": target, "met_for_reorth_every": met},
        "naive_vs_ours": cmp,
        "consistency": consistency,
        "reference": ref,
    }
    if not args.no_save:
        suffix = "" if args.p == 1.0 else f"-p{args.p:g}"
        path = Path(args.out_dir) / f"{dev_name}-{args.n}-{args.L}-{args.batch}{suffix}.json"
        write_json_atomic(path, result)
        result["json_path"] = str(path)
        print(f"results written to {path}")
    return result


if __name__ == "__main__":
    main()
