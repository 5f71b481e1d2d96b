"""The synthetic regressions of Chapters 1, 4 and 7 (Figure 1, Proposition 4.5, Section 7,
Appendix G.1): the rank-10 task, its compression to ``n`` rows, and the seeded runs the
chapters call.
"""
from __future__ import annotations

import math

import numpy as np
import torch

from ..base.threads import torch_threads
from ..base.validation import check_int, resolve_device
from ..products.sampling import make_generator
from ..theory.flow_rates import balanced_singular_value_rates
from .balanced_networks import balance_residuals, balanced_masked_network
from .network_flow import flow_singular_value_rates
from .networks import FixedGatesNetwork
from .recorders import DynamicsRecorder, SpectralRecorder
from .train import RecordContext, half_mse, train

Tensor = torch.Tensor

__all__ = ["synthetic_task", "compress_regression", "synthetic_run", "balanced_run"]


def synthetic_task(n: int = 64, rank: int = 10, samples: int = 1000, *, seed: int = 0,
                   dtype: torch.dtype = torch.float64, device="cpu"
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """Figure 1 / Appendix G.1 task: ``(X [samples, n], Y [samples, n], T [n, n])``.

    Inputs ``x ~ N(0, I_n)``; targets ``y = T x`` with the fixed rank-``rank`` map
    ``T = G_1 G_2``, ``G_1`` [n, rank] and ``G_2`` [rank, n] with i.i.d. N(0, 1/n) entries
    (singular values of order 1). Drawn from one generator seeded by ``seed``: G_1, G_2, X.
    """
    n = check_int("n", n, 1)
    rank = check_int("rank", rank, 1, n)
    samples = check_int("samples", samples, 1)
    device = resolve_device(device)
    gen = make_generator(seed, device)
    g1 = torch.randn(n, rank, generator=gen, dtype=dtype, device=device) / math.sqrt(n)
    g2 = torch.randn(rank, n, generator=gen, dtype=dtype, device=device) / math.sqrt(n)
    T = g1 @ g2
    X = torch.randn(samples, n, generator=gen, dtype=dtype, device=device)
    return X, X @ T.T, T


def compress_regression(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, float, float]:
    """Fewer rows, the same least-squares loss: ``(x_c, y_c, weight, const)`` with
    ``half_mse(x @ J.T, y) = weight * half_mse(x_c @ J.T, y_c) + const`` for every ``J``.

    ``x = Q R`` (reduced QR, ``x`` [N, n] with N >= n): ``x_c = R`` [n, n], ``y_c = Q^T y``,
    ``weight = n / N`` and ``const = ||(I - Q Q^T) y||_F^2 / (2N)`` (0 when ``y`` is a linear
    function of ``x``, as in :func:`synthetic_task`). Gradient descent on the compressed
    problem follows the same trajectory, up to rounding, at a fraction of the cost.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"x and y must be [N, n] and [N, m] with the same N, got "
                         f"{tuple(x.shape)} and {tuple(y.shape)}")
    N, n = x.shape
    if N < n:
        raise ValueError(f"x must have at least as many rows as columns, got {tuple(x.shape)}")
    Q, R = torch.linalg.qr(x)
    yc = Q.T @ y
    const = 0.5 * float((y - Q @ yc).pow(2).sum()) / N
    return R, yc, n / N, const


def _task_seed(seed: int) -> int:
    """The data of run ``seed`` come from another stream than its weights (seed + 10**6)."""
    return 1_000_000 + int(seed)


def _grid(t_max: float, dt: float, lr: float) -> tuple[int, int]:
    steps = int(round(t_max / lr))
    every = int(round(dt / lr))
    if every < 1 or steps < every or abs(steps * lr - t_max) > 1e-9 * max(1.0, t_max) \
            or abs(every * lr - dt) > 1e-9 * max(1.0, dt):
        raise ValueError(f"t_max={t_max} and record_dt={dt} must be multiples of lr={lr}")
    return steps, every


def synthetic_run(seed: int = 0, *, n: int = 64, L: int = 10, p: float = 0.5, rank: int = 10,
                  samples: int = 1000, lr: float = 0.02, t_max: float = 60.0,
                  record_dt: float = 0.5, k: int = 15, diagnostics: bool = False,
                  progress: bool | None = None) -> dict[str, np.ndarray]:
    """Figure 1 / Appendix G.1: a square FGLN (widths ``[n] * (L + 1)``, p-gates,
    ``sigma = 1/sqrt(n)``, drawn by ``FixedGatesNetwork.random(seed=seed)``) trained by full-batch
    gradient descent at step ``lr`` on :func:`synthetic_task` (``seed + 10**6``) with
    :func:`half_mse`, up to time ``t_max`` (in units of ``t = step * lr``), recorded every
    ``record_dt``. The 1000-sample loss is evaluated through :func:`compress_regression` (the
    same loss, n rows instead of ``samples``).

    Returns the stacked history (``step``, ``t``, ``loss``, ``s`` [R, n], ``g`` [R, k] and, with
    ``diagnostics``, every field of :class:`fgln.training.recorders.DynamicsRecorder`, with
    subspaces of
    dimension ``rank``), ``losses`` (every
    step), ``T_sv`` (singular values of the target map), ``lr``, ``seconds`` and
    ``record_seconds``.
    """

    steps, every = _grid(t_max, record_dt, lr)
    with torch_threads(1):
        X, Y, T = synthetic_task(n, rank, samples, seed=_task_seed(seed))
        Xc, Yc, weight, _ = compress_regression(X, Y)
        net = FixedGatesNetwork.random([n] * (L + 1), p, seed=seed)
        rec = DynamicsRecorder(k, r=rank) if diagnostics else SpectralRecorder(k, partial_k=0)
        res = train(net, (Xc, Yc), lambda out, y: weight * half_mse(out, y), lr=lr,
                    steps=steps, record=every, recorders=[rec], device="cpu",
                    progress=progress, desc=f"seed {seed}")
    out = dict(res.history)
    out.update(losses=res.losses, T_sv=torch.linalg.svdvals(T).numpy(), lr=float(lr),
               seconds=float(res.seconds), record_seconds=float(res.record_seconds))
    return out


def balanced_run(seed: int = 0, *, n: int = 16, L: int = 6, p: float = 0.5, rank: int = 3,
                 samples: int = 200, lr: float = 0.01, t_max: float = 4.0,
                 grid_dt: float = 0.5, scale: float = 0.5, balanced: bool = True,
                 k: int = 3, progress: bool | None = None) -> dict[str, np.ndarray]:
    """Proposition 4.5 along gradient descent: a balanced masked network
    (:func:`fgln.training.balanced_networks.balanced_masked_network`, gates Bernoulli(p) from
    ``seed``,
    ``scale``), or with ``balanced=False`` a random FGLN (``FixedGatesNetwork.random``), trained
    on :func:`synthetic_task` (``n``, ``rank``, ``samples``) at step ``lr`` up to ``t_max``.

    At every grid time ``t_i = i * grid_dt`` and one step later it records ``s`` (top ``k``),
    ``pred`` (Proposition 4.5's rate), ``flow`` (the exact gradient-flow rate, Lemmas E.1-E.2)
    and ``balance`` (the largest relative balance residual). Returns ``t`` [G],
    ``measured`` [G, k] = ``(s(step + 1) - s(step)) / lr``, ``pred``, ``flow`` [G, k],
    ``balance`` [G] and ``s`` [G, k].
    """

    steps, every = _grid(t_max, grid_dt, lr)
    grid = list(range(0, steps + 1, every))
    rec = sorted(set(grid) | {g + 1 for g in grid})
    with torch_threads(1):
        X, Y, _ = synthetic_task(n, rank, samples, seed=_task_seed(seed))
        gen = make_generator(seed)
        gates = [(torch.rand(n, generator=gen, dtype=torch.float64) < p).double()
                 for _ in range(L - 1)]
        if balanced:
            net = balanced_masked_network([n] * (L + 1), gates, scale=scale, seed=gen)
        else:
            net = FixedGatesNetwork.random([n] * (L + 1), p, seed=gen)

        def cb(ctx: RecordContext) -> dict:
            J = ctx.net.jacobian().detach()
            return {"s": torch.linalg.svdvals(J)[:k],
                    "pred": balanced_singular_value_rates(J, ctx.grad_J, L, k),
                    "flow": flow_singular_value_rates(ctx.net, ctx.grad_J, k),
                    "balance": balance_residuals(ctx.net).max()}

        res = train(net, (X, Y), half_mse, lr=lr, steps=max(rec), record=rec, callback=cb,
                    recorders=[], device="cpu", progress=progress, desc=f"lr {lr:g}")
    h = res.history
    pos = {int(s): i for i, s in enumerate(h["step"])}
    i0 = [pos[g] for g in grid]
    i1 = [pos[g + 1] for g in grid]
    return {"t": np.asarray(grid, dtype=float) * lr, "s": h["s"][i0],
            "measured": (h["s"][i1] - h["s"][i0]) / lr, "pred": h["pred"][i0],
            "flow": h["flow"][i0], "balance": h["balance"][i0], "lr": float(lr)}
