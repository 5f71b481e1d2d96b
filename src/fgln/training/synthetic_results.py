"""Named views over the synthetic runs of Chapters 1, 4 and 7, stacked over replicates:
:class:`SyntheticRuns` (the Figure 1 / Section 7 runs of
:func:`fgln.training.synthetic_runs.synthetic_run`) and :class:`BalancedRuns` (the
Proposition 4.5 runs of :func:`fgln.training.synthetic_runs.balanced_run`), with the derived
quantities the chapters read.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields

import numpy as np

from ..base.statistics import stack_replicates
from ..base.validation import check_int
from ..theory.g1_process import growth_phase_ratios

__all__ = ["SyntheticRuns", "BalancedRuns"]

# what synthetic_run records with diagnostics=True and the chapters read, beside s and g
_DIAGNOSTICS = ("rate_flow", "rate_aligned", "rate_prop45", "rate_prop71", "rate_rem72",
                "rate_rem72_tri", "gamma", "delta", "eps_depth", "err_A", "err_B", "sin_A",
                "sin_B", "inf_A", "inf_B")


def _shared(stacked: dict[str, np.ndarray], key: str) -> np.ndarray:
    """The one value of a field that every replicate must share (its first row)."""
    rows = stacked[key]
    if not all(np.array_equal(r, rows[0]) for r in rows[1:]):
        raise ValueError(f"runs must share {key!r}; it differs between replicates")
    return rows[0]


@dataclass(frozen=True, eq=False)
class SyntheticRuns:
    """Runs of :func:`fgln.training.synthetic_runs.synthetic_run` stacked over replicates.

    Parameters
    ----------
    t, step : numpy.ndarray
        Record times ``t = step * lr`` and gradient steps [R], shared by the runs.
    s : numpy.ndarray
        All singular values of J at the records [replicates, R, n].
    g : numpy.ndarray
        ``<grad_J L, u_k v_k^T>`` [replicates, R, k].
    loss : numpy.ndarray
        Loss at the records [replicates, R].
    T_sv : numpy.ndarray
        Singular values of each run's target map [replicates, n].
    lr : float
        Gradient step, shared by the runs.
    rate_flow, rate_aligned, rate_prop45, rate_prop71, rate_rem72, rate_rem72_tri, gamma, \
