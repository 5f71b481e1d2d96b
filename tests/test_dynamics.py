"""Singular-value dynamics: Lemmas A.1, E.1, E.2, Propositions 4.5 and 7.1, Remark 7.2 and the
Appendix G.1 process (fgln.theory.flow_rates, network_assumptions, recorders, g1_process)."""
import math
from functools import partial

import numpy as np
import pytest
import torch

from fgln.base.laws import LayerLaw
from fgln.products.partial_products import network_partial_products
from fgln.products.sampling import sample_network
from fgln.theory import _layer_rates as kernel
from fgln.theory.flow_rates import (
    balanced_singular_value_rates,
    partials_jacobian_derivative,
    partials_weight_gradients,
    projections,
    prop71_rates,
    remark72_rates,
    singular_value_rates,
)
from fgln.theory.g1_process import (
    fit_g1_constant,
    fit_g1_exponent,
    g1_process,
    growth_phase_ratio,
    rise_times,
    theory_constant,
)
from fgln.training.balanced_networks import balance_residuals, balanced_masked_network
from fgln.training.network_assumptions import (
    alignment_errors,
    column_alignment_error,
    network_depth_scaling,
    row_sum_alignment_error,
    subspace_alignment,
)
from fgln.training.network_flow import (
    aligned_rates,
    flow_jacobian_derivative,
    flow_rate_terms,
    flow_singular_value_rates,
    weight_gradients,
)
from fgln.training.networks import FixedGatesNetwork
from fgln.training.recorders import DynamicsRecorder, dynamics_snapshot
from fgln.training.synthetic_runs import synthetic_task
from fgln.training.train import half_mse, train

D = torch.float64


def rect_net(seed=0, widths=(5, 7, 6, 8, 4)):
    gen = torch.Generator().manual_seed(seed)
    ws = [torch.randn(widths[l], widths[l - 1], generator=gen, dtype=D) / math.sqrt(widths[l - 1])
          for l in range(1, len(widths))]
    gs = [torch.rand(widths[l], generator=gen, dtype=D) + 0.5 for l in range(1, len(widths) - 1)]
    return FixedGatesNetwork(ws, gs)


def loss_of_J(J):
    """A smooth non-quadratic loss of J."""
    return (J.sin() * torch.arange(J.numel(), dtype=D).reshape(J.shape)).sum() + (J ** 4).sum()


def grad_J(net):
    J = net.jacobian().detach().requires_grad_(True)
    return torch.autograd.grad(loss_of_J(J), J)[0]


def balanced(seed=0, n=6, L=4, p=0.7):
    gen = torch.Generator().manual_seed(seed)
    gates = [(torch.rand(n, generator=gen) < p).double() for _ in range(L - 1)]
    return balanced_masked_network([n] * (L + 1), gates, seed=seed)


def test_lemma_a1_weight_gradients_equal_autograd():
    net = rect_net()
    G = grad_J(net)
    auto = torch.autograd.grad(loss_of_J(net.jacobian()), list(net.weights))
    for ours, ref in zip(weight_gradients(net, G), auto):
        assert torch.allclose(ours, ref, rtol=1e-11, atol=1e-12)


def test_flow_theory_takes_the_sampled_tensors():
    """The theory's Lemma A.1 and E.1 on (weights, gates) of the sampler equal the network's."""
    W, D = sample_network(LayerLaw(5, 0.6, 1 / math.sqrt(5)).product(4), 1, seed=3)
    A, B = network_partial_products(W, D)
    net = FixedGatesNetwork.random([5] * 5, 0.6, seed=3)
    assert torch.equal(net.weights[0].detach(), W[0, 0])
    G = grad_J(net)
    for ours, ref in zip(partials_weight_gradients(A[0], B[0], G), weight_gradients(net, G)):
        assert torch.allclose(ours, ref, rtol=1e-12, atol=1e-13)
    assert torch.allclose(partials_jacobian_derivative(A[0], B[0], G),
                          flow_jacobian_derivative(net, G), rtol=1e-12, atol=1e-13)
    with pytest.raises(ValueError, match="grad_J must have shape"):
        partials_weight_gradients(A[0], B[0], G[:, :3])


