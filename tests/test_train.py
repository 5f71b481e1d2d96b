"""Training loop (fgln.training.train): gradient descent, recording, exact resume, divergence
guard."""
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from fgln.training.networks import FixedGatesNetwork
from fgln.training.recorders import SpectralRecorder, record_steps
from fgln.training.synthetic_runs import compress_regression, synthetic_task
from fgln.training.train import DivergenceError, half_mse, train


class Interrupt(Exception):
    pass


def small_task(n=6, samples=40, seed=0):
    X, Y, T = synthetic_task(n, 2, samples, seed=seed)
    return X, Y


def test_synthetic_task_is_a_seeded_rank_r_linear_map():
    X, Y, T = synthetic_task(16, 3, 50, seed=2)
    assert X.shape == (50, 16) and Y.shape == (50, 16) and T.shape == (16, 16)
    assert torch.linalg.matrix_rank(T) == 3
    assert torch.allclose(Y, X @ T.T)
    X2, _, T2 = synthetic_task(16, 3, 50, seed=2)
    assert torch.equal(X, X2) and torch.equal(T, T2)
    assert not torch.equal(T, synthetic_task(16, 3, 50, seed=3)[2])
    with pytest.raises(ValueError, match="rank"):
        synthetic_task(4, 5)


def test_compress_regression_keeps_the_loss():
    X, Y, _ = synthetic_task(8, 3, 100, seed=0)
    Xc, Yc, w, c = compress_regression(X, Y)
    assert Xc.shape == (8, 8) and abs(c) < 1e-20
    J = torch.randn(8, 8, dtype=torch.float64)
    full = half_mse(X @ J.T, Y)
    assert torch.allclose(full, w * half_mse(Xc @ J.T, Yc) + c, rtol=1e-12)
    noisy = Y + 0.1 * torch.randn_like(Y)
    Xc, Yc, w, c = compress_regression(X, noisy)
    assert c > 0
    assert torch.allclose(half_mse(X @ J.T, noisy), w * half_mse(Xc @ J.T, Yc) + c, rtol=1e-12)
    with pytest.raises(ValueError, match="at least as many rows"):
        compress_regression(X[:3], Y[:3])


def test_one_step_is_plain_gradient_descent_and_records_the_state_before_it():
    X, Y = small_task()
    net = FixedGatesNetwork.random([6] * 4, 0.5, seed=0)
    w0 = [w.detach().clone() for w in net.weights]
    J0 = net.jacobian().detach().clone()
    loss = half_mse(net(X), Y)
    grads = torch.autograd.grad(loss, list(net.weights))
    res = train(net, (X, Y), half_mse, lr=0.1, steps=1, record=1, progress=False)
    for w, a, g in zip(net.weights, w0, grads):
        assert torch.allclose(w.detach(), a - 0.1 * g, rtol=1e-13, atol=1e-15)
    h = res.history
    assert list(h["step"]) == [0, 1] and np.allclose(h["t"], [0.0, 0.1])
    assert np.allclose(h["s"][0], torch.linalg.svdvals(J0).numpy())
    assert h["log_sA"].shape == (2, 3, 6) and h["g"].shape == (2, 6)
    assert res.losses.shape == (1,) and math.isclose(res.losses[0], float(loss.detach()))


def test_training_reduces_the_loss_and_records_where_asked():
    X, Y = small_task()
    net = FixedGatesNetwork.random([6] * 4, 1.0, seed=1)
    res = train(net, (X, Y), half_mse, lr=0.05, steps=300, record=[0, 7, 300, 999],
                recorders=[SpectralRecorder(k=2, partial_k=0, vectors=True)], progress=False)
    assert list(res.history["step"]) == [0, 7, 300]
    assert res.history["U"].shape == (3, 6, 2)
    assert res.losses[-1] < 0.2 * res.losses[0]
    assert record_steps(100, 250) == [0, 100, 200, 250]


