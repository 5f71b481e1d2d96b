"""Claims ledger: each checked statement, the alternative it rules out, the test that decides.

A chapter states each claim once::

    ledger = Ledger("05_depth_scaling", scale)
    ledger.claim("thm5.3-offsets", item="thm5.3-correction", kind="paper",
                 paper="offset -> d_i (appendix sign)", ours=f"{m:.2f} ± {se:.2f}",
                 value=m, se=se, test=ztest(m, se, d1),
                 alternative="-d_1 (printed sign)", alternative_test=ztest(m, se, -d1),
                 expect="reproduced", evidence="sec-correction")
    ledger.finish(ledger_dir)   # writes <chapter>.json; raises on a contradicted claim

The *test* (from :mod:`fgln.book.decisions`) asks whether the stated value or reading agrees
with our numbers; the same test is asked of the alternative the claim rules out (the
printed sign, a neighbouring index, the baseline). The claim is ``reproduced`` when the
statement passes and the alternative fails, ``differs`` when the alternative passes and
the statement fails, and ``undecided`` when both get the same answer: then the numbers
have decided nothing. Claims are of three kinds (:data:`KINDS`): statements of the paper,
identity or derivation checks (exact, not statistical), and the book's own controls and
findings; only the first counts towards an item's reproduction. Items of the paper that no
chapter covers yet are listed once, in :data:`PAPER_ITEMS`; an item without a claim is
``not yet``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ..base.atomic import atomic_write
from ..base.paths import find_repo_root
from .cache import code_version
from .decisions import (
    Decision,
    NonFiniteStatistic,
    closer,
    family_z,
    holds,
    sign_test,
    trend,
    within,
    ztest,
)

__all__ = [
    "STATUSES", "KINDS", "PAPER_ITEMS", "BOOK_ITEMS", "Decision", "Claim", "Ledger",
    "ClaimMismatch", "StaleLedger", "NonFiniteStatistic", "ztest", "closer", "sign_test",
    "trend", "within", "holds", "family_z", "load_ledgers", "item_rows", "source_sha",
    "build_id",
]

STATUSES = ("reproduced", "differs", "undecided", "not yet")

# What a claim is: only "paper" claims decide whether a paper item is reproduced.
KINDS: dict[str, str] = {
    "paper": "a statement of the paper",
    "identity": "an identity or derivation check (exact, not statistical)",
    "book": "a control or finding of the book's own",
}

# Every figure and numbered result of the paper, in the paper's order:
# key -> (kind, label on the reproduction page, what the paper states).
PAPER_ITEMS: dict[str, tuple[str, str, str]] = {
    "fig1": ("figure", "Figure 1", "top-15 log s_k of J during training (L=10, n=64, p=0.5, rank-10 regression)"),
    "fig2": ("figure", "Figure 2", "(1/L) log s_{1,L} -> gamma_1, with the correction gamma_1 + (d_0 - d_1)/L; p=1 and p=0.5"),
    "fig3": ("figure", "Figure 3", "top 64 of (1/L) log s_{k,L} at L=20 against gamma_k and gamma_k + (d_{k-1} - d_k)/L"),
    "fig4a": ("figure", "Figure 4 (left)", "top-30 log s_k(B_l) affine in l at initialization (L=100, p=0.5)"),
    "fig4b": ("figure", "Figure 4 (right)", "the same after MNIST training: two clusters"),
    "fig5a": ("figure", "Figure 5 (init)", "diagonal correlation of U_J^T U_{A_l} against l: high at low l"),
    "fig5b": ("figure", "Figure 5 (trained)", "the same after MNIST training: higher, and spread to larger l"),
    "fig6": ("figure", "Figure 6", "U_J^T U_{A_l} at p=1; diagonal correlations 0.26, 0.49, 0.84"),
    "fig7": ("figure", "Figure 7", "predicted against measured s_1(t) during training"),
    "fig8": ("figure", "Figure 8", "trained against initial spectrum: only the top values move"),
    "fig9": ("figure", "Figure 9", "top 30 singular values at init, n=128, p=0.5 and p=1"),
    "fig10": ("figure", "Figure 10", "diagonal correlation of the top-left 10x10 of U_J^T A_l A_l^T U_J: U-shaped in l"),
    "fig11": ("figure", "Figure 11", "the same for U_J^T U_{A_l}: decreasing in l"),
    "fig12": ("figure", "Figure 12", "the same for A_l A_l^T: increasing in l"),
    "prop4.5": ("result", "Proposition 4.5", "balanced masked networks: ds_k/dt = -L s_k^{2-2/L} <grad_J L, u_k v_k^T>"),
    "thm5.3-exponents": ("result", "Theorem 5.3 (exponents)", "(1/L) log s_{i,L} -> gamma_i for (r,p,sigma)-layers"),
    "thm5.3-correction": ("result", "Theorem 5.3 (correction)", "E[(1/L) log s_{i,L}] = gamma_i + (d_{i-1} - d_i)/L + o(1/L)"),
    "d_i": ("result", "Constants d_i", "d_i = -E log|det Omega^{i,i}|"),
    "rem5.4": ("result", "Remark 5.4", "closed form of gamma_i"),
    "rem5.5": ("result", "Remark 5.5", "the unnormalised approximation of gamma_i used in the comparisons"),
    "cor5.6": ("result", "Corollary 5.6", "s_{i+1,L}/s_{i,L} -> 0"),
    "thm6.1": ("result", "Theorem 6.1", "R_L^{r,r} -> I under spectral separation"),
    "rem6.2": ("result", "Remark 6.2", "clusters: block-diagonal limit"),
    "rem6.3": ("result", "Remark 6.3", "(S_J S_A^{-1})^{r,r} -> Sigma_C; scaled overlaps -> T_C, (T_C^{-1})^T"),
    "thmD.1c": ("result", "Theorem D.1 (c)", "decay rates of the entries of U_L"),
    "prop7.1": ("result", "Proposition 7.1", "ds_k/dt ~ -e^{(2+2/L) delta_k} L s_k^{2-2/L} <grad_J L, u_k v_k^T>"),
    "rem7.2": ("result", "Remark 7.2", "first-order version through triangular factors"),
    "appF": ("result", "Appendix F formula", "closed form of the diagonal correlation"),
    "mnist-accuracy": ("result", "Section 8 (MNIST)", "the fixed-gates network trains on MNIST"),
}

# The book's own findings (beyond the paper), same layout: key -> (kind, label, statement).
BOOK_ITEMS: dict[str, tuple[str, str, str]] = {
    "relu-init-exponents": ("book", "ReLU J(x): depth scaling",
                            "E[(1/L) log s_i] of a ReLU network's J(x) equals that of the independently gated product"),
    "relu-regimes": ("book", "ReLU J(x): three regimes",
                     "moments (L << n), log-normal norms (L ~ n), Lyapunov spectrum (L >> n)"),
    "relu-separation": ("book", "ReLU J(x): separation",
                        "s_(i+1)/s_i -> 0 at the rate gamma_(i+1) - gamma_i (Corollary 5.6 for ReLU)"),
    "relu-alignment": ("book", "ReLU J(x): alignment",
                       "U_J and U_(A_l) align per input as in the fixed-gates network"),
    "relu-modes": ("book", "ReLU: two inputs",
                   "shared gates 1 - theta/pi in the first layer, more in deeper ones; overlap of top singular subspaces"),
    "relu-trained": ("book", "ReLU trained on MNIST",
                     "clusters, alignment and accuracy of the trained ReLU block against chapter 8"),
}


class ClaimMismatch(AssertionError):
    """A claim's computed status differs from the one the prose asserts."""