def test_lemma_e2_rates_equal_finite_differences():
    gen = torch.Generator().manual_seed(1)
    J = torch.randn(7, 5, generator=gen, dtype=D)
    Jd = torch.randn(7, 5, generator=gen, dtype=D)
    h = 1e-6
    fd = (torch.linalg.svdvals(J + h * Jd) - torch.linalg.svdvals(J - h * Jd)) / (2 * h)
    assert torch.allclose(singular_value_rates(J, Jd), fd, rtol=1e-7, atol=1e-8)
    assert singular_value_rates(J, Jd, k=2).shape == (2,)


def test_lemma_e1_flow_derivative_and_exact_rates_equal_finite_differences():
    net = rect_net(2)
    G = grad_J(net)
    grads = weight_gradients(net, G)
    h = 1e-6
    w0 = [w.detach().clone() for w in net.weights]

    def moved(direction):
        with torch.no_grad():
            for w, a, g in zip(net.weights, w0, grads):
                w.copy_(a - direction * h * g)
            return net.jacobian().clone()

    Jp, Jm = moved(+1), moved(-1)
    moved(0)
    fd = (Jp - Jm) / (2 * h)
    assert torch.allclose(flow_jacobian_derivative(net, G), fd, rtol=1e-7, atol=1e-9)
    fd_s = (torch.linalg.svdvals(Jp) - torch.linalg.svdvals(Jm)) / (2 * h)
    rates = flow_singular_value_rates(net, G)
    assert torch.allclose(rates, fd_s, rtol=1e-6, atol=1e-8)
    assert flow_rate_terms(net, G, k=3).shape == (net.depth, 3)


def test_remark72_exact_form_is_an_identity():
    net = rect_net(3, widths=(6, 6, 6, 6, 6))
    G = grad_J(net)
    layers = [m.detach() for m in net.layers()]
    gates = [None] + list(net.gates) + [None]
    mdot = [-(w if gates[l] is None else gates[l][:, None] * w)
            for l, w in enumerate(weight_gradients(net, G), start=1)]
    r = remark72_rates(layers, mdot, delta=torch.zeros(6), k=4)
    assert torch.allclose(r["exact"], flow_singular_value_rates(net, G, 4), rtol=1e-9,
                          atol=1e-12)
    assert set(r) == {"exact", "triangular", "remark"}
    # Remark 7.2 (ii) as printed, V_B V^T for V_B^T V: the sum is no longer the rate
    bad = remark72_rates(layers, mdot, delta=None, k=4, reading="printed")["exact"]
    assert float((bad - r["exact"]).abs().max()) > 1e-3 * float(r["exact"].abs().max())
    # the default reading is the corrected one, the rate itself
    corrected = remark72_rates(layers, mdot, delta=None, k=4, reading="corrected")["exact"]
    assert torch.equal(corrected, remark72_rates(layers, mdot, None, 4)["exact"])
    assert torch.allclose(corrected, r["exact"], rtol=1e-12, atol=1e-14)
    with pytest.raises(ValueError, match="reading"):
        remark72_rates(layers, mdot, delta=None, reading="T")


def test_layer_kernel_batched_equals_layer_by_layer_and_the_formula():
    gen = torch.Generator().manual_seed(4)
    L, n, k = 3, 5, 3
    A, B = (torch.randn(L, n, n, generator=gen, dtype=D) for _ in range(2))
    G = torch.randn(n, n, generator=gen, dtype=D)
    U, _, V = torch.linalg.svd(torch.randn(n, n, generator=gen, dtype=D))
    U, V = U[:, :k], V[:, :k]
    grad_W = kernel.over_layers(partial(kernel.lemma_a1_gradients, G), A, B)
    batched = kernel.over_layers(partial(kernel.flow_terms, U, V), A, grad_W, B)
    looped = kernel.over_layers(partial(kernel.flow_terms, U, V), list(A), list(grad_W), list(B))
    formula = torch.stack([-(U.T @ a @ a.T @ G @ b.T @ b @ V).diagonal() for a, b in zip(A, B)])
    assert batched.shape == (L, k)
    assert torch.allclose(batched, looped, rtol=1e-13, atol=1e-13)
    assert torch.allclose(batched, formula, rtol=1e-12, atol=1e-12)
    with pytest.raises(ValueError, match="one entry per layer"):
        kernel.over_layers(kernel.lemma_a1_gradients, [G], list(A), list(B))


