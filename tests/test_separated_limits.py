"""Theorem D.1 and its proof measured (fgln.theory.separated_limits): the high-precision
eigenpairs against independent references, the closed-form limits, the exact identities of
the proof, Lemma D.4, and Theorem 6.1 on gated products of rank below n."""

from __future__ import annotations

import mpmath
import numpy as np
import pytest
import torch

from fgln import LayerLaw
from fgln.initialization.synthetic_alignment import unit_ldl
from fgln.theory.separated_limits import (
    gated_alignment,
    lemma_d4_errors,
    partial_ldl,
    separated_eigh,
    separated_quantities,
    separated_sweep,
)

RATES = [0.0, 0.4, 0.75, 1.2, 1.5, 1.5]


def _C(seed: int, n: int = 6, r: int = 3) -> np.ndarray:
    """Symmetric, indefinite, with C^{r,r} positive definite (as in the chapter)."""
    G = np.random.default_rng(seed).standard_normal((n, n))
    return G @ G.T / n + np.diag([0.5] * r + [-3.0] * (n - r))


def test_partial_ldl_is_the_ldl_and_gaussian_elimination():
    C = _C(0)
    K, ell = partial_ldl(C, 3)
    T, sig = unit_ldl(torch.as_tensor(C[:3, :3]))
    assert np.allclose(K[:3], T.numpy(), atol=1e-12) and np.allclose(ell, sig.numpy())
    dets = [1.0] + [np.linalg.det(C[:i, :i]) for i in range(1, 4)]
    assert np.allclose(ell, [dets[i + 1] / dets[i] for i in range(3)])
    # after r elimination steps the first r rows and columns are gone
    rest = C - K @ np.diag(ell) @ K.T
    assert np.abs(rest[:, :3]).max() < 1e-12 and np.abs(rest[:3, :]).max() < 1e-12


def test_partial_ldl_refuses_a_singular_leading_block():
    C = _C(1)
    C[1] = 2 * C[0]
    C[:, 1] = 2 * C[:, 0]
    with pytest.raises(ValueError, match="singular"):
        partial_ldl(C, 3)


def test_separated_eigh_matches_float64_on_a_mild_grading():
    C = _C(2)
    log_s = -np.asarray(RATES) * 1.0
    res = separated_eigh(log_s, C)
    X = np.exp(log_s)[:, None] * C * np.exp(log_s)[None, :]
    lam, V = np.linalg.eigh(X)
    order = np.argsort(-np.abs(lam))
    assert np.allclose(res.sigma, lam[order], rtol=1e-10, atol=1e-14)
    assert np.allclose(np.abs(res.U), np.abs(V[:, order]), atol=1e-9)
    assert np.all(np.diagonal(res.U) >= 0)


def test_separated_eigh_is_accurate_entrywise_far_beyond_float64():
    """At L = 60 the eigenvector entries span 40 orders of magnitude; doubling the working
    precision changes none of them beyond float64 rounding, and X u = sigma u holds in
    80-digit arithmetic for the smallest entries."""
    C = _C(3)
    log_s = -np.asarray(RATES) * 60.0
    a, b = separated_eigh(log_s, C), separated_eigh(log_s, C, digits=2 * 90)
    assert np.allclose(a.sigma, b.sigma, rtol=1e-13, atol=0)
    assert np.allclose(a.U, b.U, rtol=1e-12, atol=0)
    assert np.abs(a.U[5, 0]) < 1e-30      # e_6^T u_1 ~ s_6 / s_1 = e^-90
    with mpmath.workdps(80):
        s = [mpmath.exp(mpmath.mpf(x)) for x in log_s]
        for i in (0, 2):
            for j in (4, 5):                # row j of X u_i against sigma_i u_{j,i}
                lhs = sum(s[j] * mpmath.mpf(C[j, k]) * s[k] * mpmath.mpf(a.U[k, i])
                          for k in range(6))
                assert abs(float(lhs / (a.sigma[i] * a.U[j, i])) - 1) < 1e-12


