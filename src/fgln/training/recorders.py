"""What :func:`fgln.training.train.train` records, and when: the recorded steps
(:func:`record_steps`),
the stacking of records into arrays (:func:`stack_history`), the default spectral recorder
and Chapter 7's full snapshot (flow rates, Propositions 4.5 and 7.1, their assumptions,
Remark 7.2) from one SVD of each partial product.

All spectral quantities are computed in float64 whatever the network's dtype.
"""
from __future__ import annotations

from functools import partial
from typing import Sequence

import numpy as np
import torch

from ..base.validation import as64, check_int
from ..products.svd import top_svd
from ..theory import _layer_rates as lr
from ._net64 import check_grad, check_net, partials64
from .network_assumptions import (
    column_alignment_error,
    fit_depth_lines,
    largest_angle_sine,
    log_top,
    row_sum_alignment_error,
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

    Parameters
    ----------
    k : int
        How many singular triplets of ``J`` enter ``U``, ``V`` and ``g`` (>= 1; capped at the
        smallest width).
    partial_k : int
        How many log-singular values of each ``A_l``, ``B_l`` to record (0: none).
    vectors : bool
        Record the top singular vectors ``U`` [n_L, k] and ``V`` [n_0, k].
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
                      remark: bool = True, subspace: int | None = None) -> dict[str, Tensor]:
    """All of Chapter 7's quantities at one instant, from one SVD of each partial product.

    The per-layer terms come from the kernel of :mod:`fgln.theory._layer_rates`, batched over
    the layers when every width is equal and layer by layer otherwise; the partial products'
    top ``k`` singular triplets from one symmetric eigendecomposition each
    (``top_svd(..., method="eigh")``, whatever the widths).

    Parameters
    ----------
    net : FixedGatesNetwork
        The network, depth ``L >= 2`` (Definition 4.1).
    grad_J : Tensor
        ``grad_J L`` [n_L, n_0].
    k : int
        Tracked singular values, ``1 <= k <= min(widths)``.
    remark : bool
        Also Remark 7.2's rates.
    subspace : int or None
        Subspace dimension of ``sin_A``, ``sin_B`` (``<= k``, default ``k``).

    Returns
    -------
    dict of str to Tensor
        float64 tensors: ``s`` (all singular values of J), ``g`` [k], ``rate_flow`` [k] and
        ``terms_flow`` [L, k] (:func:`.flow_rate_terms`, Lemmas E.1, E.2), ``terms_aligned``
        [L, k] and ``rate_aligned`` [k] (:func:`.aligned_rates`), ``rate_prop45``,
        ``rate_prop71`` [k] (Propositions 4.5, 7.1), ``gamma``, ``delta``, ``eps_depth`` [k],
        ``resid_prefix`` [L, k], ``resid_suffix`` [L-1, k] (:func:`.network_depth_scaling`),
        ``err_A``, ``err_B`` [L-1, k] (:func:`.alignment_errors`), ``sin_A``, ``sin_B`` [L-1]
        (:func:`.subspace_alignment`, top ``r``), ``inf_A``, ``inf_B`` [L-1] (the operator
        infinity norm of the top ``r`` block, :func:`.row_sum_alignment_error`), ``log_sA``,
        ``log_sB`` [L, k] and, with ``remark``, ``rate_rem72`` and ``rate_rem72_tri`` [k]
        (:func:`.remark72_rates`). Each equals what the named function returns (tested).
    """
    net = check_net(net)
    G = check_grad(net, grad_J)
    L = net.depth
    if L < 2:
        raise ValueError("dynamics_snapshot needs L >= 2")
    k = check_int("k", k, 1, min(net.widths))
    r = k if subspace is None else check_int("subspace", subspace, 1, k)
    f64 = torch.float64
    A_list, B_list = partials64(net)
    A, B = lr.stack_layers(A_list), lr.stack_layers(B_list)  # A_1..A_L, B_1..B_L
    W = [as64(w) for w in net.weights]
    J = A_list[0] @ W[0]                           # J = A_1 W_1 B_1 with B_1 = I
    U, s, V = top_svd(J, full=True)
    Uk, Vk = U[:, :k], V[:, :k]
    g = ((Uk.T @ G) * Vk.T).sum(-1)
    Ua, Sa, _ = lr.layer_svd(A[:-1], k)            # A_1..A_{L-1}
    Ub, Sb, Vb = lr.layer_svd(B[1:], k)            # B_2..B_L
    ones = torch.ones(1, k, dtype=f64)
    sa = torch.cat([Sa, ones])
    sb = torch.cat([ones, Sb])
    grad_W = lr.over_layers(partial(lr.lemma_a1_gradients, G), A, B)   # Lemma A.1
    terms = lr.over_layers(partial(lr.flow_terms, Uk, Vk), A, grad_W, B)
    terms_al = lr.aligned_terms(sa, sb, g)
    # depth scaling: prefixes M_{1:m} = B_{m+1} (m < L) and J; suffixes A_l (m = L - l)
    fit = fit_depth_lines(torch.log(torch.cat([sb[1:], s[None, :k]], 0)), torch.log(sa[:-1]))
    RA = Uk.T @ Ua                                 # [L-1, k, k]
    RB = Vk.T @ Vb
    delta = fit.delta
    base = -L * s[:k].pow(2.0 - 2.0 / L) * g
    out = {
        "s": s, "g": g, "rate_flow": terms.sum(0), "terms_flow": terms,
        "terms_aligned": terms_al, "rate_aligned": terms_al.sum(0), "rate_prop45": base,
        "gamma": fit.gamma, "delta": delta, "eps_depth": fit.epsilon,
        "resid_prefix": fit.resid_prefix, "resid_suffix": fit.resid_suffix,
        "err_A": column_alignment_error(RA), "err_B": column_alignment_error(RB),
        "sin_A": largest_angle_sine(RA[:, :r, :r]), "sin_B": largest_angle_sine(RB[:, :r, :r]),
        "inf_A": row_sum_alignment_error(RA[:, :r, :r]),
        "inf_B": row_sum_alignment_error(RB[:, :r, :r]),
        "log_sA": torch.log(sa), "log_sB": torch.log(sb),
        "rate_prop71": torch.exp((2.0 + 2.0 / L) * delta) * base,
    }
    if remark:
        # Q_l = M_L ... M_{l+1} = A_{l+1} W_{l+1} for l < L (A_{l+1} ends with D_{l+1})
        Q = lr.over_layers(torch.matmul, lr.stack_layers(A_list[1:]), lr.stack_layers(W[1:]))
        Uq, Sq, Vq = lr.layer_svd(Q, k)            # Q[l-1] = M_L ... M_{l+1}, l = 1..L-1
        # the empty products Q_L = P_1 = I: J's own bases
        Uq, Vq = torch.cat([Uq, Uk[None]]), lr.join_layers(Vq, Uk[None])
        Up, Vp = lr.join_layers(Vk[None], Ub), torch.cat([Vk[None], Vb])
        sq, sp = torch.cat([Sq, ones]), torch.cat([ones, Sb])
        gates = lr.stack_layers([as64(gt) for gt in net.gates]
                                + [torch.ones(net.widths[-1], dtype=f64)])
        mdot = lr.over_layers(lr.gated_rates, gates, grad_W)  # dM_l/dt = -D_l grad_{W_l}
        X, Y, Z = lr.over_layers(partial(lr.remark72_blocks, Uk, Vk), Uq, Vq, mdot, Up, Vp)
        core = lr.remark72_triangular_cores(X, sq, Y, sp, Z)   # [L, k]
        tri, out["rate_rem72"] = lr.remark72_sums(core, sq, sp, s[:k], delta, L)
        out["rate_rem72_tri"] = tri
    return out


