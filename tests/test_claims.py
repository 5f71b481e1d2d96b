"""fgln.book.claims and fgln.book.decisions: the tests that decide a claim, the ledger,
staleness."""

from __future__ import annotations

import ast
import json
import re

import numpy as np
import pytest
from scipy.stats import t as student_t

from conftest import REPO_ROOT
from fgln.book import claims as cl
from fgln.book import decisions as dc
from fgln.book.items import BOOK_ITEMS, NOT_CHECKED, PAPER_ITEMS
from fgln.book.ledger_report import claims_table, summary_table

NAN = float("nan")
ORIGIN = "half the distance between the two predictions"


# --------------------------------------------------------------------------
# the tests
# --------------------------------------------------------------------------

def test_equivalence_three_outcomes_with_t_quantiles():
    q = student_t.ppf(1 - 0.05 / 2, 7)
    # interval 1.0 ± q*0.01 = ± 0.0236 inside 1 ± 0.05: holds
    d = dc.equivalence(1.0, 0.01, 1.0, 0.05, replicates=8, origin=ORIGIN)
    assert d.holds is True and d.quantile == "t(7) 97.5%"
    assert d.half_width == pytest.approx((q * 0.01,))
    assert d.resolution == pytest.approx(0.05 + q * 0.01)
    # wholly outside: fails; straddling: inconclusive
    assert dc.equivalence(1.2, 0.01, 1.0, 0.05, replicates=8, origin=ORIGIN).holds is False
    assert dc.equivalence(1.05, 0.01, 1.0, 0.05, replicates=8, origin=ORIGIN).holds is None
    # a larger standard error never makes passing easier (it is not a test of non-rejection)
    assert dc.equivalence(1.0, 1.0, 1.0, 0.05, replicates=8, origin=ORIGIN).holds is None
    # the t quantile is wider than the normal one at few replicates
    few = dc.equivalence(1.0, 0.02, 1.0, 0.05, replicates=3, origin=ORIGIN)
    many = dc.equivalence(1.0, 0.02, 1.0, 0.05, replicates=None, origin=ORIGIN)
    assert few.holds is None and many.holds is True
    # the target's own uncertainty widens the interval
    assert dc.equivalence(1.0, 0.01, 1.0, 0.05, replicates=None, origin=ORIGIN,
                          target_se=0.05).holds is None


def test_equivalence_vectors_are_one_bonferroni_family():
    v = np.array([1.0, 2.0, 3.0])
    d = dc.equivalence(v, 0.01, v + 0.02, 0.05, replicates=10, origin=ORIGIN)
    q3 = student_t.ppf(1 - 0.05 / 6, 9)
    assert d.half_width == pytest.approx((q3 * 0.01,) * 3) and d.holds is True
    # one entry outside decides "fails" even if the others are inside
    assert dc.equivalence(v, 0.01, v + [0.0, 0.0, 0.5], 0.05, replicates=10,
                          origin=ORIGIN).holds is False
    assert "worst entry 3" in dc.equivalence(v, 0.01, v + [0.0, 0.0, 0.5], 0.05,
                                              replicates=10, origin=ORIGIN).detail


def test_equivalence_refuses_bad_margins_and_replicates():
    with pytest.raises(ValueError, match="margin"):
        dc.equivalence(1.0, 0.1, 1.0, 0.0, replicates=5, origin=ORIGIN)
    with pytest.raises(ValueError, match="margin comes from"):
        dc.equivalence(1.0, 0.1, 1.0, 0.1, replicates=5, origin=" ")
    with pytest.raises(ValueError, match="replicates"):
        dc.equivalence(1.0, 0.1, 1.0, 0.1, replicates=1, origin=ORIGIN)
    with pytest.raises(ValueError, match="standard errors"):
        dc.equivalence(1.0, -0.1, 1.0, 0.1, replicates=5, origin=ORIGIN)


