"""Appendix G.1: the scalar process ``s(t+1) = s(t) + C s(t)^{2-2/L} g(t)``, its constant
``C`` (fitted by least squares, :func:`fit_g1_constant`, or taken from Proposition 7.1,
:func:`theory_constant`), the process over replicates and its distance to the measured curve
(:func:`g1_processes`, :func:`relative_rms`), and summaries of a recorded run
(:func:`growth_phase_ratio`, over replicates :func:`growth_phase_ratios`, :func:`rise_times`).
"""
from __future__ import annotations

import math

import numpy as np

from ..base.validation import check_int, check_positive, check_series

__all__ = [
    "g1_process",
    "g1_processes",
    "fit_g1_constant",
    "fit_g1_exponent",
    "theory_constant",
    "relative_rms",
    "growth_phase_ratio",
    "growth_phase_ratios",
    "rise_times",
]



def g1_process(s0: float, g, steps, C, L: int, every_step: bool = False,
               exponent: float | None = None) -> np.ndarray:
    """Appendix G.1: ``s(t+1) = s(t) + C s(t)^{2-2/L} g(t)``, ``t`` counting gradient steps
    (or another exponent in place of ``2 - 2/L``, for the competing laws).

    ``g`` (and ``C``, a number or one value per record) are given at the recorded ``steps``.
    With ``every_step`` the recursion runs over every gradient step between the records, ``g``
    and ``C`` interpolated linearly, as in the paper; otherwise each interval between records
    is one Euler step ``s_{i+1} = s_i + C_i (t_{i+1} - t_i) s_i^{2-2/L} g_i`` (the same when the
    records are one step apart).

    Parameters
    ----------
    s0 : float
        Start value ``s(0) > 0``.
    g : array_like
        The driving ``g(t)`` at the records [R].
    steps : array_like
        The recorded gradient steps [R], strictly increasing.
    C : float or array_like
        The constant, one number or one value per record [R].
    L : int
        Depth, ``>= 1`` (the exponent ``2 - 2/L``).
    every_step : bool
        Run the recursion over every gradient step (``g``, ``C`` interpolated) instead of one
        Euler step per record interval.
    exponent : float or None
        The exponent of ``s`` (default ``2 - 2/L``).

    Returns
    -------
    numpy.ndarray
        ``s`` at the records [R] (``inf`` after an overflow).
    """
    L = check_int("L", L, 1)
    t = check_series("steps", steps)
    g = check_series("g", g, t.shape[0])
    if np.any(np.diff(t) <= 0):
        raise ValueError("steps must be strictly increasing")
    C = np.broadcast_to(np.asarray(C, dtype=float), t.shape)
    if not (float(s0) > 0):
        raise ValueError(f"s0 must be > 0, got {s0}")
    p = _exponent(L, exponent)
    if every_step:
        if np.any(t != np.round(t)):
            raise ValueError("every_step needs integer steps")
        grid = np.arange(t[0], t[-1] + 1.0)
        gg = (np.interp(grid, t, g) * np.interp(grid, t, C))[:-1].tolist()
        # the recursion on Python floats: the same IEEE arithmetic as on numpy scalars, at a
        # fifth of the cost per step (a power past the float range raises instead of giving
        # inf: the process has overflowed)
        x, out, finite = float(s0), [float(s0)], math.isfinite
        for gj in gg:
            try:
                x = x + gj * (x if x > 0.0 else 0.0) ** p
            except OverflowError:
                break
            if not finite(x) or abs(x) > 1e150:
                break
            out.append(x)
        traj = np.full(grid.shape, np.inf)
        traj[:len(out)] = out
        return traj[(t - t[0]).astype(int)]
    s = [float(s0)]
    for dt, c, gi in zip(np.diff(t).tolist(), C[:-1].tolist(), g[:-1].tolist()):
        x = s[-1]
        try:
            nxt = x + c * dt * (x if x > 0.0 else 0.0) ** p * gi
        except OverflowError:
            nxt = math.inf
        s.append(nxt if math.isfinite(nxt) else math.inf)
    return np.asarray(s)


