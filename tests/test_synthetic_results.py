"""Results stacked over replicates (fgln.base.statistics.stack_replicates), the views over the
synthetic runs (fgln.training.synthetic_results), the Figure 1 configuration
(fgln.training.synthetic_runs.Figure1Run) and the G.1 summaries over replicates
(fgln.theory.g1_process)."""
import dataclasses

import numpy as np
import pytest

from fgln.base.statistics import stack_replicates
from fgln.theory.g1_process import (
    g1_process,
    g1_processes,
    growth_phase_ratio,
    growth_phase_ratios,
    relative_rms,
)
from fgln.training.synthetic_results import BalancedRuns, SyntheticRuns
from fgln.training.synthetic_runs import Figure1Run, balanced_run, synthetic_run

# --------------------------------------------------------------------------
# stack_replicates
# --------------------------------------------------------------------------


def test_stack_replicates_is_np_stack_per_field():
    rng = np.random.default_rng(0)
    results = [{"a": rng.standard_normal((3, 2)), "b": float(i), "c": np.arange(4) + i}
               for i in range(5)]
    out = stack_replicates(results)
    assert list(out) == ["a", "b", "c"]
    assert out["a"].shape == (5, 3, 2) and out["b"].shape == (5,) and out["c"].shape == (5, 4)
    for i, r in enumerate(results):
        assert np.array_equal(out["a"][i], r["a"]) and out["b"][i] == r["b"]
        assert np.array_equal(out["c"][i], r["c"])
    assert list(stack_replicates(results, ["c"])) == ["c"]
    # a tuple works like a list, and one replicate gives a leading axis of 1
    assert stack_replicates(tuple(results[:1]))["a"].shape == (1, 3, 2)


@pytest.mark.parametrize("results, keys, error, match", [
    ([], None, ValueError, "results"),
    ({"a": 1}, None, TypeError, "results"),
    ("ab", None, TypeError, "results"),
    ([{"a": 1}, [1]], None, TypeError, r"results\[1\]"),
    ([{"a": 1}, {"b": 1}], None, ValueError, r"results\[1\] has no field 'a'"),
    ([{"a": np.zeros(2)}, {"a": np.zeros(3)}], None, ValueError, "'a'.*changes shape"),
    ([{"a": 1}], "a", TypeError, "keys"),
    ([{"a": 1}], [1], TypeError, "keys"),
])
def test_stack_replicates_bad_input(results, keys, error, match):
    with pytest.raises(error, match=match):
        stack_replicates(results, keys)


# --------------------------------------------------------------------------
# G.1 summaries over replicates
# --------------------------------------------------------------------------


def _sigmoid_runs(replicates=3, R=81):
    t = np.linspace(0.0, 8.0, R)
    s = np.stack([np.stack([1 / (1 + np.exp(-(t - c - 0.3 * i))) for c in (2.0, 4.0)], 1)
                  for i in range(replicates)])              # [replicates, R, 2]
    return t, s, np.gradient(s, t, axis=1)


def test_growth_phase_ratios_stack_the_single_run_ratio():
    t, _, rate = _sigmoid_runs()
    pred = rate * np.array([2.0, 0.5])
    out = growth_phase_ratios(t, pred, rate)
    assert out.shape == (3, 2)
    for i in range(3):
        assert np.array_equal(out[i], growth_phase_ratio(t, pred[i], rate[i]))
    assert np.allclose(out, [2.0, 0.5], rtol=1e-12)   # a constant factor, exactly
    with pytest.raises(ValueError, match="predicted and measured"):
        growth_phase_ratios(t, pred[0], rate[0])
    with pytest.raises(ValueError, match="predicted and measured"):
        growth_phase_ratios(t, pred, rate[:, :, :1])