def test_triangular_cores_are_the_truncated_sums():
    """core_k = sum_{i <= k, j <= k} X_ki (s_Qi / s_Qk) Y_ij (s_Pj / s_Pk) Z_jk, 0 where
    s_Qk or s_Pk is 0."""
    gen = torch.Generator().manual_seed(5)
    k = 4
    X, Y, Z = (torch.randn(2, k, k, generator=gen, dtype=D) for _ in range(3))
    sq = torch.tensor([[3.0, 2.0, 1.0, 0.5], [2.0, 1.0, 0.0, 0.0]], dtype=D)
    sp = torch.tensor([[4.0, 1.0, 0.5, 0.0], [1.0, 0.9, 0.8, 0.7]], dtype=D)
    got = kernel.remark72_triangular_cores(X, sq, Y, sp, Z)
    ref = torch.zeros(2, k, dtype=D)
    for b in range(2):
        for kk in range(k):
            if sq[b, kk] > 0 and sp[b, kk] > 0:
                ref[b, kk] = sum(X[b, kk, i] * sq[b, i] / sq[b, kk] * Y[b, i, j] * sp[b, j]
                                 / sp[b, kk] * Z[b, j, kk]
                                 for i in range(kk + 1) for j in range(kk + 1))
    assert torch.allclose(got, ref, rtol=1e-13, atol=1e-13)


def test_remark72_with_a_narrow_layer_and_unequal_widths():
    """Products narrower than k (zero-padded blocks) and rectangular layers: the exact form is
    still the rate and the truncation keeps only the blocks that exist."""
    for widths, k in [((5, 7, 6, 8, 4), 4), ((6, 3, 6, 5), 3)]:
        net = rect_net(6, widths)
        G = grad_J(net)
        layers = [m.detach() for m in net.layers()]
        gates = [None] + list(net.gates) + [None]
        mdot = [-(w if gates[l] is None else gates[l][:, None] * w)
                for l, w in enumerate(weight_gradients(net, G), start=1)]
        r = remark72_rates(layers, mdot, torch.zeros(k, dtype=D), k)
        assert torch.allclose(r["exact"], flow_singular_value_rates(net, G, k), rtol=1e-9,
                              atol=1e-12)
        assert torch.isfinite(r["triangular"]).all() and torch.isfinite(r["remark"]).all()
    # k beyond a product's rank: the missing rows of the truncation are zero
    r5 = remark72_rates(layers, mdot, None, 5)
    assert r5["triangular"].shape == (5,) and torch.isfinite(r5["triangular"]).all()
    assert torch.allclose(r5["triangular"][:3], r["triangular"], rtol=1e-10, atol=1e-12)


def test_balanced_network_meets_every_assumption_exactly():
    net = balanced(0)
    J = net.jacobian().detach()
    r = int((torch.linalg.svdvals(J) > 1e-10).sum())
    G = grad_J(net)
    exact = flow_singular_value_rates(net, G, r)
    # Proposition 4.5 at an instant: exact for a balanced masked network
    prop45 = balanced_singular_value_rates(J, G, net.depth, r)
    assert torch.allclose(prop45, exact, rtol=1e-9, atol=1e-12)
    # depth scaling holds with delta = 0 and alignment is perfect, so Proposition 7.1 and
    # Remark 7.2 are exact too
    fit = network_depth_scaling(net, r)
    assert float(fit.epsilon.max()) < 1e-9 and float(fit.delta.abs().max()) < 1e-9
    s_layer = torch.linalg.svdvals(net.weights[0].detach())[:r]
    assert torch.allclose(fit.gamma, torch.log(s_layer), atol=1e-9)
    ea, eb = alignment_errors(net, r)
    assert float(ea.max()) < 1e-8 and float(eb.max()) < 1e-8
    sa, sb = subspace_alignment(net, r)
    assert float(sa.max()) < 1e-6 and float(sb.max()) < 1e-6
    assert torch.allclose(prop71_rates(J, G, net.depth, fit.delta, r), exact, rtol=1e-8)
    assert torch.allclose(aligned_rates(net, G, r), exact, rtol=1e-8)
    rem = remark72_rates([m.detach() for m in net.layers()],
                         [-(g if i == len(net.gates) else net.gates[i][:, None] * g)
                          for i, g in enumerate(weight_gradients(net, G))], fit.delta, r)
    assert torch.allclose(rem["remark"], exact, rtol=1e-7, atol=1e-12)


