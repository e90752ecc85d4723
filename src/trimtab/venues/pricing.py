"""Prices and valuation: what every instrument is worth in the share class, and why it moved.

Conventions (DESIGN.md "Accounting"):

* asset prices in USD come from the wallet venue's ``assets`` table: a constant (USDT = 1), a
  USD field (ETH: an hourly spot close, see venues/wallet.yaml) or an ETH rate field times the ETH price (weETH:
  Aave's weETH/ETH exchange-rate oracle, so LST value = units x rate x ETH price);
* Aave balances are scaled: amount = scaled x liquidity index (aTokens) or x variable-borrow
  index (debt), indices from the real reserve data;
* a linear perp is worth size x (mark - entry) in USDT; its mark is the venue's own last
  completed bar. While that feed is stale, or its latest bar failed the data checks
  (quarantined, trimtab.data.quality), the position is marked at the reference price of its
  asset instead and is not traded, and the fallback is counted (``stale_marks``) for the summary;
* every field read here holds only values that passed the data checks: a faulty row reads as
  the last good one, so a zero or x100 price never reaches a valuation or a health factor;
* the share class price in USD: USDT = 1, ETH = ETH price, BTC = BTC price.

:meth:`Pricing.factors` splits a value into multiplicative factors tagged with the P&L
category that moves them, so a tick's change can be attributed exactly by telescoping.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..config.load import Strategy
from ..data.market import MarketView
from ..keys import parse_key

ETH_ASSETS = ("ETH", "WETH")


def holding_value(sign, amount, asset_usd, share_usd):
    """Value in the share class of a non-perp holding: sign x asset units x USD price / share
    class USD price. Floats or numpy float64 arrays (:mod:`trimtab.engine.stretch`): the same
    operations in the same order, so the same doubles element by element."""
    return sign * amount * asset_usd / share_usd


def perp_value(qty, mark, entry, share_usd):
    """Value in the share class of a linear perp: size x (mark - entry) / share class USD price
    (floats or numpy arrays, as :func:`holding_value`)."""
    return qty * (mark - entry) / share_usd


@dataclass(frozen=True, slots=True)
class InstrumentInfo:
    """Static facts about a held instrument, resolved once from the venue catalog."""

    key: str
    venue: str
    ptype: str
    asset: str
    index_field: str | None  # Aave index field, for aToken / debtToken
    mark_field: str | None  # perp mark
    funding_field: str | None
    stale_after_h: float


class Pricing:
    """Asset prices, instrument values and P&L factors at a tick of a :class:`MarketView`.

    Args:
        strategy: the loaded strategy (venues, instruments, share class).
        view: the market view; every read is at ``view.i`` unless ``i`` is given.
    """

    def __init__(self, strategy: Strategy, view: MarketView):
        self.view = view
        self.share_class = strategy.config.share_class
        wallet = strategy.venues["wallet"]
        self.assets = dict(wallet.assets or {})
        self.info: dict[str, InstrumentInfo] = {}
        for k, (vname, spec) in strategy.instruments.items():
            v = strategy.venues[vname]
            ptype = parse_key(k).position_type
            idx = None
            if ptype == "aToken":
                idx = f"{spec.reserve}.liquidity_index"
            elif ptype == "debtToken" and spec.reserve:
                idx = f"{spec.reserve}.variable_borrow_index"
            stale = v.perp.stale_after_h if v.perp else 3.0
            self.info[k] = InstrumentInfo(k, vname, ptype, spec.asset, idx, spec.mark_field, spec.funding_field, stale)
        #: Non-perp keys whose value per unit never moves (no Aave index, a constant USD price,
        #: a USDT share class): every :meth:`factors` of theirs is the same constant, so there is
        #: no market move to attribute.
        self.fixed_keys = frozenset(
            k for k, inf in self.info.items()
            if inf.ptype != "Perp" and not inf.index_field and inf.asset in self.assets
            and self.assets[inf.asset].usd is not None and self.share_class == "USDT")
        # What value() and delta() read for keys whose per-unit figures never move: the same
        # numbers asset_usd / share_usd / eth_rate return for them, read once.
        sign = {k: -1.0 if inf.ptype == "debtToken" else 1.0 for k, inf in self.info.items()}
        self._value_const = {k: (sign[k], self.assets[self.info[k].asset].usd, 1.0) for k in self.fixed_keys}
        self._delta_const: dict[str, tuple[float, str, float | None]] = {}
        for k, inf in self.info.items():
            spec = self.assets.get(inf.asset)
            if inf.ptype == "Perp" or inf.index_field or spec is None:
                continue
            if spec.delta_asset != "ETH":
                self._delta_const[k] = (sign[k], spec.delta_asset, None)
            elif not spec.eth_rate_field:
                self._delta_const[k] = (sign[k], spec.delta_asset, 1.0)
        self.stale_marks: dict[str, list[int]] = {}  # key -> [ticks marked at the reference price, last such tick]
        self._trade_refs: dict[str, tuple] = {}  # key -> _tradable_refs(key), filled on first use
        self._mark_refs: dict[str, tuple] = {}  # key -> _mark_refs_of(key), filled on first use
        self.eth_field = self.assets["ETH"].usd_field
        self._forget()
        self.funding_max_age: dict[str, float] = {
            k: 2 * strategy.venues[inf.venue].perp.funding_interval_h + 1 for k, inf in self.info.items() if inf.funding_field}

    def snapshot(self) -> dict:
        """What changes tick to tick, as plain data: ``stale_marks`` (key -> [hours marked at
        the reference price, last such tick])."""
        return {"stale_marks": {k: list(v) for k, v in self.stale_marks.items()}}

    def restore(self, snap: dict) -> None:
        """Load a :meth:`snapshot`."""
        self.stale_marks = {k: list(v) for k, v in snap["stale_marks"].items()}
        self._forget()

    # ------------------------------------------------------------------ per-tick caches
    # The loop asks for the same few prices many times a tick (every account valuation, the
    # monitors, attribution at the tick before). A price at tick t is a function of the data
    # at t alone (columns only grow at their end, MarketView.extend), so it is cached by tick:
    # one dict for ``view.i`` and one for ``view.i - 1`` (last tick's, kept when the view steps
    # on by one hour, which is what attribution reads). A stale mark (reference-price fallback)
    # is never cached: reading it counts the hour in ``stale_marks``, exactly as before.
    def _forget(self) -> None:
        self._memo_tick = -2
        self._asset_now: dict[str, float] = {}
        self._asset_prev: dict[str, float] = {}
        self._mark_now: dict[str, float] = {}
        self._mark_prev: dict[str, float] = {}
        self._factors_now: dict[str, tuple[float, list[tuple[str, float]]]] = {}
        self._factors_prev: dict[str, tuple[float, list[tuple[str, float]]]] = {}
        self._parts_now: dict[str, tuple[float, float, float]] = {}
        self._parts_prev: dict[str, tuple[float, float, float]] = {}

    def _roll(self, now: int) -> None:
        """The view moved to tick ``now``: this tick's caches start empty; last tick's are kept
        as ``_prev`` only when ``now`` is the very next tick (so ``_prev`` always holds tick ``now - 1``)."""
        if now == self._memo_tick + 1:
            self._asset_prev, self._mark_prev, self._factors_prev, self._parts_prev = (
                self._asset_now, self._mark_now, self._factors_now, self._parts_now)
        else:
            self._asset_prev, self._mark_prev, self._factors_prev, self._parts_prev = {}, {}, {}, {}
        self._asset_now, self._mark_now, self._factors_now, self._parts_now = {}, {}, {}, {}
        self._memo_tick = now

    # ------------------------------------------------------------------ fields
    def fields(self) -> set[str]:
        """Every data field valuation may read."""
        out = {self.eth_field}
        for a in self.assets.values():
            out |= {f for f in (a.usd_field, a.eth_rate_field) if f}
        for inf in self.info.values():
            out |= {f for f in (inf.index_field, inf.mark_field, inf.funding_field) if f}
            if inf.index_field:  # current rates, for the yield-impact analysis
                base = inf.index_field.rsplit(".", 1)[0]
                out |= {f"{base}.liquidity_rate", f"{base}.variable_borrow_rate"}
        return out

    # ------------------------------------------------------------------ prices
    def eth_usd(self, i: int | None = None) -> float:
        return self.view.require(self.eth_field, i)

    def asset_usd(self, asset: str, i: int | None = None) -> float:
        """USD price of one unit of ``asset``. Raises DataError if its series has no value."""
        now = self.view.i
        if self._memo_tick != now:
            self._roll(now)
        if i is None or i == now:
            memo, j = self._asset_now, now
        elif i == now - 1:
            memo, j = self._asset_prev, i
        else:
            memo, j = None, i
        if memo is not None:
            hit = memo.get(asset)
            if hit is not None:
                return hit
        spec = self.assets[asset]
        if spec.usd is not None:
            v = spec.usd
        elif spec.usd_field:
            v = self.view.require(spec.usd_field, j)
        else:
            v = self.view.require(spec.eth_rate_field, j) * self.eth_usd(j)
        if memo is not None:
            memo[asset] = v
        return v

    def eth_rate(self, asset: str, i: int | None = None) -> float:
        """Units of ETH one unit of an ETH-linked asset is worth (1 for ETH/WETH, the oracle rate for LSTs)."""
        spec = self.assets[asset]
        if spec.eth_rate_field:
            return self.view.require(spec.eth_rate_field, i)
        return 1.0

    def share_usd(self, i: int | None = None) -> float:
        return 1.0 if self.share_class == "USDT" else self.asset_usd(self.share_class, i)

    def delta_asset(self, asset: str) -> str:
        return self.assets[asset].delta_asset

    def mark(self, key: str, i: int | None = None) -> float:
        """Perp mark price; the reference asset price while the venue's own feed is stale or quarantined."""
        now = self.view.i
        if self._memo_tick != now:
            self._roll(now)
        if i is None or i == now:
            memo = self._mark_now
        elif i == now - 1:
            memo = self._mark_prev
        else:
            memo = None
        if memo is not None:
            hit = memo.get(key)
            if hit is not None:
                return hit
        refs = self._mark_refs.get(key)
        if refs is None:
            refs = self._mark_refs[key] = self._mark_refs_of(key)
        t = now if i is None else i
        if refs[0][t]:  # view.fresh(mark field, stale_after_h, i), from its flags
            v = refs[1][t]  # view.get: a fresh field is a loaded column
            if memo is not None:
                memo[key] = v
            return v
        inf = self.info[key]
        seen = self.stale_marks.setdefault(key, [0, -1])  # [hours counted, last tick counted]
        if seen[1] != t:
            seen[0] += 1
            seen[1] = t
        return self.asset_usd(inf.asset, i)

    def _mark_refs_of(self, key: str) -> tuple[list[bool], list[float] | None]:
        """What :meth:`mark` reads of perp ``key``: the view's freshness flags of its mark field
        and the field's column (None if not loaded: then every flag is False). Both are the
        view's own lists, kept for its life and grown in place (MarketView.fresh_flags, extend)."""
        inf = self.info[key]
        return self.view.fresh_flags(inf.mark_field, inf.stale_after_h), self.view.cols.get(inf.mark_field)

    def mark_columns(self, key: str) -> tuple[list[bool], list[float] | None]:
        """What :meth:`mark` reads of perp ``key`` at a tick ``t``: ``(flags, column)``, the
        mark being ``column[t]`` where ``flags[t]`` (fresh), else the reference price (and the
        hour counted in ``stale_marks``); column None when the view does not hold the field.
        The view's own lists, grown in place: do not change them."""
        refs = self._mark_refs.get(key)
        if refs is None:
            refs = self._mark_refs[key] = self._mark_refs_of(key)
        return refs

    def mark_is_fresh(self, key: str, i: int | None = None) -> bool:
        return self.mark_columns(key)[0][self.view.i if i is None else i]  # view.fresh, from its flags

    def tradable(self, key: str, i: int | None = None) -> bool:
        """A perp may be traded only while its mark is fresh and its funding series is current
        (a settlement missing for over two intervals means the venue's data is down)."""
        refs = self._trade_refs.get(key)
        if refs is None:
            refs = self._tradable_refs(key)
            # a series not loaded yet (neither flags nor ages) may be added to the view later: not kept
            if refs[1] is not None or refs[2] is not None:
                self._trade_refs[key] = refs
        flags, current, ages, max_age = refs
        j = self.view.i if i is None else i
        if not flags[j]:  # mark_is_fresh
            return False
        if current is not None:  # no funding to check, or ages[j] <= max_age compared once for the window
            return current is True or current[j]
        # view.age is inf for a series the view does not hold
        return (ages[j] if ages is not None else math.inf) <= max_age

    def tradable_all(self, key: str) -> list[bool]:
        """:meth:`tradable` of ``key`` at every tick of the view, in order (the same flags, from
        the same values as arrays: MarketView.fresh_array / ages_array, which read the data's own
        arrays rather than build the lists and convert them back)."""
        import numpy as np  # a backtest's quiet stretches only

        inf = self.info[key]
        view, n = self.view, self.view.n
        fresh = view.fresh_array(inf.mark_field, inf.stale_after_h)
        if not inf.funding_field:
            return fresh.tolist()
        max_age = self.funding_max_age[key]
        if max_age is None:  # a comparison with None raises in tradable(): let it, tick by tick
            return [self.tradable(key, j) for j in range(n)]
        ages = view.ages_array(inf.funding_field)
        age = np.full(n, math.inf) if ages is None else ages
        return (fresh & (age <= max_age)).tolist()

    def _tradable_refs(self, key: str) -> tuple[list[bool], list[bool] | bool | None, list[float] | None, float | None]:
        """What :meth:`tradable` reads of ``key``: the view's freshness flags of its mark, then
        whether its funding series is current: True (no funding field, nothing to check) or, per
        tick, its age within the largest allowed (MarketView.age_flags: a loaded series and a
        numeric largest age, so the ages' list is never built); otherwise None, and the series'
        ages (None: a series the view does not hold, age inf) and that largest age, compared tick
        by tick. The view keeps these lists for its life and grows them in place
        (MarketView.fresh_flags / age_flags / ages_of)."""
        inf = self.info[key]
        flags = self.view.fresh_flags(inf.mark_field, inf.stale_after_h)
        if not inf.funding_field:
            return flags, True, None, None
        max_age = self.funding_max_age[key]
        current = self.view.age_flags(inf.funding_field, max_age)
        if current is not None:
            return flags, current, None, max_age
        return flags, None, self.view.ages_of(inf.funding_field), max_age

    def index(self, key: str, i: int | None = None) -> float:
        return self.view.require(self.info[key].index_field, i)

    # ------------------------------------------------------------------ values
    def amount(self, key: str, qty: float, i: int | None = None) -> float:
        """Asset units of a position: scaled x index for Aave, the quantity otherwise."""
        inf = self.info[key]
        if inf.index_field:
            return qty * self.view.require(inf.index_field, i)
        return qty

    def value(self, key: str, qty: float, entry: float = 0.0, i: int | None = None) -> float:
        """Value in the share class of ``qty`` (book units) of instrument ``key``."""
        if qty == 0.0:
            return 0.0
        const = self._value_const.get(key)
        if const is not None:  # a fixed key: the same arithmetic with its constant prices
            sign, usd, share = const
            return sign * qty * usd / share
        inf = self.info[key]
        if inf.ptype == "Perp":
            return perp_value(qty, self.mark(key, i), entry, self.share_usd(i))
        sign = -1.0 if inf.ptype == "debtToken" else 1.0
        # :meth:`amount`, inlined (the monitors value every position several times a tick)
        amount = qty * self.view.require(inf.index_field, i) if inf.index_field else qty
        return holding_value(sign, amount, self.asset_usd(inf.asset, i), self.share_usd(i))

    def value_and_delta(self, key: str, qty: float) -> tuple[float, float]:
        """``(value(key, qty), delta(key, qty)[1])`` at the current tick for a non-perp ``key``
        whose per-unit value moves (not :meth:`value_is_static`): the same operations as the two
        calls, the position's asset units (qty x index) read once. Raises DataError as they do."""
        inf = self.info[key]
        sign = -1.0 if inf.ptype == "debtToken" else 1.0
        amount = qty * self.view.require(inf.index_field) if inf.index_field else qty
        value = holding_value(sign, amount, self.asset_usd(inf.asset), self.share_usd())
        const = self._delta_const.get(key)
        if const is not None:  # delta(), for a key without index or moving rate
            units = qty
            if const[2] is not None:
                units *= const[2]
            return value, const[0] * units
        if self.assets[inf.asset].delta_asset == "ETH":
            amount *= self.eth_rate(inf.asset)
        return value, sign * amount

    def value_is_static(self, key: str) -> bool:
        """True when :meth:`value` of ``key`` is the same float at every tick for a given qty
        (a fixed key: constant USD price, no index, USDT share class), so callers may keep it."""
        return key in self._value_const

    def delta_is_static(self, key: str) -> bool:
        """True when :meth:`delta` of ``key`` is the same at every tick for a given qty (no index,
        no moving rate), so callers may keep it."""
        return key in self._delta_const

    def delta(self, key: str, qty: float, i: int | None = None) -> tuple[str, float]:
        """(delta asset, exposure in its units): ETH-linked tokens count ETH at their rate."""
        const = self._delta_const.get(key)
        if const is not None:  # no index, no rate that moves: the same arithmetic, constants read once
            sign, da, rate = const
            units = qty
            if rate is not None:
                units *= rate
            return da, sign * units
        inf = self.info[key]
        if inf.ptype == "Perp":
            return self.delta_asset(inf.asset), qty
        sign = -1.0 if inf.ptype == "debtToken" else 1.0
        da = self.delta_asset(inf.asset)
        units = self.amount(key, qty, i)
        if da == "ETH":
            units *= self.eth_rate(inf.asset, i)
        return da, sign * units

    def factors(self, key: str, i: int) -> tuple[float, list[tuple[str, float]]]:
        """(sign, [(category, factor)]) with value = sign x qty x product(factors).

        Not for perps (see :meth:`perp_parts`). Categories: supply_yield (liquidity index),
        borrow_cost (borrow index), staking_yield (LST rate), price_delta (asset and share
        class prices). Cached for ``view.i`` and ``view.i - 1``: the result is shared, callers
        must not change it.
        """
        now = self.view.i
        if self._memo_tick != now:
            self._roll(now)
        memo = self._factors_now if i == now else self._factors_prev if i == now - 1 else None
        if memo is not None:
            hit = memo.get(key)
            if hit is not None:
                return hit
        out = self._factors(key, i)
        if memo is not None:
            memo[key] = out
        return out

    def _factors(self, key: str, i: int) -> tuple[float, list[tuple[str, float]]]:
        inf = self.info[key]
        out: list[tuple[str, float]] = []
        sign = 1.0
        if inf.ptype == "aToken":
            out.append(("supply_yield", self.view.require(inf.index_field, i)))
        elif inf.ptype == "debtToken":
            sign = -1.0
            if inf.index_field:
                out.append(("borrow_cost", self.view.require(inf.index_field, i)))
        spec = self.assets[inf.asset]
        if spec.usd is not None:
            out.append(("price_delta", spec.usd))
        elif spec.usd_field:
            out.append(("price_delta", self.view.require(spec.usd_field, i)))
        else:
            cat = "staking_yield" if spec.delta_asset == "ETH" else "price_delta"
            out.append((cat, self.view.require(spec.eth_rate_field, i)))
            out.append(("price_delta", self.eth_usd(i)))
        if self.share_class != "USDT":
            out.append(("price_delta", 1.0 / self.share_usd(i)))
        return sign, out

    def perp_parts(self, key: str, i: int) -> tuple[float, float, float]:
        """(mark, reference price of the asset, 1 / share class price) for perp attribution.
        Cached like :meth:`factors` while the mark is the venue's own (a stale mark is
        re-read, so its hour is counted as :meth:`mark` counts it)."""
        now = self.view.i
        if self._memo_tick != now:
            self._roll(now)
        if i == now:
            memo, marks = self._parts_now, self._mark_now
        elif i == now - 1:
            memo, marks = self._parts_prev, self._mark_prev
        else:
            memo = marks = None
        if memo is not None:
            hit = memo.get(key)
            if hit is not None:
                return hit
        inf = self.info[key]
        out = self.mark(key, i), self.asset_usd(inf.asset, i), 1.0 / self.share_usd(i)
        if memo is not None and key in marks:
            memo[key] = out
        return out


def is_nan(x: float) -> bool:
    return isinstance(x, float) and math.isnan(x)
