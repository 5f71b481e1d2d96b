"""Notebook validation: execute every chapter at quick scale and check it.

For each chapter in ``CHAPTERS`` (name -> figures it must write):

1. ``book/<name>.md`` (jupytext MyST) is converted to ``.ipynb`` and executed
   with papermill in the ``book/`` directory, kernel ``python3``, with
   parameters ``scale="quick"``, ``fig_dir=<tmp>/figs``,
   ``cache_dir=<tmp>/cache`` (injected after the cell tagged ``parameters``).
2. Every expected figure must exist in ``fig_dir``, be > 5 kB and not blank.
3. nbval (``--nbval-lax``) re-executes the executed notebook - including the
   injected quick-scale parameters cell - and compares the printed outputs of
   cells whose first line is ``# NBVAL_CHECK_OUTPUT``.

To validate a new chapter add an entry below; chapters whose file does not
exist yet are skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from conftest import BOOK_DIR

CHAPTERS: dict[str, list[str]] = {
    "05_depth_scaling": ["fig02.png", "fig03.png", "fig09.png"],
    "06_alignment": ["fig04a.png", "fig05a.png", "fig06.png"],
    "appendix_f": [],
    "appendix_g": ["fig10.png", "fig11.png", "fig12.png"],
}

QUICK_PARAMS = {"scale": "quick"}
MIN_FIG_BYTES = 5_000
MIN_PIXEL_STD = 0.01


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
    fig_dir = tmp / "figs"
    cache_dir = tmp / "cache"
    raw = tmp / f"{name}.ipynb"
    executed = tmp / f"{name}.executed.ipynb"
    jupytext.write(jupytext.read(source), raw, fmt="ipynb")

    params = dict(QUICK_PARAMS, fig_dir=str(fig_dir), cache_dir=str(cache_dir))
    pm.execute_notebook(
        str(raw), str(executed), parameters=params, kernel_name="python3",
        cwd=str(BOOK_DIR), progress_bar=False, log_output=False,
    )
    return {"name": name, "executed": executed, "fig_dir": fig_dir,
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
    import numpy as np

    fig_dir = executed_chapter["fig_dir"]
    for fig in executed_chapter["figures"]:
        path = fig_dir / fig
        assert path.is_file(), f"{executed_chapter['name']} did not write {path}"
        size = path.stat().st_size
        assert size > MIN_FIG_BYTES, f"{path} is only {size} bytes"
        pixels = np.asarray(mpimg.imread(path), dtype=float)
        std = float(pixels[..., :3].std()) if pixels.ndim == 3 else float(pixels.std())
        assert std > MIN_PIXEL_STD, f"{path} looks blank (pixel std {std:.4f})"


def test_nbval_outputs_reproduce(executed_chapter):
    """Re-run the executed notebook with nbval from within the book directory
    (the kernel's cwd is the notebook's directory), comparing the
    ``# NBVAL_CHECK_OUTPUT`` cells."""
    executed = executed_chapter["executed"]
    nb = json.loads(executed.read_text(encoding="utf-8"))
    n_checked = sum(
        1 for c in nb["cells"]
        if c["cell_type"] == "code"
        and "".join(c["source"]).lstrip().startswith("# NBVAL_CHECK_OUTPUT")
    )
    assert n_checked > 0, "chapter has no cell marked '# NBVAL_CHECK_OUTPUT'"

    # Temporary hidden copy inside book/ so that relative paths resolve exactly
    # as in the papermill run and the book build; always removed afterwards.
    target = BOOK_DIR / f".nbval-{executed_chapter['name']}-{uuid.uuid4().hex[:8]}.ipynb"
    target.write_text(executed.read_text(encoding="utf-8"), encoding="utf-8")
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
