"""Argument checks shared by the modules: clear ``ValueError`` naming the parameter."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["check_int", "check_positive", "check_p", "check_sigma", "check_network", "check_layers"]


def check_int(name: str, value, low: int, high: int | None = None) -> int:
    """``value`` as an int in ``[low, high]`` (``high=None``: no upper bound), else ValueError."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, float) and math.isnan(value):
            raise ValueError(f"{name} must be an integer >= {low}, got NaN")
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        rng = f"[{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be an integer in {rng}, got {value}")
    return value


def check_p(p) -> float:
    """A gate probability in (0, 1] (NaN rejected)."""
    try:
        p = float(p)
    except (TypeError, ValueError):
        raise ValueError(f"p must be a number in (0, 1], got {p!r}") from None
    if not (0.0 < p <= 1.0):  # also rejects NaN
        raise ValueError(f"p must be in (0, 1], got {p}")
    return p


def check_positive(name: str, value) -> float:
    """``value`` as a positive finite float (NaN and inf rejected), else ValueError."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}") from None
    if not (value > 0.0 and math.isfinite(value)):
        raise ValueError(f"{name} must be a positive finite number (> 0), got {value}")
    return value


def check_sigma(sigma, n: int) -> float:
    """A positive finite weight scale; ``None`` means ``1/sqrt(n)``."""
    if sigma is None:
        return 1.0 / math.sqrt(n)
    return check_positive("sigma", sigma)


def check_network(n, L, p, sigma, min_rank) -> tuple[int, int, float, float, int | None]:
    """Validated ``(n, L, p, sigma, min_rank)`` of a gated network (Definitions 5.1, 5.2).

    ``sigma=None`` becomes ``1/sqrt(n)``; ``min_rank`` (or None) must lie in [1, n] and be
    reachable: a rank-``min_rank`` p-gate must have probability at least 1e-9, so that the
    rejection sampler of (r, p)-gates terminates.
    """
    n = check_int("n", n, 1)
    L = check_int("L", L, 1)
    p = check_p(p)
    sigma = check_sigma(sigma, n)
    if min_rank is not None:
        min_rank = check_int("min_rank", min_rank, 1, n)
        from scipy.stats import binom

        prob = float(binom.sf(min_rank - 1, n, p))
        if prob < 1e-9:
            raise ValueError(
                f"min_rank={min_rank} is practically unreachable for n={n}, p={p} "
                f"(P(rank >= min_rank) = {prob:.2e} < 1e-9)")
    return n, L, p, sigma, min_rank


def check_layers(layers) -> tuple[int, int, int]:
    """``(batch, L, n)`` of a stack of square layers [batch, L, n, n], else ValueError."""
    if layers.ndim != 4 or layers.shape[-1] != layers.shape[-2]:
        raise ValueError(f"layers must have shape [batch, L, n, n], got {tuple(layers.shape)}")
    b, L, n, _ = layers.shape
    return b, L, n
