"""Deep linear networks trained by gradient descent on ``1/2 ||J - Y||_F^2``: the baselines the
paper builds on (Saxe et al., 2014; Arora et al., 2019), checked in the book's chapter 2.

* :func:`aligned_descent` -- a balanced network whose singular bases are those of the target:
  every singular value of ``J`` then follows its own scalar law (compare with
  :func:`fgln.theory.cited_laws.balanced_mode_trajectory`);
* :func:`balance_drift` -- how far the balance gaps ``W_{l+1}^T W_{l+1} - W_l W_l^T`` of a
  random, unbalanced network move during gradient descent at a given step. Gradient flow
  conserves them (Arora et al.), so the drift of gradient descent is a discretisation error,
  of the order of the step.

The loss ``1/2 ||J - Y||_F^2`` is the square loss of a regression with whitened inputs.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..base.validation import check_int, check_positive
from ..products.partial_products import chain_product
from ..products.sampling import haar_orthogonal, make_generator

Tensor = torch.Tensor

__all__ = ["aligned_descent", "balance_drift"]


def _descend(W: list[Tensor], Y: Tensor, lr: float, steps: int, every: int, record) -> list:
    """Gradient descent on 1/2 ||W_L ... W_1 - Y||_F^2; ``record(W)`` every ``every`` steps."""
    out = [record(W)]
    for step in range(1, steps + 1):
        Wr = [w.detach().requires_grad_(True) for w in W]
        loss = 0.5 * ((chain_product(Wr) - Y) ** 2).sum()
        grads = torch.autograd.grad(loss, Wr)
        W = [w.detach() - lr * g for w, g in zip(Wr, grads)]
        if not all(bool(torch.isfinite(w).all()) for w in W):
            raise FloatingPointError(f"gradient descent diverged at step {step} (lr = {lr})")
        if step % every == 0:
            out.append(record(W))
    return out


def _check_run(lr: float, t_max: float, record_dt: float) -> tuple[int, int]:
    check_positive("lr", lr)
    check_positive("t_max", t_max)
    check_positive("record_dt", record_dt)
    steps, every = round(t_max / lr), round(record_dt / lr)
    if every < 1 or abs(steps * lr - t_max) > 1e-9 * t_max or abs(every * lr - record_dt) > 1e-9:
        raise ValueError(f"t_max = {t_max} and record_dt = {record_dt} must be multiples of "
                         f"lr = {lr}")
    return steps, every


def aligned_descent(n: int, L: int, s0, y, lr: float, t_max: float, record_dt: float, *,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gradient descent from a balanced network aligned with its target; the singular values
    of ``J`` along the way.

    ``W_l = Q_l diag(s0^(1/L)) Q_{l-1}^T`` with Haar orthogonal ``Q_0..Q_L`` (n x n), so that
    ``W_{l+1}^T W_{l+1} = W_l W_l^T`` (balanced) and ``J = Q_L diag(s0) Q_0^T``; the target is
    ``Y = Q_L diag(y) Q_0^T``. Modes beyond ``len(s0)`` start and stay at 0.

    Parameters
    ----------
    n : int
        Width (>= the number of modes).
    L : int
        Depth (>= 1).
    s0 : array_like
        Initial singular values of ``J``, > 0 [modes].
    y : array_like
        The target's singular values, > 0 [modes].
    lr : float
        Gradient step (> 0); the flow time of step i is ``i * lr``.
    t_max : float
        Last time (a multiple of ``lr``).
    record_dt : float
        Time between two records (a multiple of ``lr``).
    seed : int, torch.Generator or None
        Start of the random stream of the bases (default 0).

    Returns
    -------
    t : numpy.ndarray
        Times of the records, 0 to ``t_max`` [records].
    s : numpy.ndarray
        The leading ``modes`` singular values of ``J`` [records, modes].

    Raises
    ------
    TypeError
        If a count is not an integer.
    ValueError
        If a size or time is out of range, or ``s0`` and ``y`` are not positive vectors of the
        same length (at most n).
    FloatingPointError
        If the descent diverges.
    """
    n, L = check_int("n", n, 1), check_int("L", L, 1)
    s0 = np.atleast_1d(np.asarray(s0, dtype=float))
    y = np.atleast_1d(np.asarray(y, dtype=float))
    if s0.ndim != 1 or s0.shape != y.shape or s0.size > n or np.any(s0 <= 0) or np.any(y <= 0):
        raise ValueError("s0 and y must be positive vectors of the same length, at most n")
    steps, every = _check_run(lr, t_max, record_dt)
    gen = make_generator(seed)
    Q = [haar_orthogonal(n, seed=gen) for _ in range(L + 1)]
    k = s0.size
    root = torch.zeros(n, dtype=torch.float64)
    root[:k] = torch.as_tensor(s0 ** (1.0 / L))
    W = [Q[l] @ (root[:, None] * Q[l - 1].T) for l in range(1, L + 1)]
    target = torch.zeros(n, dtype=torch.float64)
    target[:k] = torch.as_tensor(y)
    Y = Q[L] @ (target[:, None] * Q[0].T)
    rec = _descend(W, Y, lr, steps, every,
                   lambda ws: torch.linalg.svdvals(chain_product(ws))[:k].numpy())
    return np.arange(len(rec)) * record_dt, np.stack(rec)


def _gaps(W: list[Tensor]) -> list[Tensor]:
    return [W[l + 1].T @ W[l + 1] - W[l] @ W[l].T for l in range(len(W) - 1)]


def balance_drift(n: int, L: int, lr: float, t_max: float, *, seed: int = 0) -> float:
    """How far gradient descent moves the balance gaps of a random deep linear network.

    Weights with i.i.d. N(0, 1/n) entries, a target with i.i.d. N(0, 1/n) entries, ``t_max /
    lr`` steps of gradient descent on ``1/2 ||J - Y||_F^2``; returns
    ``max_l ||Delta_l(t_max) - Delta_l(0)||_F / ||Delta_l(0)||_F`` with
    ``Delta_l = W_{l+1}^T W_{l+1} - W_l W_l^T``. Under gradient flow it is 0 (Arora et al.);
    one step of size ``lr`` adds ``lr^2 (G_{l+1}^T G_{l+1} - G_l G_l^T)``, so the drift over a
    fixed time is of order ``lr``.

    Parameters
    ----------
    n : int
        Width of every layer (>= 1).
    L : int
        Depth (>= 2: a gap needs two layers).
    lr : float
        Gradient step (> 0).
    t_max : float
        Flow time of the run (a multiple of ``lr``).
    seed : int, torch.Generator or None
        Start of the random stream of the network and the target (default 0).

    Returns
    -------
    drift : float
        The largest relative change of a gap.

    Raises
    ------
    TypeError
        If a count is not an integer.
    ValueError
        If a size or time is out of range.
    FloatingPointError
        If the descent diverges.
    """
    n, L = check_int("n", n, 1), check_int("L", L, 2)
    steps, _ = _check_run(lr, t_max, t_max)
    gen = make_generator(seed)
    scale = 1.0 / math.sqrt(n)
    W = [torch.randn(n, n, generator=gen, dtype=torch.float64) * scale for _ in range(L)]
    Y = torch.randn(n, n, generator=gen, dtype=torch.float64) * scale
    first, last = _descend(W, Y, lr, steps, steps, _gaps)
    return max(float(torch.linalg.matrix_norm(b - a) / torch.linalg.matrix_norm(a))
               for a, b in zip(first, last))
