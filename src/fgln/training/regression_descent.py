"""Full-batch gradient descent of fixed-gates networks on a square loss, the gradient taken in
closed form instead of by automatic differentiation, for one network or many at once.

For ``J = W_L D_{L-1} ... D_1 W_1`` and the loss
``weight * (1/2m) ||x J^T - y||_F^2`` (:func:`fgln.training.train.half_mse` of ``m`` rows,
scaled by ``weight``), the gradient with respect to ``J`` is
``grad_J = (weight / m) (x J^T - y)^T x``, and Lemma A.1 gives every weight's,
``grad_{W_l} = A_l^T grad_J B_l^T`` with Section 7's partial products ``J = A_l W_l B_l``.
One step is therefore one pass of partial products (:func:`.chain_products`) and one batched
product per side, with no autograd graph: at the chapters' sizes (16 to 64 units, 6 to 10
layers) that graph's bookkeeping costs more than the arithmetic. The step is the one
:func:`fgln.training.train.train` takes with plain SGD on the same loss, up to rounding
(``tests/test_train.py`` checks both against each other).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from ..base.progress import progress as _progress
from ..base.validation import check_int, check_positive
from ..products.partial_products import chain_products
from .train import DivergenceError

Tensor = torch.Tensor

__all__ = ["DescentState", "DescentResult", "regression_descent"]


@dataclass(frozen=True)
class DescentState:
    """The state of :func:`regression_descent` at a recorded step (before that step's update).

    Parameters
    ----------
    step, weights, A, B, J, grad_J, loss
        The attributes below, in this order.

    Attributes
    ----------
    step : int
        Updates done so far.
    weights : Tensor
        ``W_1..W_L`` [..., L, n, n].
    A, B : Tensor
        Section 7's partial products ``A_l`` and ``B_l`` [..., L, n, n] (``J = A_l W_l B_l``).
    J : Tensor
        The end-to-end matrices [..., n, n].
    grad_J : Tensor
        The loss gradient with respect to ``J`` [..., n, n].
    loss : Tensor
        The loss of every network [...].
    """

    step: int
    weights: Tensor
    A: Tensor
    B: Tensor
    J: Tensor
    grad_J: Tensor
    loss: Tensor


@dataclass(frozen=True)
class DescentResult:
    """What :func:`regression_descent` returns.

    Parameters
    ----------
    weights, losses, seconds, record_seconds
        The attributes below, in this order.

    Attributes
    ----------
    weights : Tensor
        The trained ``W_1..W_L`` [..., L, n, n].
    losses : numpy.ndarray
        The loss of every network before each update [..., steps].
    seconds : float
        Wall time of the call.
    record_seconds : float
        The part of it spent in ``on_record``.
    """

    weights: Tensor
    losses: np.ndarray
    seconds: float
    record_seconds: float


def regression_descent(weights: Tensor, gates: Tensor, x: Tensor, y: Tensor, *, lr: float,
                       steps: int, weight: float = 1.0, record: Sequence[int] = (),
                       on_record: Callable[[DescentState], None] | None = None,
                       max_loss_factor: float = 1e6, progress: bool | None = None,
                       desc: str = "descent") -> DescentResult:
    """Gradient descent at step ``lr`` on ``weight * half_mse(x J^T, y)`` for every network of
    the batch, ``steps`` updates, calling ``on_record`` at the steps in ``record``.

    Parameters
    ----------
    weights : Tensor
        ``W_1..W_L`` [..., L, n, n] (float; not modified).
    gates : Tensor
        Diagonals of ``D_1..D_{L-1}`` [..., L-1, n].
    x, y : Tensor
        Inputs and targets as rows [..., m, n] (the batch dimensions of ``weights``, or none
        for data shared by every network).
    lr : float
        Gradient step (> 0).
    steps : int
        Number of updates (>= 0).
    weight : float
        Factor of the loss (> 0; :func:`.compress_regression` gives the one that makes ``m``
        compressed rows carry the loss of all the samples).
    record : sequence of int
        Steps in ``[0, steps]`` at which to call ``on_record`` with the state before that
        step's update (``steps``: the trained networks).
    on_record : callable or None
        ``on_record(state: DescentState) -> None``.
    max_loss_factor : float
        A loss above this factor times the network's first loss (or a non-finite one) stops
        the run (> 1).
    progress : bool or None
        Progress bar over the steps (``None``: unless ``FGLN_PROGRESS=0``).
    desc : str
        Label of the progress bar.

    Returns
    -------
    DescentResult
        The trained weights, every loss before an update, the wall time and the time spent
        recording.

    Raises
    ------
    ValueError
        If the shapes do not fit, ``lr``, ``weight`` or ``max_loss_factor`` is out of range,
        or a recorded step lies outside ``[0, steps]``.
    DivergenceError
        If a network's loss becomes non-finite or exceeds ``max_loss_factor`` times its first.
    """
    t_begin = time.perf_counter()
    lr = check_positive("lr", lr)
    weight = check_positive("weight", weight)
    steps = check_int("steps", steps, 0)
    if not max_loss_factor > 1:
        raise ValueError(f"max_loss_factor must be > 1, got {max_loss_factor}")
    if weights.ndim < 3 or weights.shape[-1] != weights.shape[-2]:
        raise ValueError(f"weights must be [..., L, n, n], got {tuple(weights.shape)}")
    *batch, L, n, _ = weights.shape
    if tuple(gates.shape) != (*batch, L - 1, n):
        raise ValueError(f"gates must be [..., L-1, n] = {(*batch, L - 1, n)}, got "
                         f"{tuple(gates.shape)}")
    if x.ndim < 2 or x.shape[-1] != n or y.shape != x.shape:
        raise ValueError(f"x and y must both be [..., m, {n}], got {tuple(x.shape)} and "
                         f"{tuple(y.shape)}")
    rec = {check_int("record step", s, 0, steps) for s in record}
    scale = weight / x.shape[-2]
    W = weights.detach().clone()
    D = list(gates.to(W).unbind(-2))
    losses: list[Tensor] = []
    first = None
    record_seconds = 0.0
    bar = _progress(range(steps + 1), total=steps + 1, desc=desc, enable=progress)
    for step in bar:
        A, B = chain_products(list(W.unbind(-3)), D)
        A, B = torch.stack(A, -3), torch.stack(B, -3)
        J = A[..., 0, :, :] @ W[..., 0, :, :]
        resid = x @ J.mT - y
        loss = 0.5 * scale * resid.pow(2).sum((-2, -1))
        if first is None:
            first = loss.clamp(min=1e-300)
        bad = ~torch.isfinite(loss) | (loss > max_loss_factor * first)
        if bool(bad.any()):
            value = float(loss[bad].flatten()[0]) if loss.ndim else float(loss)
            raise DivergenceError(f"loss {value:.4g} at step {step} (t = {step * lr:.6g}): "
                                  "training diverged", step, value)
        G = scale * resid.mT @ x
        if step in rec and on_record is not None:
            t0 = time.perf_counter()
            on_record(DescentState(step, W, A, B, J, G, loss))
            record_seconds += time.perf_counter() - t0
        if step == steps:
            break
        losses.append(loss)
        W = W - lr * (A.mT @ G.unsqueeze(-3) @ B.mT)
    out = (torch.stack(losses, -1) if losses
           else torch.zeros((*batch, 0), dtype=W.dtype))
    return DescentResult(weights=W, losses=out.cpu().numpy(),
                         seconds=time.perf_counter() - t_begin, record_seconds=record_seconds)
