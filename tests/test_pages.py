"""What a reader gets: the chapter sources, and the built HTML book.

Sources (always run): every chapter starts the run clock after its parameters and ends with
the glued run line; the cells that exist for validation (``# NBVAL_CHECK_OUTPUT``) show
their output, not their code.

Built HTML (marker ``built_html``; ``make test`` runs them after its quick build): the book
in ``$FGLN_HTML_DIR``, else the quick build ``_build/quick/_build/html``; skipped when there
is none. The chapters checked are those of the ``_toc.yml`` two folders above the HTML folder
(the book that was built), else of the repository. Every chapter page links the notebook
the build executed (a valid ``.ipynb`` in the build) and ends with its run line; the
execution report lists every chapter; no page shows a Python repr of the package's objects
or a path of the build machine.
"""
from __future__ import annotations

import importlib
import inspect
import os
import pkgutil
import re
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

import fgln
from conftest import REPO_ROOT, toc_files

RUN_LINE = "Run: this page took"
CHECK_OUTPUT = "# NBVAL_CHECK_OUTPUT"


def _toc_files(toc_path: Path) -> list[str]:
    return toc_files(toc_path)


def _is_chapter(text: str) -> bool:
    """A notebook chapter: jupytext front matter and a cell tagged ``parameters`` that sets
    ``fig_dir`` (the reproduction page reads ledgers and computes nothing)."""
    return text.startswith("---") and "jupytext:" in text.split("\n---", 1)[0] \
        and re.search(r"^fig_dir\s*=", text, re.MULTILINE) is not None


def _source_chapters() -> list[Path]:
    paths = [REPO_ROOT / f"{f}.md" for f in _toc_files(REPO_ROOT / "_toc.yml")]
    return [p for p in paths if p.is_file() and _is_chapter(p.read_text(encoding="utf-8"))]


# --------------------------------------------------------------------------------------
# chapter sources
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("path", _source_chapters(), ids=lambda p: p.stem)
def test_chapter_reports_its_run(path):
    import jupytext

    nb = jupytext.read(path)
    code = [c for c in nb.cells if c.cell_type == "code"]
    i = next(k for k, c in enumerate(code) if "parameters" in c.metadata.get("tags", []))
    assert "page_run = start_page()" in code[i + 1].source, (
        f"{path.name}: the cell after the parameters must start the run clock "
        "(page_run = start_page())")
    assert code[-1].source.strip().startswith("glue_page_report(page_run)"), (
        f"{path.name}: the last code cell must glue the run line (glue_page_report(page_run))")
    last = nb.cells[-1]
    assert last.cell_type == "markdown" and last.source.strip() == "{glue:md}`page_run`", (
        f"{path.name}: must end with the paragraph {{glue:md}}`page_run`")


@pytest.mark.parametrize("path", _source_chapters(), ids=lambda p: p.stem)
def test_validation_cells_show_output_not_code(path):
    import jupytext

    nb = jupytext.read(path)
    for c in nb.cells:
        if c.cell_type == "code" and c.source.lstrip().startswith(CHECK_OUTPUT):
            tags = c.metadata.get("tags", [])
            assert {"hide-input", "remove-input"} & set(tags), (
                f"{path.name}: a {CHECK_OUTPUT} cell needs the tag hide-input (or "
                f"remove-input): {c.source.splitlines()[1][:60]!r}")
            assert not {"remove-output", "remove-cell"} & set(tags), (
                f"{path.name}: a {CHECK_OUTPUT} cell must show its output")


# --------------------------------------------------------------------------------------
# the built HTML
# --------------------------------------------------------------------------------------


def _html_dir() -> Path:
    env = os.environ.get("FGLN_HTML_DIR")
    html = Path(env) if env else REPO_ROOT / "_build" / "quick" / "_build" / "html"
    if not (html / "index.html").is_file():
        pytest.skip(f"no built book in {html} (set FGLN_HTML_DIR, or run make book-quick)")
    return html


def _built_chapters(html: Path) -> list[str]:
    """Page names (``book/05_depth_scaling``) of the notebook chapters of the built book."""
    toc = html.parent.parent / "_toc.yml"
    files = _toc_files(toc if toc.is_file() else REPO_ROOT / "_toc.yml")
    out = []
    for f in files:
        src = html / "_sources" / f"{f}.md"
        if not src.is_file():
            src = REPO_ROOT / f"{f}.md"
        if src.is_file() and _is_chapter(src.read_text(encoding="utf-8")):
            out.append(f)
    return out


def _soup(path: Path):
    bs4 = pytest.importorskip("bs4", reason="beautifulsoup4 (dev extra) reads the HTML")
    return bs4.BeautifulSoup(path.read_text(encoding="utf-8"), "html.parser")


def _reader_text(path: Path) -> str:
    """What a reader sees on a page: its text without code inputs, scripts and styles, nor the
    code that the package's docstrings quote (the API pages: in the description of a documented
    object or in a summary table; signatures and the values of constants stay)."""
    soup = _soup(path)
    for el in soup.select("div.cell_input, script, style, dl.py > dd code.literal, "
                          "table.autosummary code.literal"):
        el.decompose()
    return soup.get_text(" ")


@pytest.fixture(scope="module")
def built():
    html = _html_dir()
    chapters = _built_chapters(html)
    assert chapters, f"no notebook chapter found in the book built in {html}"
    return html, chapters


