"""Fixed-gates networks as modules (fgln.training.networks): Definition 4.1, partial products of
Section 7, the seeded sampler, Proposition 4.5's balanced initialisation, grad_J capture."""
import math

import pytest
import torch
from torch import nn

from fgln.base.laws import LayerLaw
from fgln.products.sampling import sample_network
from fgln.training.balanced_networks import balance_residuals, balanced_masked_network
from fgln.training.networks import (
    FixedGatesNetwork,
    JacobianGradient,
    _draw_rectangular,
    find_fixed_gates_network,
)


def rect_net(seed=0, widths=(5, 7, 4, 6, 3), real_gates=True):
    gen = torch.Generator().manual_seed(seed)
    ws = [torch.randn(widths[l], widths[l - 1], generator=gen, dtype=torch.float64)
          for l in range(1, len(widths))]
    if real_gates:
        gs = [torch.randn(widths[l], generator=gen, dtype=torch.float64)
              for l in range(1, len(widths) - 1)]
    else:
        gs = [(torch.rand(widths[l], generator=gen) < 0.5).double()
              for l in range(1, len(widths) - 1)]
    return FixedGatesNetwork(ws, gs)


def explicit_product(net):
    J = net.weights[0]
    for l in range(1, net.depth):
        J = net.weights[l] @ torch.diag(net.gates[l - 1]) @ J
    return J


def test_jacobian_and_forward_match_the_definition():
    net = rect_net()
    assert net.widths == [5, 7, 4, 6, 3] and net.depth == 4
    J = explicit_product(net)
    assert torch.allclose(net.jacobian(), J, rtol=1e-13, atol=1e-13)
    for rows in (1, 2, 200):  # both evaluation orders (layer by layer, through J)
        x = torch.randn(rows, 5, dtype=torch.float64)
        assert torch.allclose(net(x), x @ J.T, rtol=1e-12, atol=1e-12)
    x = torch.randn(3, 2, 5, dtype=torch.float64)  # leading batch dimensions
    assert net(x).shape == (3, 2, 3)


def reference_forward(net, x, sequential):
    """The forward pass written out: layer by layer (``sequential``) or through J."""
    if not sequential:
        return x @ net.jacobian().T
    h = x @ net.weights[0].T
    for l in range(1, net.depth):
        h = (h * net.gates[l - 1]) @ net.weights[l].T
    return h


def test_forward_plan_is_kept_per_shape_and_output_unchanged(monkeypatch):
    """The layer-by-layer / through-J choice is made once per (rows, weight shapes): not again
    after a weight update, again for a new batch size or new weight shapes; the output is
    bit for bit the written-out forward pass, before and after updates."""
    net = FixedGatesNetwork.random([6] * 5, 0.5, seed=1)
    calls = []
    decide = FixedGatesNetwork._sequential_cheaper
    monkeypatch.setattr(FixedGatesNetwork, "_sequential_cheaper",
                        lambda self, rows: calls.append(rows) or decide(self, rows))
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    gen = torch.Generator().manual_seed(0)
    for rows, sequential in ((2, True), (500, False)):  # both evaluation orders
        x = torch.randn(rows, 6, generator=gen, dtype=torch.float64)
        assert decide(net, rows) is sequential
        for _ in range(3):
            out = net(x)
            assert torch.equal(out, reference_forward(net, x, sequential))
            opt.zero_grad()
            out.square().sum().backward()
            opt.step()
    assert calls == [2, 500]
    calls.clear()
    net.weights[-1] = nn.Parameter(torch.randn(3, 6, generator=gen, dtype=torch.float64))
    x = torch.randn(2, 6, generator=gen, dtype=torch.float64)
    assert net(x).shape == (2, 3) and calls == [2]
    assert torch.equal(net(x), reference_forward(net, x, True)) and calls == [2]
    net.to(torch.float32)  # buffers replaced: the plan still finds the current gates
    x = x.float()
    assert torch.equal(net(x), reference_forward(net, x, True)) and calls == [2]
    with pytest.raises(ValueError, match="last dimension n_0 = 6"):
        net(torch.zeros(2, 5, dtype=torch.float32))


def test_weights_are_parameters_and_gates_are_buffers():
    net = rect_net()
    names = {n for n, _ in net.named_parameters()}
    assert names == {f"weights.{i}" for i in range(4)}
    assert {n for n, _ in net.named_buffers()} == {"gate1", "gate2", "gate3"}
    assert all(not g.requires_grad for g in net.gates)
    assert len(list(net.parameters())) == 4
    # the gates travel with the state dict and with .to()
    assert set(net.state_dict()) == names | {"gate1", "gate2", "gate3"}
    net32 = rect_net().to(torch.float32)
    assert net32.gates[0].dtype == torch.float32


