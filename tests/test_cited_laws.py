"""The results the paper cites (chapter 2) and the law of its gates (chapter 3):
fgln.theory.cited_laws against Monte Carlo and exact identities; fgln.initialization.
product_moments and fgln.training.deep_linear against the closed forms."""
import math

import numpy as np
import pytest
import torch
from scipy.special import comb, digamma, polygamma

from fgln.base.laws import LayerLaw
from fgln.base.statistics import mean_se
from fgln.initialization.product_moments import gram_moments, log_norm_growth
from fgln.products.sampling import sample_network
from fgln.theory.cited_laws import balanced_mode_trajectory, fuss_catalan_moments, gate_rank_law
from fgln.training.deep_linear import aligned_descent, balance_drift

# --------------------------------------------------------------------------------------
# Fuss-Catalan moments
# --------------------------------------------------------------------------------------


def test_fuss_catalan_numbers():
    np.testing.assert_array_equal(fuss_catalan_moments(1, 6), [1, 2, 5, 14, 42, 132])
    np.testing.assert_array_equal(fuss_catalan_moments(2, 5), [1, 3, 12, 55, 273])
    np.testing.assert_array_equal(fuss_catalan_moments(3, 4), [1, 4, 22, 140])
    # m_2 = L + 1: the variance of the squared singular values grows like L
    for L in range(1, 8):
        assert fuss_catalan_moments(L, 2)[1] == L + 1


def test_fuss_catalan_recursion():
    """FC_L(j) = sum over the L+1 parts j_0 + ... + j_L = j - 1 of the products of FC_L(j_i)
    (the generating function B = 1 + z B^(L+1))."""
    L, top = 2, 7
    fc = np.concatenate([[1.0], fuss_catalan_moments(L, top)])
    # coefficients of B^(L+1) (with B_0 = 1), truncated
    power = np.zeros(top + 1)
    power[0] = 1.0
    for _ in range(L + 1):
        power = np.convolve(power, fc)[: top + 1]
    np.testing.assert_allclose(fc[1:], power[:top], rtol=1e-12)


def test_gram_moments_approach_fuss_catalan():
    """At n = 192 the Monte Carlo moments sit within a few percent of the large-width limit,
    and the second moment's finite-width excess has the sign of the exact recursion."""
    L, n, reps = 2, 192, 24
    m = gram_moments(LayerLaw(n, 1.0).product(L), 3, reps, seed=5)
    mean, se, _ = mean_se(m)
    fc = fuss_catalan_moments(L, 3)
    assert abs(mean[0] - 1.0) < 4.5 * se[0]  # E (1/n) tr J J^T = (n sigma^2)^L = 1 exactly
    np.testing.assert_allclose(mean, fc, rtol=0.06)
    # exact finite-n second moment (Wick's formula, one layer at a time, t = (1/n) tr J J^T):
    # m2(L) = (1 + 1/n) m2(L-1) + E t_{L-1}^2 and E t_L^2 = E t_{L-1}^2 + 2 m2(L-1) / n^2
    m2_1, t2_1 = 2.0 + 1.0 / n, 1.0 + 2.0 / n ** 2
    m2_2 = (1.0 + 1.0 / n) * m2_1 + t2_1
    assert abs(mean[1] - m2_2) < 4.5 * se[1], (mean[1], m2_2, se[1])


def test_gram_moments_shape_and_seed():
    prod = LayerLaw(6, 0.5).product(3)
    a = gram_moments(prod, 2, 4, seed=1)
    assert a.shape == (4, 2) and np.all(a >= 0)
    np.testing.assert_array_equal(a, gram_moments(prod, 2, 4, seed=1))
    # the first moment is (1/n) ||J||_F^2 of the sampler's own matrices
    w, d = sample_network(prod, 4, seed=1)
    J = torch.eye(6, dtype=torch.float64).expand(4, 6, 6)
    for l in range(3):
        J = (d[:, l, :, None] * w[:, l]) @ J
    np.testing.assert_allclose(a[:, 0], (J ** 2).sum((-2, -1)).numpy() / 6, rtol=1e-12)


