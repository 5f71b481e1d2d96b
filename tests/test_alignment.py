"""Diagonal correlation (Appendix F), sign-fixed SVD, one-pass alignment overlaps (Section 7
notation), the synthetic checks of Theorem 6.1 and Remarks 6.2 / 6.3, and the depth-scaling
fit of the intermediate Jacobians."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch

from fgln.base.laws import LayerLaw
from fgln.base.statistics import fit_slopes, mean_se
from fgln.initialization.alignment import (
    alignment_overlaps,
    fix_signs,
    overlap_profiles,
    svd_fixed_signs,
)
from fgln.initialization.depth_scaling import depth_scaling_fit
from fgln.initialization.synthetic_alignment import (
    cluster_sweep,
    overlap_scaled,
    synthetic_product,
    theorem61_sweep,
    unit_ldl,
)
from fgln.products.sampling import haar_orthogonal, sample_network
from fgln.theory.diagonal_correlation import (
    diagonal_correlation,
    diagonal_correlation_closed_form,
    diagonal_correlation_reference,
    diagonal_correlations,
)
from fgln.theory.exponents import lyapunov_exponents

DT = torch.float64


def _rand(shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=DT)


# ---------------------------------------------------------------------------------------
# diagonal correlation
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("k", [2, 3, 7, 50])
def test_diagonal_and_antidiagonal_exact(k):
    d = _rand((k,), seed=k)  # signed, non-zero entries
    assert diagonal_correlation(torch.diag(d)) == pytest.approx(1.0, abs=1e-14)
    assert diagonal_correlation(torch.diag(d).flip(-1)) == pytest.approx(-1.0, abs=1e-14)
    assert diagonal_correlation(torch.eye(k, dtype=DT)) == 1.0 or \
        abs(diagonal_correlation(torch.eye(k, dtype=DT)) - 1.0) < 1e-15


def test_adjacent_transposition_closed_value():
    # identity with rows i, i+1 swapped: rho = 1 - 12 / (k (k^2 - 1)) exactly
    for k in (2, 3, 5, 10, 40):
        P = torch.eye(k, dtype=DT)[[1, 0] + list(range(2, k))]
        expected = 1.0 - 12.0 / (k * (k * k - 1))
        assert diagonal_correlation(P) == pytest.approx(expected, abs=1e-13)
    # k = 2: the swap is the anti-identity
    assert diagonal_correlation(torch.eye(2, dtype=DT).flip(0)) == pytest.approx(-1.0)


def test_invariances():
    A = _rand((9, 9), seed=1)
    r = diagonal_correlation(A)
    assert -1.0 < r < 1.0
    assert diagonal_correlation(3.7 * A) == pytest.approx(r, abs=1e-14)
    assert diagonal_correlation(-1e-5 * A) == pytest.approx(r, abs=1e-14)
    assert diagonal_correlation(A.T) == pytest.approx(r, abs=1e-14)
    signs = torch.sign(_rand((9, 9), seed=2))
    assert diagonal_correlation(A * signs) == pytest.approx(r, abs=1e-14)
    # reversing the order of both indices keeps it, reversing one flips the sign
    assert diagonal_correlation(A.flip(0, 1)) == pytest.approx(r, abs=1e-14)
    assert diagonal_correlation(A.flip(0)) == pytest.approx(-r, abs=1e-14)


@pytest.mark.parametrize("seed", range(5))
def test_definition_closed_form_and_numpy_agree(seed):
    k = 3 + 4 * seed
    A = _rand((k, k), seed=10 + seed) ** 3  # heavy-tailed weights
    ref = diagonal_correlation_reference(A.numpy())
    assert diagonal_correlation(A) == pytest.approx(ref, abs=1e-12)
    assert float(diagonal_correlation_closed_form(A)) == pytest.approx(ref, abs=1e-10)


def test_closed_form_with_swapped_roles_is_wrong():
    """Guard: a formula pairing r2^T A 1 with (1^T A r1)^2 would differ (the paper's does not)."""
    A = _rand((8, 8), seed=3).abs() * torch.linspace(1, 4, 8, dtype=DT)[:, None] ** 2
    swapped = diagonal_correlation_closed_form(A, reading="mixed")
    ref = diagonal_correlation_reference(A.numpy())
    assert float(diagonal_correlation_closed_form(A)) == pytest.approx(ref, abs=1e-12)
    assert float(diagonal_correlation_closed_form(A, reading="printed")) == pytest.approx(
        ref, abs=1e-12)  # the default reading is the printed one
    assert not np.isclose(float(swapped), ref, atol=1e-3)  # NaN or a wrong value
    with pytest.raises(ValueError, match="reading"):
        diagonal_correlation_closed_form(A, reading="paper")


def test_batched_matches_loop():
    A = _rand((3, 4, 6, 6), seed=4)
    batch = diagonal_correlations(A)
    assert batch.shape == (3, 4)
    for i in range(3):
        for j in range(4):
            assert float(batch[i, j]) == pytest.approx(diagonal_correlation(A[i, j]), abs=1e-15)


@pytest.mark.parametrize("bad, msg", [
    (torch.zeros(4, 4, dtype=DT), "all-zero"),
    (torch.ones(3, 4, dtype=DT), "square"),
    (torch.ones(0, 0, dtype=DT), "empty"),
    (torch.tensor([[1.0, float("nan")], [0.0, 1.0]], dtype=DT), "finite"),
    (torch.tensor([[1.0, float("inf")], [0.0, 1.0]], dtype=DT), "finite"),
    (torch.ones(5, dtype=DT), "one matrix"),
])
def test_bad_input_raises(bad, msg):
    with pytest.raises(ValueError, match=msg):
        diagonal_correlation(bad)


def test_zero_matrix_in_batch_raises():
    A = _rand((3, 4, 4))
    A[1] = 0
    with pytest.raises(ValueError, match="all-zero"):
        diagonal_correlations(A)


def test_degenerate_single_row_column_and_1x1_are_nan_with_warning():
    row = torch.zeros(5, 5, dtype=DT)
    row[2] = torch.arange(1, 6, dtype=DT)
    for M in (row, row.T, torch.tensor([[2.5]], dtype=DT)):
        with pytest.warns(RuntimeWarning, match="single row or column"):
            assert math.isnan(diagonal_correlation(M))
    # a tiny second row is *not* degenerate: the value is well defined
    row2 = row.clone()
    row2[4, 4] = 1e-200
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert math.isfinite(diagonal_correlation(row2))
    # in a batch only the degenerate entry is NaN
    batch = torch.stack([row, torch.eye(5, dtype=DT)])
    with pytest.warns(RuntimeWarning):
        out = diagonal_correlations(batch)
    assert math.isnan(float(out[0])) and float(out[1]) == pytest.approx(1.0)


def test_haar_orthogonal_expected_rho_near_zero():
    # |entries| of a Haar matrix are exchangeable in rows and columns: E rho = 0
    vals = [diagonal_correlation(haar_orthogonal(30, seed=s)) for s in range(40)]
    mean, se, _ = mean_se(vals)
    assert abs(mean) < 4 * se + 1e-3


# ---------------------------------------------------------------------------------------
# sign-fixed SVD
# ---------------------------------------------------------------------------------------


def test_svd_fixed_signs_convention_and_reconstruction():
    X = _rand((4, 7, 7), seed=5)
    U, S, Vh = svd_fixed_signs(X)
    assert torch.allclose(U @ torch.diag_embed(S) @ Vh, X, atol=1e-12)
    piv = U.abs().argmax(-2, keepdim=True)
    assert bool((torch.gather(U, -2, piv) > 0).all())
    # independent of the signs LAPACK happened to return
    flip = torch.sign(_rand((4, 1, 7), seed=6))
    U2, Vh2 = fix_signs(U * flip, Vh * flip.mT)
    assert torch.equal(U2, U) and torch.equal(Vh2, Vh)
    # reproducible, and rectangular inputs are handled
    U3, S3, Vh3 = svd_fixed_signs(X)
    assert torch.equal(U3, U) and torch.equal(Vh3, Vh)
    Y = _rand((5, 3), seed=7)
    Uy, Sy, Vhy = svd_fixed_signs(Y)
    assert torch.allclose(Uy[:, :3] @ torch.diag(Sy) @ Vhy, Y, atol=1e-12)


# ---------------------------------------------------------------------------------------
# one-pass overlaps
# ---------------------------------------------------------------------------------------


def _direct(weights, gates, l, k):
    """A_l, J by explicit products for one network (Section 7), l in 1..L."""
    L, n, _ = weights.shape
    D = [torch.diag(gates[i]) for i in range(L)]
    D[L - 1] = torch.eye(n, dtype=DT)  # D_L = I
    J = weights[0]
    for i in range(1, L):
        J = weights[i] @ D[i - 1] @ J
    A = torch.eye(n, dtype=DT)
    for i in range(L - 1, l - 1, -1):  # A_l = W_L D_{L-1} ... W_{l+1} D_l
        A = A @ weights[i] @ D[i - 1]
    Bl = torch.eye(n, dtype=DT)
    for i in range(1, l):  # B_l = D_{l-1} W_{l-1} ... D_1 W_1
        Bl = D[i - 1] @ weights[i - 1] @ Bl
    return A, J, Bl


@pytest.mark.parametrize("p", [1.0, 0.6])
def test_alignment_overlaps_matches_direct(p):
    n, L, k = 7, 5, 4
    # gates of rank > k: the top-k singular vectors of every A_l and of J are well defined
    w, g = sample_network(LayerLaw(n, p, r=k + 1).product(L), 2, seed=11)
    out = alignment_overlaps(w, g, k)
    assert out["overlap"].shape == (2, L, k, k) and out["rho_overlap"].shape == (2, L)
    for b in range(2):
        for l in range(1, L + 1):
            A, J, Bl = _direct(w[b], g[b], l, k)
            assert torch.allclose(A @ w[b, l - 1] @ Bl, J, atol=1e-12)
            UJ = svd_fixed_signs(J)[0]
            UA = svd_fixed_signs(A)[0]
            ov = UJ[:, :k].T @ UA[:, :k]
            gram = UJ[:, :k].T @ A @ A.T @ UJ[:, :k]
            if l < L:  # A_L = I: its singular basis is a convention (checked below)
                assert torch.allclose(out["overlap"][b, l - 1].abs(), ov.abs(), atol=1e-9)
            assert torch.allclose(out["gram"][b, l - 1].abs(), gram.abs(), atol=1e-9)
            assert torch.allclose(out["aat"][b, l - 1], (A @ A.T)[:k, :k], atol=1e-12)
            assert float(out["rho_gram"][b, l - 1]) == pytest.approx(
                diagonal_correlation(gram), abs=1e-9)
    # l = L: A_L = I, A_L A_L^T = I exactly
    assert torch.allclose(out["aat"][:, -1], torch.eye(k, dtype=DT).expand(2, k, k))
    assert torch.allclose(out["rho_aat"][:, -1], torch.ones(2, dtype=DT))
    # unbatched input gives unbatched output, same numbers
    single = alignment_overlaps(w[1], g[1], k)
    assert torch.allclose(single["rho_overlap"], out["rho_overlap"][1], atol=1e-12)


def test_alignment_overlaps_bad_k():
    w, g = sample_network(LayerLaw(4, 1.0).product(3), seed=0)
    with pytest.raises(ValueError, match="k must be"):
        alignment_overlaps(w, g, 5)


def test_overlap_profiles_reproducible_and_consistent():
    prod = LayerLaw(8, 0.5).product(4, "fgln")
    a = overlap_profiles(prod, [3, 8], 5, seed=2, chunk=2, keep_blocks=3)
    b = overlap_profiles(prod, [3, 8], 5, seed=2, chunk=2, keep_blocks=3)
    assert a["rho_overlap_k3"].shape == (5, 4) and a["overlap_k8"].shape == (3, 4, 8, 8)
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    # one block size as an int: the same numbers as in the list
    one = overlap_profiles(prod, 3, 5, seed=2, chunk=2)
    assert set(one) == {"log_sv_A", "rho_overlap_k3", "rho_gram_k3", "rho_aat_k3",
                        "rho_overlap_sq_k3"}
    np.testing.assert_array_equal(one.rho_gram_k3, a["rho_gram_k3"])
    # same numbers as alignment_overlaps on the first chunk
    w, g = sample_network(prod, 2, seed=2 * 100003)
    ref = alignment_overlaps(w, g, 3)
    np.testing.assert_allclose(a["rho_gram_k3"][:2], ref["rho_gram"].numpy(), atol=1e-12)
    np.testing.assert_allclose(a["rho_aat_k3"][:, -1], 1.0)
    # only some layers: the same numbers as the full profile at those layers, in their order
    sub = overlap_profiles(prod, [3, 8], 5, seed=2, chunk=2, keep_blocks=3, layers=[3, 1])
    for key in a:
        want = a[key][:, [2, 0]]
        assert sub[key].shape == want.shape, key
        np.testing.assert_allclose(sub[key], want, rtol=1e-12, atol=1e-12, err_msg=key)
    assert not np.allclose(sub["rho_overlap_k3"][:, 0], sub["rho_overlap_k3"][:, 1])
    for bad, error in (([0], ValueError), ([5], ValueError), ([], ValueError),
                       ([1.5], TypeError)):
        with pytest.raises(error, match="layers"):
            overlap_profiles(prod, 3, 2, layers=bad)
    # the partial products of a network (Definition 4.1: the last gate is I)
    with pytest.raises(ValueError, match="convention 'fgln'"):
        overlap_profiles(LayerLaw(8, 0.5).product(4), 3, 2)


# ---------------------------------------------------------------------------------------
# Theorem 6.1, Remarks 6.2 and 6.3 on synthetic products
# ---------------------------------------------------------------------------------------

RATES = [0.0, 0.3, 0.65, 1.0, 1.4, 1.85]  # s_i = exp(-c_i L); adjacent gaps >= 0.3
R_TOP = 4


@pytest.fixture(scope="module")
def sweep():
    return theorem61_sweep(RATES, np.arange(2.0, 41.0, 2.0), R_TOP, seed=0)


def test_unit_ldl():
    B = _rand((5, 5), seed=8)
    C = B @ B.T
    T, sig = unit_ldl(C)
    assert torch.allclose(T @ torch.diag(sig) @ T.T, C, atol=1e-10)
    assert torch.allclose(torch.diagonal(T), torch.ones(5, dtype=DT))
    assert torch.equal(torch.triu(T, 1), torch.zeros_like(T))
    dets = [1.0] + [float(torch.det(C[:i, :i])) for i in range(1, 6)]
    np.testing.assert_allclose(sig.numpy(), [dets[i] / dets[i - 1] for i in range(1, 6)],
                               rtol=1e-9)


def test_scaled_overlap_equals_direct_at_moderate_L():
    prod = synthetic_product(6, RATES, 4.0, seed=3)
    UJ = torch.linalg.svd(prod["J"])[0]
    R_direct = prod["U"].T @ UJ
    R_direct = R_direct * torch.sign(torch.diagonal(R_direct))[None, :]
    R, log_sJ = overlap_scaled(prod["log_s"], prod["B"])
    assert torch.allclose(R, R_direct, atol=1e-11)
    np.testing.assert_allclose(torch.exp(log_sJ).numpy(),
                               torch.linalg.svdvals(prod["J"]).numpy(), rtol=1e-10)


def test_scaled_overlap_entrywise_accurate_against_high_precision():
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 60
    L = 24.0
    prod = synthetic_product(6, RATES, L, seed=0)
    R, _ = overlap_scaled(prod["log_s"], prod["B"])
    s = [mp.exp(-mp.mpf(c) * int(L)) for c in RATES]
    Bn = prod["B"].numpy()
    M = mp.matrix([[s[i] * mp.mpf(float(Bn[i, j])) for j in range(6)] for i in range(6)])
    E, Q = mp.eigsy(M * M.T)
    order = sorted(range(6), key=lambda t: -E[t])
    Rh = np.array([[float(Q[i, t]) for t in order] for i in range(6)])
    Rh = Rh * np.sign(np.diag(Rh))[None, :]
    # entries span ~1e-20..1: the float64 result is accurate entrywise, not just normwise
    assert np.abs(Rh).min() < 1e-15
    np.testing.assert_allclose(R.numpy(), Rh, rtol=1e-9, atol=0)


def test_theorem61_identity_limit_and_rate(sweep):
    Ls, err = sweep["Ls"], sweep["err_identity"]
    assert np.all(np.diff(err) < 0)
    # first order: ||R^{r,r} - I|| ~ const * exp(-(min adjacent gap in the top r) L)
    a, _ = fit_slopes(Ls[Ls >= 10], np.log(err[Ls >= 10]))
    assert a == pytest.approx(-0.3, abs=0.01)
    assert err[-1] < 1e-5


def test_remark63_offdiagonal_rates_use_the_small_ratio(sweep):
    """|R_ij| ~ |T_C| s_i/s_j below and |T_C^{-1}| s_j/s_i above the diagonal: the exponent is
    -|c_i - c_j| on both sides (Remark 6.3). Theorem D.1(c) as printed (ratios s_j/s_i below,
    s_i/s_j above the diagonal) would make these entries grow."""
    Ls, R = sweep["Ls"], sweep["R"]
    sel = Ls >= 10
    for i in range(R_TOP):
        for j in range(R_TOP):
            if i == j:
                continue
            a, _ = fit_slopes(Ls[sel], np.log(np.abs(R[sel, i, j])))
            assert a == pytest.approx(-abs(RATES[i] - RATES[j]), abs=2e-3), (i, j)
            assert np.all(np.abs(R[:, i, j]) <= 1.0)


def test_remark63_first_order_constants(sweep):
    """R^{r,r} off the diagonal equals the first-order prediction up to a relative error that
    shrinks like the squared adjacent ratio exp(-2 * 0.3 L)."""
    R = sweep["R"][:, :R_TOP, :R_TOP]
    pred = sweep["pred_offdiag"]
    off = ~np.eye(R_TOP, dtype=bool)
    rel = np.array([np.abs(R[t][off] - pred[t][off]).max() / np.abs(pred[t][off]).max()
                    for t in range(len(R))])
    Ls = sweep["Ls"]
    assert rel[Ls == 20][0] < 0.01 and rel[Ls == 40][0] < 1e-6
    # the signed constants, not just magnitudes (sign convention: positive diagonal)
    assert np.all(np.sign(R[-1][off]) == np.sign(pred[-1][off]))


def test_remark63_scaled_limits(sweep):
    Ls = sweep["Ls"]
    for key in ("err_T", "err_Tinv", "err_sigma_sqrt"):
        err = sweep[key]
        assert err[-1] < 1e-9, key
        a, _ = fit_slopes(Ls[Ls >= 10], np.log(err[Ls >= 10]))
        assert a == pytest.approx(-0.6, abs=0.03), key  # second order: exp(-2 * 0.3 L)
    # S_J S_A^{-1} tends to Sigma_C^{1/2}; the printed limit Sigma_C is off by a square root
    assert sweep["err_sigma_printed"][-1] > 1.0
    assert np.all(sweep["Sigma_C"] > 0)


def test_remark62_cluster_block_limit():
    Ls = np.arange(4.0, 41.0, 4.0)
    res = cluster_sweep([0.0, 0.0, 0.5, 0.9, 1.4, 1.9], [0.0, math.log(0.6), 0, 0, 0, 0],
                        Ls, (0, 2), 4, seed=0)
    Q = res["limit"][:2, :2]
    np.testing.assert_allclose(Q @ Q.T, np.eye(2), atol=1e-12)
    assert abs(Q[0, 1]) > 0.05  # a genuine rotation, not the identity
    assert res["err_limit"][-1] < 1e-6
    assert np.all(res["err_identity"] > 0.9 * math.sqrt(2) * abs(Q[0, 1]))
    a, _ = fit_slopes(Ls[Ls >= 12], np.log(res["offblock"][Ls >= 12]))
    assert a == pytest.approx(-0.4, abs=0.02)  # slowest gap outside the cluster


def test_remark62_cluster_below_the_top_uses_the_schur_complement():
    Ls = np.arange(4.0, 41.0, 4.0)
    res = cluster_sweep([0.0, 0.4, 0.9, 0.9, 1.4, 1.9], [0, 0, 0, math.log(0.5), 0, 0],
                        Ls, (2, 4), 4, seed=1)
    Q = res["limit"][2:4, 2:4]
    np.testing.assert_allclose(Q @ Q.T, np.eye(2), atol=1e-12)
    assert abs(Q[0, 1]) > 0.05
    assert res["err_limit"][-1] < 1e-6
    # the naive limit (eigenbasis of K C^{block} K, without the Schur complement) is wrong
    B = synthetic_product(6, [0.0, 0.4, 0.9, 0.9, 1.4, 1.9], 0.0, seed=1)["B"]
    C = (B @ B.T)[2:4, 2:4].numpy()
    K = np.diag([1.0, 0.5])
    w, V = np.linalg.eigh(K @ C @ K)
    V = V[:, ::-1] * np.sign(np.diag(V[:, ::-1]))[None, :]
    assert np.abs(V - res["R"][-1][2:4, 2:4]).max() > 1e-3


def test_synthetic_inputs_validated():
    with pytest.raises(ValueError, match="non-decreasing"):
        synthetic_product(3, [0.0, 0.5, 0.2], 1.0)
    with pytest.raises(ValueError, match="length"):
        synthetic_product(3, [0.0, 0.5], 1.0)
    with pytest.raises(ValueError, match="equal"):
        cluster_sweep([0.0, 0.1, 0.5], [0, 0, 0], [1.0], (0, 2), 2)
    with pytest.raises(ValueError, match="k must be in"):
        theorem61_sweep(RATES, [1.0], len(RATES))


# ---------------------------------------------------------------------------------------
# depth scaling of B_l (Figure 4 left)
# ---------------------------------------------------------------------------------------


def test_depth_scaling_fit_slopes_near_lyapunov():
    n, L, S = 8, 40, 6
    res = depth_scaling_fit(LayerLaw(n, 1.0).product(L, "fgln"), 3, S, seed=0,
                            fit_from=(1, 10))
    assert res["logsv"].shape == (S, L - 1, 3)
    gam = lyapunov_exponents(LayerLaw(n, 1.0), 3)
    slope = res["slope_j10"]
    _, se, _ = mean_se(slope)
    assert np.all(np.abs(slope.mean(0) - gam) < 5 * se + 0.02)
    # a wrong exponent (p = 0.5) is far away
    assert np.all(np.abs(slope.mean(0) - lyapunov_exponents(LayerLaw(n, 0.5), 3)) > 0.2)


def test_profile_minimum_finds_the_minimum_and_its_range():
    from fgln.initialization.alignment import profile_minimum

    L = 8
    base = (np.arange(1, L + 1) - 4.0) ** 2  # minimum at l = 4
    base[-1] = -10.0                          # the last layer is left out of the search
    x = np.tile(base, (5, 1))
    m, se, i_min, (lo, med, hi) = profile_minimum(x, 50, np.random.default_rng(0))
    assert i_min == 3 and lo == med == hi == 4.0
    np.testing.assert_array_equal(m, base)
    assert np.all(se == 0)
    # the same generator continues one sequence: two calls differ from two fresh ones
    noisy = x + np.random.default_rng(1).normal(0, 3.0, x.shape)
    g = np.random.default_rng(2)
    a, b = profile_minimum(noisy, 200, g)[3], profile_minimum(noisy, 200, g)[3]
    assert a == profile_minimum(noisy, 200, np.random.default_rng(2))[3]
    assert lo <= hi and a[0] <= a[1] <= a[2] and b[0] <= b[2]
    with pytest.raises(ValueError, match="x must be"):
        profile_minimum(base, 10, g)
    with pytest.raises(TypeError, match="rng"):
        profile_minimum(x, 10, 0)


def test_theorem61_replicates_are_independent_sweeps():
    """Replicate s is theorem61_sweep at seed + s; R^{r,r} -> I at the slowest gap's rate;
    with the second row twice the first, R^{r,r} stays away from I."""
    from fgln.initialization.synthetic_alignment import theorem61_replicates

    Ls = np.arange(40.0, 121.0, 20.0)  # deep enough that the next gap no longer weighs in
    res = theorem61_replicates(RATES, Ls, R_TOP, 3, seed=5)
    assert res["err_identity"].shape == (3, 5) and res["log_abs_R"].shape == (3, 5, R_TOP, R_TOP)
    one = theorem61_sweep(RATES, Ls, k=R_TOP, seed=6)
    eye = np.eye(R_TOP)
    assert res["err_identity"][1] == pytest.approx(
        np.linalg.norm(one["R"][:, :R_TOP, :R_TOP] - eye, axis=(1, 2)), rel=1e-10)
    slopes = np.polyfit(Ls, np.log(res["err_identity"]).T, 1)[0]
    # between the slowest gap and the next one (the latter still weighs at finite depth)
    gaps = sorted(np.diff(RATES[:R_TOP + 1]))
    assert np.all((slopes < -gaps[0] + 0.005) & (slopes > -gaps[1] - 0.005))
    # (at moderate depth: deeper, the exact zero singular value drowns in rounding)
    dep = theorem61_replicates(RATES, [20.0, 40.0], R_TOP, 2, seed=5, dependent_rows=True)
    assert np.all(dep["err_identity"] > 0.5)
    with pytest.raises(ValueError, match="replicates"):
        theorem61_replicates(RATES, Ls, R_TOP, 0)


def test_figure6_readings_select_on_one_half_and_test_on_the_other():
    from fgln.initialization.alignment import figure6_readings

    rng = np.random.default_rng(0)
    printed = [0.3, 0.5, 0.8]
    near = np.asarray(printed) + 0.02 * rng.standard_normal((40, 3))
    far = np.asarray(printed) + 0.3 + 0.02 * rng.standard_normal((40, 3))
    res = figure6_readings({"far": far, "near": near}, printed, 20)
    assert res["names"][res["best_draw"]] == "near" == res["names"][res["best_mean"]]
    assert res["mean_test"][1] == pytest.approx(near[20:].mean(0))
    assert res["mean_sel"][1] == pytest.approx(near[:20].mean(0))
    assert np.all(res["band"][1] > 2 * 0.02 * 0.5) and res["n_test"] == 20
    with pytest.raises(ValueError):
        figure6_readings({"near": near}, printed, 1)