def _run(tmp_path, interrupt_at=None, name="ck.pt", **kw):
    X, Y = small_task()
    net = FixedGatesNetwork.random([6] * 4, 0.5, seed=0)

    def callback(ctx):
        if interrupt_at is not None and ctx.step == interrupt_at:
            raise Interrupt
        return {"w_norm": float(net.weights[0].detach().norm())}

    return train(net, (X, Y), half_mse, lr=0.05, steps=40, record=3, callback=callback,
                 checkpoint=tmp_path / name, checkpoint_every=5, optimizer="sgd",
                 momentum=0.9, progress=False, **kw)


def test_resume_after_an_interrupt_gives_identical_weights_full_batch(tmp_path):
    ref = _run(tmp_path, name="ref.pt")
    with pytest.raises(Interrupt):
        _run(tmp_path, interrupt_at=24)
    res = _run(tmp_path)
    assert res.resumed_from == 20
    for a, b in zip(ref.model.weights, res.model.weights):
        assert torch.equal(a, b)
    assert np.array_equal(ref.losses, res.losses)
    for key in ref.history:
        assert np.array_equal(ref.history[key], res.history[key]), key
    # a finished checkpoint is returned as is
    again = _run(tmp_path)
    assert again.resumed_from == 40 and np.array_equal(again.losses, ref.losses)


def _loader_run(tmp_path, interrupt_at=None, name="ck.pt", generator=True):
    torch.manual_seed(123)  # the global RNG drives dropout (and the sampler without generator)
    X, Y = small_task(samples=52)
    gen = torch.Generator().manual_seed(5) if generator else None
    loader = DataLoader(TensorDataset(X, Y), batch_size=8, shuffle=True, generator=gen)
    net = FixedGatesNetwork.random([6] * 4, 0.5, seed=0)
    model = nn.Sequential(nn.Dropout(0.2), net, nn.Linear(6, 6).double())

    def callback(ctx):
        if interrupt_at is not None and ctx.step == interrupt_at:
            raise Interrupt
        return None

    return train(model, loader, half_mse, lr=0.05, epochs=4, record=2, callback=callback,
                 record_epochs=True, checkpoint=tmp_path / name, checkpoint_every=3,
                 optimizer="adam", progress=False)


@pytest.mark.parametrize("generator", [True, False])
def test_resume_after_an_interrupt_gives_identical_weights_minibatch(tmp_path, generator):
    ref = _loader_run(tmp_path, name="ref.pt", generator=generator)
    assert ref.steps == 4 * 7 and ref.epoch == 3
    assert {7, 14, 21, 28} <= set(ref.history["step"].tolist())
    with pytest.raises(Interrupt):
        _loader_run(tmp_path, interrupt_at=10, generator=generator)  # mid-epoch 2
    torch.manual_seed(999)  # whatever the global RNG does meanwhile
    res = _loader_run(tmp_path, generator=generator)
    assert res.resumed_from == 9
    for a, b in zip(ref.model.state_dict().values(), res.model.state_dict().values()):
        assert torch.equal(a, b)
    assert np.array_equal(ref.losses, res.losses)
    assert np.array_equal(ref.history["s"], res.history["s"])
    # interrupted exactly at an epoch boundary (checkpoint at step 21 = end of epoch 3)
    (tmp_path / "ck.pt").unlink()
    with pytest.raises(Interrupt):
        _loader_run(tmp_path, interrupt_at=22, generator=generator)
    res = _loader_run(tmp_path, generator=generator)
    assert res.resumed_from == 21
    for a, b in zip(ref.model.state_dict().values(), res.model.state_dict().values()):
        assert torch.equal(a, b)


def test_checkpoint_of_another_configuration_is_refused(tmp_path):
    _run(tmp_path)
    X, Y = small_task()
    net = FixedGatesNetwork.random([6] * 4, 0.5, seed=0)
    with pytest.raises(ValueError, match="another configuration: lr"):
        train(net, (X, Y), half_mse, lr=0.01, steps=40, momentum=0.9,
              checkpoint=tmp_path / "ck.pt", progress=False)
    with pytest.raises(ValueError, match="beyond steps"):
        train(net, (X, Y), half_mse, lr=0.05, steps=10, momentum=0.9,
              checkpoint=tmp_path / "ck.pt", progress=False)


