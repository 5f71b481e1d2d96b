"""How the singular values of ``J`` move under gradient flow (paper, Sections 4 and 7, Appendices
A, E and G.1).

Notation: ``J = U S V^T`` with ``s_1 >= s_2 >= ...``; ``G = grad_J L`` [n_L, n_0], the gradient of
the loss with respect to ``J``; ``g_k = <G, u_k v_k^T> = u_k^T G v_k``. For a
:class:`~fgln.networks.FixedGatesNetwork`, ``J = A_l W_l B_l`` (Section 7) and

* Lemma A.1: ``grad_{W_l} L = A_l^T G B_l^T`` (:func:`weight_gradients`);
* Lemma E.1: under gradient flow ``dJ/dt = -sum_l A_l A_l^T G B_l^T B_l``
  (:func:`flow_jacobian_derivative`);
* Lemma E.2: ``ds_k/dt = u_k^T (dJ/dt) v_k`` (:func:`singular_value_rates`), hence the exact flow
  rates ``ds_k/dt = -sum_l (U^T A_l A_l^T G B_l^T B_l V)_kk`` (:func:`flow_singular_value_rates`);
* Proposition 4.5: ``ds_k/dt = -L s_k^{2-2/L} g_k`` for balanced masked networks
  (:func:`balanced_singular_value_rates`);
* Proposition 7.1: ``ds_k/dt ~ -e^{(2+2/L) delta_k} L s_k^{2-2/L} g_k`` with ``delta_k`` from a
  depth-scaling fit of the partial products (:func:`network_depth_scaling`,
  :func:`prop71_rates`), and the sizes of its assumptions' violations
  (:func:`alignment_errors`);
* Remark 7.2: the first-order version through triangular factors (:func:`remark72_rates`);
* Appendix G.1: the process ``s(t+1) = s(t) + C s(t)^{2-2/L} g(t)`` with ``C`` fitted by least
  squares (:func:`fit_g1_constant`) or taken from Proposition 7.1 (:func:`theory_constant`).

Depth-scaling convention. A product of ``m`` consecutive layers is modelled as
``log s_k = m gamma_k + delta_k`` (Definition 4.6 with ``M_{1:m}``): the prefixes
``M_{1:m} = D_m W_m ... D_1 W_1`` (m = 1..L, ``D_L = I``, so ``M_{1:L} = J``) and the suffixes
``A_l`` (m = L - l layers, l = 1..L-1). With this count ``s_k(A_l) s_k(B_l) =
e^{(1 + 1/L) delta_k} s_k^{1 - 1/L}`` whenever ``s_k = e^{L gamma_k + delta_k}``, the identity
Appendix E.2 uses. (The exponents ``(L - l + 1)`` and ``l`` printed in Proposition 7.1 (i) count
one layer more on each side than ``A_l`` and ``B_l`` hold; with them the identity is off by
``e^{2 gamma_k}``.) Empty products (``A_L = B_1 = I``) are left out of the fit.

All spectral quantities are computed in float64 whatever the network's dtype.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from .networks import FixedGatesNetwork
from .validation import check_int

Tensor = torch.Tensor

__all__ = [
    "svd_top",
    "projections",
    "singular_value_rates",
    "balanced_singular_value_rates",
    "weight_gradients",
    "flow_jacobian_derivative",
    "flow_singular_value_rates",
    "flow_rate_terms",
    "NetworkDepthScaling",
    "network_depth_scaling",
    "alignment_errors",
    "subspace_alignment",
    "aligned_rates",
    "prop71_rates",
    "remark72_rates",
    "SpectralRecorder",
    "DynamicsRecorder",
    "dynamics_snapshot",
    "g1_process",
    "fit_g1_constant",
    "theory_constant",
    "growth_phase_ratio",
    "rise_times",
]


# --------------------------------------------------------------------------------------
# singular values and their rates
# --------------------------------------------------------------------------------------


def _as64(x: Tensor) -> Tensor:
    return x.detach().to(torch.float64)


def _check_matrix(name: str, x) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim != 2:
        got = getattr(x, "shape", type(x).__name__)
        raise ValueError(f"{name} must be a 2-d tensor, got {got}")
    if not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} has non-finite entries")
    return _as64(x)


def _check_k(k, J: Tensor) -> int:
    kmax = min(J.shape)
    return kmax if k is None else check_int("k", k, 1, kmax)


def svd_top(J: Tensor, k: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``(U_k [m, k], s_k [k], V_k [n, k])``: the top ``k`` singular triplets of ``J`` (float64)."""
    J = _check_matrix("J", J)
    k = _check_k(k, J)
    U, s, Vh = torch.linalg.svd(J, full_matrices=False)
    return U[:, :k], s[:k], Vh[:k].T


def projections(J: Tensor, grad_J: Tensor, k: int | None = None) -> Tensor:
    """``g_k = <grad_J L, u_k v_k^T> = u_k^T grad_J v_k`` for the top ``k`` (default: all) [k]."""
    U, _, V = svd_top(J, k)
    G = _check_matrix("grad_J", grad_J)
    if G.shape != J.shape:
        raise ValueError(f"grad_J must have the shape of J {tuple(J.shape)}, got {tuple(G.shape)}")
    return ((U.T @ G) * V.T).sum(-1)


