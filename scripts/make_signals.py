"""Write the baseline momentum signal file for the ML modes from the bundled data.

    python scripts/make_signals.py [--series perp.binance.BTCUSDT] [--out configs/signals/btc_momentum_1h.csv]

The generator is documented in trimtab.data.signals.baseline; it is a baseline so the ML modes
run out of the box, not a model. Replace the file with a real model's signals (same columns).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:
    import trimtab  # noqa: F401
except ImportError:
    sys.path.insert(0, str(ROOT / "src"))

import pandas as pd  # noqa: E402

from trimtab.data.feed import load_market_data  # noqa: E402
from trimtab.data.signals import baseline  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--series", default="perp.binance.BTCUSDT")
    ap.add_argument("--out", default=str(ROOT / "configs" / "signals" / "btc_momentum_1h.csv"))
    a = ap.parse_args(argv)
    data = load_market_data(series=[a.series])
    close = pd.Series(data.field(f"{a.series}.close"), index=data.index)
    # Only ticks where a new bar closed: the as-of value repeats through gaps.
    fresh = data.age_hours(a.series) == 0
    sig = baseline(close[fresh])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    sig.to_csv(a.out, index=False)
    print(f"wrote {len(sig)} signals to {a.out} ({(sig.signal != 'neutral').mean():.0%} non-neutral)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