@pytest.mark.parametrize("bad", ["value", "se", "target", "margin", "target_se"])
def test_nonfinite_inputs_are_refused_by_name(bad):
    args = dict(value=1.0, se=0.1, target=1.0, margin=0.5, target_se=0.0)
    args[bad] = NAN
    d = dc.equivalence(args["value"], args["se"], args["target"], args["margin"],
                       replicates=5, origin=ORIGIN, target_se=args["target_se"])
    assert d.holds is None and bad in d.error
    with pytest.raises(dc.NonFiniteStatistic, match=bad):
        _ = d.status
    led = cl.Ledger("05_depth_scaling", "quick")
    ok = dc.equivalence(1.0, 0.1, 2.0, 0.5, replicates=5, origin=ORIGIN)
    with pytest.raises(dc.NonFiniteStatistic, match="'x'"):
        led.claim("x", item="fig2", kind="paper", paper="", ours="", test=d, alternative="2",
                  alternative_test=ok, expect="reproduced", evidence="e")


def test_sign_and_exact():
    assert dc.sign_test(0.5, 0.1, positive=True, replicates=10).holds is True
    assert dc.sign_test(0.5, 0.1, positive=False, replicates=10).holds is False
    assert dc.sign_test(0.1, 0.1, positive=True, replicates=10).holds is None
    assert dc.sign_test(NAN, 0.1, positive=True, replicates=10).error
    e = dc.exact(1e-15, lo=-1e-12, hi=1e-12, region="zero to rounding")
    assert e.holds is True and e.quantile == "exact" and e.resolution == 0.0
    assert dc.exact(1e-3, lo=-1e-12, hi=1e-12, region="zero").holds is False
    with pytest.raises(ValueError, match="empty region"):
        dc.exact(0.0, lo=1.0, hi=0.0, region="empty")


def test_trend_uses_per_replicate_slopes():
    rng = np.random.default_rng(1)
    x = np.arange(6.0)
    shared = rng.normal(size=6)  # the same chains at every x: a common wiggle
    Y = 0.3 * x + shared + 0.05 * rng.normal(size=(12, 6))
    d = dc.trend(x, Y, increasing=True)
    assert d.holds is True and d.test == "trend" and d.replicates == 12
    assert dc.trend(x, Y, increasing=False).holds is False
    slopes = dc.per_replicate_slopes(x, Y)
    assert np.allclose(slopes, [np.polyfit(x, y, 1)[0] for y in Y])
    eq = dc.trend(x, Y, target=float(slopes.mean()), margin=0.05, origin=ORIGIN)
    assert eq.holds is True and eq.margin == 0.05
    with pytest.raises(ValueError, match="3 points"):
        dc.trend(x[:2], Y[:, :2], increasing=True)
    with pytest.raises(ValueError, match="not constant"):
        dc.trend(np.ones(6), Y, increasing=True)
    with pytest.raises(ValueError, match="zero spread"):
        dc.trend(x, np.tile(x, (4, 1)), increasing=True)
    with pytest.raises(ValueError, match="either"):
        dc.trend(x, Y)
    with pytest.raises(dc.NonFiniteStatistic):
        dc.trend(x, np.where(Y > 1, np.inf, Y), increasing=True)


def test_quantile_family():
    assert dc.quantile(None)[0] == pytest.approx(1.959964, rel=1e-6)
    assert dc.family_quantile(10, 8) == pytest.approx(student_t.ppf(1 - 0.05 / 20, 7))
    with pytest.raises(ValueError):
        dc.quantile(5, family=0)


# --------------------------------------------------------------------------
# every decision function, fed the alternative's value as the truth with the claim's own
# interval, returns the other outcome (the resolution check)
# --------------------------------------------------------------------------

