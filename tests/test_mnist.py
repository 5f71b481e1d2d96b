"""fgln.mnist.model: the Section 8 model, the hidden-block measurements, training and resume."""

from __future__ import annotations

import inspect
import json
import math
import warnings

import numpy as np
import pytest
import torch

from fgln.base.laws import LayerLaw
from fgln.mnist import model as mnist
from fgln.mnist import run as mnist_run
from fgln.mnist.block_measurements import (
    alignment_reach,
    block_statistics,
    cluster_measurements,
    split_clusters,
)
from fgln.mnist.data import BundledMnistWarning, load_mnist
from fgln.mnist.model import MnistConfig, MnistFixedGates
from fgln.mnist.run import train_mnist
from fgln.products.sampling import sample_network
from fgln.runs import mnist_tasks
from fgln.theory.diagonal_correlation import diagonal_correlation

# the chapter's quick scale: a few hundred images, one short epoch
QUICK = MnistConfig(train_size=512, test_size=500, epochs=1, batch_size=16, lr=0.02)


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BundledMnistWarning)
        return load_mnist(tmp_path_factory.mktemp("nodata"), download=False)


# --------------------------------------------------------------------------------------
# the model
# --------------------------------------------------------------------------------------


def test_model_structure_and_forward():
    model = MnistFixedGates.random(n=16, L=4, p=0.5, seed=3, dtype=torch.float64)
    net = model.net
    assert net.widths == [784] + [16] * 5 + [10]
    assert model.depth == 4 and model.width == 16
    # the gates are fixed buffers: only the 6 weight matrices are trained
    assert [tuple(p.shape) for p in model.parameters()] == \
        [(16, 784)] + [(16, 16)] * 4 + [(10, 16)]
    assert all(bool(((g == 0) | (g == 1)).all()) for g in net.gates)
    x = torch.randn(3, 1, 28, 28, dtype=torch.float64)
    h = x.reshape(3, 784)
    for i, w in enumerate(net.weights):  # W_out D_L W_L ... D_1 W_1 D_in W_in x
        h = h @ w.T
        if i < len(net.gates):
            h = h * net.gates[i]
    assert torch.allclose(model(x), h, rtol=1e-12, atol=1e-14)


def test_hidden_block_is_the_sampled_network():
    """At initialisation the block is exactly
    sample_network(LayerLaw(n, p, 1/sqrt(n)).product(L), seed=seed)."""
    model = MnistFixedGates.random(n=12, L=5, p=0.5, seed=11, dtype=torch.float64)
    w, g = model.hidden_block()
    w_ref, g_ref = sample_network(LayerLaw(12, 0.5, 1 / math.sqrt(12)).product(5), seed=11)
    assert torch.equal(w, w_ref[0]) and torch.equal(g, g_ref[0])
    # adapters: fan-in scaling, roughly unit variance rows
    w_in = model.net.weights[0].detach()
    assert abs(float(w_in.var()) * 784 - 1) < 0.1
    other = MnistFixedGates.random(n=12, L=5, p=0.5, seed=12, dtype=torch.float64)
    assert not torch.equal(other.hidden_block()[0], w)
    # the block in another type: the float64 block cast (the dtype is keyword-only)
    w32, _ = model.hidden_block(dtype=torch.float32)
    assert w32.dtype == torch.float32 and torch.equal(w32, w.float())
    with pytest.raises(TypeError):
        model.hidden_block(torch.float32)


def test_gates_do_not_train():
    model = MnistFixedGates.random(n=8, L=3, seed=0, dtype=torch.float32)
    before = [g.clone() for g in model.net.gates]
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 784)), torch.tensor([1, 2, 3, 4]))
    loss.backward()
    opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.net.gates))


def test_bad_model_arguments():
    with pytest.raises(ValueError, match="p"):
        MnistFixedGates.random(p=0.0, dtype=torch.float32)
    with pytest.raises(ValueError, match="L must"):
        MnistFixedGates.random(L=0, dtype=torch.float32)
    # the floating type is stated by every caller (float32 to train, float64 to compare)
    with pytest.raises(TypeError, match="dtype"):
        MnistFixedGates.random(n=8, L=3)


