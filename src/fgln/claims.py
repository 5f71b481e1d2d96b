"""Claims ledger: each checked statement of the paper, the test that decides it, its status.

A chapter states each claim once::

    ledger = Ledger("05_depth_scaling", scale)
    ledger.claim("thm5.3-correction-sign", item="thm5.3-correction",
                 paper="E[log s_1]/L = gamma_1 + (d_0 - d_1)/L",
                 ours=f"offset {m:.2f} ± {se:.2f}", value=m, se=se,
                 test=closer(m, paper=-d1, alternative=+d1),
                 expect="differs", evidence="sec-thm53-offsets")
    ledger.finish(ledger_dir)   # writes <chapter>.json; at paper scale raises on a mismatch

A *test* (:func:`ztest`, :func:`closer`, :func:`sign_test`, :func:`trend`, :func:`within`,
:func:`holds`) asks whether the paper's statement agrees with our numbers: it holds ->
status ``reproduced``, it fails -> ``differs``. Items of the paper that no chapter covers
yet are listed once, in :data:`PAPER_ITEMS`; an item without a claim is ``not yet``.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from fgln.atomic import atomic_write
from fgln.cache import code_version, find_repo_root

__all__ = [
    "STATUSES", "PAPER_ITEMS", "Decision", "Claim", "Ledger", "ClaimMismatch",
    "StaleLedger", "ztest", "closer", "sign_test", "trend", "within", "holds",
    "load_ledgers", "item_rows", "source_sha", "build_id",
]

STATUSES = ("reproduced", "differs", "not yet")

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
    """At paper scale, a claim's computed status differs from the one the prose asserts."""


class StaleLedger(RuntimeError):
    """A ledger is missing, or was computed by other code, text, scale or build."""


@dataclass(frozen=True)
class Decision:
    """Outcome of a test: ``holds`` is True when the paper's statement agrees with us."""

    test: str       # short name of the test, e.g. "z-score"
    rule: str       # the rule, stated, e.g. "|ours - paper| <= 3 s.e."
    holds: bool
    detail: str     # the numbers that decided it, e.g. "|z| = 1.3"

    @property
    def status(self) -> str:
        return "reproduced" if self.holds else "differs"


def _f(x: float) -> str:
    return f"{x:.4g}"


def _finite(name: str, x) -> float:
    x = float(x)
    if not math.isfinite(x):
        raise ValueError(f"{name} must be finite, got {x}")
    return x


def ztest(value: float, se: float, paper: float, *, zmax: float = 3.0, floor: float = 0.0) -> Decision:
    """Holds iff ``|value - paper| <= zmax * se + floor`` (``floor``: an absolute slack,
    e.g. a known o(1/L) remainder)."""
    value, se, paper = _finite("value", value), _finite("se", se), _finite("paper", paper)
    if se < 0 or zmax <= 0 or floor < 0:
        raise ValueError("se and floor must be >= 0 and zmax > 0")
    diff = abs(value - paper)
    z = diff / se if se > 0 else math.inf if diff > 0 else 0.0
    rule = f"|ours - paper| <= {zmax:g} s.e." + (f" + {floor:g}" if floor else "")
    return Decision("z-score", rule, diff <= zmax * se + floor,
                    f"ours {_f(value)} ± {_f(se)}, paper {_f(paper)}, |z| = {z:.2f}")


def closer(value: float, *, paper: float, alternative: float, se: float = 0.0,
           alternative_name: str = "alternative") -> Decision:
    """Holds iff our value is nearer the paper's prediction than the alternative one
    (the ratio of the two distances is reported)."""
    value, paper, alternative = (_finite("value", value), _finite("paper", paper),
                                 _finite("alternative", alternative))
    dp, da = abs(value - paper), abs(value - alternative)
    ratio = dp / da if da > 0 else math.inf
    extra = f" ± {_f(se)}" if se else ""
    return Decision("closer", f"|ours - paper| < |ours - {alternative_name}|", dp < da,
                    f"ours {_f(value)}{extra}; distance to paper {_f(dp)}, to "
                    f"{alternative_name} {_f(da)} (ratio {ratio:.2f})")


def sign_test(value: float, se: float, *, positive: bool, zmin: float = 3.0) -> Decision:
    """Holds iff ``value`` has the stated sign by at least ``zmin`` standard errors."""
    value, se = _finite("value", value), _finite("se", se)
    signed = value if positive else -value
    z = signed / se if se > 0 else (math.inf if signed > 0 else -math.inf)
    word = "> 0" if positive else "< 0"
    return Decision("sign", f"ours {word} by >= {zmin:g} s.e.", z >= zmin,
                    f"ours {_f(value)} ± {_f(se)}, z = {z:.2f}")