class DynamicsRecorder:
    """Records :func:`dynamics_snapshot` (top ``k``) at each recorded step of
    :func:`fgln.training.train.train`; Chapter 7's measurements.

    Parameters
    ----------
    k : int
        How many singular values of ``J`` to follow (>= 1; capped at the smallest width).
    remark : bool
        Also record Remark 7.2's rates (``rate_rem72``, ``rate_rem72_tri``).
    subspace : int or None
        Size of the top block whose subspace angles are recorded (``None``: ``k``).
    """

    def __init__(self, k: int = 15, remark: bool = True, subspace: int | None = None):
        self.k = check_int("k", k, 1)
        self.remark = bool(remark)
        self.subspace = None if subspace is None else check_int("subspace", subspace, 1, self.k)

    def __call__(self, net: FixedGatesNetwork, grad_J: Tensor | None) -> dict[str, np.ndarray]:
        if grad_J is None:
            raise ValueError("DynamicsRecorder needs grad_J (a backward pass through the network)")
        with torch.no_grad():
            k = min(self.k, min(net.widths))
            sub = None if self.subspace is None else min(self.subspace, k)
            snap = dynamics_snapshot(net, grad_J, k, self.remark, sub)
        return {key: _np(val) for key, val in snap.items()}


def record_steps(every: int | Sequence[int] | None, total: int) -> list[int]:
    """The sorted recorded steps in ``[0, total]``: every ``k`` (plus ``total``), or a list.

    Parameters
    ----------
    every : int, sequence of int or None
        Record every ``every`` steps (>= 1), at the listed steps (>= 0; those past ``total``
        dropped), or never (None).
    total : int
        Number of updates of the run.

    Returns
    -------
    steps : list of int
        Sorted, without duplicates (empty for None).

    Raises
    ------
    ValueError
        If ``every`` is below 1, a listed step is negative, or ``every`` is neither None, an
        int nor a sequence of ints.
    """
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
    """Stack each recorded quantity over the records.

    Parameters
    ----------
    hist : dict of str to list
        Per key, one value (array-like of fixed shape) per record.

    Returns
    -------
    history : dict of str to numpy.ndarray
        Per key, the values stacked along a new first axis [records, ...].

    Raises
    ------
    ValueError
        If a quantity changes shape between records.
    """
    out = {}
    for key, vals in hist.items():
        try:
            out[key] = np.stack([np.asarray(v) for v in vals])
        except ValueError:  # ragged records would need an object array: refuse them
            raise ValueError(f"recorded {key!r} changes shape between records") from None
    return out
