"""`trimtab compare` over every shipped config, timed as a whole process (issue 14: under 15 s,
using the machine's cores).

Runs ``trimtab compare configs/*.yaml --json`` in a fresh subprocess (each config's backtest in
its own worker process, ``--jobs`` default: all cores) and prints its wall and CPU seconds (user
+ system of it and its workers), the ratio to the 15 s target and, with ``--sequential``, the
same command with ``--jobs 1`` and the speed-up. The rows of the two are checked to be the same
(apart from run directories). Figures only: nothing here asserts on time.

    python bench/compare_all.py                 # parallel only
    python bench/compare_all.py --sequential    # and --jobs 1, with the speed-up
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

from proc import timed  # bench/proc.py: one whole process, timed

ROOT = Path(__file__).resolve().parents[1]
TRIMTAB = Path(sys.executable).with_name("trimtab")
TARGET_S = 15.0


def timed_compare(out: Path, jobs: int | None) -> tuple[float, float, dict]:
    """(wall s, CPU s of the process and its workers, the JSON result) of one ``trimtab compare``.

    Raises:
        RuntimeError: the command failed (with its stderr's tail).
    """
    configs = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").glob("*.yaml"))
    cmd = [str(TRIMTAB), "compare", *configs, "--out", str(out), "--json"] + ([] if jobs is None else ["--jobs", str(jobs)])
    try:
        wall, cpu, text = timed(cmd)
    except RuntimeError as e:
        raise RuntimeError(f"trimtab compare failed: {e}") from None
    return wall, cpu, json.loads(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sequential", action="store_true", help="also time --jobs 1 and print the speed-up")
    ap.add_argument("--json", action="store_true", help="print one JSON object")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="trimtab-compare-bench-") as tmp:
        wall, cpu, res = timed_compare(Path(tmp) / "parallel", None)
        r = {"configs": len(res["rows"]) + len(res["skipped"]) + len(res["failed"]), "rows": len(res["rows"]),
             "failed": res["failed"], "cores": os.cpu_count(), "wall_s": wall, "cpu_s": cpu, "target_s": TARGET_S,
             "ratio_to_target": wall / TARGET_S}
        if a.sequential:
            swall, scpu, sres = timed_compare(Path(tmp) / "sequential", 1)
            strip = lambda rows: [{k: v for k, v in x.items() if k != "run_dir"} for x in rows]  # noqa: E731
            r.update(sequential_wall_s=swall, sequential_cpu_s=scpu, speedup=swall / wall,
                     same_rows=strip(sres["rows"]) == strip(res["rows"]))
    if a.json:
        print(json.dumps(r, indent=2))
        return
    print(f"trimtab compare configs/*.yaml  ({r['rows']} strategies compared, {r['cores']} cores; target under {TARGET_S:.0f} s)")
    print(f"  parallel    wall {r['wall_s']:6.2f} s  cpu {r['cpu_s']:6.2f} s  ratio to target {r['ratio_to_target']:.2f}")
    if a.sequential:
        print(f"  --jobs 1    wall {r['sequential_wall_s']:6.2f} s  cpu {r['sequential_cpu_s']:6.2f} s  "
              f"speed-up {r['speedup']:.2f}x  same rows: {r['same_rows']}")
    if r["failed"]:
        print(f"  failed: {r['failed']}")


if __name__ == "__main__":
    main()
