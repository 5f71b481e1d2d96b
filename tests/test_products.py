"""Sampling, partial products and exact log-spectra of deep products (fgln.products.sampling,
fgln.products.partial_products, fgln.products.accumulator, fgln.products.graded_svd,
fgln.products.spectra)."""
import math

import mpmath
import numpy as np
import pytest
import torch

from fgln.base.laws import LayerLaw
from fgln.base.statistics import mean_se
from fgln.products.accumulator import SpectrumAccumulator, accumulate_factors
from fgln.products.graded_svd import (
    GRAM_SPREAD,
    graded_log_svdvals,
    graded_log_svdvals_batched,
    gram_log_svdvals,
)
from fgln.products.partial_products import layer_partial_products, network_partial_products
from fgln.products.sampling import (
    haar_orthogonal,
    iter_factors,
    iter_layers,
    make_generator,
    network_layers,
    sample_layers,
    sample_network,
)
from fgln.products.spectra import (
    factor_log_spectra,
    log_singular_values,
    log_spectra_by_depth,
    lyapunov_estimates,
    stream_log_spectra,
    stream_lyapunov_estimates,
)


def product(layers):
    J = torch.eye(layers.shape[-1], dtype=layers.dtype).expand_as(layers[:, 0])
    for l in range(layers.shape[1]):
        J = layers[:, l] @ J
    return J


def mp_log_svdvals(layer_list, dps):
    """High-precision reference: exact product in mpmath, then its singular values."""
    mpmath.mp.dps = dps
    n = layer_list[0].shape[0]
    P = mpmath.eye(n)
    for M in layer_list:
        P = mpmath.matrix(M.tolist()) * P
    sv = mpmath.svd_r(P, compute_uv=False)
    return np.array(sorted((float(mpmath.log(x)) for x in sv), reverse=True))


# ---------------------------------------------------------------- sampling


def test_shapes_dtype_and_default_sigma():
    lay = sample_layers(LayerLaw(6).product(3), 2, seed=0)
    assert lay.shape == (2, 3, 6, 6) and lay.dtype == torch.float64
    lay32 = sample_layers(LayerLaw(6).product(3), 2, seed=0, dtype=torch.float32)
    assert lay32.dtype == torch.float32
    # sigma=None means 1/sqrt(n): the same draws as an explicit sigma, which scales them
    assert torch.equal(lay, sample_layers(LayerLaw(6, sigma=1 / math.sqrt(6)).product(3), 2,
                                          seed=0))
    lay3 = sample_layers(LayerLaw(6, sigma=3 / math.sqrt(6)).product(3), 2, seed=0)
    assert torch.allclose(lay3, 3 * lay, rtol=1e-15, atol=0)
    # one replicate by default
    assert sample_layers(LayerLaw(6).product(3), seed=0).shape == (1, 3, 6, 6)


def test_default_seed_is_the_fixed_stream_and_none_is_fresh_entropy():
    """seed defaults to 0 (the same numbers on every call); seed=None asks for entropy."""
    prod = LayerLaw(5, 0.5).product(3)
    a, b = sample_layers(prod, 2), sample_layers(prod, 2)
    assert torch.equal(a, b) and torch.equal(a, sample_layers(prod, 2, seed=0))
    assert not torch.equal(sample_layers(prod, 2, seed=None), sample_layers(prod, 2, seed=None))
    w, d = sample_network(prod, 2)
    assert torch.equal(w, sample_network(prod, 2, seed=0)[0])
    assert torch.equal(torch.stack(list(iter_layers(prod, 2)), 1), a)
    # a generator is drawn from, not restarted: two draws from one generator differ
    gen = make_generator(3)
    assert not torch.equal(sample_layers(prod, 2, seed=gen), sample_layers(prod, 2, seed=gen))
    # make_generator: same integer seed, same stream; the device is keyword-only
    assert torch.equal(torch.rand(3, generator=make_generator(4, device="cpu")),
                       torch.rand(3, generator=make_generator(4)))
    with pytest.raises(TypeError):
        make_generator(4, "cpu")


