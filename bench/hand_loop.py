"""The floor for issue 14: the flagship's core arithmetic as a plain Python loop (no trimtab import).

``configs/usdt_eth_staking_hedged_leveraged.yaml`` over its default window (2024-05-13 ->
2025-09-26, one tick per UTC hour), reading ``data/series/*.parquet`` with pandas directly.
Per tick, in plain Python floats:

* Aave index accrual (``trimtab.data.accrual``'s convention: the last daily sample at or before
  the tick, accrued at the rate in force then): the liquidity index of the supplied weETH (linear)
  and the variable-borrow index of the borrowed WETH (the protocol's 3-term compounded form);
  balances = scaled balance x index;
* oracle valuation of collateral and debt (``oracle.weETH_USD``, ``oracle.WETH_USD``, daily as-of)
  and the health factor ``collateral x LT(eMode 0.95) / debt``;
* three perp marks (``perp.{binance,bybit,okx}.ETHUSDT.close``, bar close as-of), the short legs'
  unrealised P&L and margin ratio;
* funding at settlement hours (``funding.*.ETHUSDT.rate`` only at its own 00/08/16 tick):
  ``-qty x mark x rate`` per leg (a short receives a positive rate);
* delta drift ``(on-chain ETH delta - total short) / on-chain delta``; beyond 2% the shorts are
  re-sized to the on-chain delta with no costs (the loop need not plan or journal).

Entry at the first tick: half the capital buys ETH at the Bybit spot close, stakes to weETH at
``oracle.weETH_ETH`` and loops to LTV 0.85 (valued by the oracle); the other half is USDT margin
for shorts 0.4 / 0.3 / 0.3 of the on-chain ETH delta (renormalised over the legs that have a
mark: OKX's series starts 2024-08-01, so it joins at the first re-hedge after that; marks are
held through gaps). The numbers are not the engine's (no fees,
gas, rules or plans): only the amount of per-tick work is meant to be comparable.

Prints, in seconds: ``load`` (read the parquet files and align every series as-of onto the hourly
clock, numpy/pandas), ``loop`` (the per-tick Python loop), ``process`` (whole process from
interpreter start, imports included: ``/proc`` uptime minus the process start time, 10 ms resolution);
the tick count, loop microseconds per tick, and a checksum of the final figures (equity, health
factor, drift, funding), identical run to run.

    .venv/bin/python bench/hand_loop.py              # readable lines
    .venv/bin/python bench/hand_loop.py --json       # one JSON object (used by bench/compare_hand.py)
"""
from __future__ import annotations

import time

_T0_WALL = time.time()

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SERIES = ROOT / "data" / "series"
SECONDS_PER_YEAR = 365 * 24 * 3600
LEGS = (("binance", 0.4), ("bybit", 0.3), ("okx", 0.3))
CAPITAL, STAKE_ALLOC, TARGET_LTV, EMODE_LT, MAX_DRIFT = 100_000.0, 0.5, 0.85, 0.95, 0.02


def _process_age() -> float:
    """Seconds since this process started (Linux: /proc uptime minus the process's start time, 10 ms
    resolution; elsewhere: since this module's first line, which misses interpreter start-up)."""
    try:
        start_ticks = int(Path(f"/proc/{os.getpid()}/stat").read_text().rsplit(")", 1)[1].split()[19])
        uptime = float(Path("/proc/uptime").read_text().split()[0])
        return uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return time.time() - _T0_WALL


def _asof(name: str, cols: list[str], clock: np.ndarray, exact: bool = False) -> tuple[list, ...]:
    """Columns of series ``name`` on the hourly ``clock`` (epoch s): the latest row available at or
    before each tick (NaN before the first), or only rows available exactly at the tick (``exact``,
    for funding events). Also returns the chosen row's availability time (epoch s) as the last list."""
    df = pd.read_parquet(SERIES / f"{name}.parquet", columns=["avail", *cols])
    avail = df["avail"].dt.as_unit("s").astype("int64").to_numpy()
    pos = np.searchsorted(avail, clock, side="right") - 1
    ok = pos >= 0
    if exact:
        ok &= avail[np.maximum(pos, 0)] == clock
    out = []
    for c in cols:
        v = df[c].to_numpy(dtype=np.float64)[np.maximum(pos, 0)]
        out.append(np.where(ok, v, np.nan).tolist())
    out.append(np.where(ok, avail[np.maximum(pos, 0)], -1).tolist())
    return tuple(out)