def test_partial_products_factor_J_for_every_layer():
    net = rect_net()
    J = net.jacobian()
    A, B = net.partial_products()
    L = net.depth
    assert len(A) == len(B) == L
    assert torch.equal(A[-1], torch.eye(3, dtype=torch.float64))
    assert torch.equal(B[0], torch.eye(5, dtype=torch.float64))
    for l in range(1, L + 1):
        a, b = net.partial_products(l)
        assert torch.equal(a, A[l - 1]) and torch.equal(b, B[l - 1])
        assert a.shape == (net.widths[L], net.widths[l])
        assert b.shape == (net.widths[l - 1], net.widths[0])
        assert torch.allclose(a @ net.weights[l - 1] @ b, J, rtol=1e-12, atol=1e-12)
    # A_l ends with D_l, B_l starts with D_{l-1}: closed gate entries zero a column / row
    masked = rect_net(real_gates=False)
    A, B = masked.partial_products()
    g1 = masked.gates[0]
    assert bool((g1 == 0).any())
    assert torch.equal(A[0], A[0] * g1[None, :]) and torch.equal(B[1], g1[:, None] * B[1])


def test_masked_layers_and_is_masked():
    net = rect_net(real_gates=False)
    assert net.is_masked() and not rect_net().is_masked()
    M = net.masked_layers()
    J = M[0]
    for m in M[1:]:
        J = m @ J
    assert torch.allclose(J, net.jacobian(), rtol=1e-12, atol=1e-12)


def test_random_square_draws_the_section5_matrices():
    n, L, p = 6, 5, 0.5
    net = FixedGatesNetwork.random([n] * (L + 1), p, seed=3)
    w, d = sample_network(LayerLaw(n, p).product(L), seed=3)
    for l in range(L):
        assert torch.equal(net.weights[l].detach(), w[0, l])
    for l in range(L - 1):
        assert torch.equal(net.gates[l], d[0, l])
    assert len(net.gates) == L - 1  # D_L = I (Definition 4.1)
    # the layer-by-layer path used for rectangular widths draws the same numbers
    ws, gs = _draw_rectangular([n] * (L + 1), p, None, None, 3, torch.float64,
                               torch.device("cpu"))
    assert all(torch.equal(a, b.detach()) for a, b in zip(ws, net.weights))
    assert all(torch.equal(a, b) for a, b in zip(gs, net.gates))
    # (r, p)-gates too
    net_r = FixedGatesNetwork.random([n] * (L + 1), 0.3, r=3, seed=4)
    _, d_r = sample_network(LayerLaw(n, 0.3, r=3).product(L), seed=4)
    assert all(torch.equal(net_r.gates[l], d_r[0, l]) for l in range(L - 1))
    ws, gs = _draw_rectangular([n] * (L + 1), 0.3, None, 3, 4, torch.float64,
                               torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(gs, net_r.gates))


@pytest.mark.parametrize("widths", [[6] * 5, [5, 7, 4, 6]])
def test_random_default_seed_is_fixed_and_none_is_fresh(widths):
    """seed defaults to 0 (square and rectangular paths alike); seed=None is fresh entropy."""
    a, b = FixedGatesNetwork.random(widths, 0.5), FixedGatesNetwork.random(widths, 0.5, seed=0)
    assert all(torch.equal(x, y) for x, y in zip(a.weights, b.weights))
    assert all(torch.equal(x, y) for x, y in zip(a.gates, b.gates))
    c, d = (FixedGatesNetwork.random(widths, 0.5, seed=None) for _ in range(2))
    assert not torch.equal(c.weights[0], d.weights[0])
    gates = [torch.ones(w, dtype=torch.float64) for w in widths[1:-1]]
    e, f = balanced_masked_network(widths, gates), balanced_masked_network(widths, gates, seed=0)
    assert all(torch.equal(x, y) for x, y in zip(e.weights, f.weights))


def test_random_rectangular_scale_and_gate_rate():
    widths = [300, 200, 400, 100]
    net = FixedGatesNetwork.random(widths, p=0.25, seed=0)
    for l, w in enumerate(net.weights, start=1):
        x = w.detach().flatten()
        var = 1.0 / widths[l - 1]  # fan-in default
        se = math.sqrt(2.0) * var / math.sqrt(x.numel())
        assert abs(float((x ** 2).mean()) - var) < 4 * se
    g = torch.cat(net.gates)
    se = math.sqrt(0.25 * 0.75 / g.numel())
    assert abs(float(g.mean()) - 0.25) < 4 * se
    assert FixedGatesNetwork.random(widths, seed=1, dtype=torch.float32).weights[0].dtype \
        == torch.float32


