"""Sphinx extension of the book: whole summary lines in the tables of the appendix "The fgln
package" (book/api).

``autosummary`` shows the first sentence of each docstring. It cuts the first paragraph at
every period followed by a space and keeps the shortest cut whose inline markup is whole,
but Sphinx 7.x checks the whole docstring instead of the cut, so the first cut is always
kept: a summary such as ``J = W_L D_{L-1} ... D_1 W_1`` is cut inside its literal, which
warns (and fails the build, warnings being errors) and shows half a formula. This extension
checks the cut itself: the summary grows sentence by sentence until its markup is whole.
"""
from __future__ import annotations

from docutils import nodes
from docutils.parsers.rst.states import RSTStateMachine, state_classes
from docutils.utils import new_document
from sphinx.ext import autosummary
from sphinx.util.docutils import NullReporter


def markup_is_whole(text: str, settings) -> bool:
    """Whether ``text`` parses as reStructuredText without a system message."""
    document = new_document("", settings)
    document.reporter = NullReporter()
    RSTStateMachine(state_classes, "Body").run([text], document)
    return not any(document.findall(nodes.system_message))


def extract_summary(doc: list[str], document) -> str:
    """autosummary's summary of the docstring lines ``doc``, grown to whole markup."""
    summary = _extract_summary(list(doc), document)
    if markup_is_whole(summary, document.settings):
        return summary
    lines = []
    for line in doc:  # the first paragraph, as autosummary reads it
        if lines and not line.strip():
            break
        if line.strip():
            lines.append(line)
    sentences = autosummary.periods_re.split(" ".join(lines))
    for i in range(1, len(sentences) + 1):
        candidate = ". ".join(sentences[:i]).rstrip(".") + "."
        if markup_is_whole(candidate, document.settings):
            return autosummary.literal_re.sub(".", candidate)
    return summary


_extract_summary = autosummary.extract_summary


def setup(app):
    if getattr(autosummary.extract_summary, "__module__", "") != __name__:
        autosummary.extract_summary = extract_summary
    return {"parallel_read_safe": True, "parallel_write_safe": True}
