"""The per-layer terms of how the singular values of ``J = A_l W_l B_l`` move (Lemmas A.1, E.1,
E.2, Appendix E.2 and Remark 7.2), written once over a leading layer dimension.

Every function takes per-layer tensors stacked as ``[L, ...]`` (one batched operation over
the layers), a single layer (no leading dimension), or, through :func:`over_layers`, lists
of layers whose shapes differ (one call per layer, the results stacked). Tensors shared by
every layer (``U``, ``V``, ``grad_J``) come first, carry no layer dimension and broadcast. They know
nothing of networks: :mod:`fgln.theory.flow_rates` and
:func:`fgln.training.recorders.dynamics_snapshot` call them.
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from ..products.svd import top_svd

Tensor = torch.Tensor
Layers = Tensor | list[Tensor]


def stack_layers(mats: Sequence[Tensor]) -> Layers:
    """``mats`` stacked to ``[L, ...]`` when their shapes agree, else the list itself.

    Parameters
    ----------
    mats : sequence of Tensor
        One tensor per layer.

    Returns
    -------
    layers : Tensor or list of Tensor
        ``[L, ...]`` when the shapes agree, else the list of ``mats``.
    """
    mats = list(mats)
    if mats and all(m.shape == mats[0].shape for m in mats):
        return torch.stack(mats)
    return mats


def join_layers(*parts: Layers) -> Layers:
    """Layer stacks (``[l, ...]`` tensors or lists) one after the other: a tensor when every
    part is one, else a list.

    Parameters
    ----------
    *parts : Tensor or list of Tensor
        Layer stacks, each ``[l_i, ...]`` or a list of ``l_i`` tensors.

    Returns
    -------
    layers : Tensor or list of Tensor
        The layers of every part, in order: ``[sum l_i, ...]`` or a list.
    """
    if all(isinstance(p, Tensor) for p in parts):
        return torch.cat(parts)
    return [m for p in parts for m in (p.unbind(0) if isinstance(p, Tensor) else p)]


def over_layers(fn: Callable[..., Tensor | tuple[Tensor, ...]], *layers: Layers):
    """``fn`` over the layers; every argument holds one entry per layer (bind the tensors that
    the layers share first, e.g. with :func:`functools.partial`).

    When every argument is a stacked tensor ``[L, ...]``: one batched call. When any is a
    list (the layers' shapes differ): one call per layer, stacked arguments unbound, the
    results (each part of a tuple of results) passed through :func:`stack_layers`.

    Parameters
    ----------
    fn : callable
        Function of one entry per argument, returning a tensor or a tuple of tensors; batched
        over a leading layer dimension when given stacked tensors.
    *layers : Tensor or list of Tensor
        One argument of ``fn`` per entry: a stack ``[L, ...]`` or a list of ``L`` tensors.

    Returns
    -------
    result : Tensor, list of Tensor or tuple
        What ``fn`` returns, over the layers: stacked where the shapes agree, else lists
        (a tuple of such when ``fn`` returns a tuple).

    Raises
    ------
    ValueError
        If the arguments do not hold the same number of layers.
    """
    if all(isinstance(a, Tensor) for a in layers):
        return fn(*layers)
    args = [list(a.unbind(0)) if isinstance(a, Tensor) else list(a) for a in layers]
    if len({len(a) for a in args}) != 1:
        raise ValueError(f"every argument must hold one entry per layer, got "
                         f"{[len(a) for a in args]}")
    res = [fn(*one) for one in zip(*args)]
    if isinstance(res[0], tuple):
        return tuple(stack_layers(part) for part in zip(*res))
    return stack_layers(res)


def layer_svd(mats: Layers, k: int) -> tuple[Layers, Tensor, Layers]:
    """Top ``k`` singular triplets of each layer's matrix, from one symmetric eigendecomposition
    per matrix (``top_svd(..., method="eigh")``; batched when ``mats`` is stacked).

    Returns ``(U, s, V)``: ``s`` [L, k]; ``U`` [L, m, k] and ``V`` [L, n, k] stacked where
    the layers' shapes agree, else lists.

    Parameters
    ----------
    mats : Tensor or list of Tensor
        The layers' matrices, ``[L, m, n]`` or a list of ``L`` matrices.
    k : int
        How many singular triplets per matrix.

    Returns
    -------
    U : Tensor or list of Tensor
        Left singular vectors, [L, m, k] or a list.
    s : Tensor
        Singular values [L, k], largest first.
    V : Tensor or list of Tensor
        Right singular vectors, [L, n, k] or a list.
    """
    if isinstance(mats, Tensor):
        return top_svd(mats, k, method="eigh")
    trip = [top_svd(m, k, method="eigh") for m in mats]
    return (stack_layers(t[0] for t in trip), torch.stack([t[1] for t in trip]),
            stack_layers(t[2] for t in trip))


def lemma_a1_gradients(grad_J: Tensor, A: Tensor, B: Tensor) -> Tensor:
    """Lemma A.1: ``grad_{W_l} L = A_l^T grad_J B_l^T``.

    Parameters
    ----------
    grad_J : Tensor
        ``grad_J L`` [n_L, n_0], shared by the layers.
    A : Tensor
        ``A_l`` [..., n_L, n_l].
    B : Tensor
        ``B_l`` [..., n_{l-1}, n_0].

    Returns
    -------
    Tensor
        [..., n_l, n_{l-1}].
    """
    return A.mT @ grad_J @ B.mT


def flow_terms(U: Tensor, V: Tensor, A: Tensor, grad_W: Tensor, B: Tensor) -> Tensor:
    """Per-layer terms of the exact flow rates, ``-(U^T A_l grad_{W_l} B_l V)_kk`` (Appendix
    E.2, first display, with Lemma A.1's ``grad_{W_l} = A_l^T grad_J B_l^T``); their sum over l
    is ``ds_k/dt`` (Lemmas E.1, E.2).

    Parameters
    ----------
    U, V : Tensor
        Top-``k`` singular vectors of ``J``, [n_L, k] and [n_0, k], shared.
    A, grad_W, B : Tensor
        ``A_l`` [..., n_L, n_l], ``grad_{W_l} L`` [..., n_l, n_{l-1}], ``B_l`` [..., n_{l-1}, n_0].

    Returns
    -------
    Tensor
        [..., k].
    """
    return -((U.mT @ A) @ grad_W @ (B @ V)).diagonal(dim1=-2, dim2=-1)


def gated_rates(gates: Tensor, grad_W: Tensor) -> Tensor:
    """``dM_l/dt = -D_l grad_{W_l} L`` under gradient flow on ``W_l`` (``M_l = D_l W_l``).

    Parameters
    ----------
    gates : Tensor
        Diagonal of ``D_l`` [..., n_l] (ones for ``D_L = I``).
    grad_W : Tensor
        ``grad_{W_l} L`` [..., n_l, n_{l-1}].

    Returns
    -------
    Tensor
        [..., n_l, n_{l-1}].
    """
    return -(gates[..., :, None] * grad_W)


def aligned_terms(s_A: Tensor, s_B: Tensor, g: Tensor) -> Tensor:
    """Per-layer terms of Proposition 7.1 with (ii) exact, ``-s_k(A_l)^2 s_k(B_l)^2 g_k``
    (Appendix E.2, third display).

    Parameters
    ----------
    s_A, s_B : Tensor
        Top-``k`` singular values of ``A_l`` and ``B_l``, [..., k].
    g : Tensor
        ``g_k = u_k^T grad_J v_k`` [k], shared.

    Returns
    -------
    Tensor
        [..., k].
    """
    return -(s_A ** 2) * (s_B ** 2) * g


def remark72_blocks(U: Tensor, V: Tensor, U_Q: Tensor, V_Q: Tensor, M_dot: Tensor,
                    U_P: Tensor, V_P: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The three factors of Remark 7.2's identity for one layer: ``X = U^T U_Q``,
    ``Y = V_Q^T (dM_l/dt) U_P`` and ``Z = V_P^T V``.

    Parameters
    ----------
    U, V : Tensor
        Singular vectors of ``J``, [n_L, r] and [n_0, r'], shared.
    U_Q, V_Q : Tensor
        Singular vectors of ``Q_l = M_L ... M_{l+1}``, [..., n_L, q] and [..., n_l, q].
    M_dot : Tensor
        ``dM_l/dt`` [..., n_l, n_{l-1}].
    U_P, V_P : Tensor
        Singular vectors of ``P_l = M_{l-1} ... M_1``, [..., n_{l-1}, p] and [..., n_0, p].

    Returns
    -------
    tuple of Tensor
        ``X`` [..., r, q], ``Y`` [..., q, p], ``Z`` [..., p, r'].
    """
    return U.mT @ U_Q, V_Q.mT @ M_dot @ U_P, V_P.mT @ V


def remark72_exact_cores(X: Tensor, s_Q: Tensor, Y: Tensor, s_P: Tensor, Z: Tensor) -> Tensor:
    """Per-layer terms of Remark 7.2's exact identity,
    ``(X S_Q Y S_P Z)_kk = s_{Q,k} s_{P,k} (T^-_l V_Q^T dM_l U_P T^+_l)_kk`` (Lemma E.2 through
    the factors of :func:`remark72_blocks`, full bases); their sum over l is ``ds_k/dt``.

    Parameters
    ----------
    X : Tensor
        ``U^T U_Q`` [..., k, q] (rows of the top ``k``).
    s_Q : Tensor
        Singular values of ``Q_l`` [..., q].
    Y : Tensor
        ``V_Q^T dM_l U_P`` [..., q, p].
    s_P : Tensor
        Singular values of ``P_l`` [..., p].
    Z : Tensor
        ``V_P^T V`` [..., p, k] (columns of the top ``k``).

    Returns
    -------
    Tensor
        [..., k].
    """
    return ((X * s_Q[..., None, :]) @ Y @ (s_P[..., :, None] * Z)).diagonal(dim1=-2, dim2=-1)


def remark72_triangular_cores(X: Tensor, s_Q: Tensor, Y: Tensor, s_P: Tensor,
                              Z: Tensor) -> Tensor:
    """Per-layer cores of Remark 7.2's triangular truncation, ``(T^-_l Y T^+_l)_kk`` with
    ``T^- = S_Q^{-1} X S_Q`` kept lower triangular and ``T^+ = S_P Z S_P^{-1}`` kept upper
    triangular on the top ``k`` block (rows and columns with a zero singular value are 0).

    Parameters
    ----------
    X, Y, Z : Tensor
        The top ``k`` x ``k`` blocks of :func:`remark72_blocks`' factors, [..., k, k].
    s_Q, s_P : Tensor
        Top-``k`` singular values of ``Q_l`` and ``P_l`` [..., k].

    Returns
    -------
    Tensor
        [..., k]; :func:`remark72_sums` turns them into the remark's rates.
    """
    k = X.shape[-1]
    lower = torch.tril(torch.ones(k, k, dtype=X.dtype, device=X.device))
    tm = torch.where(s_Q[..., :, None] > 0, X * s_Q[..., None, :] / s_Q[..., :, None], 0.0) * lower
    tp = torch.where(s_P[..., None, :] > 0, s_P[..., :, None] * Z / s_P[..., None, :],
                     0.0) * lower.T
    return (tm @ Y @ tp).diagonal(dim1=-2, dim2=-1)


def remark72_sums(cores: Tensor, s_Q: Tensor, s_P: Tensor, s: Tensor, delta: Tensor | None,
                  L: int) -> tuple[Tensor, Tensor | None]:
    """Remark 7.2's rates from the per-layer triangular cores.

    Parameters
    ----------
    cores : Tensor
        :func:`remark72_triangular_cores` [L, k].
    s_Q, s_P : Tensor
        Top-``k`` singular values of ``Q_l``, ``P_l`` [L, k].
    s : Tensor
        Top-``k`` singular values of ``J`` [k].
    delta : Tensor or None
        Depth-scaling offsets ``delta_k`` [k] (Definition 4.6).
    L : int
        Depth.

    Returns
    -------
    triangular : Tensor
        ``sum_l s_{Q_l,k} s_{P_l,k} core_{l,k}`` [k] (truncation only).
    remark : Tensor or None
        ``e^{(1+1/L) delta_k} s_k^{1-1/L} sum_l core_{l,k}`` [k], the remark's right-hand side
        (``None`` without ``delta``).
    """
    tri = (s_Q * s_P * cores).sum(0)
    if delta is None:
        return tri, None
    return tri, torch.exp((1.0 + 1.0 / L) * delta) * s.pow(1.0 - 1.0 / L) * cores.sum(0)