def test_g1_processes_run_each_replicate_with_its_constant():
    rng = np.random.default_rng(1)
    steps = np.arange(0, 200, 10.0)
    g = -0.5 + 0.05 * rng.standard_normal((3, steps.size))
    s0 = np.array([0.1, 0.2, 0.3])
    C_each = np.array([-0.001, -0.002, -0.003])
    C_time = -0.002 * (1 + 0.1 * rng.random((3, steps.size)))
    for C, row in ((-0.002, lambda i: -0.002), (C_each, lambda i: C_each[i]),
                   (C_time, lambda i: C_time[i])):
        for every in (False, True):
            out = g1_processes(s0, g, steps, C, 10, every_step=every)
            assert out.shape == g.shape
            for i in range(3):
                assert np.array_equal(out[i], g1_process(s0[i], g[i], steps, row(i), 10, every))
    # an overflowing process is inf from there on, without a warning
    with np.errstate(all="raise"):
        big = g1_processes(s0, -g * 1e3, steps, 1.0, 10, every_step=True)
    assert np.isinf(big[:, -1]).all() and np.isfinite(big[:, 0]).all()
    with pytest.raises(ValueError, match="C must be"):
        g1_processes(s0, g, steps, np.ones(2), 10)
    with pytest.raises(ValueError, match="s0"):
        g1_processes(s0[:2], g, steps, -0.002, 10)
    with pytest.raises(ValueError, match="g must be"):
        g1_processes(s0, g[0], steps, -0.002, 10)
    with pytest.raises(TypeError, match="L"):
        g1_processes(s0, g, steps, -0.002, 10.0)


def test_relative_rms_exact_values_and_divergence():
    measured = np.array([[0.0, 1.0, 2.0, 3.0], [1.0, 1.0, 3.0, 1.0]])
    # a constant offset d gives RMS d, over the ranges 3 and 2
    out = relative_rms(measured + 0.3, measured)
    assert np.allclose(out, [0.3 / 3, 0.3 / 2])
    assert np.array_equal(relative_rms(measured, measured), [0.0, 0.0])
    diverging = measured.copy()
    diverging[0, -1] = np.inf
    diverging[1, 2] = 31.0                      # beyond 10 x max of the measured row (3)
    assert np.isinf(relative_rms(diverging, measured)).all()
    assert np.isfinite(relative_rms(diverging[1:], measured[1:], bound=20.0)).all()
    with pytest.raises(ValueError, match="predicted and measured"):
        relative_rms(measured[0], measured[0])
    with pytest.raises(ValueError, match="measured has non-finite"):
        relative_rms(measured, diverging)
    with pytest.raises(ValueError, match="bound"):
        relative_rms(measured, measured, bound=0.0)
    with pytest.raises(TypeError, match="bound"):
        relative_rms(measured, measured, bound="10")


# --------------------------------------------------------------------------
# Figure1Run
# --------------------------------------------------------------------------


def test_figure1_run_is_configured_once_per_scale():
    paper, quick = Figure1Run.at("paper"), Figure1Run.at("quick")
    assert (paper.n, paper.L, paper.p, paper.rank, paper.samples) == (64, 10, 0.5, 10, 1000)
    assert (paper.lr, paper.t_max, paper.record_dt, paper.k, paper.replicates) == \
        (0.02, 60.0, 0.5, 15, 8)
    assert (quick.t_max, quick.k, quick.replicates, quick.record_dt) == (10.0, 6, 2, 0.4)
    with pytest.raises(dataclasses.FrozenInstanceError):
        paper.k = 3
    tasks = quick.tasks(seed=5)
    assert [p["seed"] for _, p, _ in tasks] == [5, 6]
    assert all(name == "synthetic_run" and p["diagnostics"] for name, p, _ in tasks)
    # the parameters are the keyword arguments of synthetic_run, and the same in every chapter
    assert tasks[0][1] == quick.params(seed=5) == dict(
        n=16, L=4, p=0.5, rank=2, samples=100, lr=0.02, t_max=10.0, record_dt=0.4, k=6, seed=5,
        diagnostics=True)
    # seed 0 by default; the first positional argument is the number of runs
    assert [p["seed"] for _, p, _ in quick.tasks()] == [0, 1]
    assert quick.params() == quick.params(seed=0)
    assert [p["seed"] for _, p, _ in quick.tasks(3, seed=2)] == [2, 3, 4]
    half = quick.tasks(1, lr=0.01, diagnostics=False, seed=0)
    assert len(half) == 1 and half[0][1]["lr"] == 0.01 and not half[0][1]["diagnostics"]