@pytest.mark.built_html
def test_chapter_pages_offer_their_executed_notebook(built):
    import nbformat

    html, chapters = built
    for name in chapters:
        page = html / f"{name}.html"
        assert page.is_file(), f"{name}: no page {page} in the build"
        links = [a["href"] for a in _soup(page).find_all("a", href=True)
                 if urlparse(a["href"]).path.endswith(".ipynb")]
        assert links, f"{page}: no link to the chapter's executed notebook (.ipynb)"
        target = (page.parent / unquote(urlparse(links[0]).path)).resolve()
        assert target.is_file(), f"{page} links {links[0]}, which is not in the build"
        nb = nbformat.read(target, as_version=4)
        nbformat.validate(nb)
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert code and all(c.execution_count for c in code), (
            f"{target}: not executed (a code cell has no execution count)")
        assert any(c.outputs for c in code), f"{target}: executed but without any output"
        for c in code:  # no printed text twice (merging streams in place did that)
            streams = [o for o in c.outputs if o.output_type == "stream"]
            for i, a in enumerate(streams):
                for b in streams[i + 1:]:
                    assert not (a.name == b.name and b.text.strip()
                                and a.text.rstrip().endswith(b.text.rstrip())), (
                        f"{target}: a cell shows {b.text.strip()[:60]!r} twice")
        executed = html.parent / "jupyter_execute" / f"{name}.ipynb"
        if executed.is_file():
            assert target.read_bytes() == executed.read_bytes(), (
                f"{target} is not the notebook this build executed ({executed})")


@pytest.mark.built_html
def test_chapter_pages_end_with_their_run_line(built):
    html, chapters = built
    for name in chapters:
        lines = [" ".join(el.get_text(" ").split()) for el in _soup(html / f"{name}.html")
                 .find_all("em") if el.get_text().strip().startswith(RUN_LINE)]
        assert len(lines) == 1, f"{name}: the page does not show its run line (once)"
        line = lines[0]
        assert "(wall time)" in line and "core" in line, line
        assert re.search(r"with Python 3\.\d+\.\d+, torch \d", line), line
        for name_ in ("numpy", "scipy", "matplotlib", "jupyter-book", "myst-nb"):
            assert re.search(rf"{name_} \d", line), (name_, line)
        assert "computed in this run" in line or "read from the cache" in line, line


@pytest.mark.built_html
def test_execution_report_lists_every_chapter(built):
    html, chapters = built
    page = html / "book" / "execution.html"
    if not page.is_file():
        pytest.skip("the execution report page is not part of this build")
    rows = {}
    for tr in _soup(page).select("table tbody tr"):
        cells = [td.get_text(" ", strip=True) for td in tr.find_all("td")]
        if cells:
            rows[cells[0]] = cells
    for name in chapters:
        assert name in rows, f"the execution report has no row for {name}"
        runtime, status = rows[name][3], rows[name][4]
        assert float(runtime) > 0, rows[name]
        assert status == "✅", f"{name} did not execute cleanly: {rows[name]}"


def _package_classes() -> list[str]:
    names = set()
    for mod in pkgutil.walk_packages(fgln.__path__, "fgln."):
        module = importlib.import_module(mod.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and obj.__module__.startswith("fgln"):
                names.add(name)
    return sorted(names)


MACHINE_PATH = re.compile(r"(?<![\w.~/-])/(?:work|tmp|home|root|Users|private|mnt|opt|var)/")


def _leaks(text: str, classes: list[str]) -> list[tuple[str, str, str]]:
    """``(kind, match, context)`` for each Python repr or machine path in ``text``."""
    reprs = re.compile(r"<fgln\.|\b(?:" + "|".join(classes) + r")\(")
    out = []
    for pattern, kind in ((reprs, "Python repr"), (MACHINE_PATH, "machine path")):
        for m in pattern.finditer(text):
            context = " ".join(text[max(0, m.start() - 40): m.end() + 60].split())
            out.append((kind, m.group(0), context))
    return out


def test_leak_scan_finds_reprs_and_paths_outside_code(tmp_path):
    page = tmp_path / "page.html"
    page.write_text(
        '<div class="cell_input"><pre>cfg = MnistConfig(n=3) # /tmp/x</pre></div>'
        "<div class='cell_output'><pre>Claim(id='a', test=Decision(holds=True))</pre>"
        "<pre>saved to /home/me/fig.png and ../_build/figures, see https://x.org/home/</pre>"
        "<pre>&lt;fgln.book.claims.Ledger object at 0x7f&gt;</pre></div>"
        "<p>the class MnistConfig and 2 (MnistConfig)</p>"
        '<dl class="py data"><dt>DATA_DIR = /var/data</dt><dd><p>As in '
        '<code class="docutils literal">run(MnistConfig(n=3))</code>.</p>'
        '<dl class="py function"><dt>f(x=Decision(holds=True))</dt><dd>'
        '<code class="docutils literal">Claim(id)</code></dd></dl></dd></dl>'
        '<table class="autosummary"><tr><td><code class="docutils literal">Ledger(x)</code>'
        "</td></tr></table>", encoding="utf-8")
    found = [(kind, match) for kind, match, _ in _leaks(_reader_text(page), _package_classes())]
    assert sorted(found) == [("Python repr", "<fgln."), ("Python repr", "Claim("),
                             ("Python repr", "Decision("), ("Python repr", "Decision("),
                             ("machine path", "/home/"), ("machine path", "/var/")]


@pytest.mark.built_html
def test_no_repr_or_machine_path_on_any_page(built):
    html, _ = built
    classes = _package_classes()
    problems = []
    for page in sorted(html.rglob("*.html")):
        if "_static" in page.parts or "_sources" in page.parts:
            continue
        problems += [f"{page.relative_to(html)}: {kind} {match!r} in ...{context}..."
                     for kind, match, context in _leaks(_reader_text(page), classes)]
    assert not problems, "\n".join(problems[:20]) + (
        f"\n... and {len(problems) - 20} more" if len(problems) > 20 else "")