def test_haar_orthogonal_replicates_and_seed():
    q = haar_orthogonal(5)
    assert q.shape == (5, 5) and torch.equal(q, haar_orthogonal(5, seed=0))
    eye = torch.eye(5, dtype=torch.float64)
    assert torch.allclose(q.T @ q, eye, atol=1e-12)
    qs = haar_orthogonal(5, 3, seed=2)
    assert qs.shape == (3, 5, 5) and torch.allclose(qs.mT @ qs, eye.expand(3, 5, 5), atol=1e-12)
    assert torch.equal(qs, haar_orthogonal(5, 3, seed=2))
    assert not torch.equal(haar_orthogonal(5, seed=None), haar_orthogonal(5, seed=None))
    with pytest.raises(ValueError, match="replicates must"):
        haar_orthogonal(5, 0)


def test_ginibre_variance_and_gate_rate_match_within_standard_error():
    n, p = 64, 0.3
    w, d = sample_network(LayerLaw(n, p).product(4), 8, seed=1)
    x = w.flatten().numpy()
    # E[w^2] = sigma^2 = 1/n; standard error of the mean of w^2 is sqrt(2) sigma^2 / sqrt(N)
    se = math.sqrt(2.0) / n / math.sqrt(x.size)
    assert abs(np.mean(x**2) - 1.0 / n) < 5 * se
    g = d.flatten().numpy()
    assert set(np.unique(g)) <= {0.0, 1.0}
    assert abs(g.mean() - p) < 5 * math.sqrt(p * (1 - p) / g.size)


def test_minimum_rank_conditions_every_gate():
    _, d = sample_network(LayerLaw(10, 0.3, r=5).product(50), 20, seed=2)
    assert int(d.sum(-1).min()) >= 5
    _, d0 = sample_network(LayerLaw(10, 0.3).product(50), 20, seed=2)
    assert int(d0.sum(-1).min()) < 5  # the conditioning is not vacuous at these sizes


def test_same_seed_same_layers_and_streaming_identical():
    prod = LayerLaw(5, 0.5, r=2).product(7)
    a = sample_layers(prod, 3, seed=11)
    b = sample_layers(prod, 3, seed=11)
    c = torch.stack(list(iter_layers(prod, 3, seed=11)), 1)
    assert torch.equal(a, b) and torch.equal(a, c)
    assert not torch.equal(a, sample_layers(prod, 3, seed=12))


def test_fgln_convention_leaves_last_layer_ungated():
    law = LayerLaw(6, 0.5)
    w, d = sample_network(law.product(4), 2, seed=3)
    s5 = network_layers(w, d, "section5")
    fg = network_layers(w, d, "fgln")
    assert torch.equal(fg[:, -1], w[:, -1]) and torch.equal(fg[:, :-1], s5[:, :-1])
    with pytest.raises(ValueError, match="convention"):
        network_layers(w, d, "other")
    # the product's convention decides the layers; the weights and gates drawn are the same
    assert torch.equal(sample_network(law.product(4, "fgln"), 2, seed=3)[1], d)
    assert torch.equal(sample_layers(law.product(4), 2, seed=3), s5)
    assert torch.equal(sample_layers(law.product(4, "fgln"), 2, seed=3), fg)
    streamed = torch.stack(list(iter_layers(law.product(4, "fgln"), 2, seed=3)), 1)
    assert torch.equal(streamed, fg)


def _sample(n, L, p=1.0, sigma=None, r=None, replicates=1):
    """sample_layers of the product of L layers of LayerLaw(n, p, sigma, r)."""
    return sample_layers(LayerLaw(n, p, sigma, r).product(L), replicates)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n=0, L=3), "n must"),
        (dict(n=4, L=0), "L must"),
        (dict(n=4, L=3, p=0.0), "p must"),
        (dict(n=4, L=3, p=1.5), "p must"),
        (dict(n=4, L=3, p=float("nan")), "p must"),
        (dict(n=4, L=3, sigma=-1.0), "sigma must"),
        (dict(n=4, L=3, sigma=float("nan")), "sigma must"),
        (dict(n=4, L=3, r=5), "r must"),
        (dict(n=40, L=3, p=0.01, r=30), "unreachable"),
        (dict(n=4, L=3, replicates=0), "replicates must"),
    ],
)
def test_bad_input_raises(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _sample(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(n=4.5, L=3), "n must"),
        (dict(n=4, L=3.0), "L must"),
        (dict(n=4, L=True), "L must"),
        (dict(n=4, L=3, p="0.5"), "p must"),
        (dict(n=4, L=3, sigma="1"), "sigma must"),
        (dict(n=4, L=3, r=2.0), "r must"),
        (dict(n=4, L=3, replicates=2.0), "replicates must"),
    ],
)
def test_wrong_type_raises_type_error(kwargs, match):
    """The package's convention: a wrong type is a TypeError, a bad value a ValueError."""
    with pytest.raises(TypeError, match=match):
        _sample(**kwargs)


