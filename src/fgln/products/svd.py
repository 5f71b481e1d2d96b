"""The one SVD helper of the package: top singular values and vectors of a matrix, a batch of
matrices or a list of them, in the form every caller uses (``V``, not ``V^T``)."""
from __future__ import annotations

from typing import Sequence

import torch

Tensor = torch.Tensor

__all__ = ["top_svd"]


def top_svd(M: Tensor | Sequence[Tensor], k: int | None = None, *, vectors: bool = True,
            full: bool = False, method: str = "svd"):
    """Top ``k`` (default: all) singular triplets ``(U [..., m, k], s [..., k], V [..., n, k])``
    of ``M`` [..., m, n], in decreasing order of ``s``.

    * ``vectors=False``: the values ``s`` [..., k] only (``torch.linalg.svdvals``).
    * ``full=True``: ``U`` and ``V`` square (complete bases), ``k`` ignored for them.
    * ``method="eigh"``: from one symmetric eigendecomposition of ``M M^T`` (square batches),
      ``V = M^T U / s`` (zero where ``s`` is 0); relative accuracy of ``s_j`` about
      ``1e-16 (s_1 / s_j)^2``, ample for the top of the spectrum and faster on batches.
    * ``M`` a list: one triplet per matrix, from one batched call when the shapes agree.

    Parameters
    ----------
    M : Tensor or sequence of Tensor
        A matrix or batch of matrices [..., m, n], or a list of them (shapes may differ).
    k : int or None
        How many of the largest singular triplets to keep; None: all ``min(m, n)``.
    vectors : bool
        Return ``(U, s, V)`` (default) or the values ``s`` only.
    full : bool
        Square ``U`` [..., m, m] and ``V`` [..., n, n] (complete bases); ``method="svd"`` only.
    method : {"svd", "eigh"}
        ``torch.linalg.svd``, or the eigendecomposition of ``M M^T`` (square matrices).

    Returns
    -------
    U, s, V : tuple of Tensor
        Left vectors [..., m, k], values [..., k] in decreasing order, right vectors
        [..., n, k]; only ``s`` when ``vectors=False``; a list with one entry per matrix when
        ``M`` is a list.

    Raises
    ------
    ValueError
        If ``method`` is unknown.
    """
    if method not in ("svd", "eigh"):
        raise ValueError(f"method must be 'svd' or 'eigh', got {method!r}")
    if not isinstance(M, Tensor):
        mats = list(M)
        if not mats:
            return []
        if all(m.shape == mats[0].shape for m in mats):
            out = top_svd(torch.stack(mats), k, vectors=vectors, full=full, method=method)
            if not vectors:
                return list(out.unbind(0))
            return [(out[0][i], out[1][i], out[2][i]) for i in range(len(mats))]
        return [top_svd(m, k, vectors=vectors, full=full, method=method) for m in mats]
    if not vectors:
        return torch.linalg.svdvals(M)[..., :k]
    if method == "eigh":
        evals, evecs = torch.linalg.eigh(M @ M.mT)
        s = evals.flip(-1)[..., :k].clamp(min=0.0).sqrt()
        U = evecs.flip(-1)[..., :k]
        V = M.mT @ U
        V = torch.where(s[..., None, :] > 0, V / torch.where(s > 0, s, 1.0)[..., None, :], 0.0)
        return U, s, V
    U, s, Vh = torch.linalg.svd(M, full_matrices=full)
    if full:
        return U, s[..., :k], Vh.mT
    return U[..., :k], s[..., :k], Vh[..., :k, :].mT
