"""Notebook validation: execute every chapter at quick scale and check it.

For each chapter in ``CHAPTERS`` (name -> figures it must write):

1. ``book/<name>.md`` (jupytext MyST) is converted to ``.ipynb`` and executed
   with papermill in the ``book/`` directory, kernel ``python3``, with
   parameters ``scale="quick"``, ``fig_dir``, ``cache_dir`` and ``ledger_dir`` in a
   fresh temporary directory (injected after the cell tagged ``parameters``).
2. Every expected figure must exist, not be blank, and come with the arrays behind it
   (``figNN.npz``), which must satisfy the properties in ``FIGURE_CHECKS``.
3. The chapter must have written its claims ledger (``<ledger_dir>/<name>.json``).
4. nbval (``--nbval-lax``) re-executes the executed notebook with a **new, empty** cache
   directory, so every cached result is recomputed, and compares the printed outputs of
   cells whose first line is ``# NBVAL_CHECK_OUTPUT``.

The reproduction page, which reads the ledgers of all chapters, is validated by the
quick-scale HTML build that ``make test`` runs after this suite.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

from conftest import BOOK_DIR

CHAPTERS: dict[str, list[str]] = {
    "01_introduction": ["fig01.png"],
    "04_fixed_gates": [],
    "05_depth_scaling": ["fig02.png", "fig03.png", "fig09.png"],
    "06_alignment": ["fig04a.png", "fig05a.png", "fig06.png"],
    "07_dynamics": ["fig07.png", "fig08.png"],
    "08_experiments": ["fig04b.png", "fig05b.png"],
    "09_relu_networks": ["fig91a.png", "fig91b.png", "fig91c.png", "fig91d.png", "fig91e.png"],
    "appendix_f": [],
    "appendix_g": ["fig10.png", "fig11.png", "fig12.png"],
}

QUICK_PARAMS = {"scale": "quick"}
MIN_FIG_BYTES = 5_000
MIN_PIXEL_STD = 0.01


# --------------------------------------------------------------------------
# properties of the arrays behind each figure
# --------------------------------------------------------------------------

def _check_fig02(d):
    from fgln.theory.exponents import lyapunov_exponents

    n = int(d["n"])
    for tag, p in (("p1", 1.0), ("p05", 0.5)):
        mean, se, L = d[f"mean_{tag}"], d[f"se_{tag}"], d["L"]
        assert mean.shape == se.shape == L.shape and np.isfinite(mean[1:]).all()
        g1 = lyapunov_exponents(n, p, None, 1)[0]
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
    from fgln.mnist.block_measurements import block_statistics
    from fgln.mnist.model import MnistFixedGates

    _rho_range(d)
    k = int(d["k"])
    assert d["rho_trained"].shape == d["rho_init"].shape == (d["seeds"].size, d["l"].size)
    for i, s in enumerate(d["seeds"]):  # the initial curve is that of the seed's network
        w, g = MnistFixedGates.random(seed=int(s)).hidden_block()
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


def _check_fig91b(d):
    from fgln.relu.regimes import lognorm_law, psg_variance

    assert np.allclose(d["psg"], [psg_variance(int(L)) for L in d["L"]])
    assert np.allclose(d["lognorm_exact_var"], [lognorm_law(int(n), int(L))[1]
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


FIGURE_CHECKS: dict[str, Callable[[dict], None]] = {
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


@pytest.fixture(scope="module", params=sorted(CHAPTERS))
def executed_chapter(request, tmp_path_factory):
    """Execute one chapter once (papermill, quick scale); shared by its tests."""
    import jupytext
    import papermill as pm

    name = request.param
    source = BOOK_DIR / f"{name}.md"
    if not source.is_file():
        pytest.skip(f"chapter {source} does not exist yet")

    tmp = tmp_path_factory.mktemp(name)
    raw = tmp / f"{name}.ipynb"
    executed = tmp / f"{name}.executed.ipynb"
    jupytext.write(jupytext.read(source), raw, fmt="ipynb")

    params = dict(QUICK_PARAMS, fig_dir=str(tmp / "figs"), cache_dir=str(tmp / "cache"),
                  ledger_dir=str(tmp / "ledger"))
    pm.execute_notebook(
        str(raw), str(executed), parameters=params, kernel_name="python3",
        cwd=str(BOOK_DIR), progress_bar=False, log_output=False,
    )
    return {"name": name, "executed": executed, "fig_dir": tmp / "figs", "tmp": tmp,
            "ledger": tmp / "ledger" / f"{name}.json",
            "figures": CHAPTERS[name], "params": params}


def test_parameters_injected(executed_chapter):
    import nbformat

    nb = nbformat.read(executed_chapter["executed"], as_version=4)
    injected = [c for c in nb.cells
                if "injected-parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(injected) == 1, "papermill did not inject the quick parameters"
    assert 'scale = "quick"' in injected[0].source


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
        # a decided claim never gives its alternative its own status
        if c["status"] != "undecided":
            assert c["alternative_status"] != c["status"], c["id"]
        # at every scale, a decided claim has the status the prose asserts
        if c["status"] != "undecided":
            assert c["status"] == c["expect"], c["id"]
    # every evidence label exists in the chapter
    text = (BOOK_DIR / f"{executed_chapter['name']}.md").read_text(encoding="utf-8")
    for c in led["claims"]:
        assert f"({c['evidence']})=" in text, f"label {c['evidence']} missing from the chapter"


def test_nbval_outputs_reproduce(executed_chapter):
    """Re-run the executed notebook with nbval from within the book directory, with a new
    empty cache directory (so that results are recomputed, not read back), comparing the
    ``# NBVAL_CHECK_OUTPUT`` cells."""
    executed = executed_chapter["executed"]
    nb = json.loads(executed.read_text(encoding="utf-8"))
    n_checked = sum(
        1 for c in nb["cells"]
        if c["cell_type"] == "code"
        and "".join(c["source"]).lstrip().startswith("# NBVAL_CHECK_OUTPUT")
    )
    assert n_checked > 0, "chapter has no cell marked '# NBVAL_CHECK_OUTPUT'"

    fresh = executed_chapter["tmp"] / f"cache-nbval-{uuid.uuid4().hex[:8]}"
    old_cache = executed_chapter["params"]["cache_dir"]
    for c in nb["cells"]:
        if "injected-parameters" in c.get("metadata", {}).get("tags", []):
            src = "".join(c["source"])
            assert repr(old_cache) in src or f'"{old_cache}"' in src
            src = src.replace(f'"{old_cache}"', f'"{fresh}"')
            src = src.replace(repr(old_cache), repr(str(fresh)))
            c["source"] = src
    # Temporary hidden copy inside book/ so that relative paths resolve exactly
    # as in the papermill run and the book build; always removed afterwards.
    target = BOOK_DIR / f".nbval-{executed_chapter['name']}-{uuid.uuid4().hex[:8]}.ipynb"
    target.write_text(json.dumps(nb), encoding="utf-8")
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "--nbval-lax", "-p", "no:cacheprovider",
             "--nbval-kernel-name", "python3", "-o", "addopts=", "-q", target.name],
            cwd=BOOK_DIR, capture_output=True, text=True,
            env=dict(os.environ, FGLN_PROGRESS="0"),
        )
    finally:
        target.unlink(missing_ok=True)
    assert proc.returncode == 0, (
        f"nbval failed for {executed_chapter['name']} (rc={proc.returncode}):\n"
        f"{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}"
    )
    used = Path(old_cache)
    if used.is_dir() and any(used.glob("*.npz")):
        names = sorted(p.name for p in used.glob("*.npz"))
        assert sorted(p.name for p in fresh.glob("*.npz")) == names, (
            "the nbval pass did not recompute every cached result into its fresh cache"
        )
