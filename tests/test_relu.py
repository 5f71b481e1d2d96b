"""ReLU networks (chapter 9): the Jacobian as a gated product, its law at one input, two inputs."""
import math

import numpy as np
import pytest
import torch

from fgln.base.laws import LayerLaw
from fgln.base.statistics import mean_se
from fgln.products.sampling import sample_network
from fgln.relu.jacobians import (
    iter_relu_layers,
    relu_forward,
    relu_jacobian,
    relu_log_spectra,
    relu_probe_log_norms,
    relu_products,
)
from fgln.relu.regimes import (
    arccos_shared_fraction,
    input_pair_measurements,
    lognorm_law,
    relu_alignment,
    relu_first_order,
)
from fgln.theory.exponents import lyapunov_exponents


def _relu(n, L):
    """The product a bias-free ReLU network of width n and depth L computes at one input."""
    return LayerLaw.he(n).product(L, "fgln")


def _net(n=7, L=4, replicates=3, seed=0):
    w, _ = sample_network(LayerLaw.he(n, 1.0).product(L), replicates, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(replicates, n, generator=gen, dtype=torch.float64)
    return w, x


def _f(w, x):
    h = x
    for l in range(w.shape[0] - 1):
        h = torch.relu(w[l] @ h)
    return w[-1] @ h


def test_jacobian_equals_autograd():
    w, x = _net()
    J = relu_jacobian(w, x)
    for b in range(w.shape[0]):
        Ja = torch.autograd.functional.jacobian(lambda z, b=b: _f(w[b], z), x[b])
        assert torch.allclose(J[b], Ja, rtol=0, atol=1e-10)


def test_jacobian_applied_to_input_is_output():
    w, x = _net(n=9, L=6)
    f, _ = relu_forward(w, x)
    J = relu_jacobian(w, x)
    assert torch.allclose((J @ x[..., None])[..., 0], f, rtol=0, atol=1e-10)
    for b in range(w.shape[0]):
        assert torch.allclose(f[b], _f(w[b], x[b]), rtol=0, atol=1e-12)


def test_gate_fraction_per_layer():
    # each gate is 1[N(0, s^2) > 0] given the past: mean 1/2, s.e. from the binomial
    n, L, b = 64, 5, 200
    w, x = _net(n=n, L=L, replicates=b, seed=3)
    _, g = relu_forward(w, x)
    assert torch.all(g[:, -1] == 1)  # D_L = I
    frac = g[:, :-1].mean((0, 2)).numpy()
    se = math.sqrt(0.25 / (n * b))
    assert np.all(np.abs(frac - 0.5) < 4 * se)


def test_streamed_layers_give_the_same_jacobian():
    n, L, b = 6, 5, 2
    prod = _relu(n, L)
    layers = list(iter_relu_layers(prod, b, seed=4))
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(b, n, generator=gen, dtype=torch.float64)
    w, _ = sample_network(LayerLaw.he(n, 1.0).product(L), b, seed=gen)
    J = layers[0]
    for M in layers[1:]:
        J = M @ J
    assert torch.allclose(J, relu_jacobian(w, x), atol=1e-12)
    s = relu_log_spectra(prod, None, b, depths=[L], seed=4)
    assert s.shape == (b, 1, n)
    s = s[:, 0]
    ref = torch.log(torch.linalg.svdvals(J))
    fin = torch.isfinite(s)  # -inf: exact zeros (rows killed by a gate), ~1e-16 in ref
    assert torch.allclose(s[fin], ref[fin], atol=1e-9)
    assert torch.all(ref[~fin] < ref[:, :1].expand_as(ref)[~fin] - 25)
    # depths=None: every depth 1..L, the partial products D_l W_l ... D_1 W_1 (J at depth L)
    every = relu_log_spectra(prod, 3, b, seed=4)
    assert every.shape == (b, L, 3)
    assert torch.equal(torch.isfinite(every[:, -1]), fin[:, :3])
    assert torch.allclose(every[:, -1][fin[:, :3]], s[:, :3][fin[:, :3]], atol=1e-9)
    P = layers[0]
    for l in range(1, L):
        ref_l = torch.log(torch.linalg.svdvals(P))[:, :3]
        ok = torch.isfinite(every[:, l - 1])
        assert torch.allclose(every[:, l - 1][ok], ref_l[ok], atol=1e-9)
        P = layers[l] @ P


def test_first_layer_shared_gate_fraction():
    n, samples = 64, 200
    for theta in (0.3, math.pi / 2, 2.5):
        r = input_pair_measurements(_relu(n, 3), theta, samples, seed=1)
        m, se, _ = mean_se(r["shared"][:, 0])
        assert abs(m - (1 - theta / math.pi)) < 4 * se
    assert arccos_shared_fraction(1.0, 2)[0] == pytest.approx(1 - 1 / math.pi)
    assert np.all(np.diff(arccos_shared_fraction(2.0, 10)) > 0)


def test_independent_gates_against_closed_forms():
    # log ||J u||^2 of the independently gated product: exact mean and variance
    n, L, samples = 16, 6, 3000
    r = relu_products(_relu(n, L), None, samples, gated=True, spectrum=False, seed=2)
    mean, var = lognorm_law(_relu(n, L))
    m, se, sd = mean_se(r["lognorm"])
    assert abs(m - mean) < 4 * se
    assert abs(sd**2 / var - 1) < 4 * math.sqrt(2 / samples) * 1.5
    # top Lyapunov exponent of a deep narrow product (Remark 5.4): QR growth per layer
    n, L = 8, 400
    r = relu_products(_relu(n, L), 1, 40, gated=True, seed=3)
    g1 = lyapunov_exponents(LayerLaw.he(n).replace(r=1), 1)[0]
    # a layer with no active unit (probability 2^-8 each) zeroes the product: the exponent is
    # that of (1, p)-gates, i.e. of the products that never die (Remark 5.4 with r = 1)
    alive = np.isfinite(r["lognorm"])
    assert 3 <= alive.sum() < alive.size
    m, se, _ = mean_se(r["lognorm"][alive] / (2 * L))
    assert abs(m - g1) < 4 * se + 1.0 / L


def test_relu_norm_law_matches_gated_law():
    n, L, samples = 16, 6, 3000
    r = relu_products(_relu(n, L), None, samples, spectrum=False, seed=5)
    mean, var = lognorm_law(_relu(n, L))
    m, se, sd = mean_se(r["lognorm"])
    assert abs(m - mean) < 4 * se
    assert abs(sd**2 / var - 1) < 4 * math.sqrt(2 / samples) * 1.5


def test_probe_from_two_columns_has_the_law_of_the_full_layers():
    """relu_probe_log_norms against iter_relu_layers (full n x n layers, probe e_1): the same
    law, by a two-sample z-test on the mean and the variance of log ||J u||^2, and the same
    fraction of probes that die (n = 4: a gate closes on the whole probe now and then)."""
    n, L, samples = 4, 8, 4000
    prod = _relu(n, L)
    two = relu_probe_log_norms(prod, samples, seed=7).numpy()
    probe = torch.zeros(samples, n, dtype=torch.float64)
    probe[:, 0] = 1.0
    norms = []
    for _ in iter_relu_layers(prod, samples, probe=probe, log_norms=norms, seed=8):
        pass
    full = torch.stack(norms).sum(0).numpy()
    dead2, deadf = np.mean(~np.isfinite(two)), np.mean(~np.isfinite(full))
    assert 0.01 < deadf < 0.5
    assert abs(dead2 - deadf) < 4 * math.sqrt(2 * deadf * (1 - deadf) / samples)
    a, b = two[np.isfinite(two)], full[np.isfinite(full)]
    (ma, sa, da), (mb, sb, db) = mean_se(a), mean_se(b)
    assert abs(ma - mb) < 4 * math.hypot(sa, sb)
    assert abs(da**2 / db**2 - 1) < 4 * math.sqrt(2 / len(a) + 2 / len(b)) * 2
    # the test tells laws apart: two gated layers fewer give another mean
    short = relu_probe_log_norms(_relu(n, L - 2), samples, seed=7).numpy()
    mc, sc, _ = mean_se(short[np.isfinite(short)])
    assert abs(mc - mb) > 4 * math.hypot(sc, sb)


@pytest.mark.parametrize("call", [
    lambda: relu_log_spectra(_relu(0, 3), replicates=2),
    lambda: relu_log_spectra(_relu(4, 0), replicates=2),
    lambda: relu_log_spectra(_relu(4, 3), replicates=0),
    lambda: relu_log_spectra(_relu(4, 3), replicates=2, depths=[4]),
    lambda: relu_forward(torch.zeros(1, 2, 3, 3, dtype=torch.float64), torch.zeros(1, 4)),
    lambda: relu_forward(torch.zeros(2, 3, 3), torch.zeros(1, 3)),
    lambda: input_pair_measurements(_relu(4, 3), 4.0, 2),
])
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()


def test_bad_input_names_argument():
    with pytest.raises(ValueError, match="n must"):
        relu_log_spectra(_relu(0, 3), replicates=2)
    with pytest.raises(ValueError, match="L must"):
        relu_log_spectra(_relu(4, -1), replicates=2)
    with pytest.raises(ValueError, match="replicates must"):
        relu_log_spectra(_relu(4, 3), replicates=0)
    with pytest.raises(ValueError, match="x must"):
        relu_forward(torch.zeros(1, 2, 3, 3, dtype=torch.float64), torch.zeros(1, 4))


@pytest.mark.parametrize("fn", [
    lambda prod: relu_log_spectra(prod, replicates=2),
    lambda prod: relu_products(prod, replicates=2),
    lambda prod: relu_probe_log_norms(prod, 2),
    lambda prod: next(iter_relu_layers(prod, 2)),
    lambda prod: lognorm_law(prod),
    lambda prod: input_pair_measurements(prod, 0.5, 2),
    lambda prod: relu_alignment(prod, 2, 2),
    lambda prod: relu_first_order(prod, 2),
])
def test_relu_products_leave_the_last_layer_ungated(fn):
    """A ReLU network's product has the convention "fgln"; a Section 5 product (every layer
    gated) is refused with the product to build instead, and a law is not a product."""
    with pytest.raises(ValueError, match=r"convention 'fgln'.*product\(L, 'fgln'\)"):
        fn(LayerLaw.he(4).product(3))
    with pytest.raises(TypeError, match="product must be a Product"):
        fn(LayerLaw.he(4))


def test_relu_first_order_mixes_gated_and_ungated_layers():
    """L - 1 layers at p = 1/2 and one at p = 1, plus Theorem 5.3's correction over L."""
    from fgln.theory.exponents import finite_depth_constants

    n, k = 12, 4
    law = LayerLaw.he(n)
    assert law.scale == math.sqrt(2 / n) and law.p == 0.5  # He's scale, gates open half
    half, full = lyapunov_exponents(law, k), lyapunov_exponents(law.replace(p=1.0), k)
    d = finite_depth_constants(n, k)
    pred1, g1 = relu_first_order(law.product(1, "fgln"), k)
    np.testing.assert_allclose(g1, full, rtol=0, atol=1e-14)
    np.testing.assert_allclose(pred1, full + d[1:] - d[:-1], rtol=0, atol=1e-14)
    pred, g = relu_first_order(law.product(1000, "fgln"), k)
    assert np.max(np.abs(g - half)) < 2 * np.max(np.abs(full - half)) / 1000
    assert np.all(np.diff(pred) < 0)


def test_relu_alignment_at_relu_and_independent_gates():
    """rho [replicates, L] in [-1, 1] and the log singular values of J; the same seed gives the
    same numbers, ReLU and independent gates differ."""
    n, L, k, b = 8, 5, 3, 4
    prod = _relu(n, L)
    relu = relu_alignment(prod, k, b, seed=1)
    assert relu["rho"].shape == (b, L) and relu["log_sv_J"].shape == (b, n)
    assert np.all(np.abs(relu["rho"]) <= 1 + 1e-12)
    again = relu_alignment(prod, k, b, seed=1)
    np.testing.assert_array_equal(again["rho"], relu["rho"])
    gated = relu_alignment(prod, k, b, gated=True, seed=1)
    assert gated["rho"].shape == (b, L) and not np.array_equal(gated["rho"], relu["rho"])


def test_class_overlaps_on_a_constructed_matrix():
    from fgln.runs.relu_mnist import class_overlaps

    labels = np.array([0, 0, 1, 1, 1])
    same = labels[:, None] == labels[None, :]
    ov = np.where(same, 0.8, 0.3)
    np.fill_diagonal(ov, 1.0)  # a probe with itself: left out
    assert class_overlaps(ov, labels) == pytest.approx((0.8, 0.3), abs=1e-15)
    with pytest.raises(ValueError, match="overlap must be"):
        class_overlaps(ov[:4, :4], labels)