def _pairs():
    x = np.arange(5.0)
    Y = 0.2 * x + np.random.default_rng(0).normal(0, 0.01, (8, 5))
    return {
        "equivalence": (dc.equivalence(1.0, 0.01, 1.0, 0.1, replicates=8, origin=ORIGIN),
                        dc.equivalence(1.0, 0.01, 1.2, 0.1, replicates=8, origin=ORIGIN)),
        "vector": (dc.equivalence([1.0, 2.0], 0.01, [1.0, 2.0], 0.1, replicates=8, origin=ORIGIN),
                   dc.equivalence([1.0, 2.0], 0.01, [1.2, 1.8], 0.1, replicates=8,
                                  origin=ORIGIN)),
        "sign": (dc.sign_test(0.5, 0.1, positive=True, replicates=8),
                 dc.sign_test(0.5, 0.1, positive=False, replicates=8)),
        "trend": (dc.trend(x, Y, target=0.2, margin=0.05, origin=ORIGIN),
                  dc.trend(x, Y, target=0.0, margin=0.05, origin=ORIGIN)),
        "exact": (dc.exact(0.0, lo=-1e-9, hi=1e-9, region="zero"),
                  dc.exact(0.0, lo=1e-3, hi=np.inf, region=">= 1e-3")),
    }


@pytest.mark.parametrize("name", sorted(_pairs()))
def test_each_test_gives_the_other_outcome_at_the_alternative(name):
    claim, alt = _pairs()[name]
    out = cl.decide(claim, alt)
    assert out["resolvable"] and out["status"] == "reproduced"
    if name == "sign":  # opposite half-lines: a value beyond the interval on either side
        h = claim.half_width[0]
        rep_c, rep_a = (1.5 * h,), (-1.5 * h,)
    else:
        rep_c, rep_a = cl._representative(claim), cl._representative(alt)
    assert claim.at(rep_c) is True and claim.at(rep_a) is False
    assert alt.at(rep_a) is True and alt.at(rep_c) is False


def test_too_coarse_is_inconclusive_even_when_both_tests_decide():
    # margin 0.3 around 1.0 and 1.2: "differs" at either point would need more than 0.3 + h
    c = dc.equivalence(1.0, 0.001, 1.0, 0.3, replicates=8, origin=ORIGIN)
    a = dc.equivalence(1.0, 0.001, 1.2, 0.3, replicates=8, origin=ORIGIN)
    out = cl.decide(c, a)
    assert not out["resolvable"] and out["status"] == "inconclusive"
    assert out["side"] == "too coarse" and out["distance"] == pytest.approx(0.2)


def test_inconclusive_says_which_side():
    def pair(v, se, m=0.1):
        return (dc.equivalence(v, se, 1.0, m, replicates=8, origin=ORIGIN),
                dc.equivalence(v, se, 2.0, m, replicates=8, origin=ORIGIN))
    assert cl.decide(*pair(1.5, 0.001))["side"] == "both fail"
    assert cl.decide(*pair(1.1, 0.01))["side"] == "straddles"
    assert cl.decide(*pair(1.0, 0.001))["status"] == "reproduced"
    assert cl.decide(*pair(2.0, 0.001))["status"] == "differs"
    both = (dc.exact(0.5, lo=0.0, hi=1.0, region="a"), dc.exact(0.5, lo=0.4, hi=3.0, region="b"))
    assert cl.decide(*both)["side"] in ("both pass", "too coarse")


# --------------------------------------------------------------------------
# the ledger
# --------------------------------------------------------------------------

def _ledger(scale="quick", expect="differs", value=3.0):
    led = cl.Ledger("05_depth_scaling", scale)
    led.claim("a", item="fig2", kind="paper", paper="p", ours="o",
              test=dc.equivalence(1.0, 0.1, 1.0, 1.0, replicates=10, origin=ORIGIN),
              alternative="3", alternative_test=dc.equivalence(1.0, 0.1, 3.0, 1.0, replicates=10,
                                                               origin=ORIGIN),
              expect="reproduced", evidence="sec-a", value=1.0, se=0.1)
    led.claim("b", item="thm5.3-correction", kind="paper", paper="p", ours="o",
              test=dc.equivalence(value, 0.1, -3.0, 3.0, replicates=10, origin=ORIGIN),
              alternative="+3",
              alternative_test=dc.equivalence(value, 0.1, 3.0, 3.0, replicates=10, origin=ORIGIN),
              expect=expect, evidence="sec-b")
    return led


