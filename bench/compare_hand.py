"""The flagship engine run against the hand loop, as whole processes, measured alternately (issue 14).

Runs N times (default 5), alternating, each as a fresh subprocess timed by wall clock
(``time.perf_counter`` around ``subprocess.run``, seconds; interpreter start and imports included):

* ``trimtab run configs/usdt_eth_staking_hedged_leveraged.yaml --json --out <temp dir>``
  (its default window, 2024-05-13 -> 2025-09-26, ~12k hourly ticks), and
* ``bench/hand_loop.py --json`` (the same core arithmetic as a plain Python loop: the floor), and
* the same ``trimtab run`` over one day (:data:`STARTUP_WINDOW`, 25 ticks): the start-up the
  engine loop adds to (interpreter, imports, config, audit, data, output), so the split of the
  whole process shows which side a change has to come from.

Prints each one's min and median wall time and the ratio engine / hand loop (of the mins and of the
medians; the issue's target is <= 1.5x), the ratio within each alternating pair (an engine run over
the hand loop run right after it: the machine's state drifts less within a pair than over the whole
bench; their median and range), the hand loop's own load / loop split, and then runs
``bench/backtest.py --json --no-memory`` once (subprocess) for the engine loop's mean per tick
(run wall time / ticks, microseconds) and the decision latency p50 / p99 (microseconds).
Figures only: nothing asserts on time. The machine's other load shows up in every figure; the
alternation spreads it over both sides.

    .venv/bin/python bench/compare_hand.py            # N = 5
    .venv/bin/python bench/compare_hand.py -n 9 --json
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"
PY = Path(sys.executable)
TRIMTAB = PY.parent / "trimtab"
#: The one-day window of the start-up run (--start, --end): inside every shipped config's data.
STARTUP_WINDOW = ("2025-01-01", "2025-01-02")


def _timed(cmd: list[str]) -> tuple[float, str]:
    """Wall seconds of one whole-process run of ``cmd`` (from ROOT) and its stdout; raises on failure."""
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stderr[-2000:]}")
    return wall, p.stdout


def compare(n: int = 3, backtest: bool = True) -> dict:
    engine, hand, hand_runs, startup, final_equity = [], [], [], [], None
    with tempfile.TemporaryDirectory(prefix="trimtab-compare-") as tmp:
        for i in range(n):
            w, out = _timed([str(TRIMTAB), "run", str(FLAGSHIP), "--json", "--out", str(Path(tmp) / f"e{i}")])
            engine.append(w)
            final_equity = json.loads(out)["final_equity"]
            w, out = _timed([str(PY), str(ROOT / "bench" / "hand_loop.py"), "--json"])
            hand.append(w)
            hand_runs.append(json.loads(out))
            w, _ = _timed([str(TRIMTAB), "run", str(FLAGSHIP), "--json", "--out", str(Path(tmp) / f"s{i}"),
                           "--start", STARTUP_WINDOW[0], "--end", STARTUP_WINDOW[1]])
            startup.append(w)
    r = {"n": n,
         "engine_wall_s": {"min": min(engine), "median": statistics.median(engine), "all": engine},
         "hand_wall_s": {"min": min(hand), "median": statistics.median(hand), "all": hand},
         "startup_wall_s": {"min": min(startup), "median": statistics.median(startup), "all": startup,
                            "window": list(STARTUP_WINDOW)},
         "engine_final_equity": final_equity,
         "hand": {k: statistics.median(h[k] for h in hand_runs) for k in ("load_s", "loop_s", "process_s", "loop_us_per_tick")}
                 | {"ticks": hand_runs[-1]["ticks"], "checksum": sorted({h["checksum"] for h in hand_runs})}}
    r["ratio_min"] = r["engine_wall_s"]["min"] / r["hand_wall_s"]["min"]
    r["ratio_median"] = r["engine_wall_s"]["median"] / r["hand_wall_s"]["median"]
    pairs = [x / y for x, y in zip(engine, hand)]
    r["ratio_pairs"] = {"median": statistics.median(pairs), "min": min(pairs), "max": max(pairs), "all": pairs}
    if backtest:  # reuse bench/backtest.py by running it (engine loop per tick, decision latency)
        _, out = _timed([str(PY), str(ROOT / "bench" / "backtest.py"), "--json", "--no-memory"])
        b = json.loads(out)
        r["backtest"] = {"ticks": b["ticks"], "run_wall_s": b["run_wall_s"],
                         "engine_us_per_tick": b["run_wall_s"] / b["ticks"] * 1e6,
                         "decision_p50_us": b["decision_latency_us"]["p50"], "decision_p99_us": b["decision_latency_us"]["p99"],
                         "decision_mean_us": b["decision_latency_us"]["mean"], "journal_mb": b["journal_mb"]}
        r["engine_loop_vs_hand_loop"] = b["run_wall_s"] / r["hand"]["loop_s"]
    return r


def print_lines(r: dict) -> None:
    e, h = r["engine_wall_s"], r["hand_wall_s"]
    print(f"flagship whole process vs hand loop, {r['n']} alternate runs each (wall s)")
    print(f"  trimtab run   min {e['min']:.3f}  median {e['median']:.3f}   (final equity {r['engine_final_equity']:,.2f})")
    print(f"  hand_loop.py  min {h['min']:.3f}  median {h['median']:.3f}   (median load {r['hand']['load_s']:.3f} s, "
          f"loop {r['hand']['loop_s']:.3f} s = {r['hand']['loop_us_per_tick']:.2f} us/tick over {r['hand']['ticks']:,} ticks; "
          f"checksum {', '.join(r['hand']['checksum'])})")
    p = r["ratio_pairs"]
    print(f"  ratio engine / hand   {r['ratio_min']:.2f}x (mins)   {r['ratio_median']:.2f}x (medians)   "
          f"{p['median']:.2f}x (median of the {r['n']} pairs, {p['min']:.2f}x-{p['max']:.2f}x)   target <= 1.5x")
    st = r["startup_wall_s"]
    print(f"  of which start-up     min {st['min']:.3f}  median {st['median']:.3f}   (trimtab run over one day, "
          f"{st['window'][0]} -> {st['window'][1]}: {st['median'] / h['median']:.2f}x the hand loop's whole process)")
    b = r.get("backtest")
    if b:
        print(f"bench/backtest.py (in-process run, data loaded before): {b['ticks']:,} ticks in {b['run_wall_s']:.2f} s")
        print(f"  engine loop mean  {b['engine_us_per_tick']:,.1f} us/tick (target <= 50)   "
              f"= {r['engine_loop_vs_hand_loop']:,.0f}x the hand loop's loop")
        print(f"  decision latency  p50 {b['decision_p50_us']:,.1f} us   p99 {b['decision_p99_us']:,.1f} us (target < 1000)   "
              f"mean {b['decision_mean_us']:,.1f} us   journal {b['journal_mb']:.1f} MB")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, default=5, help="runs of each, alternating (default 5)")
    ap.add_argument("--no-backtest", action="store_true", help="skip the bench/backtest.py run")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args(argv)
    r = compare(a.n, backtest=not a.no_backtest)
    if a.json:
        print(json.dumps(r))
    else:
        print_lines(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
