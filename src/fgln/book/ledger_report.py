"""Pages rendered from the claims ledgers: the reproduction tables and the list of errata.

Used by ``book/reproduction.md``, ``book/intro.md`` and ``book/discussion.md``; the rows come
from :func:`fgln.book.claims.item_rows`. Everything returned is MyST markdown.
:func:`conclusion_table` renders the claims a conclusion rests on and refuses a conclusion that
the ledgers no longer support. Which pages write a ledger: :func:`fgln.book.execute.book_pages`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Mapping, Sequence

from .claims import STATUSES
from .items import KINDS
from .decisions import fmt_number

__all__ = ["ConclusionUnsupported", "chapter_titles",
           "status_label", "status_counts", "summary_table", "claims_table", "errata",
           "conclusion_table", "seed_report"]

class ConclusionUnsupported(AssertionError):
    """A claim that a conclusion rests on does not have the status the conclusion needs."""


def chapter_titles(book_dir: str | Path, chapters: Sequence[str]) -> dict[str, str]:
    """``{chapter: "chapter 5" or "Appendix F"}`` from each chapter's first ``"# "`` heading.

    Parameters
    ----------
    book_dir : str or pathlib.Path
        Folder of the chapters' sources.
    chapters : sequence of str
        Chapter names (file stems).

    Returns
    -------
    titles : dict of str to str
        Title for each chapter that has a ``"# "`` heading.
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


def _num(x) -> str:
    return fmt_number(None if x == "" else x)


def status_label(row: dict) -> str:
    """The status as shown: ``reproduced``, ``differs``, ``inconclusive (both fail)``, ...

    Parameters
    ----------
    row : dict
        A row of :func:`fgln.book.claims.item_rows`.

    Returns
    -------
    label : str
        Status, with the side of an inconclusive claim.
    """
    side = row.get("side") or ""
    return row["status"] + (f" ({side})" if side else "")


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


def summary_table(rows: Sequence[dict]) -> str:
    """Counts of claims per kind and status, as a MyST table.

    Parameters
    ----------
    rows : sequence of dict
        Rows of :func:`fgln.book.claims.item_rows`.

    Returns
    -------
    table : str
        One row per claim kind, one column per status.
    """
    head = "| | " + " | ".join(STATUSES) + " |\n|---|" + "---|" * len(STATUSES) + "\n"
    body = []
    short = {"paper": "statements of the paper", "identity": "identity checks",
             "book": "the book's own"}
    for kind in KINDS:
        c = status_counts(rows, kind)
        body.append(f"| {short.get(kind, kind)} | "
                    + " | ".join(str(c.get(s, 0)) for s in STATUSES) + " |")
    return head + "\n".join(body)


def claims_table(rows: Sequence[dict], titles: dict[str, str], *, claim_kind: str,
                 item_kind: str | None = None) -> str:
    """Rows of one claim kind (and item kind, figure / result), one compact line per claim:
    item and claim id | status | ours | margin | resolution / distance | evidence; then, in a
    collapsed dropdown, each claim's statement, test, margin origin, replicates and quantile,
    and the alternative with what the same statistic gave there. An item without a claim
    shows the paper's statement in place of ours, and as status ``not checked: <why>`` (the
    reason of :data:`fgln.book.items.NOT_CHECKED`) or ``not yet``.

    Parameters
    ----------
    rows : sequence of dict
        Rows of :func:`fgln.book.claims.item_rows`.
    titles : dict of str to str
        Chapter titles (:func:`chapter_titles`) for the evidence links.
    claim_kind : str
        Key of :data:`fgln.book.items.KINDS`.
    item_kind : str or None
        ``"figure"`` or ``"result"``; None: both.

    Returns
    -------
    text : str
        A MyST table, header included, and the dropdown with the details.

    Raises
    ------
    ValueError
        If ``claim_kind`` is unknown.
    """
    if claim_kind not in KINDS:
        raise ValueError(f"claim_kind must be one of {sorted(KINDS)}, got {claim_kind!r}")
    head = ("| item / claim | status | ours | margin | resolution / distance | evidence |\n"
            "|---|---|---|---|---|---|\n")
    body, details = [], []
    for r in rows:
        if r["claim_kind"] != claim_kind or (item_kind and r["kind"] != item_kind):
            continue
        status = status_label(r)
        unclaimed = r["status"] in ("not checked", "not yet")
        if r["status"] != "reproduced" and not unclaimed:
            status = f"**{status}**"
        if not unclaimed and r.get("expect") and r["expect"] != r["status"]:
            status += f" (prose: {r['expect']})"
        ident = f"{_cell(r['label'])}<br>`{r['id']}`" if r["id"] else _cell(r["label"])
        if unclaimed:
            if r["status"] == "not checked":
                status = f"not checked: {_cell(r.get('reason', ''))}"
            body.append(f"| {ident} | {status} | {_cell(r['paper'])} | | | |")
            continue
        dist = "opposite sign" if r.get("distance") is None else _num(r["distance"])
        body.append(f"| {ident} | {status} | {_cell(r['ours'])} | {_num(r.get('margin'))} | "
                    f"{_num(r.get('resolution'))} / {dist} | {_link(r, titles)} |")
        reps = (f"{r['replicates']} replicates, {r['quantile']} quantile"
                if r.get("replicates") else (r.get("quantile") or "exact"))
        origin = f"; margin: {_cell(r['margin_origin'])}" if r.get("margin_origin") else ""
        details.append(
            f"`{r['id']}`\n: The paper: {_cell(r['paper'])}. Test: {_cell(r['test'])} "
            f"({reps}{origin}). Rules out: {_cell(r['alternative'])}; the same statistic "
            f"there: {r.get('alternative_outcome') or r['alternative_status']} "
            f"({_cell(r['alternative_test'])}).\n")
    if not body:
        return "(none)"
    out = head + "\n".join(body)
    if details:
        out += ("\n\n:::{dropdown} The tests, margins and alternatives of these claims\n"
                + "\n".join(details) + ":::\n")
    return out


