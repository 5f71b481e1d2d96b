"""Project-level consistency checks and unit tests of the infrastructure
modules (fgln.book.cache, fgln.book.plotting, fgln.base.progress)."""

from __future__ import annotations

import ast
import json
import re
import stat
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from packaging.requirements import Requirement

import fgln
from conftest import REPO_ROOT, toc_files
from fgln.book.execute import book_pages

PACKAGE = REPO_ROOT / "src" / "fgln"
# The science wings, lowest first: each may import the wings before it. The book's
# machinery sits beside them and imports only the base; no science wing imports it.
SCIENCE = ("base", "products", "theory", "initialization", "training", "mnist", "relu")
MAY_IMPORT = {wing: set(SCIENCE[:i]) for i, wing in enumerate(SCIENCE)}
MAY_IMPORT["book"] = {"base"}
# The chapters' trainings as cached grid tasks: the one wing that joins science and book.
MAY_IMPORT["runs"] = set(SCIENCE) | {"book"}

# --------------------------------------------------------------------------
# (a) environment.yml <-> pyproject.toml
# --------------------------------------------------------------------------

def _norm(req: str) -> str:
    r = Requirement(req)
    extras = f"[{','.join(sorted(r.extras))}]" if r.extras else ""
    spec = ",".join(sorted(str(s) for s in r.specifier))
    marker = f";{r.marker}" if r.marker else ""
    return f"{r.name.lower().replace('_', '-').replace('.', '-')}{extras}{spec}{marker}"


def _pyproject() -> dict:
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_environment_yml_installs_the_package_with_its_extras():
    """One dependency list (pyproject.toml), one set of versions (requirements.lock):
    environment.yml installs ``-e .[dev,cluster,lab]`` constrained by the lock."""
    env = yaml.safe_load((REPO_ROOT / "environment.yml").read_text(encoding="utf-8"))
    pip_lists = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_lists) == 1, "environment.yml needs exactly one pip: section"
    assert [p.strip() for p in pip_lists[0]] == ["-c requirements.lock", "-e .[dev,cluster,lab]"]
    extras = sorted(_pyproject()["project"]["optional-dependencies"])
    assert extras == ["cluster", "dev", "lab"], "environment.yml must install every extra"
    assert "python=3.11" in env["dependencies"]
    assert "with Python 3.11" in (REPO_ROOT / "requirements.lock").read_text()


def _lock() -> dict[str, tuple[str, list[str]]]:
    """requirements.lock as ``name -> (version, hashes)``."""
    pins: dict[str, tuple[str, list[str]]] = {}
    name = None
    for line in (REPO_ROOT / "requirements.lock").read_text(encoding="utf-8").splitlines():
        if m := re.match(r"^([A-Za-z0-9_.-]+)==([^ \\]+)", line):
            name = m.group(1).lower().replace("_", "-").replace(".", "-")
            pins[name] = (m.group(2), [])
        elif (m := re.match(r"^\s+--hash=sha256:([0-9a-f]{64})", line)) and name:
            pins[name][1].append(m.group(1))
    return pins


def test_lock_pins_every_requirement_with_hashes():
    """Every requirement of pyproject.toml (the package's and the dev and cluster extras')
    is pinned in requirements.lock to a version its specifier allows, every pin carries
    hashes, and nothing is left to the index (``make lock`` regenerates the file)."""
    pins = _lock()
    project = _pyproject()["project"]
    reqs = project["dependencies"] + [r for extra in ("dev", "cluster")
                                      for r in project["optional-dependencies"][extra]]
    for req in map(Requirement, reqs):
        key = req.name.lower().replace("_", "-").replace(".", "-")
        assert key in pins, f"{req.name} of pyproject.toml is not in requirements.lock"
        assert req.specifier.contains(pins[key][0], prereleases=True), (req, pins[key][0])
    assert all(hashes for _, hashes in pins.values()), "a pin without --hash"
    text = (REPO_ROOT / "requirements.lock").read_text()
    assert "--index-url" not in text and "--find-links" not in text
    assert re.search(r"^lock:", (REPO_ROOT / "Makefile").read_text(), re.M)


def test_the_running_environment_is_the_lock():
    """``make venv`` installs requirements.lock: inside .venv, every locked package is
    installed at its locked version (as ``pip freeze`` would show)."""
    import importlib.metadata as md

    if Path(sys.prefix).resolve() != (REPO_ROOT / ".venv").resolve():
        pytest.skip("not running in the project's .venv")
    wrong = []
    for name, (version, _) in _lock().items():
        try:
            got = md.version(name)
        except md.PackageNotFoundError:
            got = None
        if got != version:
            wrong.append(f"{name}: locked {version}, installed {got}")
    assert not wrong, "\n".join(wrong)