def test_divergence_guard_names_the_step():
    X, Y = small_task()
    net = FixedGatesNetwork.random([6] * 4, 1.0, sigma=1.0, seed=0)
    with pytest.raises(DivergenceError, match=r"at step \d+") as info:
        train(net, (X, Y), half_mse, lr=10.0, steps=200, progress=False)
    assert 0 < info.value.step < 200
    net = FixedGatesNetwork.random([6] * 4, 1.0, seed=0)
    Xn = X.clone()
    Xn[3, 2] = float("nan")
    with pytest.raises(DivergenceError, match="loss is nan at step 0"):
        train(net, (Xn, Y), half_mse, lr=0.1, steps=5, progress=False)


def test_float32_training_and_auto_device():
    X, Y = small_task()
    net = FixedGatesNetwork.random([6] * 4, 1.0, seed=0)
    res = train(net, (X, Y), half_mse, lr=0.05, steps=20, record=10, dtype=torch.float32,
                device="auto", progress=False)
    assert net.weights[0].dtype == torch.float32 and net.gates[0].dtype == torch.float32
    assert res.history["s"].dtype == np.float64
    assert res.losses[-1] < res.losses[0]


def test_default_device_is_the_cpu_and_dtype_is_kept():
    """Without device= the model trains on the CPU (CUDA only when asked for, "auto" or
    "cuda"); without dtype= it keeps its floating type."""
    X, Y = small_task()
    net = FixedGatesNetwork.random([6] * 4, 1.0, seed=0)
    res = train(net, (X, Y), half_mse, lr=0.05, steps=2, progress=False)
    assert net.weights[0].device.type == "cpu" and net.weights[0].dtype == torch.float64
    assert res.losses.shape == (2,)


def test_to_device_casts_floating_tensors_only():
    from fgln.training.batches import to_device

    x = torch.zeros(2, 3, dtype=torch.float64)
    labels = torch.tensor([1, 2])
    assert to_device(x, torch.float32, "cpu").dtype == torch.float32
    assert to_device(x, None, "cpu").dtype == torch.float64  # None keeps the type
    assert to_device(labels, torch.float32, "cpu").dtype == labels.dtype


def test_record_context_holds_the_minibatch():
    """A callback sees the step's (x, y) as ctx.minibatch (the full batch here)."""
    X, Y = small_task()
    net = FixedGatesNetwork.random([6] * 4, 1.0, seed=0)
    seen = []
    train(net, (X, Y), half_mse, lr=0.05, steps=2, record=1, progress=False,
          callback=lambda ctx: seen.append(ctx.minibatch) or None)
    assert len(seen) == 3 and all(torch.equal(x, X) and torch.equal(y, Y) for x, y in seen)


def test_bad_input():
    X, Y = small_task()
    net = FixedGatesNetwork.random([6] * 4, 1.0, seed=0)
    with pytest.raises(ValueError, match="lr"):
        train(net, (X, Y), half_mse, lr=-1.0, steps=3)
    with pytest.raises(ValueError, match="steps is required"):
        train(net, (X, Y), half_mse, lr=0.1)
    with pytest.raises(ValueError, match="epochs applies"):
        train(net, (X, Y), half_mse, lr=0.1, steps=3, epochs=2)
    with pytest.raises(ValueError, match="rows"):
        train(net, (X, Y[:5]), half_mse, lr=0.1, steps=3)
    with pytest.raises(ValueError, match="optimizer"):
        train(net, (X, Y), half_mse, lr=0.1, steps=3, optimizer="lbfgs-ish")
    with pytest.raises(ValueError, match="record"):
        train(net, (X, Y), half_mse, lr=0.1, steps=3, record="often")
    # a wrong type is a TypeError, a bad value a ValueError
    with pytest.raises(TypeError, match="model"):
        train(lambda x: x, (X, Y), half_mse, lr=0.1, steps=3)
    with pytest.raises(TypeError, match="loss_fn"):
        train(net, (X, Y), "mse", lr=0.1, steps=3)
    with pytest.raises(TypeError, match="data must be"):
        train(net, 3, half_mse, lr=0.1, steps=3)
    with pytest.raises(ValueError, match="recorders need"):
        train(nn.Linear(6, 6).double(), (X, Y), half_mse, lr=0.1, steps=3,
              recorders=[SpectralRecorder()])
    with pytest.raises(ValueError, match="epochs and/or steps"):
        train(net, DataLoader(TensorDataset(X, Y), batch_size=4), half_mse, lr=0.1)