def singular_value_rates(J: Tensor, J_dot: Tensor, k: int | None = None) -> Tensor:
    """Lemma E.2: ``ds_k/dt = u_k^T (dJ/dt) v_k`` for the top ``k`` (default: all) [k].

    Exact for simple singular values (a repeated one has no derivative in general).
    """
    U, _, V = svd_top(J, k)
    Jd = _check_matrix("J_dot", J_dot)
    if Jd.shape != J.shape:
        raise ValueError(f"J_dot must have the shape of J {tuple(J.shape)}, got {tuple(Jd.shape)}")
    return ((U.T @ Jd) * V.T).sum(-1)


def _check_L(L) -> int:
    return check_int("L", L, 1)


def balanced_singular_value_rates(J: Tensor, grad_J: Tensor, L: int,
                                  k: int | None = None) -> Tensor:
    """Proposition 4.5: ``ds_k/dt = -L s_k^{2-2/L} <grad_J L, u_k v_k^T>`` [k]."""
    L = _check_L(L)
    _, s, _ = svd_top(J, k)
    g = projections(J, grad_J, k)
    return -L * s.pow(2.0 - 2.0 / L) * g


# --------------------------------------------------------------------------------------
# gradient flow of a fixed-gates network (Lemmas A.1, E.1)
# --------------------------------------------------------------------------------------


def _check_net(net) -> FixedGatesNetwork:
    if not isinstance(net, FixedGatesNetwork):
        raise ValueError(f"net must be a FixedGatesNetwork, got {type(net).__name__}")
    return net


def _partials64(net: FixedGatesNetwork) -> tuple[list[Tensor], list[Tensor]]:
    with torch.no_grad():
        A, B = net.partial_products()
    return [_as64(a) for a in A], [_as64(b) for b in B]


def _check_grad(net: FixedGatesNetwork, grad_J) -> Tensor:
    G = _check_matrix("grad_J", grad_J)
    n = net.widths
    if G.shape != (n[-1], n[0]):
        raise ValueError(f"grad_J must have shape [n_L, n_0] = {(n[-1], n[0])}, "
                         f"got {tuple(G.shape)}")
    return G.to(device=net.weights[0].device)


def weight_gradients(net: FixedGatesNetwork, grad_J: Tensor) -> list[Tensor]:
    """Lemma A.1: ``grad_{W_l} L = A_l^T grad_J B_l^T`` for l = 1..L (float64)."""
    net = _check_net(net)
    G = _check_grad(net, grad_J)
    A, B = _partials64(net)
    return [a.T @ G @ b.T for a, b in zip(A, B)]


def flow_jacobian_derivative(net: FixedGatesNetwork, grad_J: Tensor) -> Tensor:
    """Lemma E.1: ``dJ/dt = -sum_l A_l A_l^T grad_J B_l^T B_l`` under gradient flow [n_L, n_0]."""
    net = _check_net(net)
    G = _check_grad(net, grad_J)
    A, B = _partials64(net)
    return -sum(a @ a.T @ G @ b.T @ b for a, b in zip(A, B))


def flow_rate_terms(net: FixedGatesNetwork, grad_J: Tensor, k: int | None = None) -> Tensor:
    """Per-layer terms of the exact flow rates: ``-(U^T A_l A_l^T G B_l^T B_l V)_kk``, [L, k];
    their sum over l is ``ds_k/dt`` (Appendix E.2, first display)."""
    net = _check_net(net)
    G = _check_grad(net, grad_J)
    A, B = _partials64(net)
    J = _as64(net.jacobian())
    U, _, V = svd_top(J, k)
    rows = []
    for a, b in zip(A, B):
        left = U.T @ a  # [k, n_l]
        right = b @ V   # [n_{l-1}, k]
        rows.append(-(((left @ a.T) @ G) @ b.T @ right).diagonal())
    return torch.stack(rows)


def flow_singular_value_rates(net: FixedGatesNetwork, grad_J: Tensor,
                              k: int | None = None) -> Tensor:
    """Exact gradient-flow rates ``ds_k/dt`` of the top ``k`` singular values (Lemmas E.1, E.2)."""
    return flow_rate_terms(net, grad_J, k).sum(0)


# --------------------------------------------------------------------------------------
# Proposition 7.1: assumptions (i) and (ii), and its right-hand side
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NetworkDepthScaling:
    """Least-squares fit ``log s_k(product of m layers) = m gamma_k + delta_k`` (Definition 4.6).

    ``log_prefix`` [L, k]: ``log s_k(M_{1:m})``, m = 1..L (row m-1). ``log_suffix`` [L-1, k]:
    ``log s_k(A_l)``, l = 1..L-1 (row l-1, m = L - l layers). ``resid_*``: measured minus
    fitted. ``epsilon`` [k]: the largest |residual| per k, the epsilon of Definition 4.6 /
    Proposition 7.1 (i).
    """

    gamma: Tensor
    delta: Tensor
    log_prefix: Tensor
    log_suffix: Tensor
    resid_prefix: Tensor
    resid_suffix: Tensor

    @property
    def epsilon(self) -> Tensor:
        both = torch.cat([self.resid_prefix.abs(), self.resid_suffix.abs()], 0)
        return both.amax(0)


def _log_top(M: Tensor, k: int) -> Tensor:
    s = torch.linalg.svdvals(M)[:k]
    return torch.log(s)


