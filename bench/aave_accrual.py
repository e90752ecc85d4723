"""How much the Aave index convention matters on the bundled data (issue 13 part 2).

Compares, for every bundled Aave reserve and both indices, the hourly index the engine now reads
(the last daily sample accrued at the rate in force then, :mod:`trimtab.data.accrual`) with the
old geometric interpolation toward the next day's sample (:func:`trimtab.data.clock.geometric`,
which read the next sample: look-ahead). Prints the largest and mean relative difference and
the jump each convention leaves at the next sample (the accrual's error against the protocol's
own next value; the interpolation has none by construction, since it peeked at it).

    .venv/bin/python bench/aave_accrual.py
"""
from __future__ import annotations

import numpy as np

from trimtab.data.accrual import ACCRUAL, accrue
from trimtab.data.clock import geometric
from trimtab.data.feed import load_market_data


def main() -> None:
    md = load_market_data()
    print(f"{'field':42s} {'max |rel diff|':>15s} {'mean |rel diff|':>16s} {'max jump at sample':>19s}")
    for name in sorted(n for n in md.series_names() if n.startswith("aave.")):
        s = md._clean(name)
        for col, (rate_col, kind) in ACCRUAL.items():
            v, rate = s.values[col], s.values[rate_col]
            now = accrue(s.avail, v, rate, md.epoch, kind)
            old = geometric(s.avail, v, md.epoch)
            ok = np.isfinite(now) & np.isfinite(old) & (md.epoch < s.avail[-1])
            rel = np.abs(now[ok] / old[ok] - 1)
            # at each sample t_{k+1}: accrued value from t_k vs the sampled index
            pred = accrue(s.avail[:-1], v[:-1], rate[:-1], s.avail[1:] - 1, kind)   # 1 s before the next sample
            jump = np.abs(pred / v[1:] - 1)
            print(f"{name + '.' + col:42s} {rel.max():15.3e} {rel.mean():16.3e} {jump.max():19.3e}")


if __name__ == "__main__":
    main()
