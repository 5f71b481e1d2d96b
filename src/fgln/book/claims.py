"""Claims ledger: each checked statement, the alternative it rules out, the test that decides.

A chapter states each claim once::

    ledger = Ledger("05_depth_scaling", scale)
    ledger.claim("fig2-convergence-p1", item="fig2", kind="paper",
                 paper="(1/L) log s_{1,L} converges to gamma_1", ours=fmt(slope, se),
                 test=trend(Ls, logs, target=g1, margin=m, origin="half of gamma_1 - gamma_2"),
                 alternative="gamma_2", alternative_test=trend(Ls, logs, target=g2, margin=m,
                                                                origin="half of gamma_1 - gamma_2"),
                 expect={"quick": "inconclusive", "paper": "reproduced"}, evidence="sec-fig2")
    ledger.finish(ledger_dir)   # writes <chapter>.json; raises on any contradicted claim

The *test* (from :mod:`fgln.book.decisions`) puts a statistic's confidence interval against
the region the statement names; the *same statistic* is put against the region the
alternative names (the printed sign, the neighbours on both sides, a real baseline). The claim
is ``reproduced`` when the statement holds and the alternative fails, ``differs`` when the
alternative holds and the statement fails, and ``inconclusive`` otherwise, with the side
recorded: both pass, both fail, an interval straddles a boundary, or the test is too coarse
to tell the claim from its alternative (its resolution is not finer than their distance:
fed the alternative's value as the truth, with the claim's own interval, the claim's test
would not fail). Claims are of three kinds (:data:`.KINDS`): statements of the paper, identity
or derivation checks (exact, not statistical), and the book's own controls and findings;
only the first counts towards an item's reproduction. Every item of the paper is listed once,
in :data:`.PAPER_ITEMS`; an item without a claim is ``not checked``, with the reason of
:data:`.NOT_CHECKED`, or ``not yet`` when no reason is recorded.
The status the prose asserts may depend on the scale (``expect={"quick": ..., "paper":
...}``); it is enforced at every scale.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..base.atomic import atomic_write
from ..base.paths import find_repo_root
from .cache import code_version
from .items import BOOK_ITEMS, KINDS, NOT_CHECKED, PAPER_ITEMS
from .decisions import (
    ALPHA,
    Decision,
    NonFiniteStatistic,
    equivalence,
    exact,
    family_quantile,
    fmt_number,
    sign_test,
    trend,
)

__all__ = [
    "STATUSES", "Claim", "Ledger", "ClaimMismatch", "StaleLedger", "load_ledgers", "item_rows",
    "source_sha", "build_id", "decide",
]

STATUSES = ("reproduced", "differs", "inconclusive", "not checked", "not yet")

#: The sides of an inconclusive claim.
SIDES = ("both pass", "both fail", "straddles", "too coarse")

class ClaimMismatch(AssertionError):
    """A claim's computed status differs from the one the prose asserts."""


class StaleLedger(RuntimeError):
    """A ledger is missing, or was computed by other code, text, scale or seed."""


def _representative(d: Decision) -> tuple[float, ...] | None:
    """A point of the region of ``d`` per entry: its centre, or its finite bound for a
    half-line (None when neither exists)."""
    out = []
    for lo, hi in zip(d.lo, d.hi):
        if math.isfinite(lo) and math.isfinite(hi):
            out.append(0.5 * (lo + hi))
        elif math.isfinite(lo) or math.isfinite(hi):
            out.append(lo if math.isfinite(lo) else hi)
        else:
            return None
    return tuple(out)


