"""fgln.theory.subadditive: the defect of a split product (Appendix C.2) against explicit
singular values, its sign and its limit d_i; Lemma C.6's ratio against its bounds and limit."""
import math

import numpy as np
import pytest
import torch

from fgln.base.laws import LayerLaw
from fgln.products.sampling import sample_layers
from fgln.theory.exponents import finite_depth_constants
from fgln.theory.subadditive import haar_split_log_ratios, split_defects


def _top_logs(M, k):
    return torch.cumsum(torch.log(torch.linalg.svdvals(M)[..., :k]), -1).numpy()


def test_split_defects_are_the_norms_of_the_two_factors():
    prod = LayerLaw(4, 0.5, r=2).product(3)
    res = split_defects(prod, 2, 20, split=1, seed=5)
    layers = sample_layers(prod, 20, seed=5)                  # the same stream (one chunk)
    B = layers[:, 0]
    A = layers[:, 2] @ layers[:, 1]
    head = layers[:, 1] @ layers[:, 0]
    np.testing.assert_allclose(res.log_B, _top_logs(B, 2), atol=1e-10)
    np.testing.assert_allclose(res.log_A, _top_logs(A, 2), atol=1e-10)
    np.testing.assert_allclose(res.log_AB, _top_logs(A @ B, 2), atol=1e-10)
    np.testing.assert_allclose(res.log_head, _top_logs(head, 2), atol=1e-10)
    np.testing.assert_allclose(res.defect, res.log_A + res.log_B - res.log_AB, atol=1e-12)
    assert res.split == 1


def test_defect_is_nonnegative_and_the_unpaired_combination_is_not():
    res = split_defects(LayerLaw(4, 1.0).product(16), 3, 300, seed=1)
    assert np.nanmin(res.defect) > -1e-9
    assert np.nanmin(res.unpaired) < -1e-3
    # the same mean: the first L - q layers have the law of A
    z = (np.nanmean(res.unpaired, 0) - res.mean) / np.hypot(res.se, np.nanstd(res.unpaired, 0)
                                                           / math.sqrt(300))
    assert np.all(np.abs(z) < 4.5)


def test_defect_tends_to_d1_at_width_two():
    # n = 2, p = 1: gamma_1 - gamma_2 = ln 2, the halves separate within a few layers
    res = split_defects(LayerLaw(2, 1.0).product(32), 1, 3000, seed=2)
    d1 = finite_depth_constants(2, 1)[1]
    assert d1 == pytest.approx(math.log(2))
    assert abs(res.mean[0] - d1) < 4.5 * res.se[0] + 0.01


def test_haar_ratio_bounds_limit_and_start():
    res = haar_split_log_ratios(5, 2, [0.0, 0.5, 2.0, 40.0], 3000, seed=4)
    assert np.max(np.abs(res.log_ratio[:, 0])) < 1e-12         # c = 0: ||^t Omega|| = 1
    assert np.all(res.log_ratio <= 1e-12)
    assert np.all(res.log_ratio >= res.log_det[:, None] - 1e-12)
    # the ratio falls with the spacing, to log|det Omega^{t,t}| sample by sample
    assert np.all(np.diff(res.mean) < 0)
    assert np.median(np.abs(res.log_ratio[:, -1] - res.log_det)) < 1e-12
    d2 = finite_depth_constants(5, 2)[2]
    assert abs(res.mean[-1] + d2) < 4.5 * res.se[-1]


@pytest.mark.parametrize("call, error", [
    (lambda: split_defects(LayerLaw(4).product(1), 2, 10), ValueError),
    (lambda: split_defects(LayerLaw(4).product(4), 2, 10, split=4), ValueError),
    (lambda: split_defects(LayerLaw(4).product(4), 5, 10), ValueError),
    (lambda: split_defects(LayerLaw(4), 2, 10), TypeError),
    (lambda: haar_split_log_ratios(4, 4, [1.0], 10), ValueError),
    (lambda: haar_split_log_ratios(4, 2, [-1.0], 10), ValueError),
    (lambda: haar_split_log_ratios(4, 2, [float("nan")], 10), ValueError),
    (lambda: haar_split_log_ratios(4, 2.0, [1.0], 10), TypeError),
])
def test_bad_arguments_raise(call, error):
    with pytest.raises(error):
        call()
