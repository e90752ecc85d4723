"""Simulated venues driven by the real data: operations, funding, risk and liquidations.

Every operation turns into :class:`~trimtab.accounting.book.Fill` objects; the caller applies
them. Formulas and their sources:

* swap (DEX): out = in x price x (1 - (pool fee + execution cost)) where the pool fee is the
  pair's fee tier (``fee_bps`` of the pair in the venue YAML) and the execution cost the
  spread+slippage of ``data/static.json`` ``execution_costs_bps`` for the pair, interpolated
  log-linearly in trade size between the table's 10k/100k/1m sizes and scaled by the config's
  cost multiplier (:mod:`trimtab.venues.costs`; none for a pair without ``cost_pair``). LST <->
  ETH swaps are priced at the oracle rate (the data has no LST pool series) less the same costs;
* stake: LST units = ETH / oracle rate (EtherFi and Lido mint at the exchange rate);
* Aave supply/withdraw/borrow/repay move scaled balances: scaled = amount / index;
* perps: linear, USDT-margined; fill = mark x (1 +/- execution cost), taker fee x |size| x fill
  price (the exchanges charge the taker fee on the filled notional, quantity x fill price,
  not on the mark; the fill fee of a stop is on its stop fill price the same way);
  funding at each settlement = -size x mark x funding_rate (positive rate: longs pay);
* gas = gas units (``gas_units`` in static.json, from operation_gas_costs_summary) x gas price
  (gas.ethereum.gas_price_gwei) x 1e-9 ETH, paid from ``wallet:BaseToken:ETH``;
* Aave health factor, eMode per asset, borrow checks and liquidations (close factor, bonus,
  dust, deep-underwater scaling) as aave-v3-origin v3.3 computes them, in :mod:`trimtab.venues.aave`;
* perp accounts: margin balance, tiered maintenance margin, liquidation prices and
  liquidations as the exchanges compute them, in :mod:`trimtab.venues.perps` (formulas and
  sources in :mod:`trimtab.venues.margin`).
"""
from __future__ import annotations

import math

from ..accounting.book import Book, Fill, Leg
from ..config.load import Strategy
from ..data.feed import DataError
from ..errors import ExecutionError
from ..keys import parse_key
from . import aave, perps
from .costs import interp_bps, pair_label, swap_note
from .pricing import Pricing

GAS_FIELD = "gas.ethereum.gas_price_gwei"
WALLET_ETH = "wallet:BaseToken:ETH"


def bucket(notional_usd: float) -> str:
    """Execution-cost size bucket of the lookup table: '10k', '100k' or '1m' (for reading the
    table; the cost itself is interpolated between buckets, :func:`trimtab.venues.costs.interp_bps`)."""
    n = abs(notional_usd)
    return "10k" if n <= 10_000 else "100k" if n <= 100_000 else "1m"


