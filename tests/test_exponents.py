"""fgln.theory.exponents: closed forms of Section 5 against Monte Carlo and known limits."""
import math

import numpy as np
import pytest
import torch
from scipy.special import digamma

from fgln.base.laws import LayerLaw
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
    law = LayerLaw(n, 1.0, sigma)
    g = lyapunov_exponents(law, n)
    i = np.arange(1, n + 1)
    ref = math.log(sigma) + 0.5 * (math.log(2.0) + digamma((n - i + 1) / 2.0))
    np.testing.assert_allclose(g, ref, rtol=0, atol=1e-14)
    assert np.all(np.diff(g) < 0)  # strictly ordered
    # the sum of all exponents is E log|det W| per layer (Monte Carlo of the determinant)
    samples = 20000
    w, _ = sample_network(law.product(1), samples, seed=13)
    logdet = torch.linalg.slogdet(w[:, 0]).logabsdet.numpy()
    _, se, _ = mean_se(logdet)
    assert abs(logdet.mean() - g.sum()) < 4.5 * se, (logdet.mean(), g.sum(), se)


@pytest.mark.parametrize("p, r", [(0.5, 3), (0.8, 6), (0.35, 2)])
def test_remark_5_4_against_monte_carlo_of_lemma_c4(p, r):
    """gamma_1 + ... + gamma_i = E log||Y e_1 ^ ... ^ Y e_i|| = E 1/2 log det(X^T X)."""
    n, sigma, samples = 8, 0.5, 20000
    law = LayerLaw(n, p, sigma, r)
    w, d = sample_network(law.product(1), samples, seed=21)
    Y = d[:, 0, :, None] * w[:, 0]
    g = lyapunov_exponents(law, r)
    for i in range(1, r + 1):
        X = Y[:, :, :i]
        vals = 0.5 * torch.linalg.slogdet(X.mT @ X).logabsdet.numpy()
        _, se, _ = mean_se(vals)
        assert abs(vals.mean() - g[:i].sum()) < 4.5 * se, (i, vals.mean(), g[:i].sum(), se)


def test_remark_5_5_drops_the_normalisation_only():
    n, p, sigma = 128, 0.5, None
    law = LayerLaw(n, p, sigma)
    exact = lyapunov_exponents(law.replace(r=30), 30)
    approx = lyapunov_exponents_approx(law.replace(r=30), 30)
    # r << np: indistinguishable; r close to np: the approximation is biased
    np.testing.assert_allclose(exact, approx, atol=1e-6)
    ex64 = lyapunov_exponents(law.replace(r=64), 64)
    ap64 = lyapunov_exponents_approx(law.replace(r=64), 64)
    assert np.max(np.abs(ex64 - ap64)) > 0.5


def test_per_index_conditioning_default():
    law = LayerLaw(20, 0.5)
    g = lyapunov_exponents(law, 6)
    for i in range(1, 7):
        assert g[i - 1] == pytest.approx(lyapunov_exponents(law.replace(r=i), i)[-1])
    # sigma=None is 1/sqrt(n): the same numbers as the explicit scale
    np.testing.assert_array_equal(g, lyapunov_exponents(law.replace(sigma=1 / math.sqrt(20)), 6))


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
    n, L, replicates = 4, 60, 2000
    law = LayerLaw(n, 1.0)
    acc = SpectrumAccumulator.start(n, replicates)
    for M in iter_layers(law.product(L), replicates, seed=5):
        acc.push(M)
    assert acc.L == L
    log_s1 = acc.log_svdvals(1)[:, 0]
    log_je1 = acc.a[:, 0] + torch.log(acc.N[:, 0, 0].abs())  # log||J e_1|| = log|T_11|
    diff = (log_s1 - log_je1).numpy()
    d1 = finite_depth_constants(n, 1)[1]
    _, se, _ = mean_se(diff)
    assert abs(diff.mean() - d1) < 4.5 * se + 0.02, (diff.mean(), d1, se)
    assert abs(diff.mean() + d1) > 20 * se  # the printed sign is excluded
    # the control variate itself is unbiased for L gamma_1 (exact identity in law)
    g1 = lyapunov_exponents(law, 1)[0]
    je = log_je1.numpy()
    assert abs(je.mean() - L * g1) < 4.5 * mean_se(je)[1]
    pa = predicted_log_singular_values(law.product(L), 1)[0]
    pc = predicted_log_singular_values(law.product(L), 1, reading="corrected")[0]
    pp = predicted_log_singular_values(law.product(L), 1, reading="printed")[0]
    assert pa == pc == pytest.approx(g1 + d1 / L) and pp == pytest.approx(g1 - d1 / L)


def test_all_exponents_at_depth_in_the_thousands():
    n, L, replicates = 6, 2000, 6
    prod = LayerLaw(n, 1.0).product(L)
    x = stream_log_spectra(prod, replicates=replicates, depths=[L], seed=2,
                           reorth_every=4)[:, 0].numpy() / L
    pred = predicted_log_singular_values(prod, n)
    _, se, _ = mean_se(x)
    assert np.all(np.abs(x.mean(0) - pred) < 5 * se + 2e-3)
    assert np.all(np.diff(x, axis=1) < 0)


def test_separation_ratios_go_to_zero_corollary_5_6():
    n, replicates = 6, 40
    law = LayerLaw(n, 0.7, r=4)
    x = stream_log_spectra(law.product(400), 4, replicates, depths=[25, 100, 400], seed=4,
                           reorth_every=4)
    gaps = (x[..., 1:] - x[..., :-1]).mean(0).numpy()  # mean log(s_{i+1}/s_i)
    assert np.all(gaps[1] < gaps[0]) and np.all(gaps[2] < gaps[1]) and np.all(gaps[2] < -5)
    g = lyapunov_exponents(law, 4)
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
        ((4, 0.5, None, 0), "k must"),
        ((4, 0.5, None, 3, 2), "k = 3 exceeds the minimum rank r = 2"),
    ],
)
@pytest.mark.parametrize("fn", [lyapunov_exponents, lyapunov_exponents_approx])
def test_bad_input(fn, args, match):
    n, p, sigma, k, *r = args
    with pytest.raises(ValueError, match=match):
        fn(LayerLaw(n, p, sigma, *r), k)


def test_bad_input_other_functions():
    with pytest.raises(ValueError, match="L must"):
        predicted_log_singular_values(LayerLaw(4, 0.5).product(0), 2)
    with pytest.raises(ValueError, match="reading"):
        predicted_log_singular_values(LayerLaw(4, 0.5).product(3), 2, reading="other")
    with pytest.raises(ValueError, match="k must"):
        finite_depth_constants(4, 5)
    # the closed forms take the paper's objects: a law for the exponents, a product for the
    # prediction at depth L
    with pytest.raises(TypeError, match="law must be a LayerLaw"):
        lyapunov_exponents(LayerLaw(4).product(3), 2)
    with pytest.raises(TypeError, match="law must be a LayerLaw"):
        lyapunov_exponents_approx(4, 2)
    with pytest.raises(TypeError, match="product must be a Product"):
        predicted_log_singular_values(LayerLaw(4), 2)
    with pytest.raises(TypeError, match="positional"):
        finite_depth_constants_mc(4, 2, 100, 3)  # seed is keyword-only
