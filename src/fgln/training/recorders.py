"""What :func:`fgln.training.train.train` records, and when: the recorded steps
(:func:`record_steps`),
the stacking of records into arrays (:func:`stack_history`), the default spectral recorder
and Chapter 7's full snapshot (flow rates, Propositions 4.5 and 7.1, their assumptions,
Remark 7.2) from one SVD of each partial product.

All spectral quantities are computed in float64 whatever the network's dtype.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..base.validation import as64, check_int
from ..products.partial_products import chain_products
from ..products.svd import top_svd
from ._net64 import check_grad, check_net, partials64
from .network_assumptions import (
    column_alignment_error,
    fit_depth_lines,
    largest_angle_sine,
    log_top,
)
from .networks import FixedGatesNetwork

Tensor = torch.Tensor

__all__ = [
    "SpectralRecorder",
    "DynamicsRecorder",
    "dynamics_snapshot",
    "record_steps",
    "stack_history",
]


def _np(x: Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


class SpectralRecorder:
    """What :func:`fgln.training.train.train` records by default on a fixed-gates network.

    At a recorded step: ``s`` (all singular values of J), ``U``, ``V`` (top-``k`` singular
    vectors; with ``vectors=True``), ``g`` (``<grad_J L, u_k v_k^T>``, top ``k``) and, with
    ``partial_k > 0``, ``log_sA`` / ``log_sB`` [L, partial_k]: top log-singular values of
    ``A_l`` and ``B_l`` for l = 1..L.
    """

    def __init__(self, k: int = 15, partial_k: int = 15, vectors: bool = False):
        self.k = check_int("k", k, 1)
        self.partial_k = check_int("partial_k", partial_k, 0)
        self.vectors = bool(vectors)

    def __call__(self, net: FixedGatesNetwork, grad_J: Tensor | None) -> dict[str, np.ndarray]:
        with torch.no_grad():
            J = as64(net.jacobian())
            k = min(self.k, min(J.shape))
            U, s, V = top_svd(J)
            out = {"s": _np(s)}
            if self.vectors:
                out["U"] = _np(U[:, :k])
                out["V"] = _np(V[:, :k])
            if grad_J is not None:
                G = as64(grad_J).to(J.device)
                out["g"] = _np(((U[:, :k].T @ G) * V[:, :k].T).sum(-1))
            if self.partial_k:
                A, B = partials64(net)
                pk = min(self.partial_k, min(net.widths))
                out["log_sA"] = _np(torch.stack([log_top(a, pk) for a in A]))
                out["log_sB"] = _np(torch.stack([log_top(b, pk) for b in B]))
        return out


def dynamics_snapshot(net: FixedGatesNetwork, grad_J: Tensor, k: int = 15,
                      remark: bool = True, r: int | None = None) -> dict[str, Tensor]:
    """All of Chapter 7's quantities at one instant, from one SVD of each partial product.

    Returns float64 tensors: ``s`` (all singular values of J), ``g`` [k], ``rate_flow`` [k] and
    ``terms_flow`` [L, k] (:func:`flow_rate_terms`), ``terms_aligned`` [L, k] and
    ``rate_aligned`` [k] (:func:`aligned_rates`), ``rate_prop45``, ``rate_prop71`` [k],
    ``gamma``, ``delta``, ``eps_depth`` [k], ``resid_prefix`` [L, k], ``resid_suffix`` [L-1, k]
    (:func:`network_depth_scaling`), ``err_A``, ``err_B`` [L-1, k] (:func:`alignment_errors`),
    ``sin_A``, ``sin_B`` [L-1] (:func:`subspace_alignment`, top ``r`` <= k, default k), ``log_sA``,
    ``log_sB`` [L, k] and, with ``remark``, ``rate_rem72`` and ``rate_rem72_tri`` [k]
    (:func:`remark72_rates`). Each equals what the named function returns (tested).
    """
    net = check_net(net)
    G = check_grad(net, grad_J)
    L = net.depth
    if L < 2:
        raise ValueError("dynamics_snapshot needs L >= 2")
    k = check_int("k", k, 1, min(net.widths))
    r = k if r is None else check_int("r", r, 1, k)
    if len(set(net.widths)) == 1:
        return _snapshot_square(net, G, k, remark, r)
    A, B = partials64(net)
    J = as64(net.jacobian())
    U, s, V = top_svd(J, full=True)
    Uk, Vk = U[:, :k], V[:, :k]
    g = ((Uk.T @ G) * Vk.T).sum(-1)
    sv_a = top_svd(A[:-1])          # A_1..A_{L-1}
    sv_b = top_svd(B[1:])           # B_2..B_L
    sa = torch.stack([x[1][:k] for x in sv_a] + [torch.ones(k, dtype=torch.float64)])
    sb = torch.stack([torch.ones(k, dtype=torch.float64)] + [x[1][:k] for x in sv_b])
    # exact flow terms -(U^T A_l A_l^T G B_l^T B_l V)_kk
    terms = torch.stack([-((Uk.T @ a) @ (a.T @ G @ b.T) @ (b @ Vk)).diagonal()
                         for a, b in zip(A, B)])
    terms_al = -(sa ** 2) * (sb ** 2) * g[None, :]
    # depth scaling: prefixes M_{1:m} = B_{m+1} (m < L) and J; suffixes A_l (m = L - l)
    log_pre = torch.log(torch.cat([sb[1:], s[None, :k]], 0))
    log_suf = torch.log(sa[:-1])
    fit = fit_depth_lines(log_pre, log_suf)
    # alignment (ii)
    err_a = torch.stack([column_alignment_error(Uk.T @ x[0][:, :k]) for x in sv_a])
    err_b = torch.stack([column_alignment_error(Vk.T @ x[2][:, :k]) for x in sv_b])
    sin_a = torch.stack([largest_angle_sine(Uk[:, :r].T @ x[0][:, :r]) for x in sv_a])
    sin_b = torch.stack([largest_angle_sine(Vk[:, :r].T @ x[2][:, :r]) for x in sv_b])
    delta = fit.delta
    base = -L * s[:k].pow(2.0 - 2.0 / L) * g
    out = {
        "s": s, "g": g, "rate_flow": terms.sum(0), "terms_flow": terms,
        "terms_aligned": terms_al, "rate_aligned": terms_al.sum(0),
        "rate_prop45": base, "rate_prop71": torch.exp((2.0 + 2.0 / L) * delta) * base,
        "gamma": fit.gamma, "delta": delta, "eps_depth": fit.epsilon,
        "resid_prefix": fit.resid_prefix, "resid_suffix": fit.resid_suffix, "err_A": err_a,
        "err_B": err_b, "sin_A": sin_a, "sin_B": sin_b, "log_sA": torch.log(sa),
        "log_sB": torch.log(sb),
    }
    if remark:
        Q, _ = chain_products([as64(m) for m in net.layers()])  # Q[l-1] = M_L ... M_{l+1}
        sv_q = top_svd(Q[:-1]) + [(U, torch.ones(U.shape[0], dtype=torch.float64), U)]
        sv_p = [(V, torch.ones(V.shape[0], dtype=torch.float64), V)] + sv_b
        gates = [None] + [as64(gt) for gt in net.gates] + [None]
        tri = torch.zeros(k, dtype=torch.float64)
        core_sum = torch.zeros(k, dtype=torch.float64)
        lower = torch.tril(torch.ones(k, k, dtype=torch.float64))
        upper = lower.T
        for l in range(1, L + 1):
            a, b = A[l - 1], B[l - 1]
            mdot = -(a.T @ G @ b.T)  # -grad_{W_l} (Lemma A.1)
            if gates[l] is not None:
                mdot = gates[l][:, None] * mdot
            Uq, sq, Vq = sv_q[l - 1]
            Up, sp, Vp = sv_p[l - 1]
            X = (Uk.T @ Uq[:, :k])                       # [k, k]
            Z = (Vp[:, :k].T @ Vk)                       # [k, k]
            Y = Vq[:, :k].T @ mdot @ Up[:, :k]           # [k, k]
            sqk, spk = sq[:k], sp[:k]
            with torch.no_grad():
                tm = torch.where(sqk[:, None] > 0, X * sqk[None, :] / sqk[:, None], 0.0) * lower
                tp = torch.where(spk[None, :] > 0, spk[:, None] * Z / spk[None, :], 0.0) * upper
            core = (tm @ Y @ tp).diagonal()
            core_sum += core
            tri += sqk * spk * core
        out["rate_rem72"] = (torch.exp((1.0 + 1.0 / L) * delta) * s[:k].pow(1.0 - 1.0 / L)
                             * core_sum)
        out["rate_rem72_tri"] = tri
    return out


def _snapshot_square(net: FixedGatesNetwork, G: Tensor, k: int, remark: bool,
                     r: int) -> dict[str, Tensor]:
    """:func:`dynamics_snapshot` for square networks: every per-layer quantity in one batched
    operation over l (the general path loops over l)."""
    L = net.depth
    f64 = torch.float64
    A, B = partials64(net)
    A, B = torch.stack(A), torch.stack(B)          # [L, n, n]: A_1..A_L, B_1..B_L
    J = as64(net.jacobian())
    n = J.shape[0]
    U, s, V = top_svd(J, full=True)
    Uk, Vk = U[:, :k], V[:, :k]
    g = ((Uk.T @ G) * Vk.T).sum(-1)
    Ua, Sa, _ = top_svd(A[:-1], k, method="eigh")              # A_1..A_{L-1}
    Ub, Sb, Vb = top_svd(B[1:], k, method="eigh")               # B_2..B_L
    ones = torch.ones(1, k, dtype=f64)
    sa = torch.cat([Sa, ones])
    sb = torch.cat([ones, Sb])
    AtGBt = A.mT @ G @ B.mT                        # grad_{W_l} (Lemma A.1), [L, n, n]
    terms = -((Uk.T @ A) @ AtGBt @ (B @ Vk)).diagonal(dim1=-2, dim2=-1)
    terms_al = -(sa ** 2) * (sb ** 2) * g[None, :]
    log_pre = torch.log(torch.cat([sb[1:], s[None, :k]], 0))
    log_suf = torch.log(sa[:-1])
    fit = fit_depth_lines(log_pre, log_suf)
    RA = Uk.T @ Ua                                 # [L-1, k, k]
    RB = Vk.T @ Vb
    out = {
        "s": s, "g": g, "rate_flow": terms.sum(0), "terms_flow": terms,
        "terms_aligned": terms_al, "rate_aligned": terms_al.sum(0),
        "rate_prop45": -L * s[:k].pow(2.0 - 2.0 / L) * g,
        "gamma": fit.gamma, "delta": fit.delta, "eps_depth": fit.epsilon,
        "resid_prefix": fit.resid_prefix, "resid_suffix": fit.resid_suffix,
        "err_A": column_alignment_error(RA), "err_B": column_alignment_error(RB),
        "sin_A": largest_angle_sine(RA[:, :r, :r]), "sin_B": largest_angle_sine(RB[:, :r, :r]),
        "log_sA": torch.log(sa), "log_sB": torch.log(sb),
    }
    delta = fit.delta
    out["rate_prop71"] = torch.exp((2.0 + 2.0 / L) * delta) * out["rate_prop45"]
    if remark:
        layers = torch.stack([as64(m) for m in net.layers()])
        Q = torch.stack(chain_products(layers.unbind(0))[0])  # Q[l-1] = M_L ... M_{l+1}
        Uq, Sq, Vq = top_svd(Q[:-1], k, method="eigh")
        Uq = torch.cat([Uq, Uk[None]])             # the empty product: J's own bases
        Sq = torch.cat([Sq, ones])
        Vq = torch.cat([Vq, Uk[None]])
        Up = torch.cat([Vk[None], Ub])
        Sp = torch.cat([ones, Sb])
        Vp = torch.cat([Vk[None], Vb])
        gates = torch.stack([as64(gt) for gt in net.gates] + [torch.ones(n, dtype=f64)])
        mdot = -(gates[:, :, None] * AtGBt)        # dM_l/dt = -D_l grad_{W_l}
        X = Uk.T @ Uq                              # [L, k, k]
        Z = Vp.mT @ Vk
        Y = Vq.mT @ mdot @ Up
        sq, sp = Sq, Sp
        lower = torch.tril(torch.ones(k, k, dtype=f64))
        tm = torch.where(sq[:, :, None] > 0, X * sq[:, None, :] / sq[:, :, None], 0.0) * lower
        tp = torch.where(sp[:, None, :] > 0, sp[:, :, None] * Z / sp[:, None, :], 0.0) * lower.T
        core = (tm @ Y @ tp).diagonal(dim1=-2, dim2=-1)   # [L, k]
        out["rate_rem72"] = (torch.exp((1.0 + 1.0 / L) * delta) * s[:k].pow(1.0 - 1.0 / L)
                             * core.sum(0))
        out["rate_rem72_tri"] = (sq * sp * core).sum(0)
    return out


class DynamicsRecorder:
    """Records :func:`dynamics_snapshot` (top ``k``) at each recorded step of
    :func:`fgln.training.train.train`; Chapter 7's measurements."""

    def __init__(self, k: int = 15, remark: bool = True, r: int | None = None):
        self.k = check_int("k", k, 1)
        self.remark = bool(remark)
        self.r = None if r is None else check_int("r", r, 1, self.k)

    def __call__(self, net: FixedGatesNetwork, grad_J: Tensor | None) -> dict[str, np.ndarray]:
        if grad_J is None:
            raise ValueError("DynamicsRecorder needs grad_J (a backward pass through the network)")
        with torch.no_grad():
            k = min(self.k, min(net.widths))
            r = None if self.r is None else min(self.r, k)
            snap = dynamics_snapshot(net, grad_J, k, self.remark, r)
        return {key: _np(val) for key, val in snap.items()}


def record_steps(every: int | Sequence[int] | None, total: int) -> list[int]:
    """The sorted recorded steps in ``[0, total]``: every ``k`` (plus ``total``), or a list."""
    if every is None:
        return []
    if isinstance(every, (int, np.integer)) and not isinstance(every, bool):
        k = check_int("record", every, 1)
        return sorted(set(range(0, total + 1, k)) | {total})
    try:
        steps = sorted({check_int("record[...]", s, 0) for s in every})
    except TypeError:
        raise ValueError(f"record must be None, an int or a sequence of ints, got {every!r}") \
            from None
    return [s for s in steps if s <= total]


def stack_history(hist: dict[str, list]) -> dict[str, np.ndarray]:
    out = {}
    for key, vals in hist.items():
        try:
            out[key] = np.stack([np.asarray(v) for v in vals])
        except ValueError:  # ragged records would need an object array: refuse them
            raise ValueError(f"recorded {key!r} changes shape between records") from None
    return out
