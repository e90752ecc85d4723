"""Funding ticks' fast path (issue 14): the same fills and journal rows as the general code.

* ``legs_json`` (the journal's fills.legs text without json.dumps) is the journal's own encoder
  character for character, or declines: random legs with special floats, numpy floats, ints and
  odd keys are compared with ``_legs_text`` itself.
* A real backtest of a hedged strategy (perps on three venues, funding every 8 hours) over one
  month writes its funding fills with the legs, note, price and equity impact the general
  formulas give: each row is recomputed from the run's own fills and metrics.
"""
from __future__ import annotations

import json
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest

from trimtab.accounting.book import Leg
from trimtab.config.load import load_strategy
from trimtab.engine.backtest import run_backtest
from trimtab.engine.journal import _legs_text
from trimtab.engine.legs_json import legs_json
from trimtab.timeutil import UtcTime
from trimtab.venues.sim import _on_the_hour

ROOT = Path(__file__).resolve().parents[2]
HEDGED = ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"

_KEYS = ["binance:Margin:USDT", "aave_v3:aToken:weETH", 'odd"key\\with\u00e9', "tab\there", ""]
_SPECIAL = [0.0, -0.0, 1e308, -1e-308, 5e-324, math.inf, -math.inf, math.nan, 1.0, 0.1 + 0.2]


def _number(rng):
    kind = rng.integers(0, 6)
    if kind == 0:
        return float(rng.choice(_SPECIAL))
    if kind == 1:
        return np.float64(rng.normal())             # a float subclass whose repr differs
    if kind == 2:
        return int(rng.integers(-5, 5))
    return float(rng.normal() * 10.0 ** rng.integers(-12, 12))


def _leg(rng) -> Leg:
    """A random leg; a third of them with the very same number object as delta and amount (as
    a funding or fee leg is built), which legs_json formats once."""
    delta = _number(rng)
    return Leg(str(rng.choice(_KEYS)), delta, delta if rng.random() < 1 / 3 else _number(rng))


@pytest.mark.parametrize("seed", range(3))
def test_legs_json_is_the_journal_encoder_or_declines(seed):
    rng = np.random.default_rng(seed)
    fast = 0
    for _ in range(400):
        legs = [_leg(rng) for _ in range(int(rng.integers(0, 4)))]
        want = _legs_text([[l.key, l.delta, l.amount] for l in legs])
        got = legs_json(legs)
        if got is not None:
            fast += 1
            assert got == want
            assert json.loads(got) == json.loads(want)
    assert fast > 20  # the fast path was exercised, not only the fallback


def test_legs_json_declines_non_finite_and_non_float():
    for d in (math.inf, -math.inf, math.nan, 1, np.float64(1.5), True):
        assert legs_json([Leg("k:Margin:USDT", d, 1.0)]) is None
        assert legs_json([Leg("k:Margin:USDT", 1.0, d)]) is None
    assert legs_json([]) == _legs_text([])


# January 2025: mostly the venues' own rates; from 2025-03-29 OKX's funding data stops, so its
# position settles at the mean of the other venues' rates (the proxy path).
@pytest.fixture(scope="module", params=[("2025-01-01", "2025-02-01"), ("2025-03-20", "2025-04-05")], ids=["own", "proxy"])
def hedged_run(tmp_path_factory, request):
    out = tmp_path_factory.mktemp("runs")
    start, end = request.param
    res = run_backtest(load_strategy(HEDGED), start=start, end=end, out=out, run_id="fastpath")
    db = sqlite3.connect(res.run_dir / "journal.sqlite")
    try:
        fills = db.execute("SELECT fill_id, tick, venue, operation, category, price, price_field, impact, legs, note "
                           "FROM fills ORDER BY fill_id").fetchall()
    finally:
        db.close()
    return res, fills


def test_funding_fills_are_the_settlement_formula(hedged_run):
    res, fills = hedged_run
    funding = [r for r in fills if r[3] == "funding"]
    assert len(funding) > 50                          # 2-3 venues x 3 settlements a day x 10-31 days
    ticks = {r[1] for r in funding}
    assert len(ticks) > 25
    sizes: dict[str, float] = {}                      # perp key -> contracts, replayed from the fills
    seen = 0
    for fill_id, tick, venue, op, cat, price, field, impact, legs_text, note in fills:
        legs = json.loads(legs_text)
        assert legs_text == _legs_text(legs)          # the text the general encoder writes
        if op == "funding":
            assert cat == "funding" and len(legs) == 1
            key, delta, amount = legs[0]
            assert key == f"{venue}:Margin:USDT" and delta == amount
            perp = [k for k in sizes if k.startswith(venue + ":") and sizes[k]]
            assert len(perp) == 1
            s = sizes[perp[0]]
            # -size x mark x rate; the note quotes the mark, rounded to cents
            lhs, mark_text, rate_text = note.split(" = ")[1].split(" x ")
            assert lhs == f"{-s:.4f}"
            assert rate_text == f"{price:.6g}"
            mark = delta / (-s * price)
            assert abs(mark - float(mark_text)) <= 0.005 + 1e-9 * mark
            # USDT margin in a USDT share class: the value after minus before is the payment,
            # up to the rounding of that difference of two large balances
            assert impact == pytest.approx(delta, rel=1e-6, abs=1e-6)
            seen += 1
        for key, delta, _ in legs:
            if ":Perp:" in key:
                sizes[key] = sizes.get(key, 0.0) + delta
    assert seen == len(funding)


def test_proxy_settlements_take_the_other_venues_mean(hedged_run):
    res, fills = hedged_run
    funding = [r for r in fills if r[3] == "funding"]
    own = {}                                          # tick -> rates settled from the venues' own data
    for r in funding:
        if r[6].startswith("funding."):
            own.setdefault(r[1], []).append(r[5])
    proxies = [r for r in funding if r[6] == "proxy: mean of other venues"]
    assert sum(res.summary["funding_proxies"].values()) == len(proxies)
    if res.summary["start"].startswith("2025-03"):
        assert len(proxies) > 15                      # OKX's settlements from 2025-03-29 on
    for r in proxies:
        others = own[r[1]]
        assert len(others) == 2                       # Binance and Bybit settled that hour
        assert r[5] == sum(others) / len(others)


def test_settlement_hour_check_is_the_datetimes():
    # sim.funding tells a venue's settlement hour from the epoch second, not a datetime
    rng = np.random.default_rng(0)
    epochs = [int(e) for e in rng.integers(-10**9, 4 * 10**9, 3000)]
    epochs += [h * 3600 + m for h in range(480_000, 480_048) for m in (0, 59, 60, 3599)]
    hours = frozenset({0, 8, 16})
    hits = 0
    for e in epochs:
        t = UtcTime.of_epoch(e)
        want = t.hour in hours and not t.minute
        assert _on_the_hour(e, hours) is want
        hits += want
    assert hits >= 12  # the two days' 6 settlement hours, at seconds 0 and 59