def network_depth_scaling(net: FixedGatesNetwork, k: int | None = None,
                          families: Sequence[str] = ("prefix", "suffix"),
                          ) -> NetworkDepthScaling:
    """Fit Proposition 7.1 (i) / Definition 4.6 on the partial products of ``net``.

    ``families``: which products enter the fit: ``"prefix"`` (``M_{1:m}``, Definition 4.6) and/or
    ``"suffix"`` (``A_l``); both by default, since Proposition 7.1 (i) asks both to share
    ``(gamma_k, delta_k)``. Residuals are reported for both families either way. Requires
    ``k <= min(widths)`` and L >= 2.
    """
    net = _check_net(net)
    L = net.depth
    if L < 2:
        raise ValueError("network_depth_scaling needs L >= 2 (a line through >= 2 depths)")
    kmax = min(net.widths)
    k = kmax if k is None else check_int("k", k, 1, kmax)
    fams = tuple(families)
    if not fams or any(f not in ("prefix", "suffix") for f in fams):
        raise ValueError(f"families must be a non-empty subset of ('prefix', 'suffix'), "
                         f"got {families!r}")
    A, B = _partials64(net)
    J = _as64(net.jacobian())
    prefixes = B[1:] + [J]             # M_{1:m} = B_{m+1}, m = 1..L-1, and J
    log_pre = torch.stack([_log_top(p, k) for p in prefixes])        # [L, k]
    log_suf = torch.stack([_log_top(a, k) for a in A[:-1]])          # [L-1, k], A_l, l=1..L-1
    m_pre = torch.arange(1, L + 1, dtype=torch.float64)
    m_suf = torch.arange(L - 1, 0, -1, dtype=torch.float64)
    xs, ys = [], []
    if "prefix" in fams:
        xs.append(m_pre)
        ys.append(log_pre)
    if "suffix" in fams:
        xs.append(m_suf)
        ys.append(log_suf)
    x = torch.cat(xs)
    y = torch.cat(ys, 0)
    ok = torch.isfinite(y)
    gamma = torch.empty(k, dtype=torch.float64)
    delta = torch.empty(k, dtype=torch.float64)
    for j in range(k):
        xj, yj = x[ok[:, j]], y[ok[:, j], j]
        if xj.numel() < 2:
            gamma[j] = delta[j] = float("nan")
            continue
        design = torch.stack([xj, torch.ones_like(xj)], 1)
        sol = torch.linalg.lstsq(design, yj[:, None]).solution[:, 0]
        gamma[j], delta[j] = sol[0], sol[1]
    fit_pre = m_pre[:, None] * gamma + delta
    fit_suf = m_suf[:, None] * gamma + delta
    return NetworkDepthScaling(gamma, delta, log_pre, log_suf, log_pre - fit_pre,
                               log_suf - fit_suf)


def _aligned_block(U: Tensor, W: Tensor, k: int) -> Tensor:
    """``U_k^T W_k`` with the columns of ``W`` signed to make the diagonal >= 0 [k, k]."""
    R = U[:, :k].T @ W[:, :k]
    sign = torch.where(R.diagonal() < 0, -1.0, 1.0).to(R.dtype)
    return R * sign[None, :]


def alignment_errors(net: FixedGatesNetwork, k: int | None = None) -> tuple[Tensor, Tensor]:
    """Proposition 7.1 (ii), measured on the top-``k`` block: ``(err_A, err_B)``, each [L-1, k].

    ``err_A[l-1, j] = max_i |(U^T U_{A_l} - I)_{ij}|`` for l = 1..L-1 and
    ``err_B[l-2, j] = max_i |(V^T V_{B_l} - I)_{ij}|`` for l = 2..L, over i, j <= k, with
    the signs of the columns of ``U_{A_l}`` (``V_{B_l}``) chosen to make the diagonal positive.
    The infinity norm of (ii) restricted to the block is ``err.amax(-1)``. The empty products
    ``A_L = B_1 = I`` are left out (their singular vectors are arbitrary).
    """
    net = _check_net(net)
    kmax = min(net.widths)
    k = kmax if k is None else check_int("k", k, 1, kmax)
    A, B = _partials64(net)
    J = _as64(net.jacobian())
    U, _, Vh = torch.linalg.svd(J, full_matrices=False)
    V = Vh.T
    eye = torch.eye(k, dtype=torch.float64)
    err_a, err_b = [], []
    for a in A[:-1]:
        Ua = torch.linalg.svd(a, full_matrices=False)[0]
        err_a.append((_aligned_block(U, Ua, k) - eye).abs().amax(0))
    for b in B[1:]:
        Vb = torch.linalg.svd(b, full_matrices=False)[2].T
        err_b.append((_aligned_block(V, Vb, k) - eye).abs().amax(0))
    return torch.stack(err_a), torch.stack(err_b)


def subspace_alignment(net: FixedGatesNetwork, r: int) -> tuple[Tensor, Tensor]:
    """Sine of the largest principal angle between top-``r`` singular subspaces:
    ``(sin_A, sin_B)``, each [L-1]: left subspaces of ``J`` and ``A_l`` (l = 1..L-1), right
    subspaces of ``J`` and ``B_l`` (l = 2..L). Unlike :func:`alignment_errors` this does not
    care how the vectors are arranged inside the subspace, so it stays small when a cluster of
    close singular values (Remark 6.2) mixes them."""
    net = _check_net(net)
    r = check_int("r", r, 1, min(net.widths))
    A, B = _partials64(net)
    J = _as64(net.jacobian())
    U, _, Vh = torch.linalg.svd(J, full_matrices=False)
    Ur, Vr = U[:, :r], Vh[:r].T

    def sin_max(X: Tensor, Y: Tensor) -> Tensor:
        c = torch.linalg.svdvals(X.T @ Y).clamp(max=1.0)
        return torch.sqrt(1.0 - c.min() ** 2)

    sa = [sin_max(Ur, torch.linalg.svd(a, full_matrices=False)[0][:, :r]) for a in A[:-1]]
    sb = [sin_max(Vr, torch.linalg.svd(b, full_matrices=False)[2][:r].T) for b in B[1:]]
    return torch.stack(sa), torch.stack(sb)


