"""Tensor and exterior powers of matrices in coordinates (paper, Appendix B).

Fix the standard basis ``e_1, ..., e_n`` of ``R^n``. The t-fold tensor power of ``R^n`` has the
basis ``e_{i_1} x ... x e_{i_t}`` indexed by multi-indices in lexicographic order (first index
slowest), so a tensor is a vector of ``n^t`` coordinates and the tensor power of a matrix is
its Kronecker power (Definitions B.1, B.2). The t-fold exterior power has the basis
``e_I = e_{i_1} ^ ... ^ e_{i_t}``, ``I = (i_1 < ... < i_t)``, the t-subsets of ``{1..n}`` in
lexicographic order (:func:`subsets`), so a wedge is a vector of ``C(n, t)`` coordinates:

* the wedge ``x_1 ^ ... ^ x_t`` of the columns of ``X`` [n, t] has coordinates
  ``det X^{I, :}``, the t x t minors of X (:func:`wedge`);
* the exterior power of a matrix is its t-th compound matrix, entries ``det M^{I, J}``
  (Definition B.4, :func:`compound`); it is multiplicative (Cauchy-Binet,
  ``C_t(MN) = C_t(M) C_t(N)``), its singular values are the products of t singular values of
  M, the largest ``s_1 ... s_t`` (Section B.2.2, Remark B.5);
* the inner product of two wedges is the Gram determinant ``det(X^T Y)`` (Section B.2.1,
  :func:`wedge_inner`); Lemma C.3 uses it as ``||x_1 ^ ... ^ x_i||^2 = det(X^T X)``.

:func:`elementary_tensor` and :func:`alternating_tensor` give the same objects inside the
tensor power (the wedge as the antisymmetrised tensor, scaled to keep inner products), an
independent route to the coordinates above.

The compound is computed from the determinants of all gathered t x t submatrices (LU per
submatrix, backward stable), in chunks that bound the memory; its size ``C(m, t) x C(n, t)``
makes it a tool for small matrices (n <= 16).
"""
from __future__ import annotations

import itertools
import math

import torch

from ..base.validation import check_int

Tensor = torch.Tensor

__all__ = ["subsets", "compound", "wedge", "wedge_inner", "tensor_power", "elementary_tensor",
           "alternating_tensor"]

# Largest number of entries of the gathered t x t submatrices held at once in compound().
_CHUNK_ENTRIES = 1 << 22


def _check_stack(name: str, X) -> Tensor:
    """``X`` as a real floating tensor [..., m, n] with finite entries (errors name ``name``)."""
    if not isinstance(X, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(X).__name__}")
    if not X.is_floating_point():
        raise TypeError(f"{name} must have a real floating dtype, got {X.dtype}")
    if X.ndim < 2:
        raise ValueError(f"{name} must have at least 2 dimensions [..., m, n], got shape "
                         f"{tuple(X.shape)}")
    if not bool(torch.isfinite(X).all()):
        raise ValueError(f"{name} has non-finite entries")
    return X


def _working(X: Tensor) -> Tensor:
    """``X`` in a dtype that ``torch.linalg`` accepts (float16 and bfloat16 -> float32)."""
    return X if X.dtype in (torch.float32, torch.float64) else X.to(torch.float32)


def subsets(n: int, t: int) -> Tensor:
    """The t-subsets of ``{0, ..., n-1}``, increasing, in lexicographic order: the index set
    of the basis ``e_I`` of the exterior power (Section B.2.1).

    Parameters
    ----------
    n : int
        Size of the ground set, the dimension of the space (>= 1).
    t : int
        Size of the subsets, the order of the exterior power (>= 1).

    Returns
    -------
    index : Tensor
        ``int64`` [C(n, t), t], row ``k`` the k-th subset (0-based entries); no rows when
        ``t > n`` (the exterior power is ``{0}``).

    Raises
    ------
    TypeError
        If ``n`` or ``t`` is not an integer.
    ValueError
        If ``n < 1`` or ``t < 1``.

    Examples
    --------
    >>> subsets(4, 2).tolist()
    [[0, 1], [0, 2], [0, 3], [1, 2], [1, 3], [2, 3]]
    """
    n = check_int("n", n, 1)
    t = check_int("t", t, 1)
    rows = list(itertools.combinations(range(n), t))
    return torch.tensor(rows, dtype=torch.int64).reshape(len(rows), t)