def test_extras_and_torchvision_pair():
    """``dev``: tests and the book build (with a Jupyter server, no JupyterLab); ``lab``:
    JupyterLab and jupytext, installed by ``make lab`` only; ``cluster``: dask."""
    project = _pyproject()["project"]
    extras = project["optional-dependencies"]
    assert sorted(extras) == ["cluster", "dev", "lab"]
    assert extras["cluster"] == ["dask[distributed]"]
    names = {k: {Requirement(r).name.lower().replace("_", "-") for r in v}
             for k, v in extras.items()}
    assert "jupyterlab" in names["lab"] and "jupytext" in names["lab"]
    assert "jupyterlab" not in names["dev"], "make test stays without JupyterLab"
    assert {"jupyter-server", "jupytext"} <= names["dev"]
    deps = {Requirement(r).name: str(Requirement(r).specifier) for r in project["dependencies"]}
    # torchvision imports only beside the torch release it was built against
    assert deps["torch"] == "==2.14.1" and deps["torchvision"] == "==0.29.1"


def test_version_is_consistent():
    assert fgln.__version__ == "0.1.0"
    init = (REPO_ROOT / "src" / "fgln" / "__init__.py").read_text(encoding="utf-8")
    assert re.search(r'^__version__ = "0\.1\.0"$', init, re.MULTILINE)
    from importlib.metadata import version
    assert version("fgln") == fgln.__version__


# --------------------------------------------------------------------------
# (b) README, (c) CI entry point
# --------------------------------------------------------------------------

def test_readme_documents_entry_points():
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    assert "make book" in readme
    assert "make test" in readme


def test_readme_code_map_matches_the_package():
    """README's map names every wing (with the wings it may import, as the import test
    allows) and under it every module of that wing; everything it names exists."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## How the code is laid out", 1)[1].split("\n## ", 1)[0]
    wing_table = section.split("| wing | holds | may import |", 1)[1].split("\n\n", 1)[0]
    rows = [line.split("|") for line in wing_table.splitlines() if line.startswith("| `")]
    table = {re.findall(r"`(\w+)`", r[1])[0]: set(re.findall(r"`(\w+)`", r[3])) for r in rows}
    assert table == MAY_IMPORT, f"README's wing table against the import order: {table}"
    named, wing = set(), None
    for line in section.splitlines():
        if m := re.match(r"### `fgln\.(\w+)`", line):
            wing = m.group(1)
        elif m := re.match(r"- `(\w+)`", line):
            named.add(f"{wing}.{m.group(1)}")
    modules = {f"{p.parent.name}.{p.stem}" for p in PACKAGE.glob("*/*.py")
               if p.stem != "__init__"}
    assert modules - named == set(), f"modules missing from README's map: {modules - named}"
    assert named - modules == set(), f"README's map names no such module: {named - modules}"


def _docstring_lines(tree: ast.AST) -> int:
    """Lines taken by the docstrings of a module, its classes and functions."""
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                count += body[0].end_lineno - body[0].lineno + 1
    return count


def test_no_module_over_about_350_lines():
    """Code lines, docstrings left out (numpydoc sections must not force a split)."""
    for p in PACKAGE.rglob("*.py"):
        text = p.read_text(encoding="utf-8")
        lines = text.count("\n") - _docstring_lines(ast.parse(text))
        assert lines <= 360, f"{p.relative_to(PACKAGE)} has {lines} lines: split it by job"


def test_ci_runs_make_test():
    ci = REPO_ROOT / ".ci" / "run"
    text = ci.read_text(encoding="utf-8")
    assert text.startswith("#!")
    assert "set -euo pipefail" in text
    assert re.search(r"^\s*make test\s*$", text, re.MULTILINE)
    assert ci.stat().st_mode & stat.S_IXUSR, ".ci/run must be executable"


# --------------------------------------------------------------------------
# (d) table of contents and chapter headers
# --------------------------------------------------------------------------

def _toc_files() -> list[str]:
    toc = yaml.safe_load((REPO_ROOT / "_toc.yml").read_text(encoding="utf-8"))
    assert toc["format"] == "jb-book"
    return toc_files(REPO_ROOT / "_toc.yml")


def _front_matter(path: Path) -> dict | None:
    text = path.read_text(encoding="utf-8")
    m = re.match(r"^---\s*\n(.*?)\n---\s*\n", text, re.DOTALL)
    return yaml.safe_load(m.group(1)) if m else None


def _notebook_chapters() -> list[Path]:
    out = []
    for f in _toc_files():
        path = REPO_ROOT / f"{f}.md"
        fm = _front_matter(path) if path.is_file() else None
        if fm and "jupytext" in fm:
            out.append(path)
    return out


def test_toc_files_exist():
    for f in _toc_files():
        assert f.startswith("book/"), f"{f}: chapters live under book/"
        assert (REPO_ROOT / f"{f}.md").is_file(), f"_toc.yml lists missing {f}.md"


# Pages rendered from the other chapters' ledgers (validated by the quick HTML build).
LEDGER_PAGES = tuple(book_pages(REPO_ROOT)[1])


@pytest.mark.parametrize("path", _notebook_chapters(), ids=lambda p: p.stem)
def test_notebook_chapter_header_and_parameters(path):
    import jupytext

    fm = _front_matter(path)
    rep = fm["jupytext"].get("text_representation", {})
    assert rep.get("format_name") == "myst", f"{path.name}: format_name must be myst"
    assert fm.get("kernelspec", {}).get("name") == "python3", (
        f"{path.name}: kernelspec name must be python3"
    )
    nb = jupytext.read(path)
    params = [c for c in nb.cells if c.cell_type == "code"
              and "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1, f"{path.name}: needs exactly one cell tagged 'parameters'"
    src = params[0].source
    assert re.search(r"""^scale\s*=\s*os\.environ\.get\(["']FGLN_SCALE["'],\s*["']paper["']\)""",
                     src, re.MULTILINE), (
        f"{path.name}: parameters cell must set "
        'scale = os.environ.get("FGLN_SCALE", "paper")'
    )
    names = ("fig_dir", "cache_dir", "ledger_dir")
    if path.stem in LEDGER_PAGES:
        names = ("ledger_dir",)
    for name in names:
        assert re.search(rf"^{name}\s*=", src, re.MULTILINE), (
            f"{path.name}: parameters cell must define {name} (injected by the tests)"
        )
    if path.stem not in LEDGER_PAGES:
        text = path.read_text(encoding="utf-8")
        assert re.search(r"\.finish\(ledger_dir\)", text), (
            f"{path.name}: must write its claims ledger (ledger.finish(ledger_dir))"
        )
        # the seed of every random stream comes from FGLN_SEED (make seeds sets a second one)
        assert re.search(r"""^seed\s*=\s*int\(os\.environ\.get\(["']FGLN_SEED["']""", src,
                         re.MULTILINE), f"{path.name}: seed must be read from FGLN_SEED"
        # asserted statuses per scale are data of the claim (expect={...}), not code
        for line in text.splitlines():
            assert not (re.search(r"expect", line)
                        and re.search(r"\bscale\s*[=!]=|\[scale\]", line)), (
                f"{path.name}: an expected status chosen by scale in code: {line.strip()}")


def test_notebook_chapters_are_validated():
    """Every notebook chapter in the book has an entry in test_notebooks.CHAPTERS."""
    tree = ast.parse((REPO_ROOT / "tests" / "test_notebooks.py").read_text(encoding="utf-8"))
    chapters = None
    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and getattr(node.target, "id", None) == "CHAPTERS":
            chapters = ast.literal_eval(node.value)
        elif isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "CHAPTERS"
                                                  for t in node.targets):
            chapters = ast.literal_eval(node.value)
    assert chapters is not None
    # the reproduction page and the discussion read the other chapters' ledgers: they are
    # validated by the quick-scale HTML build of `make test`
    missing = [p.stem for p in _notebook_chapters()
               if p.stem not in chapters and p.stem not in LEDGER_PAGES]
    assert not missing, f"add {missing} to CHAPTERS in tests/test_notebooks.py"


