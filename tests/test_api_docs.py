"""The appendix "The fgln package" (``book/api``): one page per wing, generated from the
docstrings, and what keeps it whole.

* Every public name of a wing (its ``__all__``) is in the summary table of the wing's page,
  under the module that defines it, and that module's section documents it; every module of
  a wing has its section.
* The book is built with ``-W -n`` (warnings are errors, every cross-reference must resolve):
  a small Sphinx project with the autodoc and numpydoc configuration of ``_config.yml`` fails
  on a docstring reference to a name of the package that does not exist, and builds with a
  valid one. The exceptions to nitpicking cover names outside the package only.
* A reference by full path (``:func:`fgln.wing.module.name```) in any docstring, rendered
  or not, and a dotted ``fgln`` name quoted in a chapter's text, name an existing object.
"""
from __future__ import annotations

import importlib
import io
import pkgutil
import re
import textwrap
import uuid
from pathlib import Path

import pytest
import yaml

import fgln
from conftest import REPO_ROOT, toc_files

API_DIR = REPO_ROOT / "book" / "api"
WINGS = sorted(m.name for m in pkgutil.iter_modules(fgln.__path__) if m.ispkg)


def _config() -> dict:
    return yaml.safe_load((REPO_ROOT / "_config.yml").read_text(encoding="utf-8"))["sphinx"]


def _rst_blocks(text: str) -> list[str]:
    return re.findall(r"^```\{eval-rst\}\n(.*?)^```", text, re.MULTILINE | re.DOTALL)


def _page(wing: str) -> tuple[set[str], dict[str, dict[str, str]]]:
    """What the page of ``wing`` documents: the entries of its summary tables (dotted names,
    resolved against the ``currentmodule`` above each table) and its ``automodule`` sections
    (module -> options)."""
    entries, modules = set(), {}
    for block in _rst_blocks((API_DIR / f"{wing}.md").read_text(encoding="utf-8")):
        current, summary, auto = None, False, None
        for line in block.splitlines():
            if m := re.match(r"\.\. currentmodule:: (\S+)$", line):
                current, summary, auto = m[1], False, None
            elif line.startswith(".. autosummary::"):
                summary, auto = True, None
            elif m := re.match(r"\.\. automodule:: (\S+)$", line):
                summary, auto = False, m[1]
                modules[auto] = {}
            elif line.startswith(".. "):
                summary, auto = False, None
            elif m := re.match(r"   :([\w-]+):\s*(.*)$", line):
                if auto:
                    modules[auto][m[1]] = m[2].strip()
            elif summary and (m := re.match(r"   ~?([\w.]+)$", line)):
                entries.add(f"{current}.{m[1]}" if current else m[1])
    return entries, modules


def test_the_pages_parse():
    """The reading of a page sees tables and sections (so the checks below check something)."""
    entries, modules = _page("products")
    assert "fgln.products.sampling.sample_network" in entries
    assert modules["fgln.products"] == {}
    assert modules["fgln.products.sampling"] == {"members": ""}


def test_api_pages_are_in_the_toc():
    """The appendix: an index and one page per wing, all in the table of contents, nothing
    else under book/api."""
    listed = {f for f in toc_files(REPO_ROOT / "_toc.yml") if f.startswith("book/api/")}
    pages = {f"book/api/{p.stem}" for p in API_DIR.glob("*.md")}
    assert pages == {"book/api/index", *(f"book/api/{w}" for w in WINGS)}
    assert listed == pages
    index = (API_DIR / "index.md").read_text(encoding="utf-8")
    for wing in WINGS:
        assert f"[`fgln.{wing}`]({wing}.md)" in index, f"the index does not link {wing}.md"


@pytest.mark.parametrize("wing", WINGS)
def test_every_public_name_is_on_its_wing_page(wing):
    """Each name of ``fgln.<wing>.__all__`` is in the page's summary tables under its defining
    module, and that module's ``automodule`` (``:members:``, which follows the module's own
    ``__all__``) documents it."""
    mod = importlib.import_module(f"fgln.{wing}")
    entries, modules = _page(wing)
    assert f"fgln.{wing}" in modules, f"book/api/{wing}.md: no automodule of the wing itself"
    problems = []
    for name in mod.__all__:
        home = getattr(mod, name).__module__
        if f"{home}.{name}" not in entries:
            problems.append(f"{name}: not in a summary table under {home}")
        options = modules.get(home)
        if options is None or "members" not in options or options["members"]:
            problems.append(f"{name}: no '.. automodule:: {home}' with ':members:' (all)")
            continue
        excluded = {x.strip() for x in options.get("exclude-members", "").split(",")}
        own = getattr(importlib.import_module(home), "__all__", None)
        if name in excluded or (own is not None and name not in own):
            problems.append(f"{name}: {home}'s section leaves it out")
    stale = {e for e in entries if e.rsplit(".", 1)[1] not in mod.__all__}
    assert not problems, f"book/api/{wing}.md: " + "; ".join(problems)
    assert not stale, f"book/api/{wing}.md lists names not in fgln.{wing}.__all__: {stale}"


@pytest.mark.parametrize("wing", WINGS)
def test_every_module_of_a_wing_has_its_section(wing):
    _, modules = _page(wing)
    package = importlib.import_module(f"fgln.{wing}")
    expected = {f"fgln.{wing}"} | {f"fgln.{wing}.{m.name}"
                                   for m in pkgutil.iter_modules(package.__path__)}
    assert set(modules) == expected, f"book/api/{wing}.md: sections {sorted(modules)}"