@pytest.mark.parametrize("fn", [sample_layers, sample_network, iter_layers, stream_log_spectra,
                                stream_lyapunov_estimates])
def test_samplers_take_a_product(fn):
    """A law or a bare width is not a product: the sampler says what it needs."""
    for wrong in (LayerLaw(4), 4):
        with pytest.raises(TypeError, match="Product"):
            out = fn(wrong, 2)
            if fn is iter_layers:
                next(out)


def test_progress_bar_follows_the_environment_unless_forced(monkeypatch, capsys):
    """progress=None (the default): a bar unless FGLN_PROGRESS=0; True or False decide."""
    prod = LayerLaw(4).product(3)
    monkeypatch.setenv("FGLN_PROGRESS", "0")
    stream_log_spectra(prod)
    assert "layers" not in capsys.readouterr().err
    stream_log_spectra(prod, progress=True)
    assert "layers" in capsys.readouterr().err
    monkeypatch.setenv("FGLN_PROGRESS", "1")
    stream_log_spectra(prod)
    assert "layers" in capsys.readouterr().err
    stream_log_spectra(prod, progress=False)
    assert "layers" not in capsys.readouterr().err


# ---------------------------------------------------------------- partial products


def test_partial_products_reassemble_the_product():
    w, d = sample_network(LayerLaw(5, 0.6).product(6), 2, seed=4)
    lay = network_layers(w, d, "section5")
    A, B = layer_partial_products(lay)
    J = product(lay)
    for l in range(7):
        assert torch.allclose(A[:, l] @ B[:, l], J, atol=1e-12)
    A7, B7 = network_partial_products(w, d)
    Jf = product(network_layers(w, d, "fgln"))
    for l in range(6):
        assert torch.allclose(A7[:, l] @ w[:, l] @ B7[:, l], Jf, atol=1e-12)
    # A_L = I and B_1 = I (Section 7, with D_0 = D_L = I)
    assert torch.equal(A7[:, -1], torch.eye(5, dtype=torch.float64).expand(2, 5, 5))
    assert torch.equal(B7[:, 0], torch.eye(5, dtype=torch.float64).expand(2, 5, 5))


# ---------------------------------------------------------------- exact log-spectra


def test_matches_direct_svd_at_small_depth():
    lay = sample_layers(LayerLaw(8).product(3), 4, seed=1)
    ref = torch.log(torch.linalg.svdvals(product(lay)))
    assert torch.allclose(log_singular_values(lay), ref, atol=1e-11)


def test_matches_high_precision_reference_where_float64_svd_fails():
    n, L = 6, 60
    lay = sample_layers(LayerLaw(n).product(L), 2, seed=3)
    ours = log_singular_values(lay).numpy()
    naive = torch.log(torch.linalg.svdvals(product(lay))).numpy()
    for b in range(2):
        ref = mp_log_svdvals([lay[b, l] for l in range(L)], dps=200)
        assert ref[0] - ref[-1] > 60  # dynamic range far beyond float64's 1e-16
        assert np.max(np.abs(ours[b] - ref)) < 1e-9
        assert np.max(np.abs(naive[b] - ref)) > 1.0  # the naive SVD is wrong here


def test_gated_product_against_high_precision_reference():
    n, L = 7, 30
    lay = sample_layers(LayerLaw(n, 0.8, r=7).product(L), 2, seed=8)  # full-rank gates: finite
    ours = log_singular_values(lay).numpy()
    for b in range(2):
        ref = mp_log_svdvals([lay[b, l] for l in range(L)], dps=120)
        assert np.max(np.abs(ours[b] - ref)) < 1e-9


def test_every_depth_in_one_pass_equals_per_depth_runs_and_top_k():
    lay = sample_layers(LayerLaw(10, 1.0).product(25), 3, seed=5)
    allv = log_spectra_by_depth(lay)
    assert allv.shape == (3, 25, 10)
    for l in (1, 7, 25):
        assert torch.allclose(allv[:, l - 1], log_singular_values(lay[:, :l]), atol=1e-12)
    topk = log_spectra_by_depth(lay, k=3, depths=[5, 25])
    assert torch.allclose(topk, allv[:, [4, 24], :3], atol=1e-7)