@pytest.mark.parametrize("call, error, match", [
    (lambda: Figure1Run.at("big"), ValueError, "scale"),
    (lambda: Figure1Run.at(1), TypeError, "scale"),
    (lambda: dataclasses.replace(Figure1Run.at("quick"), k=17), ValueError, "k"),
    (lambda: dataclasses.replace(Figure1Run.at("quick"), replicates=2.0), TypeError,
     "replicates"),
    (lambda: dataclasses.replace(Figure1Run.at("quick"), record_dt=0.33), ValueError,
     "multiples"),
    (lambda: dataclasses.replace(Figure1Run.at("quick"), p=0.0), ValueError, "p"),
    (lambda: Figure1Run.at("quick").params(seed=-1), ValueError, "seed"),
    (lambda: Figure1Run.at("quick").params(lr=0.03, seed=0), ValueError, "multiples"),
    (lambda: Figure1Run.at("quick").tasks(replicates=0, seed=0), ValueError, "replicates"),
    (lambda: Figure1Run.at("quick").params(0), TypeError, "positional"),
    (lambda: synthetic_run(0), TypeError, "positional"),
    (lambda: balanced_run(0), TypeError, "positional"),
])
def test_figure1_run_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()


# --------------------------------------------------------------------------
# the views over stacked runs
# --------------------------------------------------------------------------


TINY = dict(n=6, L=3, p=0.5, rank=2, samples=30, lr=0.05, t_max=1.0, record_dt=0.25, k=3)


@pytest.fixture(scope="module")
def tiny_runs():
    return [synthetic_run(**TINY, diagnostics=True, seed=seed, progress=False) for seed in (0, 1)]


def test_synthetic_run_is_the_autograd_run():
    """synthetic_run's closed-form steps against train's autograd steps on the same task, for
    every recorded field (seed 2: a network of full rank k, so that every recorded singular
    vector is defined; the rank-deficient ones of seeds 0 and 1 have arbitrary null vectors)."""
    from fgln.training.networks import FixedGatesNetwork
    from fgln.training.recorders import DynamicsRecorder
    from fgln.training.synthetic_runs import compress_regression, synthetic_task
    from fgln.training.train import half_mse, train

    seed = 2
    X, Y, _ = synthetic_task(TINY["n"], TINY["rank"], TINY["samples"], seed=1_000_000 + seed)
    Xc, Yc, w, _ = compress_regression(X, Y)
    net = FixedGatesNetwork.random([TINY["n"]] * (TINY["L"] + 1), TINY["p"], seed=seed)
    ref = train(net, (Xc, Yc), lambda o, t: w * half_mse(o, t), lr=TINY["lr"], steps=20,
                record=5, recorders=[DynamicsRecorder(TINY["k"], subspace=TINY["rank"])],
                progress=False)
    run = synthetic_run(**TINY, diagnostics=True, seed=seed, progress=False)
    assert run["s"][:, TINY["k"] - 1].min() > 1e-3 * run["s"][:, 0].max()
    np.testing.assert_allclose(run["losses"], ref.losses, rtol=1e-10)
    assert set(ref.history) <= set(run)
    for key, want in ref.history.items():
        np.testing.assert_allclose(run[key], want, rtol=1e-7, atol=1e-9, err_msg=key)
    assert 0 < run["record_seconds"] < run["seconds"]