def test_balanced_masked_network_is_balanced_and_gated():
    gen = torch.Generator().manual_seed(0)
    widths = [6, 8, 7, 8, 5]
    gates = [(torch.rand(w, generator=gen) < 0.7).double() for w in widths[1:-1]]
    net = balanced_masked_network(widths, gates, seed=1)
    assert float(balance_residuals(net).max()) < 1e-10
    # M_l = D_l W_l D_{l-1} = W_l: nothing outside the gates' support
    for w, m in zip(net.weights, net.masked_layers()):
        assert torch.allclose(w.detach(), m.detach(), atol=1e-15)
    # a random network is far from balanced
    assert float(balance_residuals(FixedGatesNetwork.random([6] * 5, 0.7, seed=0)).max()) > 0.1
    # the end-to-end singular values are those of S^L
    r = min(int(g.sum()) for g in gates + [torch.ones(6), torch.ones(5)])
    s = torch.linalg.svdvals(net.jacobian().detach())
    assert int((s > 1e-12 * s[0]).sum()) == r


def test_balanced_network_bad_input():
    with pytest.raises(ValueError, match="gates\\[0\\].*0, 1"):
        balanced_masked_network([3, 3, 3], [torch.tensor([0.5, 1.0, 1.0])])
    with pytest.raises(ValueError, match="rank"):
        balanced_masked_network([3, 3, 3], [torch.tensor([1.0, 0.0, 1.0])], rank=3)
    with pytest.raises(ValueError, match="gates must hold"):
        balanced_masked_network([3, 3, 3], [])
    with pytest.raises(ValueError, match="scale"):
        balanced_masked_network([3, 3], [], scale=-1.0)


def test_constructor_bad_input():
    w = [torch.randn(4, 3, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)]
    with pytest.raises(ValueError, match="do not chain"):
        FixedGatesNetwork([w[0], torch.randn(2, 5, dtype=torch.float64)], [torch.ones(4)])
    with pytest.raises(ValueError, match="gates must hold L - 1 = 1"):
        FixedGatesNetwork(w, [])
    with pytest.raises(ValueError, match="gates\\[0\\].*\\[4\\]"):
        FixedGatesNetwork(w, [torch.ones(3)])
    with pytest.raises(ValueError, match="weights\\[1\\]"):
        FixedGatesNetwork([w[0], torch.randn(4)], [torch.ones(4)])
    with pytest.raises(ValueError, match="at least one"):
        FixedGatesNetwork([], [])
    net = FixedGatesNetwork(w, [torch.ones(4)])
    with pytest.raises(ValueError, match="n_0 = 3"):
        net(torch.randn(2, 4, dtype=torch.float64))
    with pytest.raises(ValueError, match="l must be"):
        net.partial_products(3)
    with pytest.raises(ValueError, match="widths"):
        FixedGatesNetwork.random([4])
    with pytest.raises(ValueError, match="p must be"):
        FixedGatesNetwork.random([4, 4], p=0.0)
    with pytest.raises(ValueError, match="device"):
        FixedGatesNetwork.random([4, 4], device="nowhere")
    with pytest.raises(ValueError, match="r must"):
        FixedGatesNetwork.random([4, 4, 4], 0.5, r=5)
    with pytest.raises(ValueError, match="r must"):
        FixedGatesNetwork.random([4, 5, 4], 0.5, r=5)


def test_single_layer_network():
    w = torch.randn(3, 2, dtype=torch.float64)
    net = FixedGatesNetwork([w], [])
    assert torch.equal(net.jacobian(), net.weights[0])
    A, B = net.partial_products()
    assert torch.equal(A[0], torch.eye(3, dtype=torch.float64))
    assert torch.equal(B[0], torch.eye(2, dtype=torch.float64))


@pytest.mark.parametrize("rows", [2, 300])
def test_jacobian_gradient_capture_matches_autograd_inside_a_model(rows):
    torch.manual_seed(0)
    net = rect_net()
    model = nn.Sequential(nn.Linear(4, 5, bias=False).double(), nn.Tanh(), net,
                          nn.Linear(3, 2).double())
    assert find_fixed_gates_network(model) is net
    assert find_fixed_gates_network(nn.Linear(2, 2)) is None
    x = torch.randn(rows, 4, dtype=torch.float64)
    with JacobianGradient(net) as cap:
        loss = model(x).pow(3).mean()
        loss.backward()
    # reference: the same loss written through an explicit leaf J
    J = net.jacobian().detach().requires_grad_(True)
    h = torch.tanh(model[0](x))
    ref = model[3](h @ J.T).pow(3).mean()
    ref.backward()
    assert torch.allclose(cap.grad, J.grad, rtol=1e-10, atol=1e-12)
    # no capture outside the context
    model.zero_grad()
    model(x).sum().backward()
    assert cap._handle is None
