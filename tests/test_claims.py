"""fgln.book.claims and fgln.book.decisions: the tests that decide a claim, the ledger,
staleness."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from fgln.book import claims as cl

NAN = float("nan")


def test_ztest_decides_by_standard_errors():
    assert cl.ztest(1.0, 0.1, 1.25, zmax=3).holds
    assert not cl.ztest(1.0, 0.1, 1.35, zmax=3).holds
    assert cl.ztest(1.0, 0.1, 1.35, zmax=3, floor=0.1).holds
    d = cl.ztest(1.0, 0.1, 1.35)
    assert d.status == "differs" and "|z| = 3.50" in d.detail
    assert cl.ztest(2.0, 0.0, 2.0).holds and not cl.ztest(2.0, 0.0, 2.1).holds
    with pytest.raises(ValueError):
        cl.ztest(1.0, -0.1, 1.0)


def test_closer_needs_standard_errors_from_the_midpoint():
    d = cl.closer(3.0, paper=-3.06, alternative=3.06, alternative_name="appendix")
    assert not d.holds and d.status == "differs" and "appendix" in d.rule
    assert cl.closer(-2.9, paper=-3.06, alternative=3.06).holds
    # 0.2 from the midpoint 0 with s.e. 0.1: z = 2 < 3 decides neither way
    assert not cl.closer(0.2, paper=1.0, alternative=-1.0, se=0.1).holds
    assert not cl.closer(0.2, paper=-1.0, alternative=1.0, se=0.1).holds
    assert cl.closer(0.4, paper=1.0, alternative=-1.0, se=0.1).holds
    with pytest.raises(ValueError):
        cl.closer(0.0, paper=1.0, alternative=1.0)


def test_sign_within_holds():
    assert cl.sign_test(0.5, 0.1, positive=True).holds
    assert not cl.sign_test(0.2, 0.1, positive=True).holds        # z = 2 < 3
    assert cl.sign_test(-0.5, 0.1, positive=False).holds
    assert cl.within(1.0 + 1e-12, 1.0, 1e-10).holds and not cl.within(1.1, 1.0, 0.05).holds
    assert cl.within(101.0, 100.0, 0.02, relative=True).holds
    # the whole 2 s.e. interval must lie inside the tolerance
    assert cl.within(1.03, 1.0, 0.05, se=0.005).holds
    assert not cl.within(1.03, 1.0, 0.05, se=0.02).holds
    assert cl.holds(0.3, 0.5, rule="r").status == "reproduced"
    assert cl.holds(0.7, 0.5, rule="r").status == "differs"
    assert cl.holds(0.7, 0.5, above=True, rule="r").holds


def test_nonfinite_statistics_cannot_decide():
    for d in (cl.ztest(NAN, 0.1, 1.0), cl.ztest(1.0, NAN, 1.0),
              cl.closer(NAN, paper=1, alternative=2),
              cl.sign_test(math.inf, 1.0, positive=True), cl.within(NAN, 0.0, 1.0),
              cl.holds(NAN, 1.0, rule="r"), cl.holds(1.0, NAN, rule="r"),
              cl.trend([1.0, 2.0, 3.0], [1.0, NAN, 2.0], increasing=True)):
        assert d.holds is None and "non-finite" in d.detail
        with pytest.raises(cl.NonFiniteStatistic):
            _ = d.status
    led = cl.Ledger("05_depth_scaling", "quick")
    with pytest.raises(cl.NonFiniteStatistic, match="'nan-claim'"):
        led.claim("nan-claim", item="fig2", kind="paper", paper="", ours="",
                  test=cl.holds(NAN, 1.0, rule="r"), alternative="x",
                  alternative_test=cl.holds(2.0, 1.0, rule="r"), expect="differs", evidence="x")


def test_trend_detects_slopes_and_noise():
    x = np.arange(10.0)
    assert cl.trend(x, 2 * x + 1, np.full(10, 0.1), increasing=True).holds
    assert not cl.trend(x, 2 * x + 1, np.full(10, 0.1), increasing=False).holds
    rng = np.random.default_rng(0)
    flat = rng.normal(size=10)
    assert not cl.trend(x, flat, np.ones(10), increasing=True).holds
    assert not cl.trend(x, flat, np.ones(10), increasing=False).holds
    y = -0.5 * x + rng.normal(scale=0.01, size=10)
    assert cl.trend(x, y, increasing=False).holds  # residual-based s.e.
    with pytest.raises(ValueError):
        cl.trend([1.0], [2.0], increasing=True)


def test_family_z_is_bonferroni():
    assert cl.family_z(1, 0.05) == pytest.approx(1.959964, abs=1e-5)
    assert cl.family_z(10, 0.01) > cl.family_z(1, 0.01)
    with pytest.raises(ValueError):
        cl.family_z(0)


def _ledger(scale="quick", expect="differs", value=3.0):
    led = cl.Ledger("05_depth_scaling", scale)
    led.claim("a", item="fig2", kind="paper", paper="p", ours="o", test=cl.ztest(1.0, 0.1, 1.0),
              alternative="1.5", alternative_test=cl.ztest(1.0, 0.1, 1.5),
              expect="reproduced", evidence="sec-a", value=1.0, se=0.1)
    led.claim("b", item="thm5.3-correction", kind="paper", paper="p", ours="o",
              test=cl.closer(value, paper=-3.0, alternative=3.0, se=0.1),
              alternative="+3",
              alternative_test=cl.closer(value, paper=3.0, alternative=-3.0, se=0.1),
              expect=expect, evidence="sec-b")
    return led


def test_status_from_the_claim_and_its_alternative():
    led = _ledger()
    assert led["a"].status == "reproduced" and led["a"].alternative_status == "differs"
    assert led["b"].status == "differs" and led["b"].alternative_status == "reproduced"
    near_mid = _ledger(value=0.1)["b"]  # within 3 s.e. of the midpoint: neither side
    assert near_mid.status == "undecided" and near_mid.alternative_status == "differs"
    d = led.as_dict()["claims"][1]
    assert d["alternative"] == "+3" and d["alternative_status"] == "reproduced"
    assert d["kind"] == "paper" and d["alternative_test"]["test"] == "closer"


def test_ledger_rejects_bad_claims():
    led = _ledger()
    ok = dict(paper="", ours="", test=cl.holds(0, 1, rule=""), alternative="x",
              alternative_test=cl.holds(2, 1, rule=""), expect="reproduced", evidence="x")
    with pytest.raises(ValueError, match="stated twice"):
        led.claim("a", item="fig2", kind="paper", **ok)
    with pytest.raises(ValueError, match="unknown item"):
        led.claim("c", item="fig99", kind="paper", **ok)
    with pytest.raises(ValueError, match="kind"):
        led.claim("c", item="fig2", kind="guess", **ok)
    with pytest.raises(ValueError, match="expect"):
        led.claim("d", item="fig2", kind="paper", **dict(ok, expect="not yet"))
    with pytest.raises(TypeError):
        led.claim("e", item="fig2", kind="paper", **dict(ok, test=True))
    with pytest.raises(ValueError, match="same test"):
        led.claim("f", item="fig2", kind="paper",
                  **dict(ok, alternative_test=cl.ztest(1.0, 0.1, 1.0)))
    with pytest.raises(ValueError, match="name the alternative"):
        led.claim("g", item="fig2", kind="paper", **dict(ok, alternative=" "))
    assert led.claim("h", item="fig2", kind="identity", **ok) is None  # nothing to display


def test_decided_mismatch_fails_at_every_scale(tmp_path):
    for scale in ("quick", "paper"):
        with pytest.raises(cl.ClaimMismatch, match="'b'.*computed 'differs'.*asserts 'reproduced'"):
            _ledger(scale, expect="reproduced").finish(tmp_path)
        assert (tmp_path / "05_depth_scaling.json").is_file()  # written before raising
        _ledger(scale, expect="differs").finish(tmp_path)


def test_undecided_binds_at_paper_scale_only(tmp_path, capsys):
    _ledger("quick", expect="differs", value=0.1).finish(tmp_path)
    assert "undecided" in capsys.readouterr().out
    with pytest.raises(cl.ClaimMismatch, match="'b'.*undecided"):
        _ledger("paper", expect="differs", value=0.1).finish(tmp_path)
    _ledger("paper", expect="undecided", value=0.1).finish(tmp_path)


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
    _ledger().finish(tmp_path)
    # a ledger of another build is refused whether or not make set the build id
    monkeypatch.setattr(cl, "build_id", lambda: "process-1-1")
    with pytest.raises(cl.StaleLedger, match="build_id"):
        cl.load_ledgers(tmp_path, ["05_depth_scaling"], scale="quick")
    monkeypatch.undo()
    monkeypatch.setenv("FGLN_BUILD_ID", "another-build")
    with pytest.raises(cl.StaleLedger, match="build_id"):
        cl.load_ledgers(tmp_path, ["05_depth_scaling"], scale="quick")


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
    assert set(keys) == set(cl.PAPER_ITEMS)
    assert keys.count("fig2") == 1 and keys.count("fig1") == 1
    by = {r["item"]: r for r in rows}
    assert by["fig1"]["status"] == "not yet"
    assert by["fig2"]["status"] == "reproduced" and by["thm5.3-correction"]["status"] == "differs"
    assert by["thm5.3-correction"]["alternative_status"] == "reproduced"
    led["claims"][0]["item"] = "nonsense"
    with pytest.raises(ValueError, match="unknown items"):
        cl.item_rows([led])
