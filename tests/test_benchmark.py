"""benchmarks/spectra.py at a tiny size (``--quick``), run in-process, its numbers recomputed."""
from __future__ import annotations

import importlib.util
import io
import json
import sys
from contextlib import redirect_stdout

import pytest
import torch

from conftest import REPO_ROOT
from fgln.base.laws import LayerLaw
from fgln.products.sampling import sample_layers, sample_network
from fgln.products.spectra import log_singular_values, log_spectra_by_depth, lyapunov_estimates
from fgln.training.networks import FixedGatesNetwork

BENCH = REPO_ROOT / "benchmarks" / "spectra.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("fgln_bench_spectra", BENCH)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def quick_run(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    buf = io.StringIO()
    with redirect_stdout(buf):
        res = bench.main(["--quick", "--reorth", "2,4", "--out-dir", str(out)])
    return res, buf.getvalue(), out


@pytest.fixture(scope="module")
def quick_layers():
    """The layers the quick run measures (n=16, L=12, 4 replicates, p=0.5, seed 0)."""
    return sample_layers(LayerLaw(16, 0.5).product(12), 4, seed=0)


def test_quick_run_keys_ratios_and_json(quick_run):
    res, text, out = quick_run
    meta = res["meta"]
    assert (meta["n"], meta["L"], meta["batch"], meta["p"]) == (16, 12, 4, 0.5)
    for key in ("torch_version", "cpu_model", "torch_threads", "loadavg_start", "loadavg_end",
                "date", "dtype"):
        assert key in meta
    kinds = {f"{k}_{m}" for k in ("final", "lyapunov") for m in ("auto", "m1", "m2", "m4")}
    assert set(res["timings"]) == {"floor", "naive", "ours_all", "ours_k1", "ours_k10"} | kinds
    floor = res["timings"]["floor"]["seconds"]
    for t in res["timings"].values():
        assert len(t["all_seconds"]) == 7  # warm-up round discarded
        assert t["min"] == min(t["all_seconds"]) > 0
        assert t["seconds"] == t["median"] == sorted(t["all_seconds"])[3]
        assert t["over_floor"] == pytest.approx(t["seconds"] / floor, rel=1e-12)
    assert set(res["comparisons"]) == {
        "final_auto / floor", "lyapunov_auto / floor", "final_auto / final_m1",
        "lyapunov_auto / lyapunov_m1", "ours_all / naive", "ours_k1 / naive", "ours_k10 / naive"}
    for c in res["comparisons"].values():
        assert c["verdict"] in {"same cost", "slower", "faster", "inconclusive"}
    auto = res["timings"]["final_auto"]
    assert auto["layers_pushed"] >= 12 and 1 <= auto["qr_steps"] <= auto["layers_pushed"]
    # strict JSON under the documented name, no temporary file left behind
    path = out / "cpu-16-12-4-p0.5.json"
    assert res["json_path"] == str(path)
    data = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict {c}"))
    assert data["timings"]["final_auto"]["seconds"] == auto["seconds"]
    assert not list(out.glob(".*.tmp"))
    for word in ("floor: matmuls + renorm", "naive: product + SVD at every depth",
                 "ours: every depth, top k=1", "exact final spectrum, adaptive interval",
                 "exponents (QR estimator), reorth_every=4", "naive vs ours at every depth",
                 "mpmath reference", "exact final spectrum: adaptive interval"):
        assert word in text


def test_reported_errors_are_the_recomputed_ones(quick_run, quick_layers):
    """The accuracy table compares each interval with one QR step per layer."""
    acc = quick_run[0]["checks"]["vs_one_step_per_layer"]
    assert set(acc) == {"final_auto", "final_m2", "final_m4",
                        "lyapunov_auto", "lyapunov_m2", "lyapunov_m4"}
    ref = log_singular_values(quick_layers, reorth_every=1)
    fin = torch.isfinite(ref)
    for key, m in (("final_auto", None), ("final_m4", 4)):
        v = log_singular_values(quick_layers, reorth_every=m)
        assert acc[key]["max_abs_err_log_sv"] == pytest.approx(
            float((v - ref)[fin].abs().max()), rel=1e-6, abs=1e-15)
        assert acc[key]["inf_pattern_equal"] is True
    assert acc["final_auto"]["max_abs_err_log_sv"] < 1e-10
    g1 = lyapunov_estimates(quick_layers, reorth_every=1)
    g4 = lyapunov_estimates(quick_layers, reorth_every=4)
    fin = torch.isfinite(g1)
    assert acc["lyapunov_m4"]["max_abs_err_exponent"] == pytest.approx(
        float((g4 - g1)[fin].abs().max()), rel=1e-6, abs=1e-15)
    assert acc["lyapunov_auto"]["max_abs_err_exponent"] < 1e-10


