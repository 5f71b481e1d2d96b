"""Sphinx extension of the book: every executed chapter offers its executed notebook.

MyST-NB writes each notebook it executed to ``<build>/jupyter_execute/<page>.ipynb``; the
theme's download menu lists an ``.ipynb`` only when the page context names one under
``_sources``, which the theme does by itself only for books with launch buttons (this one
has none: it builds offline). This extension copies the executed notebook next to the page's
source in ``_sources`` and names it in the context, before the theme builds its buttons.

It also makes MyST-NB merge a cell's stream outputs for display on copies: MyST-NB 1.x merges
them in place, which rewrites the first stream in the notebook that it saves afterwards while
the later streams stay, so a cell whose prints were interleaved with glued values showed its
later lines twice in the executed notebook (not on the page).
"""
from __future__ import annotations

import copy
import shutil
from pathlib import Path

from myst_nb.core import render as _render

# The theme builds its header buttons at priority 501 (sphinx-book-theme 1.x).
PRIORITY = 500


def executed_notebook(outdir: str | Path, pagename: str) -> Path | None:
    """The notebook MyST-NB executed for ``pagename`` in this build, or None."""
    path = Path(outdir).parent / "jupyter_execute" / f"{pagename}.ipynb"
    return path if path.is_file() else None


def offer_executed_notebook(app, pagename, templatename, context, doctree) -> None:
    """``html-page-context``: copy the executed notebook to ``_sources/<page>.ipynb`` and
    set ``ipynb_source``, which the theme's download button links."""
    if doctree is None or app.builder.format != "html":
        return
    source = executed_notebook(app.outdir, pagename)
    if source is None or Path(app.env.doc2path(pagename)).suffix not in (".md", ".ipynb"):
        return
    target = Path(app.outdir) / "_sources" / f"{pagename}.ipynb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
    context["ipynb_source"] = f"{pagename}.ipynb"


def _coalesce_copies(outputs, _merge=_render.coalesce_streams):
    """MyST-NB's ``coalesce_streams`` on copies of ``outputs`` (the notebook keeps its own)."""
    return _merge([copy.deepcopy(o) for o in outputs])


def setup(app):
    if getattr(_render.coalesce_streams, "__name__", "") != "_coalesce_copies":
        _render.coalesce_streams = _coalesce_copies
    app.connect("html-page-context", offer_executed_notebook, priority=PRIORITY)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
