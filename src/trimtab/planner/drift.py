"""The token drift engine (seed 002): a wallet basket held at target weights.

A ``token_weights`` target (:mod:`trimtab.templates.token_weights`) names wallet
tokens with weights. At a tick:

* **prices** (USD per token) come from the target's ``price_source``: ``ORACLE`` is the wallet's
  asset price table (venues/wallet.yaml: ETH at the Bybit spot close, BTC at the Binance spot
  close, USDT = 1); ``ROUTER`` is the price of the token's pair on the swap venue (ETH: the
  Uniswap v3 WETH/USDT pool close). A pair without its own series (WBTC/USDT on the router
  venue: the data has no WBTC pool) is the same series as the oracle, so both sources agree.
* **health** per token: ``NO_PRICE`` (no value yet), ``STALE`` (the price under the chosen
  source is older than ``max_price_age_h``), ``DIVERGED`` (router and oracle differ by more than
  ``max_price_divergence``), else ``HEALTHY``. Unhealthy tokens are neither measured for the
  trigger (``max_drift``) nor traded (seed: "Skip unhealthy tokens").
* **drift** = (value - target value) / target value, with target value = weight x the basket's
  investable value (its value less withdrawals requested; the quote token also holds what is
  to be paid out). ``max_drift`` is the largest |drift| over healthy tokens.
* **matching** (seed "Trade Matching"): oversized tokens (value above target, largest excess
  first) are paired with undersized ones (largest need first), each pair trading
  min(excess, need) USD -- the exact amounts back to target. A pair under ``min_trade_usd`` is
  skipped (logged), one over ``max_trade_usd`` is cut to it (logged; the rest waits for the
  next rebalance). Amounts under :data:`DUST_USD` are not trades.
* **paths**: every trade is a swap against ``quote`` on ``swap_venue``; a trade between two
  non-quote tokens is two swaps (ETH -> USDT -> BTC), each paying its pair's pool fee tier, the
  execution-cost table's spread + slippage at its size (interpolated, trimtab.venues.costs) and
  its own gas.
* **slippage guard** (seed "Slippage Protection"): the quoted output of a path is its input at
  the source prices, amount_out_min = quoted x (1 - ``slippage_tolerance``); the path's expected
  fill (the venue model at this tick: pool price less fee and execution cost) below that
  minimum means the trade is not sent, and it is logged with both numbers. In a backtest the
  fill happens at the tick it is planned, so the expected fill is the fill.
* **order**: sells (legs into the quote) first, then buys, each buy waiting for every sell
  (exit before enter); ETH is bought first so the wallet can pay the gas of the other buys.

Everything here is pure: :class:`Basket` reads prices and the book and returns values, trades
and plans; it keeps no state between ticks except the plans it built (:attr:`Basket.planned`,
drained by :class:`trimtab.portfolio.drift.DriftTracker` for the rebalance log) and two caches
that change no answer: the price table of the current tick and the values the parameters give
(the monitors ask for the drift every tick; see :meth:`Basket.prices`).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..accounting.book import Book
from ..data.market import series_of
from ..venues.pricing import Pricing
from ..errors import ExecutionError
from ..venues.sim import SimVenues
from ..templates.registry import template_for
from ..templates.token_weights import DIVERGED, HEALTHY, NO_PRICE, STALE
from .plan import Instruction, Plan, Step

#: A matched amount below this (USD) is rounding, not a trade.
DUST_USD = 1e-6


@dataclass
class TokenState:
    """One basket token at a tick. Prices in USD per token; values in USD."""

    token: str
    key: str
    weight: float
    qty: float
    price: float  # under the configured source (nan if none)
    oracle: float
    router: float
    value: float
    target: float
    drift: float  # (value - target) / target; nan without a price
    health: str
    reason: str = ""


@dataclass
class BasketState:
    """The basket at a tick: its tokens, total and investable value (USD) and largest drift."""

    tokens: list[TokenState]
    total: float
    investable: float
    max_drift: float
    unhealthy: int

    def by_token(self) -> dict[str, TokenState]:
        return {t.token: t for t in self.tokens}


@dataclass
class Trade:
    """A matched trade of ``usd`` from ``sell`` to ``buy`` and what happened to it."""

    sell: str
    buy: str
    usd: float
    path: list[str]
    status: str = "planned"  # planned | skipped | clamped | blocked
    reason: str = ""
    amount_in: float = 0.0
    quoted_out: float = 0.0
    min_out: float = 0.0
    expected_out: float = 0.0
    legs: list[dict] = field(default_factory=list)


def _f(x: float) -> float | None:
    """JSON-safe float (plans are hashed JSON without NaN)."""
    return None if x is None or not math.isfinite(x) else float(x)


class Basket:
    """A ``token_weights`` target over one strategy's prices, venues and parameters.

    Args:
        strategy: the loaded strategy (its only target is ``target``).
        target: the basket.
        px, sim: pricing and venue models of the run.
    """

    def __init__(self, strategy, target, px: Pricing, sim: SimVenues):
        self.s = strategy
        self.t = target
        self.px = px
        self.sim = sim
        self.view = px.view
        self.tokens = [tw.token for tw in target.tokens]
        self.keys = {tok: f"wallet:BaseToken:{tok}" for tok in self.tokens}
        self.quote = target.quote
        self.venue = target.swap_venue
        pairs = sim.venues[target.swap_venue].pairs or {}
        canon = lambda a: "ETH" if a == "WETH" else a  # noqa: E731
        # token -> (router price field, True if the token is the pair's base)
        self.router_field: dict[str, tuple[str | None, bool]] = {}
        for name, p in pairs.items():
            b, q = (canon(x) for x in name.split("/"))
            for tok in self.tokens:
                if {tok, self.quote} == {b, q} and tok != self.quote:
                    self.router_field[tok] = (p.price_field, tok == b)
        assets = px.assets
        # token -> data fields its oracle price reads (for its age)
        self.oracle_fields: dict[str, list[str]] = {}
        for tok in self.tokens:
            a = assets[tok]
            fs = [f for f in (a.usd_field, a.eth_rate_field) if f]
            if a.eth_rate_field:
                fs.append(px.eth_field)
            self.oracle_fields[tok] = fs
        self.planned: list[Plan] = []
        #: (token, wallet key, metric name) in basket order, built once rather than per tick.
        self._rows = [(tok, self.keys[tok], f"drift.{tok}") for tok in self.tokens]
        self._oracle_source = target.price_source == "ORACLE"
        # The series behind each age read, resolved once: view.age(series) reads the same age
        # column as view.age(field) (inf for a series the data lacks) without a string split.
        self._oracle_series = {tok: [series_of(f) for f in fs] for tok, fs in self.oracle_fields.items()}
        self._router_series = {tok: series_of(f) for tok, (f, _) in self.router_field.items() if f}
        # Per-tick caches (see _param_values and prices): the parameters they were computed
        # for, and the tick and limits of the last price table.
        self._pv_params: dict[str, float] | None = None
        self._pv: tuple[dict[str, float], float, float] | None = None
        self._pr_key: tuple[int, float, float] | None = None
        self._pr: dict[str, tuple[float, float, float, str, str]] = {}

    # ------------------------------------------------------------------ parameters
    def value(self, expr, params: dict[str, float]) -> float:
        """A target field (number or expression over parameters) under ``params``."""
        return self.s.target_value(expr, params)

    def weights(self, params: dict[str, float]) -> dict[str, float]:
        """token -> target weight (fractions of the basket's value, summing to 1)."""
        return {tw.token: self.value(tw.weight, params) for tw in self.t.tokens}

    def _param_values(self, params: dict[str, float]) -> tuple[dict[str, float], float, float]:
        """(:meth:`weights`, ``max_price_age_h``, ``max_price_divergence``) under ``params``.

        The three are pure functions of the parameters, so they are kept until ``params``
        compares unequal to the copy they were computed from (a live run can set parameters;
        a NaN value never compares equal, so it only costs a recomputation). The returned
        weights dict is shared: callers must not mutate it.
        """
        if self._pv is None or params is None or params != self._pv_params:
            pv = (self.weights(params), self.value(self.t.max_price_age_h, params), self.value(self.t.max_price_divergence, params))
            if params is None:  # the strategy's own parameters: not ours to watch
                return pv
            self._pv, self._pv_params = pv, dict(params)
        return self._pv

    # ------------------------------------------------------------------ prices
    def _oracle(self, tok: str) -> tuple[float, float]:
        """(USD price, age in hours) from the wallet's asset table; nan without data."""
        try:
            p = self.px.asset_usd(tok)
        except Exception:  # noqa: BLE001 - DataError: no value yet
            return math.nan, math.inf
        fs = self._oracle_series[tok]
        age = self.view.age
        # max over the fields in their order, as max(generator, default=0.0) did
        return p, (age(fs[0]) if len(fs) == 1 else max([age(f) for f in fs], default=0.0))

    def _router(self, tok: str, oracle: dict[str, tuple[float, float]] | None = None) -> tuple[float, float]:
        """(USD price, age) of the token's pair against the quote on the swap venue.
        ``oracle``: :meth:`_oracle` of every token at this tick, when the caller has it."""
        if tok == self.quote:
            return oracle[tok] if oracle is not None else self._oracle(tok)
        fld, is_base = self.router_field.get(tok, (None, True))
        if fld is None:
            return oracle[tok] if oracle is not None else self._oracle(tok)
        v = self.view.get(fld)
        if math.isnan(v) or v <= 0:
            return math.nan, math.inf
        q = (oracle[self.quote] if oracle is not None else self._oracle(self.quote))[0]
        return (v if is_base else 1.0 / v) * q, self.view.age(self._router_series[tok])

    def prices(self, params: dict[str, float]) -> dict[str, tuple[float, float, float, str, str]]:
        """token -> (price under the source, oracle, router, health, reason), USD per token.

        The table is a function of the data at the view's tick and the two limits alone (the
        view's rows never change once read, as trimtab.venues.pricing relies on too), so it is
        kept for ``(view.i, max age, max divergence)``; the returned dict is shared: do not
        mutate it."""
        _, max_age, max_div = self._param_values(params)
        key = (self.view.i, max_age, max_div)
        if key == self._pr_key:
            return self._pr
        # each token's oracle once per tick (the router prices reuse the quote's)
        oracle = {tok: self._oracle(tok) for tok in self.tokens}
        oracle_source = self._oracle_source
        out = {}
        for tok in self.tokens:
            o, oage = oracle[tok]
            r, rage = self._router(tok, oracle)
            price, age = (o, oage) if oracle_source else (r, rage)
            health, reason = HEALTHY, ""
            if math.isnan(price):
                health, reason = NO_PRICE, f"no {self.t.price_source} price yet"
            elif age > max_age:
                health, reason = STALE, f"{self.t.price_source} price is {age:.0f}h old (> {max_age:g}h)"
            elif not math.isnan(o) and not math.isnan(r) and o > 0 and abs(r / o - 1) > max_div:
                health, reason = DIVERGED, f"router {r:.6g} vs oracle {o:.6g} differ by {abs(r / o - 1):.2%} (> {max_div:.2%})"
            out[tok] = (price, o, r, health, reason)
        self._pr_key, self._pr = key, out
        return out

    # ------------------------------------------------------------------ state and drift
    def state(self, book: Book, params: dict[str, float], pending_usd: float = 0.0) -> BasketState:
        """The basket's values, targets and drifts at this tick; ``pending_usd`` is the capital
        withdrawal requested and not yet paid (held back in the quote token)."""
        rows, total, investable, worst, bad = self._measure(book, params, pending_usd)
        return BasketState([TokenState(*row) for row in rows], total, investable, worst, bad)

    def _measure(self, book: Book, params: dict[str, float], pending_usd: float) -> tuple[list[tuple], float, float, float, int]:
        """:meth:`state` as plain tuples (the per-tick path builds no objects): ``(rows, total,
        investable, max_drift, unhealthy)``, each row the fields of a :class:`TokenState` in order."""
        w = self._param_values(params)[0]
        pr = self.prices(params)
        isnan = math.isnan
        rows = []
        total = 0.0
        for tok, key, _ in self._rows:
            price, o, r, health, reason = pr[tok]
            qty = book.qty(key)
            # A token without a price under the source is valued at the oracle (as equity is).
            p_val = price if not isnan(price) else o
            v = qty * p_val if not isnan(p_val) else 0.0
            total += v
            rows.append((tok, key, qty, price, o, r, v, health, reason))
        pending = min(max(pending_usd, 0.0), total)
        investable = total - pending
        quote = self.quote
        tokens, worst, bad = [], 0.0, 0
        for tok, key, qty, price, o, r, v, health, reason in rows:
            wt = w[tok]
            target = wt * investable + (pending if tok == quote else 0.0)
            d = (v - target) / target if target > 0 and not isnan(price) else (math.nan if isnan(price) else 0.0)
            if health == HEALTHY:
                worst = max(worst, abs(d))
            else:
                bad += 1
            tokens.append((tok, key, wt, qty, price, o, r, v, target, d, health, reason))
        return tokens, total, investable, worst, bad

    def metrics(self, tick: int, book: Book, params: dict[str, float], pending_usd: float) -> dict[str, float]:
        """``max_drift``, ``unhealthy_tokens``, ``calendar_due`` and ``drift.<TOKEN>`` (declared in :mod:`trimtab.metrics`)."""
        rows, _, _, worst, bad = self._measure(book, params, pending_usd)
        m = {"max_drift": worst, "unhealthy_tokens": float(bad), "calendar_due": self.calendar_due(tick)}
        for row, (_, _, name) in zip(rows, self._rows):
            m[name] = row[9]  # the token's drift
        return m

    def calendar_due(self, tick: int) -> float:
        """1.0 on the first tick of a new calendar period (and on tick 0), else 0.0."""
        cal = self.t.calendar
        if cal == "none":
            return 0.0
        if tick == 0:
            return 1.0
        return 1.0 if period_key(self.view.times[tick], cal) != period_key(self.view.times[tick - 1], cal) else 0.0

    # ------------------------------------------------------------------ matching
    def match(self, st: BasketState, params: dict[str, float], unwind: bool = False) -> list[Trade]:
        """Pair oversized with undersized healthy tokens for the amounts back to target (USD),
        then apply the trade-size limits. ``unwind`` targets everything into the quote."""
        lo = self.value(self.t.min_trade_usd, params)
        hi = self.value(self.t.max_trade_usd, params)
        over, under = [], []
        order = {t: i for i, t in enumerate(self.tokens)}
        for t in st.tokens:
            if t.health != HEALTHY:
                continue
            target = (st.total if t.token == self.quote else 0.0) if unwind else t.target
            d = t.value - target
            if d > DUST_USD:
                over.append([t.token, d])
            elif d < -DUST_USD:
                under.append([t.token, -d])
        over.sort(key=lambda x: (-x[1], order[x[0]]))
        under.sort(key=lambda x: (-x[1], order[x[0]]))
        trades: list[Trade] = []
        i = j = 0
        while i < len(over) and j < len(under):
            amt = min(over[i][1], under[j][1])
            sell, buy = over[i][0], under[j][0]
            over[i][1] -= amt
            under[j][1] -= amt
            if over[i][1] <= DUST_USD:
                i += 1
            if under[j][1] <= DUST_USD:
                j += 1
            if amt <= DUST_USD:
                continue
            path = [sell, buy] if self.quote in (sell, buy) else [sell, self.quote, buy]
            tr = Trade(sell, buy, amt, path)
            if amt < lo:
                tr.status, tr.reason = "skipped", f"{amt:,.2f} USD is under the minimum trade size {lo:,.2f} USD"
            elif amt > hi:
                tr.usd, tr.status, tr.reason = hi, "clamped", f"{amt:,.2f} USD cut to the maximum trade size {hi:,.2f} USD"
            trades.append(tr)
        return trades

    # ------------------------------------------------------------------ the plan
    def plan(self, book: Book, equity: float, state: str, action_kind: str, params: dict[str, float], trigger: str) -> Plan:
        """The rebalance plan toward the weights (``unwind``: everything into the quote) for
        ``equity`` (share class; the engine passes equity less withdrawals requested)."""
        px, sim = self.px, self.sim
        sc = px.share_usd()
        held = sum(px.value(k, q, book.entry.get(k, 0.0)) for k, q in book.bal.items() if q)
        pending_usd = max(held - equity, 0.0) * sc
        st = self.state(book, params, pending_usd)
        unwind = action_kind == "unwind"
        trades = self.match(st, params, unwind)
        tol = self.value(self.t.slippage_tolerance, params)
        prices = st.by_token()
        eth = px.eth_usd()
        gas_units_eth = sim.gas_eth(sim.op(self.venue, "swap").gas_op)
        sells: list[tuple[Trade, Step]] = []
        buys: list[tuple[Trade, dict]] = []
        n = 0
        for tr in trades:
            if tr.status == "skipped":
                continue
            p_sell, p_buy = prices[tr.sell].price, prices[tr.buy].price
            tr.amount_in = tr.usd / p_sell
            tr.quoted_out = tr.usd / p_buy
            tr.min_out = tr.quoted_out * (1 - tol)
            amount = tr.amount_in
            legs = []
            try:
                for a, b in zip(tr.path[:-1], tr.path[1:]):
                    out, price, fld, cost = sim.swap_quote(self.venue, a, b, amount)
                    legs.append({"sell": a, "buy": b, "amount_in": amount, "expected_out": out, "price": price,
                                 "price_field": fld or "oracle rate", "cost_bps": cost,
                                 "cost_usd": amount * px.asset_usd(a) * cost / 1e4})
                    amount = out
            except (ExecutionError, Exception) as e:  # noqa: BLE001 - a quote that cannot be had
                tr.status, tr.reason = "blocked", f"no quote: {e}"
                continue
            tr.expected_out = amount
            tr.legs = legs
            if tr.expected_out < tr.min_out:
                tr.status = "blocked"
                tr.reason = (f"slippage guard: expected {tr.expected_out:.8g} {tr.buy} < amount_out_min {tr.min_out:.8g} "
                             f"(quoted {tr.quoted_out:.8g} at the {self.t.price_source} price, tolerance {tol:.2%}); not sent")
                continue
            if tr.status == "planned":
                tr.status = "sent"
            first = legs[0]
            if first["buy"] == self.quote:  # a sell leg (into the quote)
                n += 1
                sid = f"s{n}"
                c = first["cost_usd"] / sc + gas_units_eth * eth / sc
                sells.append((tr, Step(sid, f"sell {first['amount_in']:.8g} {first['sell']} for {self.quote} on {self.venue}",
                                       (self._ins(first, tr, len(legs) == 1),), expected_cost=c)))
                if len(legs) > 1:
                    buys.append((tr, dict(legs[1], after=sid)))
            else:
                buys.append((tr, dict(first, after=None)))
        sell_ids = tuple(s.id for _, s in sells)
        steps = [s for _, s in sells]
        # ETH first: the wallet pays every later swap's gas in ETH.
        buys.sort(key=lambda x: 0 if x[1]["buy"] == "ETH" else 1)
        for tr, leg in buys:
            n += 1
            c = leg["cost_usd"] / sc + gas_units_eth * eth / sc
            steps.append(Step(f"s{n}", f"buy {leg['buy']} with {leg['amount_in']:.8g} {leg['sell']} on {self.venue}",
                              (self._ins(leg, tr, True),), depends_on=sell_ids, expected_cost=c))
        targets = {
            "positions": {t.key: round(t.target / t.price, 12) if t.price and math.isfinite(t.price) else None for t in st.tokens},
            "basket": {
                "price_source": self.t.price_source,
                "total_usd": _f(st.total), "investable_usd": _f(st.investable), "max_drift": _f(st.max_drift),
                "tokens": {t.token: {k: (_f(v) if isinstance(v, float) else v) for k, v in asdict(t).items()} for t in st.tokens},
                "trades": [_trade_json(t) for t in trades],
            },
        }
        notes = tuple(f"{t.sell}->{t.buy} {t.usd:,.2f} USD {t.status}: {t.reason}" for t in trades if t.status in ("skipped", "clamped", "blocked"))
        notes += tuple(f"{t.token}: {t.health} ({t.reason}); not traded" for t in st.tokens if t.health != HEALTHY)
        t = self.view.time
        plan = Plan(strategy=self.s.name, state=state, action=action_kind, trigger=trigger, time=f"{t:%Y-%m-%dT%H:%MZ}",
                    targets=targets, steps=tuple(steps), expected_cost=round(sum(s.expected_cost for s in steps), 6), notes=notes)
        self.planned.append(plan)
        return plan

    def _ins(self, leg: dict, tr: Trade, last: bool) -> Instruction:
        params = {"buy": leg["buy"], "expected_out": leg["expected_out"]}
        if last:
            params["amount_out_min"] = tr.min_out
        return Instruction(self.venue, "swap", self.keys.get(leg["sell"], f"wallet:BaseToken:{leg['sell']}"), leg["amount_in"],
                           leg["sell"], params, leg["price_field"], leg["cost_usd"] / self.px.share_usd())


def _trade_json(t: Trade) -> dict:
    d = asdict(t)
    for k in ("usd", "amount_in", "quoted_out", "min_out", "expected_out"):
        d[k] = _f(d[k])
    d["legs"] = [{k: (_f(v) if isinstance(v, float) else v) for k, v in leg.items()} for leg in d["legs"]]
    return d


def period_key(ts, calendar: str) -> tuple:
    """The calendar period a UTC timestamp is in: (y, m, d) daily, ISO (year, week) weekly,
    (y, m) monthly -- the boundaries ``bt``'s RunDaily / RunWeekly / RunMonthly use."""
    if calendar == "daily":
        return (ts.year, ts.month, ts.day)
    if calendar == "weekly":
        return tuple(ts.isocalendar()[:2])
    if calendar == "monthly":
        return (ts.year, ts.month)
    raise ValueError(f"unknown calendar {calendar!r}")


def basket_of(strategy):
    """The strategy's basket target (a template that owns the wallet: ``token_weights``), or None."""
    return next((t for t in strategy.config.targets if template_for(t).owns_wallet), None)
