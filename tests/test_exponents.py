"""fgln.theory.exponents: closed forms of Section 5 against Monte Carlo and known limits."""
import math

import numpy as np
import pytest
import torch
from scipy.special import digamma

from fgln.base.statistics import mean_se
from fgln.products.accumulator import SpectrumAccumulator
from fgln.products.sampling import iter_layers, sample_network
from fgln.products.spectra import stream_log_spectra
from fgln.theory.exponents import (
    finite_depth_constants,
    finite_depth_constants_mc,
    lyapunov_exponents,
    lyapunov_exponents_approx,
    predicted_log_singular_values,
)


def test_ungated_exponents_are_newmans_formula():
    n, sigma = 7, 0.3
    g = lyapunov_exponents(n, 1.0, sigma, n)
    i = np.arange(1, n + 1)
    ref = math.log(sigma) + 0.5 * (math.log(2.0) + digamma((n - i + 1) / 2.0))
    np.testing.assert_allclose(g, ref, rtol=0, atol=1e-14)
    assert np.all(np.diff(g) < 0)  # strictly ordered
    # the sum of all exponents is E log|det W| per layer (Monte Carlo of the determinant)
    samples = 20000
    w, _ = sample_network(n, 1, 1.0, sigma, batch=samples, seed=13)
    logdet = torch.linalg.slogdet(w[:, 0]).logabsdet.numpy()
    _, se, _ = mean_se(logdet)
    assert abs(logdet.mean() - g.sum()) < 4.5 * se, (logdet.mean(), g.sum(), se)


@pytest.mark.parametrize("p, r", [(0.5, 3), (0.8, 6), (0.35, 2)])
def test_remark_5_4_against_monte_carlo_of_lemma_c4(p, r):
    """gamma_1 + ... + gamma_i = E log||Y e_1 ^ ... ^ Y e_i|| = E 1/2 log det(X^T X)."""
    n, sigma, samples = 8, 0.5, 20000
    w, d = sample_network(n, 1, p, sigma, batch=samples, min_rank=r, seed=21)
    Y = d[:, 0, :, None] * w[:, 0]
    g = lyapunov_exponents(n, p, sigma, r, min_rank=r)
    for i in range(1, r + 1):
        X = Y[:, :, :i]
        vals = 0.5 * torch.linalg.slogdet(X.mT @ X).logabsdet.numpy()
        _, se, _ = mean_se(vals)
        assert abs(vals.mean() - g[:i].sum()) < 4.5 * se, (i, vals.mean(), g[:i].sum(), se)


def test_remark_5_5_drops_the_normalisation_only():
    n, p, sigma = 128, 0.5, None
    exact = lyapunov_exponents(n, p, sigma, 30, min_rank=30)
    approx = lyapunov_exponents_approx(n, p, sigma, 30, min_rank=30)
    # r << np: indistinguishable; r close to np: the approximation is biased
    np.testing.assert_allclose(exact, approx, atol=1e-6)
    ex64 = lyapunov_exponents(n, p, sigma, 64, min_rank=64)
    ap64 = lyapunov_exponents_approx(n, p, sigma, 64, min_rank=64)
    assert np.max(np.abs(ex64 - ap64)) > 0.5


def test_per_index_conditioning_default():
    g = lyapunov_exponents(20, 0.5, None, 6)
    for i in range(1, 7):
        assert g[i - 1] == pytest.approx(lyapunov_exponents(20, 0.5, None, i, min_rank=i)[-1])


def test_finite_depth_constants_closed_form_limits_and_monte_carlo():
    d = finite_depth_constants(2, 2)
    assert d[0] == 0 and d[2] == pytest.approx(0.0, abs=1e-14)
    assert d[1] == pytest.approx(math.log(2.0))  # E log|cos theta| = -log 2
    n = 10
    dn = finite_depth_constants(n, n)
    assert dn[n] == pytest.approx(0.0, abs=1e-12)  # |det| of an orthogonal matrix is 1
    assert np.all(dn[1:n] > 0)
    mean, se = finite_depth_constants_mc(n, n, replicates=20000, seed=3)
    assert np.all(np.abs(mean[1:n] - dn[1:n]) < 4.5 * se[1:n])