def test_status_from_the_claim_and_its_alternative():
    led = _ledger()
    assert led["a"].status == "reproduced" and led["a"].alternative_status == "differs"
    assert led["b"].status == "differs" and led["b"].alternative_status == "reproduced"
    near_mid = _ledger(value=0.1)["b"]  # interval across the shared boundary 0
    assert near_mid.status == "inconclusive" and near_mid.side == "straddles"
    d = led.as_dict()["claims"][1]
    assert d["alternative"] == "+3" and d["alternative_status"] == "reproduced"
    assert d["kind"] == "paper" and d["alternative_test"]["test"] == "equivalence"
    assert d["resolution"] == pytest.approx(3.0 + 0.1 * student_t.ppf(0.975, 9))
    assert d["distance"] == pytest.approx(6.0)
    json.dumps(led.as_dict(), allow_nan=False)  # infinite bounds are encoded


def test_a_long_decision_lists_its_decisive_entries_in_the_ledger():
    """A decision over many entries keeps, in its ledger record, the LEDGER_ENTRIES entries
    nearest their region's boundary or outside it (the one that fails first), with their
    indices and the count; a short one lists every entry in order."""
    n = 5000
    value = np.linspace(-0.5, 0.5, n)
    value[1234] = 3.0  # the one entry outside [-1, 1]
    d = dc.exact(value, lo=-1.0, hi=1.0, region="in [-1, 1]")
    assert d.holds is False
    rec = d.as_dict()
    k = dc.LEDGER_ENTRIES
    assert rec["entries"] == n and len(rec["listed"]) == k and rec["listed"][0] == 1234
    assert all(rec[f][0] == want for f, want in (("value", 3.0), ("lo", -1.0), ("hi", 1.0)))
    # then the entries nearest the bounds: the ends of the linspace, |value| = 0.5
    assert sorted(rec["listed"][1:]) == sorted([*range(k // 2), *range(n - k // 2 + 1, n)])
    assert rec["value"] == [float(value[i]) for i in rec["listed"]]
    assert len(json.dumps(rec)) < 10_000  # not the 5000 entries
    short = dc.exact(value[:10], lo=-1.0, hi=1.0, region="in [-1, 1]").as_dict()
    assert short["entries"] == 10 and short["listed"] is None
    assert short["value"] == [float(v) for v in value[:10]] and short["hi"] == [1.0] * 10


def test_ledger_rejects_bad_claims():
    led = _ledger()
    t0 = dc.exact(0.0, hi=1.0, region="<= 1")
    ok = dict(paper="", ours="", test=t0, alternative="x",
              alternative_test=dc.exact(0.0, lo=2.0, region=">= 2"), expect="reproduced",
              evidence="x")
    with pytest.raises(ValueError, match="stated twice"):
        led.claim("a", item="fig2", kind="paper", **ok)
    with pytest.raises(ValueError, match="unknown item"):
        led.claim("c", item="fig99", kind="paper", **ok)
    with pytest.raises(ValueError, match="kind"):
        led.claim("c", item="fig2", kind="guess", **ok)
    with pytest.raises(ValueError, match="expect"):
        led.claim("d", item="fig2", kind="paper", **dict(ok, expect="not yet"))
    with pytest.raises(ValueError, match="expect"):
        led.claim("d", item="fig2", kind="paper", **dict(ok, expect="undecided"))
    with pytest.raises(ValueError, match="expect"):  # no status for this scale
        led.claim("d", item="fig2", kind="paper", **dict(ok, expect={"paper": "reproduced"}))
    with pytest.raises(TypeError):
        led.claim("e", item="fig2", kind="paper", **dict(ok, test=True))
    with pytest.raises(ValueError, match="same test"):
        led.claim("f", item="fig2", kind="paper", **dict(
            ok, alternative_test=dc.sign_test(0.0, 1.0, positive=True, replicates=5)))
    with pytest.raises(ValueError, match="same statistic"):  # a - b against b - a
        led.claim("f", item="fig2", kind="paper", **dict(
            ok, alternative_test=dc.exact(1.0, lo=2.0, region=">= 2")))
    with pytest.raises(ValueError, match="region is the claim's own"):
        led.claim("f", item="fig2", kind="paper", **dict(ok, alternative_test=t0))
    with pytest.raises(ValueError, match="name the alternative"):
        led.claim("g", item="fig2", kind="paper", **dict(ok, alternative=" "))
    assert led.claim("h", item="fig2", kind="identity", **ok) is None  # nothing to display
    assert led["h"].status == "reproduced"


def test_every_mismatch_fails_at_every_scale(tmp_path):
    for scale in ("quick", "paper"):
        with pytest.raises(cl.ClaimMismatch, match="'b'.*computed 'differs'.*asserts 'reproduced'"):
            _ledger(scale, expect="reproduced").finish(tmp_path)
        assert (tmp_path / "05_depth_scaling.json").is_file()  # written before raising
        _ledger(scale, expect="differs").finish(tmp_path)
        # an inconclusive claim binds at every scale too
        with pytest.raises(cl.ClaimMismatch, match="'b'.*inconclusive.*straddles"):
            _ledger(scale, expect="differs", value=0.1).finish(tmp_path)
        _ledger(scale, expect="inconclusive", value=0.1).finish(tmp_path)


def test_expected_status_per_scale_is_data():
    exp = {"quick": "inconclusive", "paper": "differs"}
    _ledger("quick", expect=exp, value=0.1)
    assert _ledger("paper", expect=exp)["b"].expect == "differs"


def test_build_id_without_make_is_the_executing_process(monkeypatch):
    monkeypatch.delenv("FGLN_BUILD_ID", raising=False)
    a, b = cl.build_id(), cl.build_id()
    assert a == b and a.startswith("process-")
    monkeypatch.setenv("FGLN_BUILD_ID", "b1")
    assert cl.build_id() == "b1"


def test_load_ledgers_refuses_missing_and_stale(tmp_path, monkeypatch):
    monkeypatch.delenv("FGLN_BUILD_ID", raising=False)
    _ledger().finish(tmp_path)
    (led,) = cl.load_ledgers(tmp_path, ["05_depth_scaling"], scale="quick")
    assert [c["id"] for c in led["claims"]] == ["a", "b"]
    with pytest.raises(cl.StaleLedger, match="no ledger"):
        cl.load_ledgers(tmp_path, ["05_depth_scaling", "06_alignment"], scale="quick")
    with pytest.raises(cl.StaleLedger, match="scale"):
        cl.load_ledgers(tmp_path, ["05_depth_scaling"], scale="paper")
    path = tmp_path / "05_depth_scaling.json"
    data = json.loads(path.read_text())
    data["code_version"] = "0" * 16
    path.write_text(json.dumps(data))
    with pytest.raises(cl.StaleLedger, match="code_version"):
        cl.load_ledgers(tmp_path, ["05_depth_scaling"], scale="quick")
    # a ledger of another seed is refused; the build that wrote it does not matter (the same
    # code, text, scale and seed give the same ledger)
    led = _ledger()
    led.seed = 7
    led.finish(tmp_path)
    cl.load_ledgers(tmp_path, ["05_depth_scaling"], scale="quick", seed=7)
    with pytest.raises(cl.StaleLedger, match="seed"):
        cl.load_ledgers(tmp_path, ["05_depth_scaling"], scale="quick")
    monkeypatch.setenv("FGLN_BUILD_ID", "another-build")
    cl.load_ledgers(tmp_path, ["05_depth_scaling"], scale="quick", seed=7)


def test_load_ledgers_refuses_an_edited_chapter(tmp_path, monkeypatch):
    monkeypatch.delenv("FGLN_BUILD_ID", raising=False)
    book = tmp_path / "book"
    book.mkdir()
    (book / "05_depth_scaling.md").write_text("v1")
    monkeypatch.setattr(cl, "_repo_book_dir", lambda: book)
    _ledger().finish(tmp_path)
    cl.load_ledgers(tmp_path, ["05_depth_scaling"], scale="quick", book_dir=book)
    (book / "05_depth_scaling.md").write_text("v2")
    with pytest.raises(cl.StaleLedger, match="source_sha"):
        cl.load_ledgers(tmp_path, ["05_depth_scaling"], scale="quick", book_dir=book)


def test_item_rows_cover_every_item_once_or_per_claim():
    led = _ledger().as_dict()
    rows = cl.item_rows([led])
    keys = [r["item"] for r in rows]
    assert set(keys) == set(PAPER_ITEMS)
    assert keys.count("fig2") == 1 and keys.count("fig1") == 1
    by = {r["item"]: r for r in rows}
    assert by["fig1"]["status"] == "not yet" and by["fig1"]["reason"] == ""
    assert by["def4.1"]["status"] == "not checked"
    assert by["def4.1"]["reason"] == NOT_CHECKED["def4.1"]
    assert by["fig2"]["status"] == "reproduced" and by["thm5.3-correction"]["status"] == "differs"
    assert by["thm5.3-correction"]["alternative_status"] == "reproduced"
    assert by["fig2"]["margin"] == 1.0 and by["fig2"]["quantile"] == "t(9) 97.5%"
    led["claims"][0]["item"] = "nonsense"
    with pytest.raises(ValueError, match="unknown items"):
        cl.item_rows([led])


def test_seed_check_compares_claim_by_claim(tmp_path, capsys):
    from fgln.book import seed_check as sc

    for name, value in (("a", 3.0), ("b", 3.0), ("c", 0.1)):
        _ledger("paper", expect="inconclusive" if value == 0.1 else "differs",
                value=value).write(tmp_path / name)
    out = tmp_path / "seeds.json"
    assert sc.main([str(tmp_path / "a"), str(tmp_path / "b"), "--seeds", "0", "1000",
                    "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["claims"] == 2 and data["same"] == 2 and data["seeds"] == [0, 1000]
    # claim b decided at one seed, inconclusive at the other: a moved decided status
    assert sc.main([str(tmp_path / "a"), str(tmp_path / "c"), "--seeds", "0", "1"]) == 1
    assert "b: differs -> inconclusive (straddles)" in capsys.readouterr().out
    with pytest.raises(FileNotFoundError):
        sc.read_ledgers(tmp_path / "nothing")
    _ledger("quick").write(tmp_path / "q")
    with pytest.raises(ValueError, match="scales"):
        sc.compare_statuses(sc.read_ledgers(tmp_path / "a"), sc.read_ledgers(tmp_path / "q"))


# --------------------------------------------------------------------------
# every item of the paper: claimed by a chapter, or the reason why not
# --------------------------------------------------------------------------

def _literal_column(node: ast.AST, index: int | None) -> list:
    """The strings a ``for`` target takes over a literal sequence (of tuples, when ``index``
    picks one element of each); None where an element is not a string literal."""
    if not isinstance(node, (ast.Tuple, ast.List)):
        return [None]
    out = []
    for elt in node.elts:
        if index is not None:
            elt = elt.elts[index] if isinstance(elt, (ast.Tuple, ast.List)) else None
        out.append(elt.value if isinstance(elt, ast.Constant) and isinstance(elt.value, str)
                   else None)
    return out


def _claimed_items(code: str) -> tuple[set[str], list[str]]:
    """The item keys a chapter's code names in ``item=`` of a ``.claim(...)`` call or of a
    ``dict(...)`` of arguments shared by claims: a string literal, or a loop variable bound
    by a ``for`` over a literal sequence (of tuples). Returns the keys and the ``item=``
    values that cannot be read this way (so that the reading never misses one silently)."""
    tree = ast.parse(code)
    loops: dict[str, list] = {}
    for node in ast.walk(tree):
        if isinstance(node, (ast.For, ast.comprehension)):
            if isinstance(node.target, ast.Name):
                loops.setdefault(node.target.id, []).extend(_literal_column(node.iter, None))
            elif isinstance(node.target, ast.Tuple):
                for i, t in enumerate(node.target.elts):
                    if isinstance(t, ast.Name):
                        loops.setdefault(t.id, []).extend(_literal_column(node.iter, i))
    keys, unread = set(), []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        f = node.func
        if not ((isinstance(f, ast.Attribute) and f.attr == "claim")
                or (isinstance(f, ast.Name) and f.id == "dict")):
            continue
        for kw in node.keywords:
            if kw.arg != "item":
                continue
            v = kw.value
            if isinstance(v, ast.Constant) and isinstance(v.value, str):
                keys.add(v.value)
            elif isinstance(v, ast.Name) and loops.get(v.id) and None not in loops[v.id]:
                keys.update(loops[v.id])
            else:
                unread.append(ast.unparse(v))
    return keys, unread


def _chapters_claimed_items() -> dict[str, set[str]]:
    import jupytext

    out, unread = {}, []
    for path in sorted((REPO_ROOT / "book").glob("*.md")):
        if not path.read_text(encoding="utf-8").startswith("---"):
            continue
        nb = jupytext.read(path)
        code = "\n".join("\n".join("" if line.lstrip().startswith(("%", "!")) else line
                                     for line in c.source.split("\n"))
                          for c in nb.cells if c.cell_type == "code")
        keys, bad = _claimed_items(code)
        out[path.stem] = keys
        unread += [f"{path.name}: item={b}" for b in bad]
    assert not unread, f"item keys the static reading cannot resolve: {unread}"
    return out


def test_static_reading_of_claimed_items():
    code = """
ledger.claim("a", item="fig2", kind="paper")
common = dict(item="fig9", kind="paper")
for key, item, x in (("k", "fig11", 1), ("l", "fig12", 2)):
    ledger.claim(key, item=item)
for tag in ("p1", "p05"):
    ledger.claim(f"c-{tag}", item=f"cor{tag}")
unrelated(item="nothing")
"""
    keys, unread = _claimed_items(code)
    assert keys == {"fig2", "fig9", "fig11", "fig12"}
    assert unread == ["f'cor{tag}'"]


def test_every_paper_item_is_claimed_or_says_why_not():
    """Every key of PAPER_ITEMS is claimed in some chapter's source or has a reason in
    NOT_CHECKED; NOT_CHECKED names only items of the paper that no chapter claims."""
    claimed = set().union(*_chapters_claimed_items().values())
    assert claimed - set(PAPER_ITEMS) - set(BOOK_ITEMS) == set(), "claims of unknown items"
    neither = [k for k in PAPER_ITEMS if k not in claimed and not NOT_CHECKED.get(k, "").strip()]
    assert not neither, f"items with neither a claim nor a reason in NOT_CHECKED: {neither}"
    assert set(NOT_CHECKED) - set(PAPER_ITEMS) == set(), "NOT_CHECKED names unknown items"
    both = sorted(set(NOT_CHECKED) & claimed)
    assert not both, f"claimed items still in NOT_CHECKED: {both}"


def _math_problems(text: str) -> list[str]:
    """Unbalanced ``$`` or braces in the math of a MyST string (what MathJax would refuse)."""
    parts = re.split(r"(?<!\\)\$", text)
    if len(parts) % 2 == 0:
        return [f"odd number of $: {text}"]
    problems = []
    for math in parts[1::2]:
        depth = 0
        for m in re.finditer(r"\\.|[{}]", math):
            depth += {"{": 1, "}": -1}.get(m.group(), 0)
            if depth < 0:
                break
        if depth or not math.strip():
            problems.append(f"unbalanced braces or empty math: ${math}$")
        if "|" in math and "\\|" not in math and math.count("|") % 2:
            problems.append(f"odd number of | in ${math}$")
    return problems


def test_paper_items_are_shown_and_their_math_parses():
    """Each item is a figure or a result (the reproduction page has a table for each), labels
    are unique, and the math of every statement and reason is balanced."""
    assert {kind for kind, _, _ in PAPER_ITEMS.values()} <= {"figure", "result"}
    labels = [label for _, label, _ in PAPER_ITEMS.values()]
    assert len(labels) == len(set(labels))
    texts = [s for _, _, s in PAPER_ITEMS.values()] + list(NOT_CHECKED.values())
    assert [p for t in texts for p in _math_problems(t)] == []
    assert _math_problems(r"$\frac{a}{b$") and _math_problems("$x$ and $y")


def test_reproduction_tables_show_the_reason_of_an_item_not_checked():
    rows = cl.item_rows([_ledger().as_dict()])
    results = claims_table(rows, {}, claim_kind="paper", item_kind="result")
    line = next(x for x in results.splitlines() if x.startswith("| Definition 4.1 |"))
    assert f"| not checked: {NOT_CHECKED['def4.1']} |" in line
    assert PAPER_ITEMS["def4.1"][2] in line
    figures = claims_table(rows, {}, claim_kind="paper", item_kind="figure")
    assert "| Figure 1 | not yet |" in figures  # no claim and no reason
    assert "not checked" not in figures
    head, paper_row = summary_table(rows).splitlines()[0], summary_table(rows).splitlines()[2]
    cells = [c.strip() for c in head.split("|")[2:-1]]
    counts = dict(zip(cells, (c.strip() for c in paper_row.split("|")[2:-1])))
    assert counts["not checked"] == str(len(NOT_CHECKED))


def test_conclusion_table_renders_and_refuses_an_unsupported_conclusion():
    from fgln.book.ledger_report import ConclusionUnsupported, conclusion_table

    led = _ledger().as_dict()  # a: reproduced, b: differs
    titles = {"05_depth_scaling": "chapter 5"}
    table = conclusion_table([led], {"a": "reproduced", "05_depth_scaling:b": "differs"}, titles)
    lines = table.splitlines()
    assert len(lines) == 4 and "`a`" in lines[2] and "needs reproduced: yes" in lines[2]
    assert "{ref}`chapter 5 <sec-b>`" in lines[3] and "needs differs: yes" in lines[3]
    assert "context" in conclusion_table([led], {"b": None}, titles)
    with pytest.raises(ConclusionUnsupported, match=r"b \(05_depth_scaling\): differs"):
        conclusion_table([led], {"a": "reproduced", "b": "reproduced"}, titles)
    with pytest.raises(KeyError):
        conclusion_table([led], {"renamed": "reproduced"}, titles)
    with pytest.raises(KeyError):  # an id in two ledgers must be qualified
        conclusion_table([led, dict(led, chapter="06_alignment")], {"a": "reproduced"}, titles)
    with pytest.raises(ValueError):
        conclusion_table([led], {"a": "inconclusive"}, titles)
    # inconclusive where the chapter itself asserts it (too few replicates at that scale)
    quick = _ledger(value=0.1, expect="inconclusive").as_dict()
    assert "not decided at these sizes" in conclusion_table([quick], {"b": "differs"}, titles)


def test_the_book_s_notebooks_split_into_ledger_writers_and_readers():
    from fgln.book.execute import book_pages

    writers, readers = book_pages(REPO_ROOT)
    assert readers == ["intro", "discussion", "reproduction"]
    assert "01_introduction" in writers and "appendix_c" in writers
    assert "execution" not in writers + readers  # a Markdown page: nothing to execute


def test_seed_report_says_when_the_comparison_predates_the_code(tmp_path):
    from fgln.book.ledger_report import seed_report

    path = tmp_path / "seeds.json"
    path.write_text(json.dumps({"scale": "paper", "claims": 3, "same": 3, "decided_same": 2,
                                "moved": [], "missing": [], "seeds": [0, 1000],
                                "code_version": ["aaaa"], "date": "2026-01-01"}))
    same = seed_report(path, code="aaaa")
    assert "No status moved" in same and "code version" not in same
    other = seed_report(path, code="bbbb")
    assert "`aaaa`" in other and "`bbbb`" in other and "does not cover" in other
    assert "No comparison" in seed_report(tmp_path / "none.json", code="bbbb")