def errata(rows: Sequence[dict], titles: dict[str, str]) -> str:
    """A bulleted list of every statement of the paper whose status is *differs*: what the
    paper says, what the numbers say, and where the evidence is; the alternative is printed
    as what the numbers support only when its own test holds (it was established), else as
    what the claim was tested against.

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
        if r.get("alternative_outcome", "holds") == "holds":
            alt = f"The numbers support instead: {_cell(r['alternative'])}"
        else:
            alt = (f"Tested against: {_cell(r['alternative'])}, which the numbers do not "
                   "establish either")
        items.append(f"* **{_cell(r['label'])}** (`{r['id']}`): the paper: {_cell(r['paper'])}. "
                     f"Ours: {_cell(r['ours'])}. {alt}. Evidence: {_link(r, titles)}.")
    return "\n".join(items) if items else "No statement of the paper differs from our numbers."


def conclusion_table(ledgers: Sequence[dict], keys: Mapping[str, str | None],
                     titles: dict[str, str]) -> str:
    """The claims a conclusion rests on, one row each (claim, chapter with a link to the
    evidence, kind, status, what the conclusion needs); raises if the ledgers no longer support
    the conclusion.

    A claim supports it when its status is the one named in ``keys`` (``"reproduced"`` or
    ``"differs"``), or when it is inconclusive at a scale where its own chapter asserts that
    (the quick sizes are too small to decide it): the row then says so. A claim named with
    ``None`` is shown for context and needs nothing.

    Parameters
    ----------
    ledgers : sequence of dict
        Ledgers as :func:`fgln.book.claims.load_ledgers` returns them.
    keys : mapping of str to str or None
        Claim id (or ``"chapter:id"`` where ids repeat) -> the status the conclusion needs.
    titles : dict of str to str
        Chapter titles (:func:`chapter_titles`) for the links.

    Returns
    -------
    table : str
        A MyST table.

    Raises
    ------
    KeyError
        If a claim is in no ledger, or an unqualified id is in several.
    ConclusionUnsupported
        If a claim's status is not the one the conclusion needs (the message names every
        such claim, with its status and chapter).
    ValueError
        If a needed status is neither ``"reproduced"`` nor ``"differs"``.
    """
    rows, bad = [], []
    for key, need in keys.items():
        if need not in (None, "reproduced", "differs"):
            raise ValueError(f"{key}: a conclusion needs 'reproduced', 'differs' or None, "
                             f"got {need!r}")
        chapter, _, ident = key.rpartition(":")
        found = [c for led in ledgers for c in led["claims"]
                 if c["id"] == ident and chapter in ("", led["chapter"])]
        if len(found) != 1:
            raise KeyError(f"claim {key!r}: found in {len(found)} ledgers, not in exactly one")
        c = found[0]
        label = status_label(c)
        if need is None:
            verdict = "context"
        elif c["status"] == need:
            verdict = f"needs {need}: yes"
        elif c["status"] == "inconclusive" and c.get("expect") == "inconclusive":
            verdict = f"needs {need}: not decided at these sizes"
        else:
            verdict = f"needs {need}: **no**"
            bad.append(f"{ident} ({c['chapter']}): {label}, needs {need}")
        rows.append(f"| `{ident}` | {_link(c, titles)} | {c['kind']} | {_cell(label)} | "
                    f"{verdict} |")
    if bad:
        raise ConclusionUnsupported("the ledgers no longer support this conclusion: "
                                    + "; ".join(bad))
    return ("| claim | chapter | kind | status | the conclusion |\n|---|---|---|---|---|\n"
            + "\n".join(rows))


def seed_report(path: str | Path, code: str | None = None) -> str:
    """The last claim-by-claim comparison of two seeds (:mod:`fgln.book.seed_check`), in words.

    Parameters
    ----------
    path : str or pathlib.Path
        The JSON file ``make seeds`` writes.
    code : str or None
        The code version of this build (:func:`fgln.book.cache.code_version`); where the
        comparison was made with other code, the text says so.

    Returns
    -------
    text : str
        Markdown: which seeds, scale and date, how many statuses agree, the claims that moved;
        or a sentence saying that no comparison is recorded.
    """
    path = Path(path)
    if not path.is_file():
        return "No comparison of two seeds is recorded yet (run `make seeds`)."
    d = json.loads(path.read_text(encoding="utf-8"))
    a, b = d["seeds"]
    text = (f"Last comparison ({d['date']}, {d['scale']} scale): base seeds {a} and {b}, "
            f"{d['same']} of {d['claims']} claims with the same status, {d['decided_same']} of "
            f"them decided (reproduced or differs) at both seeds.")
    if d["moved"]:
        text += " Claims whose status moved:\n\n" + "\n".join(
            f"* `{m['id']}` ({m['chapter']}): {m['a']} at seed {a}, {m['b']} at seed {b}"
            + (" (a decided status)" if m["decided"] else "") for m in d["moved"])
    else:
        text += " No status moved."
    if d.get("missing"):
        text += "\n\nStated at one seed only: " + ", ".join(f"`{m}`" for m in d["missing"]) + "."
    if code is not None and code not in d.get("code_version", []):
        made = ", ".join(f"`{c}`" for c in d.get("code_version", [])) or "an unrecorded version"
        text += (f"\n\nThat comparison was made with the package at code version {made}; this "
                 f"book was built at `{code}`, so it does not cover the current code's draws.")
    return text