def test_naive_vs_ours_and_exact_zeros(quick_run):
    checks = quick_run[0]["checks"]
    cmp = checks["naive_vs_ours"]
    assert cmp["max_abs_diff_top_sv"] < 1e-8  # where naive is accurate, the two agree
    # exact zeros: the rank of M_l ... M_1 is the smallest gate rank so far (a.s.)
    _, d = sample_network(LayerLaw(16, 0.5).product(12), 4, seed=0)
    rank = torch.cummin(d.sum(-1), dim=1).values  # [replicates, L]
    assert cmp["ours_exact_zeros"] == int((16 - rank).sum())
    for v in checks["top_k_vs_all"].values():
        assert v["max_abs"] < 1e-7 and v["inf_pattern_equal"]


def test_reference_check(quick_run):
    ref = quick_run[0]["reference"]  # ungated: the widest dynamic range
    assert ref["p"] == 1.0 and ref["dynamic_range_digits"] > 16  # beyond float64
    assert ref["reference_self_consistency_max_abs"] < 1e-12
    assert ref["ours_max_abs_err"] < 1e-8 and ref["ours_zero_pattern_matches"]
    assert ref["naive_max_abs_err_top_sv"] < 1e-8
    assert ref["naive_max_abs_err"] > 100 * ref["ours_max_abs_err"]


def test_reference_check_gated_zero_pattern(bench):
    from baselines import reference_check  # put on sys.path by the benchmark module

    ref = reference_check(8, 24, 1, 0.5, None, 1, "auto", torch.device("cpu"))
    assert ref["reference_exact_zeros"] > 0 and ref["reference_zero_pattern_stable"]
    assert ref["ours_exact_zeros"] == ref["reference_exact_zeros"]
    assert ref["ours_zero_pattern_matches"] and ref["ours_max_abs_err"] < 1e-8


def test_gated_exact_zeros(bench):
    from baselines import compare_naive_ours  # put on sys.path by the benchmark module

    layers = sample_layers(LayerLaw(12, 0.5).product(10), 3, seed=3)
    ours = log_spectra_by_depth(layers)
    naive = bench.naive_spectra_by_depth(layers)
    cmp = compare_naive_ours(naive, ours)
    assert cmp["ours_exact_zeros"] > 0
    # naive reports rounding noise where ours reports exact zeros
    assert cmp["naive_finite_where_ours_zero"] > 0
    assert cmp["naive_log_rel_at_ours_zeros_max"] < -25
    assert torch.allclose(naive[..., 0], ours[..., 0], rtol=0, atol=1e-8)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_unavailable_message(bench):
    with pytest.raises(SystemExit, match="CUDA is not available"):
        bench.main(["--quick", "--device", "cuda", "--no-save"])


