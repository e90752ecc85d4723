"""Issue 14, lane 4: the hot path's shortcuts give exactly what the slow path gives.

Plan ids are hashed once and still equal the SHA-256 of ``json.dumps(asdict(plan))``; a plan
edited after hashing is still refused on restore. Pricing's per-tick caches return what a
fresh, uncached Pricing computes (marks, asset prices, factors, perp parts, at the tick and
the tick before), and count stale marks the same. The kernel's skips (funding only where a
settlement can happen, reward drops only when due) skip only calls that do nothing. All on
the real bundled data and the shipped flagship.
"""
from __future__ import annotations

import hashlib
import json
import sqlite3
from bisect import bisect_left
from dataclasses import asdict

import pytest

from trimtab.accounting.book import Book
from trimtab.data.feed import DataError
from trimtab.data.market import MarketView
from trimtab.engine.backtest import run_backtest
from trimtab.engine.journal import dumps
from trimtab.engine.kernel import Engine, funding_ticks, iso_minutes
from trimtab.planner.plan import Plan
from trimtab.timeutil import utc
from trimtab.venues.pricing import Pricing
from trimtab.venues.rewards import RewardAccrual
from trimtab.venues.sim import SimVenues

START, END = "2024-07-28", "2024-09-08"


def _legacy_id(plan: Plan) -> str:
    """The id as it was computed before issue 14 (dataclasses.asdict, then canonical JSON)."""
    text = json.dumps(asdict(plan), sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@pytest.fixture(scope="module")
def plans(flagship, market, tmp_path_factory):
    """Every plan a short real flagship run journaled, as (journaled id, plan dict)."""
    run = run_backtest(flagship, start=START, end=END, out=tmp_path_factory.mktemp("ids"), run_id="ids", data=market)
    db = sqlite3.connect(run.run_dir / "journal.sqlite")
    try:
        rows = db.execute("SELECT plan_id, plan FROM plans ORDER BY rowid").fetchall()
    finally:
        db.close()
    assert len(rows) >= 2, "the window should plan more than once"
    return [(pid, json.loads(text)) for pid, text in rows]


def test_plan_ids_equal_the_legacy_hash_and_survive_from_dict(plans):
    for pid, d in plans:
        plan = Plan.from_dict(d)
        assert plan.id == pid == _legacy_id(plan)
        want = asdict(plan) | {"id": pid}
        assert plan.to_dict() == want
        assert type(plan.to_dict()["steps"]) is tuple  # as asdict keeps them


def test_plan_json_text_is_the_jsonable_dump_of_to_dict(plans):
    for _, d in plans:
        plan = Plan.from_dict(d)
        assert plan.json_text() == dumps(plan.to_dict())


def test_plan_json_text_refuses_a_non_finite_float(plans):
    _, d = plans[0]
    bad = json.loads(json.dumps(d)) | {"id": None, "expected_cost": float("inf")}
    with pytest.raises(ValueError):
        Plan.from_dict(bad).json_text()


def test_a_plan_edited_after_hashing_is_refused(plans):
    _, d = plans[0]
    bad = json.loads(json.dumps(d))
    bad["steps"][0]["instructions"][0]["amount"] *= 1.5
    with pytest.raises(ValueError, match="does not match its content"):
        Plan.from_dict(bad)
    bad = json.loads(json.dumps(d))
    bad["targets"]["positions"] = {k: v * 2 for k, v in bad["targets"]["positions"].items()}
    with pytest.raises(ValueError, match="does not match its content"):
        Plan.from_dict(bad)


def _pricing(flagship, window) -> Pricing:
    view = MarketView(window, set())
    px = Pricing(flagship, view)
    sim = SimVenues(flagship, px, window.static)
    view.add_fields(px.fields() | sim.fields())
    return px


def test_price_caches_match_an_uncached_pricing_tick_by_tick(flagship, market):
    """Two Pricings over the same data: one asked at the tick and the tick before (cached,
    as the loop asks), one rebuilt fresh for every read (nothing cached)."""
    window = market.slice(utc("2024-07-01"), utc("2024-10-01")).with_checks(flagship.config.data_checks)
    px = _pricing(flagship, window)
    perps = [k for k, inf in px.info.items() if inf.ptype == "Perp"]
    others = [k for k, inf in px.info.items() if inf.ptype != "Perp"]
    assets = sorted({inf.asset for inf in px.info.values()})
    ref = _pricing(flagship, window)
    read = 0

    def same(name: str, *args) -> None:
        """``px.name(*args)`` and the uncached ``ref.name(*args)`` agree: same value, or both
        raise DataError (a reward token with no price series yet)."""
        nonlocal read
        got = []
        ref._forget()  # the reference reads nothing cached
        for obj in (px, ref):
            try:
                got.append(getattr(obj, name)(*args))
            except DataError as e:
                got.append(("DataError", str(e)))
        assert got[0] == got[1], (name, args)
        read += not isinstance(got[0], tuple) or got[0][0] != "DataError"

    for i in range(1, px.view.n, 7):
        px.view.i = ref.view.i = i
        for _ in range(2):  # the second round reads the caches
            for j in (i - 1, i):
                for k in perps:
                    same("mark", k, j)
                    same("perp_parts", k, j)
                for k in others:
                    same("factors", k, j)
                    same("value", k, 3.0, 0.0, j)
                    same("delta", k, -2.5, j)
                for a in assets:
                    same("asset_usd", a, j)
            for k in perps:
                same("mark", k)
                same("value", k, -1.5, 2500.0)
            for k in others:
                same("value", k, 1.25)
                same("delta", k, 1.25)
        for k in px.fixed_keys:  # attribution skips them: nothing may move
            assert ref.factors(k, i - 1) == ref.factors(k, i)
    assert read > 1000 and px.fixed_keys
    assert px.stale_marks == ref.stale_marks


def _raw(px: Pricing, key: str, qty: float, j: int) -> tuple[float, tuple[str, float]]:
    """(value, delta) of a non-perp position at tick ``j``, straight from the data columns:
    the formulas of Pricing.value / Pricing.delta as written before any caching."""
    view, inf = px.view, px.info[key]
    spec = px.assets[inf.asset]

    def usd(a: str) -> float:
        sp = px.assets[a]
        if sp.usd is not None:
            return sp.usd
        if sp.usd_field:
            return view.require(sp.usd_field, j)
        return view.require(sp.eth_rate_field, j) * view.require(px.eth_field, j)

    sign = -1.0 if inf.ptype == "debtToken" else 1.0
    amount = qty * view.require(inf.index_field, j) if inf.index_field else qty
    share = 1.0 if px.share_class == "USDT" else usd(px.share_class)
    value = sign * amount * usd(inf.asset) / share
    units = amount
    if spec.delta_asset == "ETH":
        units *= view.require(spec.eth_rate_field, j) if spec.eth_rate_field else 1.0
    return value, (spec.delta_asset, sign * units)


def test_values_and_deltas_match_the_formulas_on_the_data(flagship, market):
    """Every non-perp key's value and delta (the constant-price shortcut included) against
    the formulas evaluated on the raw columns, at every 11th tick of a real window."""
    window = market.slice(utc("2024-07-01"), utc("2024-10-01")).with_checks(flagship.config.data_checks)
    px = _pricing(flagship, window)
    keys = [k for k, inf in px.info.items() if inf.ptype != "Perp" and inf.asset in ("USDT", "ETH", "WETH", "weETH")]
    assert {"wallet:BaseToken:USDT", "wallet:BaseToken:ETH"} <= set(keys) and any(px.info[k].index_field for k in keys)
    for i in range(0, px.view.n, 11):
        px.view.i = i
        for k in keys:
            for q in (0.7, -3.25, 1234.5):
                want_v, want_d = _raw(px, k, q, i)
                assert px.value(k, q) == want_v and px.delta(k, q) == want_d, (k, q, i)


def test_stale_marks_are_counted_as_before_with_the_caches(flagship, market):
    """A window in which a venue's perp feed goes stale: the hours counted by the cached
    Pricing are those counted by reading every mark uncached, once per tick."""
    window = market.slice(utc("2024-05-13"), utc("2025-09-26")).with_checks(flagship.config.data_checks)
    px, ref = _pricing(flagship, window), _pricing(flagship, window)
    perps = [k for k, inf in px.info.items() if inf.ptype == "Perp"]
    for i in range(px.view.n):
        px.view.i = ref.view.i = i
        for k in perps:
            if i:
                px.perp_parts(k, i - 1)
            px.perp_parts(k, i)
            px.mark(k)
            ref.mark(k)
    assert px.stale_marks == ref.stale_marks
    assert any(v[0] for v in ref.stale_marks.values()), "the window should hold a stale perp feed"


def test_funding_is_skipped_only_where_it_settles_nothing(flagship, market, tmp_path):
    """With every perp held, :meth:`SimVenues.funding` returns nothing on each tick the kernel
    skips, and something on the ticks it keeps (settlements)."""
    window = market.slice(utc("2024-06-01"), utc("2024-09-01"))
    e = Engine(flagship, window, tmp_path / "run")
    due = e.funding_due
    assert len(due) == e.view.n and 0 < sum(due) < e.view.n
    book = Book()
    for k in e.sim.perp_keys:
        book.bal[k], book.entry[k] = -1.0, 3000.0
    paid = 0
    for i in range(e.view.n):
        e.view.i = i
        fills = e.sim.funding(i, book)
        if not due[i]:
            assert fills == [], f"tick {i} was skipped but settles {fills}"
        paid += bool(fills)
    assert paid > 0
    assert funding_ticks(e.view, e.sim, e.px, 10) == due[10:]


def test_iso_minutes_are_the_timestamps_formatted(flagship, market, tmp_path):
    view = MarketView(market.slice(utc("2024-02-27"), utc("2024-03-02")), set())
    assert iso_minutes(view, 0) == [f"{t:%Y-%m-%dT%H:%MZ}" for t in view.times]
    assert iso_minutes(view, 5) == [f"{t:%Y-%m-%dT%H:%MZ}" for t in view.times[5:]]


def test_reward_drops_sum_the_period_as_the_filter_did(market):
    """The bisected slice of eETH held equals the filtered sum over the period's ticks, and
    :meth:`RewardAccrual.is_due` is True exactly when ``fills`` pays something or moves on."""
    window = market.slice(utc("2024-01-01"), utc("2025-09-01"))
    epoch = [int(x) for x in window.epoch]
    acc = RewardAccrual(window.static, epoch)
    assert acc.drops, "the bundled records should pay drops in this window"
    ref_paid: dict[str, float] = {}
    n_due = 0
    for i, now in enumerate(epoch):
        acc.record(1.0 + (i % 97) * 0.013)
        before = acc.next
        due = acc.is_due(i)
        for token, amount, d in acc.due(i):
            total = sum(h for t, h in zip(epoch[: len(acc.held)], acc.held) if d.start <= t < d.end)
            assert amount == d.per_eeth * total / ((d.end - d.start) // 3600)
            ref_paid[token] = ref_paid.get(token, 0.0) + amount
        assert due == (acc.next > before)
        n_due += due
    assert n_due > 0 and acc.paid == ref_paid
    assert bisect_left(epoch, epoch[-1]) == len(epoch) - 1  # the clock is strictly increasing


def test_extend_grows_the_clock_and_the_funding_ticks(flagship, market, tmp_path):
    """A live run grows the view hour by hour: the ISO clock and the funding ticks of the
    extended engine are those of an engine built over the whole window at once."""
    head = market.slice(utc("2024-06-01"), utc("2024-06-05 07:00"))
    e = Engine(flagship, head, tmp_path / "grown")
    for start, end in (("2024-06-05 08:00", "2024-06-05 08:00"), ("2024-06-05 09:00", "2024-06-09 23:00")):
        first = e.extend(market.slice(utc(start), utc(end)))
        assert e.iso[first] == f"{e.view.times[first]:%Y-%m-%dT%H:%MZ}"
    whole = Engine(flagship, market.slice(utc("2024-06-01"), utc("2024-06-09 23:00")), tmp_path / "whole")
    assert e.view.n == whole.view.n == len(e.funding_due)
    assert e.iso == whole.iso
    assert e.funding_due == whole.funding_due
