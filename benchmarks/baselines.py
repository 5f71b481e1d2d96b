"""Baselines and references for ``benchmarks/spectra.py``.

* the *floor*: the product ``M_L ... M_1`` by matrix products alone, renormalised by its
  Frobenius norm after every layer (the cost of touching the layers at all);
* the *naive* log-spectra: the floor's product plus an SVD at every wanted depth;
* an mpmath reference: the product formed in high precision, then its singular values;
* comparisons of log-spectra ([batch, depths, n], ``-inf`` for exact zeros).
"""
from __future__ import annotations

import math
import time
from collections import deque
from typing import Iterator, Sequence

import numpy as np
import torch

from fgln.base.laws import LayerLaw
from fgln.products.sampling import sample_layers
from fgln.products.spectra import log_spectra_by_depth

Tensor = torch.Tensor
MISMATCH_TOL = 1e-6  # "differ" threshold for naive vs ours (log-singular values)


def renormalised_products(layers: Tensor) -> Iterator[tuple[int, Tensor, Tensor]]:
    """Yield ``(l, P, lognorm)`` for l = 1..L: ``M_l ... M_1 = exp(lognorm) P``, ``||P||_F = 1``."""
    b, L, n, _ = layers.shape
    P = torch.eye(n, dtype=layers.dtype, device=layers.device).expand(b, n, n)
    lognorm = torch.zeros(b, dtype=layers.dtype, device=layers.device)
    tiny = torch.finfo(layers.dtype).tiny
    for l in range(1, L + 1):
        P = layers[:, l - 1] @ P
        nrm = torch.linalg.matrix_norm(P).clamp_min(tiny)  # Frobenius
        P = P / nrm[:, None, None]
        lognorm = lognorm + torch.log(nrm)
        yield l, P, lognorm


def floor_products(layers: Tensor) -> tuple[Tensor, Tensor]:
    """The floor workload: ``(P_L, lognorm_L)`` of :func:`renormalised_products`."""
    ((_, P, lognorm),) = deque(renormalised_products(layers), maxlen=1)  # keep the last
    return P, lognorm


def naive_spectra_by_depth(layers: Tensor, depths: Sequence[int] | None = None) -> Tensor:
    """Renormalised product + SVD at each depth; [batch, len(depths), n] log-singular values.

    CPU: ``numpy.linalg.svd(P, compute_uv=False)``; CUDA: ``torch.linalg.svdvals`` on device.
    """
    wanted = set(range(1, layers.shape[1] + 1) if depths is None else depths)
    on_cuda = layers.device.type == "cuda"
    out = []
    for l, P, lognorm in renormalised_products(layers):
        if l not in wanted:
            continue
        if on_cuda:
            out.append(torch.log(torch.linalg.svdvals(P)) + lognorm[:, None])
        else:
            sv = np.linalg.svd(P.numpy(), compute_uv=False)
            with np.errstate(divide="ignore"):
                out.append(torch.from_numpy(np.log(sv) + lognorm.numpy()[:, None]))
    return torch.stack(out, 1)


def max_err(x: Tensor, ref: Tensor) -> float:
    """Largest ``|x - ref|`` where both are finite (0 if nowhere)."""
    both = torch.isfinite(x) & torch.isfinite(ref)
    return float((x - ref).abs()[both].max()) if bool(both.any()) else 0.0


def same_zeros(x: Tensor, ref: Tensor) -> bool:
    """Whether ``x`` and ``ref`` have their ``-inf`` (exact zeros) at the same places."""
    return bool((torch.isneginf(x) == torch.isneginf(ref)).all())


def _max_or_none(x: Tensor, reduce: str = "max") -> float | None:
    return float(getattr(x, reduce)()) if x.numel() else None


def compare_naive_ours(naive: Tensor, ours: Tensor, tol: float = MISMATCH_TOL) -> dict:
    """Every-depth comparison; both [batch, depths, n] (moved to CPU float64)."""
    naive, ours = naive.double().cpu(), ours.double().cpu()
    both = torch.isfinite(naive) & torch.isfinite(ours)
    diff = torch.where(both, (naive - ours).abs(), torch.zeros_like(ours))
    bad = both & (diff > tol)
    ours_zero = torch.isneginf(ours)
    # naive's stand-ins for ours' exact zeros, relative to its own top value (log scale)
    naive_at_zero = (naive - naive[..., :1])[ours_zero & torch.isfinite(naive)]
    depth_bad = bad.any(-1).any(0)  # [depths]
    first_bad = int(depth_bad.nonzero()[0, 0]) + 1 if bool(depth_bad.any()) else None
    return {
        "tol": tol,
        "values_compared": int(both.sum()),
        "values_total": int(ours.numel()),
        "values_differing": int(bad.sum()),
        "fraction_differing": float(bad.sum()) / max(int(both.sum()), 1),
        "first_depth_index_with_difference": first_bad,
        "final_depth_values_differing": int(bad[:, -1].sum()),
        "max_abs_diff": float(diff.max()) if diff.numel() else 0.0,
        "max_abs_diff_top_sv": max_err(naive[..., :1], ours[..., :1]),
        "ours_exact_zeros": int(ours_zero.sum()),
        "naive_exact_zeros": int(torch.isneginf(naive).sum()),
        "naive_finite_where_ours_zero": int(naive_at_zero.numel()),
        "naive_log_rel_at_ours_zeros_max": _max_or_none(naive_at_zero),
        "naive_log_rel_at_ours_zeros_median": _max_or_none(naive_at_zero, "median"),
        "ours_zeros_final_depth_per_chain": ours_zero[:, -1].sum(-1).tolist(),
    }