# --------------------------------------------------------------------------
# (e) fgln.book.cache
# --------------------------------------------------------------------------

def _listing(d: Path) -> list[str]:
    """The files of ``d`` (its folders, ``locks`` and ``checkpoints``, left out)."""
    return sorted(p.name for p in d.iterdir() if p.is_file())


def test_cache_round_trip(tmp_path):
    from fgln.book.cache import cached

    calls = []

    def compute():
        calls.append(1)
        return {"a": np.arange(6.0).reshape(2, 3), "n": 3, "x": 0.5,
                "flag": True, "ints": np.array([1, 2], dtype=np.int64)}

    params = {"depth": 4, "widths": [8, 16], "sigma": 1.5, "mode": "fixed"}
    first = cached("unit", params, compute, cache_dir=tmp_path)
    second = cached("unit", params, compute, cache_dir=tmp_path)
    assert len(calls) == 1
    for res in (first, second):
        np.testing.assert_array_equal(res["a"], np.arange(6.0).reshape(2, 3))
        assert res["a"].dtype == np.float64
        assert res["ints"].dtype == np.int64
        assert res["n"] == 3 and type(res["n"]) is int
        assert res["x"] == 0.5 and type(res["x"]) is float
        assert res["flag"] is True
    files = _listing(tmp_path)
    assert len(files) == 2 and files[0].endswith(".json") and files[1].endswith(".npz")
    sidecar = json.loads((tmp_path / files[0]).read_text())
    assert sidecar["params"] == params and sidecar["name"] == "unit"
    from fgln.book.cache import code_version
    assert sidecar["code_version"] == code_version()


def test_cache_key_properties():
    from fgln.book.cache import cache_key

    k = cache_key("n", {"a": 1, "b": {"c": 2, "d": 3}})
    assert k == cache_key("n", {"b": {"d": 3, "c": 2}, "a": 1})  # key order irrelevant
    assert len(k) == 64 and int(k, 16) >= 0
    assert k != cache_key("n", {"a": 2, "b": {"c": 2, "d": 3}})
    assert k != cache_key("m", {"a": 1, "b": {"c": 2, "d": 3}})