class SimVenues:
    """Venue models for one strategy over one market view.

    Args:
        strategy: venues and instruments from YAML.
        pricing: prices and values at the current tick.
        static: ``data/static.json`` (gas units, execution costs).
    """

    def __init__(self, strategy: Strategy, pricing: Pricing, static: dict):
        self.s = strategy
        self.px = pricing
        self.view = pricing.view
        self.gas_units: dict[str, float] = static["gas_units"]
        self.exec_costs: dict[str, dict[str, float]] = static["execution_costs_bps"]
        self.venues = strategy.venues
        self.lending = [n for n, v in self.venues.items() if v.model == "aave_v3"]
        self.emode = aave.account_emode(strategy)   # lending venue -> the account's eMode category
        self.perp_venues = [n for n, v in self.venues.items() if v.model == "cex_perp"]
        self.perp_keys = [k for k, (vn, _) in strategy.instruments.items() if parse_key(k).position_type == "Perp"]
        # Margin ratio below which the kernel asks liquidations(): with perps open, always -- an
        # intrabar move can reach a liquidation price whatever the close says; venues.perps checks exactly.
        self.max_maintenance = math.inf if self.perp_venues else 0.0
        self.margin_keys: dict[str, list[str]] = {}
        for k, (vn, _) in strategy.instruments.items():
            if parse_key(k).position_type == "Margin":
                self.margin_keys.setdefault(vn, []).append(k)
        # Each venue's perp keys, in perp_keys order (venues.perps sums over them in that order).
        self.perp_keys_of: dict[str, list[str]] = {v: [k for k in self.perp_keys if k.startswith(v + ":")] for v in self.venues}
        # perp key -> (bar low field, bar high field): the hour's adverse extremes (venues.perps._crossed)
        self.extreme_fields: dict[str, tuple[str, str]] = {}
        for k in self.perp_keys:
            if pricing.info[k].mark_field:
                base = pricing.info[k].mark_field.rsplit(".", 1)[0]
                self.extreme_fields[k] = (f"{base}.low", f"{base}.high")
        self._risk = _RiskMemo(None, -1, -1)
        # lending venue -> (book, book.version, its positions): venues.aave._held, kept per book version
        self.aave_held: dict[str, tuple] = {}
        self.perps_static: dict[str, tuple] = {}  # perp venue -> venues.perps._static (venue YAML facts)
        self.aave_lt: dict[tuple[str, str], float] = {}  # (lending venue, asset) -> LT in the account's eMode (venues.aave.health)
        self.stops: dict[str, tuple[float, float]] = {}  # perp key -> (take_profit, stop_loss)
        self.funding_proxies: dict[str, int] = {}
        self.funding_missing: dict[str, int] = {}
        self.last_rate: dict[str, float] = {}
        self._funding_facts: list | None = None  # funding()'s per-key catalog facts (_funding_facts_of), built on first use

    def snapshot(self) -> dict:
        """What changes tick to tick, as plain data: ``stops`` (perp key -> [take profit, stop
        loss]), ``last_rate`` (funding rate by perp key), ``funding_proxies``/``funding_missing``
        (settlement counts by perp key)."""
        last_rate, proxies, missing = self.funding_state()
        return {"stops": {k: list(v) for k, v in self.stops.items()}, "last_rate": last_rate,
                "funding_proxies": proxies, "funding_missing": missing}

    def restore(self, snap: dict) -> None:
        """Load a :meth:`snapshot`."""
        self.stops = {k: (v[0], v[1]) for k, v in snap["stops"].items()}
        self.restore_funding((snap["last_rate"], snap["funding_proxies"], snap["funding_missing"]))

    def funding_state(self) -> tuple[dict[str, float], dict[str, int], dict[str, int]]:
        """The part of :meth:`snapshot` that :meth:`funding` changes (copies of ``last_rate``,
        ``funding_proxies``, ``funding_missing``), cheaper to take: a quiet span keeps it after
        each settlement it works out ahead (trimtab.engine.quiet)."""
        return dict(self.last_rate), dict(self.funding_proxies), dict(self.funding_missing)

    def restore_funding(self, state: tuple[dict[str, float], dict[str, int], dict[str, int]]) -> None:
        """Load a :meth:`funding_state` (copied), the rest left as it is."""
        self.last_rate, self.funding_proxies, self.funding_missing = dict(state[0]), dict(state[1]), dict(state[2])

    # ------------------------------------------------------------------ fields & costs
    def fields(self) -> set[str]:
        out = {GAS_FIELD}
        for v in self.venues.values():
            for p in (v.pairs or {}).values():
                if p.price_field:
                    out.add(p.price_field)
            if v.lst:
                out.add(v.lst.rate_field)
                if v.lst.yield_field and "unstake" in v.operations:  # the queue route's forgone yield
                    out.add(v.lst.yield_field)
        for v in self.venues.values():  # CEX spot routes (trimtab.planner.routes.cex_spot)
            out |= {m.price_field for m in (v.spot_markets or {}).values()}
        for k in self.perp_keys:  # the hour's extremes: a liquidation price reached inside the hour (venues.perps)
            base = self.px.info[k].mark_field.rsplit(".", 1)[0]
            out |= {f"{base}.high", f"{base}.low"}
        return out

    def exec_cost_bps(self, pair: str, notional_usd: float) -> float:
        """Spread + slippage (bps) of a ``notional_usd`` trade on ``pair``'s row of the table,
        interpolated log-linearly in size (:func:`trimtab.venues.costs.interp_bps`) and scaled by
        the config's cost multiplier. Raises ExecutionError for a pair the table lacks."""
        try:
            return interp_bps(self.exec_costs[pair], notional_usd) * self.s.config.costs.multiplier
        except KeyError:
            raise ExecutionError(f"no execution cost for pair {pair!r} in data/static.json (have: {', '.join(sorted(self.exec_costs))})") from None

    def gas_eth(self, gas_op: str | None) -> float:
        """ETH cost of a gas operation at the current gas price."""
        if not gas_op:
            return 0.0
        return self.gas_units[gas_op] * self.view.require(GAS_FIELD) * 1e-9

    def gas_fill(self, tick: int, venue: str, operation: str, gas_op: str | None) -> Fill | None:
        eth = self.gas_eth(gas_op)
        if eth <= 0:
            return None
        return Fill(tick, venue, operation, "gas", [Leg(WALLET_ETH, -eth, eth)], note=f"{self.gas_units[gas_op]:.0f} gas units ({gas_op})")

    def _not_quarantined(self, field: str | None, venue: str) -> None:
        """Refuse an operation priced by a series whose latest row failed the data checks
        (trimtab.data.quality): the value it would use is a fallback, not a market."""
        if field and self.view.quarantined(field):
            raise ExecutionError(f"{field} is quarantined at {self.view.time:%Y-%m-%d %H:%M}Z (bad data); not trading on {venue}")

    def op(self, venue: str, operation: str):
        ops = self.venues[venue].operations
        if operation not in ops:
            raise ExecutionError(f"venue {venue!r} does not support operation {operation!r} (supported: {', '.join(ops)})")
        return ops[operation]

    # ------------------------------------------------------------------ operations
    def swap_quote(self, venue: str, sell: str, buy: str, amount: float) -> tuple[float, float, str | None, float]:
        """(amount out, price of sell in buy units, price field, cost bps) for a DEX swap; cost =
        the pair's pool fee tier + interpolated spread/slippage (:meth:`swap_split`)."""
        out, price, field, fee, slip, _ = self.swap_split(venue, sell, buy, amount)
        return out, price, field, fee + slip

    def pool_fee_bps(self, venue: str, pair: str) -> float:
        """Fee tier (bps) of ``pair``'s pool on a DEX venue: the pair's ``fee_bps``, else the
        venue's ``swap.fee_bps``."""
        p = (self.venues[venue].pairs or {})[pair]
        return p.fee_bps if p.fee_bps is not None else self.op(venue, "swap").fee_bps

    def swap_cost_bps(self, venue: str, sell: str, buy: str, notional_usd: float) -> float:
        """Pool fee + interpolated spread/slippage (bps) of a ``notional_usd`` swap between
        ``sell`` and ``buy`` on a DEX venue (no price read: for estimates). Raises ExecutionError
        without a pair."""
        for name, p in (self.venues[venue].pairs or {}).items():
            if set(name.split("/")) == {_canon(sell), _canon(buy)}:
                return self.pool_fee_bps(venue, name) + (self.exec_cost_bps(p.cost_pair, notional_usd) if p.cost_pair else 0.0)
        raise ExecutionError(f"venue {venue!r} has no pair for {sell}/{buy} (pairs: {', '.join(self.venues[venue].pairs or {})})")

    def swap_split(self, venue: str, sell: str, buy: str, amount: float) -> tuple[float, float, str | None, float, float, str]:
        """(amount out, price of sell in buy units, price field, pool fee bps, spread+slippage
        bps, route label) for swapping ``amount`` of ``sell``: out = amount x price x (1 - (fee +
        slippage) / 1e4). Raises ExecutionError without a pair or on stale data."""
        v = self.venues[venue]
        pairs = v.pairs or {}
        base_quote = None
        for name, p in pairs.items():
            b, q = name.split("/")
            if {b, q} == {_canon(sell), _canon(buy)}:
                base_quote = (b, q, p)
                break
        if base_quote is None:
            raise ExecutionError(f"venue {venue!r} has no pair for {sell}/{buy} (pairs: {', '.join(pairs)})")
        b, q, p = base_quote
        if p.price_field:
            if not self.view.fresh(p.price_field, 3.0):
                raise ExecutionError(f"{p.price_field} is stale at {self.view.time:%Y-%m-%d %H:%M}Z; not swapping on {venue}")
            base_in_quote = self.view.get(p.price_field)
        else:
            lst = b if b not in ("ETH", "WETH") else q
            self._not_quarantined(self.px.assets[lst].eth_rate_field, venue)
            base_in_quote = self.px.eth_rate(lst)
        price = base_in_quote if _canon(sell) == b else 1.0 / base_in_quote
        notional = amount * self.px.asset_usd(sell)
        name = f"{b}/{q}"
        fee = self.pool_fee_bps(venue, name)
        slip = self.exec_cost_bps(p.cost_pair, notional) if p.cost_pair else 0.0
        return amount * price * (1 - (fee + slip) / 1e4), price, p.price_field, fee, slip, pair_label(venue, name, fee)

    def swap(self, tick: int, venue: str, sell: str, buy: str, amount: float) -> Fill:
        out, price, field, fee, slip, route = self.swap_split(venue, sell, buy, amount)
        return Fill(tick, venue, "swap", "trading_fees",
                    [Leg(f"wallet:BaseToken:{sell}", -amount, amount), Leg(f"wallet:BaseToken:{buy}", out, out)],
                    price=price, price_field=field or "oracle rate",
                    note=swap_note(sell, buy, route, fee, slip, amount * self.px.asset_usd(sell) / self.px.share_usd()))

    def stake(self, tick: int, venue: str, eth: float) -> Fill:
        lst = self.venues[venue].lst
        self._not_quarantined(lst.rate_field, venue)
        rate = self.view.require(lst.rate_field)
        units = eth / rate
        return Fill(tick, venue, "stake", "trading_fees",
                    [Leg(WALLET_ETH, -eth, eth), Leg(f"wallet:BaseToken:{lst.token}", units, units)],
                    price=rate, price_field=lst.rate_field, note=f"mint {lst.token} at the oracle rate")

    def unstake(self, tick: int, venue: str, units: float) -> tuple[Fill, float]:
        """Request a withdrawal of ``units`` of the venue's LST through its queue: the LST leaves
        the wallet and ``units x oracle rate`` ETH is in transit (``wallet:Transit:ETH``) until the
        queue pays out after ``unstake.latency_s``. The ETH amount is fixed at the request (EtherFi
        and Lido both lock the rate when the request is made: EtherFi docs "Unstaking", Lido docs
        "Withdrawals"); returns (fill, ETH in transit)."""
        lst = self.venues[venue].lst
        self.op(venue, "unstake")
        self._not_quarantined(lst.rate_field, venue)
        rate = self.view.require(lst.rate_field)
        eth = units * rate
        return Fill(tick, venue, "unstake", "trading_fees",
                    [Leg(f"wallet:BaseToken:{lst.token}", -units, units), Leg("wallet:Transit:ETH", eth, eth)],
                    price=rate, price_field=lst.rate_field,
                    note=f"{lst.token}->ETH via {venue} withdrawal queue: pool fee 0.0000 + spread/slippage 0.0000 bps"), eth

    def aave(self, tick: int, venue: str, operation: str, key: str, amount: float) -> Fill:
        """supply / withdraw (aToken key) or borrow / repay (debtToken key), ``amount`` in asset units."""
        self.op(venue, operation)
        self._not_quarantined(self.px.info[key].index_field, venue)
        idx = self.px.index(key)
        asset = self.px.info[key].asset
        wkey = f"wallet:BaseToken:{'ETH' if asset in ('WETH', 'ETH') else asset}"
        if operation == "borrow":
            aave.check_borrow(self, venue, asset)
        scaled = amount / idx
        sign = {"supply": (1, -1), "withdraw": (-1, 1), "borrow": (1, 1), "repay": (-1, -1)}[operation]
        return Fill(tick, venue, operation, "trading_fees",
                    [Leg(key, sign[0] * scaled, sign[0] * amount), Leg(wkey, sign[1] * amount, sign[1] * amount)],
                    price=idx, price_field=self.px.info[key].index_field, note="scaled = amount / index")

    def flash(self, tick: int, venue: str, operation: str, amount: float) -> Fill:
        self.op(venue, operation)
        key = f"{venue}:debtToken:flashWETH"
        sign = 1 if operation == "flash_borrow" else -1
        fee = amount * self.venues[venue].operations[operation].fee_bps / 1e4
        legs = [Leg(key, sign * amount, sign * amount), Leg(WALLET_ETH, sign * amount - fee, sign * amount - fee)]
        return Fill(tick, venue, operation, "trading_fees", legs, note="atomic only")

    def perp_trade(self, tick: int, key: str, size: float) -> tuple[Fill, float]:
        """Trade ``size`` contracts (signed) at mark +/- execution cost; returns (fill, price)."""
        venue = self.px.info[key].venue
        if not self.px.tradable(key):
            why = "quarantined (bad data)" if self.view.quarantined(self.px.info[key].mark_field) else "stale"
            raise ExecutionError(f"{venue} data for {key} is {why} at {self.view.time:%Y-%m-%d %H:%M}Z (mark or funding); not trading on {venue}")
        mark = self.px.mark(key)
        spec = self.s.instruments[key][1]
        notional = abs(size) * mark
        op = self.op(venue, "trade")
        if notional < op.min_notional:
            raise ExecutionError(f"{venue} order of {notional:.2f} USDT is below the minimum notional {op.min_notional}")
        slip = self.exec_cost_bps(spec.cost_pair, notional) / 1e4
        price = mark * (1 + slip if size > 0 else 1 - slip)
        fee = abs(size) * price * op.fee_bps / 1e4
        margin = f"{venue}:Margin:USDT"
        fill = Fill(tick, venue, "trade", "trading_fees", [Leg(key, size, size), Leg(margin, -fee, -fee)],
                    price=price, price_field=self.px.info[key].mark_field,
                    note=f"mark {mark:.2f}, slippage {slip * 1e4:.1f} bps, fee {fee:.2f} USDT")
        return fill, price

    def spot_trade(self, tick: int, key: str, units: float, price_field: str, fee_bps: float, cost_pair: str) -> Fill:
        """Buy (units > 0) or sell spot on a CEX against its USDT account at ``price_field`` +/-
        the execution cost of ``cost_pair``, plus ``fee_bps`` (Binance spot taker 0.10%)."""
        venue = self.px.info[key].venue
        if not self.view.fresh(price_field, 3.0):
            raise ExecutionError(f"{price_field} is stale at {self.view.time:%Y-%m-%d %H:%M}Z; not trading spot on {venue}")
        ref = self.view.get(price_field)
        slip = self.exec_cost_bps(cost_pair, abs(units) * ref) / 1e4
        price = ref * (1 + slip if units > 0 else 1 - slip)
        cash = units * price
        fee = abs(cash) * fee_bps / 1e4
        return Fill(tick, venue, "spot_trade", "trading_fees",
                    [Leg(key, units, units), Leg(f"{venue}:Margin:USDT", -cash - fee, -cash - fee)],
                    price=price, price_field=price_field, note=f"ref {ref:.2f}, slippage {slip * 1e4:.1f} bps, fee {fee:.2f} USDT")

    def check_stops(self, tick: int, book: Book) -> list[tuple[Fill, float]]:
        """Resting take-profit / stop-loss orders against the bar that just closed.

        The bar [t-1h, t) is the one whose close is this tick's mark; its high and low say
        whether a stop traded inside it. Stop-loss has priority when both were touched (seed
        001: stop-loss, then take-profit, then end of candle). Fills at the stop price less
        the execution cost, plus the taker fee.
        """
        if not self.stops:  # the usual tick: no resting orders (asked every tick)
            return []
        out = []
        for key, (tp, sl) in list(self.stops.items()):
            s = book.qty(key)
            if not s:
                self.stops.pop(key)
                continue
            inf = self.px.info[key]
            base = inf.mark_field.rsplit(".", 1)[0]
            if not self.px.tradable(key):
                continue
            hi, lo = self.view.get(f"{base}.high"), self.view.get(f"{base}.low")
            long = s > 0
            hit_sl = lo <= sl if long else hi >= sl
            hit_tp = hi >= tp if long else lo <= tp
            if not (hit_sl or hit_tp):
                continue
            level, kind = (sl, "stop_loss") if hit_sl else (tp, "take_profit")
            spec = self.s.instruments[key][1]
            slip = self.exec_cost_bps(spec.cost_pair, abs(s) * level) / 1e4
            price = level * (1 - slip if long else 1 + slip)
            fee = abs(s) * price * self.op(inf.venue, "trade").fee_bps / 1e4
            self.stops.pop(key)
            out.append((Fill(tick, inf.venue, kind, "trading_fees", [Leg(key, -s, -s), Leg(f"{inf.venue}:Margin:USDT", -fee, -fee)],
                             price=price, price_field=f"{base}.{'low' if (long == hit_sl) else 'high'}",
                             note=f"{kind} at {level:.2f} (bar high {hi:.2f}, low {lo:.2f})"), price))
        return out

    def send(self, tick: int, venue: str, operation: str, src: str, dst: str, amount: float) -> Fill:
        """Start a transfer: src -> ``Transit`` of the destination (deposit / withdraw)."""
        op = self.op(venue, operation)
        fee = op.fee
        return Fill(tick, venue, operation, "trading_fees", [Leg(src, -amount, -amount), Leg(dst, amount - fee, amount - fee)],
                    note=f"in transit {op.latency_s:.0f}s" + (f", fee {fee} {parse_key(src).symbol}" if fee else ""))

    # ------------------------------------------------------------------ risk
    def _risk_memo(self, book: Book) -> "_RiskMemo":
        """The risk figures already computed for ``book`` at the current tick.

        Valid while (book object, ``view.i``, ``book.version``) is unchanged: an account's margin
        balance, maintenance, liquidation prices and an Aave health factor read only the book's
        positions and entry prices (changed only by Book.apply / Book.restore, which bump
        ``version``), prices at ``view.i`` (marks -- the fallback to the reference price while a
        feed is stale or quarantined is itself a function of the tick --, asset prices, Aave
        indices) and the static venue YAML. A book mutated behind Book's back is not seen.
        """
        r = self._risk
        if r.book is not book or r.tick != self.view.i or r.version != book.version:
            r = self._risk = _RiskMemo(book, self.view.i, book.version)
        return r

    def aave_health(self, book: Book, venue: str) -> tuple[float, float, float, float]:
        """(health_factor, ltv, collateral_usd, debt_usd) of a lending venue, per asset for the
        account's eMode category (:func:`trimtab.venues.aave.health`); HF inf without debt.
        Computed once per tick and book state (:meth:`_risk_memo`)."""
        memo = self._risk_memo(book).health
        hit = memo.get(venue)
        if hit is None:
            hit = memo[venue] = aave.health(self, book, venue)
        return hit

    def perp_account(self, book: Book, venue: str) -> tuple[float, float, float]:
        """(margin balance USD, position notional USD, margin ratio = balance / notional) of a
        CEX account; ratio inf without positions. The balance is what the exchange margins:
        every ``Margin`` asset at its price x its collateral value ratio (multi-asset margin:
        BTC collateral at the venue's haircut, USDT at 1) plus unrealised P&L
        (:func:`trimtab.venues.perps.margin_balance`). Computed once per tick and book state
        (:meth:`_risk_memo`)."""
        memo = self._risk_memo(book).account
        hit = memo.get(venue)
        if hit is None:
            eq, notional = perps.margin_balance(self, book, venue)
            hit = memo[venue] = (eq, notional, (eq / notional if notional > 0 else math.inf))
        return hit

    def perp_maintenance(self, book: Book, venue: str) -> float:
        """Maintenance margin (USD) of a CEX account from the exchange's risk-limit brackets.
        Computed once per tick and book state, with the liquidation prices (:meth:`perp_risk`)."""
        return self.perp_risk(book, venue)[3]

    def perp_liquidation_prices(self, book: Book, venue: str) -> dict[str, float | None]:
        """Liquidation price of each open perp of ``venue`` (Binance's cross-margin formula),
        ``{perp key: USD or None}``. Computed once per tick and book state (:meth:`perp_risk`):
        the dict is shared, callers must not change it."""
        return self.perp_risk(book, venue)[4]

    def perp_risk(self, book: Book, venue: str) -> tuple[float, float, float, float, dict[str, float | None]]:
        """Everything the risk monitor and the liquidation check read of a CEX account, in one
        memoised lookup (:meth:`_risk_memo`): (margin balance USD, notional USD, margin ratio --
        :meth:`perp_account` --, maintenance margin USD, liquidation prices ``{perp key: USD or
        None}``), :func:`trimtab.venues.perps.account_state`. The dict is shared: do not change it."""
        r = self._risk_memo(book)
        hit = r.perp.get(venue)
        if hit is None:
            eq, notional, mm, lps = perps.account_state(self, book, venue)
            ratio = eq / notional if notional > 0 else math.inf
            # the same floats as perp_account's margin_balance, so either may fill the memo
            r.account.setdefault(venue, (eq, notional, ratio))
            hit = r.perp[venue] = (eq, notional, ratio, mm, lps)
        return hit

    def perp_risks(self, book: Book) -> list[tuple[float, float, float, float, dict[str, float | None]]]:
        """:meth:`perp_risk` of every venue of ``perp_venues``, in that order, behind one memo
        lookup (the monitors and the liquidation check read them all every tick). The list and
        its dicts are shared: do not change them."""
        r = self._risk_memo(book)
        out = r.perps
        if out is None:
            out = r.perps = [self.perp_risk(book, v) for v in self.perp_venues]
        return out

    # ------------------------------------------------------------------ venue-side events
    def funding(self, tick: int, book: Book, read: list[str] | None = None) -> list[Fill]:
        """Funding settlements at this tick for every open perp (``read``, when given, gets the
        key of each perp whose mark a settlement read while stale, in order: a quiet span
        replays those reads, which count the stale hours (``Pricing.stale_marks``), when it
        books fills it worked out ahead, trimtab.engine.quiet).

        Funding fields hold a rate only at settlement ticks (NaN elsewhere). At a settlement
        hour of the venue (``funding_hours_utc``) whose rate is missing from the data, the
        position still pays or earns: it is settled at the mean rate of the other venues for
        the same asset at that tick, or failing that at this venue's previous rate, and counted
        in ``funding_proxies`` for the summary (the gap is never a zero). Only a position opened
        before any rate was ever seen is left unsettled, counted in ``funding_missing``.
        """
        out = []
        view, bal, mark_of = self.view, book.bal, self.px.mark
        cols, i = view.cols, view.i
        facts = self._funding_facts
        if facts is None:
            facts = self._funding_facts = self._funding_facts_of()
        for key, venue, field, margin, peers, hours in facts:
            s = bal.get(key, 0.0)
            if not s:
                continue
            col = cols.get(field)
            rate = col[i] if col is not None else view.get(field)  # view.get raises for an absent series
            source = field
            if rate != rate:  # NaN: no settlement in the data at this tick
                got = self._proxy(key, i, peers, hours, self.last_rate)
                if got is None:
                    continue
                rate, source = got
                if rate is None:
                    self.funding_missing[key] = self.funding_missing.get(key, 0) + 1
                    continue
                self.funding_proxies[key] = self.funding_proxies.get(key, 0) + 1
            else:
                self.last_rate[key] = rate
            mark = mark_of(key)
            if read is not None and not self.px.mark_is_fresh(key):
                read.append(key)
            pay = -s * mark * rate
            out.append(Fill(tick, venue, "funding", "funding", [Leg(margin, pay, pay)],
                            price=rate, price_field=source, note=f"{_note_head(-s)}{mark:.2f} x {rate:.6g}"))
        return out

    def funding_block(self, ticks: list[int], book: Book) -> tuple[list[tuple], list[tuple[int, str]]] | None:
        """The settlements :meth:`funding` gives at each of ``ticks`` (ascending) while the
        book's perp sizes stay as they are, as rows instead of fills, without changing anything
        (a quiet span books them column-wise: trimtab.engine.quiet).

        Returns ``(rows, missing)``: per settlement, in :meth:`funding`'s order (tick by tick,
        then ``perp_keys``), ``(tick, perp key, venue, margin key, pay, rate, price field, note,
        stale, proxy)``, the numbers and text of its fill, ``stale`` whether the mark it read was
        stale (:meth:`Pricing.mark` counts that hour when it is booked), ``proxy`` whether its
        rate is a proxy; ``missing``: the ``(tick, perp key)`` left unsettled (no rate yet).
        :meth:`funding_settled` then gives the sim's state as settling them leaves it.

        None when :meth:`funding` must settle them tick by tick: a series it reads is missing
        (it raises there), a margin's value moves with prices, or a payment or rate is not
        finite."""
        view, bal, px = self.view, book.bal, self.px
        cols, usd = view.cols, px.asset_usd
        facts = self._funding_facts
        if facts is None:
            facts = self._funding_facts = self._funding_facts_of()
        held = []
        for key, venue, field, margin, peers, hours in facts:
            s = bal.get(key, 0.0)
            if not s:
                continue
            col = cols.get(field)
            flags, marks = px.mark_columns(key)
            if col is None or not px.value_is_static(margin):
                return None
            held.append((key, venue, field, margin, peers, hours, -s, col, flags, marks, px.info[key].asset, _note_head(-s)))
        last = dict(self.last_rate)
        rows, missing = [], []
        try:
            for t in ticks:
                for key, venue, field, margin, peers, hours, ns, col, flags, marks, asset, head in held:
                    rate, source, proxy = col[t], field, False
                    if rate != rate:  # NaN: no settlement in the data at this tick
                        got = self._proxy(key, t, peers, hours, last)
                        if got is None:
                            continue
                        rate, source = got
                        if rate is None:
                            missing.append((t, key))
                            continue
                        proxy = True
                    else:
                        last[key] = rate
                    stale = not flags[t]
                    mark = usd(asset, t) if stale else marks[t]  # Pricing.mark's reference price when stale
                    pay = ns * mark * rate  # -size x mark x rate, as funding() multiplies it
                    if pay - pay != 0.0 or rate - rate != 0.0:  # inf or nan
                        return None
                    rows.append((t, key, venue, margin, pay, rate, source, f"{head}{mark:.2f} x {rate:.6g}", stale, proxy))
        except DataError:
            return None
        return rows, missing

    def _proxy(self, key: str, t: int, peers: list[str | None], hours: frozenset[int],
               last_rate: dict[str, float]) -> tuple[float | None, str | None] | None:
        """The rate perp ``key`` settles at tick ``t`` where the data has none (:meth:`funding`'s
        rule): None off its venue's settlement hours (nothing settles); else ``(mean of the
        other venues' rates at t, "proxy: ...")``, or failing that ``(last_rate[key], "proxy:
        ...")``, or ``(None, None)`` when no rate was ever seen (left unsettled). Raises
        DataError for a peer series the view does not hold."""
        view = self.view
        if not _on_the_hour(view.epoch[t], hours):
            return None
        others = [view.get(f, t) for f in peers]
        others = [r for r in others if not math.isnan(r)]
        if others:
            return sum(others) / len(others), "proxy: mean of other venues"
        if key in last_rate:
            return last_rate[key], "proxy: this venue's previous settlement"
        return None, None

    def funding_settled(self, rows: list[tuple], missing: list[tuple[int, str]]) -> None:
        """Change the funding state as settling :meth:`funding_block`'s ``rows`` and
        ``missing`` does (in their order): ``last_rate`` of a perp is its last rate that was not
        a proxy, ``funding_proxies`` and ``funding_missing`` count the others."""
        last_rate, proxies, unsettled = self.last_rate, self.funding_proxies, self.funding_missing
        for row in rows:
            key = row[1]
            if row[9]:
                proxies[key] = proxies.get(key, 0) + 1
            else:
                last_rate[key] = row[5]
        for _, key in missing:
            unsettled[key] = unsettled.get(key, 0) + 1

    def funding_margins(self) -> frozenset[str]:
        """The keys :meth:`funding`'s fills have their legs on: each perp venue's ``Margin:USDT``."""
        if self._funding_facts is None:
            self._funding_facts = self._funding_facts_of()
        return frozenset(f[3] for f in self._funding_facts)

    def _funding_facts_of(self) -> list[tuple[str, str, str | None, str, list[str | None], frozenset[int]]]:
        """Per perp key, in ``perp_keys`` order, what :meth:`funding` reads of the static
        catalog: (key, venue, funding field, the venue's ``Margin:USDT`` key, the funding fields
        of the other perps of the same asset, in ``perp_keys`` order, for a missing rate's proxy,
        the venue's settlement hours ``funding_hours_utc``)."""
        info = self.px.info
        return [(key, info[key].venue, info[key].funding_field, f"{info[key].venue}:Margin:USDT",
                 [info[k].funding_field for k in self.perp_keys if k != key and info[k].asset == info[key].asset],
                 frozenset(self.venues[info[key].venue].perp.funding_hours_utc))
                for key in self.perp_keys]

    def liquidations(self, tick: int, book: Book) -> list[tuple[Fill, float | None]]:
        """Liquidate unsafe Aave and perp accounts, as the venues would."""
        out: list[tuple[Fill, float | None]] = [(f, None) for f in aave.liquidations(self, tick, book)]
        out.extend(perps.liquidations(self, tick, book))
        return out


class _RiskMemo:
    """Risk figures of one book at one tick and book version, by venue (SimVenues._risk_memo)."""

    __slots__ = ("book", "tick", "version", "account", "perp", "health", "perps")

    def __init__(self, book: Book | None, tick: int, version: int):
        self.book, self.tick, self.version = book, tick, version
        self.perps: list | None = None  # SimVenues.perp_risks, in perp_venues order
        self.account: dict[str, tuple[float, float, float]] = {}
        self.perp: dict[str, tuple[float, float, float, float, dict[str, float | None]]] = {}
        self.health: dict[str, tuple[float, float, float, float]] = {}


def _note_head(neg_size: float) -> str:
    """The start of a funding fill's note, which the mark and rate end (:meth:`SimVenues.funding`)."""
    return f"-size x mark x rate = {neg_size:.4f} x "


def _on_the_hour(epoch: int, hours: frozenset[int]) -> bool:
    """Whether UTC epoch second ``epoch`` falls in minute 0 of one of ``hours`` (0-23): the
    ``time.hour in hours and not time.minute`` of its datetime, without building one."""
    return epoch // 3600 % 24 in hours and not epoch % 3600 // 60


def _canon(asset: str) -> str:
    return "ETH" if asset == "WETH" else asset