def _exponent(L: int, exponent: float | None) -> float:
    """The exponent of the process: ``2 - 2/L``, or the finite ``exponent`` given."""
    if exponent is None:
        return 2.0 - 2.0 / L
    exponent = float(exponent)
    if not math.isfinite(exponent):
        raise ValueError(f"exponent must be finite, got {exponent}")
    return exponent


def g1_processes(s0, g, steps, C, L: int, every_step: bool = False,
                 exponent: float | None = None) -> np.ndarray:
    """:func:`g1_process` for each replicate, from its own start, driven by its own ``g``.

    Parameters
    ----------
    s0 : array_like
        Start values [replicates], each > 0.
    g : array_like
        The driving ``g(t)`` at the records [replicates, R].
    steps : array_like
        The recorded gradient steps [R], strictly increasing (shared by the replicates).
    C : float or array_like
        The constant: one number for all, one per replicate [replicates], or one per
        replicate and record [replicates, R].
    L : int
        Depth, ``>= 1`` (the exponent ``2 - 2/L``).
    every_step : bool
        Run the recursion over every gradient step between the records (as in the paper).
    exponent : float or None
        The exponent of ``s`` (default ``2 - 2/L``).

    Returns
    -------
    numpy.ndarray
        ``s`` at the records [replicates, R], ``inf`` from where a replicate's process
        overflows (without a floating-point warning: a diverging open-loop process is a
        result, not an error).
    """
    g = np.asarray(g, dtype=float)
    s0 = np.asarray(s0, dtype=float)
    if g.ndim != 2:
        raise ValueError(f"g must be [replicates, R], got shape {g.shape}")
    if s0.shape != g.shape[:1]:
        raise ValueError(f"s0 must be [replicates] = {g.shape[:1]}, got shape {s0.shape}")
    C = np.asarray(C, dtype=float)
    reps = g.shape[0]
    if C.ndim == 0:
        per_replicate = [C] * reps
    elif C.shape in ((reps,), g.shape):
        per_replicate = list(C)
    else:
        raise ValueError(f"C must be a number, [replicates] or [replicates, R] = {g.shape}, "
                         f"got shape {C.shape}")
    with np.errstate(over="ignore", invalid="ignore"):
        return np.stack([g1_process(s0[i], g[i], steps, per_replicate[i], L, every_step,
                                    exponent) for i in range(reps)])


def fit_g1_constant(s, g, steps, L: int, every_step: bool = False,
                    exponent: float | None = None) -> float:
    """``C`` minimising ``sum_i (g1_process(s[0], g, steps, C, L, every_step)_i - s_i)^2``
    (Appendix G.1's least-squares fit of the scaling factor). The search starts from the
    increment fit ``Delta s_i ~ C Delta t_i s_i^{2-2/L} g_i`` and refines it by a bounded scalar
    search.

    Parameters
    ----------
    s : array_like
        The measured ``s(t)`` at the records [R] (its first entry starts the process).
    g : array_like
        The driving ``g(t)`` at the records [R].
    steps : array_like
        The recorded gradient steps [R], strictly increasing.
    L : int
        Depth, ``>= 1``.
    every_step : bool
        As in :func:`g1_process`.
    exponent : float or None
        The exponent of ``s`` (default ``2 - 2/L``).

    Returns
    -------
    float
        The fitted ``C``.

    Raises
    ------
    ValueError
        When ``g`` vanishes along the whole run (``C`` is then not identifiable).
    """
    from scipy.optimize import minimize_scalar

    L = check_int("L", L, 1)
    t = check_series("steps", steps)
    s = check_series("s", s, t.shape[0])
    g = check_series("g", g, t.shape[0])
    p = _exponent(L, exponent)
    x = np.diff(t) * s[:-1] ** p * g[:-1]
    dy = np.diff(s)
    if not np.any(x != 0):
        raise ValueError("g is zero along the whole run: C is not identifiable")
    c0 = float(np.dot(x, dy) / np.dot(x, x))
    if c0 == 0:
        c0 = 1e-12

    def loss(logc: float) -> float:
        with np.errstate(over="ignore", invalid="ignore"):
            pred = g1_process(s[0], g, t, math.copysign(math.exp(logc), c0), L, every_step, p)
        if not np.all(np.isfinite(pred)):
            return float("inf")
        return float(np.sum((pred - s) ** 2))

    center = math.log(abs(c0))
    # where the process diverges the loss is inf, and the optimiser's parabolic step then
    # meets inf - inf: it falls back to golden-section steps, nothing to warn the reader about
    with np.errstate(invalid="ignore"):
        res = minimize_scalar(loss, bounds=(center - 3.0, center + 3.0), method="bounded",
                              options={"xatol": 1e-10})
    best = res.x if loss(res.x) <= loss(center) else center
    return math.copysign(math.exp(best), c0)


