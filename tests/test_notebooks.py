"""Notebook validation: execute every chapter at quick scale and check it.

For each chapter in ``CHAPTERS`` (name -> figures it must write):

1. ``book/<name>.md`` (jupytext MyST) is converted to ``.ipynb`` and papermill injects the
   parameters ``scale="quick"``, ``fig_dir``, ``cache_dir`` and ``ledger_dir`` (a fresh
   temporary directory each) after the cell tagged ``parameters``.
2. nbval (``--nbval-lax``) executes that notebook in ``book/`` with kernel ``python3`` and an
   **empty** cache directory, so every cached result is computed, and compares the printed
   outputs of cells whose first line is ``# NBVAL_CHECK_OUTPUT`` with those of a second,
   independent execution of the chapter (its reference):

   * ``make test`` builds the quick HTML book first and names it in ``$FGLN_QUICK_BUILD``
     (``_build/quick``); the reference is that build's executed notebook, accepted only if
     the build's ledger of the chapter carries this run's ``$FGLN_BUILD_ID`` and the
     chapter's current source hash (the build used its own fresh cache, so the two
     executions share nothing on disk);
   * otherwise (``pytest`` on its own) papermill executes the chapter first, with a cache of
     its own, and that execution is the reference.

   Both executions run in forks of a process that imported what chapters import, with forked
   kernels (``tests/forkhost.py``), except nbval's of ``NEW_KERNEL_CHAPTERS``: a new pytest
   process, and a kernel started as Jupyter does.
3. Every expected figure written by the nbval execution must exist, not be blank, and come
   with the arrays behind it (``figNN.npz``), which must satisfy the properties in
   ``FIGURE_CHECKS``; the chapter must have written its claims ledger
   (``<ledger_dir>/<name>.json``).

The reproduction page and the discussion, which read the ledgers of all chapters, are
validated by the quick-scale HTML build.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Callable

import forkhost
import numpy as np
import pytest
from nbval_glue import glue_record

from conftest import BOOK_DIR

CHAPTERS: dict[str, list[str]] = {
    "01_introduction": ["fig01.png"],
    "02_related_work": ["figS2a.png", "figS2b.png", "figS2c.png", "figS2d.png"],
    "03_notation": ["figS3a.png"],
    "04_fixed_gates": [],
    "05_depth_scaling": ["fig02.png", "fig03.png", "fig09.png"],
    "06_alignment": ["fig04a.png", "fig05a.png", "fig06.png"],
    "07_dynamics": ["fig07.png", "fig08.png"],
    "08_experiments": ["fig04b.png", "fig05b.png"],
    "09_relu_networks": ["fig91a.png", "fig91b.png", "fig91c.png", "fig91d.png", "fig91e.png"],
    "appendix_b": [],
    "appendix_d": ["figD1.png"],
    "appendix_c": ["figC1.png", "figC2.png", "figC3.png"],
    "appendix_f": [],
    "appendix_g": ["fig10.png", "fig11.png", "fig12.png"],
    "appendix_a": [],
    "appendix_e": [],
}

# executed by nbval in a new process and a kernel started as Jupyter does, the others in
# forked ones (tests/forkhost.py): every run compares the quick build's forked kernel with a
# new one on a chapter that trains networks (random state, torch threads, figures)
NEW_KERNEL_CHAPTERS = {"08_experiments"}

QUICK_PARAMS = {"scale": "quick"}
MIN_FIG_BYTES = 5_000
MIN_PIXEL_STD = 0.01


# --------------------------------------------------------------------------
# properties of the arrays behind each figure
# --------------------------------------------------------------------------

def _check_fig02(d):
    from fgln.base.laws import LayerLaw
    from fgln.theory.exponents import lyapunov_exponents

    n = int(d["n"])
    for tag, p in (("p1", 1.0), ("p05", 0.5)):
        mean, se, L = d[f"mean_{tag}"], d[f"se_{tag}"], d["L"]
        assert mean.shape == se.shape == L.shape and np.isfinite(mean[1:]).all()
        g1 = lyapunov_exponents(LayerLaw(n, p), 1)[0]
        assert np.isclose(d[f"gamma1_{tag}"], g1)
        # the top exponent is approached: closer to gamma_1 at the deepest than at depth 2
        assert abs(mean[-1] - g1) < abs(mean[1] - g1)
        assert abs(mean[-1] - g1) < 0.15


def _check_fig03(d):
    m, g = d["mean_p1"], d["gamma_p1"]
    assert m.shape == g.shape and np.isfinite(m).all()
    assert np.all(np.diff(m) <= 1e-12), "means of ordered log-singular values must decrease"
    assert np.sqrt(np.mean((m - g) ** 2)) < 0.2
    assert ((0 <= d["frac_p05"]) & (d["frac_p05"] <= 1)).all()


def _check_fig09(d):
    for tag in ("p1", "p05"):
        mlog = d[f"mean_log_{tag}"]  # [depth, k]
        assert mlog.shape == (d["depth"].size, d["k"])
        fin = np.isfinite(mlog)
        assert fin[:, 0].all()
    # p = 1: every chain is sorted, hence so is the mean over chains
    assert np.all(np.diff(d["mean_log_p1"], axis=1) <= 1e-9)


def _rho_range(d):
    for k, v in d.items():
        if k.startswith("rho"):
            v = v[np.isfinite(v)]
            assert v.size and np.all((-1 - 1e-12 <= v) & (v <= 1 + 1e-12)), k


def _check_fig06(d):
    for k in d:
        if k.startswith("overlap"):
            M = d[k]  # U_J^T U_A: orthogonal
            assert np.allclose(M @ M.T, np.eye(M.shape[0]), atol=1e-8), k
    _rho_range(d)


def _check_fig05a(d):
    _rho_range(d)
    m = d["rho_mean"]
    assert m[0] > m[-1], "alignment is strongest for short suffixes A_l (small l)"


def _check_fig04a(d):
    mlog = d["mean_log"]  # [l, k]
    assert np.isfinite(mlog[:, 0]).all()
    assert np.all(np.diff(d["slope"]) <= 1e-9) or d["slope"][0] > d["slope"][-1]


def _check_fig04b(d):
    tr, ini, r = d["logsv_B_trained"], d["logsv_B_init"], d["r"]  # [seeds, L, k], [seeds]
    assert tr.shape == ini.shape and tr.shape[:2] == (r.size, d["l"].size)
    assert np.allclose(tr[:, 0], 0) and np.allclose(ini[:, 0], 0)  # B_1 = I
    assert np.isfinite(tr[:, 1:]).all() and np.all(np.diff(tr[:, 1:], axis=2) <= 1e-12)
    for s in range(r.size):
        last = tr[s, -1]
        assert r[s] == np.argmax(last[:-1] - last[1:]) + 1  # the stated rule: largest gap
        assert np.isclose(d["gap_trained"][s], last[r[s] - 1] - last[r[s]])
        assert np.isclose(d["gap_init"][s], ini[s, -1, r[s] - 1] - ini[s, -1, r[s]])


def _check_fig05b(d):
    import torch

    from fgln.mnist.block_measurements import block_statistics
    from fgln.mnist.model import MnistFixedGates

    _rho_range(d)
    k = int(d["k"])
    assert d["rho_trained"].shape == d["rho_init"].shape == (d["seeds"].size, d["l"].size)
    for i, s in enumerate(d["seeds"]):  # the initial curve is that of the seed's network
        w, g = MnistFixedGates.random(seed=int(s), dtype=torch.float32).hidden_block()
        ref = block_statistics(w, g, k_align=(k,))[f"rho_k{k}"][: d["l"].size]
        assert np.allclose(d["rho_init"][i], ref, atol=1e-9)


def _check_fig01(d):
    logs, m, t, r = d["log_s"], d["mean"], d["t"], int(d["rank"])  # [seeds, R, k], [R, k]
    assert logs.shape[1:] == m.shape == d["se"].shape and t.size == m.shape[0]
    assert np.all(np.diff(t) > 0) and np.isfinite(logs).all()
    assert np.all(np.diff(logs, axis=2) <= 1e-12), "each seed's singular values are ordered"
    assert np.allclose(m, logs.mean(0))
    # the learned block separates from the rest: log(s_r / s_(r+1)) grows
    assert m[-1, r - 1] - m[-1, r] > m[0, r - 1] - m[0, r]


def _check_fig07(d):
    from fgln.theory.g1_process import g1_process

    s, fit, g = d["s1_measured"], d["s1_fitted"], d["g1"]  # [seeds, R]
    assert s.shape == fit.shape == g.shape == d["s1_theory"].shape == d["C_theory"].shape
    assert s.shape[1] == d["t"].size == d["step"].size
    assert np.all(d["C_fit"] < 0) and np.all(d["C_theory"] < 0)
    L, step = int(d["L"]), d["step"]
    assert np.isclose(d["C_balanced"], -float(d["lr"]) * L)
    for i in range(s.shape[0]):
        # the curve is the Appendix G.1 recursion from t = 0, C a least-squares fit
        def proc(c, i=i):
            return g1_process(s[i, 0], g[i], step, c, L, every_step=True)

        assert np.allclose(proc(d["C_fit"][i]), fit[i])
        rms = [np.sqrt(np.mean((proc(c * d["C_fit"][i]) - s[i]) ** 2)) for c in (0.9, 1.0, 1.1)]
        assert rms[1] <= min(rms[0], rms[2]) + 1e-12


def _check_fig08(d):
    l0, l1, r = d["log_s_init"], d["log_s_final"], int(d["rank"])  # [seeds, n]
    assert l0.shape == l1.shape and l0.shape[1] == d["k"].size
    assert np.isfinite(l0[:, :r]).all() and np.isfinite(l1[:, :r]).all()
    for row in (*l0, *l1):  # ordered where defined
        fin = row[np.isfinite(row)]
        assert np.all(np.diff(fin) <= 1e-12)
    assert np.nanmean(np.abs(l1 - l0)[:, :r]) > 0


def _check_fig91a(d):
    # ReLU and independently gated means agree within a few joint standard errors
    z = np.abs(d["relu"] - d["gated"]) / np.hypot(d["relu_se"], d["gated_se"])
    assert np.isfinite(z).all() and z.max() < 5
    assert np.allclose(d["diff"], d["relu"] - d["gated"])
    assert np.all(np.diff(d["relu"]) <= 1e-12)  # ordered singular values
    # the scans over width and depth: zero within a few s.e. at every point, and the shift
    # of the alternative is -(d_1 - d_0)/L at the scan's n and L
    from fgln.theory.exponents import finite_depth_constants

    for tag in ("scan", "scan_L"):
        z = np.abs(d[f"{tag}_diff"] / d[f"{tag}_se"])
        assert np.isfinite(z).all() and z.max() < 5, tag
    shift = [-finite_depth_constants(int(d["scan_L_n"]), 1)[1] / L for L in d["scan_L"]]
    assert np.allclose(d["scan_L_shift"], shift) and np.all(np.diff(d["scan_L"]) > 0)


def _check_fig91b(d):
    from fgln.base.laws import LayerLaw
    from fgln.relu.regimes import lognorm_law, psg_variance

    assert np.allclose(d["psg"], [psg_variance(int(L)) for L in d["L"]])
    assert np.allclose(d["lognorm_exact_var"],
                       [lognorm_law(LayerLaw.he(int(n)).product(int(L), "fgln"))[1]
                        for n, L in zip(d["n"], d["L"])])
    assert np.all(d["ratio"] > 0) and np.isfinite(d["e1"]).all()


def _check_fig91c(d):
    assert d["pred_slope"] < 0 and np.nanmean(d["slope"]) < 0  # separation grows with depth
    assert d["rho_relu"].shape[1] == d["rho_gated"].shape[1] == d["l"].size
    assert np.all(np.abs(d["rho_relu"]) <= 1 + 1e-9)


def _check_fig91d(d):
    from fgln.relu.regimes import arccos_shared_fraction

    assert np.allclose(d["arccos"][:, 0], 1 - d["theta"] / np.pi)
    for th, row in zip(d["theta"], d["arccos"]):
        assert np.allclose(row, arccos_shared_fraction(float(th), row.size + 1))
    assert np.all((d["overlap"] >= 0) & (d["overlap"] <= 1 + 1e-9))
    assert np.all((d["shared"] >= 0) & (d["shared"] <= 1))


def _check_fig91e(d):
    assert np.allclose(d["logsv_B_relu"][0], 0) and np.allclose(d["logsv_B_fg"][0], 0)  # B_1 = I
    assert np.all((d["acc_relu"] >= 0) & (d["acc_relu"] <= 1))
    assert np.all((d["overlap_same"] >= 0) & (d["overlap_same"] <= 1 + 1e-9))
    assert d["rho_relu"].shape == d["rho_relu_init"].shape


def _check_figD1(d):
    for k, v in d.items():
        assert np.all(np.isfinite(v)), k
    assert np.all(d["d7_term"] <= d["d7_bound"] * (1 + 1e-9)), "Lemma D.7's term within its bound"
    for k in ("dist_a", "dist_a_zeros", "sep"):
        assert d[k][-1] < 1e-6 * d[k][0], f"{k} vanishes with depth"
    assert np.all(d["gated_rank"][:, -1] < 8), "the deepest gated products are singular"
    assert d["gated_log_err"][-1] < d["gated_log_err"][0] - 3, "R^{2,2} tends to I"
def _check_figC1(d):
    spread, worst, L = d["spread"], d["worst"], d["L"]      # [groups, depths, k]
    assert spread.shape == worst.shape and spread.shape[1] == L.size
    assert np.all(spread > 0) and np.all(worst >= spread.min())
    # every chain converges: both shrink from the first depth to the last, for every index
    assert np.all(spread[:, -1].mean(0) < spread[:, 0].mean(0))
    assert np.all(worst[:, -1].mean(0) < worst[:, 0].mean(0))
    assert np.all(np.diff(d["gamma"]) < 0)


def _check_figC2(d):
    from fgln.theory.exponents import finite_depth_constants

    assert np.allclose(d["d"], finite_depth_constants(8, d["d"].size)[1:])
    dm = d["defect_mean"]                                    # [m, k]: rises with m
    assert dm.shape == d["defect_se"].shape and np.all(dm > 0)
    assert np.all(dm[-1] > dm[0]) and np.all(d["offset_mean"][-1] > d["offset_mean"][0])
    assert np.all(np.abs(dm[-1] - d["d"]) < 0.5 * d["d"])
    for n_s in (4, 8, 16):
        assert d[f"slow_n{n_s}"].shape == (2, d["L_slow"].size)
    assert np.all(np.diff(d["gaps"]) < 0)                    # the top gap closes with n


def _check_figC3(d):
    from fgln.theory.exponents import finite_depth_constants

    m, sp = d["mean"], d["spacings"]                         # [t, spacings]
    assert np.allclose(m[:, sp == 0], 0, atol=1e-12)         # no separation: ratio 1
    assert np.allclose(d["d"], finite_depth_constants(int(d["n"]), int(d["t"].max()))[d["t"]])
    assert np.all(m[:, -1] < m[:, 0]) and np.all(np.abs(m[:, -1] + d["d"]) < 0.3)
def _check_figS2a(d):
    from fgln.theory.cited_laws import fuss_catalan_moments

    for L in (2, 3):
        if f"mean_L{L}" not in d:
            continue
        m, lim, fc = d[f"mean_L{L}"], d[f"limit_L{L}"], d[f"fc_L{L}"]  # [widths, moments]
        assert m.shape[0] == d["n"].size and np.all(np.diff(d["n"]) > 0)
        np.testing.assert_allclose(fc, fuss_catalan_moments(L, m.shape[1])[1:])
        np.testing.assert_allclose(m[:, 0], 1.0, atol=0.1)  # (1/n) E tr J J^T = 1
        assert np.all(np.abs(lim / fc - 1) < 0.25)


def _check_figS2b(d):
    from fgln.base.laws import LayerLaw
    from fgln.theory.exponents import lyapunov_exponents

    n = d["i"].size
    np.testing.assert_allclose(d["newman"], lyapunov_exponents(LayerLaw(n, 1.0), n))
    assert np.all(np.diff(d["mean"]) < 0)  # ordered exponents
    assert np.all(np.abs(d["mean"] - d["newman"]) < np.abs(d["triangle"] - d["newman"]).max())


def _check_figS2c(d):
    from scipy.special import polygamma

    L = d["L"]
    assert np.isclose(d["v1"], polygamma(1, int(d["n"]) / 2) / 4)
    assert d["var_norm"].shape == d["var_s1"].shape and d["var_norm"].shape[1] == L.size
    assert np.all(np.diff(d["var_norm"].mean(0)) > 0)  # fluctuations grow with depth
    assert np.all(np.abs(d["mean_norm"] / L - d["gamma1"]) < 0.05)


def _check_figS2d(d):
    from fgln.theory.cited_laws import balanced_mode_trajectory

    for L in (2, 3):
        law = balanced_mode_trajectory(d["s0"], d["y"], L, d[f"t{L}"])
        assert np.abs(d[f"s{L}"] - law).max() < 0.01 * d["y"].max()
        np.testing.assert_allclose(d[f"s{L}"][0], d["s0"], rtol=1e-9)
    ratio = d["drift"][:, 0] / d["drift"][:, 1]  # halving the step halves the drift
    assert np.all((ratio > 1.6) & (ratio < 2.5))


def _check_figS3a(d):
    from fgln.base.laws import LayerLaw
    from fgln.theory.cited_laws import gate_rank_law

    n, p, r = int(d["n"]), float(d["p"]), int(d["r_min"])
    pmf, q = gate_rank_law(LayerLaw(n, p, r=r))
    np.testing.assert_allclose(d["pmf"], pmf)
    assert d["freq"][:r].sum() == 0 and np.isclose(d["freq"].sum(), 1.0)
    assert np.isclose(d["topped"].sum(), 1.0) and np.all(d["q"] >= p - 1e-12)
    assert abs(d["open_mean"] - q) < 5 * d["open_se"] + 1e-3


FIGURE_CHECKS: dict[str, Callable[[dict], None]] = {
    "figS2a.png": _check_figS2a,
    "figS2b.png": _check_figS2b,
    "figS2c.png": _check_figS2c,
    "figS2d.png": _check_figS2d,
    "figS3a.png": _check_figS3a,
    "fig01.png": _check_fig01,
    "fig07.png": _check_fig07,
    "fig08.png": _check_fig08,
    "fig02.png": _check_fig02,
    "fig03.png": _check_fig03,
    "fig09.png": _check_fig09,
    "fig04a.png": _check_fig04a,
    "fig05a.png": _check_fig05a,
    "fig06.png": _check_fig06,
    "fig04b.png": _check_fig04b,
    "fig05b.png": _check_fig05b,
    "fig10.png": _rho_range,
    "fig11.png": _rho_range,
    "fig12.png": _rho_range,
    "fig91a.png": _check_fig91a,
    "fig91b.png": _check_fig91b,
    "fig91c.png": _check_fig91c,
    "fig91d.png": _check_fig91d,
    "fig91e.png": _check_fig91e,
    "figD1.png": _check_figD1,
    "figC1.png": _check_figC1,
    "figC2.png": _check_figC2,
    "figC3.png": _check_figC3,
}


def test_python3_kernel_is_this_environment():
    """Kernel ``python3`` must start this venv's interpreter (``make venv``
    registers it with ``ipykernel install --sys-prefix --name python3``)."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    exe = spec.argv[0]
    if exe in {"python", "python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"}:
        return  # jupyter_client substitutes sys.executable for these
    prefix = subprocess.run(
        [exe, "-c", "import sys; print(sys.prefix)"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()
    assert Path(prefix) == Path(sys.prefix), (
        f"kernel 'python3' ({spec.resource_dir}) runs {exe} with prefix {prefix}, "
        f"not this environment ({sys.prefix}); run `make venv`"
    )


def _code_cells(nb: dict) -> list[dict]:
    return [c for c in nb["cells"] if c["cell_type"] == "code"]


def _quick_build_reference(name: str) -> tuple[dict, dict[str, dict], Path] | None:
    """The quick HTML build's executed notebook of chapter ``name`` (nbformat dict), its glued
    values (name -> data) and the build's cache folder (shared by all chapters), or ``None``
    when ``$FGLN_QUICK_BUILD`` is not set. A build that is not this run's (another
    ``$FGLN_BUILD_ID``) or that ran another version of the chapter fails the test."""
    root = os.environ.get("FGLN_QUICK_BUILD")
    if not root:
        return None
    from fgln.book.claims import source_sha

    root = Path(root)
    ledger = root / "ledger" / f"{name}.json"
    executed = root / "_build" / "jupyter_execute" / "book" / f"{name}.ipynb"
    assert ledger.is_file() and executed.is_file(), (
        f"$FGLN_QUICK_BUILD={root} has no executed notebook or ledger of {name}")
    led = json.loads(ledger.read_text(encoding="utf-8"))
    assert led["build_id"] == os.environ.get("FGLN_BUILD_ID"), (
        f"the quick build in {root} belongs to build {led['build_id']}, not to this run")
    assert led["source_sha"] == source_sha(name) and led["scale"] == "quick", (
        f"the quick build in {root} executed another version of {name}")
    glue = executed.with_suffix(".glue.json")  # myst-nb keeps the glued values there
    glued = _glued(json.loads(glue.read_text(encoding="utf-8")).values()) if glue.is_file() else {}
    return json.loads(executed.read_text(encoding="utf-8")), glued, root / "cache"


def _with_reference_outputs(nb: dict, ref: dict) -> dict:
    """``nb`` (the prepared notebook) with each code cell's outputs taken from the same cell
    of ``ref``; papermill's injected cells (``nb``'s, and ``ref``'s when papermill executed
    it) are left out of the pairing and keep no outputs."""
    def own(book):  # the chapter's code cells, without papermill's injected one
        return [c for c in _code_cells(book)
                if "injected-parameters" not in c.get("metadata", {}).get("tags", [])]

    mine, theirs = own(nb), own(ref)
    assert [_src(c) for c in mine] == [_src(c) for c in theirs], (
        "the reference notebook's code cells differ from the chapter's")
    for c, r in zip(mine, theirs):
        c["outputs"] = r.get("outputs", [])
        c["execution_count"] = r.get("execution_count")
    return nb


def _src(cell: dict) -> str:
    s = cell["source"]
    return s if isinstance(s, str) else "".join(s)


def _glued(outputs) -> dict[str, dict]:
    """Name -> data of the glue outputs among ``outputs``."""
    return dict(filter(None, map(glue_record, outputs)))


def _run_nbval(nb: dict, name: str, glue_out: Path) -> subprocess.CompletedProcess:
    """Execute ``nb`` with nbval (``--nbval-lax``) from within ``book/``, so that relative
    paths resolve as in the book build, comparing the ``# NBVAL_CHECK_OUTPUT`` cells; the
    values they glue are written to ``glue_out`` (plugin ``tests/nbval_glue.py``). The
    chapters of ``NEW_KERNEL_CHAPTERS`` run in a new pytest process with a kernel started as
    Jupyter does; the others in forks of a process that imported what they need
    (``tests/forkhost.py``), where kernels can be forked."""
    # Temporary hidden copy inside book/; always removed afterwards.
    target = BOOK_DIR / f".nbval-{name}-{uuid.uuid4().hex[:8]}.ipynb"
    target.write_text(json.dumps(nb), encoding="utf-8")
    args = ["--nbval-lax", "-p", "no:cacheprovider", "-p", "nbval_glue",
            "--nbval-kernel-name", "python3", "-o", "addopts=", "-q", target.name]
    env = {"FGLN_PROGRESS": "0", "FGLN_NBVAL_GLUE": str(glue_out)}
    try:
        return forkhost.run_pytest(args, BOOK_DIR, env, fork=name not in NEW_KERNEL_CHAPTERS)
    finally:
        target.unlink(missing_ok=True)


@pytest.fixture(scope="module", params=sorted(CHAPTERS))
def executed_chapter(request, tmp_path_factory):
    """Execute one chapter at quick scale under nbval, against its reference (see the
    module's docstring); shared by the chapter's tests."""
    import jupytext
    import papermill as pm

    name = request.param
    source = BOOK_DIR / f"{name}.md"
    if not source.is_file():
        pytest.skip(f"chapter {source} does not exist yet")

    tmp = tmp_path_factory.mktemp(name)
    raw = tmp / f"{name}.ipynb"
    prepared = tmp / f"{name}.prepared.ipynb"
    jupytext.write(jupytext.read(source), raw, fmt="ipynb")
    params = dict(QUICK_PARAMS, fig_dir=str(tmp / "figs"), cache_dir=str(tmp / "cache"),
                  ledger_dir=str(tmp / "ledger"))

    found = _quick_build_reference(name)
    if found is not None:
        ref, ref_glue, reference_cache = found
    else:  # no quick build to compare with: papermill executes the reference
        reference_cache = tmp / "cache-reference"
        executed = tmp / f"{name}.executed.ipynb"
        forkhost.execute_notebook(
            raw, executed,
            parameters=dict(params, fig_dir=str(tmp / "figs-reference"),
                            cache_dir=str(reference_cache),
                            ledger_dir=str(tmp / "ledger-reference")),
            kernel_name="python3", cwd=str(BOOK_DIR), progress_bar=False, log_output=False,
        )
        ref = json.loads(executed.read_text(encoding="utf-8"))
        ref_glue = _glued(o for c in _code_cells(ref) for o in c["outputs"])
    pm.execute_notebook(str(raw), str(prepared), parameters=params, kernel_name="python3",
                        prepare_only=True, progress_bar=False)
    nb = _with_reference_outputs(json.loads(prepared.read_text(encoding="utf-8")), ref)
    assert not Path(params["cache_dir"]).exists()
    glue_out = tmp / "glued.jsonl"
    proc = _run_nbval(nb, name, glue_out)
    return {"name": name, "prepared": nb, "fig_dir": tmp / "figs", "tmp": tmp,
            "ledger": tmp / "ledger" / f"{name}.json", "nbval": proc,
            "glued": glue_out, "reference_glue": ref_glue,
            "reference_cache": reference_cache,
            "figures": CHAPTERS[name], "params": params}


def test_parameters_injected(executed_chapter):
    nb = executed_chapter["prepared"]
    injected = [c for c in nb["cells"]
                if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(injected) == 1, "papermill did not inject the quick parameters"
    assert 'scale = "quick"' in _src(injected[0])


def test_figures_written(executed_chapter):
    import matplotlib.image as mpimg

    fig_dir = executed_chapter["fig_dir"]
    for fig in executed_chapter["figures"]:
        path = fig_dir / fig
        assert path.is_file(), f"{executed_chapter['name']} did not write {path}"
        size = path.stat().st_size
        assert size > MIN_FIG_BYTES, f"{path} is only {size} bytes"
        pixels = np.asarray(mpimg.imread(path), dtype=float)
        std = float(pixels[..., :3].std()) if pixels.ndim == 3 else float(pixels.std())
        assert std > MIN_PIXEL_STD, f"{path} looks blank (pixel std {std:.4f})"


def test_figure_data(executed_chapter):
    """The arrays behind each figure exist and have the properties the figure shows."""
    for fig in executed_chapter["figures"]:
        path = (executed_chapter["fig_dir"] / fig).with_suffix(".npz")
        assert path.is_file(), f"{fig}: save_figure(..., data=...) wrote no {path.name}"
        with np.load(path) as npz:
            data = {k: npz[k] for k in npz.files}
        assert data, f"{path.name} is empty"
        check = FIGURE_CHECKS.get(fig)
        assert check is not None, f"no property check for {fig} in FIGURE_CHECKS"
        check(data)


def test_ledger_written(executed_chapter):
    from fgln.book.claims import KINDS, STATUSES, source_sha

    path = executed_chapter["ledger"]
    assert path.is_file(), f"{executed_chapter['name']} wrote no claims ledger"
    led = json.loads(path.read_text(encoding="utf-8"))
    assert led["chapter"] == executed_chapter["name"] and led["scale"] == "quick"
    assert led["source_sha"] == source_sha(executed_chapter["name"])
    assert len(led["code_version"]) == 16
    assert led["claims"], "a chapter states at least one claim"
    for c in led["claims"]:
        assert c["status"] in STATUSES[:3] and c["expect"] in STATUSES[:3]
        assert c["kind"] in KINDS and c["alternative"].strip()
        assert c["evidence"] and c["test"]["rule"] and c["test"]["detail"]
        assert c["alternative_test"]["test"] == c["test"]["test"]
        # the claim and its alternative share the statistic; resolution and margin recorded
        assert c["alternative_test"]["statistic"] == c["test"]["statistic"], c["id"]
        assert c["resolution"] is not None, c["id"]
        if c["test"]["replicates"] is not None:
            assert c["test"]["quantile"].startswith("t("), c["id"]
        # a decided claim never gives its alternative its own outcome
        if c["status"] != "inconclusive":
            assert c["alternative_test"]["outcome"] != c["test"]["outcome"], c["id"]
        # at every scale, every claim has the status the prose asserts
        assert c["status"] == c["expect"], c["id"]
    # every evidence label exists in the chapter
    text = (BOOK_DIR / f"{executed_chapter['name']}.md").read_text(encoding="utf-8")
    for c in led["claims"]:
        assert f"({c['evidence']})=" in text, f"label {c['evidence']} missing from the chapter"


def test_nbval_outputs_reproduce(executed_chapter):
    """The nbval execution (empty cache) printed what the reference execution printed in
    every ``# NBVAL_CHECK_OUTPUT`` cell."""
    nb = executed_chapter["prepared"]
    checked = [c for c in _code_cells(nb) if _src(c).lstrip().startswith("# NBVAL_CHECK_OUTPUT")]
    assert checked, "chapter has no cell marked '# NBVAL_CHECK_OUTPUT'"
    assert all(c["outputs"] for c in checked), "a checked cell has no reference output"
    proc = executed_chapter["nbval"]
    assert proc.returncode == 0, (
        f"nbval failed for {executed_chapter['name']} (rc={proc.returncode}):\n"
        f"{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    )
    # the values glued in the checked cells are the reference's, to the last digit
    glued = executed_chapter["glued"]
    records = ([json.loads(line) for line in glued.read_text(encoding="utf-8").splitlines()]
               if glued.is_file() else [])
    ref_glue = executed_chapter["reference_glue"]
    for rec in records:
        assert rec["name"] in ref_glue, f"{rec['name']} is glued here, not in the reference"
        assert rec["data"] == ref_glue[rec["name"]], (
            f"glued {rec['name']}: {rec['data']} here, {ref_glue[rec['name']]} in the reference")
    # The nbval execution started from an empty cache (checked before it ran); its results
    # are keyed as the reference's: the same results of the same code. The papermill
    # reference has a cache of its own (the same names); the quick build's is shared by all
    # chapters (it holds them).
    ref_cache = executed_chapter["reference_cache"]
    names = {p.name for p in Path(executed_chapter["params"]["cache_dir"]).glob("*.npz")}
    ref_names = {p.name for p in ref_cache.glob("*.npz")}
    if os.environ.get("FGLN_QUICK_BUILD"):
        assert names <= ref_names, "the nbval execution computed results the build did not"
    else:
        assert names == ref_names, (
            "the nbval execution did not compute the results the reference cached")
