"""The figures that decide whether a strategy's result can be trusted (issue 13), for one run.

Usage:
    python bench/fidelity.py [CONFIG ...] [--run RUN_DIR ...] [--start ISO --end ISO]

With configs, each is backtested over its default window into a temporary folder; with
``--run``, an existing run directory is read. For each run it prints:

* APY, final equity and the P&L attribution (share class);
* trading fees and gas by route (venue, operation and the pair in the fill's note; share class);
* the worst health factor and the worst margin ratio (fractions; min over ticks);
* the largest unhedged notional (USD): ``|net_delta|`` (the strategy asset, units) times the
  asset's USD price from the wallet venue's ``usd_field`` (``venues/wallet.yaml``), over ticks
  with a plan in flight, and the hours that gap stayed above 5% of the on-chain leg; and the
  run's own per-plan record (summary ``hedge_gap``, journal table ``plan_hedge``).

Everything comes from the run's journal (``journal.sqlite``) and summary; nothing is recomputed.
"""
from __future__ import annotations

import argparse
import json
import math
import re
import sqlite3
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from trimtab.config.load import load_strategy  # noqa: E402
from trimtab.data.feed import load_market_data  # noqa: E402
from trimtab.engine.backtest import run_backtest  # noqa: E402
from trimtab.engine.journal import read_metrics  # noqa: E402


def _route(venue: str, operation: str, note: str | None) -> str:
    """``venue operation [pair]``: the pair is the ``A->B`` of a swap's note."""
    m = re.match(r"\s*([A-Za-z0-9.]+->[A-Za-z0-9.]+)", note or "")
    return f"{venue} {operation}" + (f" {m.group(1)}" if m else "")


def figures(run_dir: Path, data) -> dict:
    """The figures of one run directory (see the module docstring for units)."""
    summary = json.loads((run_dir / "summary.json").read_text())
    db = sqlite3.connect(f"file:{run_dir / 'journal.sqlite'}?mode=ro", uri=True)
    fees: dict[str, float] = defaultdict(float)
    for venue, op, cat, impact, note in db.execute("SELECT venue, operation, category, impact, note FROM fills "
                                                     "WHERE category IN ('trading_fees', 'gas')"):
        fees[f"{cat}: {_route(venue, op, note)}"] += impact or 0.0
    worst_hf = worst_mr = math.inf
    rows = read_metrics(db)
    meta = json.loads(db.execute("SELECT value FROM meta WHERE key='strategy'").fetchone()[0])
    strategy = load_strategy(meta["config"])
    asset = (strategy.venues["wallet"].assets or {}).get(strategy.config.asset)
    price_field = asset.usd_field if asset is not None else None
    times = None
    prices = None
    if price_field:
        sl = data.slice(rows[0].time, rows[-1].time) if rows else None
        if sl is not None:
            prices = sl.field(price_field)
            times = {t: i for i, t in enumerate(f"{x:%Y-%m-%dT%H:%MZ}" for x in sl.index)}
    gap_usd, gap_hours, gap_at = 0.0, 0, None
    for tick, time, _, m in rows:
        hf, mr = m.get("health_factor", math.inf), m.get("margin_ratio_min", math.inf)
        hf = hf if hf == hf else math.inf  # no value (NaN) counts as no risk, as before
        mr = mr if mr == mr else math.inf
        worst_hf, worst_mr = min(worst_hf, hf), min(worst_mr, mr)
        net, drift = m.get("net_delta"), m.get("delta_drift")
        if float(m.get("plan_in_flight", 0.0)) and prices is not None and time in times:
            usd = abs(float(net or 0.0)) * float(prices[times[time]])
            if usd > gap_usd:
                gap_usd, gap_at = usd, time
            if abs(float(drift or 0.0)) > 0.05:
                gap_hours += 1
    return {"run_dir": str(run_dir), "apy": summary["apy"], "final_equity": summary["final_equity"],
            "attribution": summary["attribution"], "fees_by_route": dict(sorted(fees.items(), key=lambda kv: kv[1])),
            "worst_health_factor": worst_hf, "worst_margin_ratio": worst_mr,
            "largest_unhedged_usd": gap_usd, "largest_unhedged_at": gap_at, "hours_unhedged_over_5pct_in_plans": gap_hours,
            "hedge_gap": summary.get("hedge_gap")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("configs", nargs="*", default=["configs/usdt_eth_staking_hedged_leveraged.yaml"])
    ap.add_argument("--run", action="append", default=[], help="an existing run directory (repeatable)")
    ap.add_argument("--start")
    ap.add_argument("--end")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    data = load_market_data()
    dirs = [Path(r) for r in a.run]
    with tempfile.TemporaryDirectory() as tmp:
        if not a.run:
            for c in a.configs:
                dirs.append(run_backtest(load_strategy(ROOT / c if not Path(c).is_absolute() else c),
                                         a.start, a.end, out=tmp, data=data).run_dir)
        out = [figures(d, data) for d in dirs]
    if a.json:
        print(json.dumps(out, indent=2, default=str))
        return
    for f in out:
        print(f"== {Path(f['run_dir']).name}")
        print(f"  apy {f['apy']:.4%}  final equity {f['final_equity']:,.2f}")
        print(f"  worst health factor {f['worst_health_factor']:.4f}  worst margin ratio {f['worst_margin_ratio']:.4f}")
        print(f"  largest unhedged notional in a plan {f['largest_unhedged_usd']:,.0f} USD at {f['largest_unhedged_at']}"
              f"; hours with |delta drift| > 5% in a plan: {f['hours_unhedged_over_5pct_in_plans']}")
        g = f.get("hedge_gap")
        if g:  # the run's own per-plan record (journal plan_hedge, summary hedge_gap)
            print(f"  journal per plan: largest unhedged {g['max_unhedged_usd']:,.0f} USD at {g['time']} (plan {g['plan_id']}); "
                  f"hours with |delta drift| > {g['drift_threshold']:.0%}: {g['unhedged_hours']} in all, at most {g['max_unhedged_hours']} in one plan")
        print("  fees and gas by route:")
        for k, v in ((k, v) for k, v in f["fees_by_route"].items() if abs(v) >= 0.005):
            print(f"    {v:>12,.2f}  {k}")
        print("  attribution:", ", ".join(f"{k} {v:,.2f}" for k, v in f["attribution"].items()))


if __name__ == "__main__":
    main()