def test_separated_eigh_refuses_bad_input():
    C = _C(4)
    with pytest.raises(ValueError, match="non-increasing"):
        separated_eigh([0.0, 1.0, 0, 0, 0, 0], C)
    with pytest.raises(ValueError, match="symmetric"):
        separated_eigh(np.zeros(6), C + np.triu(np.ones((6, 6)), 1))
    with pytest.raises(ValueError, match="length"):
        separated_eigh(np.zeros(5), C)
    with pytest.raises(ValueError, match="positive definite"):
        separated_quantities(np.zeros(6), -np.eye(6), 2)


def test_limits_of_theorem_d1_and_the_corrected_orientation():
    C = _C(5)
    q = separated_quantities(-np.asarray(RATES) * 60.0, C, 3)
    assert np.allclose(q.ratio_b, q.l, rtol=1e-9)                     # (b)
    assert np.allclose(q.prod_ratio, [np.linalg.det(C[:i, :i]) for i in (1, 2, 3)], rtol=1e-9)
    assert q.dist_a.max() < 1e-8                                       # (a)
    limit = np.tril(q.T_C) + np.triu(np.linalg.inv(q.T_C).T, 1)
    assert np.allclose(q.scaled, limit, atol=1e-8)                     # Remark D.2
    assert np.allclose(q.K_scaled, q.K[3:], atol=1e-8)                 # Remark D.3, K closed form
    assert q.eq2_residual < 1e-12 and q.d7_residual < 1e-12            # (2) and Lemma D.7
    assert np.abs(q.d7_term).max() <= q.d7_bound


def test_zero_singular_values_leave_the_limits_unchanged():
    C = _C(6)
    res = separated_sweep(RATES, [10.0, 40.0], C, 3, zeros=2)
    assert np.all(res.U[:, 4:, :3] == 0)           # e_j^T u_i = 0 where s_j = 0
    assert np.allclose(res.ratio_b[-1], res.l, rtol=1e-9)
    assert res.dist_a[-1].max() < res.dist_a[0].max() * 1e-4
    assert np.all(res.eq2_residual < 1e-12)
    with pytest.raises(ValueError, match="zeros"):
        separated_sweep(RATES, [1.0], C, 3, zeros=4)


def test_error_terms_decay_at_the_predicted_rates():
    """Second-order rates: the proof's epsilon_L like (s_4/s_3)^2, Lemma D.7's term like its
    fourth power, Lemma D.7's bound like the square."""
    res = separated_sweep(RATES, [8.0, 16.0], _C(7), 3)
    rate = lambda v: float(np.log(v[1] / v[0]) / 8.0)  # noqa: E731
    g3 = RATES[3] - RATES[2]
    assert rate(res.eps_max) == pytest.approx(-2 * g3, abs=0.05)
    assert rate(np.abs(res.d7_term).max(axis=(1, 2))) == pytest.approx(-4 * g3, abs=0.05)
    assert rate(res.d7_bound) == pytest.approx(-2 * g3, abs=0.05)
    assert rate(res.sep) == pytest.approx(-2 * g3, abs=0.05)


def test_lemma_d4_errors_are_linear_and_below_weyl():
    rng = np.random.default_rng(8)
    E = rng.standard_normal((5, 5))
    d = lemma_d4_errors(E + E.T, np.logspace(-3, -7, 5))
    assert np.all(d.top <= d.size) and np.all(d.others <= d.size)
    slope = np.polyfit(np.log(d.eps), np.log(d.vector), 1)[0]
    assert slope == pytest.approx(1.0, abs=0.01)


def test_gated_alignment_below_full_rank():
    law = LayerLaw(8, p=0.5, r=3)
    res = gated_alignment(law, 25, 1, 2, 6, seed=0)
    assert res.err_identity.shape == (6, 24) and res.log_s.shape == (6, 24, 8)
    assert np.all(res.rank_A >= 3) and np.all(res.rank_A[:, -1] < 8)
    assert np.all(np.diff(res.rank_A, axis=1) <= 0)
    # the exact zeros of a rank-deficient product are rounding noise in float64
    gap = res.log_s[:, -1, res.rank_A[0, -1]] - res.log_s[:, -1, 0]
    assert gap[0] < -30
    assert np.mean(np.log(res.err_identity[:, -1])) < np.mean(np.log(res.err_identity[:, 2])) - 2
    with pytest.raises(ValueError):
        gated_alignment(law, 5, 5, 2, 2)