def _load(name: str):
    spec = importlib.util.spec_from_file_location(f"fgln_bench_{name}",
                                                  REPO_ROOT / "benchmarks" / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def test_training_benchmark_quick(tmp_path):
    """benchmarks/training.py --quick in-process: the two models agree, every workload is
    timed in interleaved rounds, the ratios are the recomputed ones, comparisons of different
    computations are labelled and paired with a like-for-like one, every field is written."""
    mod = _load("training")
    net = FixedGatesNetwork.random([5, 7, 6, 4], 0.5, seed=0)
    plain = mod.MaskedLinearStack(net)
    x = torch.randn(3, 5, dtype=torch.float64)
    assert torch.allclose(plain(x), net(x), rtol=1e-12, atol=1e-12)
    x = torch.randn(500, 5, dtype=torch.float64)  # ours goes through J, LayerByLayer does not
    assert mod.order(net, 500) == "through J"
    assert mod.order(mod.LayerByLayer(net.weights, net.gates), 500) == "layer by layer"
    assert torch.allclose(mod.LayerByLayer(net.weights, net.gates)(x), plain(x),
                          rtol=1e-12, atol=1e-12)
    buf = io.StringIO()
    with redirect_stdout(buf):
        out = mod.main(["--quick", "--steps", "3", "--out-dir", str(tmp_path)])
    saved = json.loads((tmp_path / "training-cpu-quick.json").read_text())
    assert saved["steps"] == out["steps"] and len(saved["recording"]) == 3
    for key in ("date", "cpu_model", "cpu_count", "torch_version", "loadavg_start",
                "loadavg_end"):
        assert key in saved["meta"]
    same = {(r["workload"].split(", ours")[0], r["rows"]) for r in out["steps"]
            if r["computation"] == "same"}
    assert len(same) == 3  # every case has a like-for-like comparison
    for row in out["steps"]:
        assert len(row["ours"]["rounds"]) == len(row["plain"]["rounds"]) == 7
        assert 0 < row["ours"]["min"] <= row["ours_ms"] == row["ours"]["median"]
        assert row["ratio"] == pytest.approx(row["ours_ms"] / row["plain_ms"])
        lo, hi = row["comparison"]["round_ratio_interval"]
        ratios = sorted(a / b for a, b in zip(row["ours"]["rounds"], row["plain"]["rounds"]))
        assert (lo, hi) == pytest.approx((ratios[0], ratios[-1]))  # 7 rounds: [min, max]
        same = 1 / 1.1 <= lo and hi <= 1.1
        assert row["comparison"]["verdict"] == (
            "same cost" if same else "slower" if lo > 1 else "faster" if hi < 1
            else "inconclusive")
        assert (row["computation"] == "same") == (row["ours_order"] == "layer by layer")
    for row in out["recording"]:
        assert row["records"] > 1 and 0 < row["ms_per_record"]
        assert 0 < row["record_over_train"] < float("inf")
        assert len(row["record_over_train_rounds"]["rounds"]) == 7
        # the chapters' frequency (record_dt / lr of the quick Figure 1 run), in the label
        assert row["every"] == 20 and f"every {row['every']} steps" in row["workload"]
        assert row["records"] == row["steps"] // row["every"] + 1
        walls = sorted(a / b for a, b in zip(row["total_s"]["rounds"], row["bare_s"]["rounds"]))
        assert row["wall"]["round_ratio_interval"] == pytest.approx([walls[0], walls[-1]])
    text = buf.getvalue()
    assert "ratio" in text and "different computations" in text and "load average" in text


def test_timing_noise_rule():
    """The sign-test interval: [min, max] of the round ratios at 7 rounds (98.4%), the 2nd
    and 8th of 9 (96.1%); fewer than 6 rounds are refused."""
    sys.path.insert(0, str(REPO_ROOT / "benchmarks"))
    import timing

    assert [timing.median_interval_rank(r) for r in (5, 6, 7, 8, 9, 12)] == [0, 1, 1, 1, 2, 3]
    c = timing.compare([1.1, 1.2, 1.05, 1.3, 1.1, 1.15, 1.2], [1.0] * 7)
    assert c["verdict"] == "slower" and c["round_ratio_interval"] == pytest.approx([1.05, 1.3])
    assert c["confidence"] == pytest.approx(1 - 2 / 128)
    c = timing.compare([0.9] + [1.2] * 8, [1.0] * 9)
    assert c["verdict"] == "slower" and c["confidence"] == pytest.approx(1 - 20 / 512)
    assert timing.compare([0.9] + [1.1] * 6, [1.0] * 7)["verdict"] == "inconclusive"
    # a 3 % difference that the interval resolves is still the same cost within 10 %
    c = timing.compare([0.97, 0.96, 0.98, 0.97, 0.95, 0.97, 0.96], [1.0] * 7)
    assert c["verdict"] == "same cost" and c["margin"] == 0.10
    assert timing.verdict(0.5, 0.95) == "faster" and timing.verdict(0.92, 1.09) == "same cost"
    assert timing.verdict(0.92, 1.09, margin=0.05) == "inconclusive"
    with pytest.raises(ValueError, match="lo <= hi"):
        timing.verdict(1.2, 1.1)
    s = timing.summary([3.0, 1.0, 2.0, 5.0, 4.0, 7.0, 6.0])
    assert (s["min"], s["median"], s["max"], s["iqr"]) == (1.0, 4.0, 7.0, 3.0)
    with pytest.raises(ValueError, match="rounds"):
        timing.interleave({"a": lambda: None}, 3)
    with pytest.raises(ValueError, match="too few"):
        timing.compare([1.0] * 5, [1.0] * 5)
    order = []
    t = timing.interleave({"a": lambda: order.append("a"), "b": lambda: order.append("b")}, 7)
    assert order == ["a", "b"] * 8 and len(t["a"]) == len(t["b"]) == 7  # warm-up discarded


def test_mnist_benchmark_quick(tmp_path):
    """benchmarks/mnist.py --quick: every loop measured in interleaved rounds, the data share
    in [0, 1], ours compared with torchvision's per-image pipeline and with the bare loop, the
    augmentation alone timed against torchvision on tensors and PIL images."""
    buf = io.StringIO()
    with redirect_stdout(buf):
        res = _load("mnist").main(["--quick", "--workers", "0", "--out-dir", str(tmp_path)])
    assert res["meta"]["images"] == 512 and res["meta"]["rounds"] == 7
    assert set(res["loops"]) == {"ours, workers=0", "torchvision, workers=0",
                                 "plain loop over our loader, workers=0",
                                 "no augmentation, workers=0", "compute only"}
    for r in res["loops"].values():
        assert r["images_per_s"] == pytest.approx(512 / r["seconds"]["median"])
        assert len(r["seconds"]["rounds"]) == 7 and 0 <= r["data_share"] <= 1
    assert set(res["comparisons"]) == {
        "ours, workers=0 / torchvision, workers=0",
        "ours, workers=0 / plain loop over our loader, workers=0"}
    for c in res["comparisons"].values():
        assert c["verdict"] in {"same cost", "slower", "faster", "inconclusive"}
    assert res["loops"]["compute only"]["data_share"] == 0
    # the loop without a loader is the floor: faster than ours with augmentation
    assert (res["loops"]["compute only"]["images_per_s"]
            > res["loops"]["ours, workers=0"]["images_per_s"])
    aug = res["augmentation"]
    assert set(aug["per_image_s"]) == {"batched", "torchvision, tensor", "torchvision, PIL"}
    assert aug["speedup"] == aug["comparisons"]["torchvision, tensor / batched"]["ratio_median"]
    saved = json.loads((tmp_path / "mnist-cpu-quick.json").read_text())
    assert saved["meta"]["images"] == 512 and "loadavg_end" in saved["meta"]
    assert "AutoAugment alone" in buf.getvalue()


def test_mnist_torchvision_baseline_gives_the_same_inputs():
    """The torchvision pipeline without augmentation gives the chapter dataset's items (same
    scaling and normalisation), so the two loops train on like inputs."""
    import warnings

    from fgln.mnist.data import BundledMnistWarning, load_mnist

    mod = _load("mnist")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BundledMnistWarning)
        ds = load_mnist().train.subset(4)
    ds.augment = None
    tv = mod.torchvision_dataset(ds, augment=False)
    for i in range(4):
        (x, y), (xt, yt) = ds[i], tv[i]
        assert y == yt and xt.dtype == x.dtype and xt.shape == x.shape == (1, 28, 28)
        assert torch.allclose(xt, x, rtol=0, atol=1e-5)
    aug = mod.torchvision_dataset(ds)[0][0]
    assert aug.shape == (1, 28, 28) and aug.dtype == torch.float32


def test_benchmarks_refuse_missing_cuda():
    if torch.cuda.is_available():
        pytest.skip("CUDA present")
    for name in ("training", "mnist"):
        with pytest.raises(SystemExit, match="CUDA"):
            _load(name).main(["--quick", "--device", "cuda", "--no-save"])