def _copy_package(tmp_path: Path) -> Path:
    import shutil

    src = Path(fgln.__file__).resolve().parent
    dst = tmp_path / "fgln"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
    return dst


def test_code_version_tracks_every_module(tmp_path):
    """Editing, adding or renaming any module of the package, in any wing, changes
    code_version(); a non-Python file does not."""
    from fgln.book.cache import code_version

    pkg = _copy_package(tmp_path)
    v0 = code_version(pkg)
    assert v0 == code_version(pkg) and len(v0) == 16 and int(v0, 16) >= 0
    assert v0 == code_version()  # the copy hashes like the installed package
    (pkg / "notes.txt").write_text("not code")
    assert code_version(pkg) == v0
    mods = sorted(pkg.rglob("*.py"))
    assert {m.parent.name for m in mods} == {"fgln", *MAY_IMPORT}
    seen = {v0}
    for mod in mods:
        text = mod.read_text(encoding="utf-8")
        mod.write_text(text + "\n# edited\n", encoding="utf-8")
        v = code_version(pkg)
        assert v not in seen, f"editing {mod.relative_to(pkg)} did not change code_version()"
        seen.add(v)
        mod.write_text(text, encoding="utf-8")
        assert code_version(pkg) == v0
    (pkg / "theory" / "new_module.py").write_text("x = 1\n")
    assert code_version(pkg) not in seen
    (pkg / "theory" / "new_module.py").unlink()
    mods[-1].rename(mods[-1].parent / ("renamed_" + mods[-1].name))
    assert code_version(pkg) not in seen


def test_cache_recomputes_after_a_code_change(tmp_path, monkeypatch):
    """Editing a module of fgln invalidates the cached results (the key holds the code
    version); the old entry stays on disk but is no longer read."""
    from fgln.book import cache

    calls = []
    compute = lambda: calls.append(1) or {"v": float(len(calls))}  # noqa: E731
    assert cache.cached("v", {"p": 1}, compute, cache_dir=tmp_path)["v"] == 1.0
    assert cache.cached("v", {"p": 1}, compute, cache_dir=tmp_path)["v"] == 1.0
    assert cache.cached("v", {"p": 2}, compute, cache_dir=tmp_path)["v"] == 2.0
    pkg = _copy_package(tmp_path / "edited")
    with (pkg / "theory" / "diagonal_correlation.py").open("a", encoding="utf-8") as fh:
        fh.write("\n# edited\n")
    edited = cache.code_version(pkg)
    assert edited != cache.code_version()
    monkeypatch.setattr(cache, "code_version", lambda package_dir=None: edited)
    assert cache.cached("v", {"p": 1}, compute, cache_dir=tmp_path)["v"] == 3.0
    assert len(calls) == 3
    assert len(list(tmp_path.glob("v-*.npz"))) == 3


@pytest.mark.parametrize("bad", [{"x": object()}, {"x": {1, 2}}, {"x": np.int64(3)},
                                 {"x": np.zeros(2)}, {"x": float("nan")}])
def test_cache_rejects_bad_params(tmp_path, bad):
    from fgln.book.cache import cached

    with pytest.raises(TypeError, match="JSON-serialisable"):
        cached("bad", bad, lambda: {"a": 1}, cache_dir=tmp_path)
    assert not tmp_path.exists() or _listing(tmp_path) == []


def test_cache_rejects_bad_results(tmp_path):
    from fgln.book.cache import cached

    with pytest.raises(TypeError):
        cached("r", {}, lambda: [1, 2], cache_dir=tmp_path)
    with pytest.raises(TypeError):
        cached("r", {}, lambda: {"a": "text"}, cache_dir=tmp_path)


def test_cache_atomic_write_leaves_no_temp_files(tmp_path, monkeypatch):
    from fgln.book import cache

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(cache.np, "savez", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        cache.cached("atomic", {"p": 1}, lambda: {"a": np.ones(3)}, cache_dir=tmp_path)
    assert _listing(tmp_path) == []  # neither a partial .npz nor a temp file
    monkeypatch.undo()

    cache.cached("atomic", {"p": 1}, lambda: {"a": np.ones(3)}, cache_dir=tmp_path)
    files = _listing(tmp_path)
    assert [f.rsplit(".", 1)[1] for f in files] == ["json", "npz"]
    assert not any(f.startswith(".") or f.endswith(".tmp") for f in files)
    mode = (tmp_path / files[1]).stat().st_mode & 0o777
    assert mode & 0o044, "cache files should be readable like normally created files"


def test_cache_corrupt_entry_is_recomputed(tmp_path):
    from fgln.book.cache import cached

    cached("c", {}, lambda: {"a": np.ones(2)}, cache_dir=tmp_path)
    npz = next(tmp_path.glob("*.npz"))
    npz.write_bytes(b"not a zip")
    with pytest.warns(UserWarning, match="unreadable"):
        res = cached("c", {}, lambda: {"a": np.zeros(2)}, cache_dir=tmp_path)
    np.testing.assert_array_equal(res["a"], np.zeros(2))


def test_cache_default_dir(monkeypatch, tmp_path):
    from fgln.base.paths import find_repo_root
    from fgln.book.cache import default_cache_dir

    monkeypatch.setenv("FGLN_CACHE_DIR", str(tmp_path / "env"))
    assert default_cache_dir() == tmp_path / "env"
    monkeypatch.delenv("FGLN_CACHE_DIR")
    assert find_repo_root() == REPO_ROOT  # editable install inside the checkout
    assert default_cache_dir() == REPO_ROOT / ".cache" / "fgln"
    assert find_repo_root(tmp_path) is None


# --------------------------------------------------------------------------
# (f) fgln.book.plotting, fgln.base.progress
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["fig2.png", "figure02.png", "fig02.pdf", "fig02ab.png",
                                  "../fig02.png", "sub/fig02.png", "Fig02.png", "fig02.png ",
                                  "figd1.png", "figZ1.png", "figD.png", "figc1.png", "figH1.png",
                                  "figC.png", "figC12.png", "figS.png", "figS22.png", "figs2a.png",
                                  "figS2ab.png"])
