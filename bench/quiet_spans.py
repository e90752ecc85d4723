"""Benchmark the engine loop with and without quiet spans (trimtab.engine.quiet) on one config.

Runs ``Engine.run_until`` over the config's whole bundled window with the spans on (the default,
as ``trimtab run`` does) and off (``Engine(bulk=False)``: every tick through ``Engine.step``),
alternately, ``--runs`` times each, on data loaded once, and prints the loop's CPU time per tick
(``time.process_time``: less disturbed than wall time by other processes on the machine; engine
construction and ``finish`` excluded), the best of each, their ratio, and where the ticks went:
processed in spans, or stepped one by one and why. Figures only: nothing here asserts on time.

    python bench/quiet_spans.py [--config configs/X.yaml] [--runs 3]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from trimtab.config.load import load_strategy
from trimtab.data.feed import load_market_data
from trimtab.engine.kernel import Engine
from trimtab.engine.window import resolve_window

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"


def loop_seconds(strategy, window, bulk: bool) -> tuple[float, int, Engine]:
    """CPU seconds of one run_until over ``window`` (construction and finish excluded), its ticks
    and the engine (finished, so its journal is closed)."""
    with tempfile.TemporaryDirectory(prefix="trimtab-bench-spans-") as tmp:
        e = Engine(strategy, window, Path(tmp) / "run", bulk=bulk)
        t = time.process_time()
        e.run_until(e.view.n)
        took = time.process_time() - t
        e.finish()
    return took, e.view.n, e


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=FLAGSHIP)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    strategy = load_strategy(args.config)
    data = load_market_data()
    start, end = resolve_window(strategy, data, None, None)
    window = data.slice(start, end)
    best = {True: float("inf"), False: float("inf")}
    engine = None
    for _ in range(args.runs):
        for bulk in (True, False):
            took, n, e = loop_seconds(strategy, window, bulk)
            best[bulk] = min(best[bulk], took)
            if bulk:
                engine = e
    print(f"engine loop, {args.config.name}: {n:,} ticks, best of {args.runs} (CPU time, construction and finish excluded)")
    for bulk, label in ((False, "tick by tick"), (True, "quiet spans ")):
        print(f"  {label}  {best[bulk]:.3f} s   {best[bulk] / n * 1e6:6.1f} us per tick")
    print(f"  ratio         {best[True] / best[False]:.2f}")
    why = ", ".join(f"{k} {v:,}" for k, v in sorted(engine.quiet.why.items(), key=lambda x: -x[1]))
    print(f"  ticks         {engine.quiet.counts['bulk']:,} in spans; stepped one by one: {why}")


if __name__ == "__main__":
    main()