def prop71_rates(J: Tensor, grad_J: Tensor, L: int, delta: Tensor,
                 k: int | None = None) -> Tensor:
    """Proposition 7.1's right-hand side ``-e^{(2+2/L) delta_k} L s_k^{2-2/L} g_k`` [k]
    (``delta`` [>= k]; ``delta = 0`` gives Proposition 4.5)."""
    L = _check_L(L)
    base = balanced_singular_value_rates(J, grad_J, L, k)
    delta = _as64(torch.as_tensor(delta)).to(base.device)
    if delta.ndim != 1 or delta.shape[0] < base.shape[0]:
        raise ValueError(f"delta must be 1-d with at least {base.shape[0]} entries, "
                         f"got shape {tuple(delta.shape)}")
    return torch.exp((2.0 + 2.0 / L) * delta[: base.shape[0]]) * base


def aligned_rates(net: FixedGatesNetwork, grad_J: Tensor, k: int | None = None) -> Tensor:
    """Proposition 7.1 with (ii) exact but (i) not assumed:
    ``-sum_l s_k(A_l)^2 s_k(B_l)^2 g_k`` [k] (Appendix E.2, third display)."""
    net = _check_net(net)
    J = _as64(net.jacobian())
    k = _check_k(k, J)
    if k > min(net.widths):
        raise ValueError(f"k must be <= min(widths) = {min(net.widths)}, got {k}")
    A, B = _partials64(net)
    g = projections(J, grad_J, k)
    tot = sum(torch.linalg.svdvals(a)[:k] ** 2 * torch.linalg.svdvals(b)[:k] ** 2
              for a, b in zip(A, B))
    return -tot * g


# --------------------------------------------------------------------------------------
# Remark 7.2
# --------------------------------------------------------------------------------------


def remark72_rates(layers: Sequence[Tensor], layer_rates: Sequence[Tensor], delta: Tensor | None,
                   k: int | None = None) -> dict[str, Tensor]:
    """Remark 7.2 for ``J = M_L ... M_1`` with layer derivatives ``dM_l/dt`` (any smooth M_l).

    With ``Q_l = M_L ... M_{l+1} = U_Q S_Q V_Q^T``, ``P_l = M_{l-1} ... M_1 = U_P S_P V_P^T`` and
    ``dJ/dt = sum_l Q_l (dM_l/dt) P_l``, the exact rate is
    ``ds_k/dt = sum_l s_{Q_l,k} s_{P_l,k} (T_l^- V_Q^T dM_l U_P T_l^+)_kk`` with
    ``T_l^- = S_Q^{-1} U^T U_Q S_Q`` and ``T_l^+ = S_P V_P^T V S_P^{-1}`` (full matrices; for
    the empty products ``Q_L = P_1 = I`` the singular bases are taken to be J's own).
    Remark 7.2 keeps the lower (upper) triangular part of ``T^-`` (``T^+``) on the top block
    and replaces ``s_{Q_l,k} s_{P_l,k}`` by ``e^{(1+1/L) delta_k} s_k^{1-1/L}``.

    Returns a dict of [k] tensors: ``exact`` (Lemma E.2), ``triangular`` (triangular truncation
    only, measured ``s_Q s_P``), and ``remark`` (the remark's right-hand side; only when
    ``delta`` is given).
    """
    layers = [_as64(m) for m in layers]
    rates = [_as64(m) for m in layer_rates]
    if len(layers) < 1 or len(rates) != len(layers):
        raise ValueError(f"layer_rates must match layers one to one, got {len(rates)} and "
                         f"{len(layers)}")
    for i, (m, r) in enumerate(zip(layers, rates)):
        if m.ndim != 2 or r.shape != m.shape:
            raise ValueError(f"layer_rates[{i}] must have the shape of layers[{i}] "
                             f"{tuple(m.shape)}, got {tuple(r.shape)}")
        if i and layers[i].shape[1] != layers[i - 1].shape[0]:
            raise ValueError(f"layers do not chain at {i}: {tuple(layers[i].shape)} after "
                             f"{tuple(layers[i - 1].shape)}")
    L = len(layers)
    dev = layers[0].device
    P = [torch.eye(layers[0].shape[1], dtype=torch.float64, device=dev)]
    for m in layers[:-1]:
        P.append(m @ P[-1])
    Q = [torch.eye(layers[-1].shape[0], dtype=torch.float64, device=dev)]
    for m in layers[:0:-1]:
        Q.append(Q[-1] @ m)
    Q = Q[::-1]  # Q[l-1] = M_L ... M_{l+1}
    J = Q[0] @ layers[0]
    U, s, Vh = torch.linalg.svd(J, full_matrices=True)
    V = Vh.T
    k = _check_k(k, J)
    s = s[: min(J.shape)]
    exact = torch.zeros(k, dtype=torch.float64, device=dev)
    tri = torch.zeros(k, dtype=torch.float64, device=dev)
    tri_unscaled = torch.zeros(k, dtype=torch.float64, device=dev)
    ones_q = torch.ones(U.shape[0], dtype=torch.float64, device=dev)
    ones_p = torch.ones(V.shape[0], dtype=torch.float64, device=dev)
    for l in range(L):
        # the empty products Q_L = I and P_1 = I: every basis is singular, take J's own
        if l == L - 1:
            Uq, sq, Vqh = U, ones_q, U.T
        else:
            Uq, sq, Vqh = torch.linalg.svd(Q[l], full_matrices=False)
        if l == 0:
            Up, sp, Vph = V, ones_p, V.T
        else:
            Up, sp, Vph = torch.linalg.svd(P[l], full_matrices=False)
        X = U.T @ Uq           # [r, rq]
        Z = Vph @ V            # [rp, r]
        Y = Vqh @ rates[l] @ Up  # [rq, rp]
        # exact: sum_{i,j} X_{ki} s_{Q,i} Y_{ij} s_{P,j} Z_{jk}
        left = X[:k] * sq[None, :]       # [k, rq]
        right = sp[:, None] * Z[:, :k]   # [rp, k]
        exact += (left @ Y @ right).diagonal()
        # triangular truncation: i <= kk and j <= kk for entry kk
        for kk in range(k):
            if kk >= sq.shape[0] or kk >= sp.shape[0] or sq[kk] == 0 or sp[kk] == 0:
                continue
            tm = X[kk, : kk + 1] * sq[: kk + 1] / sq[kk]          # row kk of T^-, lower part
            tp = sp[: kk + 1] * Z[: kk + 1, kk] / sp[kk]          # column kk of T^+, upper part
            core = tm @ Y[: kk + 1, : kk + 1] @ tp
            tri[kk] += sq[kk] * sp[kk] * core
            tri_unscaled[kk] += core
    out = {"exact": exact, "triangular": tri}
    if delta is not None:
        delta = _as64(torch.as_tensor(delta)).to(dev)[:k]
        out["remark"] = (torch.exp((1.0 + 1.0 / L) * delta) * s[:k].pow(1.0 - 1.0 / L)
                         * tri_unscaled)
    return out


