"""How the singular values of ``J`` move under gradient flow (paper, Sections 4 and 7,
Appendices A and E).

Notation: ``J = U S V^T`` with ``s_1 >= s_2 >= ...``; ``G = grad_J L`` [n_L, n_0], the gradient of
the loss with respect to ``J``; ``g_k = <G, u_k v_k^T> = u_k^T G v_k``. For a fixed-gates
network, ``J = A_l W_l B_l`` (Section 7) with the partial products ``A = [A_1..A_L]``,
``B = [B_1..B_L]`` (:func:`fgln.products.partial_products.network_partial_products`), and

* Lemma A.1: ``grad_{W_l} L = A_l^T G B_l^T`` (:func:`partials_weight_gradients`);
* Lemma E.1: under gradient flow ``dJ/dt = -sum_l A_l A_l^T G B_l^T B_l``
  (:func:`partials_jacobian_derivative`);
* Lemma E.2: ``ds_k/dt = u_k^T (dJ/dt) v_k`` (:func:`singular_value_rates`), hence the exact flow
  rates ``ds_k/dt = -sum_l (U^T A_l A_l^T G B_l^T B_l V)_kk`` (:func:`partials_rate_terms`);
* Proposition 4.5: ``ds_k/dt = -L s_k^{2-2/L} g_k`` for balanced masked networks
  (:func:`balanced_singular_value_rates`);
* Proposition 7.1's right-hand side ``-e^{(2+2/L) delta_k} L s_k^{2-2/L} g_k``
  (:func:`prop71_rates`; ``delta_k`` from
  :func:`fgln.training.network_assumptions.network_depth_scaling`)
  and its version with (ii) exact (:func:`partials_aligned_rates`);
* Remark 7.2: the first-order version through triangular factors (:func:`remark72_rates`).

All spectral quantities are computed in float64 whatever the network's dtype. The same
quantities for a :class:`~fgln.training.networks.FixedGatesNetwork` are in
:mod:`fgln.training.network_flow`.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..base.validation import as64, check_int, check_k, check_matrix
from ..products.partial_products import chain_products
from ..products.svd import top_svd

Tensor = torch.Tensor

__all__ = [
    "projections",
    "singular_value_rates",
    "balanced_singular_value_rates",
    "partials_weight_gradients",
    "partials_jacobian_derivative",
    "partials_rate_terms",
    "partials_aligned_rates",
    "prop71_rates",
    "remark72_rates",
]


# --------------------------------------------------------------------------------------
# singular values and their rates
# --------------------------------------------------------------------------------------


def _top(J: Tensor, k: int | None) -> tuple[Tensor, Tensor, Tensor]:
    """``(U_k [m, k], s_k [k], V_k [n, k])`` of ``J`` checked (float64)."""
    J = check_matrix("J", J)
    return top_svd(J, check_k(k, J))


def projections(J: Tensor, grad_J: Tensor, k: int | None = None) -> Tensor:
    """``g_k = <grad_J L, u_k v_k^T> = u_k^T grad_J v_k`` for the top ``k`` (default: all) [k]."""
    U, _, V = _top(J, k)
    G = check_matrix("grad_J", grad_J)
    if G.shape != J.shape:
        raise ValueError(f"grad_J must have the shape of J {tuple(J.shape)}, got {tuple(G.shape)}")
    return ((U.T @ G) * V.T).sum(-1)


def singular_value_rates(J: Tensor, J_dot: Tensor, k: int | None = None) -> Tensor:
    """Lemma E.2: ``ds_k/dt = u_k^T (dJ/dt) v_k`` for the top ``k`` (default: all) [k].

    Exact for simple singular values (a repeated one has no derivative in general).
    """
    U, _, V = _top(J, k)
    Jd = check_matrix("J_dot", J_dot)
    if Jd.shape != J.shape:
        raise ValueError(f"J_dot must have the shape of J {tuple(J.shape)}, got {tuple(Jd.shape)}")
    return ((U.T @ Jd) * V.T).sum(-1)


def balanced_singular_value_rates(J: Tensor, grad_J: Tensor, L: int,
                                  k: int | None = None) -> Tensor:
    """Proposition 4.5: ``ds_k/dt = -L s_k^{2-2/L} <grad_J L, u_k v_k^T>`` [k]."""
    L = check_int("L", L, 1)
    _, s, _ = _top(J, k)
    g = projections(J, grad_J, k)
    return -L * s.pow(2.0 - 2.0 / L) * g


# --------------------------------------------------------------------------------------
# gradient flow of a fixed-gates network (Lemmas A.1, E.1)
# --------------------------------------------------------------------------------------


def _check_partials(A: Sequence[Tensor], B: Sequence[Tensor],
                    grad_J) -> tuple[list[Tensor], list[Tensor], Tensor]:
    """``A``, ``B`` (float64, one pair per layer) and ``grad_J`` [n_L, n_0] checked against them."""
    A, B = [as64(a) for a in A], [as64(b) for b in B]
    if not A or len(A) != len(B):
        raise ValueError(f"A and B must hold one matrix per layer, got {len(A)} and {len(B)}")
    G = check_matrix("grad_J", grad_J)
    shape = (A[0].shape[0], B[0].shape[1])
    if G.shape != shape:
        raise ValueError(f"grad_J must have shape [n_L, n_0] = {shape}, got {tuple(G.shape)}")
    return A, B, G.to(device=A[0].device)


def partials_weight_gradients(A: Sequence[Tensor], B: Sequence[Tensor],
                              grad_J: Tensor) -> list[Tensor]:
    """Lemma A.1: ``grad_{W_l} L = A_l^T grad_J B_l^T`` for l = 1..L (float64), from the
    partial products ``A_l`` [n_L, n_l] and ``B_l`` [n_{l-1}, n_0]."""
    A, B, G = _check_partials(A, B, grad_J)
    return [a.T @ G @ b.T for a, b in zip(A, B)]


def partials_jacobian_derivative(A: Sequence[Tensor], B: Sequence[Tensor],
                                 grad_J: Tensor) -> Tensor:
    """Lemma E.1: ``dJ/dt = -sum_l A_l A_l^T grad_J B_l^T B_l`` under gradient flow [n_L, n_0]."""
    A, B, G = _check_partials(A, B, grad_J)
    return -sum(a @ a.T @ G @ b.T @ b for a, b in zip(A, B))


def partials_rate_terms(A: Sequence[Tensor], B: Sequence[Tensor], J: Tensor, grad_J: Tensor,
                        k: int | None = None) -> Tensor:
    """Per-layer terms of the exact flow rates: ``-(U^T A_l A_l^T G B_l^T B_l V)_kk``, [L, k];
    their sum over l is ``ds_k/dt`` (Appendix E.2, first display). ``J = A_l W_l B_l``."""
    A, B, G = _check_partials(A, B, grad_J)
    U, _, V = _top(J, k)
    rows = []
    for a, b in zip(A, B):
        left = U.T @ a  # [k, n_l]
        right = b @ V   # [n_{l-1}, k]
        rows.append(-(((left @ a.T) @ G) @ b.T @ right).diagonal())
    return torch.stack(rows)


def partials_aligned_rates(A: Sequence[Tensor], B: Sequence[Tensor], J: Tensor, grad_J: Tensor,
                           k: int | None = None) -> Tensor:
    """Proposition 7.1 with (ii) exact but (i) not assumed:
    ``-sum_l s_k(A_l)^2 s_k(B_l)^2 g_k`` [k] (Appendix E.2, third display)."""
    J = check_matrix("J", J)
    k = check_k(k, J)
    A, B = [as64(a) for a in A], [as64(b) for b in B]
    kmax = min(min(x.shape) for x in (*A, *B))
    if k > kmax:
        raise ValueError(f"k must be <= the smallest width {kmax}, got {k}")
    g = projections(J, grad_J, k)
    tot = sum(top_svd(a, k, vectors=False) ** 2 * top_svd(b, k, vectors=False) ** 2
              for a, b in zip(A, B))
    return -tot * g


# --------------------------------------------------------------------------------------
# Proposition 7.1's right-hand side
# --------------------------------------------------------------------------------------


def prop71_rates(J: Tensor, grad_J: Tensor, L: int, delta: Tensor,
                 k: int | None = None) -> Tensor:
    """Proposition 7.1's right-hand side ``-e^{(2+2/L) delta_k} L s_k^{2-2/L} g_k`` [k]
    (``delta`` [>= k]; ``delta = 0`` gives Proposition 4.5)."""
    L = check_int("L", L, 1)
    base = balanced_singular_value_rates(J, grad_J, L, k)
    delta = as64(torch.as_tensor(delta)).to(base.device)
    if delta.ndim != 1 or delta.shape[0] < base.shape[0]:
        raise ValueError(f"delta must be 1-d with at least {base.shape[0]} entries, "
                         f"got shape {tuple(delta.shape)}")
    return torch.exp((2.0 + 2.0 / L) * delta[: base.shape[0]]) * base


# --------------------------------------------------------------------------------------
# Remark 7.2
# --------------------------------------------------------------------------------------


def remark72_rates(layers: Sequence[Tensor], layer_rates: Sequence[Tensor], delta: Tensor | None,
                   k: int | None = None, *, transpose: str = "proof") -> dict[str, Tensor]:
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

    ``transpose="printed"`` builds ``T_l^+`` from ``V_P V^T`` instead of ``V_P^T V``, as
    Remark 7.2 (ii) and Appendix E.3 print it (square layers only): with it ``exact`` is no
    longer the rate, which is how the chapter checks which reading the identity needs.
    """
    if transpose not in ("proof", "printed"):
        raise ValueError(f"transpose must be 'proof' or 'printed', got {transpose!r}")
    layers = [as64(m) for m in layers]
    rates = [as64(m) for m in layer_rates]
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
    Q, P = chain_products(layers)  # Q[l-1] = M_L ... M_{l+1}, P[l-1] = M_{l-1} ... M_1
    J = Q[0] @ layers[0]
    U, s, V = top_svd(J, full=True)
    k = check_k(k, J)
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
            Uq, sq, Vq = top_svd(Q[l])
            Vqh = Vq.T
        if l == 0:
            Up, sp, Vph = V, ones_p, V.T
        else:
            Up, sp, Vp = top_svd(P[l])
            Vph = Vp.T
        X = U.T @ Uq           # [r, rq]
        if transpose == "proof":
            Z = Vph @ V            # [rp, r]: V_P^T V
        elif Vph.shape[0] == Vph.shape[1] == V.shape[0]:
            Z = Vph.T @ V.T        # V_P V^T, as printed
        else:
            raise ValueError("transpose='printed' needs square layers")
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
        delta = as64(torch.as_tensor(delta)).to(dev)[:k]
        out["remark"] = (torch.exp((1.0 + 1.0 / L) * delta) * s[:k].pow(1.0 - 1.0 / L)
                         * tri_unscaled)
    return out
