"""The tight loop: position monitor -> exposure monitor -> risk monitor -> pnl monitor.

Runs every tick (and again after a plan moves positions) and returns the metrics rules read.
This is the compute side of the metric registry (:mod:`trimtab.metrics`): every name it
publishes is declared there once (description, unit, domain, kind) with the
:class:`~trimtab.metrics.Stage` that computes it, and the comments below name the stages. The
first call checks the names against the registry (:meth:`Monitors.declared`) and raises
RuntimeError on any difference, so a metric computed but undeclared, or declared but not
computed, fails the first tick of any run. Plain floats only; ratios are fractions; ``inf``
means "no exposure" (health factor without debt, margin ratio without a position).

``run`` is the hot path (every tick, ~12k times per backtest): it reads no declaration per
tick; the inactive values come from the registry once, at import.
"""
from __future__ import annotations

import math

import numpy as np

from ..accounting.book import Book
from ..config.load import Strategy, metric_members
from ..data.feed import DataError
from ..metrics import Scope, Stage, defaults, expand
from ..planner.drift import Basket, basket_of
from ..planner.targets import hedge_allocation_drift, hedge_weights
from ..templates.registry import template_for
from ..venues.pricing import Pricing, perp_value
from ..venues.sim import SimVenues


DUST_USD = 100.0  # exposure below this (USD) is dust: no drift is measured against it
_BASKET_INACTIVE = defaults(Scope.STRATEGY, Stage.BASKET)  # published without a token_weights basket
_OTHER, _ONCHAIN, _PERP = 0, 1, 2  # how a held key counts in the delta (Monitors._delta_kind)