def load(start: str, end: str) -> dict:
    """Every series the loop reads, as plain Python lists aligned on the hourly clock [start, end]."""
    clock = np.arange(np.datetime64(start, "s").astype(np.int64), np.datetime64(end, "s").astype(np.int64) + 1, 3600)
    d: dict = {"clock": clock.tolist()}
    d["c_idx"], d["c_rate"], d["c_t"] = _asof("aave.weETH", ["liquidity_index", "liquidity_rate"], clock)
    d["d_idx"], d["d_rate"], d["d_t"] = _asof("aave.WETH", ["variable_borrow_index", "variable_borrow_rate"], clock)
    d["o_weeth"], _ = _asof("oracle.weETH_USD", ["price"], clock)
    d["o_weth"], _ = _asof("oracle.WETH_USD", ["price"], clock)
    d["weeth_eth"], _ = _asof("oracle.weETH_ETH", ["price"], clock)
    d["spot"], _ = _asof("spot.bybit.ETHUSDT", ["close"], clock)
    for venue, _w in LEGS:
        d[f"mark_{venue}"], _ = _asof(f"perp.{venue}.ETHUSDT", ["close"], clock)
        d[f"fund_{venue}"], _ = _asof(f"funding.{venue}.ETHUSDT", ["rate"], clock, exact=True)
    return d


def _live(weights: list[float], marks: list[float]) -> list[float]:
    """Leg weights renormalised over the legs that have a mark (a NaN mark gets weight 0)."""
    w = [w if m == m else 0.0 for w, m in zip(weights, marks)]
    s = sum(w)
    return [x / s for x in w]


