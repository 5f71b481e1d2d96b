"""The tests that decide a claim: each returns a :class:`Decision` (holds / fails / undecidable).

Every test takes the statistic and the number it is compared with, never a precomputed
bool, so that the same test can be applied to the paper's value and to the alternative a
claim rules out (:meth:`fgln.book.claims.Ledger.claim` requires both). Statistical tests account
for the standard error: a value within ``z`` standard errors of the boundary decides
neither way. A non-finite statistic gives a Decision whose ``holds`` is ``None``; the
ledger refuses it, naming the claim.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from scipy.stats import norm

__all__ = ["Decision", "NonFiniteStatistic", "ztest", "closer", "sign_test", "trend", "within",
           "holds", "family_z"]


class NonFiniteStatistic(ValueError):
    """A test was asked to decide on a NaN or infinite statistic."""


@dataclass(frozen=True)
class Decision:
    """Outcome of a test: ``holds`` is True when the tested statement agrees with the numbers,
    False when it does not, None when a statistic was not finite (then ``status`` raises).

    Parameters
    ----------
    test, rule, holds, detail
        The attributes below, in this order.

    Attributes
    ----------
    test : str
        Short name of the test, e.g. ``"z-score"``.
    rule : str
        The rule, stated.
    holds : bool or None
        Outcome; None for a non-finite statistic.
    detail : str
        The numbers that decided it.
    """

    test: str       # short name of the test, e.g. "z-score"
    rule: str       # the rule, stated, e.g. "|ours - paper| <= 3 s.e."
    holds: bool | None
    detail: str     # the numbers that decided it, e.g. "|z| = 1.3"

    @property
    def status(self) -> str:
        """``"reproduced"`` when the statement holds, else ``"differs"``.

        Returns
        -------
        status : str
            ``"reproduced"`` or ``"differs"``.

        Raises
        ------
        NonFiniteStatistic
            If the statistic was not finite (``holds`` is None).
        """
        if self.holds is None:
            raise NonFiniteStatistic(f"{self.test}: {self.detail}")
        return "reproduced" if self.holds else "differs"


def _f(x: float) -> str:
    return f"{x:.4g}"


def _nonfinite(test: str, rule: str, **values) -> Decision | None:
    """A Decision with ``holds=None`` when any of ``values`` is not finite, else None."""
    bad = {k: v for k, v in values.items() if not np.all(np.isfinite(np.asarray(v, dtype=float)))}
    if not bad:
        return None
    return Decision(test, rule, None, "non-finite statistic: " + ", ".join(
        f"{k} = {v}" for k, v in bad.items()))


def family_z(count: int, alpha: float = 0.01) -> float:
    """Two-sided |z| bound for the largest of ``count`` z-scores at family-wise level ``alpha``
    (Bonferroni).

    Parameters
    ----------
    count : int
        Number of z-scores.
    alpha : float
        Family-wise level (default 0.01).

    Returns
    -------
    z : float
        The bound.
    """
    if count < 1 or not 0 < alpha < 1:
        raise ValueError(f"count must be >= 1 and 0 < alpha < 1, got {count}, {alpha}")
    return float(norm.isf(alpha / (2 * count)))


def ztest(value: float, se: float, paper: float, *, zmax: float = 3.0,
          floor: float = 0.0) -> Decision:
    """Holds iff ``|value - paper| <= zmax * se + floor`` (``floor``: an absolute slack stated
    by the chapter, e.g. a known o(1/L) remainder).

    Parameters
    ----------
    value : float
        Our value.
    se : float
        Its standard error.
    paper : float
        The paper's value.
    zmax : float
        Largest accepted z-score (default 3).
    floor : float
        Absolute slack (default 0).

    Returns
    -------
    decision : Decision
        The outcome and the z-score.
    """
    if zmax <= 0 or floor < 0:
        raise ValueError("zmax must be > 0 and floor >= 0")
    rule = f"|ours - paper| <= {zmax:g} s.e." + (f" + {floor:g}" if floor else "")
    bad = _nonfinite("z-score", rule, value=value, se=se, paper=paper)
    if bad:
        return bad
    value, se, paper = float(value), float(se), float(paper)
    if se < 0:
        raise ValueError("se must be >= 0")
    diff = abs(value - paper)
    z = diff / se if se > 0 else math.inf if diff > 0 else 0.0
    return Decision("z-score", rule, diff <= zmax * se + floor,
                    f"ours {_f(value)} ± {_f(se)}, paper {_f(paper)}, |z| = {z:.2f}")


def closer(value: float, *, paper: float, alternative: float, se: float = 0.0, zmin: float = 3.0,
           alternative_name: str = "alternative") -> Decision:
    """Holds iff ``value`` lies on the paper's side of the midpoint between ``paper`` and
    ``alternative`` by at least ``zmin`` standard errors (plain "nearer" when ``se`` is 0).

    Parameters
    ----------
    value : float
        Our value.
    paper : float
        The paper's value.
    alternative : float
        The value it is told apart from.
    se : float
        Standard error of ``value`` (default 0).
    zmin : float
        Required margin in standard errors (default 3).
    alternative_name : str
        How the alternative is named in the detail.

    Returns
    -------
    decision : Decision
        The outcome and the margin.
    """
    rule = f"nearer the paper than {alternative_name}" + (f" by >= {zmin:g} s.e." if se else "")
    bad = _nonfinite("closer", rule, value=value, paper=paper, alternative=alternative, se=se)
    if bad:
        return bad
    value, paper, alternative, se = float(value), float(paper), float(alternative), float(se)
    if paper == alternative:
        raise ValueError("paper and alternative must differ")
    mid = 0.5 * (paper + alternative)
    toward = (value - mid) * math.copysign(1.0, paper - alternative)
    z = toward / se if se > 0 else (math.inf if toward > 0 else -math.inf)
    dp, da = abs(value - paper), abs(value - alternative)
    extra = f" ± {_f(se)}" if se else ""
    return Decision("closer", rule, z >= zmin if se > 0 else toward > 0,
                    f"ours {_f(value)}{extra}; distance to paper {_f(dp)}, to "
                    f"{alternative_name} {_f(da)}"
                    + (f"; z from the midpoint {z:.2f}" if se else ""))


def sign_test(value: float, se: float, *, positive: bool, zmin: float = 3.0) -> Decision:
    """Holds iff ``value`` has the stated sign by at least ``zmin`` standard errors.

    Parameters
    ----------
    value : float
        Our value.
    se : float
        Its standard error.
    positive : bool
        The stated sign.
    zmin : float
        Required margin in standard errors (default 3).

    Returns
    -------
    decision : Decision
        The outcome and the z-score.
    """
    word = "> 0" if positive else "< 0"
    rule = f"ours {word} by >= {zmin:g} s.e."
    bad = _nonfinite("sign", rule, value=value, se=se)
    if bad:
        return bad
    value, se = float(value), float(se)
    signed = value if positive else -value
    z = signed / se if se > 0 else (math.inf if signed > 0 else -math.inf)
    return Decision("sign", rule, z >= zmin, f"ours {_f(value)} ± {_f(se)}, z = {z:.2f}")


def trend(x: Sequence[float], y: Sequence[float], se: Sequence[float] | None = None, *,
          increasing: bool, zmin: float = 3.0) -> Decision:
    """Holds iff the weighted least-squares slope of ``y`` against ``x`` has the stated sign
    by at least ``zmin`` of its standard error (``se``: per-point standard errors; without
    them, the residuals give the slope's standard error).

    Parameters
    ----------
    x : sequence of float
        Abscissae [m].
    y : sequence of float
        Values [m].
    se : sequence of float or None
        Standard errors of ``y`` [m].
    increasing : bool
        The stated sign of the slope.
    zmin : float
        Required margin in standard errors (default 3).

    Returns
    -------
    decision : Decision
        The outcome, slope and z-score.
    """
    word = "increasing" if increasing else "decreasing"
    rule = f"{word}: slope of the stated sign by >= {zmin:g} s.e."
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError("x and y must be 1-d of equal length >= 2")
    bad = _nonfinite("trend", rule, x=x, y=y, se=0.0 if se is None else se)
    if bad:
        return bad
    w = (np.ones_like(y) if se is None
         else 1.0 / np.maximum(np.asarray(se, dtype=float), 1e-300) ** 2)
    xm = np.sum(w * x) / np.sum(w)
    sxx = np.sum(w * (x - xm) ** 2)
    slope = float(np.sum(w * (x - xm) * (y - np.sum(w * y) / np.sum(w))) / sxx)
    if se is None:
        resid = y - (np.sum(y) / y.size + slope * (x - xm))
        slope_se = float(np.sqrt(np.sum(resid ** 2) / max(y.size - 2, 1) / sxx))
    else:
        slope_se = float(np.sqrt(1.0 / sxx))
    signed = slope if increasing else -slope
    z = signed / slope_se if slope_se > 0 else (math.inf if signed > 0 else -math.inf)
    return Decision("trend", rule, z >= zmin, f"slope {_f(slope)} ± {_f(slope_se)}, z = {z:.2f}")


def within(value: float, target: float, tol: float, *, se: float = 0.0, z: float = 2.0,
           relative: bool = False) -> Decision:
    """Holds iff ``|value - target| + z * se <= tol`` (times ``|target|`` when ``relative``):
    the whole ``z``-s.e. interval around ``value`` lies within the tolerance.

    Parameters
    ----------
    value : float
        Our value.
    target : float
        The value it should be near.
    tol : float
        The tolerance.
    se : float
        Standard error of ``value`` (default 0).
    z : float
        Width of the interval in standard errors (default 2).
    relative : bool
        ``tol`` relative to ``|target|``.

    Returns
    -------
    decision : Decision
        The outcome and the distance.
    """
    kind = "relative " if relative else ""
    rule = f"{kind}|ours - target|" + (f" + {z:g} s.e." if se else "") + f" <= {tol:g}"
    bad = _nonfinite("tolerance", rule, value=value, target=target, se=se)
    if bad:
        return bad
    value, target, se = float(value), float(target), float(se)
    if tol < 0 or se < 0:
        raise ValueError("tol and se must be >= 0")
    bound = tol * abs(target) if relative else tol
    diff = abs(value - target)
    return Decision("tolerance", rule, diff + z * se <= bound,
                    f"ours {_f(value)}" + (f" ± {_f(se)}" if se else "")
                    + f", target {_f(target)}, |diff| = {diff:.3g}")


def holds(statistic: float, threshold: float, *, above: bool = False, rule: str,
          detail: str = "") -> Decision:
    """A test stated in words: holds iff ``statistic <= threshold`` (``>=`` when ``above``).

    Parameters
    ----------
    statistic : float
        The measured statistic.
    threshold : float
        Its threshold.
    above : bool
        Holds when the statistic is at least the threshold.
    rule : str
        The rule, in words.
    detail : str
        Extra detail shown with the numbers.

    Returns
    -------
    decision : Decision
        The outcome.
    """
    op = ">=" if above else "<="
    full_rule = f"{rule} (statistic {op} threshold)"
    bad = _nonfinite("check", full_rule, statistic=statistic, threshold=threshold)
    if bad:
        return bad
    s, t = float(statistic), float(threshold)
    ok = s >= t if above else s <= t
    return Decision("check", full_rule, ok,
                    (detail + "; " if detail else "") + f"statistic {_f(s)} {op} {_f(t)}: {ok}")