# --------------------------------------------------------------------------
# Proposition 4.5 runs: the batched loop against the autograd loop
# --------------------------------------------------------------------------

BAL = dict(n=6, L=4, p=0.6, k=2, rank=2, samples=30, lr=0.05, t_max=1.0, grid_dt=0.25,
           scale=0.7)


def _autograd_balanced_run(*, n, L, p, k, rank, samples, lr, t_max, grid_dt, scale, balanced,
                           seed):
    """The same run through the generic loop: the network's forward pass, autograd, SGD."""
    from fgln.products.sampling import make_generator
    from fgln.theory.flow_rates import balanced_singular_value_rates
    from fgln.training.balanced_networks import balance_residuals, balanced_masked_network
    from fgln.training.network_flow import flow_singular_value_rates

    X, Y, _ = synthetic_task(n, rank, samples, seed=1_000_000 + seed)
    gen = make_generator(seed)
    gates = [(torch.rand(n, generator=gen, dtype=torch.float64) < p).double()
             for _ in range(L - 1)]
    net = (balanced_masked_network([n] * (L + 1), gates, scale=scale, seed=gen) if balanced
           else FixedGatesNetwork.random([n] * (L + 1), p, seed=gen))
    steps, every = round(t_max / lr), round(grid_dt / lr)
    grid = list(range(0, steps + 1, every))
    rec = sorted(set(grid) | {g + 1 for g in grid})

    def cb(ctx):
        J = ctx.net.jacobian().detach()
        return {"s": torch.linalg.svdvals(J)[:k],
                "pred": balanced_singular_value_rates(J, ctx.grad_J, L, k),
                "flow": flow_singular_value_rates(ctx.net, ctx.grad_J, k),
                "balance": balance_residuals(ctx.net).max()}

    h = train(net, (X, Y), half_mse, lr=lr, steps=rec[-1], record=rec, callback=cb,
              recorders=[], progress=False).history
    pos = {int(s): i for i, s in enumerate(h["step"])}
    i0, i1 = [pos[g] for g in grid], [pos[g + 1] for g in grid]
    return dict(s=h["s"][i0], measured=(h["s"][i1] - h["s"][i0]) / lr, pred=h["pred"][i0],
                flow=h["flow"][i0], balance=h["balance"][i0])


@pytest.mark.parametrize("balanced", [True, False])
def test_batched_balanced_runs_take_the_autograd_steps(balanced):
    from fgln.training.synthetic_runs import balanced_run, balanced_runs

    runs = balanced_runs(**BAL, replicates=3, balanced=balanced, seed=5, progress=False)
    assert len(runs) == 3
    for i, run in enumerate(runs):
        ref = _autograd_balanced_run(**BAL, balanced=balanced, seed=5 + i)
        for key, want in ref.items():
            # every step the same up to rounding: the finite differences of s over one step
            # (``measured``) lose about lr of the relative precision
            np.testing.assert_allclose(run[key], want, rtol=1e-9,
                                       atol=1e-9 * np.abs(want).max(), err_msg=key)
        assert np.allclose(run["t"], np.arange(5) * 0.25) and run["lr"] == BAL["lr"]
    # replicate i is the run of seed + i on its own
    one = balanced_run(**BAL, balanced=balanced, seed=6, progress=False)
    for key in ("s", "measured", "pred", "flow", "balance"):
        np.testing.assert_allclose(runs[1][key], one[key], rtol=1e-12, atol=1e-14)
    # a different seed gives a different run: the check above can fail
    assert not np.allclose(runs[0]["s"], runs[1]["s"])


