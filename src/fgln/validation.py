"""Argument checks shared by the modules: clear ``ValueError`` naming the parameter."""
from __future__ import annotations

import math

import numpy as np

__all__ = ["check_int", "check_p", "check_sigma"]


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


def check_sigma(sigma, n: int) -> float:
    """A positive finite weight scale; ``None`` means ``1/sqrt(n)``."""
    if sigma is None:
        return 1.0 / math.sqrt(n)
    try:
        sigma = float(sigma)
    except (TypeError, ValueError):
        raise ValueError(f"sigma must be a positive finite number, got {sigma!r}") from None
    if not (sigma > 0.0 and math.isfinite(sigma)):
        raise ValueError(f"sigma must be a positive finite number (> 0), got {sigma}")
    return sigma
