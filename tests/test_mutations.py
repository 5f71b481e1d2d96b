"""The ledger catches what it is for: a chapter run at quick scale with a known error injected.

Each mutation patches the package inside the kernel (a cell inserted after the parameters
cell), runs the chapter with papermill (a forked kernel, ``tests/forkhost.py``), and checks
that the named claims leave the status the prose asserts at that scale. The chapter must
then stop at its ledger (``ClaimMismatch``, naming them), after writing the ledger that
shows the change.

The mutations of what a chapter computes from its cached results (the theory it compares
with, the statistics it draws) leave those results as they are: when ``make test`` has built
the quick book (``$FGLN_QUICK_BUILD``), such a chapter starts from a copy of that build's
result cache, computed by the unmutated code, and only the mutated computations run. The
mutations of a cached computation itself (``RECOMPUTE``) start from an empty cache; reusing
the cache there hides the error, and the test fails (checked: it does).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from conftest import BOOK_DIR

MUTATIONS = {
    # the printed sign of the finite-depth correction: d_i -> -d_i everywhere
    "printed-sign": (
        "05_depth_scaling",
        "import fgln.theory.exponents as _ex\n"
        "_d = _ex.finite_depth_constants\n"
        "_ex.finite_depth_constants = lambda n, k: -_d(n, k)\n",
        ["thm5.3-correction-sign", "fig2-correction-sign-p1", "d_i-closed-form"],
    ),
    # the theory evaluated at a gate probability off by 0.1
    "gate-probability": (
        "05_depth_scaling",
        "import fgln.theory.exponents as _ex\n"
        "_g = _ex.lyapunov_exponents\n"
        "_ex.lyapunov_exponents = lambda law, k: _g(law.replace(p=law.p - 0.1), k)\n",
        ["rem5.4-closed-form", "thm5.3-exponents"],
    ),
    # the exponent target shifted by one index: gamma_(i+1) wherever the theory gives gamma_i
    # (Figure 2's claim then compares the slope of log s_1 with gamma_2)
    "exponent-index": (
        "05_depth_scaling",
        "import fgln.theory.exponents as _ex\n"
        "_g = _ex.lyapunov_exponents\n"
        "def _shifted(law, k):\n"
        "    if law.r is not None:  # (r, p)-layers: k <= r, left alone\n"
        "        return _g(law, k)\n"
        "    return _g(law, k + 1)[1:]\n"
        "_ex.lyapunov_exponents = _shifted\n",
        ["fig2-convergence-p1", "fig2-convergence-p05"],
    ),
    # Figure 9's slopes shifted by one index: the slope of index i read off index i + 1
    "slopes-shifted": (
        "05_depth_scaling",
        "import numpy as _np\n"
        "import fgln.initialization.depth_scaling as _ds\n"
        "_s = _ds.depth_slopes\n"
        "def _shifted(depths, logs, **kw):\n"
        "    logs = _np.asarray(logs)\n"
        "    return _s(depths, _np.concatenate([logs[..., 1:], logs[..., -1:]], -1), **kw)\n"
        "_ds.depth_slopes = _shifted\n",
        ["fig9-slopes-below-p1", "fig9-slopes-below-p0.5"],
    ),
    # a layer dropped from the partial products: A_l without W_L for l >= 2 (J kept exact)
    "layer-dropped": (
        "06_alignment",
        "import torch\n"
        "import fgln.initialization.alignment as _al\n"
        "_pp = _al.network_partial_products\n"
        "def _dropped(weights, gates):\n"
        "    A, B = _pp(weights, gates)\n"
        "    eye = torch.eye(weights.shape[-1], dtype=weights.dtype).expand_as(weights[:, -1:])\n"
        "    A2, _ = _pp(torch.cat([weights[:, :-1], eye], 1), gates)\n"
        "    A2[:, 0] = A[:, 0]\n"
        "    return A2, B\n"
        "_al.network_partial_products = _dropped\n",
        ["fig6-trend"],
    ),
}


# mutations of a function that runs inside cached grid tasks
RECOMPUTE = {"layer-dropped"}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_injected_error_changes_the_named_claims(mutation, tmp_path):
    import forkhost
    import jupytext
    import nbformat
    import papermill as pm

    chapter, patch, named = MUTATIONS[mutation]
    nb = jupytext.read(BOOK_DIR / f"{chapter}.md")
    at = next(i for i, c in enumerate(nb.cells)
              if "parameters" in c.metadata.get("tags", [])) + 1
    nb.cells.insert(at, nbformat.v4.new_code_cell(patch))
    raw = tmp_path / "mutated.ipynb"
    nbformat.write(nb, raw)
    params = dict(scale="quick", fig_dir=str(tmp_path / "figs"),
                  cache_dir=str(tmp_path / "cache"), ledger_dir=str(tmp_path / "ledger"))
    build = os.environ.get("FGLN_QUICK_BUILD")
    if build and (Path(build) / "cache").is_dir() and mutation not in RECOMPUTE:
        shutil.copytree(Path(build) / "cache", params["cache_dir"],
                        ignore=shutil.ignore_patterns("locks"))
    raised = None
    try:
        forkhost.execute_notebook(raw, tmp_path / "out.ipynb", parameters=params,
                                  kernel_name="python3", cwd=str(BOOK_DIR), progress_bar=False)
    except pm.PapermillExecutionError as err:
        raised = err
    led = json.loads((tmp_path / "ledger" / f"{chapter}.json").read_text())
    by_id = {c["id"]: c for c in led["claims"]}
    changed = {cid: by_id[cid]["status"] for cid in named}
    for cid, status in changed.items():
        assert status != by_id[cid]["expect"], f"{mutation}: {cid} kept its status {status}"
    # any contradiction (inconclusive included) stops the chapter at every scale, naming it
    assert raised is not None and raised.ename == "ClaimMismatch"
    assert all(f"'{cid}'" in raised.evalue for cid in changed)