# --------------------------------------------------------------------------------------
# recorders for fgln.train
# --------------------------------------------------------------------------------------


def _np(x: Tensor) -> np.ndarray:
    return x.detach().cpu().numpy()


class SpectralRecorder:
    """What :func:`fgln.train.train` records by default on a fixed-gates network.

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
            J = _as64(net.jacobian())
            k = min(self.k, min(J.shape))
            U, s, Vh = torch.linalg.svd(J, full_matrices=False)
            out = {"s": _np(s)}
            if self.vectors:
                out["U"] = _np(U[:, :k])
                out["V"] = _np(Vh[:k].T)
            if grad_J is not None:
                G = _as64(grad_J).to(J.device)
                out["g"] = _np(((U[:, :k].T @ G) * Vh[:k]).sum(-1))
            if self.partial_k:
                A, B = _partials64(net)
                pk = min(self.partial_k, min(net.widths))
                out["log_sA"] = _np(torch.stack([_log_top(a, pk) for a in A]))
                out["log_sB"] = _np(torch.stack([_log_top(b, pk) for b in B]))
        return out


def _svd_many(mats: list[Tensor]) -> list[tuple[Tensor, Tensor, Tensor]]:
    """Reduced SVDs ``(U, s, Vh)`` of a list of matrices (one batched call when shapes agree)."""
    if not mats:
        return []
    if all(m.shape == mats[0].shape for m in mats):
        U, S, Vh = torch.linalg.svd(torch.stack(mats), full_matrices=False)
        return [(U[i], S[i], Vh[i]) for i in range(len(mats))]
    return [torch.linalg.svd(m, full_matrices=False) for m in mats]


def _aligned_err(X: Tensor, k: int) -> Tensor:
    """Column-wise ``max_i |X_ij s_j - delta_ij|`` of the top-k block, signs making diag >= 0."""
    R = X[:k, :k]
    sign = torch.where(R.diagonal() < 0, -1.0, 1.0).to(R.dtype)
    return (R * sign[None, :] - torch.eye(k, dtype=R.dtype, device=R.device)).abs().amax(0)


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
    net = _check_net(net)
    G = _check_grad(net, grad_J)
    L = net.depth
    if L < 2:
        raise ValueError("dynamics_snapshot needs L >= 2")
    k = check_int("k", k, 1, min(net.widths))
    r = k if r is None else check_int("r", r, 1, k)
    if len(set(net.widths)) == 1:
        return _snapshot_square(net, G, k, remark, r)
    A, B = _partials64(net)
    J = _as64(net.jacobian())
    U, s, Vh = torch.linalg.svd(J, full_matrices=True)
    V = Vh.T
    Uk, Vk = U[:, :k], V[:, :k]
    g = ((Uk.T @ G) * Vk.T).sum(-1)
    sv_a = _svd_many(A[:-1])          # A_1..A_{L-1}
    sv_b = _svd_many(B[1:])           # B_2..B_L
    sa = torch.stack([x[1][:k] for x in sv_a] + [torch.ones(k, dtype=torch.float64)])
    sb = torch.stack([torch.ones(k, dtype=torch.float64)] + [x[1][:k] for x in sv_b])
    # exact flow terms -(U^T A_l A_l^T G B_l^T B_l V)_kk
    terms = torch.stack([-((Uk.T @ a) @ (a.T @ G @ b.T) @ (b @ Vk)).diagonal()
                         for a, b in zip(A, B)])
    terms_al = -(sa ** 2) * (sb ** 2) * g[None, :]
    # depth scaling: prefixes M_{1:m} = B_{m+1} (m < L) and J; suffixes A_l (m = L - l)
    log_pre = torch.log(torch.cat([sb[1:], s[None, :k]], 0))
    log_suf = torch.log(sa[:-1])
    m_pre = torch.arange(1, L + 1, dtype=torch.float64)
    m_suf = torch.arange(L - 1, 0, -1, dtype=torch.float64)
    x = torch.cat([m_pre, m_suf])
    y = torch.cat([log_pre, log_suf], 0)
    design = torch.stack([x, torch.ones_like(x)], 1)
    coef = torch.linalg.lstsq(design, y).solution if bool(torch.isfinite(y).all()) else None
    if coef is None:  # a rank-deficient product: fit column by column on the finite entries
        fit = network_depth_scaling(net, k)
        gamma, delta = fit.gamma, fit.delta
    else:
        gamma, delta = coef[0], coef[1]
    resid_pre = log_pre - (m_pre[:, None] * gamma + delta)
    resid_suf = log_suf - (m_suf[:, None] * gamma + delta)
    eps = torch.cat([resid_pre.abs(), resid_suf.abs()], 0).amax(0)
    # alignment (ii)
    err_a = torch.stack([_aligned_err(Uk.T @ x[0][:, :k], k) for x in sv_a])
    err_b = torch.stack([_aligned_err(Vk.T @ x[2][:k].T, k) for x in sv_b])

    def sin_max(M: Tensor) -> Tensor:
        c = torch.linalg.svdvals(M).clamp(max=1.0)
        return torch.sqrt(1.0 - c.min() ** 2)

    sin_a = torch.stack([sin_max(Uk[:, :r].T @ x[0][:, :r]) for x in sv_a])
    sin_b = torch.stack([sin_max(Vk[:, :r].T @ x[2][:r].T) for x in sv_b])
    base = -L * s[:k].pow(2.0 - 2.0 / L) * g
    out = {
        "s": s, "g": g, "rate_flow": terms.sum(0), "terms_flow": terms,
        "terms_aligned": terms_al, "rate_aligned": terms_al.sum(0),
        "rate_prop45": base, "rate_prop71": torch.exp((2.0 + 2.0 / L) * delta) * base,
        "gamma": gamma, "delta": delta, "eps_depth": eps, "resid_prefix": resid_pre,
        "resid_suffix": resid_suf, "err_A": err_a, "err_B": err_b, "sin_A": sin_a,
        "sin_B": sin_b, "log_sA": torch.log(sa), "log_sB": torch.log(sb),
    }
    if remark:
        layers = [_as64(m) for m in net.layers()]
        Q = [torch.eye(U.shape[0], dtype=torch.float64)]
        for m in layers[:0:-1]:
            Q.append(Q[-1] @ m)
        Q = Q[::-1]  # Q[l-1] = M_L ... M_{l+1}
        sv_q = _svd_many(Q[:-1]) + [(U, torch.ones(U.shape[0], dtype=torch.float64), U.T)]
        sv_p = [(V, torch.ones(V.shape[0], dtype=torch.float64), V.T)] + sv_b
        gates = [None] + [_as64(gt) for gt in net.gates] + [None]
        tri = torch.zeros(k, dtype=torch.float64)
        core_sum = torch.zeros(k, dtype=torch.float64)
        lower = torch.tril(torch.ones(k, k, dtype=torch.float64))
        upper = lower.T
        for l in range(1, L + 1):
            a, b = A[l - 1], B[l - 1]
            mdot = -(a.T @ G @ b.T)  # -grad_{W_l} (Lemma A.1)
            if gates[l] is not None:
                mdot = gates[l][:, None] * mdot
            Uq, sq, Vqh = sv_q[l - 1]
            Up, sp, Vph = sv_p[l - 1]
            X = (Uk.T @ Uq[:, :k])                       # [k, k]
            Z = (Vph[:k] @ Vk)                           # [k, k]
            Y = Vqh[:k] @ mdot @ Up[:, :k]               # [k, k]
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


def _top_svd(M: Tensor, k: int) -> tuple[Tensor, Tensor, Tensor]:
    """Top-``k`` singular triplets of a batch of square matrices from one symmetric
    eigendecomposition of ``M M^T``: ``(U [b, n, k], s [b, k], V [b, n, k])`` with
    ``V = M^T U / s`` (zero where ``s`` is 0). Relative accuracy of ``s_j`` is about
    ``1e-16 (s_1 / s_j)^2``, ample for the top of the spectrum."""
    evals, evecs = torch.linalg.eigh(M @ M.mT)
    s = evals.flip(-1)[..., :k].clamp(min=0.0).sqrt()
    U = evecs.flip(-1)[..., :k]
    V = M.mT @ U
    V = torch.where(s[..., None, :] > 0, V / torch.where(s > 0, s, 1.0)[..., None, :], 0.0)
    return U, s, V


def _snapshot_square(net: FixedGatesNetwork, G: Tensor, k: int, remark: bool,
                     r: int) -> dict[str, Tensor]:
    """:func:`dynamics_snapshot` for square networks: every per-layer quantity in one batched
    operation over l (the general path loops over l)."""
    L = net.depth
    f64 = torch.float64
    A, B = _partials64(net)
    A, B = torch.stack(A), torch.stack(B)          # [L, n, n]: A_1..A_L, B_1..B_L
    J = _as64(net.jacobian())
    n = J.shape[0]
    U, s, Vh = torch.linalg.svd(J)
    V = Vh.T
    Uk, Vk = U[:, :k], V[:, :k]
    g = ((Uk.T @ G) * Vk.T).sum(-1)
    Ua, Sa, _ = _top_svd(A[:-1], k)              # A_1..A_{L-1}
    Ub, Sb, Vb = _top_svd(B[1:], k)               # B_2..B_L
    ones = torch.ones(1, k, dtype=f64)
    sa = torch.cat([Sa, ones])
    sb = torch.cat([ones, Sb])
    AtGBt = A.mT @ G @ B.mT                        # grad_{W_l} (Lemma A.1), [L, n, n]
    terms = -((Uk.T @ A) @ AtGBt @ (B @ Vk)).diagonal(dim1=-2, dim2=-1)
    terms_al = -(sa ** 2) * (sb ** 2) * g[None, :]
    log_pre = torch.log(torch.cat([sb[1:], s[None, :k]], 0))
    log_suf = torch.log(sa[:-1])
    m_pre = torch.arange(1, L + 1, dtype=f64)
    m_suf = torch.arange(L - 1, 0, -1, dtype=f64)
    y = torch.cat([log_pre, log_suf], 0)
    if bool(torch.isfinite(y).all()):
        x = torch.cat([m_pre, m_suf])
        coef = torch.linalg.lstsq(torch.stack([x, torch.ones_like(x)], 1), y).solution
        gamma, delta = coef[0], coef[1]
    else:  # a rank-deficient product: fit column by column on the finite entries
        fit = network_depth_scaling(net, k)
        gamma, delta = fit.gamma, fit.delta
    resid_pre = log_pre - (m_pre[:, None] * gamma + delta)
    resid_suf = log_suf - (m_suf[:, None] * gamma + delta)
    eps = torch.cat([resid_pre.abs(), resid_suf.abs()], 0).amax(0)
    eye = torch.eye(k, dtype=f64)

    def block_err(R: Tensor) -> Tensor:  # R [m, k, k]: columns signed to a positive diagonal
        sign = torch.where(R.diagonal(dim1=-2, dim2=-1) < 0, -1.0, 1.0).to(f64)
        return (R * sign[:, None, :] - eye).abs().amax(-2)

    def sin_max(M: Tensor) -> Tensor:  # M [m, r, r]
        c = torch.linalg.svdvals(M).clamp(max=1.0)
        return torch.sqrt(1.0 - c.amin(-1) ** 2)

    RA = Uk.T @ Ua                                 # [L-1, k, k]
    RB = Vk.T @ Vb
    out = {
        "s": s, "g": g, "rate_flow": terms.sum(0), "terms_flow": terms,
        "terms_aligned": terms_al, "rate_aligned": terms_al.sum(0),
        "rate_prop45": -L * s[:k].pow(2.0 - 2.0 / L) * g,
        "gamma": gamma, "delta": delta, "eps_depth": eps, "resid_prefix": resid_pre,
        "resid_suffix": resid_suf, "err_A": block_err(RA), "err_B": block_err(RB),
        "sin_A": sin_max(RA[:, :r, :r]), "sin_B": sin_max(RB[:, :r, :r]),
        "log_sA": torch.log(sa), "log_sB": torch.log(sb),
    }
    out["rate_prop71"] = torch.exp((2.0 + 2.0 / L) * delta) * out["rate_prop45"]
    if remark:
        layers = torch.stack([_as64(m) for m in net.layers()])
        Q = [torch.eye(n, dtype=f64)]
        for l in range(L - 1, 0, -1):
            Q.append(Q[-1] @ layers[l])
        Q = torch.stack(Q[::-1])                   # Q[l-1] = M_L ... M_{l+1}, Q[L-1] = I
        Uq, Sq, Vq = _top_svd(Q[:-1], k)
        Uq = torch.cat([Uq, Uk[None]])             # the empty product: J's own bases
        Sq = torch.cat([Sq, ones])
        Vq = torch.cat([Vq, Uk[None]])
        Up = torch.cat([Vk[None], Ub])
        Sp = torch.cat([ones, Sb])
        Vp = torch.cat([Vk[None], Vb])
        gates = torch.stack([_as64(gt) for gt in net.gates] + [torch.ones(n, dtype=f64)])
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
    :func:`fgln.train.train`; Chapter 7's measurements."""

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