def test_config_depth_is_L_and_entry_points_default_to_the_cpu():
    """MnistConfig names the depth L; training runs on the CPU unless told otherwise."""
    from fgln.runs import relu_mnist

    cfg = MnistConfig(L=4)
    assert cfg.L == 4 and cfg.params()["L"] == 4 and "depth" not in cfg.params()
    assert MnistConfig().L == 10
    for fn in (train_mnist, mnist_tasks.cached_run, mnist_tasks.train_task,
               mnist_tasks.train_point, relu_mnist.train_relu_mnist, relu_mnist.cached_relu_run):
        assert inspect.signature(fn).parameters["device"].default == "cpu", fn.__name__


# --------------------------------------------------------------------------------------
# measurements
# --------------------------------------------------------------------------------------


def test_block_statistics_against_direct_products():
    w, g = sample_network(LayerLaw(10, 0.5).product(6), seed=4)
    w, g = w[0], g[0]
    st = block_statistics(w, g, k_spectrum=4, k_align=(3, 10))
    L = 6
    assert st["logsv_B"].shape == (L, 4) and st["rho_k3"].shape == (L,)
    assert np.allclose(st["logsv_B"][0], 0.0)  # B_1 = I
    # B_4 = D_3 W_3 D_2 W_2 D_1 W_1, formed directly
    B4 = torch.diag(g[2]) @ w[2] @ torch.diag(g[1]) @ w[1] @ torch.diag(g[0]) @ w[0]
    with np.errstate(divide="ignore"):
        ref = np.log(torch.linalg.svdvals(B4).numpy()[:4])
    assert np.allclose(st["logsv_B"][3], ref, atol=1e-10)
    # J = W_6 D_5 ... D_1 W_1 and A_2 = W_6 D_5 W_5 D_4 W_4 D_3 W_3 D_2 (Section 7)
    J = w[0]
    for l in range(1, L):
        J = w[l] @ torch.diag(g[l - 1]) @ J
    A2 = torch.eye(10, dtype=w.dtype)
    for l in range(L - 1, 1, -1):
        A2 = A2 @ w[l] @ torch.diag(g[l - 1])
    UJ = torch.linalg.svd(J)[0]
    UA = torch.linalg.svd(A2)[0]
    # the diagonal correlation ignores column signs, so any SVD convention gives the same rho
    assert st["rho_k3"][1] == pytest.approx(diagonal_correlation((UJ.T @ UA)[:3, :3]), abs=1e-9)
    assert np.allclose(st["logsv_J"], np.log(torch.linalg.svdvals(J).numpy()[:4]), atol=1e-10)


def test_split_clusters_finds_the_largest_gap():
    x = np.array([0.5, 0.4, 0.2, -1.5, -1.7, -1.8, -2.6])
    assert split_clusters(x) == 3
    assert split_clusters(x, max_cluster=2) == 2  # gaps after k = 1, 2 only: 0.1, 0.2
    with pytest.raises(ValueError, match="max_cluster"):
        split_clusters(x, max_cluster=7)
    with pytest.raises(ValueError, match="finite"):
        split_clusters(np.array([0.0, -np.inf]))
    with pytest.raises(ValueError, match="length"):
        split_clusters(np.array([1.0]))


def test_cluster_measurements_recover_known_slopes():
    L, ls = 8, np.arange(1, 9)
    top = np.array([0.3, 0.1])[None, :] + (-0.05 * ls)[:, None]
    bottom = np.array([-1.0, -1.2, -1.5])[None, :] + (-0.4 * ls)[:, None]
    x = np.concatenate([top, bottom], 1)
    m = cluster_measurements(x, 2)
    assert m["r"] == 2 and m["size_bottom"] == 3
    assert m["slope_top"] == pytest.approx(-0.05) and m["slope_bottom"] == pytest.approx(-0.4)
    assert m["gap"] == pytest.approx(x[-1, 1] - x[-1, 2])
    assert m["maxres"] == pytest.approx(0.0, abs=1e-12)
    assert m["spread_top"] == pytest.approx(0.2) and m["spread_bottom"] == pytest.approx(0.5)
    assert L == x.shape[0]
    with pytest.raises(ValueError, match="r"):
        cluster_measurements(x, 5)


# --------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------