def trend(x: Sequence[float], y: Sequence[float], se: Sequence[float] | None = None, *,
          increasing: bool, zmin: float = 3.0) -> Decision:
    """Holds iff the weighted least-squares slope of ``y`` against ``x`` has the stated sign
    by at least ``zmin`` of its standard error (``se``: per-point standard errors)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or x.size < 2:
        raise ValueError("x and y must be 1-d of equal length >= 2")
    w = np.ones_like(y) if se is None else 1.0 / np.maximum(np.asarray(se, dtype=float), 1e-300) ** 2
    xm = np.sum(w * x) / np.sum(w)
    sxx = np.sum(w * (x - xm) ** 2)
    slope = float(np.sum(w * (x - xm) * (y - np.sum(w * y) / np.sum(w))) / sxx)
    if se is None:  # residual-based standard error
        resid = y - (np.sum(y) / y.size + slope * (x - xm))
        dof = max(y.size - 2, 1)
        slope_se = float(np.sqrt(np.sum(resid ** 2) / dof / sxx))
    else:
        slope_se = float(np.sqrt(1.0 / sxx))
    signed = slope if increasing else -slope
    z = signed / slope_se if slope_se > 0 else (math.inf if signed > 0 else -math.inf)
    word = "increasing" if increasing else "decreasing"
    return Decision("trend", f"{word}: slope of the stated sign by >= {zmin:g} s.e.", z >= zmin,
                    f"slope {_f(slope)} ± {_f(slope_se)}, z = {z:.2f}")


def within(value: float, target: float, tol: float, *, relative: bool = False) -> Decision:
    """Holds iff ``|value - target| <= tol`` (times ``|target|`` when ``relative``)."""
    value, target = _finite("value", value), _finite("target", target)
    bound = tol * abs(target) if relative else tol
    kind = "relative " if relative else ""
    return Decision("tolerance", f"{kind}|ours - paper| <= {tol:g}", abs(value - target) <= bound,
                    f"ours {_f(value)}, paper {_f(target)}, |diff| = {abs(value - target):.3g}")


def holds(flag: bool, *, rule: str, detail: str) -> Decision:
    """A test stated in words whose outcome the chapter computed (``flag``)."""
    return Decision("check", rule, bool(flag), detail)


@dataclass
class Claim:
    id: str
    item: str           # key of PAPER_ITEMS
    chapter: str
    paper: str          # what the paper says (statement or printed value)
    ours: str           # our value, formatted from the run
    test: Decision
    status: str
    expect: str
    evidence: str       # MyST label in the chapter where the evidence is shown
    value: float | None = None
    se: float | None = None

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["test"] = asdict(self.test)
        return d


def _repo_book_dir() -> Path | None:
    root = find_repo_root()
    return root / "book" if root is not None else None


def source_sha(chapter: str, book_dir: str | os.PathLike | None = None) -> str | None:
    """Short SHA-256 of ``book/<chapter>.md`` (None when the file cannot be found)."""
    import hashlib

    directory = Path(book_dir) if book_dir is not None else _repo_book_dir()
    if directory is None:
        return None
    path = directory / f"{chapter}.md"
    if not path.is_file():
        return None
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def build_id() -> str | None:
    """The build a run belongs to (``$FGLN_BUILD_ID``, set by ``make``), or None."""
    return os.environ.get("FGLN_BUILD_ID") or None


@dataclass
class Ledger:
    """The claims of one chapter at one scale."""

    chapter: str
    scale: str
    claims: list[Claim] = field(default_factory=list)

    def claim(self, id: str, *, item: str, paper: str, ours: str, test: Decision,
              expect: str, evidence: str, value: float | None = None,
              se: float | None = None) -> Claim:
        """Record one claim; its status is the test's outcome. Returns the claim."""
        if item not in PAPER_ITEMS:
            raise ValueError(f"claim {id!r}: unknown item {item!r}; see fgln.claims.PAPER_ITEMS")
        if expect not in STATUSES[:2]:
            raise ValueError(f"claim {id!r}: expect must be 'reproduced' or 'differs', got {expect!r}")
        if not isinstance(test, Decision):
            raise TypeError(f"claim {id!r}: test must be a Decision (use fgln.claims.ztest, ...)")
        if any(c.id == id for c in self.claims):
            raise ValueError(f"claim {id!r} stated twice in {self.chapter}")
        c = Claim(id=id, item=item, chapter=self.chapter, paper=paper, ours=ours, test=test,
                  status=test.status, expect=expect, evidence=evidence,
                  value=None if value is None else float(value),
                  se=None if se is None else float(se))
        self.claims.append(c)
        return c

    def mismatches(self) -> list[Claim]:
        return [c for c in self.claims if c.status != c.expect]

    def as_dict(self) -> dict[str, Any]:
        return {"chapter": self.chapter, "scale": self.scale, "code_version": code_version(),
                "source_sha": source_sha(self.chapter), "build_id": build_id(),
                "claims": [c.as_dict() for c in self.claims]}

    def write(self, ledger_dir: str | os.PathLike) -> Path:
        directory = Path(ledger_dir).expanduser()
        directory.mkdir(parents=True, exist_ok=True)
        text = json.dumps(self.as_dict(), indent=2, allow_nan=True) + "\n"
        return atomic_write(directory / f"{self.chapter}.json", lambda fh: fh.write(text), "w")

    def summary(self) -> str:
        """One line per claim: id, computed status, asserted status, deciding numbers."""
        lines = []
        for c in self.claims:
            flag = "" if c.status == c.expect else "   <-- prose asserts " + c.expect
            lines.append(f"{c.id}: {c.status}{flag}  [{c.test.detail}]")
        return "\n".join(lines)

    def markdown(self) -> str:
        """The chapter's claims as a MyST table (claim, status, deciding test)."""
        rows = ["| claim | the paper | ours | test | status |", "|---|---|---|---|---|"]
        for c in self.claims:
            cells = [f"`{c.id}`", c.paper, c.ours, f"{c.test.rule}: {c.test.detail}",
                     f"**{c.status}**" if c.status == "differs" else c.status]
            rows.append("| " + " | ".join(x.replace("|", "\\|") for x in cells) + " |")
        return "\n".join(rows)

    def finish(self, ledger_dir: str | os.PathLike | None) -> None:
        """Write the ledger (when ``ledger_dir`` is given), print its summary, and at paper
        scale raise :class:`ClaimMismatch` naming every claim whose computed status is not
        the asserted one. At other scales mismatches are reported only."""
        if ledger_dir is not None:
            self.write(ledger_dir)
        print(self.summary())
        bad = self.mismatches()
        if bad and self.scale == "paper":
            raise ClaimMismatch("; ".join(
                f"claim {c.id!r} in {self.chapter}: computed {c.status!r}, prose asserts "
                f"{c.expect!r} ({c.test.detail})" for c in bad))
        if bad:
            print(f"({len(bad)} claim(s) differ from the prose at {self.scale!r} scale; "
                  "only the paper scale is binding)")