def test_finite_depth_correction_sign_follows_the_appendix():
    """L (E[(1/L) log s_1] - gamma_1) -> d_1 - d_0 = d_1 > 0 (Lemma C.7); printed: -d_1.

    Control variate: log||J_L e_1|| has mean exactly L gamma_1 for Ginibre layers (it is a
    sum of i.i.d. log chi terms), and it tracks log s_1 closely, so the difference estimates
    E log s_1 - L gamma_1 with a small standard error.
    """
    n, L, batch = 4, 60, 2000
    acc = SpectrumAccumulator.start(batch, n)
    for M in iter_layers(n, L, 1.0, batch=batch, seed=5):
        acc.push(M)
    log_s1 = acc.log_svdvals(1)[:, 0]
    log_je1 = acc.a[:, 0] + torch.log(acc.N[:, 0, 0].abs())  # log||J e_1|| = log|T_11|
    diff = (log_s1 - log_je1).numpy()
    d1 = finite_depth_constants(n, 1)[1]
    _, se, _ = mean_se(diff)
    assert abs(diff.mean() - d1) < 4.5 * se + 0.02, (diff.mean(), d1, se)
    assert abs(diff.mean() + d1) > 20 * se  # the printed sign is excluded
    # the control variate itself is unbiased for L gamma_1 (exact identity in law)
    g1 = lyapunov_exponents(n, 1.0, None, 1)[0]
    je = log_je1.numpy()
    assert abs(je.mean() - L * g1) < 4.5 * mean_se(je)[1]
    pa = predicted_log_singular_values(n, L, 1.0, None, 1)[0]
    pp = predicted_log_singular_values(n, L, 1.0, None, 1, sign="printed")[0]
    assert pa == pytest.approx(g1 + d1 / L) and pp == pytest.approx(g1 - d1 / L)


def test_all_exponents_at_depth_in_the_thousands():
    n, L, batch = 6, 2000, 6
    x = stream_log_spectra(n, L, 1.0, batch=batch, seed=2, reorth_every=4)[:, 0].numpy() / L
    pred = predicted_log_singular_values(n, L, 1.0, None, n)
    _, se, _ = mean_se(x)
    assert np.all(np.abs(x.mean(0) - pred) < 5 * se + 2e-3)
    assert np.all(np.diff(x, axis=1) < 0)


def test_separation_ratios_go_to_zero_corollary_5_6():
    n, batch = 6, 40
    x = stream_log_spectra(n, 400, 0.7, batch=batch, min_rank=4, seed=4, k=4,
                           depths=[25, 100, 400], reorth_every=4)
    gaps = (x[..., 1:] - x[..., :-1]).mean(0).numpy()  # mean log(s_{i+1}/s_i)
    assert np.all(gaps[1] < gaps[0]) and np.all(gaps[2] < gaps[1]) and np.all(gaps[2] < -5)
    g = lyapunov_exponents(n, 0.7, None, 4, min_rank=4)
    np.testing.assert_allclose(gaps[2] / 400, np.diff(g), atol=0.02)


@pytest.mark.parametrize(
    "args, match",
    [
        ((0, 0.5, None, 1), "n must"),
        ((4, 0.0, None, 1), "p must"),
        ((4, 1.2, None, 1), "p must"),
        ((4, float("nan"), None, 1), "p must"),
        ((4, 0.5, 0.0, 1), "sigma must"),
        ((4, 0.5, float("nan"), 1), "sigma must"),
        ((4, 0.5, None, 5), "k must"),
        ((4, 0.5, None, 3, 2), "k must be <= min_rank"),
    ],
)
def test_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        lyapunov_exponents(*args)


def test_bad_input_other_functions():
    with pytest.raises(ValueError, match="L must"):
        predicted_log_singular_values(4, 0, 0.5, None, 2)
    with pytest.raises(ValueError, match="sign"):
        predicted_log_singular_values(4, 3, 0.5, None, 2, sign="other")
    with pytest.raises(ValueError, match="k must"):
        finite_depth_constants(4, 5)