def test_row_sum_alignment_error_is_the_operator_infinity_norm():
    gen = torch.Generator().manual_seed(0)
    Q = torch.linalg.qr(torch.randn(3, 7, 7, generator=gen, dtype=torch.float64))[0]
    R = Q[:, :4, :4]
    norm = row_sum_alignment_error(R)
    sign = torch.where(R.diagonal(dim1=-2, dim2=-1) < 0, -1.0, 1.0).to(R.dtype)
    M = R * sign[:, None, :] - torch.eye(4, dtype=R.dtype)
    for b in range(3):  # the induced norm: the largest |Mx|_inf over |x|_inf = 1, at a sign vector
        x = torch.tensor(np.array(np.meshgrid(*[[-1.0, 1.0]] * 4)).reshape(4, -1))
        assert math.isclose(float((M[b] @ x).abs().max()), float(norm[b]), rel_tol=1e-12)
    # between the entrywise reading and r times it; zero for the identity up to column signs
    entry = column_alignment_error(R).amax(-1)
    assert torch.all(entry <= norm + 1e-15) and torch.all(norm <= 4 * entry + 1e-15)
    assert float(norm[0]) > float(entry[0]) + 0.1
    assert float(row_sum_alignment_error(torch.diag(torch.tensor([1.0, -1.0, 1.0])))) == 0.0
    with pytest.raises(ValueError, match="r, r"):
        row_sum_alignment_error(R[..., :3])


def test_random_network_breaks_the_assumptions():
    net = FixedGatesNetwork.random([8] * 6, 0.5, seed=0)
    G = grad_J(net)
    J = net.jacobian().detach()
    exact = flow_singular_value_rates(net, G, 3)
    prop45 = balanced_singular_value_rates(J, G, net.depth, 3)
    assert float(((prop45 - exact) / exact).abs().max()) > 0.05
    assert float(alignment_errors(net, 3)[0].max()) > 0.05


def test_balance_is_kept_by_gradient_descent_with_a_residual_proportional_to_the_step():
    X, Y, _ = synthetic_task(6, 3, 60, seed=0)
    T = 2.0
    res = []
    for lr in (0.02, 0.01, 0.005):
        net = balanced(1)
        assert float(balance_residuals(net).max()) < 1e-12
        train(net, (X, Y), half_mse, lr=lr, steps=round(T / lr), progress=False, recorders=[])
        res.append(float(balance_residuals(net).max()))
    assert res[0] > 1e-6  # the discrete steps do break it ...
    for a, b in zip(res, res[1:]):  # ... by O(lr): halving the step halves the residual
        assert 1.7 < a / b < 2.3


def test_prop45_rates_match_gradient_descent_within_an_error_proportional_to_the_step():
    X, Y, _ = synthetic_task(6, 3, 60, seed=1)
    T, r = 1.5, 3
    errs = []
    for lr in (0.02, 0.01, 0.005):
        net = balanced(2)
        grid = [round(t / lr) for t in (0.0, 0.5, 1.0, T)]
        rec = sorted(set(grid) | {g + 1 for g in grid})

        def cb(ctx):
            J = ctx.net.jacobian().detach()
            return {"pred": balanced_singular_value_rates(J, ctx.grad_J, ctx.net.depth, r),
                    "s": torch.linalg.svdvals(J)[:r]}

        h = train(net, (X, Y), half_mse, lr=lr, steps=max(rec), record=rec, callback=cb,
                  progress=False, recorders=[]).history
        steps = list(h["step"])
        e = 0.0
        for g in grid:  # measured: one gradient step, (s(step + 1) - s(step)) / lr
            i, j = steps.index(g), steps.index(g + 1)
            meas = (h["s"][j] - h["s"][i]) / lr
            e = max(e, float(np.abs(meas - h["pred"][i]).max() / np.abs(h["pred"][i]).max()))
        errs.append(e)
    assert errs[0] > 1e-5
    for a, b in zip(errs, errs[1:]):
        assert 1.6 < a / b < 2.4