# --------------------------------------------------------------------------------------
# Appendix G.1: the scalar process and its constant
# --------------------------------------------------------------------------------------


def _check_series(name: str, x, n: int | None = None) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    if x.ndim != 1 or (n is not None and x.shape[0] != n) or x.shape[0] < 2:
        want = f"length {n}" if n is not None else "length >= 2"
        raise ValueError(f"{name} must be 1-d of {want}, got shape {x.shape}")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{name} has non-finite entries")
    return x


def g1_process(s0: float, g, steps, C, L: int, every_step: bool = False) -> np.ndarray:
    """Appendix G.1: ``s(t+1) = s(t) + C s(t)^{2-2/L} g(t)``, ``t`` counting gradient steps.

    ``g`` (and ``C``, a number or one value per record) are given at the recorded ``steps``.
    With ``every_step`` the recursion runs over every gradient step between the records, ``g``
    and ``C`` interpolated linearly, as in the paper; otherwise each interval between records
    is one Euler step ``s_{i+1} = s_i + C_i (t_{i+1} - t_i) s_i^{2-2/L} g_i`` (the same when the
    records are one step apart). Returns ``s`` at the records (``inf`` after an overflow).
    """
    L = _check_L(L)
    t = _check_series("steps", steps)
    g = _check_series("g", g, t.shape[0])
    if np.any(np.diff(t) <= 0):
        raise ValueError("steps must be strictly increasing")
    C = np.broadcast_to(np.asarray(C, dtype=float), t.shape)
    if not (float(s0) > 0):
        raise ValueError(f"s0 must be > 0, got {s0}")
    p = 2.0 - 2.0 / L
    if every_step:
        if np.any(t != np.round(t)):
            raise ValueError("every_step needs integer steps")
        grid = np.arange(t[0], t[-1] + 1.0)
        gg = np.interp(grid, t, g) * np.interp(grid, t, C)
        traj = np.empty_like(grid)
        traj[0] = x = float(s0)
        for j in range(grid.shape[0] - 1):
            x = x + gg[j] * max(x, 0.0) ** p
            if not np.isfinite(x) or abs(x) > 1e150:
                traj[j + 1:] = np.inf
                break
            traj[j + 1] = x
        return traj[(t - t[0]).astype(int)]
    s = np.empty_like(t)
    s[0] = float(s0)
    for i in range(t.shape[0] - 1):
        nxt = s[i] + C[i] * (t[i + 1] - t[i]) * max(s[i], 0.0) ** p * g[i]
        s[i + 1] = nxt if np.isfinite(nxt) else np.inf
    return s