# --------------------------------------------------------------------------------------
# the build fails on a stale reference
# --------------------------------------------------------------------------------------

# What decides how docstrings render and how their references resolve.
SETTINGS = re.compile(r"^(autodoc_|autosummary_|numpydoc_|nitpick|add_module_names$)")


def test_nitpick_exceptions_never_cover_the_package():
    config = _config()["config"]
    assert not config.get("nitpick_ignore"), "use nitpick_ignore_regex for outside names"
    for _, target in config.get("nitpick_ignore_regex", []):
        for name in ("fgln", "fgln.nonexistent", "fgln.base.statistics.mean_se"):
            assert not re.fullmatch(target, name), (
                f"nitpick_ignore_regex {target!r} lets a reference to {name} through")


def _build(tmp_path: Path, monkeypatch, reference: str) -> tuple[int, str]:
    """Build (``-W -n --keep-going``, dummy builder) a project documenting a one-function
    module whose docstring cites ``reference``, and a module of the package; the
    configuration is that of the book's appendix. Returns the status and the warnings."""
    from sphinx.application import Sphinx
    from sphinx.util.docutils import docutils_namespace, patch_docutils

    sphinx = _config()
    module = f"api_probe_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(f'''\
        """A module of one function."""


        def doubled(x):
            """Section 7's ``J = W_L D_{{L-1}} ... D_1 W_1`` at twice ``x``, as {reference}.

            Parameters
            ----------
            x : float
                A number.

            Returns
            -------
            float
                ``2 * x``.
            """
            return 2 * x
        '''), encoding="utf-8")
    src = tmp_path / "src"
    src.mkdir()
    extensions = list(sphinx["extra_extensions"]) + sorted(sphinx.get("local_extensions", {}))
    settings = {k: v for k, v in sphinx["config"].items() if SETTINGS.match(k)}
    conf = {"extensions": extensions, "nitpicky": True, "exclude_patterns": ["_build"],
            **settings}
    (src / "conf.py").write_text("".join(f"{k} = {v!r}\n" for k, v in conf.items()),
                                 encoding="utf-8")
    (src / "index.rst").write_text(textwrap.dedent(f"""\
        Probe
        =====

        .. automodule:: {module}

        .. autosummary::

           doubled

        .. autofunction:: doubled

        .. automodule:: fgln.base.statistics
           :members:
        """), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    for folder in set(sphinx.get("local_extensions", {}).values()):
        monkeypatch.syspath_prepend(str(REPO_ROOT / folder))
    warnings = io.StringIO()
    with patch_docutils(str(src)), docutils_namespace():
        app = Sphinx(str(src), str(src), str(tmp_path / "out"), str(tmp_path / "doctrees"),
                     "dummy", status=None, warning=warnings, freshenv=True,
                     warningiserror=True, keep_going=True)
        app.build()
    return app.statuscode, warnings.getvalue()


def test_build_fails_on_a_stale_reference(tmp_path, monkeypatch):
    status, warnings = _build(tmp_path, monkeypatch, ":func:`fgln.nonexistent`")
    assert status != 0
    assert "reference target not found: fgln.nonexistent" in warnings, warnings


def test_build_passes_with_a_valid_reference(tmp_path, monkeypatch):
    """The same project citing a function it documents builds without a warning (nor does
    the summary table cut the first sentence inside its literal)."""
    status, warnings = _build(tmp_path, monkeypatch, ":func:`fgln.base.statistics.mean_se`")
    assert status == 0 and not warnings, warnings


# --------------------------------------------------------------------------------------
# references by full path, rendered or not
# --------------------------------------------------------------------------------------

ROLE = re.compile(r":(?:py:)?(?:func|class|meth|mod|data|attr|obj|exc):`~?(fgln(?:\.\w+)+)`")
QUOTED = re.compile(r"`(fgln(?:\.\w+)+)`")


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for part in parts[i:]:
            if not hasattr(obj, part):
                return False
            obj = getattr(obj, part)
        return True
    return False


def test_resolver():
    assert _resolves("fgln.training.train.train") and _resolves("fgln.book.claims.Ledger.claim")
    assert not _resolves("fgln.train.train") and not _resolves("fgln.sampling.sample_network")


def test_references_by_full_path_name_existing_objects():
    """Every ``:role:`fgln....``` in the package's sources (docstrings of private helpers and
    comments included, which the appendix does not render) names an existing object."""
    stale = []
    for path in sorted((REPO_ROOT / "src" / "fgln").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            stale += [f"{path.relative_to(REPO_ROOT)}:{number}: {m[1]}"
                      for m in ROLE.finditer(line) if not _resolves(m[1])]
    assert not stale, "references to names that do not exist:\n" + "\n".join(stale)


def test_chapters_quote_existing_names():
    """A dotted ``fgln`` name quoted as code in a page's text names an existing object."""
    stale = []
    for f in toc_files(REPO_ROOT / "_toc.yml"):
        path = REPO_ROOT / f"{f}.md"
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            stale += [f"{f}.md:{number}: {m[1]}" for m in QUOTED.finditer(line)
                      if not _resolves(m[1])]
    assert not stale, "names that do not exist:\n" + "\n".join(stale)