def test_save_figure_rejects_bad_names(tmp_path, name):
    from fgln.book.plotting import new_figure, save_figure

    fig, _ = new_figure()
    with pytest.raises(ValueError, match="must match"):
        save_figure(fig, name, tmp_path / "figs")
    assert not (tmp_path / "figs").exists()


def test_save_figure_takes_appendix_names(tmp_path):
    from fgln.book.plotting import FIG_NAME, new_figure, save_figure

    for name in ("figC1.png", "figC2b.png", "fig91a.png"):
        assert FIG_NAME.match(name), name
    fig, _ = new_figure()
    assert save_figure(fig, "figC1.png", tmp_path).name == "figC1.png"


def test_save_figure_and_band(tmp_path):
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    from fgln.book.plotting import band, new_figure, save_figure, use_style

    use_style()
    assert plt.rcParams["savefig.dpi"] == 150 and plt.rcParams["figure.dpi"] == 110
    fig, ax = new_figure()
    x = np.linspace(0, 1, 50)
    line = band(ax, x, np.sin(3 * x), 0.1 + 0 * x, label="sin")
    assert line.get_label() == "sin" and len(ax.collections) == 1
    ax.legend()
    out = save_figure(fig, "fig02b.png", tmp_path / "a" / "figs")
    assert save_figure(fig, "figS2a.png", tmp_path / "b").name == "figS2a.png"
    plt.close(fig)
    assert out == tmp_path / "a" / "figs" / "fig02b.png"
    assert _listing(out.parent) == ["fig02b.png"]
    assert out.stat().st_size > 5_000
    assert np.asarray(mpimg.imread(out))[..., :3].std() > 0.01

    fig, axes = new_figure(ncols=3, nrows=2)
    assert axes.shape == (2, 3)
    plt.close(fig)


def test_progress_silencing(monkeypatch):
    from fgln.base.progress import progress, progress_enabled

    data = [1, 2, 3]
    assert progress(data, enable=False) is data
    monkeypatch.setenv("FGLN_PROGRESS", "0")
    assert progress(data) is data
    assert not progress_enabled()
    monkeypatch.setenv("FGLN_PROGRESS", "1")
    bar = progress(data, desc="x", enable=True)
    assert list(bar) == data and bar is not data
    assert progress_enabled(True) and progress_enabled()


# --------------------------------------------------------------------------
# (f) the package's wings and the direction of use
# --------------------------------------------------------------------------



def _wing_modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p.parent != PACKAGE)