def decide(test: Decision, alternative_test: Decision) -> dict[str, Any]:
    """Status of a claim from its test and its alternative's (same statistic).

    The claim is *resolvable* when each test, fed the other region's representative point
    (centre, or finite bound of a half-line) as the truth with its own intervals, fails;
    two half-lines that meet at one bound (a sign and its opposite) are resolvable by
    construction. Then: reproduced (claim holds, alternative fails), differs (the
    reverse), or inconclusive with its side; an unresolvable claim is inconclusive, side
    ``"too coarse"``.

    Parameters
    ----------
    test, alternative_test : Decision
        The claim's test and the alternative's (same ``test`` name and statistic).

    Returns
    -------
    outcome : dict
        ``status``, ``side`` ('' unless inconclusive), ``resolution`` (of the claim's test),
        ``distance`` (largest distance between the two regions' representative points, None
        for opposite half-lines) and ``resolvable``.
    """
    rc, ra = _representative(test), _representative(alternative_test)
    half_lines = test.margin is None and alternative_test.margin is None and test.test != "exact"
    if rc is None or ra is None:
        raise ValueError("a region must have a finite bound")
    distance = max(abs(a - b) for a, b in zip(rc, ra)) if rc else 0.0
    if half_lines and distance == 0.0:
        resolvable, distance_out = True, None
    else:
        resolvable = test.at(ra) is False and alternative_test.at(rc) is False
        distance_out = distance
    t, a = test.holds, alternative_test.holds
    if not resolvable:
        status, side = "inconclusive", "too coarse"
    elif t is True and a is False:
        status, side = "reproduced", ""
    elif t is False and a is True:
        status, side = "differs", ""
    elif t is True and a is True:
        status, side = "inconclusive", "both pass"
    elif t is False and a is False:
        status, side = "inconclusive", "both fail"
    else:
        status, side = "inconclusive", "straddles"
    return dict(status=status, side=side, resolution=test.resolution, distance=distance_out,
                resolvable=resolvable)


@dataclass
class Claim:
    """One checked claim of a chapter, as :meth:`Ledger.claim` records it.

    Parameters
    ----------
    id, item, kind, chapter, paper, ours, test, alternative, alternative_test, status, side, \
alternative_status, expect, evidence, resolution, distance, value, se
        The attributes below, in this order.

    Attributes
    ----------
    id : str
        The claim's name, unique in its chapter.
    item : str
        Key of :data:`.PAPER_ITEMS` or :data:`.BOOK_ITEMS`.
    kind : str
        Key of :data:`.KINDS`.
    chapter : str
        The chapter that states it.
    paper : str
        What the paper says (a statement or a printed value).
    ours : str
        Our value, formatted from the run.
    test : Decision
        The test deciding the stated value or reading.
    alternative : str
        The competing value or reading the claim rules out.
    alternative_test : Decision
        The same statistic against the alternative's region.
    status : str
        ``"reproduced"``, ``"differs"`` or ``"inconclusive"``.
    side : str
        For an inconclusive claim, one of :data:`SIDES`; else ''.
    alternative_status : str
        Status of the alternative's test on its own.
    expect : str
        The status the prose asserts at this scale.
    evidence : str
        MyST label in the chapter where the evidence is shown.
    resolution : float
        Smallest deviation the claim's test can detect (margin plus interval half-width).
    distance : float or None
        Distance between the claim's and the alternative's predictions (None for opposite
        signs).
    value : float or None
        Our value as a number, where there is one.
    se : float or None
        Its standard error.
    """
    id: str
    item: str
    kind: str
    chapter: str
    paper: str
    ours: str
    test: Decision
    alternative: str
    alternative_test: Decision
    status: str
    side: str
    alternative_status: str
    expect: str
    evidence: str
    resolution: float = 0.0
    distance: float | None = None
    value: float | None = None
    se: float | None = None

    def as_dict(self) -> dict[str, Any]:
        """The claim as plain values (its decisions as dicts), for the JSON ledger.

        Returns
        -------
        claim : dict
            Field name to value.
        """
        d = asdict(self)
        d["test"] = self.test.as_dict()
        d["alternative_test"] = self.alternative_test.as_dict()
        return d


def _repo_book_dir() -> Path | None:
    root = find_repo_root()
    return root / "book" if root is not None else None