def test_streaming_path_gives_the_same_numbers():
    prod = LayerLaw(8, 0.5, r=3).product(40)
    lay = sample_layers(prod, 3, seed=9)
    a = log_spectra_by_depth(lay, depths=[10, 40])
    b = stream_log_spectra(prod, replicates=3, depths=[10, 40], seed=9)
    fin = torch.isfinite(a)
    assert torch.equal(fin, torch.isfinite(b))
    assert torch.allclose(a[fin], b[fin], atol=1e-12, rtol=0)
    # depths=None: every depth 1..L, as log_spectra_by_depth; k keeps the top values
    every = stream_log_spectra(prod, 2, 3, seed=9)
    assert every.shape == (3, 40, 2)
    ref = log_spectra_by_depth(lay, k=2)
    fin = torch.isfinite(ref)
    assert torch.equal(fin, torch.isfinite(every))
    assert torch.allclose(every[fin], ref[fin], atol=1e-12, rtol=0)


# ---------------------------------------------------------------- triangular factors in law


def test_factor_shape_zero_rows_and_width_follow_the_rank():
    n, b = 9, 40
    prod = LayerLaw(n, 0.5).product(6)
    rank = torch.full((b,), n)
    for R, m in iter_factors(prod, b, seed=4):
        w = int(rank.max())
        assert R.shape == (b, w, w) and m.dtype == torch.long
        assert torch.equal(R, R.triu())  # upper triangular
        rows = torch.arange(w)[None, :]
        assert (R.diagonal(dim1=-2, dim2=-1)[rows < m[:, None]] > 0).all()
        assert (R.abs().amax(-1)[rows >= m[:, None]] == 0).all()  # closed rows vanish
        rank = torch.minimum(rank, m)
    assert int(rank.max()) < n  # the width did shrink along the way
    # the fgln convention leaves the last layer ungated: rank n there
    last = list(iter_factors(LayerLaw(n, 0.5).product(3, "fgln"), b, seed=4))[-1][1]
    assert (last == n).all()


def test_factor_entries_follow_bartlett_and_could_fail():
    """Row i < m of a factor: R_ii = sigma chi_{m-i}, entries right of it N(0, sigma^2). The
    mean of log R_ii minus its closed form is 0 within 4 s.e.; shifting the degrees of
    freedom by one (chi_{m-i+1}, the classic slip) is rejected by the same statistic."""
    from scipy.special import digamma

    n, b = 8, 20000
    law = LayerLaw(n, 0.6, sigma=0.7)
    R, m = next(iter_factors(law.product(1), b, seed=11))
    i = torch.arange(n)[None, :]
    live = (i < m[:, None]).numpy()
    dof = (m[:, None] - i).numpy().astype(float)
    logd = torch.log(R.diagonal(dim1=-2, dim2=-1)).numpy()

    def z(shift):
        pred = math.log(0.7) + 0.5 * (digamma((dof + shift) / 2) + math.log(2))
        dev = (logd - np.where(live, pred, 0.0))[live]
        return dev.mean() / (dev.std(ddof=1) / math.sqrt(dev.size))

    assert abs(z(0)) < 4 and abs(z(1)) > 8
    upper = R[:, torch.triu_indices(n, n, 1)[0], torch.triu_indices(n, n, 1)[1]]
    upper = upper[live[:, torch.triu_indices(n, n, 1)[0].numpy()]]
    mean, se = float(upper.mean()), float(upper.std() / math.sqrt(upper.numel()))
    assert abs(mean) < 4 * se
    var = float((upper**2).mean())
    var_se = 0.49 * math.sqrt(2 / upper.numel())  # Var(x^2) = 2 sigma^4
    assert abs(var - 0.49) < 4 * var_se


