"""Pages rendered from the claims ledgers: the reproduction tables and the list of errata.

Used by ``book/reproduction.md`` and ``book/intro.md``; the rows come from
:func:`fgln.book.claims.item_rows`. Everything returned is MyST markdown.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from .claims import KINDS

__all__ = ["chapter_titles", "status_counts", "claims_table", "errata"]


def chapter_titles(book_dir: str | Path, chapters: Sequence[str]) -> dict[str, str]:
    """``{chapter: "chapter 5" or "Appendix F"}`` from each chapter's first ``# `` heading.

    Parameters
    ----------
    book_dir : str or pathlib.Path
        Folder of the chapters' sources.
    chapters : sequence of str
        Chapter names (file stems).

    Returns
    -------
    titles : dict of str to str
        Title for each chapter that has a ``# `` heading.
    """
    titles = {}
    for c in chapters:
        for line in (Path(book_dir) / f"{c}.md").read_text(encoding="utf-8").splitlines():
            if line.startswith("# "):
                head = line[2:].split(". ")[0].strip()
                titles[c] = f"chapter {head}" if head[:1].isdigit() else head
                break
    return titles


def _cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _link(row: dict, titles: dict[str, str]) -> str:
    if not row.get("evidence"):
        return ""
    return f"{{ref}}`{_cell(titles.get(row['chapter'], row['chapter']))} <{row['evidence']}>`"


def status_counts(rows: Sequence[dict], kind: str = "paper") -> dict[str, int]:
    """How many rows of claim kind ``kind`` have each status.

    Parameters
    ----------
    rows : sequence of dict
        Rows of :func:`fgln.book.claims.item_rows`.
    kind : str
        Claim kind to count (default ``"paper"``).

    Returns
    -------
    counts : dict of str to int
        Number of rows per status (statuses with no row are absent).
    """
    out: dict[str, int] = {}
    for r in rows:
        if r["claim_kind"] == kind:
            out[r["status"]] = out.get(r["status"], 0) + 1
    return out


def claims_table(rows: Sequence[dict], titles: dict[str, str], *, claim_kind: str,
                 item_kind: str | None = None) -> str:
    """Rows of one claim kind (and item kind, figure / result): claim | the paper | ours and
    the deciding test | rules out | status and evidence.

    Parameters
    ----------
    rows : sequence of dict
        Rows of :func:`fgln.book.claims.item_rows`.
    titles : dict of str to str
        Chapter titles (:func:`chapter_titles`) for the evidence links.
    claim_kind : str
        Key of :data:`fgln.book.claims.KINDS`.
    item_kind : str or None
        ``"figure"`` or ``"result"``; None: both.

    Returns
    -------
    table : str
        A MyST table, header included.

    Raises
    ------
    ValueError
        If ``claim_kind`` is unknown.
    """
    if claim_kind not in KINDS:
        raise ValueError(f"claim_kind must be one of {sorted(KINDS)}, got {claim_kind!r}")
    head = ("| claim | the paper | ours, and the test that decides | rules out | status |\n"
            "|---|---|---|---|---|\n")
    body = []
    for r in rows:
        if r["claim_kind"] != claim_kind or (item_kind and r["kind"] != item_kind):
            continue
        status = f"**{r['status']}**" if r["status"] != "reproduced" else r["status"]
        if r["status"] != "not yet" and r.get("expect") and r["expect"] != r["status"]:
            status += f"<br>(prose: {r['expect']})"
        link = _link(r, titles)
        if link:
            status += "<br>" + link
        ident = f"{r['label']}<br>`{r['id']}`" if r["id"] else r["label"]
        ours = _cell(r["ours"])
        if r["test"]:
            ours += f'<br><span class="fgln-test">test: {_cell(r["test"])}</span>'
        alt = ""
        if r.get("alternative"):
            alt = (f"{_cell(r['alternative'])}<br><span class=\"fgln-test\">same test: "
                   f"{r['alternative_status']} ({_cell(r['alternative_test'])})</span>")
        body.append(f"| {ident} | {_cell(r['paper'])} | {ours} | {alt} | {status} |")
    if not body:
        return "(none)"
    return head + "\n".join(body)


def errata(rows: Sequence[dict], titles: dict[str, str]) -> str:
    """A bulleted list of every statement of the paper whose status is *differs*: what the
    paper says, what the numbers say, what they support instead, and where the evidence is.

    Parameters
    ----------
    rows : sequence of dict
        Rows of :func:`fgln.book.claims.item_rows`.
    titles : dict of str to str
        Chapter titles (:func:`chapter_titles`) for the evidence links.

    Returns
    -------
    text : str
        Markdown list, or a sentence saying that nothing differs.
    """
    items = []
    for r in rows:
        if r["claim_kind"] != "paper" or r["status"] != "differs":
            continue
        items.append(f"* **{_cell(r['label'])}** (`{r['id']}`): the paper: {_cell(r['paper'])}. "
                     f"Ours: {_cell(r['ours'])}. The numbers support instead: "
                     f"{_cell(r['alternative'])}. Evidence: {_link(r, titles)}.")
    return "\n".join(items) if items else "No statement of the paper differs from our numbers."
