"""The tests that decide a claim: a confidence interval against a region.

Every test in this module has the same shape. A *statistic* (one value or a vector of values,
with standard errors over ``replicates`` independent seeds, networks or chains) gives a
two-sided confidence interval ``value ± q·se``; the claim names a *region* in which the
statement puts the statistic (an interval ``target ± margin``, a half-line ``> 0``, ...).
The test:

* **holds** when every interval lies inside its region,
* **fails** when some interval lies wholly outside its region,
* is **inconclusive** (``holds is None``) otherwise: the interval straddles the boundary,
  so the numbers cannot tell.

"Equal to X" is therefore decided by equivalence within a stated margin (two one-sided
tests, Schuirmann 1987), never by failing to reject: a larger standard error makes the
verdict *inconclusive*, not easier to pass. The claim and the alternative it rules out are
decided by the **same statistic** against different regions (:meth:`fgln.book.claims.Ledger.claim`
checks the fingerprint), and :meth:`Decision.at` re-decides a test as if the statistic sat at
another value with the same interval, which is how the ledger checks that a claim could
have come out the other way (its *resolution*).

One convention for the whole book (:data:`ALPHA`): family-wise level 5 %, two-sided
intervals, Student-t quantiles with ``replicates - 1`` degrees of freedom (normal quantiles
only for statistics that are not means over replicates, ``replicates=None``), Bonferroni over
the entries of a vector statistic. Margins are stated with their origin (the paper's printed
precision, half the distance to the nearest competing prediction, a physical scale) and are
never derived from the measured value. Non-finite inputs are refused by name: the Decision
carries the error and the ledger raises, naming the claim.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass, field, replace
from typing import Sequence

import numpy as np
from scipy.stats import norm
from scipy.stats import t as student_t

from ..base.statistics import fit_slopes

__all__ = ["ALPHA", "LEDGER_ENTRIES", "Decision", "NonFiniteStatistic", "quantile", "family_quantile",
           "equivalence", "sign_test", "region_test", "trend", "exact", "per_replicate_slopes",
           "fmt_number"]

#: Family-wise level of every claim in the book (two-sided).
ALPHA = 0.05

#: Entries of a decision that its ledger record lists: all of them up to this many, else
#: this many, those nearest their region's boundary or furthest outside it
#: (:meth:`Decision.as_dict`).
LEDGER_ENTRIES = 64


class NonFiniteStatistic(ValueError):
    """A test was asked to decide on a NaN or infinite statistic or threshold."""


def fmt_number(x: float | None, digits: int = 3) -> str:
    """A number with ``digits`` significant digits, scientific with 3 below 1e-3 (never '0.00'
    for a small nonzero value); ``'-'`` for None.

    Parameters
    ----------
    x : float or None
        The number.
    digits : int
        Significant digits (default 3).

    Returns
    -------
    text : str
        The formatted number.
    """
    if x is None:
        return "-"
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    return f"{x:.{digits}g}" if abs(x) >= 1e-3 else f"{x:.2e}"


def _f(x: float) -> str:
    return fmt_number(x, 4)


def quantile(replicates: int | None, *, family: int = 1, alpha: float = ALPHA) -> tuple[float, str]:
    """Two-sided quantile of a confidence interval at family-wise level ``alpha`` over
    ``family`` entries (Bonferroni): Student t with ``replicates - 1`` degrees of freedom, or
    the normal quantile when ``replicates`` is None.

    Parameters
    ----------
    replicates : int or None
        Number of independent replicates behind each standard error (>= 2), or None for a
        statistic that is not a mean over replicates (an asymptotic standard error).
    family : int
        Number of intervals decided together (default 1).
    alpha : float
        Family-wise level (default :data:`ALPHA`).

    Returns
    -------
    q : float
        The quantile.
    label : str
        How it was obtained, e.g. ``"t(7) 97.5%"``.

    Raises
    ------
    ValueError
        If ``replicates < 2``, ``family < 1`` or ``alpha`` is not in (0, 1).
    """
    if family < 1 or not 0 < alpha < 1:
        raise ValueError(f"family must be >= 1 and 0 < alpha < 1, got {family}, {alpha}")
    level = 1 - alpha / (2 * family)
    pct = f"{100 * level:.4g}%"
    if replicates is None:
        return float(norm.ppf(level)), f"normal {pct}"
    if int(replicates) != replicates or replicates < 2:
        raise ValueError(f"replicates must be an integer >= 2, got {replicates}")
    df = int(replicates) - 1
    return float(student_t.ppf(level, df)), f"t({df}) {pct}"


def family_quantile(count: int, replicates: int | None = None, alpha: float = ALPHA) -> float:
    """The quantile :func:`quantile` gives to each of ``count`` intervals decided together.

    Parameters
    ----------
    count : int
        Number of intervals.
    replicates : int or None
        Replicates behind each standard error (None: normal quantile).
    alpha : float
        Family-wise level (default :data:`ALPHA`).

    Returns
    -------
    q : float
        The quantile.
    """
    return quantile(replicates, family=count, alpha=alpha)[0]


def _fingerprint(value: np.ndarray, se: np.ndarray) -> str:
    """A short hash of the statistic (values and standard errors, to 12 significant digits)."""
    text = ",".join(f"{v:.12g}" for v in np.concatenate([value.ravel(), se.ravel()]))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _finite(name: str, **arrays) -> str:
    bad = [k for k, v in arrays.items()
           if v is not None and not np.all(np.isfinite(np.asarray(v, dtype=float)))]
    return f"{name}: non-finite " + ", ".join(bad) if bad else ""


@dataclass(frozen=True)
class Decision:
    """Outcome of a test: a statistic's confidence interval against a region.

    Parameters
    ----------
    test, rule, holds, detail, statistic, region, value, half_width, lo, hi, margin, \
