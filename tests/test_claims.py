"""fgln.claims: the tests that decide a claim, the ledger, and its staleness checks."""

from __future__ import annotations

import json

import pytest

from fgln import claims as cl


def test_ztest_decides_by_standard_errors():
    assert cl.ztest(1.0, 0.1, 1.25, zmax=3).holds
    assert not cl.ztest(1.0, 0.1, 1.35, zmax=3).holds
    assert cl.ztest(1.0, 0.1, 1.35, zmax=3, floor=0.1).holds
    d = cl.ztest(1.0, 0.1, 1.35)
    assert d.status == "differs" and "|z| = 3.50" in d.detail
    assert cl.ztest(2.0, 0.0, 2.0).holds and not cl.ztest(2.0, 0.0, 2.1).holds
    with pytest.raises(ValueError):
        cl.ztest(float("nan"), 0.1, 1.0)
    with pytest.raises(ValueError):
        cl.ztest(1.0, -0.1, 1.0)


def test_closer_sign_within_holds():
    d = cl.closer(3.0, paper=-3.06, alternative=3.06, alternative_name="appendix")
    assert not d.holds and d.status == "differs" and "appendix" in d.rule
    assert cl.closer(-2.9, paper=-3.06, alternative=3.06).holds
    assert cl.sign_test(0.5, 0.1, positive=True).holds
    assert not cl.sign_test(0.2, 0.1, positive=True).holds        # z = 2 < 3
    assert cl.sign_test(-0.5, 0.1, positive=False).holds
    assert cl.within(1.0 + 1e-12, 1.0, 1e-10).holds and not cl.within(1.1, 1.0, 0.05).holds
    assert cl.within(101.0, 100.0, 0.02, relative=True).holds
    assert cl.holds(True, rule="r", detail="d").status == "reproduced"


def test_trend_detects_slopes_and_noise():
    import numpy as np

    x = np.arange(10.0)
    assert cl.trend(x, 2 * x + 1, np.full(10, 0.1), increasing=True).holds
    assert not cl.trend(x, 2 * x + 1, np.full(10, 0.1), increasing=False).holds
    rng = np.random.default_rng(0)
    flat = rng.normal(size=10)
    d = cl.trend(x, flat, np.ones(10), increasing=True)
    assert not d.holds  # no significant slope in pure noise of unit s.e.
    y = -0.5 * x + rng.normal(scale=0.01, size=10)
    assert cl.trend(x, y, increasing=False).holds  # residual-based s.e.
    with pytest.raises(ValueError):
        cl.trend([1.0], [2.0], increasing=True)


def _ledger(scale="quick", expect="reproduced"):
    led = cl.Ledger("05_depth_scaling", scale)
    led.claim("a", item="fig2", paper="p", ours="o", test=cl.ztest(1.0, 0.1, 1.0),
              expect="reproduced", evidence="sec-a", value=1.0, se=0.1)
    led.claim("b", item="thm5.3-correction", paper="p", ours="o",
              test=cl.closer(3.0, paper=-3.0, alternative=3.0), expect=expect, evidence="sec-b")
    return led


def test_ledger_rejects_bad_claims():
    led = _ledger()
    with pytest.raises(ValueError, match="stated twice"):
        led.claim("a", item="fig2", paper="", ours="", test=cl.holds(True, rule="", detail=""),
                  expect="reproduced", evidence="x")
    with pytest.raises(ValueError, match="unknown item"):
        led.claim("c", item="fig99", paper="", ours="", test=cl.holds(True, rule="", detail=""),
                  expect="reproduced", evidence="x")
    with pytest.raises(ValueError, match="expect"):
        led.claim("d", item="fig2", paper="", ours="", test=cl.holds(True, rule="", detail=""),
                  expect="not yet", evidence="x")
    with pytest.raises(TypeError):
        led.claim("e", item="fig2", paper="", ours="", test=True, expect="reproduced",
                  evidence="x")


def test_mismatch_fails_at_paper_scale_only(tmp_path, capsys):
    _ledger("quick", expect="reproduced").finish(tmp_path)  # reported, not fatal
    assert "prose asserts reproduced" in capsys.readouterr().out
    with pytest.raises(cl.ClaimMismatch, match="'b'.*computed 'differs'.*asserts 'reproduced'"):
        _ledger("paper", expect="reproduced").finish(tmp_path)
    assert (tmp_path / "05_depth_scaling.json").is_file()  # written before raising
    _ledger("paper", expect="differs").finish(tmp_path)


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


def test_item_rows_cover_every_item_once_or_per_claim(tmp_path):
    led = _ledger().as_dict()
    rows = cl.item_rows([led])
    keys = [r["item"] for r in rows]
    assert set(keys) == set(cl.PAPER_ITEMS)
    assert keys.count("fig2") == 1 and keys.count("fig1") == 1
    by = {r["item"]: r for r in rows}
    assert by["fig1"]["status"] == "not yet"
    assert by["fig2"]["status"] == "reproduced" and by["thm5.3-correction"]["status"] == "differs"
    led["claims"][0]["item"] = "nonsense"
    with pytest.raises(ValueError, match="unknown items"):
        cl.item_rows([led])