# --------------------------------------------------------------------------------------
# log-normal law at finite depth
# --------------------------------------------------------------------------------------


def test_log_norm_growth_is_a_random_walk_with_the_chi_square_steps():
    n, L, reps = 5, 12, 6000
    x = log_norm_growth(LayerLaw(n, 1.0).product(L), reps, seed=3)
    assert x.shape == (reps, L)
    steps = np.diff(np.concatenate([np.zeros((reps, 1)), x], 1), axis=1)
    # one step: 1/2 log(sigma^2 chi^2_n), mean 1/2 (log(2/n) + psi(n/2)), variance psi'(n/2)/4
    mean, se, _ = mean_se(steps.ravel())
    assert abs(mean - 0.5 * (math.log(2.0 / n) + digamma(n / 2))) < 4.5 * se
    var = steps.var(ddof=1)
    assert abs(var / (polygamma(1, n / 2) / 4) - 1) < 0.03
    # independent steps: the variance of the sum grows linearly
    assert abs(x[:, -1].var(ddof=1) / (L * polygamma(1, n / 2) / 4) - 1) < 0.08
    assert abs(np.corrcoef(steps[:, 0], steps[:, 1])[0, 1]) < 0.05


def test_log_norm_growth_of_a_gated_chain_reaches_minus_infinity():
    x = log_norm_growth(LayerLaw(2, 0.3).product(30), 50, seed=0)
    dead = np.isneginf(x)
    assert dead[:, -1].any() and not dead[:, 0].all()
    assert np.all(dead[:, 1:] >= dead[:, :-1])  # once zero, the chain stays at zero


# --------------------------------------------------------------------------------------
# deep linear networks: Saxe et al.'s curve, Arora et al.'s conservation law
# --------------------------------------------------------------------------------------


def test_balanced_mode_trajectory_solves_its_equation():
    s0, y = np.array([0.05, 0.3, 2.5]), np.array([2.0, 1.0, 1.5])
    t = np.linspace(0, 4, 4001)
    for L in (1, 2, 3, 5):
        s = balanced_mode_trajectory(s0, y, L, t)
        assert s.shape == (t.size, 3)
        np.testing.assert_allclose(s[0], s0, rtol=1e-10)
        ds = np.gradient(s, t, axis=0, edge_order=2)
        rhs = L * s ** (2 - 2 / L) * (y - s)
        assert np.max(np.abs(ds - rhs)[1:-1]) < 1e-3 * np.abs(rhs).max(), L
        # every mode moves monotonically towards its target, never past it
        assert np.all((s - y) * np.sign(s0 - y) >= -1e-9)
        assert np.all(np.diff(np.abs(s - y), axis=0) <= 1e-9)
    # L = 2 is the logistic curve of Saxe et al.; the numerical branch agrees with it
    logistic = y / (1 + (y / s0 - 1) * np.exp(-2 * np.outer(t, y)))
    np.testing.assert_allclose(balanced_mode_trajectory(s0, y, 2, t), logistic, rtol=1e-12)


@pytest.mark.parametrize("bad", [dict(s0=[0.0]), dict(y=[-1.0]), dict(t=[1.0, 0.5]),
                                 dict(t=[-1.0])])
def test_balanced_mode_trajectory_refuses_bad_input(bad):
    args = dict(s0=[0.1], y=[1.0], L=2, t=[0.0, 1.0]) | bad
    with pytest.raises(ValueError):
        balanced_mode_trajectory(**args)


def test_aligned_descent_follows_the_mode_law_to_first_order_in_the_step():
    s0, y = [0.05, 0.02], [2.0, 1.0]
    errs = []
    for lr in (4e-3, 2e-3):
        t, s = aligned_descent(6, 2, s0, y, lr, 3.0, 0.5, seed=2)
        errs.append(np.abs(s - balanced_mode_trajectory(s0, y, 2, t)).max())
        np.testing.assert_allclose(s[0], s0, rtol=1e-10)
    assert errs[1] < 0.03 and 1.6 < errs[0] / errs[1] < 2.4, errs  # error of order lr