def test_dynamics_recorder_fields():
    X, Y, _ = synthetic_task(6, 2, 30, seed=0)
    net = FixedGatesNetwork.random([6] * 5, 0.7, seed=0)
    h = train(net, (X, Y), half_mse, lr=0.05, steps=4, record=2, progress=False,
              recorders=[DynamicsRecorder(k=3)]).history
    L, k = 4, 3
    assert h["terms_flow"].shape == (3, L, k) and h["err_A"].shape == (3, L - 1, k)
    assert h["resid_prefix"].shape == (3, L, k) and h["resid_suffix"].shape == (3, L - 1, k)
    assert np.allclose(h["terms_flow"].sum(1), h["rate_flow"])
    assert np.allclose(h["rate_prop71"], h["rate_prop45"] * np.exp((2 + 2 / L) * h["delta"]))
    assert {"rate_rem72", "rate_rem72_tri", "rate_aligned", "gamma", "eps_depth"} <= set(h)
    # the subspace of the angles: at most k, k by default
    assert DynamicsRecorder(k=3).subspace is None and DynamicsRecorder(3, subspace=2).subspace == 2
    with pytest.raises(ValueError, match="subspace"):
        DynamicsRecorder(k=3, subspace=4)


@pytest.mark.parametrize("widths", [[7] * 5, [7, 9, 8, 7, 6]])  # batched and general paths
def test_snapshot_equals_the_public_functions(widths):
    net = FixedGatesNetwork.random(widths, 0.8, seed=3)
    G = grad_J(net)
    k, L = 4, 4
    snap = dynamics_snapshot(net, G, k)
    J = net.jacobian().detach()

    def close(a, b, tol=1e-9):
        assert torch.allclose(a, b, rtol=tol, atol=tol * float(b.abs().max())), (a, b)

    close(snap["terms_flow"], flow_rate_terms(net, G, k))
    close(snap["rate_aligned"], aligned_rates(net, G, k))
    close(snap["rate_prop45"], balanced_singular_value_rates(J, G, L, k))
    fit = network_depth_scaling(net, k)
    for key, val in [("gamma", fit.gamma), ("delta", fit.delta), ("eps_depth", fit.epsilon),
                     ("resid_prefix", fit.resid_prefix), ("resid_suffix", fit.resid_suffix)]:
        close(snap[key], val)
    close(snap["rate_prop71"], prop71_rates(J, G, L, fit.delta, k))
    ea, eb = alignment_errors(net, k)
    close(snap["err_A"], ea)
    close(snap["err_B"], eb)
    sa, sb = subspace_alignment(net, k)
    close(snap["sin_A"], sa, 1e-7)
    close(snap["sin_B"], sb, 1e-7)
    sub = dynamics_snapshot(net, G, k, subspace=2)  # angles of the top-2 subspaces only
    sa2, sb2 = subspace_alignment(net, 2)
    close(sub["sin_A"], sa2, 1e-7)
    close(sub["sin_B"], sb2, 1e-7)
    # the operator infinity norm of the top-r block, from plain SVDs of the partial products
    with torch.no_grad():
        A, B = net.partial_products()
    U, _, Vh = torch.linalg.svd(J.double())
    for r, s in ((k, snap), (2, sub)):
        inf_a = torch.stack([row_sum_alignment_error(
            U[:, :r].T @ torch.linalg.svd(a.double())[0][:, :r]) for a in A[:-1]])
        inf_b = torch.stack([row_sum_alignment_error(
            Vh[:r] @ torch.linalg.svd(b.double())[2][:r].T) for b in B[1:]])
        close(s["inf_A"], inf_a, 1e-7)
        close(s["inf_B"], inf_b, 1e-7)
    gates = [None] + list(net.gates) + [None]
    mdot = [-(w if gates[l] is None else gates[l][:, None] * w)
            for l, w in enumerate(weight_gradients(net, G), start=1)]
    rem = remark72_rates([m.detach() for m in net.layers()], mdot, fit.delta, k)
    close(snap["rate_rem72"], rem["remark"])
    close(snap["rate_rem72_tri"], rem["triangular"])


