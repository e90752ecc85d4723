"""What vectorising the engine loop over quiet stretches would buy (issue 14: "where plain Python
cannot reach a target, vectorise what positions make constant between events").

Steps the flagship tick by tick and classifies each tick: *quiet* when no plan is in flight, the
machine takes no transition and the book changes at most by funding (funding is a fill, but one
whose amount is -size x mark x rate, computable for a whole stretch). Prints the number and
lengths of the quiet stretches, the engine loop's own mean per tick, and the measured cost of a
numpy prototype of the core per-tick arithmetic over one stretch of the mean length (equity of
every held key, on-chain and perp delta, Aave health and LTV, three perp accounts' margin ratio
and liquidation price, a three-factor attribution, three guards, the journal rows as tuples).
Figures only: nothing here asserts, and the prototype is an estimate, not an engine path.

    .venv/bin/python bench/quiet_stretches.py
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from trimtab.config.load import load_strategy
from trimtab.data.feed import load_market_data
from trimtab.engine.kernel import Engine
from trimtab.engine.window import resolve_window

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"
PERPS = ("binance:Perp:ETHUSDT", "bybit:Perp:ETHUSDT", "okx:Perp:ETHUSDT")
COLL, DEBT = "aave_v3:aToken:aweETH", "aave_v3:debtToken:debtWETH"


def stretches(quiet: list[bool]) -> list[int]:
    """Lengths of the runs of True in ``quiet``."""
    out, cur = [], 0
    for q in quiet:
        if q:
            cur += 1
        elif cur:
            out.append(cur)
            cur = 0
    return out + ([cur] if cur else [])


def numpy_stretch(e: Engine, cols: dict[str, np.ndarray], a: int, b: int) -> int:
    """The prototype: the flagship's core arithmetic for ticks [a, b) with the book as it stands
    (constant over a quiet stretch). Returns the number of journal rows built."""
    px, book, view = e.px, e.book, e.view
    bal, entry = book.bal, book.entry
    eth = cols[px.eth_field][a:b]
    rate = cols[px.assets["weETH"].eth_rate_field][a:b]
    idx_c, idx_d = cols[px.info[COLL].index_field][a:b], cols[px.info[DEBT].index_field][a:b]
    coll_amt, debt_amt = bal.get(COLL, 0.0) * idx_c, bal.get(DEBT, 0.0) * idx_d
    coll_usd, debt_usd = coll_amt * (rate * eth), debt_amt * eth
    hf, ltv = coll_usd * 0.95 / debt_usd, debt_usd / coll_usd
    equity = bal.get("wallet:BaseToken:USDT", 0.0) + coll_usd - debt_usd + bal.get("wallet:BaseToken:ETH", 0.0) * eth
    onchain = coll_amt * rate - debt_amt + bal.get("wallet:BaseToken:ETH", 0.0)
    perp, ratios = 0.0, []
    for k in PERPS:
        inf, q = px.info[k], bal.get(k, 0.0)
        fresh = np.asarray(view.fresh_flags(inf.mark_field, inf.stale_after_h)[a:b])
        mark = np.where(fresh, cols[inf.mark_field][a:b], eth)
        upnl = q * (mark - entry.get(k, 0.0))
        equity = equity + upnl
        margin = bal.get(f"{inf.venue}:Margin:USDT", 0.0) + upnl
        notional = abs(q) * mark
        ratios.append(margin / notional)
        lp = (margin - upnl + q * entry.get(k, 0.0)) / (abs(q) * 0.004 + abs(q))  # one bracket's formula
        perp = perp + q + 0.0 * lp
    net = onchain + perp
    drift = net / onchain
    mr_min = np.minimum(np.minimum(ratios[0], ratios[1]), ratios[2])
    q = bal.get(COLL, 0.0)
    parts = (q * (idx_c[1:] - idx_c[:-1]) * rate[:-1] * eth[:-1], q * (rate[1:] - rate[:-1]) * idx_c[1:] * eth[:-1],
             q * (eth[1:] - eth[:-1]) * idx_c[1:] * rate[1:])
    fire = (hf < 1.1) | (np.abs(drift) > 0.05) | (mr_min < 0.1)
    _first = int(np.argmax(fire)) if fire.any() else -1  # noqa: F841  (timed: finding the first firing tick is part of the work)
    rows = list(zip(hf.tolist(), ltv.tolist(), mr_min.tolist(), net.tolist(), drift.tolist(), equity.tolist(),
                    *(r.tolist() for r in ratios), *(p.tolist() for p in parts)))
    return len(rows)


def main() -> None:
    strategy = load_strategy(FLAGSHIP)
    data = load_market_data()
    start, end = resolve_window(strategy, data, None, None)
    with tempfile.TemporaryDirectory(prefix="trimtab-bench-quiet-") as tmp:
        e = Engine(strategy, data.slice(start, end), Path(tmp) / "run")
        quiet = []
        t0 = time.perf_counter()
        for i in range(e.view.n):
            v0, busy, t = e.book.version, e.executor.in_flight, e.transitions
            e.step(i)
            changed = e.book.version != v0 and not e.funding_due[i]
            quiet.append(not (busy or e.executor.in_flight or e.transitions != t or changed))
        loop = (time.perf_counter() - t0) / e.view.n
        runs = stretches(quiet)
        mean = sum(runs) / len(runs)
        cols = {f: np.asarray(c) for f, c in e.view.cols.items()}
        length = int(round(mean))
        a = e.view.n // 4
        n = 500
        t0 = time.perf_counter()
        for _ in range(n):
            numpy_stretch(e, cols, a, a + length)
        per = (time.perf_counter() - t0) / n
        e.journal.close()
    print(f"flagship: {len(quiet):,} ticks, {sum(quiet):,} quiet ({sum(quiet) / len(quiet):.0%}) in {len(runs)} stretches "
          f"(mean {mean:.0f}, median {sorted(runs)[len(runs) // 2]}, longest {max(runs)} ticks)")
    print(f"engine loop (this run, instrumented by a few attribute reads): {loop * 1e6:.1f} us/tick")
    print(f"numpy prototype over one stretch of {length} ticks: {per * 1e6:.0f} us = {per / length * 1e6:.2f} us/tick "
          f"(about a third of the metric columns; journal inserts and event ticks not included)")


if __name__ == "__main__":
    main()
