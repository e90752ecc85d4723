"""The drift basket against the `bt` library on the same job, each as a whole process (issue 14).

The job is the bt parity test's (tests/integration/test_bt_parity.py) with the shipped
basket's parameters: ETH / BTC / USDT at 40 / 40 / 20 on the bundled hourly closes
(``spot.bybit.ETHUSDT.close``, ``spot.binance.BTCUSDT.close``, USDT at 1.0), 100,000 USD,
rebalanced when a weight drifts more than ``drift_threshold`` (0.15) from its target, over the
basket's whole window (2024-01-01T01:00Z .. 2025-09-26T00:00Z, the parity test's monthly
window). trimtab runs ``trimtab run configs/portfolio_drift.yaml --json`` (with its costs,
checks and journal); bt runs ``bench/drift_vs_bt.py --bt-job`` (this file: load the two
series, ``RunIfOutOfBounds`` + ``WeighSpecified`` + ``Rebalance``, zero commission, fractional
positions). Each side is a fresh subprocess (interpreter start, imports, data load, run), the
two alternating ``--repeat`` times; wall seconds and CPU seconds (user + system of the child)
are reported, median over the repeats, with the ratio bt / trimtab (above 1: trimtab is faster).
Figures only: nothing here asserts on time.

    python bench/drift_vs_bt.py               # readable lines
    python bench/drift_vs_bt.py --repeat 5 --json
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

from proc import timed  # bench/proc.py: one whole process, timed

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "portfolio_drift.yaml"
TRIMTAB = Path(sys.executable).with_name("trimtab")
WEIGHTS = {"ETH": 0.4, "BTC": 0.4, "USDT": 0.2}
FIELDS = {"ETH": "spot.bybit.ETHUSDT.close", "BTC": "spot.binance.BTCUSDT.close"}
START, END = "2024-01-01T01:00", "2025-09-26T00:00"
THRESHOLD = 0.15   # configs/portfolio_drift.yaml parameters.drift_threshold
CAPITAL = 100000.0


def bt_job() -> dict:
    """The bt side, in this process: prices as the parity test builds them, then bt's run."""
    import warnings

    warnings.filterwarnings("ignore")   # ffn asks pandas for an inferred frequency in a deprecated way
    import bt
    import pandas as pd

    from trimtab.data.feed import load_market_data

    series = sorted({f.rsplit(".", 1)[0] for f in FIELDS.values()})
    w = load_market_data(series=series).slice(START, END)
    prices = pd.DataFrame({k: w.field(f) for k, f in FIELDS.items()}, index=w.index.tz_localize(None))
    prices["USDT"] = 1.0
    s = bt.Strategy("s", [bt.algos.SelectAll(), bt.algos.WeighSpecified(**WEIGHTS), bt.algos.RunIfOutOfBounds(THRESHOLD),
                          bt.algos.Rebalance()])
    res = bt.run(bt.Backtest(s, prices, initial_capital=CAPITAL, integer_positions=False, commissions=lambda q, p: 0.0,
                             progress_bar=False))
    return {"final_equity": float(res.backtests["s"].strategy.values.iloc[-1]), "ticks": len(prices),
            "trades": int(len(res.get_transactions()))}


def bench(repeat: int = 3) -> dict:
    with tempfile.TemporaryDirectory(prefix="trimtab-drift-bench-") as tmp:
        trim_cmd = [str(TRIMTAB), "run", str(CONFIG), "--json", "--out", tmp]
        bt_cmd = [sys.executable, str(Path(__file__).resolve()), "--bt-job"]
        trim, btt = [], []
        trim_out = bt_out = None
        for _ in range(repeat):   # alternating, so both sides see the same machine load
            wall, cpu, out = timed(trim_cmd)
            trim.append((wall, cpu))
            trim_out = json.loads(out)
            wall, cpu, out = timed(bt_cmd)
            btt.append((wall, cpu))
            bt_out = json.loads(out)
    med = lambda xs, k: statistics.median(x[k] for x in xs)  # noqa: E731
    r = {"job": {"config": str(CONFIG.relative_to(ROOT)), "window": [START, END], "threshold": THRESHOLD,
                 "weights": WEIGHTS, "capital": CAPITAL},
         "repeat": repeat,
         "trimtab": {"wall_s": med(trim, 0), "cpu_s": med(trim, 1), "final_equity": trim_out["final_equity"],
                     "window": [trim_out["start"], trim_out["end"]]},
         "bt": {"wall_s": med(btt, 0), "cpu_s": med(btt, 1), **bt_out}}
    r["ratio_wall_bt_over_trimtab"] = r["bt"]["wall_s"] / r["trimtab"]["wall_s"]
    r["ratio_cpu_bt_over_trimtab"] = r["bt"]["cpu_s"] / r["trimtab"]["cpu_s"]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeat", type=int, default=3, help="alternating runs of each side (median reported)")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    ap.add_argument("--bt-job", action="store_true", help="run the bt side here and print its result (used by the bench)")
    a = ap.parse_args()
    if a.bt_job:
        print(json.dumps(bt_job()))
        return
    r = bench(a.repeat)
    if a.json:
        print(json.dumps(r, indent=2))
        return
    t, b = r["trimtab"], r["bt"]
    print(f"drift basket vs bt  (whole processes, median of {r['repeat']} alternating runs; target: bt / trimtab >= 3)")
    print(f"  trimtab run configs/portfolio_drift.yaml  wall {t['wall_s']:6.2f} s  cpu {t['cpu_s']:6.2f} s"
          f"  final equity {t['final_equity']:,.2f} (with costs)")
    print(f"  bt (RunIfOutOfBounds {THRESHOLD}, 40/40/20)    wall {b['wall_s']:6.2f} s  cpu {b['cpu_s']:6.2f} s"
          f"  final equity {b['final_equity']:,.2f} (no costs)")
    print(f"  ratio bt / trimtab: wall {r['ratio_wall_bt_over_trimtab']:.2f}x  cpu {r['ratio_cpu_bt_over_trimtab']:.2f}x")


if __name__ == "__main__":
    main()