def test_batched_balanced_runs_bad_input_and_divergence():
    from fgln.training.synthetic_runs import balanced_runs

    with pytest.raises(ValueError, match="replicates"):
        balanced_runs(**BAL, replicates=0, progress=False)
    with pytest.raises(ValueError, match="multiples"):
        balanced_runs(**dict(BAL, grid_dt=0.33), progress=False)
    with pytest.raises(TypeError, match="positional"):
        balanced_runs(3)
    with pytest.raises(DivergenceError, match=r"at step \d+") as info:
        balanced_runs(**dict(BAL, lr=5.0, t_max=500.0, grid_dt=5.0, scale=3.0),
                      balanced=False, progress=False)
    assert info.value.step > 0


# --------------------------------------------------------------------------
# regression_descent: the closed-form gradient against autograd
# --------------------------------------------------------------------------


def test_regression_descent_takes_the_sgd_steps_of_train():
    from fgln.training.regression_descent import regression_descent

    X, Y = small_task(n=6, samples=40)
    nets = [FixedGatesNetwork.random([6] * 4, 0.5, seed=s) for s in (0, 1)]
    W = torch.stack([torch.stack([w.detach() for w in net.weights]) for net in nets])
    D = torch.stack([torch.stack(net.gates) for net in nets])
    W0, seen = W.clone(), []
    res = regression_descent(W, D, X, Y, lr=0.05, steps=30, weight=1.5, record=[0, 10, 30],
                             on_record=lambda st: seen.append((st.step, st.J.clone(),
                                                               st.loss.clone())),
                             progress=False)
    assert [s for s, _, _ in seen] == [0, 10, 30] and res.losses.shape == (2, 30)
    for i, net in enumerate(nets):
        ref = train(net, (X, Y), lambda o, t: 1.5 * half_mse(o, t), lr=0.05, steps=30,
                    record=[10], recorders=[], progress=False)
        np.testing.assert_allclose(res.losses[i], ref.losses, rtol=1e-11)
        for w, want in zip(res.weights[i], net.weights):
            np.testing.assert_allclose(w.numpy(), want.detach().numpy(), rtol=1e-10,
                                       atol=1e-13)
        step10 = seen[1]
        np.testing.assert_allclose(float(step10[2][i]), ref.history["loss"][0], rtol=1e-11)
        # J at the last record is the trained network's
        np.testing.assert_allclose(seen[2][1][i].numpy(), net.jacobian().detach().numpy(),
                                   rtol=1e-10, atol=1e-13)
    # the input weights are not modified; a network on its own takes the same steps
    assert torch.equal(W, W0)
    one = regression_descent(W[1], D[1], X, Y, lr=0.05, steps=30, weight=1.5, progress=False)
    np.testing.assert_allclose(one.losses, res.losses[1], rtol=1e-12)


def test_regression_descent_bad_input_and_divergence():
    from fgln.training.regression_descent import regression_descent

    X, Y = small_task(n=6, samples=40)
    net = FixedGatesNetwork.random([6] * 4, 1.0, sigma=1.0, seed=0)
    W, D = torch.stack(list(net.weights)).detach(), torch.stack(net.gates)
    with pytest.raises(DivergenceError, match=r"at step \d+") as info:
        regression_descent(W, D, X, Y, lr=10.0, steps=200, progress=False)
    assert 0 < info.value.step < 200
    with pytest.raises(ValueError, match="gates must be"):
        regression_descent(W, D[:1], X, Y, lr=0.1, steps=1, progress=False)
    with pytest.raises(ValueError, match="x and y"):
        regression_descent(W, D, X[:, :5], Y, lr=0.1, steps=1, progress=False)
    with pytest.raises(ValueError, match="record step"):
        regression_descent(W, D, X, Y, lr=0.1, steps=3, record=[4], progress=False)
    with pytest.raises(ValueError, match="lr"):
        regression_descent(W, D, X, Y, lr=0.0, steps=3, progress=False)
    with pytest.raises(ValueError, match="weights must be"):
        regression_descent(W[0], D, X, Y, lr=0.1, steps=3, progress=False)