def test_g1_process_and_the_fitted_constant():
    rng = np.random.default_rng(0)
    t = np.arange(0, 400, 4.0)
    g = -0.5 - 0.2 * np.sin(t / 50.0) + 0.01 * rng.standard_normal(t.size)
    s = g1_process(0.1, g, t, -0.003, L=10)
    assert np.all(np.diff(s) > 0)
    assert math.isclose(fit_g1_constant(s, g, t, L=10), -0.003, rel_tol=1e-6)
    # every step: exactly the paper's recursion s(t+1) = s(t) + C s^{2-2/L} g
    s1 = g1_process(0.5, [0.1, 0.2, 0.3], [0, 1, 2], 2.0, L=2)
    assert np.allclose(s1, [0.5, 0.5 + 2 * 0.5 * 0.1, 0.6 + 2 * 0.6 * 0.2])
    # every step, g interpolated between records: the same recursion, and the fit recovers C
    s_every = g1_process(0.1, g, t, -0.003, L=10, every_step=True)
    s_unit = g1_process(0.1, np.interp(np.arange(0, 397), t, g), np.arange(0, 397.0), -0.003,
                        L=10)
    assert np.allclose(s_every, s_unit[t.astype(int)], rtol=1e-12)
    assert math.isclose(fit_g1_constant(s_every, g, t, 10, every_step=True), -0.003,
                        rel_tol=1e-6)
    th = theory_constant(0.01, 10, np.array([0.0, 0.5]))
    assert np.allclose(th, [-0.1, -0.1 * math.exp(2.2 * 0.5)])


def test_g1_process_is_the_plain_recursion_and_overflows_to_inf():
    # the recursion step by step on numpy scalars, written out: equal to the last bit
    rng = np.random.default_rng(3)
    g = rng.standard_normal(300) * 0.05
    t = np.arange(300.0)
    ref = [np.float64(0.7)]
    for i in range(299):
        ref.append(ref[-1] + np.float64(-0.2) * max(ref[-1], 0.0) ** 1.8 * g[i])
    assert np.array_equal(g1_process(0.7, g, t, -0.2, L=10), np.asarray(ref))
    assert np.array_equal(g1_process(0.7, g, t, -0.2, L=10, every_step=True), np.asarray(ref))
    # a growing process: inf from the step it leaves the float range on, in both modes; with
    # exponent 3.5 the power itself overflows
    grow = np.ones(40)
    for exponent in (None, 3.5):
        for every in (False, True):
            with np.errstate(over="ignore", invalid="ignore"):
                s = g1_process(2.0, grow, np.arange(40.0), 1.0, L=10, every_step=every,
                               exponent=exponent)
            first = int(np.argmax(np.isinf(s)))
            assert 0 < first < 40 and np.isinf(s[first:]).all() and np.isfinite(s[:first]).all()
            assert np.all(np.diff(s[:first]) > 0)


def test_growth_phase_ratio_and_rise_times():
    t = np.linspace(0.0, 10.0, 201)
    s = np.stack([1 / (1 + np.exp(-(t - c))) for c in (3.0, 6.0)] + [0.5 - 0.001 * t], 1)
    rate = np.gradient(s, t, axis=0)
    r = growth_phase_ratio(t, 2 * rate + 1e-3 * (rate > 0), rate)
    assert np.allclose(r[:2], 2.0, rtol=1e-2) and np.isnan(r[2])
    # the phase is where the rate is >= frac of its peak: a prediction outside it is ignored
    wrong_outside = np.where(rate >= 0.2 * rate.max(0), rate, 100.0)
    assert np.allclose(growth_phase_ratio(t, wrong_outside, rate)[:2], 1.0)
    rt = rise_times(t, s)
    half = (s[0] + s[-1]) / 2
    expected = np.array([3.0, 6.0]) + np.log(half[:2] / (1 - half[:2]))
    assert np.allclose(rt[:2], expected, atol=0.06) and np.isnan(rt[2])
    with pytest.raises(ValueError, match="frac"):
        growth_phase_ratio(t, rate, rate, frac=1.5)