delta, eps_depth : numpy.ndarray or None
        [replicates, R, k]: the rates and depth-scaling fit of
        :func:`fgln.training.recorders.dynamics_snapshot` (None for runs without diagnostics).
    err_A, err_B : numpy.ndarray or None
        Alignment errors [replicates, R, L-1, k].
    sin_A, sin_B : numpy.ndarray or None
        Sines of the largest principal angles [replicates, R, L-1].
    inf_A, inf_B : numpy.ndarray or None
        Operator infinity norms of the top-block alignment errors [replicates, R, L-1].
    """

    t: np.ndarray
    step: np.ndarray
    s: np.ndarray
    g: np.ndarray
    loss: np.ndarray
    T_sv: np.ndarray
    lr: float
    rate_flow: np.ndarray | None = None
    rate_aligned: np.ndarray | None = None
    rate_prop45: np.ndarray | None = None
    rate_prop71: np.ndarray | None = None
    rate_rem72: np.ndarray | None = None
    rate_rem72_tri: np.ndarray | None = None
    gamma: np.ndarray | None = None
    delta: np.ndarray | None = None
    eps_depth: np.ndarray | None = None
    err_A: np.ndarray | None = None
    err_B: np.ndarray | None = None
    sin_A: np.ndarray | None = None
    sin_B: np.ndarray | None = None
    inf_A: np.ndarray | None = None
    inf_B: np.ndarray | None = None

    @classmethod
    def stack(cls, runs: Sequence[Mapping]) -> SyntheticRuns:
        """The view over ``runs``, one result of ``synthetic_run`` per replicate.

        Parameters
        ----------
        runs : sequence of mappings
            Results of :func:`fgln.training.synthetic_runs.synthetic_run` (as cached: dicts of
            numpy arrays) with the same configuration and recording; the diagnostics fields are
            taken when every run has them.

        Returns
        -------
        SyntheticRuns
            The fields stacked over the runs (``t``, ``step`` and ``lr`` checked equal).
        """
        if isinstance(runs, Sequence) and not isinstance(runs, (str, bytes)) and runs \
                and all(isinstance(r, Mapping) for r in runs):
            extra = [key for key in _DIAGNOSTICS if all(key in r for r in runs)]
        else:
            extra = []
        stacked = stack_replicates(runs, ("t", "step", "s", "g", "loss", "T_sv", "lr", *extra))
        t, step = _shared(stacked, "t"), _shared(stacked, "step")
        lr = float(_shared(stacked, "lr"))
        return cls(t=t, step=step, lr=lr, **{key: stacked[key] for key in
                                              ("s", "g", "loss", "T_sv", *extra)})

    @property
    def replicates(self) -> int:
        """Number of stacked runs.

        Returns
        -------
        int
            The length of the replicate axis.
        """
        return int(self.s.shape[0])

    def top(self, k: int) -> np.ndarray:
        """The top ``k`` singular values ``s_1..s_k`` [replicates, R, k].

        Parameters
        ----------
        k : int
            How many, ``1 <= k <= n``.

        Returns
        -------
        numpy.ndarray
            A view of :attr:`!s`.
        """
        k = check_int("k", k, 1, self.s.shape[2])
        return self.s[:, :, :k]

    def rates(self, k: int) -> np.ndarray:
        """Measured ``ds_j/dt``, ``j <= k``: second-order finite differences of the recorded
        trajectories in ``t`` (``numpy.gradient``).

        Parameters
        ----------
        k : int
            How many singular values, ``1 <= k <= n``.

        Returns
        -------
        numpy.ndarray
            [replicates, R, k].
        """
        return np.gradient(self.top(k), self.t, axis=1)

    def growth_ratios(self, predicted: np.ndarray, k: int, frac: float = 0.2) -> np.ndarray:
        """Predicted over measured increase of ``s_1..s_k`` over each one's growth phase,
        per run (:func:`fgln.theory.g1_process.growth_phase_ratios` against :meth:`rates`).

        Parameters
        ----------
        predicted : numpy.ndarray
            Predicted rates [replicates, R, >= k] (e.g. :attr:`!rate_prop71`).
        k : int
            How many modes.
        frac : float
            The growth phase: where the measured rate is at least ``frac`` of its peak.

        Returns
        -------
        numpy.ndarray
            [replicates, k] (NaN for a mode that never grows).
        """
        if predicted is None:
            raise ValueError("predicted is None: these runs were recorded without diagnostics")
        k = check_int("k", k, 1, self.s.shape[2])
        pred = np.asarray(predicted, dtype=float)
        if pred.ndim != 3 or pred.shape[2] < k:
            raise ValueError(f"predicted must be [replicates, R, >= {k}], got shape {pred.shape}")
        return growth_phase_ratios(self.t, pred[..., :k], self.rates(k), frac)


@dataclass(frozen=True, eq=False)
class BalancedRuns:
    """Runs of :func:`fgln.training.synthetic_runs.balanced_run` stacked over a grid (e.g.
    replicates by step sizes): Proposition 4.5 along gradient descent.

    Parameters
    ----------
    t : numpy.ndarray
        Grid times [G], shared by the runs.
    s, measured, pred, flow : numpy.ndarray
        Singular values, measured rates, Proposition 4.5's rates and the exact flow rates
        [``*grid``, G, k].
    balance : numpy.ndarray
        Largest relative balance residual [``*grid``, G].

    Notes
    -----
    The fields are the keys of :meth:`arrays`, so ``BalancedRuns(**view.arrays())`` rebuilds a
    view from its cached arrays.
    """

    t: np.ndarray
    s: np.ndarray
    measured: np.ndarray
    pred: np.ndarray
    flow: np.ndarray
    balance: np.ndarray

    @classmethod
    def stack(cls, runs: Sequence[Mapping], grid: tuple[int, ...] | None = None
              ) -> BalancedRuns:
        """The view over ``runs``, laid out on ``grid``.

        Parameters
        ----------
        runs : sequence of mappings
            Results of ``balanced_run`` sharing their time grid, in row-major order of
            ``grid``.
        grid : tuple of int, optional
            The leading shape, e.g. ``(replicates, len(lrs))``; default ``(len(runs),)``.

        Returns
        -------
        BalancedRuns
        """
        stacked = stack_replicates(runs, ("t", "s", "measured", "pred", "flow", "balance"))
        n = stacked["s"].shape[0]
        grid = (n,) if grid is None else tuple(check_int("grid[...]", g, 1) for g in grid)
        if int(np.prod(grid)) != n:
            raise ValueError(f"grid {grid} does not hold the {n} runs")
        t = _shared(stacked, "t")
        return cls(t=t, **{key: stacked[key].reshape(grid + stacked[key].shape[1:])
                           for key in ("s", "measured", "pred", "flow", "balance")})

    def arrays(self) -> dict[str, np.ndarray]:
        """The fields as a dict of arrays (what the disk cache stores).

        Returns
        -------
        dict of str to numpy.ndarray
        """
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def rate_error(self) -> np.ndarray:
        """Largest ``|measured - pred|`` over time and k, over the largest ``|pred|``.

        Returns
        -------
        numpy.ndarray
            [``*grid``].
        """
        d = np.abs(self.measured - self.pred).max(axis=(-2, -1))
        return d / np.abs(self.pred).max(axis=(-2, -1))

    def flow_gap(self) -> np.ndarray:
        """Largest ``|flow - pred|`` over time and k, over the largest ``|flow|``: how far
        Proposition 4.5's formula is from the exact gradient-flow rate.

        Returns
        -------
        numpy.ndarray
            [``*grid``].
        """
        return (np.abs(self.flow - self.pred).max(axis=(-2, -1))
                / np.abs(self.flow).max(axis=(-2, -1)))
