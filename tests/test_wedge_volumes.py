"""fgln.theory.wedge_volumes: Lemmas C.3 and C.4 in closed form against known special cases,
Remark 5.4 and Monte Carlo (tolerances from the standard error)."""
import math

import numpy as np
import pytest
from scipy.special import digamma

from fgln.base.laws import LayerLaw
from fgln.theory.exponents import lyapunov_exponents
from fgln.theory.wedge_volumes import (
    fixed_rank_log_volumes,
    gated_log_volumes,
    wishart_log_volumes,
)


def test_one_column_is_the_log_of_a_gaussian():
    # E log|sigma g| = log sigma - (euler_gamma + ln 2)/2 for g ~ N(0, 1)
    for sigma in (0.3, 1.0, 2.5):
        want = math.log(sigma) - (np.euler_gamma + math.log(2)) / 2
        assert wishart_log_volumes(1, sigma, 1)[0] == pytest.approx(want, abs=1e-13)


def test_wishart_closed_form_and_its_zeros():
    lam = wishart_log_volumes(3, 0.5, 5)
    i = np.arange(1, 4)
    want = np.cumsum(0.5 * math.log(2 * 0.25) + 0.5 * digamma((3 - i + 1) / 2))
    np.testing.assert_allclose(lam[:3], want, rtol=0, atol=1e-13)
    assert np.all(np.isneginf(lam[3:]))


def test_gated_volumes_are_the_partial_sums_of_remark_54():
    for law in (LayerLaw(8, 0.5, r=3), LayerLaw(6, 0.3, r=2), LayerLaw(5, 0.9, r=5),
                LayerLaw(4, 1.0)):
        r = law.r or law.n
        np.testing.assert_allclose(gated_log_volumes(law, r),
                                   np.cumsum(lyapunov_exponents(law, r)), rtol=0, atol=1e-12)


def test_gated_volumes_beyond_r_and_without_gates():
    lam = gated_log_volumes(LayerLaw(8, 0.5, r=3), 6)
    assert np.all(np.isfinite(lam[:3])) and np.all(np.isneginf(lam[3:]))
    # p = 1: every gate is the identity, the volumes are Lemma C.3 at t = n
    np.testing.assert_allclose(gated_log_volumes(LayerLaw(5, 1.0), 5),
                               wishart_log_volumes(5, 1 / math.sqrt(5), 5), rtol=0, atol=1e-13)


def test_fixed_rank_monte_carlo_agrees_with_lemma_c3():
    n, t, sigma, R = 6, 4, 0.4, 20000
    res = fixed_rank_log_volumes(n, sigma, t, n, R, seed=3)
    closed = wishart_log_volumes(t, sigma, n)
    z = (res.mean[:t] - closed[:t]) / res.se[:t]
    assert np.all(np.abs(z) < 4.5), z
    np.testing.assert_array_equal(res.frac_vanished, (np.arange(1, n + 1) > t).astype(float))
    assert np.all(res.log_hadamard <= 1e-12)           # Hadamard's bound
    assert res.log_volumes.shape == (R, n) and np.all(np.isneginf(res.log_volumes[:, t:]))


def test_fixed_rank_is_reproducible_and_places_the_gate_at_random():
    a = fixed_rank_log_volumes(5, 1.0, 2, 3, 50, seed=7)
    b = fixed_rank_log_volumes(5, 1.0, 2, 3, 50, seed=7)
    np.testing.assert_array_equal(a.log_volumes, b.log_volumes)
    c = fixed_rank_log_volumes(5, 1.0, 2, 3, 50, seed=8)
    assert not np.array_equal(a.log_volumes, c.log_volumes)


@pytest.mark.parametrize("call, error", [
    (lambda: wishart_log_volumes(0, 1.0, 2), ValueError),
    (lambda: wishart_log_volumes(2, -1.0, 2), ValueError),
    (lambda: wishart_log_volumes(2, 1.0, 2.0), TypeError),
    (lambda: gated_log_volumes(LayerLaw(6, 0.5), 2), ValueError),
    (lambda: gated_log_volumes(LayerLaw(6, 0.5, r=2), 7), ValueError),
    (lambda: gated_log_volumes((6, 0.5), 2), TypeError),
    (lambda: fixed_rank_log_volumes(4, 1.0, 5, 2, 10), ValueError),
    (lambda: fixed_rank_log_volumes(4, 1.0, 2, 2, 1), ValueError),
])
def test_bad_arguments_raise(call, error):
    with pytest.raises(error):
        call()