def fit_g1_constant(s, g, steps, L: int, every_step: bool = False) -> float:
    """``C`` minimising ``sum_i (g1_process(s[0], g, steps, C, L, every_step)_i - s_i)^2``
    (Appendix G.1's least-squares fit of the scaling factor). The search starts from the
    increment fit ``Delta s_i ~ C Delta t_i s_i^{2-2/L} g_i`` and refines it by a bounded scalar
    search."""
    from scipy.optimize import minimize_scalar

    L = _check_L(L)
    t = _check_series("steps", steps)
    s = _check_series("s", s, t.shape[0])
    g = _check_series("g", g, t.shape[0])
    x = np.diff(t) * s[:-1] ** (2.0 - 2.0 / L) * g[:-1]
    dy = np.diff(s)
    if not np.any(x != 0):
        raise ValueError("g is zero along the whole run: C is not identifiable")
    c0 = float(np.dot(x, dy) / np.dot(x, x))
    if c0 == 0:
        c0 = 1e-12

    def loss(logc: float) -> float:
        with np.errstate(over="ignore", invalid="ignore"):
            pred = g1_process(s[0], g, t, math.copysign(math.exp(logc), c0), L, every_step)
        if not np.all(np.isfinite(pred)):
            return float("inf")
        return float(np.sum((pred - s) ** 2))

    center = math.log(abs(c0))
    res = minimize_scalar(loss, bounds=(center - 3.0, center + 3.0), method="bounded",
                          options={"xatol": 1e-10})
    best = res.x if loss(res.x) <= loss(center) else center
    return math.copysign(math.exp(best), c0)