def compound(M: Tensor, t: int) -> Tensor:
    """The t-th compound matrix of ``M``: the matrix of the t-th exterior power in the bases
    ``e_I`` (Definition B.4), entries ``C_t(M)[I, J] = det M^{I, J}``.

    Rows and columns are indexed by the t-subsets of the rows and columns of ``M`` in
    lexicographic order (:func:`subsets`). ``C_1(M) = M``; ``C_t(M N) = C_t(M) C_t(N)``
    (Cauchy-Binet, Section B.2.2); ``C_t(M^T) = C_t(M)^T``; the singular values of
    ``C_t(M)`` are the products of t singular values of ``M``, the largest
    ``s_1 ... s_t = ||C_t(M)||`` (Section B.2.2, Remark B.5); for a symmetric ``M`` the
    eigenvalues are the products of t eigenvalues (Lemma D.5).

    Parameters
    ----------
    M : Tensor
        Real matrices [..., m, n] (any floating dtype; float16 and bfloat16 are computed in
        float32), finite; any device.
    t : int
        The order (>= 1).

    Returns
    -------
    C : Tensor
        [..., C(m, t), C(n, t)], dtype and device of ``M``; empty along a dimension where
        ``t`` exceeds it.

    Raises
    ------
    TypeError
        If ``M`` is not a real floating tensor or ``t`` not an integer.
    ValueError
        If ``M`` has fewer than 2 dimensions or non-finite entries, or ``t < 1``.

    Examples
    --------
    >>> M = torch.tensor([[1.0, 2.0, 0.0], [0.0, 1.0, 3.0], [1.0, 0.0, 1.0]])
    >>> compound(M, 2)[0, 0].item()   # rows {1, 2}, columns {1, 2}: 1*1 - 2*0
    1.0
    >>> round(compound(M, 3).item(), 6) == round(torch.linalg.det(M).item(), 6)
    True
    """
    M = _check_stack("M", M)
    t = check_int("t", t, 1)
    *batch, m, n = M.shape
    if t == 1:
        return M.clone()
    rows = subsets(m, t).to(M.device) if t <= m else None
    cols = subsets(n, t).to(M.device) if t <= n else None
    if rows is None or cols is None:
        return M.new_zeros(*batch, math.comb(m, t), math.comb(n, t))
    work = _working(M)
    a, b = rows.shape[0], cols.shape[0]
    picked = work[..., rows, :]                         # [..., a, t, n]: the rows of each I
    per_row = b * t * t * max(1, math.prod(batch))
    step = max(1, _CHUNK_ENTRIES // per_row)
    parts = []
    for start in range(0, a, step):
        block = picked[..., start:start + step, :, :][..., cols]   # [..., c, t, b, t]
        parts.append(torch.linalg.det(block.movedim(-2, -3)))      # [..., c, b]
    return torch.cat(parts, dim=-2).to(M.dtype)


def wedge(X: Tensor) -> Tensor:
    """Coordinates of the wedge ``x_1 ^ ... ^ x_t`` of the columns of ``X`` in the basis
    ``e_I`` (Section B.2.1): the t x t minors ``det X^{I, :}``, I in lexicographic order.

    Parameters
    ----------
    X : Tensor
        The vectors as columns [..., n, t] (real floating, finite).

    Returns
    -------
    w : Tensor
        [..., C(n, t)]; no entries when ``t > n`` (t vectors of R^n are dependent).

    Raises
    ------
    TypeError
        If ``X`` is not a real floating tensor.
    ValueError
        If ``X`` has fewer than 2 dimensions, no column or non-finite entries.
    """
    X = _check_stack("X", X)
    if X.shape[-1] < 1:
        raise ValueError("X must have at least one column (t >= 1)")
    return compound(X, X.shape[-1])[..., 0]


def wedge_inner(X: Tensor, Y: Tensor) -> Tensor:
    """Inner product of the wedges of the columns of ``X`` and of ``Y`` (Section B.2.1):
    ``<x_1 ^ ... ^ x_t, y_1 ^ ... ^ y_t> = det(<x_i, y_j>) = det(X^T Y)``, the Gram
    determinant. ``wedge_inner(X, X) = ||x_1 ^ ... ^ x_t||^2`` (Lemma C.3); it equals
    ``wedge(X) @ wedge(Y)`` (Cauchy-Binet).

    Parameters
    ----------
    X, Y : Tensor
        The vectors as columns [..., n, t] (real floating, finite; leading dimensions
        broadcast).

    Returns
    -------
    g : Tensor
        [...], in the promoted dtype of ``X`` and ``Y``.

    Raises
    ------
    TypeError
        If ``X`` or ``Y`` is not a real floating tensor.
    ValueError
        If they have fewer than 2 dimensions, different ``[n, t]``, leading dimensions that
        do not broadcast, no column, or non-finite entries.
    """
    X = _check_stack("X", X)
    Y = _check_stack("Y", Y)
    if X.shape[-2:] != Y.shape[-2:]:
        raise ValueError(f"X and Y must hold the same number of vectors of the same space, got "
                         f"[n, t] = {list(X.shape[-2:])} and {list(Y.shape[-2:])}")
    if X.shape[-1] < 1:
        raise ValueError("X and Y must have at least one column (t >= 1)")
    try:
        torch.broadcast_shapes(X.shape[:-2], Y.shape[:-2])
    except RuntimeError as err:
        raise ValueError(f"the leading dimensions of X {tuple(X.shape[:-2])} and Y "
                         f"{tuple(Y.shape[:-2])} do not broadcast") from err
    dtype = torch.promote_types(X.dtype, Y.dtype)
    Xw, Yw = _working(X.to(dtype)), _working(Y.to(dtype))
    return torch.linalg.det(Xw.mT @ Yw).to(dtype)


def tensor_power(M: Tensor, t: int) -> Tensor:
    """The t-th tensor power of ``M`` (Definition B.2): the Kronecker power, entries
    ``prod_k M[i_k, j_k]`` at multi-indices ``I = (i_1..i_t)``, ``J = (j_1..j_t)`` in
    lexicographic order (first index slowest).

    Parameters
    ----------
    M : Tensor
        Real matrices [..., m, n] (finite).
    t : int
        The order (>= 1).

    Returns
    -------
    T : Tensor
        [..., m^t, n^t], dtype and device of ``M``.

    Raises
    ------
    TypeError
        If ``M`` is not a real floating tensor or ``t`` not an integer.
    ValueError
        If ``M`` has fewer than 2 dimensions or non-finite entries, or ``t < 1``.
    """
    M = _check_stack("M", M)
    t = check_int("t", t, 1)
    *batch, m, n = M.shape
    out = M
    for _ in range(t - 1):
        out = (out[..., :, None, :, None] * M[..., None, :, None, :]).reshape(
            *batch, out.shape[-2] * m, out.shape[-1] * n)
    return out.clone() if t == 1 else out


def elementary_tensor(X: Tensor) -> Tensor:
    """Coordinates of the elementary tensor ``x_1 (x) ... (x) x_t`` of the columns of ``X``
    (Definition B.1), multi-indices in lexicographic order: entry ``prod_k X[i_k, k]``.

    Parameters
    ----------
    X : Tensor
        The vectors as columns [..., n, t] (real floating, finite, t >= 1).

    Returns
    -------
    v : Tensor
        [..., n^t].

    Raises
    ------
    TypeError
        If ``X`` is not a real floating tensor.
    ValueError
        If ``X`` has fewer than 2 dimensions, no column or non-finite entries.
    """
    X = _check_stack("X", X)
    if X.shape[-1] < 1:
        raise ValueError("X must have at least one column (t >= 1)")
    out = X[..., :, 0]
    for k in range(1, X.shape[-1]):
        out = (out[..., :, None] * X[..., None, :, k]).flatten(-2)
    return out


def alternating_tensor(X: Tensor) -> Tensor:
    """The wedge of the columns of ``X`` inside the tensor power (Definition B.3 realised):
    ``(1/sqrt(t!)) sum_sigma sign(sigma) x_sigma(1) (x) ... (x) x_sigma(t)``.

    The scaling makes the tensor inner product of two such tensors the Gram determinant
    ``det(X^T Y)`` of Section B.2.1; the coordinate at an increasing multi-index ``I`` is
    ``det X^{I, :} / sqrt(t!)``. Sums over the ``t!`` permutations: meant for ``t <= 6``.

    Parameters
    ----------
    X : Tensor
        The vectors as columns [..., n, t] (real floating, finite, t >= 1).

    Returns
    -------
    a : Tensor
        [..., n^t].

    Raises
    ------
    TypeError
        If ``X`` is not a real floating tensor.
    ValueError
        If ``X`` has fewer than 2 dimensions, no column or non-finite entries.
    """
    X = _check_stack("X", X)
    t = X.shape[-1]
    if t < 1:
        raise ValueError("X must have at least one column (t >= 1)")
    out = None
    for perm in itertools.permutations(range(t)):
        # sign of the permutation: (-1)^(number of inversions)
        inversions = sum(perm[i] > perm[j] for i in range(t) for j in range(i + 1, t))
        term = elementary_tensor(X[..., list(perm)])
        term = -term if inversions % 2 else term
        out = term if out is None else out + term
    return out / math.sqrt(math.factorial(t))