@pytest.mark.parametrize("law", [LayerLaw(6, 1.0), LayerLaw(6, 0.5), LayerLaw(6, 0.6, r=3)])
def test_factor_spectra_have_the_law_of_layer_spectra(law):
    """The spectra of R_l ... R_1 and of M_l ... M_1 at every depth: the same fraction of
    exact zeros and the same conditional means of log s_i (two-sample z within 4.5); the
    top value of a product of ungated layers (p = 1 drawn from a 0.5 law) is rejected."""
    b, L = 3000, 8
    prod = law.product(L)
    fac = factor_log_spectra(prod, 4, b, seed=1).numpy()
    lay = stream_log_spectra(prod, 4, b, seed=2).numpy()
    for d in (0, 3, 7):
        for i in range(4):
            a, c = fac[:, d, i], lay[:, d, i]
            fa, fc = np.isfinite(a), np.isfinite(c)
            p = (fa.sum() + fc.sum()) / (2 * b)
            if 0 < p < 1:
                z_frac = (fa.mean() - fc.mean()) / math.sqrt(2 * p * (1 - p) / b)
                assert abs(z_frac) < 4.5, (d, i, z_frac)
            a, c = a[fa], c[fc]
            if min(a.size, c.size) < 30:  # (almost) always an exact zero: nothing to compare
                continue
            z = (a.mean() - c.mean()) / math.sqrt(a.var(ddof=1) / a.size + c.var(ddof=1) / c.size)
            assert abs(z) < 4.5, (d, i, z)
    if law.p < 1:
        full = factor_log_spectra(LayerLaw(6, 1.0).product(L), 1, b, seed=3).numpy()[:, -1, 0]
        a = fac[:, -1, 0][np.isfinite(fac[:, -1, 0])]
        z = (a.mean() - full.mean()) / math.sqrt(a.var(ddof=1) / a.size + full.var() / b)
        assert abs(z) > 8


def test_factor_spectra_read_every_depth_like_one_depth():
    prod = LayerLaw(10, 0.7).product(30)
    every = factor_log_spectra(prod, 3, 5, seed=8)
    some = factor_log_spectra(prod, 3, 5, depths=[30, 12], seed=8)
    fin = torch.isfinite(every[:, [11, 29]])
    assert torch.equal(fin, torch.isfinite(some))
    assert torch.allclose(every[:, [11, 29]][fin], some[fin], atol=1e-12, rtol=0)
    # the readout of the top values cuts the rows it does not read: the same values as
    # the full spectrum of the same factors
    acc = SpectrumAccumulator.start(10, 5)
    for R, m in iter_factors(prod, 5, seed=8):
        acc.push_factor(R, m)
    full = acc.log_svdvals()
    fin = torch.isfinite(full[:, :3])
    assert torch.allclose(acc.log_svdvals(3)[fin], full[:, :3][fin], atol=1e-12, rtol=0)
    assert torch.allclose(acc.log_svdvals(3)[fin], every[:, -1][fin], atol=1e-12, rtol=0)


def test_push_factor_forgets_the_frame_and_a_narrow_factor_drops_rows():
    acc = SpectrumAccumulator.start(5, 2)
    R, m = next(iter_factors(LayerLaw(5, 1.0).product(1), 2, seed=0))
    acc.push_factor(R, m)
    with pytest.raises(ValueError, match="frame is not kept"):
        acc.push(torch.randn(2, 5, 5, dtype=torch.float64))
    acc.push_factor(R[:, :3, :3], m)
    assert acc.live() == 3 and torch.isinf(acc.a[:, 3:]).all() and acc.N.shape[1] == 3
    assert torch.isinf(acc.log_svdvals()[:, 3:]).all()


@pytest.mark.parametrize("p, n, L, k", [(1.0, 48, 300, 5), (0.5, 48, 120, 4), (0.7, 24, 300, 12)])
def test_dropping_far_rows_keeps_the_top_values(p, n, L, k):
    """The same factors pushed whole and pushed on the rows kept_rows keeps (NEGLECT nats
    under the k-th): the top k values agree to 1e-12 at every depth, and rows do get dropped;
    dropping at 2 nats instead (a row of the top's own order) does change them."""
    facs = list(iter_factors(LayerLaw(n, p).product(L), 6, seed=5))

    def run(below):
        acc, out, widths = SpectrumAccumulator.start(n, 6), [], []
        for R, m in facs:
            w = acc.kept_rows(k, below) if below is not None else R.shape[-1]
            widths.append(w)
            acc.push_factor(R[:, :w, :w], m)
            out.append(acc.log_svdvals(k))
        return torch.stack(out, 1), min(widths)

    full, _ = run(None)
    kept, narrowest = run(40.0)
    fin = torch.isfinite(full)
    assert torch.equal(fin, torch.isfinite(kept)) and narrowest < n // 2
    assert float((full[fin] - kept[fin]).abs().max()) < 1e-12
    crude, _ = run(2.0)
    assert float((full[fin] - crude[fin]).abs().max()) > 1e-6
    # accumulate_factors drops rows itself when k is given (and not with below=None)
    a = SpectrumAccumulator.start(n, 6)
    accumulate_factors(iter_factors(LayerLaw(n, p).product(L), 6, seed=5), a, L, k=k)
    b = SpectrumAccumulator.start(n, 6)
    accumulate_factors(iter_factors(LayerLaw(n, p).product(L), 6, seed=5), b, L, k=k, below=None)
    assert a.live() < b.live() if p == 1.0 else a.live() <= b.live()