def _imported_wings(path: Path) -> set[tuple[str, int]]:
    """``(wing, line)`` of every ``fgln`` wing that ``path`` imports, at any level (function
    bodies included), relative or absolute."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts  # ("fgln", wing, module)
    here = parts[:-1]  # the package the module sits in
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name.split(".") for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(here[: len(here) - node.level + 1])
                mod = base + (node.module.split(".") if node.module else [])
            else:
                mod = (node.module or "").split(".")
            targets = [mod] if len(mod) > 1 else [mod + [a.name] for a in node.names]
        for t in targets:
            if t[0] == "fgln" and len(t) > 1:
                out.add((t[1], node.lineno))
    return out


def test_every_module_sits_in_a_wing():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert top == ["__init__.py"], f"modules outside the wings: {top}"
    wings = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    assert wings == sorted(MAY_IMPORT), wings


def test_wings_import_only_wings_below_them():
    bad = []
    for path in _wing_modules():
        wing = path.relative_to(PACKAGE).parts[0]
        for other, line in _imported_wings(path):
            if other != wing and other not in MAY_IMPORT[wing]:
                bad.append(f"{path.relative_to(PACKAGE)}:{line} imports fgln.{other}")
    assert not bad, "imports against the order of the wings:\n" + "\n".join(sorted(bad))


def test_import_scan_sees_relative_and_nested_imports(tmp_path):
    wing = tmp_path / "fgln" / "theory"
    wing.mkdir(parents=True)
    mod = wing / "m.py"
    mod.write_text("from ..training import networks\n\ndef f():\n"
                   "    from ..book.cache import cached\n    import fgln.mnist.model\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path / "fgln"
    try:
        assert {w for w, _ in _imported_wings(mod)} == {"training", "book", "mnist"}
    finally:
        PACKAGE = saved


def test_cached_resumable_hands_a_checkpoint_and_removes_it(tmp_path):
    from fgln.book.cache import cached, cached_resumable, checkpoint_path

    seen = []

    def compute(ck: Path) -> dict:
        assert ck.parent == tmp_path / "checkpoints" and ck.suffix == ".pt"
        ck.parent.mkdir(parents=True, exist_ok=True)
        ck.write_text("state")
        seen.append(ck)
        return {"x": 1.0}

    params = {"seed": 0}
    assert cached_resumable("run", params, compute, tmp_path) == {"x": 1.0}
    assert seen == [checkpoint_path("run", params, tmp_path)] and not seen[0].exists()
    assert checkpoint_path("run", {"seed": 1}, tmp_path) != seen[0]
    assert checkpoint_path("other", params, tmp_path) != seen[0]
    # the same entry as cached() under that name
    assert cached("run", params, lambda: {"x": 2.0}, tmp_path) == {"x": 1.0}


def test_package_face_reexports_the_wings():
    """Every name of ``fgln.__all__`` is a public name of exactly one wing, the same object;
    each wing's ``__all__`` names objects it defines or re-exports, and every wing's
    ``__init__`` opens with a two-line docstring."""
    import importlib

    wings = {w: importlib.import_module(f"fgln.{w}") for w in MAY_IMPORT}
    for wing, mod in wings.items():
        assert mod.__doc__ and len(mod.__doc__.strip().splitlines()) == 2, wing
        for name in mod.__all__:
            assert getattr(mod, name).__module__.startswith(f"fgln.{wing}."), (wing, name)
    for name in fgln.__all__:
        homes = [w for w, mod in wings.items() if name in mod.__all__]
        assert len(homes) == 1, (name, homes)
        assert getattr(fgln, name) is getattr(wings[homes[0]], name)
    assert len(set(fgln.__all__)) == len(fgln.__all__)


def _science_names_the_chapters_call() -> set[str]:
    """Every object of a science wing that a chapter imports (directly, or as an attribute of
    an imported module such as ``ex.lyapunov_exponents``)."""
    import ast
    import importlib
    import types

    science = set(SCIENCE)
    used: set[str] = set()
    for path in sorted((REPO_ROOT / "book").glob("*.md")):
        if not _front_matter(path):
            continue
        tree = ast.parse(_chapter_code(path))
        modules = {}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.ImportFrom) and node.module
                    and node.module.split(".")[0] == "fgln"):
                continue
            parts = node.module.split(".")
            if node.module != "fgln" and parts[1] not in science:
                continue
            for alias in node.names:
                obj = getattr(importlib.import_module(node.module), alias.name)
                if isinstance(obj, types.ModuleType):
                    modules[alias.asname or alias.name] = obj
                else:
                    used.add(alias.name)
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in modules):
                used.add(node.attr)
    return used


def test_package_face_is_what_the_chapters_call():
    """``fgln.__all__`` holds the paper's objects and exactly the science the chapters call:
    a name a chapter starts to use joins the face, one no chapter uses leaves it."""
    face = set(fgln.__all__)
    assert {"LayerLaw", "Product", "Result"} <= face
    assert face - {"Product", "Result"} == _science_names_the_chapters_call()


# --------------------------------------------------------------------------
# conventions across the package (README, "Conventions across the package")
# --------------------------------------------------------------------------

def _public_callables():
    """Every public function and class of every wing, with its qualified name."""
    import importlib
    import inspect

    seen = {}
    for wing in sorted(MAY_IMPORT):
        mod = importlib.import_module(f"fgln.{wing}")
        for name in mod.__all__:
            obj = getattr(mod, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                seen[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return seen


def _params(obj, positional: bool = False) -> list[str]:
    import inspect

    target = obj.__init__ if isinstance(obj, type) else obj
    try:
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return []
    if positional:
        return [x.name for x in params if x.kind in (x.POSITIONAL_ONLY, x.POSITIONAL_OR_KEYWORD)]
    return [x.name for x in params]


def _every_public_callable():
    """Every public function, class and public method of every module of the package."""
    import importlib
    import inspect
    import pkgutil

    seen = {}
    for info in pkgutil.walk_packages(fgln.__path__, "fgln."):
        mod = importlib.import_module(info.name)
        for name, obj in vars(mod).items():
            if name.startswith("_") or getattr(obj, "__module__", None) != mod.__name__:
                continue
            if inspect.isfunction(obj):
                seen[f"{mod.__name__}.{name}"] = obj
            elif inspect.isclass(obj):
                seen[f"{mod.__name__}.{name}"] = obj
                for mname, meth in vars(obj).items():
                    if isinstance(meth, (classmethod, staticmethod)):
                        meth = meth.__func__
                    if not mname.startswith("_") and inspect.isfunction(meth):
                        seen[f"{mod.__name__}.{name}.{mname}"] = meth
    return seen


def test_every_public_signature_follows_the_conventions():
    """One table (fgln.base.conventions.CONVENTIONS) fixes the names, their order and what
    each default means; every public signature of the package follows it."""
    from fgln.base.conventions import signature_problems

    problems = [p for qual, obj in _every_public_callable().items()
                for p in signature_problems(obj, qual)]
    assert not problems, "\n".join(problems)


def _chapter_code(path: Path) -> str:
    import jupytext

    nb = jupytext.read(path)
    return "\n".join("\n".join("" if line.lstrip().startswith(("%", "!")) else line
                               for line in cell.source.split("\n"))
                     for cell in nb.cells if cell.cell_type == "code")


def test_chapters_benchmarks_and_tests_follow_the_conventions():
    """The same table over the chapters, benchmarks and tests: no function they define and no
    keyword they pass into fgln uses a refused name (``batch=``, ``min_rank=``, ``depth=``...)."""
    from fgln.base.conventions import source_problems

    problems = []
    for path in sorted((REPO_ROOT / "book").glob("*.md")):
        if _front_matter(path):
            problems += source_problems(_chapter_code(path), path.name)
    for folder in ("benchmarks", "tests"):
        for path in sorted((REPO_ROOT / folder).glob("*.py")):
            problems += source_problems(path.read_text(), f"{folder}/{path.name}")
    assert not problems, "\n".join(problems)


def test_the_convention_check_catches_a_renamed_argument_and_a_changed_default():
    """Mutations of real signatures: ``replicates`` renamed ``batch``, ``seed=0`` made
    ``seed=None`` (fresh entropy by default), ``progress`` forced on, ``device`` auto,
    ``sigma`` defaulting to a number, and two names swapped out of order."""
    import inspect

    from fgln.base.conventions import signature_problems, source_problems

    fn = fgln.products.stream_log_spectra
    assert signature_problems(fn) == []
    sig = inspect.signature(fn)

    def mutated(rename=None, default=None, order=None):
        params = list(sig.parameters.values())
        if rename:
            params = [p.replace(name=rename[1]) if p.name == rename[0] else p for p in params]
        if default:
            params = [p.replace(default=default[1]) if p.name == default[0] else p
                      for p in params]
        if order:
            i, j = (next(q for q, p in enumerate(params) if p.name == x) for x in order)
            params[i], params[j] = params[j], params[i]

        def f(*args, **kwargs):
            return None
        f.__signature__ = sig.replace(parameters=params)
        f.__qualname__ = "mutated"
        return f

    def flagged(text, **mutation):
        return any(text in p for p in signature_problems(mutated(**mutation)))

    assert flagged("'batch'", rename=("replicates", "batch"))
    assert flagged("seed=None", default=("seed", None))
    assert flagged("progress=True", default=("progress", True))
    assert flagged("device='auto'", default=("device", "auto"))
    assert any("'k' comes after 'replicates'" in p
               for p in signature_problems(mutated(order=("k", "replicates"))))
    law_fn = fgln.lyapunov_exponents
    assert signature_problems(law_fn) == []
    src = "from fgln import sample_layers\nsample_layers(prod, batch=3)\ndef f(depth): pass\n"
    found = sorted(source_problems(src, "snippet"))
    assert len(found) == 2 and "'batch'" in found[0] and "'depth'" in found[1]
    assert source_problems("import numpy as np\nnp.std([1.0], ddof=1)\n", "numpy") == []


@pytest.mark.parametrize("call", [
    lambda: fgln.LayerLaw(4.5),
    lambda: fgln.LayerLaw(4).product(3.0),
    lambda: fgln.LayerLaw(4, "0.5"),
    lambda: fgln.sample_network((4, 3)),
    lambda: fgln.lyapunov_exponents(4, 2),
    lambda: fgln.top_values_by_depth(fgln.LayerLaw(4).product(3), 2, 2.0),
    lambda: fgln.haar_orthogonal(3.0),
    lambda: fgln.relu_log_spectra(fgln.LayerLaw.he(4).product(3, "fgln"), None, "2"),
    lambda: fgln.mnist.train_mnist("config"),
    lambda: fgln.FixedGatesNetwork([[[1.0]]], []),
    lambda: fgln.FixedGatesNetwork([torch.ones(2, 2, dtype=torch.int64)], []),
])
def test_wrong_types_raise_type_error(call):
    with pytest.raises(TypeError):
        call()


@pytest.mark.parametrize("call", [
    lambda: fgln.LayerLaw(0),
    lambda: fgln.LayerLaw(4, 1.5),
    lambda: fgln.LayerLaw(4, 1.0, -1.0),
    lambda: fgln.LayerLaw(4, 0.5, r=5),
    lambda: fgln.LayerLaw(4).product(0),
    lambda: fgln.LayerLaw(4).product(3, "section6"),
    lambda: fgln.top_values_by_depth(fgln.LayerLaw(4).product(3), 2, 0),
    lambda: fgln.relu_log_spectra(fgln.LayerLaw.he(4).product(3, "fgln"), None, 0),
    lambda: fgln.relu_log_spectra(fgln.LayerLaw.he(4).product(3), None, 1),
])
def test_bad_values_raise_value_error(call):
    with pytest.raises(ValueError):
        call()


# Modules whose public names do not yet carry numpydoc sections; emptied once they do.
NUMPYDOC_PENDING: set[str] = set()
# Overrides of torch's methods that take no argument of ours: torch documents them.
TORCH_OVERRIDES = {"extra_repr"}


def _has_section(doc: str, title: str) -> bool:
    return re.search(rf"^[ \t]*{title}\n[ \t]*-{{{len(title)}}}[ \t]*$", doc, re.M) is not None


def _module_names() -> list[str]:
    """Dotted names of every module of the package."""
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def _imported_from_private_modules() -> set[tuple[str, str]]:
    """(module, name) for every name that a module of the package imports from a
    ``_``-prefixed module of the package; (module, "*") for such a module imported whole."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        package = parts[:-1] if parts[-1] != "__init__" else parts[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = list(package[: len(package) - node.level + 1])
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                if target.rsplit(".", 1)[-1].startswith("_") and target.startswith("fgln."):
                    found.add((target, alias.name))
                elif alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.add((f"{target}.{alias.name}", "*"))  # the module itself
    return found