def loop(d: dict) -> dict:
    """The per-tick arithmetic (module docstring); returns the final figures."""
    clock = d["clock"]
    c_idx, c_rate, c_t = d["c_idx"], d["c_rate"], d["c_t"]
    d_idx, d_rate, d_t = d["d_idx"], d["d_rate"], d["d_t"]
    o_weeth, o_weth, weeth_eth, spot = d["o_weeth"], d["o_weth"], d["weeth_eth"], d["spot"]
    marks = [d[f"mark_{v}"] for v, _ in LEGS]
    funds = [d[f"fund_{v}"] for v, _ in LEGS]
    weights = [w for _, w in LEGS]
    nan = float("nan")

    # entry at tick 0: ETH -> weETH, loop to TARGET_LTV (oracle-valued), shorts sized to the delta
    eth = CAPITAL * STAKE_ALLOC / spot[0]
    weeth0 = eth / weeth_eth[0]
    collateral_usd = weeth0 * o_weeth[0] / (1 - TARGET_LTV)
    coll_scaled = collateral_usd / o_weeth[0] / c_idx[0]
    debt_scaled = collateral_usd * TARGET_LTV / o_weth[0] / d_idx[0]
    onchain0 = coll_scaled * c_idx[0] * weeth_eth[0] - debt_scaled * d_idx[0]
    last_mark = [m[0] for m in marks]  # NaN for a leg with no mark yet (OKX's series starts 2024-08-01)
    qty = [onchain0 * w for w in _live(weights, last_mark)]
    entry = [m if m == m else 0.0 for m in last_mark]
    cash = CAPITAL * (1 - STAKE_ALLOC)
    realised = 0.0
    funding_total = 0.0
    rehedges = 0
    min_hf = float("inf")
    min_mr = float("inf")
    max_drift = 0.0
    hf = drift = equity = mr = nan

    for i in range(len(clock)):
        t = clock[i]
        # Aave accrual from the last sample: linear liquidity index, compounded borrow index
        dt = t - c_t[i]
        ci = c_idx[i] * (1.0 + c_rate[i] * dt / SECONDS_PER_YEAR)
        dt = t - d_t[i]
        r = d_rate[i] / SECONDS_PER_YEAR
        n1 = dt - 1 if dt > 1 else 0
        n2 = dt - 2 if dt > 2 else 0
        di = d_idx[i] * (1.0 + r * dt + dt * n1 * r * r / 2.0 + dt * n1 * n2 * r * r * r / 6.0)
        coll = coll_scaled * ci
        debt = debt_scaled * di
        # oracle valuation and health factor
        coll_usd = coll * o_weeth[i]
        debt_usd = debt * o_weth[i]
        hf = coll_usd * EMODE_LT / debt_usd if debt_usd > 0 else float("inf")
        if hf < min_hf:
            min_hf = hf
        # perp marks, funding at settlement, unrealised P&L
        upnl = 0.0
        notional = 0.0
        for k in range(3):
            m = marks[k][i]
            if m == m:  # not NaN: as-of mark (held through gaps)
                last_mark[k] = m
            m = last_mark[k]
            f = funds[k][i]
            if f == f and qty[k]:
                pay = qty[k] * m * f  # short receives a positive rate
                cash += pay
                funding_total += pay
            if qty[k]:
                upnl += qty[k] * (entry[k] - m)
                notional += qty[k] * m
        acct = cash + realised + upnl
        mr = acct / notional if notional > 0 else float("inf")
        if mr < min_mr:
            min_mr = mr
        # delta drift of the on-chain leg against the shorts
        onchain = coll * weeth_eth[i] - debt
        short = qty[0] + qty[1] + qty[2]
        drift = (onchain - short) / onchain
        if abs(drift) > max_drift:
            max_drift = abs(drift)
        if abs(drift) > MAX_DRIFT:  # re-size the shorts (realise their P&L at the mark, no costs)
            realised += upnl
            w = _live(weights, last_mark)
            for k in range(3):
                qty[k] = onchain * w[k]
                entry[k] = last_mark[k] if w[k] else 0.0
            rehedges += 1
        eth_usd = spot[i] if spot[i] == spot[i] else last_mark[0]
        equity = (onchain * eth_usd) + acct

    return {"ticks": len(clock), "final_equity": equity, "health_factor": hf, "min_health_factor": min_hf,
            "margin_ratio": mr, "min_margin_ratio": min_mr, "delta_drift": drift, "max_abs_drift": max_drift,
            "funding_usd": funding_total, "rehedges": rehedges}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--start", default="2024-05-13T00:00", help="first tick, UTC (default: the flagship's default window)")
    ap.add_argument("--end", default="2025-09-26T00:00", help="last tick, UTC (inclusive)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args(argv)
    t = time.perf_counter()
    d = load(a.start, a.end)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    fig = loop(d)
    loop_s = time.perf_counter() - t
    process_s = _process_age()
    checksum = hashlib.sha256(json.dumps({k: round(v, 9) if isinstance(v, float) else v for k, v in fig.items()},
                                         sort_keys=True).encode()).hexdigest()[:16]
    out = {"load_s": load_s, "loop_s": loop_s, "process_s": process_s, "loop_us_per_tick": loop_s / fig["ticks"] * 1e6,
           "checksum": checksum, **fig}
    if a.json:
        print(json.dumps(out))
    else:
        print(f"hand loop: {fig['ticks']:,} hourly ticks {a.start} -> {a.end}")
        print(f"  load {load_s:.3f} s   loop {loop_s:.3f} s ({out['loop_us_per_tick']:.2f} us/tick)   whole process {process_s:.3f} s")
        print(f"  final equity {fig['final_equity']:,.2f}  HF {fig['health_factor']:.4f} (min {fig['min_health_factor']:.4f})  "
              f"margin ratio min {fig['min_margin_ratio']:.3f}  drift {fig['delta_drift']:+.4f} (max |{fig['max_abs_drift']:.4f}|)  "
              f"funding {fig['funding_usd']:,.2f}  rehedges {fig['rehedges']}")
        print(f"  checksum {checksum}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