def test_exact_zeros_are_minus_inf_not_rounding_noise():
    n = 8
    w, d = sample_network(LayerLaw(n, 0.5).product(10), 6, seed=5)
    lay = network_layers(w, d)
    out = log_singular_values(lay)
    min_gate_rank = d.sum(-1).min(-1).values.long()
    n_zero = torch.isinf(out).sum(-1)
    assert torch.equal(n_zero, n - min_gate_rank)  # rank J = min gate rank, a.s.
    for b in range(6):  # the first rank(J) values are genuine, finite numbers
        assert torch.isfinite(out[b, : int(min_gate_rank[b])]).all()
    # a hand-made singular (non-gated) layer: rank one everywhere
    u = torch.randn(1, 1, 5, 1, dtype=torch.float64)
    v = torch.randn(1, 1, 1, 5, dtype=torch.float64)
    lay1 = torch.cat([u @ v, torch.randn(1, 2, 5, 5, dtype=torch.float64)], 1)
    out1 = log_singular_values(lay1)
    assert torch.isfinite(out1[0, 0]) and torch.isinf(out1[0, 1:]).all()


def test_no_overflow_at_depth_ten_thousand():
    L = 10_000
    out = stream_log_spectra(LayerLaw(4, 1.0).product(L), replicates=2, depths=[L], seed=0,
                             reorth_every=2)[:, 0]
    assert torch.isfinite(out).all()
    assert (out[:, :-1] >= out[:, 1:]).all()
    assert out[:, -1].max() < -10_000 * 0.5  # far below float64's smallest number


def test_reorthonormalising_in_chunks_keeps_accuracy():
    lay = sample_layers(LayerLaw(16).product(40), 3, seed=6)
    ref = log_singular_values(lay)
    assert torch.allclose(log_singular_values(lay, reorth_every=2), ref, atol=1e-8)


def test_cholesky_qr_path_matches_householder():
    lay = sample_layers(LayerLaw(16, 0.5).product(30), 4, seed=7)
    h = log_spectra_by_depth(lay, method="householder")
    c = log_spectra_by_depth(lay, method="cholqr")
    fin = torch.isfinite(h)
    assert torch.equal(fin, torch.isfinite(c))
    assert torch.allclose(h[fin], c[fin], atol=1e-9, rtol=0)
    with pytest.raises(ValueError, match="method"):
        SpectrumAccumulator.start(3, 2, method="svd")


def test_graded_svd_window_path_is_relative_accurate():
    # T = diag(e^a) N with a spanning 400 (far beyond one window)
    gen = torch.Generator().manual_seed(0)
    n = 9
    a = -torch.linspace(0, 400, n, dtype=torch.float64)
    N = torch.triu(torch.randn(n, n, generator=gen, dtype=torch.float64))
    N = N / N.norm(dim=1, keepdim=True)
    ours = graded_log_svdvals(a, N).numpy()
    mpmath.mp.dps = 300
    T = mpmath.matrix(n, n)
    for i in range(n):
        for j in range(n):
            T[i, j] = mpmath.exp(float(a[i])) * float(N[i, j])
    ref = sorted((float(mpmath.log(x)) for x in mpmath.svd_r(T, compute_uv=False)),
                 reverse=True)
    assert np.max(np.abs(ours - np.array(ref))) < 1e-9


def test_gram_route_is_relative_accurate_and_refuses_a_wide_spread():
    # close top values (spread 2 nats over the top 3): accepted and accurate to 1e-10 against
    # 300-digit arithmetic; a spread of 30 nats: refused, so the QR path takes it
    gen = torch.Generator().manual_seed(1)
    n, k = 12, 3
    a = torch.stack([-torch.linspace(0, 3, n, dtype=torch.float64),
                     -torch.linspace(0, 120, n, dtype=torch.float64)])
    N = torch.triu(torch.randn(2, n, n, generator=gen, dtype=torch.float64))
    N = N / N.norm(dim=-1, keepdim=True)
    vals, ok = gram_log_svdvals(a, N, torch.tensor([n, n]), k)
    assert ok.tolist() == [True, False]
    mpmath.mp.dps = 300
    T = mpmath.matrix(n, n)
    for i in range(n):
        for j in range(n):
            T[i, j] = mpmath.exp(float(a[0, i])) * float(N[0, i, j])
    ref = sorted((float(mpmath.log(x)) for x in mpmath.svd_r(T, compute_uv=False)),
                 reverse=True)[:k]
    assert np.max(np.abs(vals[0].numpy() - np.array(ref))) < 1e-10
    assert vals[0, 0] - vals[0, -1] <= GRAM_SPREAD
    # rank 2 < k: the third value is an exact zero (-inf), whatever the rounding
    a2 = a[:1].clone()
    a2[0, 2:] = -math.inf
    vals2, ok2 = gram_log_svdvals(a2, N[:1], torch.tensor([2]), k)
    assert bool(ok2[0]) and torch.isinf(vals2[0, 2]) and torch.isfinite(vals2[0, :2]).all()


