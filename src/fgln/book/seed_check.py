"""Are the verdicts stable under the seed? Claim-by-claim comparison of two builds' ledgers.

``make seeds`` builds the book twice at one scale, with two disjoint base seeds (the
chapters read ``FGLN_SEED``), each into its own ledger folder, then runs::

    python -m fgln.book.seed_check LEDGERS_A LEDGERS_B --seeds 0 1000 --out book/_data/seeds.json

which prints one line per claim whose status moved, writes the comparison (seeds, scale,
code version, counts, the moved claims) to ``--out`` for the reproduction page, and exits 1
when a claim that is decided (reproduced or differs) at one seed has another status at the
other: a verdict that depends on the seed has a resolution coarser than its margin.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import sys
from pathlib import Path
from typing import Sequence

from ..base.atomic import atomic_write

__all__ = ["read_ledgers", "compare_statuses", "main"]

DECIDED = ("reproduced", "differs")


def read_ledgers(ledger_dir: str | Path) -> dict[str, dict]:
    """Every ``*.json`` ledger of a folder, by chapter.

    Parameters
    ----------
    ledger_dir : str or pathlib.Path
        Folder written by the chapters (``FGLN_LEDGER_DIR``).

    Returns
    -------
    ledgers : dict of str to dict
        Chapter name to ledger.

    Raises
    ------
    FileNotFoundError
        If the folder holds no ledger.
    """
    paths = sorted(Path(ledger_dir).glob("*.json"))
    if not paths:
        raise FileNotFoundError(f"no claims ledger in {ledger_dir}")
    return {p.stem: json.loads(p.read_text(encoding="utf-8")) for p in paths}


def _status(c: dict) -> str:
    return c["status"] + (f" ({c['side']})" if c.get("side") else "")


def compare_statuses(a: dict[str, dict], b: dict[str, dict]) -> dict:
    """Compare the claims of two sets of ledgers, claim by claim.

    Parameters
    ----------
    a, b : dict of str to dict
        Ledgers by chapter (:func:`read_ledgers`), same chapters and scale expected.

    Returns
    -------
    comparison : dict
        ``scale``, ``claims`` (number compared), ``same`` (same status), ``decided_same``
        (decided at both seeds with the same status), ``moved`` (list of dicts: chapter, id,
        status at each seed, ``decided`` whether it was decided at either), ``missing``
        (claims present at one seed only).

    Raises
    ------
    ValueError
        If the two sets are at different scales.
    """
    scales = {led["scale"] for led in (*a.values(), *b.values())}
    if len(scales) != 1:
        raise ValueError(f"ledgers at different scales: {sorted(scales)}")
    moved, missing, same, decided_same, total = [], [], 0, 0, 0
    for chapter in sorted(set(a) | set(b)):
        ca = {c["id"]: c for c in a.get(chapter, {}).get("claims", [])}
        cb = {c["id"]: c for c in b.get(chapter, {}).get("claims", [])}
        for cid in sorted(set(ca) ^ set(cb)):
            missing.append(f"{chapter}/{cid}")
        for cid in [c for c in ca if c in cb]:
            total += 1
            sa, sb = ca[cid]["status"], cb[cid]["status"]
            if sa == sb:
                same += 1
                decided_same += sa in DECIDED
            else:
                moved.append(dict(chapter=chapter, id=cid, a=_status(ca[cid]), b=_status(cb[cid]),
                                  decided=sa in DECIDED or sb in DECIDED))
    return dict(scale=scales.pop(), claims=total, same=same, decided_same=decided_same,
                moved=moved, missing=missing)


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: compare two ledger folders, write the comparison, exit 1 on a flip.

    Parameters
    ----------
    argv : sequence of str or None
        Arguments (default ``sys.argv[1:]``).

    Returns
    -------
    code : int
        0 when every decided status is the same at both seeds, 1 otherwise.
    """
    ap = argparse.ArgumentParser(prog="python -m fgln.book.seed_check", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ledgers_a")
    ap.add_argument("ledgers_b")
    ap.add_argument("--seeds", nargs=2, type=int, required=True, metavar=("SEED_A", "SEED_B"))
    ap.add_argument("--out", help="JSON file for the reproduction page")
    args = ap.parse_args(argv)
    a, b = read_ledgers(args.ledgers_a), read_ledgers(args.ledgers_b)
    cmp = compare_statuses(a, b)
    codes = {led.get("code_version") for led in (*a.values(), *b.values())}
    cmp.update(seeds=list(args.seeds), code_version=sorted(codes),
               date=_dt.date.today().isoformat())
    print(f"{cmp['scale']} scale, seeds {args.seeds[0]} and {args.seeds[1]}: {cmp['same']} of "
          f"{cmp['claims']} statuses the same ({cmp['decided_same']} decided at both)")
    for m in cmp["moved"]:
        print(f"  {m['chapter']}/{m['id']}: {m['a']} -> {m['b']}"
              + ("  <-- a decided status moved" if m["decided"] else ""))
    for m in cmp["missing"]:
        print(f"  {m}: stated at one seed only")
    if args.out:
        text = json.dumps(cmp, indent=1) + "\n"
        atomic_write(Path(args.out), lambda fh: fh.write(text), "w")
    return 1 if any(m["decided"] for m in cmp["moved"]) or cmp["missing"] else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
