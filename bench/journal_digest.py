"""Digest of a backtest's journal, table by table, to prove a speed change left results unchanged.

Runs CONFIG (default: the flagship) over a window with :func:`trimtab.engine.backtest.run_backtest`
and prints one SHA-256 per journal table (``metrics``, ``ledger``, ``fills``, ``plans``,
``instructions``, ``series``, ``plan_hedge``, ``analyses``, ``quarantine``), each over every row
in primary-key order with every column, floats as their exact ``repr`` (so a last-bit difference
changes the digest), and one of the summary (all but ``run_dir``). ``--save FILE`` writes them as JSON; ``--check FILE`` compares with a saved
file and exits 1 naming the tables that differ (and the first differing row of each).

    .venv/bin/python bench/journal_digest.py --save /tmp/before.json            # at the old commit
    .venv/bin/python bench/journal_digest.py --check /tmp/before.json           # after the change
    .venv/bin/python bench/journal_digest.py --config configs/usdt_lend_loop.yaml --start 2025-01-01 --end 2025-03-01 --save ...
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sqlite3
import sys
import tempfile
from pathlib import Path

from trimtab.config.load import load_strategy
from trimtab.engine.backtest import run_backtest

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"
TABLES = {"metrics": "tick", "ledger": "tick", "fills": "fill_id", "plans": "plan_id", "instructions": "rowid",
          "series": "tick", "plan_hedge": "plan_id", "analyses": "rowid", "quarantine": "rowid"}


def table_rows(db: Path) -> dict[str, list[str]]:
    """Every row of every table of :data:`TABLES` as text (columns sorted by name, floats by repr)."""
    con = sqlite3.connect(db)
    try:
        out = {}
        for table, key in TABLES.items():
            cur = con.execute(f"SELECT * FROM {table} ORDER BY {key}")
            names = [d[0] for d in cur.description]
            order = sorted(range(len(names)), key=names.__getitem__)
            out[table] = [repr([(names[k], r[k]) for k in order]) for r in cur.fetchall()]
        return out
    finally:
        con.close()


def digests(rows: dict[str, list[str]]) -> dict[str, str]:
    """``{table: sha256 hex of its rows}``."""
    return {t: hashlib.sha256("\n".join(r).encode()).hexdigest() for t, r in rows.items()}


def run(config: Path, start: str | None, end: str | None, writer: bool = False) -> tuple[dict[str, list[str]], dict]:
    """Backtest ``config`` into a temporary folder (``writer``: the journal written by a writer
    process, as ``trimtab run`` does); return its journal rows and summary."""
    with tempfile.TemporaryDirectory(prefix="trimtab-digest-") as tmp:
        res = run_backtest(load_strategy(config), start=start, end=end, out=tmp, run_id="digest", journal_writer=writer)
        return table_rows(Path(tmp) / "digest" / "journal.sqlite"), res.summary


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=FLAGSHIP)
    ap.add_argument("--start")
    ap.add_argument("--end")
    ap.add_argument("--save", type=Path, help="write the digests (and the rows, for --check's report) as JSON")
    ap.add_argument("--check", type=Path, help="compare with a file written by --save; exit 1 on any difference")
    ap.add_argument("--journal-writer", action="store_true", help="the journal written by a writer process (as `trimtab run`)")
    args = ap.parse_args(argv)
    rows, summary = run(args.config, args.start, args.end, args.journal_writer)
    got = digests(rows)
    got["final_equity"] = repr(summary["final_equity"])
    # the whole summary but its folder (stale mark hours, costs, hedge gap, ... as printed)
    got["summary"] = hashlib.sha256(json.dumps({k: v for k, v in summary.items() if k != "run_dir"}, sort_keys=True,
                                               default=repr).encode()).hexdigest()
    for t, h in got.items():
        print(f"{t:14s} {h}")
    if args.save:
        args.save.write_text(json.dumps({"digests": got, "rows": rows}))
    if args.check:
        try:
            saved = json.loads(args.check.read_text())
            want, want_rows = saved["digests"], saved["rows"]
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SystemExit(f"{args.check}: not a file written by --save ({e}); write one with --save") from None
        bad = [t for t in want if got.get(t) != want[t]]
        for t in bad:
            if t in rows and t in want_rows:
                first = next((k for k, (a, b) in enumerate(zip(rows[t], want_rows[t])) if a != b), min(len(rows[t]), len(want_rows[t])))
                print(f"DIFFERS {t}: {len(rows[t])} rows against {len(want_rows[t])}; first difference at row {first}:\n"
                      f"  now  {rows[t][first] if first < len(rows[t]) else None}\n  then {want_rows[t][first] if first < len(want_rows[t]) else None}")
            else:
                print(f"DIFFERS {t}")
        print("identical" if not bad else f"{len(bad)} table(s) differ")
        return 1 if bad else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