class Monitors:
    """Computes metrics for one strategy. Holds the equity and time of the last rebalance."""

    def __init__(self, strategy: Strategy, px: Pricing, sim: SimVenues, book: Book, signals=None, flows=None):
        self.s = strategy
        self.signals = signals
        self.flows = flows
        # Targets by what they ask of the monitors (trimtab.templates.base): a signal they trade,
        # perp legs hedging others' delta.
        self.signal_targets = [t for t in strategy.config.targets if template_for(t).signal_file(t)]
        self.dust_keys = [f"wallet:BaseToken:{t}" for t in ("EIGEN", "ETHFI") if f"wallet:BaseToken:{t}" in px.info]
        self.px = px
        self.sim = sim
        self.book = book
        self.asset = strategy.config.asset
        self.hedge_targets = [t for t in strategy.config.targets if template_for(t).hedge_legs(t)]
        self.hedged = bool(self.hedge_targets)
        self.last_rebalance_equity: float | None = None
        self.last_rebalance_epoch: int | None = None
        self.idle_key = f"wallet:BaseToken:{strategy.config.share_class}"
        self.hedge_keys = [leg.instrument for t in self.hedge_targets for leg in template_for(t).hedge_legs(t)]
        # Metric names built once, so the per-tick path formats no strings (Stage.RISK and the
        # per-target families): margin_ratio.<venue>, liquidation_price.<venue>.<symbol> per perp,
        # venue_imbalance.<id> with the target's venues, signal_side/position_side.<id>.
        self.mr_names = {v: f"margin_ratio.{v}" for v in sim.perp_venues}
        self.lp_names = {v: [(k, f"liquidation_price.{v}.{k.rsplit(':', 1)[-1]}") for k in sim.perp_keys if k.startswith(v + ":")]
                         for v in sim.perp_venues}
        # Venues sorted: a set's order follows PYTHONHASHSEED, and summing their accounts in a
        # different order moved venue_imbalance in its last digits from one process to the next.
        self.imbalance_of = [(t, f"venue_imbalance.{t.id}", sorted({px.info[leg.instrument].venue for leg in t.legs}))
                             for t in self.hedge_targets]
        self.side_names = [(t, f"signal_side.{t.id}", f"position_side.{t.id}") for t in self.signal_targets]
        # Static facts resolved once for the per-tick path: the hedge legs per hedge target,
        # (venue, margin_ratio name, liquidation_price names) per perp venue, and per held key
        # how it counts in the delta (_delta_kind, filled as keys appear in the book).
        self.hedges = [(t, template_for(t).hedge_legs(t)) for t in self.hedge_targets]
        self.perp_names = [(v, self.mr_names[v], self.lp_names[v]) for v in sim.perp_venues]
        self.trade_keys = list(dict.fromkeys(self.hedge_keys + [t.instrument for t in self.signal_targets]))
        self._kind: dict[str, int] = {}
        self._tradable_tick = -1
        self._tradable: dict[str, bool] = {}
        self._stale = 0
        # A token_weights basket (seed 002) publishes its drift metrics (trimtab.planner.drift).
        self.basket = Basket(strategy, basket_of(strategy), px, sim) if basket_of(strategy) is not None else None

    def mark_rebalance(self, equity: float, epoch: int) -> None:
        self.last_rebalance_equity = equity
        self.last_rebalance_epoch = epoch

    def snapshot(self) -> dict:
        """``{"last_rebalance_equity": share class or None, "last_rebalance_epoch": seconds or None}``."""
        return {"last_rebalance_equity": self.last_rebalance_equity, "last_rebalance_epoch": self.last_rebalance_epoch}

    def restore(self, snap: dict) -> None:
        """Load a :meth:`snapshot`."""
        self.last_rebalance_equity, self.last_rebalance_epoch = snap["last_rebalance_equity"], snap["last_rebalance_epoch"]

    def equity(self) -> float:
        """Equity in the share class: the sum of every position's value."""
        px, book = self.px, self.book
        return sum(px.value(k, q, book.entry.get(k, 0.0)) for k, q in book.bal.items() if q)

    def run(self, tick: int, plan_in_flight: bool, params: dict[str, float]) -> dict[str, float]:
        """Every metric at ``tick`` (index into the market view) as ``{name: float}``, the names
        of :meth:`declared`. Raises RuntimeError on the first call if they differ."""
        px, book, sim = self.px, self.book, self.sim
        m: dict[str, float] = {}
        balance = {}  # perp venue -> margin balance USD (perp_risk's, the floats perp_account gives)
        # A quiet stretch (trimtab.engine.stretch) holds this tick's core figures for the book as
        # it stands, computed as arrays with the same operations; while a plan moves the book
        # every tick, or where no stretch applies, they are computed here, per tick.
        row = self.stretch.monitor_row(self, tick) if self.stretch is not None and not plan_in_flight else None
        if tick != self._counted:
            self._counted = tick
            if self.stretch is not None:
                self.stretch.counts["vector" if row is not None else "per_tick"] += 1
        if row is not None:
            equity, onchain_delta, perp_delta, hf, ltv, mr_min, accounts, self.liquidation_free = row
            net = onchain_delta + perp_delta
            for (v, mr_name, lp_names), (eq, mr, lps) in zip(self.perp_names, accounts):
                balance[v] = eq
                m[mr_name] = mr
                for k, name in lp_names:
                    lp = lps.get(k)
                    m[name] = lp if lp is not None else 0.0
        else:
            self.liquidation_free = False
            # position + exposure monitors (Stage.POSITION, Stage.EXPOSURE): the held positions as
            # compiled for this book version (_positions), summed in the book's order as before
            if self._pos_version != book.version:
                self._positions(book)
            equity = 0.0
            onchain_delta = perp_delta = 0.0
            value, delta, mark, share_usd, both = px.value, px.delta, px.mark, px.share_usd, px.value_and_delta
            for k, q, e, v, kind, d in self._pos:
                if v is not None:
                    equity += v
                elif kind == _PERP:
                    equity += perp_value(q, mark(k), e, share_usd())  # Pricing.value of a perp
                elif kind == _ONCHAIN and d is None:
                    v, d = both(k, q)  # Pricing.value and .delta in one pass (the same floats)
                    equity += v
                else:
                    equity += value(k, q, e)
                if kind == _ONCHAIN:
                    onchain_delta += delta(k, q)[1] if d is None else d
                elif kind == _PERP:
                    perp_delta += q  # Pricing.delta of a perp is its size
            net = onchain_delta + perp_delta
            # risk monitor (Stage.RISK); the sim computes each account once per tick and book state
            hf, ltv = math.inf, 0.0
            for v in sim.lending:
                h, l, _, _ = sim.aave_health(book, v)
                hf, ltv = min(hf, h), max(ltv, l)
            mr_min = math.inf
            # perp_names follows sim.perp_venues, the order of perp_risks
            for (v, mr_name, lp_names), (eq, _, mr, _, lps) in zip(self.perp_names, sim.perp_risks(book)):
                balance[v] = eq
                m[mr_name] = mr
                mr_min = min(mr_min, mr)
                for k, name in lp_names:
                    lp = lps.get(k)
                    m[name] = lp if lp is not None else 0.0
        if self._tradable_tick != px.view.i:
            self._refresh_tradable()
        tradable, stale = self._tradable, self._stale
        # pnl monitor (Stage.PNL)
        if self.last_rebalance_equity is None:
            self.last_rebalance_equity = equity
        base = self.last_rebalance_equity
        now = px.view.epoch[tick]
        # (assigned one by one, in the journal's column order, rather than through a kwargs dict)
        m["health_factor"] = hf
        m["ltv"] = ltv
        m["margin_ratio_min"] = mr_min
        m["net_delta"] = net
        # Drift is measured against a real position; dust left after an exit is not one.
        m["delta_drift"] = (net / onchain_delta) if self.hedged and abs(onchain_delta) * px.asset_usd(self.asset) > DUST_USD else 0.0
        m["equity"] = equity
        m["equity_deviation"] = abs(equity - base) / base if base > 0 else 0.0
        m["idle_fraction"] = (max(book.qty(self.idle_key), 0.0) * px.asset_usd(self.s.config.share_class) / px.share_usd() / equity
                              if equity > 0 else 0.0)
        m["hours_since_rebalance"] = (now - self.last_rebalance_epoch) / 3600 if self.last_rebalance_epoch is not None else math.inf
        m["plan_in_flight"] = 1.0 if plan_in_flight else 0.0
        m["hedge_allocation_drift"] = self._hedge_drift(params) if self.hedged else 0.0
        m["stale_venues"] = float(stale)
        # cross-venue balance, per hedge target: its CEX accounts' share of equity against its
        # allocation; the plain name is the worst (largest |imbalance|, signed, first on ties)
        imb = 0.0
        bal = book.bal
        for n, (t, name, venues) in enumerate(self.imbalance_of):
            x = 0.0
            if equity > 0 and self._holds_any(bal, t.legs):
                cex = 0  # sum() written out: from the int 0, in venue order
                for v in venues:
                    eq = balance.get(v)
                    cex += eq if eq is not None else sim.perp_account(book, v)[0]
                x = cex / px.share_usd() / equity - self._allocations[n]
            m[name] = x
            if abs(x) > abs(imb):
                imb = x
        m["venue_imbalance"] = imb
        # signals, per signal target: the side the model wants (held at the current side while
        # the venue cannot trade); the plain names are the first target wanting a trade, else
        # the first target, so `signal_side != position_side` fires when any target must trade
        agg: tuple[float, float] | None = None
        for t, signal_name, position_name in self.side_names:
            pos = book.qty(t.instrument)
            have = float((pos > 0) - (pos < 0))
            want = float(self.signals.side(t, params)) if tradable[t.instrument] else have
            m[signal_name], m[position_name] = want, have
            if agg is None or (agg[0] == agg[1] and want != have):
                agg = (want, have)
        m["signal_side"], m["position_side"] = agg if agg is not None else (0.0, 0.0)
        # sum() written out: from the int 0, in dust_keys order, the same floats
        dust = 0
        for k in self.dust_keys:
            q = bal.get(k, 0.0)
            if q > 0:
                dust += px.value(k, q)
        m["dust_fraction"] = dust / equity if equity > 0 else 0.0
        f = self.flows
        m["pending_deposit"] = f.pending_deposit if f else 0.0
        m["withdrawal_fraction"] = (f.pending_withdrawal / equity if equity > 0 else 0.0) if f else 0.0
        m["withdraw_all"] = 1.0 if f and f.withdraw_all else 0.0
        # basket drift (Stage.BASKET, token_weights): max_drift, unhealthy_tokens, calendar_due, drift.<TOKEN>
        if self.basket is not None:
            pending = (f.pending_withdrawal if f else 0.0) * px.share_usd()
            m.update(self.basket.metrics(tick, book, params, pending))
        else:
            m.update(_BASKET_INACTIVE)
        if not self._verified:
            self._verify(m)
        return m

    @property
    def blocks(self) -> bool:
        """Whether :meth:`run_block` can compute spans for this strategy at all (a quiet stretch,
        and no basket or signal target, whose metrics are computed per tick only)."""
        return self.stretch is not None and self.basket is None and not self.side_names

    def run_block(self, lo: int, hi: int, params: dict[str, float], segments: list | None = None) -> tuple[int, dict, dict, list] | None:
        """Every metric of :meth:`run` for the ticks ``[lo, hi')`` of a quiet span at once (no
        plan in flight; the book and the flows constant over it; the traded perps' tradable
        flags may change, :meth:`_flag_metrics`), as
        ``(hi', {metric name: float64 array over the ticks, or one float for all}, core, stale)``
        with ``hi'`` <= ``hi``; ``core`` and ``stale`` are :meth:`Stretches.monitor_block`'s (the
        caller counts the stale marks of the ticks it keeps). None when this cannot be done as
        arrays (no stretch, a basket or a signal target, a value missing in the data: the
        per-tick path then runs, and raises where it raises). Each array holds, element by
        element, the floats :meth:`run` computes per tick, with its operations in its order;
        nothing of the monitors' state changes but the caches of the tradable flags and the
        hedge drift (valid at ``lo``, where ``view.i`` must be): :meth:`bulk_done` commits a span.
        ``segments``: the margin balances funding settlements inside the span will leave, as
        :meth:`Stretches.monitor_block` takes them (only margin balances may differ: the figures
        read here from the book besides the stretch's are the same in every segment)."""
        px, book, st = self.px, self.book, self.stretch
        if not self.blocks or not self._verified or self.last_rebalance_equity is None:
            return None
        got = st.monitor_block(self, lo, hi, segments)
        if got is None:
            return None
        hi, core, stale = got
        n = hi - lo
        # the prices run() reads besides the stretch's: a NaN there raises per tick, so the span ends before it
        share = st.share_usd(lo, hi)
        usd = st.asset_usd(self.asset, lo, hi) if self.hedged else 1.0
        idle = st.asset_usd(self.s.config.share_class, lo, hi)
        for x in (share, usd, idle):
            if isinstance(x, np.ndarray) and np.isnan(x).any():
                hi = min(hi, lo + int(np.argmax(np.isnan(x))))
        if hi < lo + n:
            if hi == lo:
                return None
            n = hi - lo
            core = {k: v[:n] if isinstance(v, np.ndarray) else v for k, v in core.items()}
            core["accounts"] = [(eq[:n], mr[:n] if isinstance(mr, np.ndarray) else mr, {k: (v[:n], none[:n]) for k, (v, none) in lps.items()})
                                for eq, mr, lps in core["accounts"]]
            stale = [(k, [t for t in ticks if t < hi]) for k, ticks in stale]
        share, usd, idle = (x[:n] if isinstance(x, np.ndarray) else x for x in (share, usd, idle))
        equity, onchain = core["equity"], core["onchain"]
        m: dict[str, object] = {}
        balance = {}
        for (v, mr_name, lp_names), (eq, mr, lps) in zip(self.perp_names, core["accounts"]):
            balance[v] = eq
            m[mr_name] = mr
            for k, name in lp_names:
                lp = lps.get(k)
                m[name] = 0.0 if lp is None else lp[0]  # run(): 0.0 where there is no liquidation price
        net = onchain + core["perp_delta"]
        positive = equity > 0
        with np.errstate(all="ignore"):
            m["health_factor"] = core["hf"]
            m["ltv"] = core["ltv"]
            m["margin_ratio_min"] = core["mr_min"]
            m["net_delta"] = net
            m["delta_drift"] = np.where(np.abs(onchain) * usd > DUST_USD, net / onchain, 0.0) if self.hedged else 0.0
            m["equity"] = equity
            base = self.last_rebalance_equity
            m["equity_deviation"] = np.abs(equity - base) / base if base > 0 else 0.0
            m["idle_fraction"] = np.where(positive, max(book.qty(self.idle_key), 0.0) * idle / share / equity, 0.0)
            last = self.last_rebalance_epoch
            m["hours_since_rebalance"] = (np.array(px.view.epoch[lo:hi]) - last) / 3600 if last is not None else math.inf
            m["plan_in_flight"] = 0.0
            m["hedge_allocation_drift"], m["stale_venues"] = self._flag_metrics(lo, hi, params)
            imb = 0.0
            for i, (t, name, venues) in enumerate(self.imbalance_of):
                x = 0.0
                if self._holds_any(book.bal, t.legs):
                    if any(v not in balance for v in venues):
                        return None  # run() values that account on its own: not kept here
                    cex = 0.0  # run()'s sum from the int 0: the same floats
                    for v in venues:
                        cex = cex + balance[v]
                    x = np.where(positive, cex / share / equity - self._allocations[i], 0.0)
                m[name] = x
                imb = np.where(np.abs(x) > np.abs(imb), x, imb)
            m["venue_imbalance"] = imb
            m["signal_side"] = m["position_side"] = 0.0
            dust = 0.0
            for k in self.dust_keys:
                q = book.bal.get(k, 0.0)
                if q > 0:
                    try:
                        dust = dust + self._values(k, q, lo, hi)
                    except DataError:
                        return None
            m["dust_fraction"] = np.where(positive, dust / equity, 0.0)
            f = self.flows
            m["pending_deposit"] = f.pending_deposit if f else 0.0
            m["withdrawal_fraction"] = np.where(positive, f.pending_withdrawal / equity, 0.0) if f else 0.0
            m["withdraw_all"] = 1.0 if f and f.withdraw_all else 0.0
        m.update(_BASKET_INACTIVE)
        return hi, m, core, stale

    def _flag_metrics(self, lo: int, hi: int, params: dict[str, float]) -> tuple:
        """``(hedge_allocation_drift, stale_venues)`` of :meth:`run` at each tick of ``[lo, hi)``
        (``view.i`` must be ``lo``; a quiet stretch on): one float each while no traded perp's
        tradable flag changes, else float64 arrays, constant between the ticks where one does.
        Both are functions of the flags, the book and the parameters alone, so each is worked
        out once per set of flags, as run() does with those flags (the caches stay ``lo``'s)."""
        if self._tradable_tick != lo:
            self._refresh_tradable()
        drift = self._hedge_drift(params) if self.hedged else 0.0
        stale = float(self._stale)
        st = self.stretch
        flips: set[int] = set()  # the ticks whose flags differ from the tick before
        for k in self.trade_keys:
            flags = st.tradable(k)
            flips.update((np.flatnonzero(flags[lo + 1:hi] != flags[lo:hi - 1]) + lo + 1).tolist())
        if not flips:
            return drift, stale
        starts = [lo] + sorted(flips)
        drifts, stales = [drift], [stale]
        for t in starts[1:]:
            live = {k: st.tradable(k).item(t) for k in self.trade_keys}
            drifts.append(hedge_allocation_drift(self.s, params, self.px, self.book, self.hedges, live, self._weights)
                          if self.hedged else 0.0)
            stales.append(float(sum(1 for k in self.hedge_keys if not live[k])))
        lengths = np.diff(starts + [hi])
        return np.repeat(np.array(drifts, dtype=np.float64), lengths), np.repeat(np.array(stales, dtype=np.float64), lengths)

    def _values(self, k: str, q: float, lo: int, hi: int) -> np.ndarray:
        """``Pricing.value(k, q, 0.0, t)`` of non-perp ``k`` for each tick of ``[lo, hi)``, as the
        stretch's arrays (the same operations: :meth:`Stretches._value_delta`) where every one
        is a number, else tick by tick (which raises DataError where a price has no value)."""
        px = self.px
        if px.info[k].ptype != "Perp":
            try:
                v = self.stretch._value_delta(k, q, lo, hi)[0]
            except (TypeError, KeyError):  # a field the view does not hold (column() is None)
                v = None
            if isinstance(v, np.ndarray) and v.shape == (hi - lo,) and not np.isnan(v).any():
                return v
        return np.array([px.value(k, q, 0.0, t) for t in range(lo, hi)])

    def bulk_done(self, last: int, n: int, liquidation_free: bool) -> None:
        """Commit a quiet span of ``n`` ticks ending at ``last`` (:meth:`run_block`): the state
        :meth:`run` leaves after its last tick (tick counters, ``liquidation_free``)."""
        self._counted = last
        self.stretch.counts["vector"] += n
        self.liquidation_free = liquidation_free

    def _refresh_tradable(self) -> None:
        """Whether each traded perp can trade at ``view.i``: a function of the tick's data alone
        (mark freshness, funding age), so computed once per tick however often the monitors run."""
        px, st = self.px, self.stretch
        if st is not None:  # a backtest: the flags of every tick, from Pricing once per key
            i = px.view.i
            self._tradable = {k: st.tradable(k).item(i) for k in self.trade_keys}
        else:
            self._tradable = {k: px.tradable(k) for k in self.trade_keys}
        self._live = tuple(self._tradable.values())
        self._stale = sum(1 for k in self.hedge_keys if not self._tradable[k])
        self._tradable_tick = px.view.i

    def _hedge_drift(self, params: dict[str, float]) -> float:
        """``hedge_allocation_drift`` of a hedged strategy for the book and tradable flags as they
        stand (:meth:`_refresh_tradable`)."""
        if params != self._weights_for:
            # Target weights and allocations are functions of the parameters alone: evaluated
            # again only when a parameter changed (live control, a sleeve's overrides).
            self._weights = [hedge_weights(self.s, params, legs) for _, legs in self.hedges]
            self._allocations = [self.s.target_value(t.allocation, params) for t, _, _ in self.imbalance_of]
            self._weights_for = dict(params)
        # A function of the legs' sizes (the book version), the weights (kept per params) and
        # the tradable flags (per tick): computed again only when one of them changed.
        key = (self.book.version, self._live)
        if key != self._drift_key or self._drift_weights is not self._weights:
            self._drift = hedge_allocation_drift(self.s, params, self.px, self.book, self.hedges, self._tradable, self._weights)
            self._drift_key, self._drift_weights = key, self._weights
        return self._drift

    _verified = False  # set on the instance once the first run's names matched the registry
    stretch = None  # trimtab.engine.stretch.Stretches, set by the kernel (None: every tick computed here)
    #: True when the last run's figures came from a stretch that found no venue able to liquidate
    #: at that tick (then SimVenues.liquidations would return nothing, and the kernel skips it).
    liquidation_free = False
    _counted = -1  # the last tick counted in stretch.counts
    _pos_version = -1  # the book.version self._pos was compiled for (-1: never)
    _weights_for: dict | None = None  # the params self._weights / self._allocations were evaluated for
    _drift_key: tuple | None = None  # (book.version, tradable flags) self._drift was computed for
    _drift_weights: list | None = None  # ... and the self._weights it used

    def _positions(self, book: Book) -> None:
        """Compile the held positions for ``book.version`` into ``self._pos``: per non-zero key, in
        the book's order, ``(key, qty, entry, value or None, delta kind, delta or None)``.

        Valid until the book changes (every Book.apply / restore bumps ``version``): a value or
        delta given here is of a key whose per-unit figures never move (Pricing.value_is_static,
        Pricing.delta_is_static), so it is the very float Pricing.value / Pricing.delta would
        return at any tick; None means "ask Pricing at the tick"."""
        self._pos = self.positions_of(book)
        self._pos_version = book.version

    def positions_of(self, book: Book) -> list[tuple]:
        """:meth:`_positions`' list for ``book`` (any book over this strategy's instruments: a
        quiet span values the book a funding settlement will leave), without keeping it."""
        px, kinds, entry = self.px, self._kind, book.entry
        pos = []
        for k, q in book.bal.items():
            if not q:
                continue
            e = entry.get(k, 0.0)
            kind = kinds.get(k)
            if kind is None:
                kind = kinds[k] = self._delta_kind(k)
            v = px.value(k, q, e) if px.value_is_static(k) else None
            d = px.delta(k, q)[1] if kind == _ONCHAIN and px.delta_is_static(k) else None
            pos.append((k, q, e, v, kind, d))
        return pos

    def positions_after(self, pos: list[tuple], book: Book, keys: list[str]) -> list[tuple]:
        """:meth:`positions_of` of ``book`` when ``pos`` is that of the same book before fills
        that changed only the balances of the non-perp ``keys`` (a funding settlement's margin
        legs): those entries are computed again, the others kept. Falls back to
        :meth:`positions_of` when a key was or becomes zero (the list's keys would change)."""
        at = {p[0]: j for j, p in enumerate(pos)}
        bal, entry, px, info = book.bal, book.entry, self.px, self.px.info
        out = list(pos)
        for k in keys:
            j = at.get(k)
            q = bal.get(k, 0.0)
            if j is None or not q or info[k].ptype == "Perp":
                return self.positions_of(book)
            e = entry.get(k, 0.0)
            kind = out[j][4]
            v = px.value(k, q, e) if px.value_is_static(k) else None
            d = px.delta(k, q)[1] if kind == _ONCHAIN and px.delta_is_static(k) else None
            out[j] = (k, q, e, v, kind, d)
        return out

    @staticmethod
    def _holds_any(bal: dict[str, float], legs) -> bool:
        """``any(book.qty(leg.instrument) for leg in legs)``, without a generator per tick."""
        for leg in legs:
            if bal.get(leg.instrument, 0.0):
                return True
        return False

    def _delta_kind(self, key: str) -> int:
        """How ``key`` counts in the strategy asset's delta: _PERP, _ONCHAIN, or _OTHER (another
        delta asset). Static: it depends only on the instrument's type and asset."""
        inf = self.px.info[key]
        if self.px.delta_asset(inf.asset) != self.asset:
            return _OTHER
        return _PERP if inf.ptype == "Perp" else _ONCHAIN

    def declared(self) -> list[str]:
        """The metric names this strategy publishes per the registry, the same names its config
        checks let rules use: every single-valued strategy metric, ``margin_ratio.<venue>`` per
        perp venue, ``liquidation_price.<venue>.<symbol>`` per perp instrument, ``drift.<TOKEN>``
        per basket token, ``venue_imbalance.<id>`` per perp_hedge
        target, ``signal_side.<id>`` / ``position_side.<id>`` per signal_perp target
        (:func:`trimtab.config.load.metric_members`)."""
        return expand(Scope.STRATEGY, metric_members(self.s.config, self.s.venues))

    def _verify(self, m: dict[str, float]) -> None:
        """Raise RuntimeError if the names of ``m`` differ from :meth:`declared`."""
        want, got = set(self.declared()), set(m)
        if want != got:
            raise RuntimeError(f"the monitors' metrics differ from the registry (trimtab.metrics): published, not declared: "
                               f"{sorted(got - want)}; declared, not published: {sorted(want - got)}")
        self._verified = True