def _documented_names():
    """Every name in a module's own ``__all__`` and every public function or class of a
    ``_``-prefixed module that another module imports, with its qualified name."""
    import importlib
    import inspect

    private_imports = _imported_from_private_modules()
    seen = {}
    for modname in _module_names():
        mod = importlib.import_module(modname)
        names = list(getattr(mod, "__all__", []))
        if modname.rsplit(".", 1)[-1].startswith("_") and modname.count(".") > 0:
            wanted = {name for target, name in private_imports if target == modname}
            if "*" in wanted:
                wanted |= {name for name, obj in vars(mod).items()
                           if getattr(obj, "__module__", None) == modname}
            names += sorted(x for x in wanted if not x.startswith("_") and x != "*")
        for name in names:
            obj = getattr(mod, name)
            if inspect.isfunction(obj) or inspect.isclass(obj):
                if obj.__module__.startswith("fgln"):
                    seen[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return seen


def _public_members(cls):
    """(name, function, takes_arguments) for the public methods and properties defined by
    ``cls`` itself; ``function`` is the property's getter for a property."""
    import inspect

    members = []
    for name, raw in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(raw, property):
            if raw.fget is not None:
                members.append((name, raw.fget, False))
            continue
        bound = isinstance(raw, classmethod) or inspect.isfunction(raw)
        func = raw.__func__ if isinstance(raw, (classmethod, staticmethod)) else raw
        if not inspect.isfunction(func):
            continue
        params = list(inspect.signature(func).parameters)[1 if bound else 0:]
        if name in TORCH_OVERRIDES and not params:
            continue
        members.append((name, func, bool(params)))
    return members


def _numpydoc_gaps(qual: str, func, takes_arguments: bool) -> list[str]:
    import inspect

    doc = func.__doc__ or ""
    gaps = []
    if takes_arguments and not _has_section(doc, "Parameters"):
        gaps.append(f"{qual}: Parameters")
    returns = inspect.signature(func).return_annotation
    if returns not in (None, "None") and not (
        _has_section(doc, "Returns") or _has_section(doc, "Yields")
    ):
        gaps.append(f"{qual}: Returns")
    return gaps


def test_public_names_have_numpydoc_sections():
    """Every public function or class taking arguments documents them in a `Parameters`
    section; every public function returning something has a `Returns` or `Yields` section.
    Public: the wings' ``__all__``, every module's own ``__all__``, the names other modules
    import from ``_``-prefixed modules, and the methods and properties of those classes."""
    import inspect

    missing = []
    names = {**_public_callables(), **_documented_names()}
    for qual, obj in names.items():
        if obj.__module__ in NUMPYDOC_PENDING:
            continue
        doc = obj.__doc__ or ""
        if isinstance(obj, type):
            init = obj.__init__
            own = inspect.isfunction(init) and init.__module__.startswith("fgln")
            if own and [x for x in _params(obj) if x != "self"]:
                if not _has_section(doc, "Parameters"):
                    missing.append(f"{qual}: Parameters")
            for name, func, takes_arguments in _public_members(obj):
                missing += _numpydoc_gaps(f"{qual}.{name}", func, takes_arguments)
            continue
        missing += _numpydoc_gaps(qual, obj, bool(_params(obj)))
    assert not missing, f"public names without numpydoc sections: {missing}"