def mp_reference(layers: Tensor, depths: Sequence[int], dps: int) -> Tensor:
    """Log-singular values of the products at ``depths`` formed in mpmath with ``dps`` digits.

    Returns [chains, len(depths), n] float64, ``-inf`` for exact zeros: a singular value
    below ``top * 10**-(dps - 25)`` is rounding noise of the high-precision product.
    """
    import mpmath

    mp = mpmath.mp
    old = mp.dps
    mp.dps = dps
    try:
        c, L, n, _ = layers.shape
        lay = layers.double().cpu().numpy()
        zero_rel = mpmath.mpf(10) ** (-(dps - 25))
        out = np.full((c, len(depths), n), -np.inf)
        for i in range(c):
            P = mp.eye(n)
            for l in range(1, L + 1):
                P = mp.matrix([[mpmath.mpf(float(v)) for v in row] for row in lay[i, l - 1]]) * P
                if l in depths:
                    j = list(depths).index(l)
                    sv = sorted((abs(s) for s in mp.svd_r(P, compute_uv=False)), reverse=True)
                    for t, s in enumerate(sv):
                        if sv[0] > 0 and s > sv[0] * zero_rel:
                            out[i, j, t] = float(mpmath.log(s))
        return torch.from_numpy(out)
    finally:
        mp.dps = old


def _count_off(x: Tensor, ref: Tensor, tol: float) -> int:
    both = torch.isfinite(x) & torch.isfinite(ref)
    return int(((x - ref).abs() > tol)[both].sum())


def reference_check(n: int, L: int, replicates: int, p: float, sigma: float | None, seed: int,
                    method: str, device: torch.device) -> dict:
    """Ours and naive vs mpmath at depths L/4, L/2, 3L/4, L of a small problem whose dynamic
    range exceeds float64's 16 digits (``mp.dps = 60 +`` that range, checked at 30 more)."""
    depths = sorted({max(1, round(L * f)) for f in (0.25, 0.5, 0.75, 1.0)})
    layers = sample_layers(LayerLaw(n, p, sigma).product(L), replicates, seed=seed,
                           dtype=torch.float64, device=device)
    ours = log_spectra_by_depth(layers, depths=depths, method=method).cpu()
    naive = naive_spectra_by_depth(layers, depths).cpu()
    fin = ours[torch.isfinite(ours)]
    spread = float(fin.max() - fin.min()) if fin.numel() else 0.0  # nats
    range_digits = math.ceil(spread / math.log(10))
    dps = 60 + range_digits
    t0 = time.perf_counter()
    ref = mp_reference(layers, depths, dps)
    ref2 = mp_reference(layers, depths, dps + 30)  # the reference must agree with itself
    t_ref = time.perf_counter() - t0
    ref_zero = torch.isneginf(ref)
    naive_at_zero = (naive - naive[..., :1])[ref_zero & torch.isfinite(naive)]
    return {
        "n": n, "L": L, "p": p, "chains": replicates, "depths": depths, "dps": dps,
        "dps_check": dps + 30,
        "dynamic_range_nats": spread, "dynamic_range_digits": range_digits,
        "reference_seconds": t_ref,
        "reference_self_consistency_max_abs": max_err(ref, ref2),
        "reference_zero_pattern_stable": same_zeros(ref, ref2),
        "reference_zero_threshold_log10_rel": float(-(dps - 25)),
        "ours_max_abs_err": max_err(ours, ref),
        "ours_max_abs_err_top_sv": max_err(ours[..., :1], ref[..., :1]),
        "ours_zero_pattern_matches": same_zeros(ours, ref),
        "ours_values_off_by_more_than_1e-6": _count_off(ours, ref, 1e-6),
        "naive_max_abs_err": max_err(naive, ref),
        "naive_max_abs_err_top_sv": max_err(naive[..., :1], ref[..., :1]),
        "naive_values_off_by_more_than_1e-6": _count_off(naive, ref, 1e-6),
        "values_compared": int(torch.isfinite(ref).sum()),
        "reference_exact_zeros": int(ref_zero.sum()),
        "ours_exact_zeros": int(torch.isneginf(ours).sum()),
        "naive_finite_where_reference_zero": int(naive_at_zero.numel()),
        "naive_log_rel_at_reference_zeros_max": _max_or_none(naive_at_zero),
    }
