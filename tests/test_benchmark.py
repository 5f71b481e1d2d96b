"""Smoke test of benchmarks/spectra.py at a tiny size (``--quick``), run in-process."""
from __future__ import annotations

import importlib.util
import json
import sys

import pytest
import torch

from conftest import REPO_ROOT
from fgln.sampling import sample_layers
from fgln.spectra import log_spectra_by_depth

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
    import io
    from contextlib import redirect_stdout

    buf = io.StringIO()
    with redirect_stdout(buf):
        res = bench.main(["--quick", "--reorth", "1,2,4", "--out-dir", str(out)])
    return res, buf.getvalue(), out


def test_quick_run_keys_and_json(quick_run):
    res, text, out = quick_run
    assert set(res) >= {"meta", "timings", "target", "naive_vs_ours", "consistency", "reference"}
    meta = res["meta"]
    assert (meta["n"], meta["L"], meta["batch"]) == (16, 12, 4)
    for key in ("torch_version", "cpu_model", "torch_threads", "loadavg_start", "dtype"):
        assert key in meta
    expected = {"floor", "naive", "ours_all", "ours_k1", "ours_k10",
                "exponent_m1", "exponent_m2", "exponent_m4",
                "lyapunov_m1", "lyapunov_m2", "lyapunov_m4"}
    assert set(res["timings"]) == expected
    for t in res["timings"].values():
        assert t["seconds"] > 0 and "over_floor" in t and "over_naive" in t
    assert res["timings"]["exponent_m1"]["max_abs_err_log_sv"] == 0.0
    assert res["timings"]["lyapunov_m1"]["max_abs_err_exponent"] == 0.0
    assert res["timings"]["lyapunov_m2"]["max_abs_err_exponent"] < 1e-8
    # the JSON is strict (no NaN/Infinity) and written under the documented name
    path = out / "cpu-16-12-4.json"
    assert res["json_path"] == str(path)
    data = json.loads(path.read_text(), parse_constant=lambda c: pytest.fail(f"non-strict {c}"))
    assert data["meta"]["n"] == 16 and "exponent_m2" in data["timings"]
    assert not list(out.glob("*.tmp"))
    for word in ("floor: matmuls + renorm", "naive: product + SVD at every depth",
                 "ours: every depth, top k=1", "reorth_every=4", "naive vs ours at every depth",
                 "mpmath reference", "target:"):
        assert word in text


def test_quick_run_accuracy(quick_run):
    res, _, _ = quick_run
    cmp = res["naive_vs_ours"]
    # the top singular value is where naive is accurate: ours must agree with it
    assert cmp["max_abs_diff_top_sv"] < 1e-8
    assert cmp["ours_exact_zeros"] == 0  # p = 1: no gates, no exact zeros
    ref = res["reference"]
    assert ref["dynamic_range_digits"] > 16  # beyond float64: naive cannot resolve it
    assert ref["ours_max_abs_err"] < 1e-8
    assert ref["ours_zero_pattern_matches"]
    assert ref["naive_max_abs_err_top_sv"] < 1e-8
    assert ref["naive_max_abs_err"] > ref["ours_max_abs_err"]
    cons = res["consistency"]
    assert cons["k1_vs_all_max_abs"] < 1e-7 and cons["exponent_m1_vs_by_depth_final_max_abs"] == 0


def test_gated_exact_zeros(bench):
    layers = sample_layers(12, 10, 0.5, batch=3, seed=3)
    ours = log_spectra_by_depth(layers)
    naive = bench.naive_spectra_by_depth(layers)
    cmp = bench.compare_naive_ours(naive, ours)
    assert cmp["ours_exact_zeros"] > 0
    # naive reports rounding noise where ours reports exact zeros
    assert cmp["naive_finite_where_ours_zero"] > 0
    assert cmp["naive_log_rel_at_ours_zeros_max"] < -25
    assert torch.allclose(naive[..., 0], ours[..., 0], rtol=0, atol=1e-8)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_unavailable_message(bench):
    with pytest.raises(SystemExit, match="CUDA is not available"):
        bench.main(["--quick", "--device", "cuda", "--no-save"])