def load_ledgers(ledger_dir: str | os.PathLike, chapters: Sequence[str], *, scale: str,
                 book_dir: str | os.PathLike | None = None) -> list[dict]:
    """Read the ledgers of ``chapters`` from ``ledger_dir``; raise :class:`StaleLedger` if one
    is missing or was not computed by this code, this chapter text, this scale and (when
    ``$FGLN_BUILD_ID`` is set) this build."""
    out, problems = [], []
    now_code, now_build = code_version(), build_id()
    for ch in chapters:
        path = Path(ledger_dir) / f"{ch}.json"
        if not path.is_file():
            problems.append(f"{ch}: no ledger at {path}")
            continue
        led = json.loads(path.read_text(encoding="utf-8"))
        checks = [("code_version", led.get("code_version"), now_code),
                  ("source_sha", led.get("source_sha"), source_sha(ch, book_dir)),
                  ("scale", led.get("scale"), scale)]
        if now_build is not None:
            checks.append(("build_id", led.get("build_id"), now_build))
        for what, got, want in checks:
            if got != want:
                problems.append(f"{ch}: ledger {what} {got!r} != current {want!r}")
        out.append(led)
    if problems:
        raise StaleLedger("stale or missing claims ledgers (re-run the chapters): "
                          + "; ".join(problems))
    return out


def item_rows(ledgers: Sequence[dict]) -> list[dict]:
    """One row per claim, in :data:`PAPER_ITEMS` order; an item without a claim gives one
    ``not yet`` row. Each row: item key, kind, label, paper, ours, status, test, chapter,
    evidence, id."""
    by_item: dict[str, list[dict]] = {}
    for led in ledgers:
        for c in led["claims"]:
            by_item.setdefault(c["item"], []).append(c)
    rows = []
    for key, (kind, label, paper) in PAPER_ITEMS.items():
        claims = by_item.pop(key, [])
        if not claims:
            rows.append(dict(item=key, kind=kind, label=label, paper=paper, ours="",
                             status="not yet", test="", chapter="", evidence="", id=""))
        for c in claims:
            rows.append(dict(item=key, kind=kind, label=label, paper=c["paper"], ours=c["ours"],
                             status=c["status"], expect=c["expect"],
                             test=f"{c['test']['rule']}: {c['test']['detail']}",
                             chapter=c["chapter"], evidence=c["evidence"], id=c["id"]))
    if by_item:
        raise ValueError(f"claims for unknown items: {sorted(by_item)}")
    return rows