def fit_g1_exponent(s, g, steps, L: int, every_step: bool = False,
                    bounds: tuple[float, float] = (0.0, 3.5)) -> tuple[float, float]:
    """The exponent ``a`` and constant ``C`` of ``s(t+1) = s(t) + C s(t)^a g(t)`` that fit the
    measured ``s`` best (least squares over the records, as :func:`fit_g1_constant`): for each
    ``a`` the best ``C``, then a bounded search over ``a``.

    The exponent of the paper's process is ``2 - 2/L``; the fitted one tells which law's shape
    the measured curve has, with the constant left free for every law alike.

    Parameters
    ----------
    s, g : array_like
        The measured ``s(t)`` and the driving ``g(t)`` at the records [R].
    steps : array_like
        The recorded gradient steps [R], strictly increasing.
    L : int
        Depth, ``>= 1`` (only checked; the exponent is free).
    every_step : bool
        As in :func:`g1_process`.
    bounds : tuple of float
        Search interval of ``a``.

    Returns
    -------
    a : float
        The fitted exponent.
    C : float
        The constant fitted with it.
    """
    from scipy.optimize import minimize_scalar

    L = check_int("L", L, 1)
    t = check_series("steps", steps)
    s = check_series("s", s, t.shape[0])
    g = check_series("g", g, t.shape[0])
    lo, hi = (float(b) for b in bounds)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"bounds must be finite with lo < hi, got {bounds}")

    def sse(a: float) -> tuple[float, float]:
        C = fit_g1_constant(s, g, t, L, every_step, exponent=a)
        with np.errstate(over="ignore", invalid="ignore"):
            pred = g1_process(s[0], g, t, C, L, every_step, a)
        err = float(np.sum((pred - s) ** 2)) if np.all(np.isfinite(pred)) else float("inf")
        return err, C

    with np.errstate(invalid="ignore"):
        res = minimize_scalar(lambda a: sse(a)[0], bounds=(lo, hi), method="bounded",
                              options={"xatol": 1e-4})
    a = float(res.x)
    return a, sse(a)[1]


def theory_constant(lr: float, L: int, delta) -> np.ndarray:
    """The ``C`` Proposition 7.1 gives per gradient step: ``-lr L e^{(2+2/L) delta_1(t)}``.

    Parameters
    ----------
    lr : float
        The gradient step (> 0).
    L : int
        Depth, ``>= 1``.
    delta : array_like
        The measured ``delta_1`` along training (any shape).

    Returns
    -------
    numpy.ndarray
        ``C``, one value per entry of ``delta`` (its shape).
    """
    L = check_int("L", L, 1)
    lr = check_positive("lr", lr)
    delta = np.asarray(delta, dtype=float)
    return -lr * L * np.exp((2.0 + 2.0 / L) * delta)