def test_accumulator_readout_agrees_with_the_qr_route():
    # the same products read through the Gram route (accepted where the top values are
    # close) and through QR + graded SVD alone
    acc = SpectrumAccumulator.start(24, 6)
    for R, m in iter_factors(LayerLaw(24, 0.7).product(20), 6, seed=2):
        acc.push_factor(R, m)
    r = acc.N.shape[1]
    ok = gram_log_svdvals(acc.a[:, :r], acc.N, acc.rank.clamp_max(r), 6)[1]
    assert 0 < int(ok.sum()) < 6  # both routes are taken
    gram = acc.log_svdvals(6)
    R1 = torch.linalg.qr(acc.N.mT, mode="r")[1]
    qr = graded_log_svdvals_batched(acc.a[:, :r], R1, acc.rank.clamp_max(r), 6)
    fin = torch.isfinite(qr)
    assert torch.equal(fin, torch.isfinite(gram))
    assert torch.allclose(gram[fin], qr[fin], atol=1e-9, rtol=0)


def test_bad_layers_and_depths():
    with pytest.raises(ValueError, match="shape"):
        log_singular_values(torch.zeros(2, 3, 4, 5, dtype=torch.float64))
    lay = sample_layers(LayerLaw(4).product(5), seed=0)
    with pytest.raises(ValueError, match="depths"):
        log_spectra_by_depth(lay, depths=[0, 3])
    with pytest.raises(ValueError, match="k must"):
        log_spectra_by_depth(lay, k=7)


def test_qr_lyapunov_estimates_are_unbiased_for_the_exponents():
    from fgln.theory.exponents import lyapunov_exponents

    n, L, replicates = 5, 30, 400
    law = LayerLaw(n, 1.0)
    est = stream_lyapunov_estimates(law.product(L), replicates, seed=3, reorth_every=3).numpy()
    g = lyapunov_exponents(law, n)
    _, se, _ = mean_se(est)
    assert np.all(np.abs(est.mean(0) - g) < 4.5 * se)  # no 1/L bias, even at L = 30
    lay = sample_layers(LayerLaw(n, 0.5).product(12), 4, seed=1)
    a = lyapunov_estimates(lay, reorth_every=1)
    b = lyapunov_estimates(lay, reorth_every=4)
    fin = torch.isfinite(a)
    assert torch.equal(fin, torch.isfinite(b))
    assert torch.allclose(a[fin], b[fin], atol=1e-9)
    # -inf exactly past the product's rank (the smallest gate rank)
    rank = (lay != 0).any(-1).sum(-1).min(-1).values
    assert torch.equal(fin.sum(-1), rank)


def test_long_chunks_do_not_invent_zeros():
    lay = sample_layers(LayerLaw(24, 1.0).product(40), 2, seed=8)
    out = log_singular_values(lay, reorth_every=8)
    assert torch.isfinite(out).all()


# ---------------------------------------------------------------- adaptive QR interval


def _count_steps(monkeypatch):
    steps = []
    step = SpectrumAccumulator.step

    def counting(self, Z, count=1, rank_bound=None, scale=None):
        steps.append(count)
        return step(self, Z, count, rank_bound, scale)

    monkeypatch.setattr(SpectrumAccumulator, "step", counting)
    return steps