def test_quick_training_lowers_the_loss(digits):
    res = train_mnist(QUICK, seed=0, data=digits, workers=0, device="cpu", progress=False)
    assert res["test_loss"].shape == (2,) and res["test_acc"].shape == (2,)
    # at initialisation the deep gated product is small: loss ~ log 10, chance accuracy
    assert res["test_loss"][0] == pytest.approx(math.log(10), abs=0.05)
    assert res["test_loss"][1] < res["test_loss"][0] - 0.05
    assert res["test_acc"][1] > res["test_acc"][0] + 0.05
    first, last = res["losses"][:8].mean(), res["losses"][-8:].mean()
    assert last < first - 0.05
    assert str(res["source"]) == "bundled" and str(res["device"]) == "cpu"
    assert res["n_train"] == 512 and res["n_test"] == 500
    # the block moved, the statistics at initialisation are those of the sampled network
    assert not np.allclose(res["logsv_B"], res["logsv_B_init"])
    w0, g0 = MnistFixedGates.random(seed=0, dtype=torch.float32).hidden_block()
    assert np.allclose(res["rho_k10_init"], block_statistics(w0, g0)["rho_k10"])


def test_resume_after_interrupt_gives_identical_weights(digits, tmp_path, monkeypatch):
    cfg = MnistConfig(train_size=96, test_size=50, epochs=3, batch_size=16, lr=0.02,
                      k_align=(10,))
    ref = train_mnist(cfg, seed=2, data=digits, workers=0, device="cpu", progress=False,
                      checkpoint=tmp_path / "ref.pt")
    # interrupt: the evaluation at the start of epoch 3 raises (checkpoint of epoch 2 on disk)
    calls = {"n": 0}
    real = mnist_run.evaluate

    def flaky(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(mnist_run, "evaluate", flaky)
    ck = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        train_mnist(cfg, seed=2, data=digits, workers=0, device="cpu", progress=False,
                    checkpoint=ck)
    monkeypatch.setattr(mnist_run, "evaluate", real)
    assert ck.is_file()
    res = train_mnist(cfg, seed=2, data=digits, workers=0, device="cpu", progress=False,
                      checkpoint=ck)
    assert res["epochs_run"] == pytest.approx(1.0)  # only the last epoch was redone
    a = torch.load(tmp_path / "ref.pt", weights_only=True)["model"]
    b = torch.load(ck, weights_only=True)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    for key in ("losses", "test_acc", "logsv_B", "rho_k10"):
        assert np.array_equal(ref[key], res[key]), key


def test_workers_do_not_change_the_result(digits):
    cfg = MnistConfig(train_size=64, test_size=32, epochs=1, batch_size=16, k_align=(10,))
    a = train_mnist(cfg, seed=1, data=digits, workers=0, device="cpu", progress=False)
    b = train_mnist(cfg, seed=1, data=digits, workers=2, device="cpu", progress=False)
    assert np.array_equal(a["losses"], b["losses"])


def test_splits_and_evaluate_keywords(digits):
    """splits takes the seed by keyword (0 by default); evaluate's minibatch size changes
    nothing but the passes."""
    cfg = MnistConfig(train_size=8, test_size=6)
    train0, test0 = cfg.splits(digits)
    train1, _ = cfg.splits(digits, seed=0)
    assert len(train0) == 8 and len(test0) == 6
    assert all(torch.equal(train0[i][0], train1[i][0]) for i in range(8))
    with pytest.raises(TypeError):
        cfg.splits(digits, 0)
    model = MnistFixedGates.random(n=8, L=2, seed=0, dtype=torch.float32)
    x, y = test0.batch(range(6))
    acc, loss = mnist_run.evaluate(model, x, y, batch_size=4)
    assert (acc, loss) == pytest.approx(mnist_run.evaluate(model, x, y), rel=1e-6)
    assert 0 <= acc <= 1 and loss > 0


def test_relu_mnist_model_draws_the_ungated_block_first():
    """MnistRelu.random: the block is sample_network(LayerLaw(n).product(L), seed=seed), its
    gates at an image are the ReLU gates, and the block measurements have their shapes."""
    from fgln.runs.relu_mnist import MnistRelu, relu_block_measurements

    model = MnistRelu.random(n=8, L=3, seed=5, dtype=torch.float64)
    W = model.hidden_weights()
    w_ref, _ = sample_network(LayerLaw(8, 1.0, 1 / math.sqrt(8)).product(3), seed=5)
    assert torch.equal(W, w_ref[0])
    assert model.hidden_weights(dtype=torch.float32).dtype == torch.float32
    with pytest.raises(TypeError, match="dtype"):
        MnistRelu.random(n=8, L=3)
    x = torch.randn(4, 784, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    G = model.block_gates(x)
    assert G.shape == (4, 3, 8) and bool(((G == 0) | (G == 1)).all())
    m = relu_block_measurements(model, x, k_spectrum=4, k_align=3, subspace=2)
    assert m["logsv_J"].shape == (4, 4) and m["overlap"].shape == (4, 4)
    np.testing.assert_allclose(np.diag(m["overlap"]), 1.0, atol=1e-12)


def test_checkpoint_path_depends_on_everything(tmp_path, digits):
    from fgln.book.cache import checkpoint_path

    def path(config, seed, **changes):
        params = dict(mnist_run.run_params(config, seed, digits), **changes)
        return checkpoint_path("mnist_train", params, tmp_path)

    p = path(QUICK, 0)
    assert p.parent == tmp_path / "checkpoints" and p.suffix == ".pt"
    assert p == path(QUICK, 0)
    assert p != path(QUICK, 1)
    assert p != path(QUICK, 0, source="other")
    assert p != path(MnistConfig(), 0)


def test_run_params_name_everything_the_run_depends_on(digits):
    p = mnist_run.run_params(QUICK, 0, digits)
    assert json.loads(json.dumps(p)) == p
    assert p != mnist_run.run_params(QUICK, 1, digits)
    assert p != mnist_run.run_params(MnistConfig(), 0, digits)
    assert p["source"] == digits.source and p["n_train_total"] == len(digits.train)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_quick_training_on_cuda(digits):
    res = train_mnist(QUICK, seed=0, data=digits, workers=2, device="cuda", progress=False)
    assert str(res["device"]) == torch.cuda.get_device_name(0)
    assert res["test_loss"][1] < res["test_loss"][0] - 0.05
    cpu = train_mnist(QUICK, seed=0, data=digits, workers=0, device="cpu", progress=False)
    # same data, initialisation and batch order; float32 kernels differ only in rounding
    assert np.allclose(res["losses"], cpu["losses"], rtol=1e-3, atol=1e-4)
    assert np.allclose(res["rho_k10_init"], cpu["rho_k10_init"])


def test_alignment_reach():
    assert alignment_reach(np.array([0.9, 0.7, 0.4, 0.1])) == pytest.approx(2 + 0.2 / 0.3)
    assert alignment_reach(np.array([0.3, 0.9])) == 1.0
    assert alignment_reach(np.array([0.9, 0.8, 0.6])) == 3.0
    assert alignment_reach(np.array([0.9, 0.5, 0.2])) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="finite"):
        alignment_reach(np.array([0.9, np.nan]))


def test_linear_baseline_is_a_least_squares_fit(digits):
    """Labels that are an exact linear function of the pixels are recovered perfectly; the
    real digits are well above chance."""
    from fgln.mnist.data import MnistDataset

    imgs = digits.train.images[:300]
    X = imgs.reshape(300, -1).double() / 255
    X = (X - 0.1307) / 0.3081
    M = torch.randn(784, 10, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    labels = (X @ M).argmax(1)
    ds = MnistDataset(imgs, labels)
    assert mnist.linear_baseline(ds, ds, ridge=1e-9) == 1.0
    acc = mnist.linear_baseline(digits.train.subset(2000), digits.test)
    assert 0.6 < acc < 0.95


def test_logistic_baseline_fits_separable_labels_and_chooses_on_training_digits(digits):
    """Labels that are an exact linear function of the pixels are fitted perfectly by the
    multinomial logistic regression; the penalty is chosen without the test digits (the same
    choice whatever the test set); bad arguments are refused."""
    from fgln.mnist.data import MnistDataset

    imgs = digits.train.images[:400]
    X = imgs.reshape(400, -1).double() / 255
    X = (X - 0.1307) / 0.3081
    M = torch.randn(784, 10, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ds = MnistDataset(imgs, (X @ M).argmax(1))
    res = mnist.logistic_baseline(ds, ds, penalties=(1e-4, 1e-2), steps=100)
    assert res["accuracy"] >= 0.97 and res["correct"].shape == (400,)
    assert res["correct"].mean() == pytest.approx(res["accuracy"])
    other = mnist.logistic_baseline(ds, digits.test.subset(50), penalties=(1e-4, 1e-2), steps=100)
    assert other["penalty"] == res["penalty"]
    with pytest.raises(ValueError, match="penalties"):
        mnist.logistic_baseline(ds, ds, penalties=(0.0,))
    with pytest.raises(ValueError, match="holdout"):
        mnist.logistic_baseline(ds, ds, holdout=1.0)