def test_aligned_descent_refuses_bad_input():
    with pytest.raises(ValueError):
        aligned_descent(2, 2, [0.1, 0.1, 0.1], [1.0, 1.0, 1.0], 1e-2, 1.0, 0.5)
    with pytest.raises(ValueError):
        aligned_descent(4, 2, [0.1], [1.0], 0.3, 1.0, 0.5)  # times not multiples of lr


def test_balance_drift_is_of_the_order_of_the_step():
    """Gradient flow conserves the gaps: halving the step halves the drift."""
    d = [balance_drift(5, 3, lr, 1.0, seed=4) for lr in (0.02, 0.01, 0.005)]
    assert 0 < d[2] < d[1] < d[0] < 0.05
    np.testing.assert_allclose([d[0] / d[1], d[1] / d[2]], [2.0, 2.0], rtol=0.1)


# --------------------------------------------------------------------------------------
# the law of a gate (Definitions 5.1-5.2)
# --------------------------------------------------------------------------------------


def test_gate_rank_law_of_p_gates_and_conditioned_gates():
    pmf, q = gate_rank_law(LayerLaw(10, 0.3))
    t = np.arange(11)
    np.testing.assert_allclose(pmf, comb(10, t) * 0.3 ** t * 0.7 ** (10 - t), rtol=1e-12)
    assert q == pytest.approx(0.3, abs=1e-14)
    pmf, q = gate_rank_law(LayerLaw(10, 0.3, r=4))
    assert pmf[:4].sum() == 0 and pmf.sum() == pytest.approx(1.0)
    # the closed form of the marginal: p P(Bin(n-1, p) >= r-1) / P(Bin(n, p) >= r)
    from scipy.stats import binom
    ref = 0.3 * binom.sf(2, 9, 0.3) / binom.sf(3, 10, 0.3)
    assert q == pytest.approx(ref, rel=1e-12) and q > 0.3
    assert gate_rank_law(LayerLaw(4, 1.0))[1] == 1.0


def test_gate_rank_law_matches_the_sampler():
    law = LayerLaw(12, 0.5, r=8)
    _, d = sample_network(law.product(40), 200, seed=9)
    ranks = d.sum(-1).ravel().numpy()
    pmf, q = gate_rank_law(law)
    assert ranks.min() >= 8
    mean, se, _ = mean_se(ranks)
    assert abs(mean - 12 * q) < 4.5 * se
    freq = np.bincount(ranks.astype(int), minlength=13) / ranks.size
    assert np.abs(freq - pmf).max() < 0.02


def test_gate_rank_law_refuses_a_non_law():
    with pytest.raises(TypeError):
        gate_rank_law((4, 0.5))


def test_large_width_limit_recovers_an_exact_line_and_its_error():
    from fgln.initialization.product_moments import large_width_limit

    n = np.array([16, 32, 64, 128])
    mean = np.stack([3.0 + 5.0 / n, -1.0 + 0.0 / n], 1)
    se = np.full_like(mean, 0.01)
    a, s = large_width_limit(n, mean, se)
    np.testing.assert_allclose(a, [3.0, -1.0], atol=1e-12)
    # the intercept's error: the standard formula of a weighted line
    x = 1 / n
    S, Sx, Sxx = (x ** 0).sum(), x.sum(), (x ** 2).sum()
    np.testing.assert_allclose(s, 0.01 * np.sqrt(Sxx / (S * Sxx - Sx ** 2)), rtol=1e-10)
    a1, s1 = large_width_limit(n, mean[:, 0], se[:, 0])
    assert np.ndim(a1) == 0 and a1 == pytest.approx(3.0)
    with pytest.raises(ValueError):
        large_width_limit([8, 8], [1.0, 1.0], [0.1, 0.1])
    with pytest.raises(ValueError):
        large_width_limit([8, 16], [1.0, 1.0], [0.1, 0.0])