def relative_rms(predicted, measured, bound: float = 10.0) -> np.ndarray:
    """RMS distance of each replicate's predicted curve to its measured one, over the range of
    the measured curve; ``inf`` where the prediction diverges.

    Parameters
    ----------
    predicted : array_like
        Predicted curves [replicates, R] (e.g. :func:`g1_processes`); may hold ``inf``.
    measured : array_like
        Measured curves [replicates, R], finite.
    bound : float
        A prediction counts as diverging where it is not finite or leaves
        ``[-bound, bound] * max_t measured`` of its replicate.

    Returns
    -------
    numpy.ndarray
        ``sqrt(mean_t (predicted - measured)^2) / (max_t measured - min_t measured)``
        [replicates], ``inf`` for a diverging prediction.
    """
    pred = np.asarray(predicted, dtype=float)
    meas = np.asarray(measured, dtype=float)
    if meas.ndim != 2 or pred.shape != meas.shape:
        raise ValueError(f"predicted and measured must be [replicates, R] of one shape, got "
                         f"{pred.shape} and {meas.shape}")
    if not np.all(np.isfinite(meas)):
        raise ValueError("measured has non-finite entries")
    bound = check_positive("bound", bound)
    span = meas.max(1) - meas.min(1)
    with np.errstate(invalid="ignore", over="ignore"):
        out = np.sqrt(np.mean((pred - meas) ** 2, 1)) / span
        bad = ~np.isfinite(pred) | (np.abs(pred) > bound * meas.max(1, keepdims=True))
    return np.where(bad.any(1), np.inf, out)


# --------------------------------------------------------------------------------------
# summaries of a recorded run
# --------------------------------------------------------------------------------------


def growth_phase_ratio(t, predicted, measured, frac: float = 0.2) -> np.ndarray:
    """Predicted over measured increase of each ``s_k`` during its growth phase.

    ``t`` [R], ``predicted`` and ``measured`` [R, k] (rates ``ds_k/dt``). The growth phase of
    mode k is the set of records where ``measured >= frac * max_t measured`` (NaN if the mode
    never grows).

    Parameters
    ----------
    t : array_like
        Record times [R].
    predicted, measured : array_like
        Predicted and measured rates ``ds_k/dt`` [R, k].
    frac : float
        Threshold of the growth phase as a fraction of the largest measured rate, in (0, 1).

    Returns
    -------
    numpy.ndarray
        ``sum_i w_i pred_ik / sum_i w_i meas_ik`` over each mode's growth phase, ``w`` the local
        spacing of ``t`` [k] (NaN for a mode that never grows).
    """
    t = check_series("t", t)
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


def growth_phase_ratios(t, predicted, measured, frac: float = 0.2) -> np.ndarray:
    """:func:`growth_phase_ratio` of each replicate.

    Parameters
    ----------
    t : array_like
        Record times [R], shared by the replicates.
    predicted, measured : array_like
        Rates ``ds_k/dt`` [replicates, R, k], predicted and measured.
    frac : float
        The growth phase of a mode: where its measured rate is at least ``frac`` of its peak.

    Returns
    -------
    numpy.ndarray
        Predicted over measured increase over each mode's growth phase [replicates, k] (NaN
        for a mode that never grows).
    """
    pred = np.asarray(predicted, dtype=float)
    meas = np.asarray(measured, dtype=float)
    if pred.ndim != 3 or pred.shape != meas.shape:
        raise ValueError(f"predicted and measured must be [replicates, R, k] of one shape, got "
                         f"{pred.shape} and {meas.shape}")
    return np.stack([growth_phase_ratio(t, pred[i], meas[i], frac)
                     for i in range(pred.shape[0])])


def rise_times(t, s, level: float = 0.5) -> np.ndarray:
    """First time each ``s_k`` has covered ``level`` of its way from its initial to its final
    value.

    Parameters
    ----------
    t : array_like
        Record times [R].
    s : array_like
        The singular values at the records [R, k].
    level : float
        Fraction of the way from ``s_k(0)`` to ``s_k(T)``.

    Returns
    -------
    numpy.ndarray
        The first record time reaching that level [k] (NaN where ``s_k`` moves by 10% or less).
    """
    t = check_series("t", t)
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
