"""ReLU networks (chapter 9): the Jacobian as a gated product, its law at one input, two inputs."""
import math

import numpy as np
import pytest
import torch

from fgln.base.statistics import mean_se
from fgln.products.sampling import sample_network
from fgln.relu.jacobians import (
    he_sigma,
    iter_relu_layers,
    relu_forward,
    relu_jacobian,
    relu_log_spectra,
    relu_products,
)
from fgln.relu.regimes import arccos_shared_fraction, input_pair_measurements, lognorm_law
from fgln.theory.exponents import lyapunov_exponents


def _net(n=7, L=4, batch=3, seed=0):
    w, _ = sample_network(n, L, 1.0, he_sigma(n), batch=batch, seed=seed)
    gen = torch.Generator().manual_seed(seed + 1)
    x = torch.randn(batch, n, generator=gen, dtype=torch.float64)
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
    w, x = _net(n=n, L=L, batch=b, seed=3)
    _, g = relu_forward(w, x)
    assert torch.all(g[:, -1] == 1)  # D_L = I
    frac = g[:, :-1].mean((0, 2)).numpy()
    se = math.sqrt(0.25 / (n * b))
    assert np.all(np.abs(frac - 0.5) < 4 * se)


def test_streamed_layers_give_the_same_jacobian():
    n, L, b = 6, 5, 2
    layers = list(iter_relu_layers(n, L, batch=b, seed=4))
    gen = torch.Generator().manual_seed(4)
    x = torch.randn(b, n, generator=gen, dtype=torch.float64)
    w, _ = sample_network(n, L, 1.0, he_sigma(n), batch=b, seed=gen)
    J = layers[0]
    for M in layers[1:]:
        J = M @ J
    assert torch.allclose(J, relu_jacobian(w, x), atol=1e-12)
    s = relu_log_spectra(n, L, replicates=b, seed=4)
    ref = torch.log(torch.linalg.svdvals(J))
    fin = torch.isfinite(s)  # -inf: exact zeros (rows killed by a gate), ~1e-16 in ref
    assert torch.allclose(s[fin], ref[fin], atol=1e-9)
    assert torch.all(ref[~fin] < ref[:, :1].expand_as(ref)[~fin] - 25)


def test_first_layer_shared_gate_fraction():
    n, samples = 64, 200
    for theta in (0.3, math.pi / 2, 2.5):
        r = input_pair_measurements(n, 3, theta, replicates=samples, seed=1)
        m, se, _ = mean_se(r["shared"][:, 0])
        assert abs(m - (1 - theta / math.pi)) < 4 * se
    assert arccos_shared_fraction(1.0, 2)[0] == pytest.approx(1 - 1 / math.pi)
    assert np.all(np.diff(arccos_shared_fraction(2.0, 10)) > 0)


def test_independent_gates_against_closed_forms():
    # log ||J u||^2 of the independently gated product: exact mean and variance
    n, L, samples = 16, 6, 3000
    r = relu_products(n, L, replicates=samples, seed=2, gated=True, spectrum=False)
    mean, var = lognorm_law(n, L)
    m, se, sd = mean_se(r["lognorm"])
    assert abs(m - mean) < 4 * se
    assert abs(sd**2 / var - 1) < 4 * math.sqrt(2 / samples) * 1.5
    # top Lyapunov exponent of a deep narrow product (Remark 5.4): QR growth per layer
    n, L = 8, 400
    r = relu_products(n, L, replicates=40, seed=3, gated=True, k=1)
    g1 = lyapunov_exponents(n, 0.5, he_sigma(n), 1, min_rank=1)[0]
    # a layer with no active unit (probability 2^-8 each) zeroes the product: the exponent is
    # that of (1, p)-gates, i.e. of the products that never die (Remark 5.4 with r = 1)
    alive = np.isfinite(r["lognorm"])
    assert 3 <= alive.sum() < alive.size
    m, se, _ = mean_se(r["lognorm"][alive] / (2 * L))
    assert abs(m - g1) < 4 * se + 1.0 / L


def test_relu_norm_law_matches_gated_law():
    n, L, samples = 16, 6, 3000
    r = relu_products(n, L, replicates=samples, seed=5, spectrum=False)
    mean, var = lognorm_law(n, L)
    m, se, sd = mean_se(r["lognorm"])
    assert abs(m - mean) < 4 * se
    assert abs(sd**2 / var - 1) < 4 * math.sqrt(2 / samples) * 1.5


@pytest.mark.parametrize("call", [
    lambda: relu_log_spectra(0, 3, replicates=2),
    lambda: relu_log_spectra(4, 0, replicates=2),
    lambda: relu_log_spectra(4, 3, replicates=0),
    lambda: relu_forward(torch.zeros(1, 2, 3, 3, dtype=torch.float64), torch.zeros(1, 4)),
    lambda: relu_forward(torch.zeros(2, 3, 3), torch.zeros(1, 3)),
    lambda: input_pair_measurements(4, 3, 4.0, replicates=2),
])
def test_bad_input_raises(call):
    with pytest.raises(ValueError):
        call()


def test_bad_input_names_argument():
    with pytest.raises(ValueError, match="n must"):
        relu_log_spectra(0, 3, replicates=2)
    with pytest.raises(ValueError, match="L must"):
        relu_log_spectra(4, -1, replicates=2)
    with pytest.raises(ValueError, match="x must"):
        relu_forward(torch.zeros(1, 2, 3, 3, dtype=torch.float64), torch.zeros(1, 4))


def test_relu_first_order_mixes_gated_and_ungated_layers():
    """L - 1 layers at p = 1/2 and one at p = 1, plus Theorem 5.3's correction over L."""
    from fgln.relu.regimes import relu_first_order
    from fgln.theory.exponents import finite_depth_constants, lyapunov_exponents

    n, k = 12, 4
    s = he_sigma(n)
    half, full = lyapunov_exponents(n, 0.5, s, k), lyapunov_exponents(n, 1.0, s, k)
    d = finite_depth_constants(n, k)
    pred1, g1 = relu_first_order(n, 1, k)
    np.testing.assert_allclose(g1, full, rtol=0, atol=1e-14)
    np.testing.assert_allclose(pred1, full + d[1:] - d[:-1], rtol=0, atol=1e-14)
    pred, g = relu_first_order(n, 1000, k)
    assert np.max(np.abs(g - half)) < 2 * np.max(np.abs(full - half)) / 1000
    assert np.all(np.diff(pred) < 0)


def test_class_overlaps_on_a_constructed_matrix():
    from fgln.runs.relu_mnist import class_overlaps

    labels = np.array([0, 0, 1, 1, 1])
    same = labels[:, None] == labels[None, :]
    ov = np.where(same, 0.8, 0.3)
    np.fill_diagonal(ov, 1.0)  # a probe with itself: left out
    assert class_overlaps(ov, labels) == pytest.approx((0.8, 0.3), abs=1e-15)
    with pytest.raises(ValueError, match="overlap must be"):
        class_overlaps(ov[:4, :4], labels)
