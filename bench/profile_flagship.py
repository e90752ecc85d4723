"""cProfile of the flagship backtest (issue 14: "profile first", top lines before and after).

Backtests ``configs/usdt_eth_staking_hedged_leveraged.yaml`` over its default window
(2024-05-13 -> 2025-09-26, ~12k hourly ticks) into a temporary folder under ``cProfile`` and prints
the top lines (default 25; files shortened to ``trimtab/...`` or ``<dir>/<file>``) sorted by cumulative time, then by total (own) time; pstats columns:
``ncalls``, ``tottime`` / ``cumtime`` in seconds, ``percall`` in seconds. By default only
``run_backtest`` is profiled, with the config and the market data loaded before (as
``bench/backtest.py`` times it); ``--include-load`` profiles the loading too. cProfile's
per-call overhead inflates call-heavy code, so read shares and rankings, not absolute times
(``bench/backtest.py`` and ``bench/compare_hand.py`` give the un-instrumented times).

    .venv/bin/python bench/profile_flagship.py
    .venv/bin/python bench/profile_flagship.py --top 40 --save /tmp/flagship.prof   # for snakeviz etc.
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

from trimtab.config.load import load_strategy
from trimtab.data.feed import load_market_data
from trimtab.engine.backtest import run_backtest

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"


def _short(path: str) -> str:
    """A profile entry's file, shortened: ``trimtab/engine/core.py`` for the package, ``json/encoder.py``
    for the standard library and site-packages, unchanged for built-ins."""
    p = Path(path)
    parts = p.parts
    if "trimtab" in parts:
        return "/".join(parts[len(parts) - 1 - parts[::-1].index("trimtab"):])
    return "/".join(parts[-2:]) if len(parts) > 1 else path


def _shorten(stats: pstats.Stats) -> pstats.Stats:
    """``stats`` with files shortened by :func:`_short` (like ``strip_dirs``, which leaves
    same-named modules, e.g. several ``core.py``, indistinguishable)."""
    key = lambda f: (_short(f[0]), f[1], f[2])  # noqa: E731
    new = {}
    for func, (cc, nc, tt, ct, callers) in stats.stats.items():
        new[key(func)] = (cc, nc, tt, ct, {key(c): v for c, v in callers.items()})
    stats.stats = new
    stats.fcn_list = None
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=FLAGSHIP, help="strategy config (default: the flagship)")
    ap.add_argument("--top", type=int, default=25, help="lines per listing (default 25)")
    ap.add_argument("--include-load", action="store_true", help="profile config and data loading too")
    ap.add_argument("--save", type=Path, help="also write the raw profile (pstats format) here")
    a = ap.parse_args(argv)

    prof = cProfile.Profile()
    if a.include_load:
        prof.enable()
    strategy = load_strategy(a.config.resolve())
    data = load_market_data()
    with tempfile.TemporaryDirectory(prefix="trimtab-profile-") as tmp:
        prof.enable()
        t = time.perf_counter()
        result = run_backtest(strategy, out=tmp, run_id="profiled", data=data)
        wall = time.perf_counter() - t
        prof.disable()
    ticks = len(result.equity)
    print(f"profiled {a.config.name}: {ticks:,} ticks, {wall:.2f} s under cProfile "
          f"({wall / ticks * 1e6:,.0f} us/tick){' incl. loading' if a.include_load else ''}")
    if a.save:
        prof.dump_stats(a.save)
    for key in ("cumulative", "tottime"):
        buf = io.StringIO()
        _shorten(pstats.Stats(prof, stream=buf)).sort_stats(key).print_stats(a.top)
        text = buf.getvalue()
        body = text[text.index("   ncalls"):] if "   ncalls" in text else text
        print(f"\n== top {a.top} by {key} time")
        print(body.rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
