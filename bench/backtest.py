"""Benchmark the flagship backtest over the whole bundled period (DESIGN.md "Budgets").

Prints ticks, wall time, ticks per second, decision latency (tight loop + machine step)
p50/p99/max, the engine's peak traced memory and the process max RSS, with data loading timed
separately. Figures only: nothing here asserts on time.

    python bench/backtest.py            # readable lines
    python bench/backtest.py --json     # one JSON object

The timed run and the memory run are separate runs of the same backtest: tracemalloc slows
allocation-heavy code several times over, so timing under it would misstate throughput.
With the memory figures (not ``--no-memory``) it also runs ``trimtab run CONFIG --json`` as a
whole fresh process and prints its max RSS: the figure issue 14's "< 150 MB" is about.
"""
from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np

from trimtab.config.load import load_strategy
from trimtab.data.feed import load_market_data
from trimtab.engine.backtest import run_backtest

ROOT = Path(__file__).resolve().parents[1]
FLAGSHIP = ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"


def max_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (ru_maxrss is KB on Linux, B on macOS)."""
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


# Runs COMMAND in a fresh, small Python and prints the child's max RSS: a child's peak is counted
# from its fork, so one forked from this (large) process would report at least this process's RSS.
# It also samples, every 2 ms, the memory of the command together with the processes it started
# (the journal's writer process, trimtab.engine.journal_writer) from /proc, and prints the largest
# sums: of their RSS (an upper bound: pages of shared libraries mapped by both count twice), and
# of the command's RSS with the others' private pages (USS: what they add to the run, the
# libraries they share with it counted once). That counts a forked child too (`trimtab run`'s
# loader, trimtab.data.background): the pages it still shares with the command are not its
# private ones. Linux only (None elsewhere).
_LAUNCHER = """import json, os, resource, subprocess, sys, time
def sums(pid):
    rss = own = 0
    todo = [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/smaps_rollup") as f:
                for line in f:
                    k, v = line.split(":", 1)
                    if k == "Rss":
                        rss += int(v.split()[0])
                        own += int(v.split()[0]) if p == pid else 0
                    elif k in ("Private_Clean", "Private_Dirty") and p != pid:
                        own += int(v.split()[0])
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo += [int(x) for x in f.read().split()]
        except (OSError, ValueError):
            pass
    return rss, own
t = time.perf_counter()
with open(sys.argv[1], "wb") as err:
    proc = subprocess.Popen(sys.argv[2:], stdout=subprocess.DEVNULL, stderr=err)
    tree = [0, 0] if os.path.exists(f"/proc/{proc.pid}/smaps_rollup") else None
    while proc.poll() is None:
        if tree is not None:
            tree = [max(a, b) for a, b in zip(tree, sums(proc.pid))]
        time.sleep(0.002)
print(json.dumps({"code": proc.returncode, "wall_s": time.perf_counter() - t, "tree_kb": tree,
                  "maxrss": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
"""


def run_process_rss(config: Path = FLAGSHIP) -> dict:
    """A whole ``trimtab run CONFIG --json`` as a fresh process (interpreter start, imports, config,
    audit, data, run, summary): its max RSS in MB; the largest sampled sums, over it and the
    processes it started (the journal's writer process, the bundle's loader), of their RSS (``tree_rss_mb``) and of its
    RSS with their private pages (``tree_own_mb``; both None off Linux); its wall time in
    seconds. The figures issue 14's memory target is about (< 150 MB)."""
    exe = Path(sys.executable).parent / "trimtab"
    with tempfile.TemporaryDirectory(prefix="trimtab-bench-rss-") as tmp:
        errfile = Path(tmp) / "stderr.txt"
        p = subprocess.run([sys.executable, "-c", _LAUNCHER, str(errfile), str(exe), "run", str(config), "--json",
                            "--out", tmp, "--run-id", "rss"], cwd=ROOT, capture_output=True, text=True)
        if p.returncode != 0:
            raise SystemExit(f"launcher failed ({p.returncode}):\n{p.stderr[-2000:]}")
        r = json.loads(p.stdout)
        if r["code"] != 0:
            raise SystemExit(f"trimtab run {config} failed ({r['code']}):\n{errfile.read_text(errors='replace')[-2000:]}")
    rss = r["maxrss"] / (1024 * 1024) if sys.platform == "darwin" else r["maxrss"] / 1024
    tree = r["tree_kb"]
    return {"max_rss_mb": rss, "wall_s": r["wall_s"], "tree_rss_mb": None if tree is None else tree[0] / 1024,
            "tree_own_mb": None if tree is None else tree[1] / 1024}


def bench(config: Path = FLAGSHIP, memory: bool = True) -> dict:
    t = time.perf_counter()
    strategy = load_strategy(config)
    config_s = time.perf_counter() - t

    t = time.perf_counter()
    data = load_market_data()
    load_s = time.perf_counter() - t
    rss_after_load = max_rss_mb()

    with tempfile.TemporaryDirectory(prefix="trimtab-bench-") as tmp:
        t = time.perf_counter()
        result = run_backtest(strategy, out=tmp, run_id="timed", data=data, time_decisions=True)
        wall = time.perf_counter() - t
        journal_mb = (Path(tmp) / "timed" / "journal.sqlite").stat().st_size / 1e6

        traced_peak_mb = None
        if memory:
            tracemalloc.start()
            run_backtest(strategy, out=tmp, run_id="traced", data=data)
            traced_peak_mb = tracemalloc.get_traced_memory()[1] / 1e6
            tracemalloc.stop()

    process = run_process_rss(config) if memory else None
    ticks = len(result.equity)
    ns = np.asarray(result.decision_ns, dtype=np.int64)
    us = lambda q: float(np.percentile(ns, q)) / 1e3 if ns.size else float("nan")  # noqa: E731
    s = result.summary
    return {
        "config": str(config.relative_to(ROOT) if config.is_relative_to(ROOT) else config),
        "window": {"start": s["start"], "end": s["end"]},
        "ticks": ticks,
        "config_load_s": config_s,
        "data_load_s": load_s,
        "run_wall_s": wall,
        "ticks_per_s": ticks / wall if wall > 0 else float("inf"),
        "decision_latency_us": {"p50": us(50), "p99": us(99), "max": float(ns.max()) / 1e3 if ns.size else float("nan"),
                                "mean": float(ns.mean()) / 1e3 if ns.size else float("nan"), "samples": int(ns.size)},
        "decision_share_of_wall": float(ns.sum()) / 1e9 / wall if wall > 0 else float("nan"),
        "engine_peak_traced_mb": traced_peak_mb,
        "max_rss_mb_after_data_load": rss_after_load,
        "max_rss_mb": max_rss_mb(),
        "run_process_max_rss_mb": process["max_rss_mb"] if process else None,
        "run_process_wall_s": process["wall_s"] if process else None,
        "run_tree_rss_mb": process["tree_rss_mb"] if process else None,
        "run_tree_own_mb": process["tree_own_mb"] if process else None,
        "journal_mb": journal_mb,
        # ticks processed in quiet spans (bulk); ticks whose monitors read a quiet stretch (vector) / were computed per tick
        "paths": dict(result.paths),
        "transitions": s["transitions"],
        "plans": s["plans"],
        "python": platform.python_version(),
        "machine": f"{platform.system()} {platform.machine()}",
    }


def print_lines(r: dict) -> None:
    lat = r["decision_latency_us"]
    mem = "skipped (--no-memory)" if r["engine_peak_traced_mb"] is None else f"{r['engine_peak_traced_mb']:.1f} MB"
    print(f"flagship backtest: {r['config']}")
    print(f"  window             {r['window']['start']} -> {r['window']['end']}")
    print(f"  ticks              {r['ticks']:,} (hourly)   transitions {r['transitions']}, plans {r['plans']}")
    print(f"  config load        {r['config_load_s'] * 1e3:,.0f} ms")
    print(f"  data load          {r['data_load_s'] * 1e3:,.0f} ms (separate from the run)")
    print(f"  run wall time      {r['run_wall_s']:.2f} s")
    print(f"  ticks per second   {r['ticks_per_s']:,.0f}   ({r['run_wall_s'] / r['ticks'] * 1e6:,.1f} us per tick, "
          f"engine construction and finish included)")
    paths = r["paths"]
    print(f"  tick paths         {paths.get('bulk', 0):,} ticks in quiet spans (trimtab.engine.quiet), "
          f"{r['ticks'] - paths.get('bulk', 0):,} stepped one by one (Engine.step)")
    print(f"  monitor paths      {paths.get('vector', 0):,} ticks from quiet stretches (numpy, trimtab.engine.stretch), "
          f"{paths.get('per_tick', 0):,} computed per tick")
    print(f"  decision latency   p50 {lat['p50']:,.1f} us   p99 {lat['p99']:,.1f} us   max {lat['max']:,.1f} us   "
          f"(mean {lat['mean']:,.1f} us over {lat['samples']:,} steps; tight loop + machine step, "
          f"{r['decision_share_of_wall']:.0%} of the run)")
    print(f"  engine peak memory {mem} (tracemalloc during a second, untimed run; data loaded before)")
    print(f"  process max RSS    {r['max_rss_mb']:,.1f} MB ({r['max_rss_mb_after_data_load']:,.1f} MB after loading the data)")
    if r["run_process_max_rss_mb"] is None:
        print("  `trimtab run` RSS  skipped (--no-memory)")
    else:
        print(f"  `trimtab run` RSS  {r['run_process_max_rss_mb']:,.1f} MB max RSS of the whole process "
              f"(subprocess `trimtab run CONFIG --json`, {r['run_process_wall_s']:.2f} s wall; target < 150 MB)")
        rss, own = r["run_tree_rss_mb"], r["run_tree_own_mb"]
        print("  with its children  " + ("n/a (no /proc)" if rss is None else
              f"{own:,.1f} MB: `trimtab run`'s RSS + the private pages of its journal writer and its bundle loader "
              f"({rss:,.1f} MB summing their RSS, shared pages more than once); largest sums, sampled every 2 ms "
              f"(target < 150 MB)"))
    print(f"  journal.sqlite     {r['journal_mb']:.1f} MB")
    print(f"  python {r['python']} on {r['machine']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of lines")
    ap.add_argument("--config", type=Path, default=FLAGSHIP, help="strategy config (default: the flagship)")
    ap.add_argument("--no-memory", action="store_true", help="skip the tracemalloc run and the whole-process `trimtab run` RSS")
    args = ap.parse_args(argv)
    r = bench(args.config.resolve(), memory=not args.no_memory)
    if args.json:
        print(json.dumps(r))
    else:
        print_lines(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