def source_sha(chapter: str, book_dir: str | os.PathLike | None = None) -> str | None:
    """Short SHA-256 of ``book/<chapter>.md`` (None when the file cannot be found).

    Parameters
    ----------
    chapter : str
        The chapter's name (file stem).
    book_dir : str, os.PathLike or None
        Folder of the chapters (default: ``book/`` of the checkout).

    Returns
    -------
    sha : str or None
        16 hex digits, or None.
    """
    directory = Path(book_dir) if book_dir is not None else _repo_book_dir()
    if directory is None:
        return None
    path = directory / f"{chapter}.md"
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def _process_start(pid: int) -> str:
    """Start time of process ``pid`` in clock ticks since boot ('' where unknown)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def build_id() -> str:
    """The build a run belongs to: ``$FGLN_BUILD_ID`` where set (``make`` sets one), else the
    process that executes the notebooks (the parent of this kernel: a ``jupyter-book``,
    ``papermill`` or Jupyter server process), by pid and start time.

    Returns
    -------
    build : str
        ``$FGLN_BUILD_ID``, or ``"process-<pid>-<start>"``.
    """
    env = os.environ.get("FGLN_BUILD_ID")
    if env:
        return env
    ppid = os.getppid()
    return f"process-{ppid}-{_process_start(ppid)}"


@dataclass
class Ledger:
    """The claims of one chapter at one scale.

    Parameters
    ----------
    chapter : str
        The chapter's name.
    scale : str
        ``"quick"`` or ``"paper"``.
    claims : list of Claim
        The claims stated so far (default empty).
    seed : int
        The chapter's base seed (keyword only; default 0).
    """

    chapter: str
    scale: str
    claims: list[Claim] = field(default_factory=list)
    seed: int = field(default=0, kw_only=True)

    def claim(self, id: str, *, item: str, kind: str, paper: str, ours: str, test: Decision,
              alternative: str, alternative_test: Decision, expect: str | dict[str, str],
              evidence: str, value: float | None = None, se: float | None = None) -> None:
        """Record one claim. ``test`` puts a statistic against the statement's region,
        ``alternative_test`` the *same* statistic against the region of ``alternative``.

        Parameters
        ----------
        id : str
            The claim's name, unique in the chapter.
        item : str
            Key of :data:`.PAPER_ITEMS` or :data:`.BOOK_ITEMS` the claim checks.
        kind : str
            Key of :data:`.KINDS`.
        paper : str
            What the paper says.
        ours : str
            Our value, formatted from the run.
        test : Decision
            The test deciding the stated value or reading.
        alternative : str
            What the claim rules out (non-blank).
        alternative_test : Decision
            The same test on the same statistic, against the alternative's region.
        expect : str or dict of str to str
            The status the prose asserts (``"reproduced"``, ``"differs"`` or
            ``"inconclusive"``), or one per scale (``{"quick": ..., "paper": ...}``).
        evidence : str
            MyST label where the chapter shows the evidence.
        value : float or None
            Our value as a number, where there is one.
        se : float or None
            Its standard error.

        Notes
        -----
        The recorded claim is ``ledger[id]`` (the call returns nothing, so that a chapter cell
        ending with it displays nothing).

        Raises
        ------
        NonFiniteStatistic
            If either test had a non-finite input (the message names the claim).
        TypeError
            If a test is not a :class:`fgln.book.decisions.Decision`.
        ValueError
            If ``item``, ``kind`` or ``expect`` is unknown, the two tests differ in name or
            statistic, their regions are the same, the alternative is blank or ``id`` was
            stated before.
        """
        if item not in PAPER_ITEMS and item not in BOOK_ITEMS:
            raise ValueError(f"claim {id!r}: unknown item {item!r}; see fgln.book.items.PAPER_ITEMS")
        if kind not in KINDS:
            raise ValueError(f"claim {id!r}: kind must be one of {sorted(KINDS)}, got {kind!r}")
        exp = expect.get(self.scale) if isinstance(expect, dict) else expect
        if exp not in STATUSES[:3]:
            raise ValueError(f"claim {id!r}: expect must be 'reproduced', 'differs' or "
                             f"'inconclusive' (or a dict of them per scale, with {self.scale!r}), "
                             f"got {expect!r}")
        for name, d in (("test", test), ("alternative_test", alternative_test)):
            if not isinstance(d, Decision):
                raise TypeError(f"claim {id!r}: {name} must be a Decision (fgln.book.decisions)")
            if d.error:
                raise NonFiniteStatistic(f"claim {id!r} in {self.chapter}, {name}: {d.error}")
        if alternative_test.test != test.test:
            raise ValueError(f"claim {id!r}: the alternative must be decided by the same test "
                             f"({test.test!r}), got {alternative_test.test!r}")
        if alternative_test.statistic != test.statistic:
            raise ValueError(f"claim {id!r}: the alternative must be decided on the same "
                             "statistic (values and standard errors) as the claim")
        if (alternative_test.lo, alternative_test.hi) == (test.lo, test.hi):
            raise ValueError(f"claim {id!r}: the alternative's region is the claim's own")
        if not alternative.strip():
            raise ValueError(f"claim {id!r}: name the alternative the claim rules out")
        if any(c.id == id for c in self.claims):
            raise ValueError(f"claim {id!r} stated twice in {self.chapter}")
        out = decide(test, alternative_test)
        claim = Claim(
            id=id, item=item, kind=kind, chapter=self.chapter, paper=paper, ours=ours, test=test,
            alternative=alternative, alternative_test=alternative_test, status=out["status"],
            side=out["side"], alternative_status=alternative_test.status, expect=exp,
            evidence=evidence, resolution=out["resolution"], distance=out["distance"],
            value=None if value is None else float(value), se=None if se is None else float(se))
        self.claims.append(claim)

    def __getitem__(self, id: str) -> Claim:
        for c in self.claims:
            if c.id == id:
                return c
        raise KeyError(id)

    def mismatches(self) -> list[Claim]:
        """The claims whose computed status is not the one the prose asserts.

        Returns
        -------
        claims : list of Claim
            In the order they were stated.
        """
        return [c for c in self.claims if c.status != c.expect]

    def as_dict(self) -> dict[str, Any]:
        """The ledger as written to JSON: chapter, scale, code version, source hash of the
        chapter, build and claims.

        Returns
        -------
        ledger : dict
            Plain values.
        """
        return {"chapter": self.chapter, "scale": self.scale, "seed": self.seed,
                "code_version": code_version(),
                "source_sha": source_sha(self.chapter), "build_id": build_id(),
                "claims": [c.as_dict() for c in self.claims]}

    def write(self, ledger_dir: str | os.PathLike) -> Path:
        """Write ``<ledger_dir>/<chapter>.json`` atomically, creating the folder.

        Parameters
        ----------
        ledger_dir : str or os.PathLike
            Folder of the ledgers.

        Returns
        -------
        path : pathlib.Path
            The file written.
        """
        directory = Path(ledger_dir).expanduser()
        directory.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.as_dict(), indent=2, allow_nan=False) + "\n"
        return atomic_write(directory / f"{self.chapter}.json", lambda fh: fh.write(text), "w")

    def summary(self) -> str:
        """One line per claim: id, computed status (and side), the alternative's outcome, the
        asserted status where it differs.

        Returns
        -------
        text : str
            The lines, joined.
        """
        lines = []
        for c in self.claims:
            flag = "" if c.status == c.expect else "   <-- prose asserts " + c.expect
            side = f" ({c.side})" if c.side else ""
            lines.append(f"{c.id} ({c.kind}): {c.status}{side}; alternative {c.alternative}: "
                         f"{c.alternative_test.outcome}{flag}  [{c.test.detail}]")
        return "\n".join(lines)

    def markdown(self) -> str:
        """The chapter's claims as a MyST table: claim and kind, the paper, ours, the test
        (region, interval, margin and its origin), what it rules out and how the same
        statistic fares there, resolution against distance, status.

        Returns
        -------
        table : str
            Markdown, one row per claim.
        """
        rows = ["| claim | the paper | ours | test | rules out | resolution / distance | status |",
                "|---|---|---|---|---|---|---|"]
        for c in self.claims:
            t = c.test
            test = f"{t.rule}: {t.detail}"
            if t.margin_origin:
                test += f" (margin: {t.margin_origin})"
            dist = "opposite sign" if c.distance is None else fmt_number(c.distance)
            status = c.status + (f" ({c.side})" if c.side else "")
            cells = [f"`{c.id}` ({c.kind})", c.paper, c.ours, test,
                     f"{c.alternative} ({c.alternative_test.outcome}: {c.alternative_test.detail})",
                     f"{fmt_number(c.resolution)} / {dist}",
                     f"**{status}**" if c.status != "reproduced" else status]
            rows.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
        return "\n".join(rows)

    def finish(self, ledger_dir: str | os.PathLike | None) -> None:
        """Write the ledger (when ``ledger_dir`` is given), print its summary, and raise
        :class:`ClaimMismatch` naming every claim whose status is not the one the prose
        asserts at this scale (inconclusive included), at every scale.

        Parameters
        ----------
        ledger_dir : str, os.PathLike or None
            Folder of the ledgers; None: not written.

        Raises
        ------
        ClaimMismatch
            If a claim's status contradicts the prose.
        """
        if ledger_dir is not None:
            self.write(ledger_dir)
        print(self.summary())
        bad = self.mismatches()
        if bad:
            raise ClaimMismatch("; ".join(
                f"claim {c.id!r} in {self.chapter}: computed {c.status!r}"
                + (f" ({c.side})" if c.side else "") + f", prose asserts {c.expect!r} at "
                f"{self.scale!r} scale ({c.test.detail}; alternative: {c.alternative_test.detail})"
                for c in bad))


def load_ledgers(ledger_dir: str | os.PathLike, chapters: Sequence[str], *, scale: str,
                 seed: int = 0, book_dir: str | os.PathLike | None = None) -> list[dict]:
    """Read the ledgers of ``chapters`` from ``ledger_dir``; raise :class:`StaleLedger` if one
    is missing or was not computed by this code, this chapter text, this scale and this seed. A ledger so matched is what executing the chapter now would write
    (its results depend on nothing else), whichever build wrote it.

    Parameters
    ----------
    ledger_dir : str or os.PathLike
        Folder of the ledgers.
    chapters : sequence of str
        The chapters to read.
    scale : str
        The scale the ledgers must have.
    seed : int
        The base seed the ledgers must have (default 0).
    book_dir : str, os.PathLike or None
        Folder of the chapters' sources (for the text check).

    Returns
    -------
    ledgers : list of dict
        One ledger per chapter, in order.

    Raises
    ------
    StaleLedger
        If a ledger is missing or stale.
    """
    out, problems = [], []
    now_code = code_version()
    for ch in chapters:
        path = Path(ledger_dir) / f"{ch}.json"
        if not path.is_file():
            problems.append(f"{ch}: no ledger")
            continue
        led = json.loads(path.read_text(encoding="utf-8"))
        checks = [("code_version", led.get("code_version"), now_code),
                  ("source_sha", led.get("source_sha"), source_sha(ch, book_dir)),
                  ("scale", led.get("scale"), scale), ("seed", led.get("seed"), int(seed))]
        for what, got, want in checks:
            if got != want:
                problems.append(f"{ch}: ledger {what} {got!r} != current {want!r}")
        out.append(led)
    if problems:
        raise StaleLedger("stale or missing claims ledgers (re-run the chapters): "
                          + "; ".join(problems))
    return out


def item_rows(ledgers: Sequence[dict]) -> list[dict]:
    """One row per claim, items of :data:`.PAPER_ITEMS` then :data:`.BOOK_ITEMS`, in order; a
    paper item without a claim gives one row, ``not checked`` with its reason (``reason``,
    from :data:`.NOT_CHECKED`) or else ``not yet``. Each row: item key, item kind
    (figure / result), claim kind, label, paper, ours, status, reason, test, alternative and
    its status, chapter, evidence, id.

    Parameters
    ----------
    ledgers : sequence of dict
        Ledgers as :func:`load_ledgers` returns them.

    Returns
    -------
    rows : list of dict
        One dict per row, in the items' order.

    Raises
    ------
    ValueError
        If a claim names an unknown item.
    """
    by_item: dict[str, list[dict]] = {}
    for led in ledgers:
        for c in led["claims"]:
            by_item.setdefault(c["item"], []).append(c)
    rows = []
    for key, (kind, label, paper) in {**PAPER_ITEMS, **BOOK_ITEMS}.items():
        claims = by_item.pop(key, [])
        if not claims and key in PAPER_ITEMS:
            reason = NOT_CHECKED.get(key, "")
            rows.append(dict(item=key, kind=kind, claim_kind="paper", label=label, paper=paper,
                             ours="", status="not checked" if reason else "not yet",
                             reason=reason, side="", test="", test_name="",
                             margin=None, margin_origin="", replicates=None, quantile="",
                             resolution=None, distance=None, alternative="",
                             alternative_status="", alternative_outcome="", chapter="",
                             evidence="", id=""))
        for c in claims:
            t = c["test"]
            rows.append(dict(item=key, kind=kind, claim_kind=c["kind"], label=label,
                             paper=c["paper"], ours=c["ours"], status=c["status"], reason="",
                             side=c.get("side", ""), expect=c["expect"],
                             test=f"{t['rule']}: {t['detail']}", test_name=t["test"],
                             margin=t.get("margin"), margin_origin=t.get("margin_origin", ""),
                             replicates=t.get("replicates"), quantile=t.get("quantile", ""),
                             resolution=c.get("resolution"), distance=c.get("distance"),
                             alternative=c["alternative"],
                             alternative_status=c["alternative_status"],
                             alternative_outcome=c["alternative_test"].get("outcome", ""),
                             alternative_test=c["alternative_test"]["detail"],
                             chapter=c["chapter"], evidence=c["evidence"], id=c["id"]))
    if by_item:
        raise ValueError(f"claims for unknown items: {sorted(by_item)}")
    return rows