def theory_constant(lr: float, L: int, delta) -> np.ndarray:
    """The ``C`` Proposition 7.1 gives per gradient step: ``-lr L e^{(2+2/L) delta_1(t)}``
    (one value per entry of ``delta``, the measured ``delta_1`` along training)."""
    L = _check_L(L)
    lr = float(lr)
    if not (lr > 0 and math.isfinite(lr)):
        raise ValueError(f"lr must be a positive finite number, got {lr}")
    delta = np.asarray(delta, dtype=float)
    return -lr * L * np.exp((2.0 + 2.0 / L) * delta)


# --------------------------------------------------------------------------------------
# summaries of a recorded run
# --------------------------------------------------------------------------------------


def growth_phase_ratio(t, predicted, measured, frac: float = 0.2) -> np.ndarray:
    """Predicted over measured increase of each ``s_k`` during its growth phase.

    ``t`` [R], ``predicted`` and ``measured`` [R, k] (rates ``ds_k/dt``). The growth phase of
    mode k is the set of records where ``measured >= frac * max_t measured`` (NaN if the mode
    never grows). Returns ``sum_i w_i pred_ik / sum_i w_i meas_ik`` over that set, ``w`` the
    local spacing of ``t`` [k].
    """
    t = _check_series("t", t)
    pred = np.asarray(predicted, dtype=float)
    meas = np.asarray(measured, dtype=float)
    if pred.shape != meas.shape or pred.ndim != 2 or pred.shape[0] != t.shape[0]:
        raise ValueError(f"predicted and measured must be [len(t), k], got {pred.shape} and "
                         f"{meas.shape}")
    if not (0 < frac < 1):
        raise ValueError(f"frac must be in (0, 1), got {frac}")
    w = np.gradient(t)[:, None]
    top = meas.max(0)
    mask = (meas >= frac * top[None, :]) & (top[None, :] > 0)
    num = np.where(mask, w * pred, 0.0).sum(0)
    den = np.where(mask, w * meas, 0.0).sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(top > 0, num / den, np.nan)


def rise_times(t, s, level: float = 0.5) -> np.ndarray:
    """First time each ``s_k`` [R, k] has covered ``level`` of its way from its initial to its
    final value (NaN if it never moves by more than 10%); [k]."""
    t = _check_series("t", t)
    s = np.asarray(s, dtype=float)
    if s.ndim != 2 or s.shape[0] != t.shape[0]:
        raise ValueError(f"s must be [len(t), k], got {s.shape}")
    out = np.full(s.shape[1], np.nan)
    for j in range(s.shape[1]):
        a, b = s[0, j], s[-1, j]
        if abs(b - a) <= 0.1 * max(abs(a), abs(b)):
            continue
        target = a + level * (b - a)
        hit = (s[:, j] >= target) if b > a else (s[:, j] <= target)
        out[j] = t[int(np.argmax(hit))]
    return out
