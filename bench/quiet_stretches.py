"""The engine loop with and without quiet stretches (issue 14: "vectorise what positions make
constant between events"; :mod:`trimtab.engine.stretch`).

Steps the flagship over its whole window with stretches (the default: the monitors' core figures
and attribution's market move computed as numpy arrays per set of positions) and without
(``Engine(stretches=False)``: every tick computed one by one), alternately, ``--runs`` times each,
and prints each loop's mean per tick (wall and CPU; construction and ``finish`` excluded), how many
ticks took the vectorised path, how many stretches were built and how long they were on average,
and whether the two runs' journals (metrics, ledger, fills, series) are identical row for row.
Figures only: nothing here asserts (``tests/unit/test_stretch.py`` does).

    .venv/bin/python bench/quiet_stretches.py [--runs 3]
"""
from __future__ import annotations

import argparse
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path

from trimtab.config.load import load_strategy
from trimtab.data.feed import load_market_data
from trimtab.engine.kernel import Engine
from trimtab.engine.window import resolve_window

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"


def loop(strategy, window, out: Path, stretches: bool) -> dict:
    """One run: the step loop's wall and CPU seconds, the engine's stretch figures, its journal."""
    e = Engine(strategy, window, out, stretches=stretches)
    w, c = time.perf_counter(), time.process_time()
    for i in range(e.view.n):
        e.step(i)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    st = e.stretches
    e.finish()
    db = sqlite3.connect(out / "journal.sqlite")
    try:
        rows = {t: db.execute(f"SELECT * FROM {t} ORDER BY rowid").fetchall() for t in ("metrics", "ledger", "fills", "series")}
    finally:
        db.close()
    return {"wall": wall, "cpu": cpu, "ticks": e.view.n, "counts": dict(st.counts) if st else None,
            "builds": dict(st.builds) if st else None, "rows": rows}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=3, help="runs of each, alternated (default 3)")
    args = ap.parse_args(argv)
    strategy = load_strategy(FLAGSHIP)
    data = load_market_data()
    start, end = resolve_window(strategy, data, None, None)
    window = data.slice(start, end)
    got: dict[bool, list[dict]] = {True: [], False: []}
    with tempfile.TemporaryDirectory(prefix="trimtab-bench-quiet-") as tmp:
        for k in range(args.runs):
            for on in (False, True):
                got[on].append(loop(strategy, window, Path(tmp) / f"{'on' if on else 'off'}{k}", on))
    ticks = got[True][0]["ticks"]
    for on in (False, True):
        walls = [r["wall"] / ticks * 1e6 for r in got[on]]
        cpus = [r["cpu"] / ticks * 1e6 for r in got[on]]
        print(f"{'with stretches   ' if on else 'without (per tick)'}  loop min {min(walls):6.1f} / median {statistics.median(walls):6.1f} "
              f"us/tick wall, min {min(cpus):6.1f} / median {statistics.median(cpus):6.1f} us/tick CPU ({args.runs} runs)")
    r = got[True][0]
    counts, builds = r["counts"], r["builds"]
    print(f"flagship: {ticks:,} ticks, {counts['vector']:,} from stretches ({counts['vector'] / ticks:.1%}), "
          f"{counts['per_tick']:,} per tick; {builds['monitor']} monitor stretches (mean {counts['vector'] / max(builds['monitor'], 1):.0f} ticks), "
          f"{builds['attribution']} attribution stretches")
    same = all(a["rows"] == b["rows"] for a in got[True] for b in got[False])
    print(f"journals (metrics, ledger, fills, series) identical with and without: {same}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
