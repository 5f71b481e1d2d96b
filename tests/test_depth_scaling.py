"""fgln.initialization.depth_scaling: the Section 5 measurements behind Figures 2, 3 and 9."""
import math

import numpy as np
import pytest

from fgln.base.laws import LayerLaw
from fgln.base.results import Result
from fgln.base.statistics import conditional_stats
from fgln.initialization import depth_scaling as ds
from fgln.products.spectra import factor_log_spectra
from fgln.theory import exponents as ex


def test_conditional_stats_ignores_minus_inf_and_reports_fraction():
    x = np.array([[1.0, -np.inf], [3.0, 2.0], [5.0, -np.inf]])
    st = conditional_stats(x)
    np.testing.assert_allclose(st["mean"], [3.0, 2.0])
    np.testing.assert_allclose(st["frac"], [1.0, 1 / 3])
    assert st["se"][0] == pytest.approx(2.0 / math.sqrt(3))
    assert np.isnan(st["se"][1])  # one sample: no standard error


def test_top_values_by_depth_are_the_factor_spectra():
    prod = LayerLaw(6, 1.0).product(12)
    r = ds.top_values_by_depth(prod, 3, 4, seed=3)
    assert isinstance(r, Result) and r.logs is r["logs"]
    ref = factor_log_spectra(prod, 3, 4, seed=3).numpy()
    np.testing.assert_array_equal(r["logs"], ref)
    np.testing.assert_allclose(r["mean"], (ref / np.arange(1, 13)[None, :, None]).mean(0),
                               atol=1e-12)
    at_end = ds.spectrum_at_depth(prod, 3, 4, seed=3)
    np.testing.assert_allclose(at_end["values"], ref[:, -1] / 12, atol=1e-12, rtol=0)


def test_spectrum_at_depth_conditional_means_for_unconditioned_gates():
    from scipy.stats import binom

    chains, L = 400, 6
    r = ds.spectrum_at_depth(LayerLaw(10, 0.5).product(L), 10, chains, seed=1)
    assert np.all(np.diff(r["frac"]) <= 0)  # later indices vanish more often
    # s_i > 0 iff all L gates have rank >= i (rank of the product = smallest gate rank)
    q = binom.sf(np.arange(10), 10, 0.5) ** L
    se = np.sqrt(q * (1 - q) / chains)
    assert np.all(np.abs(r["frac"] - q) <= 4.5 * se + 1.0 / chains)
    ok = r["count"] > 1
    assert np.all(np.diff(r["mean"][ok]) < 0)


def test_wedge_log_norms_increments_and_standard_errors():
    """The reported increments are the differences of the wedge means, and the reported
    standard errors match the spread of the means over independent seeds."""
    n, p, k, samples, seeds = 6, 0.6, 3, 200, 40
    law = LayerLaw(n, p, r=k)
    runs = [ds.wedge_log_norms(law, k, samples, seed=s) for s in range(seeds)]
    for r in runs[:3]:
        np.testing.assert_allclose(r["gamma_mean"], np.diff(r["mean"], prepend=0.0),
                                   rtol=0, atol=1e-12)
        assert np.all(r["gamma_se"] > 0) and np.all(np.isfinite(r["mean"]))
    means = np.array([r["mean"] for r in runs])  # [seeds, k]
    sems = np.array([r["se"] for r in runs])
    ratio = means.std(0, ddof=1) / sems.mean(0)
    # sd of a 40-sample standard deviation is ~11% of it: 0.6..1.4 is beyond 3.5 sd
    assert np.all((ratio > 0.6) & (ratio < 1.4)), ratio


def test_finite_depth_offsets_are_positive_and_below_d():
    """Lemma C.7 with d(p, q) >= 0 increasing to d_i: 0 < offset(L) <~ d_i."""
    n = 5
    r = ds.finite_depth_offsets(LayerLaw(n, 1.0).product(40), 3, 400, seed=4)
    d = ex.finite_depth_constants(n, 3)[1:]
    assert np.all(r["mean"] > 10 * r["se"])  # clearly positive: the printed sign fails
    assert np.all(r["mean"] < d + 4.5 * r["se"])
    assert np.all(r["mean"] > 0.7 * d)  # and close to d_i already at L = 40 for n = 5


def test_depth_slopes_are_per_replicate_least_squares():
    """Exact lines give their slopes back; a replicate with log 0 in the window has no slope
    for that index (NaN) and the statistics are over the others; bad input is refused."""
    depths = np.arange(1.0, 11.0)
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 2))
    logs = depths[None, :, None] * a[:, None, :] + rng.normal(size=(5, 1, 2))
    logs[0, 7, 1] = -np.inf
    res = ds.depth_slopes(depths=depths, logs=logs, start=4)
    assert np.allclose(res["slopes"][1:], a[1:]) and np.isclose(res["slopes"][0, 0], a[0, 0])
    assert np.isnan(res["slopes"][0, 1]) and res["count"].tolist() == [5, 4]
    assert np.allclose(res["mean"], [a[:, 0].mean(), a[1:, 1].mean()])
    assert res["window"].tolist() == list(range(4, 11))
    with pytest.raises(ValueError, match="3 depths"):
        ds.depth_slopes(depths, logs, start=9)
    with pytest.raises(ValueError, match="logs must be"):
        ds.depth_slopes(depths, logs[:, :5], start=1)


def test_gate_ranks_decide_the_exact_zeros():
    """s_{i,L} > 0 exactly when every gate of the product has rank >= i (the same draws as
    top_values_by_depth); at p = 1 every gate has full rank."""
    n, L, k = 6, 5, 6
    prod = LayerLaw(n, 0.5).product(L)
    top = ds.top_values_by_depth(prod, k, 64, seed=3)
    ranks = ds.gate_ranks(prod, 64, seed=3)
    assert ranks.shape == (64, L) and ranks.min() >= 0 and ranks.max() <= n
    nonzero = np.isfinite(top["logs"][:, -1, :]).sum(1)
    assert np.array_equal(nonzero, np.minimum(k, ranks.min(1)))
    assert (ds.gate_ranks(LayerLaw(n, 1.0).product(L), 4, seed=0) == n).all()
