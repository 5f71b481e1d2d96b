"""The diagonal correlation coefficient (paper, Appendix F).

``rho(A)`` is the Pearson correlation of the row and the column index of a cell drawn with
probability proportional to ``|A_ij|``: +1 for a matrix supported on the diagonal, -1 on the
anti-diagonal. :func:`diagonal_correlation_closed_form` is the paper's closed formula, kept
separately so that the two can be compared.

Degenerate case. The coefficient is a ratio ``Cov / (sd_X sd_Y)``; when the mass of ``|A|``
sits on a single row or a single column (in particular for every 1 x 1 matrix) one standard
deviation is zero and the coefficient is undefined. We return NaN and emit a
``RuntimeWarning`` (as ``numpy.corrcoef`` does), so that one degenerate block does not abort
a batched computation. Zero, empty, non-square and non-finite inputs are errors
(``ValueError``): they signal a bug upstream.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import torch

from ..base.validation import check_square_stack

Tensor = torch.Tensor

__all__ = ["diagonal_correlations", "diagonal_correlation", "diagonal_correlation_closed_form",
           "diagonal_correlation_reference"]


# --------------------------------------------------------------------------------------
# diagonal correlation (Appendix F)
# --------------------------------------------------------------------------------------


def _as_tensor(A) -> Tensor:
    if isinstance(A, Tensor):
        return A
    return torch.as_tensor(np.asarray(A, dtype=np.float64))





def diagonal_correlations(A) -> Tensor:
    """Diagonal correlation rho of every matrix in ``A`` [..., k, k]; returns Tensor[...].

    Appendix F: with weights ``w_ij = |A_ij| / sum |A|``, rho is the Pearson correlation of
    the row index X and column index Y under ``P(X=i, Y=j) = w_ij``. It is +1 exactly for
    (non-degenerate) diagonally supported matrices, -1 for anti-diagonal ones, invariant
    under ``A -> c A`` (c != 0), ``A -> A^T`` and entry sign changes.

    Computed with centred indices (no cancellation). Raises ``ValueError`` for empty,
    non-square, non-finite or all-zero matrices; returns NaN with a ``RuntimeWarning``
    when the mass lies on one row or one column (zero variance, e.g. any 1 x 1 matrix).

    Parameters
    ----------
    A : Tensor or array_like
        Square matrices [..., k, k].

    Returns
    -------
    rho : Tensor
        Diagonal correlations [...], in [-1, 1] or NaN where undefined.

    Raises
    ------
    ValueError
        If a matrix is empty, non-square, non-finite or all zero.

    Warns
    -----
    RuntimeWarning
        When some coefficient is undefined (returned as NaN).
    """
    A = _as_tensor(A)
    check_square_stack(A)
    W = A.abs().to(torch.float64 if not A.is_floating_point() else A.dtype)
    k = W.shape[-1]
    m = W.sum((-2, -1))
    if bool((m == 0).any()):
        raise ValueError("diagonal correlation of an all-zero matrix is undefined")
    P = W / m[..., None, None]
    idx = torch.arange(1, k + 1, dtype=W.dtype, device=W.device)
    px, py = P.sum(-1), P.sum(-2)  # row and column marginals
    mx, my = (px * idx).sum(-1), (py * idx).sum(-1)
    dx = idx - mx[..., None]
    dy = idx - my[..., None]
    vx = (px * dx * dx).sum(-1)
    vy = (py * dy * dy).sum(-1)
    cov = (dx[..., :, None] * P * dy[..., None, :]).sum((-2, -1))
    # exact degeneracy test: a single non-zero row (or column) carries all the mass
    one_row = (W.sum(-1) > 0).sum(-1) <= 1
    one_col = (W.sum(-2) > 0).sum(-1) <= 1
    degenerate = one_row | one_col
    rho = cov / torch.sqrt(vx * vy).where(~degenerate, torch.ones_like(vx))
    rho = rho.clamp(-1.0, 1.0)  # rounding can exceed 1 by an ulp
    if bool(degenerate.any()):
        warnings.warn(
            f"diagonal correlation undefined for {int(degenerate.sum())} matrix(ces) whose "
            "mass lies on a single row or column (zero variance); returning NaN",
            RuntimeWarning, stacklevel=2)
        rho = torch.where(degenerate, torch.full_like(rho, math.nan), rho)
    return rho


def diagonal_correlation(A) -> float:
    """Diagonal correlation (Appendix F) of one square matrix ``A`` [k, k]; a float.

    See :func:`diagonal_correlations` for the definition and error handling.

    Parameters
    ----------
    A : Tensor or array_like
        One square matrix [k, k].

    Returns
    -------
    rho : float
        In [-1, 1], or NaN (with a ``RuntimeWarning``) where undefined.

    Raises
    ------
    ValueError
        If ``A`` is not a single matrix, or is empty, non-square, non-finite or all zero.
    """
    A = _as_tensor(A)
    if A.ndim != 2:
        raise ValueError(f"diagonal_correlation takes one matrix [k, k], got shape {tuple(A.shape)}"
                         " (use diagonal_correlations for batches)")
    return float(diagonal_correlations(A))


def diagonal_correlation_closed_form(A, *, reading: str = "printed") -> Tensor:
    """The paper's closed formula (Appendix F) for rho, batched: [..., k, k] -> [...].

    With ``m = 1^T A 1``, ``r1 = (1..k)``, ``r2 = (1^2..k^2)`` and A replaced by ``|A|``::

        rho = (m r1^T A r1 - (r1^T A 1)(1^T A r1))
              / sqrt((m r2^T A 1 - (r1^T A 1)^2) (m 1^T A r2 - (1^T A r1)^2))

    ``reading="mixed"`` evaluates the same expression with the row and column first moments
    exchanged under the square root (``(1^T A r1)^2`` beside ``r2^T A 1``): the variant a
    misprint would give, kept to show that it differs from the definition (it can be NaN).
    Raw moments, so it loses accuracy by cancellation for large k; use
    :func:`diagonal_correlations` in computations. No validation, no degeneracy handling.

    Parameters
    ----------
    A : Tensor or array_like
        Square matrices [..., k, k].
    reading : {"printed", "mixed"}
        Moments under the square root as the paper prints them (default; the numerics
        support it), or exchanged.

    Returns
    -------
    rho : Tensor
        [...]; NaN where the expression under the square root is negative or zero.

    Raises
    ------
    ValueError
        If ``reading`` is unknown.
    """
    if reading not in ("printed", "mixed"):
        raise ValueError(f"reading must be 'printed' or 'mixed', got {reading!r}")
    W = _as_tensor(A).abs()
    k = W.shape[-1]
    one = torch.ones(k, dtype=W.dtype, device=W.device)
    r1 = torch.arange(1, k + 1, dtype=W.dtype, device=W.device)
    r2 = r1 * r1

    def q(x, y):  # x^T W y, batched
        return torch.einsum("i,...ij,j->...", x, W, y)

    m = q(one, one)
    num = m * q(r1, r1) - q(r1, one) * q(one, r1)
    row, col = (q(r1, one), q(one, r1)) if reading == "printed" else (q(one, r1), q(r1, one))
    den = torch.sqrt((m * q(r2, one) - row**2) * (m * q(one, r2) - col**2))
    return num / den


def diagonal_correlation_reference(A) -> float:
    """rho of one matrix [k, k] straight from the definition, via ``numpy.cov`` with weights
    ``|A|`` (an implementation independent of :func:`diagonal_correlations`, for checks).

    Parameters
    ----------
    A : array_like
        One square matrix [k, k].

    Returns
    -------
    rho : float
        The diagonal correlation.
    """
    A = np.abs(np.asarray(A, dtype=np.float64))
    k = A.shape[0]
    i, j = np.meshgrid(np.arange(1, k + 1), np.arange(1, k + 1), indexing="ij")
    c = np.cov(np.stack([i.ravel(), j.ravel()]), aweights=A.ravel())
    return float(c[0, 1] / math.sqrt(c[0, 0] * c[1, 1]))