def test_synthetic_runs_view_holds_the_stacked_fields(tiny_runs):
    runs = SyntheticRuns.stack(tiny_runs)
    R = tiny_runs[0]["t"].size
    assert runs.replicates == 2 and runs.t.shape == (R,) and runs.lr == TINY["lr"]
    for key in ("s", "g", "loss", "T_sv", "rate_flow", "delta", "err_A", "sin_B"):
        assert np.array_equal(getattr(runs, key), np.stack([r[key] for r in tiny_runs])), key
    assert np.array_equal(runs.step, tiny_runs[1]["step"])
    assert np.array_equal(runs.top(2), runs.s[:, :, :2])
    # measured rates are finite differences in t, column by column
    rates = runs.rates(3)
    assert np.array_equal(rates[..., :2], runs.rates(2))
    assert np.array_equal(rates[1], np.gradient(runs.s[1, :, :3], runs.t, axis=0))
    ratios = runs.growth_ratios(runs.rate_flow, 2)
    assert ratios.shape == (2, 2)
    for i in range(2):
        assert np.array_equal(ratios[i], growth_phase_ratio(runs.t, runs.rate_flow[i][:, :2],
                                                            rates[i][:, :2]), equal_nan=True)
    # the measured rates against themselves: exactly 1 for every mode that grows
    self_ratio = runs.growth_ratios(rates, 3)
    grows = rates.max(1) > 0
    assert np.all(self_ratio[grows] == 1.0) and np.isnan(self_ratio[~grows]).all()
    assert grows.any()


def test_synthetic_runs_view_without_diagnostics_and_bad_input(tiny_runs):
    plain = [{key: r[key] for key in ("t", "step", "s", "g", "loss", "T_sv", "lr")}
             for r in tiny_runs]
    runs = SyntheticRuns.stack(plain)
    assert runs.rate_prop71 is None and runs.eps_depth is None
    with pytest.raises(ValueError, match="predicted is None"):
        runs.growth_ratios(runs.rate_prop71, 2)
    with pytest.raises(ValueError, match="predicted must be"):
        runs.growth_ratios(runs.s[0], 2)
    with pytest.raises(ValueError, match="k must be"):
        runs.top(7)
    with pytest.raises(TypeError, match="k must be"):
        runs.rates(2.0)
    other_t = [plain[0], dict(plain[1], t=plain[1]["t"] * 2)]
    with pytest.raises(ValueError, match="share 't'"):
        SyntheticRuns.stack(other_t)
    with pytest.raises(ValueError, match="no field 'loss'"):
        SyntheticRuns.stack([plain[0], {k: v for k, v in plain[1].items() if k != "loss"}])
    with pytest.raises(TypeError, match="results"):
        SyntheticRuns.stack(plain[0])


def test_balanced_runs_view_on_a_grid():
    rng = np.random.default_rng(2)
    G, k = 5, 2
    t = np.arange(G) * 0.5
    runs = [{"t": t, "s": rng.random((G, k)), "measured": rng.standard_normal((G, k)),
             "pred": rng.standard_normal((G, k)), "flow": rng.standard_normal((G, k)),
             "balance": rng.random(G), "lr": 0.01} for _ in range(6)]
    view = BalancedRuns.stack(runs, (2, 3))
    assert view.measured.shape == (2, 3, G, k) and view.balance.shape == (2, 3, G)
    assert np.array_equal(view.pred[1, 2], runs[5]["pred"])   # row-major over the grid
    err = view.rate_error()
    for i, j in np.ndindex(2, 3):
        r = runs[3 * i + j]
        assert err[i, j] == np.abs(r["measured"] - r["pred"]).max() / np.abs(r["pred"]).max()
        assert view.flow_gap()[i, j] == (np.abs(r["flow"] - r["pred"]).max()
                                         / np.abs(r["flow"]).max())
    again = BalancedRuns(**view.arrays())
    assert all(np.array_equal(getattr(again, f), getattr(view, f)) for f in view.arrays())
    assert BalancedRuns.stack(runs).measured.shape == (6, G, k)
    with pytest.raises(ValueError, match="grid"):
        BalancedRuns.stack(runs, (4, 2))
    with pytest.raises(ValueError, match="share 't'"):
        BalancedRuns.stack([runs[0], dict(runs[1], t=t + 1)])
