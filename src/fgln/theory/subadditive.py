"""Appendix C.2: what is lost when a product is split in two, and Lemma C.6 on its own.

The proof of Theorem 5.3's correction follows ``u_L = E log||^i J_L||`` (the log of
``s_1 ... s_i``). Cutting ``J_L = A B`` after ``q`` layers (``B`` the first q, ``A`` the other
``L - q``) gives the *defect*

    delta = log||^i A|| + log||^i B|| - log||^i (A B)||  >= 0,

sample by sample (the exterior power is multiplicative and the operator norm
submultiplicative). Its mean is ``d(L - q, q) = u_{L-q} + u_q - u_L``; Lemma C.6 says it
tends to ``d_i = -E log|det Omega^{i,i}|`` when both pieces grow, and Lemma C.7 turns that into
the 1/L term of ``u_L / L``.

* :func:`split_defects` -- the three norms and the defect per product (and the same
  combination with the first ``L - q`` layers in place of ``A``, whose mean is the same but
  which is not a defect of one product and can be negative);
* :func:`haar_split_log_ratios` -- Lemma C.6's ratio
  ``log(||^t(A B)|| / (||^t A|| ||^t B||))`` for ``A = S Omega_1``, ``B = Omega_2 S`` with
  diagonal ``S`` whose log singular values are spaced by ``c``, as ``||N||`` for the normalised
  ``N = (^t S / ||^t S||) (^t Omega) (^t S / ||^t S||)``, ``Omega`` Haar; and
  ``log|det Omega^{t,t}|``, its limit as ``c`` grows and its lower bound at every ``c``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..base.conventions import shared_doc
from ..base.laws import Product, check_product
from ..base.results import Result
from ..base.statistics import conditional_stats
from ..base.threads import single_threaded
from ..base.validation import check_int
from ..products.sampling import haar_orthogonal, make_generator, sample_layers
from ..products.spectra import log_singular_values, log_spectra_by_depth
from .exterior import compound, subsets

__all__ = ["split_defects", "haar_split_log_ratios"]

_CHUNK = 256  # products drawn at a time in split_defects (memory ~ chunk * L * n^2 doubles)


@single_threaded
@shared_doc
def split_defects(product: Product, k: int, replicates: int, *, split: int | None = None,
                  seed=0, dtype: torch.dtype = torch.float64, device="cpu") -> Result:
    """The defect of splitting ``J_L = A B`` after ``split`` layers, per product, i = 1..k.

    ``B = M_q ... M_1`` (q = ``split``), ``A = M_L ... M_{q+1}``; ``log_A``, ``log_B``,
    ``log_AB`` are ``log||^i .|| = sum_{j<=i} log s_j`` and ``defect = log_A + log_B -
    log_AB`` (>= 0 in every product, up to rounding), whose mean estimates ``d(L - q, q)``
    of Appendix C.2. ``unpaired`` is ``log_head + log_B - log_AB`` with ``log_head`` the norm
    of the *first* ``L - q`` layers: the same mean (the two pieces have one law), but not a
    defect of one product, so it can be negative. Products are drawn ``256`` at a time from
    one stream (the same numbers whatever ``k``). Exact zeros (``s_i = 0``, possible when
    ``k`` exceeds a gate's rank) make an entry NaN, left out of the statistics.

    Parameters
    ----------
    %(product)s
        Its depth ``L`` must be at least 2.
    %(k)s
    %(replicates)s
    split : int or None
        Layers in ``B``, in [1, L - 1]; None: ``L // 2``.
    %(seed)s
    %(dtype)s
    %(device)s

    Returns
    -------
    result : Result
        ``log_A``, ``log_B``, ``log_AB``, ``log_head``, ``defect``, ``unpaired``
        [replicates, k]; ``mean``, ``se``, ``count`` [k] of ``defect``; ``split`` (q).

    Raises
    ------
    TypeError
        If ``product`` is not a Product or an integer argument is not an integer.
    ValueError
        If ``L < 2`` or an argument is out of range.
    """
    check_product(product)
    L, n = product.L, product.n
    if L < 2:
        raise ValueError(f"a product to split needs L >= 2, got L = {L}")
    k = check_int("k", k, 1, n)
    replicates = check_int("replicates", replicates, 2)
    q = L // 2 if split is None else check_int("split", split, 1, L - 1)
    gen = make_generator(seed, device=device)
    out: dict[str, list[np.ndarray]] = {key: [] for key in ("A", "B", "AB", "head")}
    for start in range(0, replicates, _CHUNK):
        b = min(_CHUNK, replicates - start)
        layers = sample_layers(product, b, seed=gen, dtype=dtype, device=device)
        depths = sorted({q, L - q, L})
        by_depth = log_spectra_by_depth(layers, depths=depths, k=k)
        cum = torch.cumsum(by_depth, -1).cpu().numpy()                 # [b, depths, k]
        out["B"].append(cum[:, depths.index(q)])
        out["head"].append(cum[:, depths.index(L - q)])
        out["AB"].append(cum[:, depths.index(L)])
        out["A"].append(torch.cumsum(log_singular_values(layers[:, q:], k=k), -1).cpu().numpy())
    a, bb, ab, head = (np.concatenate(out[key]) for key in ("A", "B", "AB", "head"))
    with np.errstate(invalid="ignore"):
        defect = a + bb - ab
        unpaired = head + bb - ab
    defect = np.where(np.isfinite(defect), defect, np.nan)
    unpaired = np.where(np.isfinite(unpaired), unpaired, np.nan)
    st = conditional_stats(defect)
    return Result(log_A=a, log_B=bb, log_AB=ab, log_head=head, defect=defect, unpaired=unpaired,
                  mean=st["mean"], se=st["se"], count=st["count"], split=q)


@shared_doc
def haar_split_log_ratios(n: int, t: int, spacings: Sequence[float], replicates: int, *,
                          seed=0, dtype: torch.dtype = torch.float64) -> Result:
    """Lemma C.6 on its own: ``log(||^t(A B)|| / (||^t A|| ||^t B||))`` for separated diagonal
    singular values and a Haar rotation between them, at each spacing ``c``.

    With ``A = S V_A``, ``B = U_B S`` and ``Omega = V_A U_B`` Haar (the proof's reduction),
    ``S = diag(e^{0}, e^{-c}, ..., e^{-(n-1)c})``, the ratio is ``||N||`` for ``N = a (^t Omega)
    a``, ``a = ^t S / ||^t S||`` diagonal with entries ``exp(sum_{i in I} log s_i -
    sum_{i<=t} log s_i) <= 1`` (computed so, without forming the tiny products). The same
    ``Omega`` serves every spacing. At ``c = 0`` the ratio is 1; as ``c`` grows it tends to
    ``|det Omega^{t,t}|``, the entry of ``N`` at ``I_0 = {1..t}``, which bounds it from below
    at every ``c`` (an entry is at most the operator norm), while 1 bounds it from above.

    Parameters
    ----------
    n : int
        Size of the matrices (>= 2).
    t : int
        Order of the exterior power (in [1, n - 1]).
    spacings : sequence of float
        The spacings ``c >= 0`` of the log singular values.
    replicates : int
        Haar matrices drawn (>= 2).
    %(seed)s
    %(dtype)s

    Returns
    -------
    result : Result
        ``log_ratio`` [replicates, len(spacings)], ``log_det`` [replicates]
        (``log|det Omega^{t,t}|``), ``mean``, ``se`` [len(spacings)] of ``log_ratio``, and
        ``spacings`` [len(spacings)].

    Raises
    ------
    TypeError
        If ``n``, ``t`` or ``replicates`` is not an integer.
    ValueError
        If one is out of range, or a spacing is negative or not finite.
    """
    n = check_int("n", n, 2)
    t = check_int("t", t, 1, n - 1)
    replicates = check_int("replicates", replicates, 2)
    c = np.asarray(spacings, dtype=float).ravel()
    if c.size == 0 or not np.all(np.isfinite(c)) or np.any(c < 0):
        raise ValueError(f"spacings must be finite numbers >= 0, got {list(c)}")
    omega = haar_orthogonal(n, replicates, seed=seed, dtype=dtype)
    wedge_omega = compound(omega, t)                                  # [R, m, m]
    index = subsets(n, t).to(torch.float64)                           # [m, t], 0-based
    excess = (index.sum(-1) - (t - 1) * t / 2.0).to(dtype)            # sum_I i - sum_{i<t} i
    log_ratio = np.empty((replicates, c.size))
    for j, cj in enumerate(c):
        a = torch.exp(-cj * excess)                                   # ^t S / ||^t S||
        N = a[:, None] * wedge_omega * a[None, :]
        log_ratio[:, j] = torch.log(torch.linalg.matrix_norm(N, 2)).numpy()
    with np.errstate(divide="ignore"):
        log_det = torch.log(wedge_omega[:, 0, 0].abs()).numpy()
    st = conditional_stats(log_ratio)
    return Result(log_ratio=log_ratio, log_det=log_det, mean=st["mean"], se=st["se"],
                  spacings=c)