class StaleLedger(RuntimeError):
    """A ledger is missing, or was computed by other code, text, scale or build."""


@dataclass
class Claim:
    """One checked claim of a chapter, as :meth:`Ledger.claim` records it.

    Parameters
    ----------
    id, item, kind, chapter, paper, ours, test, alternative, alternative_test, status, \
alternative_status, expect, evidence, value, se
        The attributes below, in this order.

    Attributes
    ----------
    id : str
        The claim's name, unique in its chapter.
    item : str
        Key of :data:`PAPER_ITEMS` or :data:`BOOK_ITEMS`.
    kind : str
        Key of :data:`KINDS`.
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
        The same test applied to the alternative.
    status : str
        ``"reproduced"``, ``"differs"`` or ``"undecided"`` (claim and alternative agree).
    alternative_status : str
        Status of the alternative.
    expect : str
        The status the prose asserts.
    evidence : str
        MyST label in the chapter where the evidence is shown.
    value : float or None
        Our value as a number, where there is one.
    se : float or None
        Its standard error.
    """
    id: str
    item: str           # key of PAPER_ITEMS or BOOK_ITEMS
    kind: str           # key of KINDS
    chapter: str
    paper: str          # what the paper says (statement or printed value)
    ours: str           # our value, formatted from the run
    test: Decision
    alternative: str    # the competing value or reading the claim rules out
    alternative_test: Decision  # the same test applied to the alternative
    status: str
    alternative_status: str
    expect: str
    evidence: str       # MyST label in the chapter where the evidence is shown
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
        d["test"] = asdict(self.test)
        d["alternative_test"] = asdict(self.alternative_test)
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
    """

    chapter: str
    scale: str
    claims: list[Claim] = field(default_factory=list)

    def claim(self, id: str, *, item: str, kind: str, paper: str, ours: str, test: Decision,
              alternative: str, alternative_test: Decision, expect: str, evidence: str,
              value: float | None = None, se: float | None = None) -> None:
        """Record one claim. ``test`` decides the stated value or reading, ``alternative_test``
        is the same test applied to ``alternative`` (what the claim rules out). Raises
        :class:`NonFiniteStatistic` naming the claim when either test had a non-finite input.

        Parameters
        ----------
        id : str
            The claim's name, unique in the chapter.
        item : str
            Key of :data:`PAPER_ITEMS` or :data:`BOOK_ITEMS` the claim checks.
        kind : str
            Key of :data:`KINDS`.
        paper : str
            What the paper says.
        ours : str
            Our value, formatted from the run.
        test : Decision
            The test deciding the stated value or reading.
        alternative : str
            What the claim rules out (non-blank).
        alternative_test : Decision
            The same test (same ``test`` name) applied to the alternative.
        expect : str
            The status the prose asserts: ``"reproduced"``, ``"differs"`` or ``"undecided"``.
        evidence : str
            MyST label where the chapter shows the evidence.
        value : float or None
            Our value as a number, where there is one.
        se : float or None
            Its standard error.

        Raises
        ------
        NonFiniteStatistic
            If either test had a non-finite statistic.
        TypeError
            If a test is not a :class:`fgln.book.decisions.Decision`.
        ValueError
            If ``item``, ``kind`` or ``expect`` is unknown, the two tests differ, the alternative
            is blank or ``id`` was stated before.
        """
        if item not in PAPER_ITEMS and item not in BOOK_ITEMS:
            raise ValueError(f"claim {id!r}: unknown item {item!r}; see fgln.book.claims.PAPER_ITEMS")
        if kind not in KINDS:
            raise ValueError(f"claim {id!r}: kind must be one of {sorted(KINDS)}, got {kind!r}")
        if expect not in STATUSES[:3]:
            raise ValueError(f"claim {id!r}: expect must be 'reproduced', 'differs' or "
                             f"'undecided', got {expect!r}")
        for name, d in (("test", test), ("alternative_test", alternative_test)):
            if not isinstance(d, Decision):
                raise TypeError(f"claim {id!r}: {name} must be a Decision (fgln.book.decisions)")
            if d.holds is None:
                raise NonFiniteStatistic(f"claim {id!r} in {self.chapter}, {name}: {d.detail}")
        if alternative_test.test != test.test:
            raise ValueError(f"claim {id!r}: the alternative must be decided by the same test "
                             f"({test.test!r}), got {alternative_test.test!r}")
        if not alternative.strip():
            raise ValueError(f"claim {id!r}: name the alternative the claim rules out")
        if any(c.id == id for c in self.claims):
            raise ValueError(f"claim {id!r} stated twice in {self.chapter}")
        status = test.status if test.holds != alternative_test.holds else "undecided"
        self.claims.append(Claim(
            id=id, item=item, kind=kind, chapter=self.chapter, paper=paper, ours=ours, test=test,
            alternative=alternative, alternative_test=alternative_test, status=status,
            alternative_status=alternative_test.status, expect=expect, evidence=evidence,
            value=None if value is None else float(value), se=None if se is None else float(se)))

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
        return {"chapter": self.chapter, "scale": self.scale, "code_version": code_version(),
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
        """One line per claim: id, computed status, what the alternative got, asserted status.

        Returns
        -------
        text : str
            The lines, joined.
        """
        lines = []
        for c in self.claims:
            flag = "" if c.status == c.expect else "   <-- prose asserts " + c.expect
            lines.append(f"{c.id} ({c.kind}): {c.status}; alternative {c.alternative}: "
                         f"{c.alternative_status}{flag}  [{c.test.detail}]")
        return "\n".join(lines)

    def markdown(self) -> str:
        """The chapter's claims as a MyST table (claim, kind, test, what it rules out, status).

        Returns
        -------
        table : str
            Markdown, one row per claim.
        """
        rows = ["| claim | kind | the paper | ours | test | rules out | status |",
                "|---|---|---|---|---|---|---|"]
        for c in self.claims:
            cells = [f"`{c.id}`", c.kind, c.paper, c.ours, f"{c.test.rule}: {c.test.detail}",
                     f"{c.alternative} ({c.alternative_status}: {c.alternative_test.detail})",
                     f"**{c.status}**" if c.status != "reproduced" else c.status]
            rows.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
        return "\n".join(rows)

    def finish(self, ledger_dir: str | os.PathLike | None) -> None:
        """Write the ledger (when ``ledger_dir`` is given), print its summary, and raise
        :class:`ClaimMismatch` naming every *decided* claim whose status is not the one the
        prose asserts, at every scale. A claim left undecided where the prose asserts a
        decision raises at paper scale and is reported at other scales.

        Parameters
        ----------
        ledger_dir : str, os.PathLike or None
            Folder of the ledgers; None: not written.

        Raises
        ------
        ClaimMismatch
            If a decided claim (or, at paper scale, an undecided one) contradicts the prose.
        """
        if ledger_dir is not None:
            self.write(ledger_dir)
        print(self.summary())
        bad = [c for c in self.mismatches()
               if c.status != "undecided" or self.scale == "paper"]
        if bad:
            raise ClaimMismatch("; ".join(
                f"claim {c.id!r} in {self.chapter}: computed {c.status!r}, prose asserts "
                f"{c.expect!r} ({c.test.detail}; alternative: {c.alternative_test.detail})"
                for c in bad))
        left = [c.id for c in self.mismatches()]
        if left:
            print(f"undecided at {self.scale!r} scale (binding only at the paper scale): "
                  + ", ".join(left))


def load_ledgers(ledger_dir: str | os.PathLike, chapters: Sequence[str], *, scale: str,
                 book_dir: str | os.PathLike | None = None) -> list[dict]:
    """Read the ledgers of ``chapters`` from ``ledger_dir``; raise :class:`StaleLedger` if one
    is missing or was not computed by this code, this chapter text, this scale and this
    build (:func:`build_id`).

    Parameters
    ----------
    ledger_dir : str or os.PathLike
        Folder of the ledgers.
    chapters : sequence of str
        The chapters to read.
    scale : str
        The scale the ledgers must have.
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
    now_code, now_build = code_version(), build_id()
    for ch in chapters:
        path = Path(ledger_dir) / f"{ch}.json"
        if not path.is_file():
            problems.append(f"{ch}: no ledger")
            continue
        led = json.loads(path.read_text(encoding="utf-8"))
        checks = [("code_version", led.get("code_version"), now_code),
                  ("source_sha", led.get("source_sha"), source_sha(ch, book_dir)),
                  ("scale", led.get("scale"), scale), ("build_id", led.get("build_id"), now_build)]
        for what, got, want in checks:
            if got != want:
                problems.append(f"{ch}: ledger {what} {got!r} != current {want!r}")
        out.append(led)
    if problems:
        raise StaleLedger("stale or missing claims ledgers (re-run the chapters): "
                          + "; ".join(problems))
    return out


def item_rows(ledgers: Sequence[dict]) -> list[dict]:
    """One row per claim, items of :data:`PAPER_ITEMS` then :data:`BOOK_ITEMS`, in order; a
    paper item without a claim gives one ``not yet`` row. Each row: item key, item kind
    (figure / result), claim kind, label, paper, ours, status, test, alternative and its
    status, chapter, evidence, id.

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
            rows.append(dict(item=key, kind=kind, claim_kind="paper", label=label, paper=paper,
                             ours="", status="not yet", test="", alternative="",
                             alternative_status="", chapter="", evidence="", id=""))
        for c in claims:
            rows.append(dict(item=key, kind=kind, claim_kind=c["kind"], label=label,
                             paper=c["paper"], ours=c["ours"], status=c["status"],
                             expect=c["expect"], test=f"{c['test']['rule']}: {c['test']['detail']}",
                             alternative=c["alternative"],
                             alternative_status=c["alternative_status"],
                             alternative_test=c["alternative_test"]["detail"],
                             chapter=c["chapter"], evidence=c["evidence"], id=c["id"]))
    if by_item:
        raise ValueError(f"claims for unknown items: {sorted(by_item)}")
    return rows