def test_adaptive_interval_matches_every_layer_to_1e_10(monkeypatch):
    lay = sample_layers(LayerLaw(64, 0.5).product(150), 8, seed=2)
    ref = log_singular_values(lay, reorth_every=1)
    steps = _count_steps(monkeypatch)
    out = log_singular_values(lay)  # default: adaptive
    fin = torch.isfinite(ref)
    assert torch.equal(fin, torch.isfinite(out))
    assert float((out - ref)[fin].abs().max()) < 1e-10
    assert sum(steps) >= 150 and len(steps) < 150 / 2.5  # several layers per QR step
    # the exponent estimates: within 1e-10 of the every-layer estimates
    g1 = lyapunov_estimates(lay, reorth_every=1)
    g = lyapunov_estimates(lay)
    fin = torch.isfinite(g1)
    assert torch.equal(fin, torch.isfinite(g))
    assert float((g - g1)[fin].abs().max()) < 1e-10


def test_adaptive_interval_redoes_a_chunk_with_a_nearly_singular_layer(monkeypatch):
    lay = sample_layers(LayerLaw(16, 1.0).product(60), 2, seed=4) * 1.5  # slow growth
    lay[:, 30, -1] *= 1e-7  # one direction of one layer nearly annihilated
    ref = log_singular_values(lay, reorth_every=1)
    steps = _count_steps(monkeypatch)
    out = log_singular_values(lay)
    assert float((out - ref).abs().max()) < 1e-10
    assert sum(steps) > 60  # the chunk holding layer 31 was pushed again, layer by layer
    fixed = log_singular_values(lay, reorth_every=max(steps))  # what a fixed interval gives
    assert float((fixed - ref).abs().max()) > 1e-10


def test_qr_interval_choices():
    from fgln.products.accumulator import QRInterval

    assert QRInterval(3).size == 3 and not QRInterval(3).adaptive
    assert not QRInterval(dtype=torch.float32).adaptive  # 1e-10 is below float32 rounding
    it = QRInterval()
    assert it.adaptive and it.size == 1
    it.observe(spread=0.1, count=1)  # slow growth: longer chunks, capped
    assert it.size == it.max_layers
    it.observe(spread=3 * it.target, count=it.size)  # fast growth: shorter at once
    assert it.size < 12 and not it.must_redo(it.target, 4) and it.must_redo(it.target + 3, 4)
    with pytest.raises(ValueError, match="tol"):
        QRInterval(tol=0.0)
    with pytest.raises(ValueError, match="reorth_every"):
        QRInterval(0)


def test_top_svd_forms_agree():
    """One helper, every form: a matrix, a batch, a list (batched or not), values only, the
    eigh route; the triplets reconstruct the matrix."""
    from fgln.products.svd import top_svd

    gen = torch.Generator().manual_seed(7)
    M = torch.randn(4, 6, 6, dtype=torch.float64, generator=gen)
    U, s, V = top_svd(M)
    assert torch.allclose(U @ torch.diag_embed(s) @ V.mT, M, atol=1e-12)
    U3, s3, V3 = top_svd(M[0], 3)
    assert U3.shape == (6, 3) and V3.shape == (6, 3)
    assert torch.equal(s3, s[0, :3])
    assert torch.equal(top_svd(M, 2, vectors=False), torch.linalg.svdvals(M)[:, :2])
    listed = top_svd(list(M), 3)
    assert all(torch.equal(x[1], s[i, :3]) for i, x in enumerate(listed))
    rect = top_svd([M[0], M[1, :4]], 2)
    assert rect[1][0].shape == (4, 2) and rect[1][2].shape == (6, 2)
    Ue, se, Ve = top_svd(M, 3, method="eigh")
    assert torch.allclose(se, s[:, :3], rtol=1e-10)
    eye = torch.eye(3, dtype=torch.float64).expand(4, 3, 3)
    assert torch.allclose((Ue.mT @ U[..., :3]).abs(), eye, atol=1e-8)
    Uf, _, Vf = top_svd(M[0, :4], full=True)
    assert Uf.shape == (4, 4) and Vf.shape == (6, 6)
    with pytest.raises(ValueError, match="method"):
        top_svd(M, method="qr")


def test_factor_spectra_come_in_cpu_batches_of_one_stream():
    from fgln.products.spectra import CPU_BATCH

    prod = LayerLaw(6, 0.5).product(5)
    many = factor_log_spectra(prod, 2, CPU_BATCH + 7, seed=4)
    first = factor_log_spectra(prod, 2, CPU_BATCH, seed=4)
    assert many.shape == (CPU_BATCH + 7, 5, 2)
    assert torch.equal(many[:CPU_BATCH], first)  # the first batch does not see the second
    assert not torch.equal(many[CPU_BATCH:], first[:7])  # the second draws on, anew