margin_origin, replicates, quantile, error
        The attributes below, in this order (built by the tests of this module).

    Attributes
    ----------
    test : str
        Short name of the test (``"equivalence"``, ``"sign"``, ``"trend"``, ``"exact"``).
    rule : str
        The rule, stated (region, margin and its origin, quantile).
    holds : bool or None
        True: every interval lies in its region; False: some interval lies wholly outside
        it; None: inconclusive.
    detail : str
        The numbers that decided it.
    statistic : str
        Fingerprint of the statistic (values and standard errors): a claim and its
        alternative must share it.
    region : str
        The region, in words (e.g. ``"within 0.0147 of 0.3465"``).
    value, half_width, lo, hi : tuple of float
        Per entry: the statistic, the interval's half-width ``q·se``, the region's bounds
        (``-inf`` / ``inf`` for half-lines).
    margin : float or None
        Half-width of the region of an equivalence test (None for half-lines).
    margin_origin : str
        Where the margin comes from.
    replicates : int or None
        Replicates behind each standard error.
    quantile : str
        The quantile used (e.g. ``"t(7) 97.5%"``; ``"exact"`` without standard error).
    error : str
        Non-empty when an input was not finite; then :attr:`status` raises.
    """

    test: str
    rule: str
    holds: bool | None
    detail: str
    statistic: str = ""
    region: str = ""
    value: tuple[float, ...] = ()
    half_width: tuple[float, ...] = ()
    lo: tuple[float, ...] = ()
    hi: tuple[float, ...] = ()
    margin: float | None = None
    margin_origin: str = ""
    replicates: int | None = None
    quantile: str = ""
    error: str = field(default="")

    @property
    def outcome(self) -> str:
        """The test's outcome in words.

        Returns
        -------
        outcome : str
            ``"holds"``, ``"fails"`` or ``"inconclusive"``.

        Raises
        ------
        NonFiniteStatistic
            If an input was not finite.
        """
        if self.error:
            raise NonFiniteStatistic(self.error)
        return {True: "holds", False: "fails", None: "inconclusive"}[self.holds]

    @property
    def status(self) -> str:
        """The outcome as a claim status.

        Returns
        -------
        status : str
            ``"reproduced"`` when the statement holds, ``"differs"`` when it fails,
            ``"inconclusive"`` otherwise.

        Raises
        ------
        NonFiniteStatistic
            If an input was not finite.
        """
        return {"holds": "reproduced", "fails": "differs"}.get(self.outcome, "inconclusive")

    @property
    def resolution(self) -> float:
        """The smallest deviation from the region's centre that the test can detect.

        Returns
        -------
        resolution : float
            The margin plus the interval's half-width (the largest over entries); for a
            half-line, the half-width.
        """
        h = max(self.half_width) if self.half_width else 0.0
        return (self.margin or 0.0) + h

    def at(self, value: Sequence[float] | float) -> bool | None:
        """The outcome this test would give if the statistic sat at ``value`` with the same
        intervals (used to check that a claim could have come out the other way).

        Parameters
        ----------
        value : float or sequence of float
            Hypothetical statistic, one value per entry (a scalar is broadcast).

        Returns
        -------
        holds : bool or None
            As :attr:`!holds`.
        """
        v = np.broadcast_to(np.asarray(value, dtype=float), (len(self.lo),))
        return _decide(v, np.asarray(self.half_width), np.asarray(self.lo), np.asarray(self.hi))

    def decisive_entries(self, count: int = LEDGER_ENTRIES) -> list[int]:
        """The entries whose intervals lie nearest their region's boundary, or furthest
        outside it: those that decide the outcome.

        Parameters
        ----------
        count : int
            How many (all entries when there are no more than ``count``).

        Returns
        -------
        indices : list of int
            Entry indices, the smallest slack first (slack: the distance from the interval
            to the nearer bound of the region, negative where the interval leaves it).
        """
        v, h = np.asarray(self.value, dtype=float), np.asarray(self.half_width, dtype=float)
        with np.errstate(invalid="ignore"):
            slack = np.minimum(v - h - np.asarray(self.lo, dtype=float),
                               np.asarray(self.hi, dtype=float) - (v + h))
        return [int(i) for i in np.argsort(slack, kind="stable")[:count]]

    def as_dict(self) -> dict:
        """Plain values for the JSON ledger.

        The per-entry vectors (``value``, ``half_width``, ``lo``, ``hi``) list every entry
        when there are at most :data:`LEDGER_ENTRIES`; otherwise the
        :meth:`decisive_entries`, whose indices ``listed`` gives (None: all, in order).
        ``entries`` is the number of entries.

        Returns
        -------
        decision : dict
            Field name to value (infinite bounds as the strings ``"inf"`` / ``"-inf"``),
            with ``outcome``, ``resolution``, ``entries`` and ``listed`` added.
        """
        def enc(xs):
            return [x if math.isfinite(x) else ("inf" if x > 0 else "-inf") for x in xs]
        n = len(self.value)
        listed = self.decisive_entries() if n > LEDGER_ENTRIES else None
        rows = range(n) if listed is None else listed

        def pick(xs):
            return [float(xs[i]) for i in rows]
        return dict(test=self.test, rule=self.rule, holds=self.holds, outcome=self.outcome,
                    detail=self.detail, statistic=self.statistic, region=self.region,
                    entries=n, listed=listed, value=pick(self.value),
                    half_width=pick(self.half_width), lo=enc(pick(self.lo)),
                    hi=enc(pick(self.hi)), margin=self.margin,
                    margin_origin=self.margin_origin, replicates=self.replicates,
                    quantile=self.quantile, resolution=self.resolution)


def _decide(v: np.ndarray, h: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> bool | None:
    inside = (v - h >= lo) & (v + h <= hi)
    outside = (v + h < lo) | (v - h > hi)
    if inside.all():
        return True
    if outside.any():
        return False
    return None


def _arrays(value, se, *more):
    arrs = [np.atleast_1d(np.asarray(x, dtype=float)) for x in (value, se, *more)]
    shape = np.broadcast_shapes(*(a.shape for a in arrs))
    return [np.broadcast_to(a, shape).ravel() for a in arrs]


def region_test(value, se, lo, hi, *, replicates: int | None, test: str, region: str,
                margin: float | None = None, margin_origin: str = "",
                alpha: float = ALPHA) -> Decision:
    """The general test: interval ``value ± q·se`` against the region ``[lo, hi]`` per entry.

    Parameters
    ----------
    value, se : float or array_like
        The statistic and its standard errors (broadcast together) [m].
    lo, hi : float or array_like
        The region per entry (``-inf`` / ``inf`` allowed) [m].
    replicates : int or None
        Replicates behind each standard error (None: normal quantile; ignored when every
        standard error is 0).
    test : str
        Name of the test.
    region : str
        The region, in words.
    margin : float or None
        Half-width of the region, for an equivalence test.
    margin_origin : str
        Where the margin comes from.
    alpha : float
        Family-wise level (default :data:`ALPHA`), Bonferroni over the m entries.

    Returns
    -------
    decision : Decision
        The outcome; ``error`` set (and ``holds`` None) if an input is not finite.

    Raises
    ------
    ValueError
        If a standard error is negative or a region is empty.
    """
    err = _finite(test, value=value, se=se)
    for name, b in (("lo", lo), ("hi", hi)):
        if np.any(np.isnan(np.asarray(b, dtype=float))):
            err = err or f"{test}: non-finite {name}"
    if margin is not None and not math.isfinite(margin):
        err = err or f"{test}: non-finite margin"
    if err:
        return Decision(test, region, None, err, error=err)
    v, s, a, b = _arrays(value, se, lo, hi)
    if np.any(s < 0):
        raise ValueError(f"{test}: standard errors must be >= 0")
    if np.any(a > b):
        raise ValueError(f"{test}: empty region (lo > hi)")
    exact_only = not np.any(s > 0)
    if exact_only:
        q, qlabel = 0.0, "exact"
    else:
        q, qlabel = quantile(replicates, family=v.size, alpha=alpha)
    h = q * s
    holds = _decide(v, h, a, b)
    rule = f"{region}; interval ± {qlabel} quantile × s.e." if not exact_only else region
    if v.size == 1:
        detail = f"ours {_f(v[0])}" + (f" ± {_f(h[0])} ({qlabel})" if not exact_only else "")
    else:
        k = int(np.argmax(np.maximum(a - (v - h), (v + h) - b)))
        detail = (f"{v.size} entries; worst entry {k + 1}: {_f(v[k])}"
                  + (f" ± {_f(h[k])} ({qlabel})" if not exact_only else "")
                  + f" against [{_f(a[k])}, {_f(b[k])}]")
    detail += {True: ": inside", False: ": outside", None: ": straddles the boundary"}[holds]
    return Decision(test=test, rule=rule, holds=holds, detail=detail,
                    statistic=_fingerprint(v, s), region=region,
                    value=tuple(map(float, v)), half_width=tuple(map(float, h)),
                    lo=tuple(map(float, a)), hi=tuple(map(float, b)), margin=margin,
                    margin_origin=margin_origin,
                    replicates=None if exact_only else replicates, quantile=qlabel)


def equivalence(value, se, target, margin: float, *, replicates: int | None,
                origin: str, target_se=0.0, alpha: float = ALPHA) -> Decision:
    """"Ours equals ``target``" within ``± margin``, by the confidence interval (TOST).

    Holds when every interval ``value ± q·sqrt(se² + target_se²)`` lies inside
    ``target ± margin``, fails when one lies wholly outside, inconclusive otherwise.

    Parameters
    ----------
    value, se : float or array_like
        The statistic and its standard errors [m].
    target : float or array_like
        The value (per entry) the statement puts it at [m].
    margin : float
        Half-width of the equivalence region (> 0; stated, never from the data).
    replicates : int or None
        Replicates behind ``se`` (Student t with ``replicates - 1`` degrees of freedom).
    origin : str
        Where the margin comes from (shown on the page).
    target_se : float or array_like
        Standard error of the target itself, when it is estimated (default 0).
    alpha : float
        Family-wise level (default :data:`ALPHA`).

    Returns
    -------
    decision : Decision
        The outcome.

    Raises
    ------
    ValueError
        If ``margin <= 0`` or ``origin`` is blank.
    """
    if math.isfinite(margin) and margin <= 0:
        raise ValueError("equivalence: margin must be > 0")
    if not origin.strip():
        raise ValueError("equivalence: state where the margin comes from")
    err = _finite("equivalence", target=target, target_se=target_se, margin=margin)
    if err:
        return Decision("equivalence", "", None, err, error=err)
    v, s, t, ts = _arrays(value, se, target, target_se)
    if np.any(s < 0) or np.any(ts < 0):
        raise ValueError("equivalence: standard errors must be >= 0")
    s_tot = np.sqrt(s ** 2 + ts ** 2)
    tgt = f"{_f(t[0])}" if np.all(t == t[0]) else "the target per entry"
    return region_test(v, s_tot, t - margin, t + margin, replicates=replicates,
                       test="equivalence", region=f"within {_f(margin)} of {tgt}",
                       margin=float(margin), margin_origin=origin, alpha=alpha)


def sign_test(value, se, *, positive: bool, replicates: int | None,
              alpha: float = ALPHA) -> Decision:
    """The statistic has the stated sign: every interval above 0 (``positive``) or below 0.

    Parameters
    ----------
    value, se : float or array_like
        The statistic and its standard errors [m].
    positive : bool
        The stated sign.
    replicates : int or None
        Replicates behind ``se``.
    alpha : float
        Family-wise level (default :data:`ALPHA`).

    Returns
    -------
    decision : Decision
        Holds when every interval excludes 0 on the stated side, fails when one lies on the
        other side, inconclusive otherwise.
    """
    lo, hi = (0.0, math.inf) if positive else (-math.inf, 0.0)
    return region_test(value, se, lo, hi, replicates=replicates, test="sign",
                       region="> 0" if positive else "< 0", alpha=alpha)


def per_replicate_slopes(x, Y) -> np.ndarray:
    """Least-squares slope of each replicate's curve: x [m], Y [replicates, m] -> [replicates].

    Parameters
    ----------
    x : array_like
        Abscissae [m], at least 3 distinct values.
    Y : array_like
        One curve per replicate [replicates, m].

    Returns
    -------
    slopes : numpy.ndarray
        [replicates].

    Raises
    ------
    ValueError
        If fewer than 3 points, x constant, or shapes disagree.
    NonFiniteStatistic
        If x or Y has a non-finite entry.
    """
    x = np.asarray(x, dtype=float)
    Y = np.asarray(Y, dtype=float)
    if x.ndim != 1 or Y.ndim != 2 or Y.shape[1] != x.size:
        raise ValueError(f"x must be [m] and Y [replicates, m], got {x.shape} and {Y.shape}")
    if x.size < 3:
        raise ValueError("a trend needs at least 3 points")
    if np.ptp(x) == 0:
        raise ValueError("a trend needs x that is not constant")
    if not (np.all(np.isfinite(x)) and np.all(np.isfinite(Y))):
        raise NonFiniteStatistic("per_replicate_slopes: non-finite x or Y")
    return fit_slopes(x, Y.T)[0]


def trend(x, Y, *, target: float | None = None, margin: float | None = None,
          origin: str = "", increasing: bool | None = None, alpha: float = ALPHA) -> Decision:
    """A trend of curves that share their replicates across x (the same chains at every
    depth): one least-squares slope per replicate, then the interval of their mean (Student
    t over the replicates), against either a stated slope (``target ± margin``) or a sign.

    Parameters
    ----------
    x : array_like
        Abscissae [m], at least 3 distinct values.
    Y : array_like
        One curve per replicate [replicates, m], replicates >= 2.
    target, margin, origin : float, float, str
        Equivalence with a stated slope (all three, or none).
    increasing : bool or None
        Otherwise: the stated sign of the slope.
    alpha : float
        Family-wise level (default :data:`ALPHA`).

    Returns
    -------
    decision : Decision
        ``test`` is ``"trend"``.

    Raises
    ------
    ValueError
        If fewer than 3 points or 2 replicates, x constant, the slopes' spread is 0, or
        neither (or both) of ``target`` and ``increasing`` is given.
    """
    slopes = per_replicate_slopes(x, Y)
    if slopes.size < 2:
        raise ValueError("a trend needs at least 2 replicates")
    m, sd = float(slopes.mean()), float(slopes.std(ddof=1))
    if sd == 0:
        raise ValueError("trend: the per-replicate slopes have zero spread (no standard error)")
    se = sd / math.sqrt(slopes.size)
    if (target is None) == (increasing is None):
        raise ValueError("trend: give either target (with margin and origin) or increasing")
    if target is not None:
        if margin is None:
            raise ValueError("trend: a target needs a margin")
        d = equivalence(m, se, target, margin, replicates=slopes.size, origin=origin, alpha=alpha)
        region = f"slope {d.region}"
    else:
        d = sign_test(m, se, positive=bool(increasing), replicates=slopes.size, alpha=alpha)
        region = "slope " + ("> 0 (increasing)" if increasing else "< 0 (decreasing)")
    return replace(d, test="trend", region=region,
                   rule=d.rule.replace(d.region, region, 1),
                   detail=f"mean per-replicate slope; {d.detail}")


def exact(statistic, *, lo=-math.inf, hi=math.inf, region: str) -> Decision:
    """An exact (not statistical) statement: the statistic lies in ``[lo, hi]`` (identities
    at rounding level, inequalities that hold sample by sample). Inconclusive never happens.

    Parameters
    ----------
    statistic : float or array_like
        The computed quantity [m].
    lo, hi : float or array_like
        The region per entry.
    region : str
        The region, in words.

    Returns
    -------
    decision : Decision
        ``test`` is ``"exact"``.
    """
    v = np.atleast_1d(np.asarray(statistic, dtype=float))
    return region_test(v, np.zeros_like(v), lo, hi, replicates=None, test="exact", region=region)