def test_bad_input():
    net = rect_net()
    with pytest.raises(ValueError, match="grad_J must have shape"):
        weight_gradients(net, torch.zeros(3, 3, dtype=D))
    with pytest.raises(ValueError, match="J_dot"):
        singular_value_rates(torch.eye(3), torch.zeros(2, 3))
    with pytest.raises(ValueError, match="non-finite"):
        projections(torch.eye(3) * float("nan"), torch.eye(3))
    with pytest.raises(ValueError, match="k must be"):
        singular_value_rates(torch.eye(3), torch.eye(3), k=4)
    with pytest.raises(ValueError, match="L must be"):
        balanced_singular_value_rates(torch.eye(3), torch.eye(3), 0)
    with pytest.raises(TypeError, match="net must be"):
        flow_jacobian_derivative(torch.eye(3), torch.eye(3))
    with pytest.raises(ValueError, match="families"):
        network_depth_scaling(net, 2, families=("middle",))
    with pytest.raises(ValueError, match="delta"):
        prop71_rates(torch.eye(3, dtype=D), torch.eye(3, dtype=D), 2, torch.zeros(1), k=3)
    with pytest.raises(ValueError, match="layer_rates"):
        remark72_rates([torch.eye(3)], [], None)
    with pytest.raises(ValueError, match="strictly increasing"):
        g1_process(1.0, [1, 1], [0, 0], 1.0, 2)
    with pytest.raises(ValueError, match="s0"):
        g1_process(-1.0, [1, 1], [0, 1], 1.0, 2)
    with pytest.raises(ValueError, match="lr"):
        theory_constant(0.0, 2, [0.0])


def test_prefix_suffix_log_spectra_of_scaled_identities():
    """W_l = a_l I, gates 1: B_{m+1} = a_1 ... a_m I and A_{L-m} = a_{L-m+1} ... a_L I."""
    from fgln.training.network_assumptions import prefix_suffix_log_spectra

    L, n = 5, 3
    a = torch.tensor([1.5, 0.5, 2.0, 3.0, 0.25], dtype=torch.float64)
    net = FixedGatesNetwork([a[l] * torch.eye(n, dtype=torch.float64) for l in range(L)],
                            [torch.ones(n, dtype=torch.float64)] * (L - 1))
    lb, la = prefix_suffix_log_spectra(net, 2)
    log_a = torch.log(a).numpy()
    for m in range(1, L):
        np.testing.assert_allclose(lb[m - 1], log_a[:m].sum(), atol=1e-13)
        np.testing.assert_allclose(la[m - 1], log_a[L - m:].sum(), atol=1e-13)
    with pytest.raises(ValueError, match="L >= 2"):
        prefix_suffix_log_spectra(FixedGatesNetwork([torch.eye(n)], []), 2)


def test_prefix_excess_layers_recovers_the_offset():
    from fgln.training.network_assumptions import prefix_excess_layers

    rng = np.random.default_rng(0)
    nets, L, k = 4, 6, 3
    m = np.arange(1, L, dtype=float)[None, :, None]
    gamma = rng.uniform(-0.5, -0.1, (nets, 1, k))
    delta = rng.normal(size=(nets, 1, k))
    for c in (0.0, 1.0, 0.37):
        c_hat, g_hat = prefix_excess_layers((m + c) * gamma + delta, m * gamma + delta)
        np.testing.assert_allclose(c_hat, c, atol=1e-12)
        np.testing.assert_allclose(g_hat, gamma[:, 0], atol=1e-12)
    with pytest.raises(ValueError, match="alike"):
        prefix_excess_layers(np.zeros((2, 4, 3)), np.zeros((2, 5, 3)))


def test_remark72_transpose_errors_tell_printed_from_proof():
    from fgln.training.network_flow import remark72_transpose_errors

    net = FixedGatesNetwork.random([8] * 5, 0.5, seed=3)
    G = torch.randn(8, 8, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    printed, proof = remark72_transpose_errors(net, G, 4)
    assert proof < 1e-10 < 1e-3 < printed


@pytest.mark.parametrize("exponent", [1.0, 1.8])
def test_fit_g1_exponent_recovers_the_exponent_of_the_process(exponent):
    """A curve made by the process at a known exponent and constant gives them back; a curve
    made at another exponent gives that one, not the paper's 2 - 2/L."""
    steps = np.arange(0, 400, 5)
    g = 0.02 * (1.0 + 0.5 * np.cos(steps / 60.0))
    s = g1_process(0.5, g, steps, 0.3, 10, exponent=exponent)
    a, C = fit_g1_exponent(s, g, steps, 10)
    assert a == pytest.approx(exponent, abs=1e-3) and C == pytest.approx(0.3, rel=1e-2)
    with pytest.raises(ValueError, match="bounds"):
        fit_g1_exponent(s, g, steps, 10, bounds=(2.0, 1.0))
