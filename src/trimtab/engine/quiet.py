"""Quiet spans: the ticks of a backtest at which only the market moves, processed at once.

Issue 14: "skip work that cannot change a decision" and "vectorise what positions make constant
between events". At most ticks of a backtest nothing can happen but a market move: no plan in
flight, no funding settlement, reward drop, capital flow, resting stop or quarantined series,
no venue able to liquidate. Between two such events the book is constant, so every metric the
kernel journals is a function of the market data (:meth:`trimtab.engine.monitors.Monitors.run_block`,
over the quiet stretch's arrays of :mod:`trimtab.engine.stretch`), and the machine's candidate
transitions can be evaluated on all those ticks at once
(:meth:`trimtab.engine.machine.StrategyMachine.quiet_until`, :mod:`trimtab.rules.vector`). The
ticks before the first one where a transition could fire are then written in one go:
attribution and its reconciliation check column-wise with the same sequential float additions
(:meth:`trimtab.accounting.attribution.Attribution.add_span`), the funding fills the look-ahead
worked out, the equity and NAV series, the eETH held, the journal's metrics, ledger and series
rows. The tick where a transition could
fire, and every tick this module cannot prove quiet, goes through :meth:`Engine.step` as before.

Exactness: every value is the double the per-tick code computes (the same operations in the
same order, element by element; sums across ticks stay sequential Python additions), so the
journal and the summary are identical with and without spans (``tests/unit/test_quiet.py``
compares every table of real backtests, float by float). A live run never uses spans
(:meth:`Engine.extend` turns them off with the stretches): it sees one hour at a time.
"""
from __future__ import annotations

import time as _time
from bisect import bisect_left

import numpy as np

from ..accounting.book import Book
from ..data.feed import DataError
from .executor import PaperGateway

#: The shortest span worth processing at once: one tick costs less per tick than its arrays.
MIN_TICKS = 2


class QuietSpans:
    """Finds and processes the quiet spans of one backtest :class:`~trimtab.engine.kernel.Engine`
    (with its quiet stretches on).

    ``counts`` is the stretches' counter dict (``RunResult.paths``), to which ``"bulk"`` (ticks
    processed in a span) is added; ``why``: per reason, the ticks :meth:`run` left to
    :meth:`Engine.step` (``"plan in flight"``, ``"transition"``, ``"reward drop"``, ...).
    """

    def __init__(self, engine):
        self.e = engine
        self.counts = engine.stretches.counts
        self.counts.setdefault("bulk", 0)
        self.why: dict[str, int] = {}
        #: per machine state: spans worked out in full and then dropped, a transition firing at
        #: their very first tick (the work :meth:`_blocked` spares where it can tell beforehand)
        self.discarded: dict[str, int] = {}
        #: funding settlements of committed spans: booked from the look-ahead ("ahead"), settled
        #: again by the column-wise commit ("again": its look-ahead lost), or by the tick-by-tick
        #: one ("per_tick", a span with a ledger category seen for the first time)
        self.settled = {"ahead": 0, "again": 0, "per_tick": 0}
        # the first funding tick at or after each tick (funding_due is fixed for a backtest)
        self._next_funding = engine.stretches.first_at_or_after(np.asarray(engine.funding_due, dtype=bool))
        view = engine.view
        # the ticks with journal rows of their own (quarantined_at is [] at every other tick)
        self._quarantined = view.quarantined_ticks()
        # (tick, why) the last span ended before for what it computed there (a transition that
        # fires, a venue that could liquidate): the next call, at that very tick, is stepped
        # without computing it again (nothing has changed in between)
        self._next: tuple[int, str | None] = (-1, None)

    def run(self, i: int, n: int) -> int:
        """Process the quiet span from tick ``i`` (the engine's next tick) on, at most up to
        ``n``: returns how many ticks were processed, 0 when tick ``i`` must be stepped on its own."""
        why = self._next[1] if self._next[0] == i else self._blocked(i)
        if why is None:
            done, why = self._span(i, n)
            if done:
                self.counts["bulk"] += done
                return done
        self.why[why] = self.why.get(why, 0) + 1
        return 0

    def _blocked(self, i: int) -> str | None:
        """Why tick ``i`` cannot start a quiet span (None: it may)."""
        e = self.e
        ex, cf = e.executor, e.cflows
        if not e.monitors.blocks:
            return "metrics per tick only (signal or basket)"
        if i == 0 or not e.machine.quiet_ready:
            return "first tick"
        if e.halted or e.on_tick is not None:
            return "halted or hooked"
        if ex.plan is not None or ex.transits:
            return "plan in flight"
        if e.rewards.is_due(i):
            return "reward drop"
        if cf.pending_withdrawal or cf.withdraw_all or (cf.next < len(cf.flows) and cf.flows[cf.next].time.timestamp() <= e.view.epoch[i]):
            return "capital flow"
        if e.sim.stops or type(ex.gateway) is not PaperGateway:
            return "resting stops"
        if e.view.quarantined_at(i):
            return "quarantine"
        if not e.journal.spans_ok:
            return "journal mode"
        # An action state whose plan is done leaves at once (plan_complete): its first tick would
        # end the span, after all of it was worked out
        if e.machine.fires_on({"plan_in_flight": 0.0, "pending_deposit": cf.pending_deposit,
                               "withdraw_all": 1.0 if cf.withdraw_all else 0.0}):
            return "transition"
        return None

    def _end(self, i: int, n: int) -> int:
        """The end of the span from ``i``: the next reward drop, capital flow or quarantined
        tick, or ``n``."""
        e = self.e
        epoch = e.view.epoch
        hi = n
        r, cf = e.rewards, e.cflows
        if r.next < len(r.drops):
            hi = bisect_left(epoch, r.drops[r.next].pay, i, hi)
        if cf.next < len(cf.flows):
            hi = bisect_left(epoch, cf.flows[cf.next].time.timestamp(), i, hi)
        q = self._quarantined
        k = bisect_left(q, i + 1)
        return min(hi, q[k]) if k < len(q) else hi

    def _fundings(self, i: int, hi: int, moving: list) -> tuple[int, dict[int, bool], list]:
        """The funding settlements of ``[i, hi)``, worked out ahead:
        ``(hi', {funding tick: settles something}, segments)``, ``segments`` as
        :meth:`Stretches.monitor_block` takes them (the book each settlement leaves, from the
        very fills :meth:`SimVenues.funding` gives: a settlement depends on the perp sizes and
        the data, which the span leaves alone). The prices' state (the stale-mark hours) is
        restored after; the sim's (the last funding rates, the proxy counts) too when the
        look-ahead stops early, else it is kept; either way the fills and the sim's state after
        each tick looked at are kept for :meth:`_commit` (:meth:`_take_ahead`), which commits
        the ticks the span keeps and leaves the sim as settling them left it. A settlement on a
        margin balance whose value moves (attribution then values it per tick), or one that
        fails, ends the span before it.

        Usually no settlement lands on a moving position: the settlements are then worked out
        column-wise (:meth:`SimVenues.funding_block`, :meth:`_worked_out`), the same numbers
        without a fill per settlement (~4,000 of the flagship's ~4,800 fills); where the block declines,
        the look-ahead settles tick by tick as above."""
        e = self.e
        sim, px, view, book = e.sim, e.px, e.view, e.book
        nxt, due = self._next_funding, {}
        segments = [(i, e.monitors.positions_of(book), book.bal)]
        self._ahead = None
        t = nxt[i]
        if t >= hi:
            return hi, due, segments
        moves = {key for key, _, _, _ in moving}
        # the usual span: no margin funding lands on moves, so no fill needs looking at
        moves_funded = not moves.isdisjoint(sim.funding_margins())
        if not moves_funded:
            ticks = []
            while t < hi:
                ticks.append(t)
                t = nxt[t + 1]
            block = sim.funding_block(ticks, book)
            if block is not None:
                return self._worked_out(i, hi, ticks, *block, segments)
            t = ticks[0]
        sim_state, px_state = sim.snapshot(), px.snapshot()
        scratch = Book(dict(book.bal), dict(book.entry), dict(book.sums))
        fills_at: dict[int, tuple[list, list[str]]] = {}  # tick -> (its fills, the perp keys whose stale marks funding read)
        after: list[tuple[int, tuple]] = []  # (tick, the sim's funding state once it settled) per tick looked at
        last = t
        done = False
        try:
            while t < hi:
                view.i = t
                last, read = t, []
                try:
                    fills = sim.funding(t, book, read)
                except DataError:
                    return t, due, segments
                if fills and moves_funded and any(leg.key in moves for f in fills for leg in f.legs):
                    return (t if t > i else i), due, segments
                after.append((t, sim.funding_state()))
                due[t] = bool(fills)
                if fills:
                    # reading a fresh mark changes nothing: only a stale one (its hour counted,
                    # what funding puts in ``read``) needs reading again when booked
                    fills_at[t] = (fills, read)
                    for f in fills:
                        scratch.apply(f)
                    segments = self._segment(segments, i, t, scratch, [leg.key for f in fills for leg in f.legs])
                t = nxt[t + 1]
            done = True
        finally:
            # stopped early, ``last`` is the tick that stopped it (the span ends before it)
            self._ahead = (sim_state, last, fills_at, after)
            if not done:
                sim.restore(sim_state)
            px.restore(px_state)
            view.i = i
        return hi, due, segments

    def _worked_out(self, i: int, hi: int, ticks: list[int], rows: list[tuple], missing: list, segments: list
                    ) -> tuple[int, dict[int, bool], list]:
        """:meth:`_fundings`' result from the settlements at ``ticks`` worked out column-wise
        (:meth:`SimVenues.funding_block`'s ``rows`` and ``missing``): the same due ticks and
        segments, the sim's funding state as settling them all leaves it, and the rows kept
        for :meth:`_commit` (:meth:`_take_ahead`)."""
        book, sim = self.e.book, self.e.sim
        scratch = Book(dict(book.bal), book.entry, {})  # (positions_after reads bal and entry)
        bal = scratch.bal
        due = dict.fromkeys(ticks, False)
        k, n = 0, len(rows)
        while k < n:
            t = rows[k][0]
            keys = []
            while k < n and rows[k][0] == t:
                m, pay = rows[k][3], rows[k][4]
                if pay != 0.0:  # as Book.apply: a zero leg changes nothing
                    bal[m] = bal.get(m, 0.0) + pay
                keys.append(m)
                k += 1
            due[t] = True
            segments = self._segment(segments, i, t, scratch, keys)
        state = sim.snapshot()
        sim.funding_settled(rows, missing)
        self._ahead = (state, ticks[-1], rows, missing)
        return hi, due, segments

    def _segment(self, segments: list, i: int, t: int, scratch: Book, keys: list[str]) -> list:
        """``segments`` with the one the settlements at tick ``t`` start (their margin ``keys``
        changed in ``scratch``, the book as they leave it), or that one alone at the span's
        first tick ``i``."""
        seg = (t, self.e.monitors.positions_after(segments[-1][1], scratch, keys), dict(scratch.bal))
        return [seg] if t == i else segments + [seg]

    _ahead: tuple | None = None  # (sim state before, last tick looked at, {tick: (fills, stale marks read)}, [(tick, sim funding state after)]) or, worked out column-wise, (sim state before, last tick looked at, funding_block's rows, its missing): _fundings

    def _take_ahead(self, end: int) -> dict[int, tuple[list, list[str]]] | list[tuple] | None:
        """The look-ahead's fills by tick for the ticks before ``end`` (its rows, when worked out
        column-wise: :meth:`_worked_out`), with the sim's state put back to the one settling
        them leaves (the state before the look-ahead when it looked at none: ``end`` -1 undoes
        it all); None when there was no look-ahead. A span cut short (a transition, a venue
        that could liquidate) thus books what was worked out instead of settling it again.
        Either way the look-ahead is used up."""
        got, self._ahead = self._ahead, None
        if got is None:
            return None
        state, last, fills_at, after = got
        if last < end:
            return fills_at
        if isinstance(fills_at, list):  # funding_block's: the state as settling those before end leaves it
            self.e.sim.restore(state)
            kept = [r for r in fills_at if r[0] < end]
            self.e.sim.funding_settled(kept, [m for m in after if m[0] < end])
            return kept
        k = bisect_left(after, end, key=lambda x: x[0])
        if k:  # (settling changes only the sim's funding state)
            self.e.sim.restore_funding(after[k - 1][1])
        else:
            self.e.sim.restore(state)
        return {t: v for t, v in fills_at.items() if t < end}

    def _span(self, i: int, n: int) -> tuple[int, str | None]:
        """Compute and, if it holds at least one tick, commit the span from ``i``: (ticks, None),
        or (0, why not)."""
        e = self.e
        hi = self._end(i, n)
        if hi - i < MIN_TICKS:
            return 0, "event next tick"
        e.view.i = i  # what step(i) sets before reading prices (the tradable flags, the hedge drift)
        t0 = _time.perf_counter_ns() if e.time_decisions else 0
        moving = e.attr.moving(e.book, e.px)
        got = e.stretches.attr_block(moving, i, hi)
        if got is None:
            return 0, "no attribution stretch"
        hi, cats, rows, stale_attr = got
        if hi - i < MIN_TICKS:
            return 0, "attribution stretch ends"
        hi = e.stretches.monitor_reach(e.monitors, i, hi)
        if hi - i < MIN_TICKS:
            return 0, "no monitor stretch"
        hi, due, segments = self._fundings(i, hi, moving)
        try:
            return self._decide(i, hi, t0, cats, rows, stale_attr, due, segments)
        finally:
            self._take_ahead(-1)  # not committed: the sim's state back as it was (a no-op once _commit took it)

    def _decide(self, i: int, hi: int, t0: int, cats: tuple, rows: np.ndarray, stale_attr: list, due: dict[int, bool],
                segments: list) -> tuple[int, str | None]:
        """The rest of :meth:`_span` once the funding settlements of ``[i, hi)`` are known: the
        monitors, where a venue could liquidate, the first transition; commits what is quiet."""
        e = self.e
        if hi - i < MIN_TICKS:
            return 0, "funding on a moving margin balance"
        got = e.monitors.run_block(i, hi, e.params, segments)
        if got is None:
            return 0, "no monitor stretch"
        hi, cols, core, stale_mon = got
        k = hi - i
        # Where a venue could liquidate, step() asks the venues: the span ends before.
        safe = core["free"] | ~((core["hf"] < 1.0) | (core["mr_min"] < e.sim.max_maintenance))
        after = None
        if not safe.all():
            k = int(np.argmax(~safe))
            after = "liquidation possible"
            if k == 0:
                return 0, after
        cols = _head(cols, k)
        f = e.machine.quiet_until(cols, k)
        if f is None:
            return 0, "guard without vector form"
        if f == 0:
            self.discarded[e.machine.state] = self.discarded.get(e.machine.state, 0) + 1
            return 0, "transition"
        if f < k:
            k, cols, after = f, _head(cols, f), "transition"
        if after is not None:
            self._next = (i + k, after)
        if e.time_decisions:  # the span's monitors and guards, shared over its ticks
            e.decision_ns.extend([(_time.perf_counter_ns() - t0) // k] * k)
        self._commit(i, k, cats, rows, cols, due, stale_attr + stale_mon, bool(core["free"][k - 1]))
        return k, None

    def _commit(self, i: int, k: int, cats: tuple, rows: np.ndarray, cols: dict, due: dict[int, bool], stale: list,
                free: bool) -> None:
        """Everything :meth:`Engine.step` does at the quiet ticks ``[i, i + k)``: attribution,
        funding fills, reconciliation and ledger column-wise (:meth:`_commit_columns`) or, where
        that cannot be (a category seen for the first time), tick by tick in its order; then
        the eETH held, the series and the journal's rows."""
        e = self.e
        attr, journal, iso, view, sim, executor = e.attr, e.journal, e.iso, e.view, e.sim, e.executor
        last = i + k - 1
        # Pricing.stale_marks: each tick counted once, in tick order, as step() reads them
        marks: dict[int, list[str]] = {}
        for key, ts in stale:
            for t in ts:
                if t <= last:
                    got = marks.get(t)
                    if got is None:
                        marks[t] = [key]
                    elif key not in got:
                        got.append(key)
        equity = cols["equity"].tolist() if isinstance(cols["equity"], np.ndarray) else [cols["equity"]] * k
        capital, net = e.capital, e.cflows.net
        funds = [t for t, settles in due.items() if settles and t < i + k]  # (due: ticks from i on, in order)
        if self._columns_ok(cats, funds):
            self._commit_columns(i, k, cats, rows, equity, funds, marks, self._take_ahead(i + k))
        else:
            self._take_ahead(-1)  # the loop settles them again
            start, add, check, ledger = attr.start_tick, attr.add_move, attr.check, journal.ledger
            amounts = rows[:k].tolist()  # Python floats, as attr_row gives them per tick
            for j, t in enumerate(range(i, i + k)):
                if marks:
                    for u in (t - 1, t):
                        for key in marks.pop(u, ()):
                            e.stretches.count_stale(key, u)
                start()
                add(cats, amounts[j])
                if due.get(t):
                    view.i = t
                    self.settled["per_tick"] += 1
                    for fill in sim.funding(t, e.book):
                        executor.apply(fill)
                check(equity[j] - capital - net)
                ledger(t, iso[t], attr.tick)
        book, px = e.book, e.px
        eeth = e.rewards.observe_span(book, px, i, k, e.stretches.column)
        nav = list(map(e.cflows.nav, equity))
        e.eq_series[i:i + k] = equity
        e.nav_series[i:i + k] = nav
        e.legrisk.overdue(last, cols, False)  # nothing in flight: its unhedged clock stops
        journal.quiet_span(i, iso[i:i + k], e.machine.state, cols, list(zip(range(i, i + k), equity, nav, eeth)))
        e.monitors.bulk_done(last, k, free)
        view.i = last
        e.next_tick = i + k

    def _columns_ok(self, cats: tuple, funds: list[int]) -> bool:
        """Whether :meth:`_commit_columns` can commit a span of market-move categories ``cats``
        settling funding at ``funds``: every category has its ledger column and total already,
        and funding is not a market move's (its per-tick order with them would matter)."""
        need = set(cats) | ({"funding"} if funds else set())
        return "funding" not in cats and need <= self.e.attr.total.keys() and self.e.journal.ledger_covers(need)

    def _commit_columns(self, i: int, k: int, cats: tuple, rows: np.ndarray, equity: list[float], funds: list[int],
                        marks: dict[int, list[str]], ahead: dict[int, tuple[list, list[str]]] | list[tuple] | None) -> None:
        """The attribution, funding settlements, reconciliation and ledger rows of ``[i, i + k)``
        column-wise (:meth:`Attribution.add_span`, :meth:`Journal.ledger_span`; only when
        :meth:`_columns_ok`): the same fills, totals and rows as the tick-by-tick loop of
        :meth:`_commit`. The settlements at ``funds`` are applied first (they read only the book
        and the data, never attribution), each stale mark counted before the settlement of its
        tick as that loop does; ``ahead``: the look-ahead's fills (:meth:`_take_ahead`), whose
        stale marks are read again so their hours count as when settling (None: settle here),
        or its rows worked out column-wise, booked together once their stale hours are counted
        (:meth:`Executor.apply_settlements`, :meth:`Journal.funding_fills`)."""
        e = self.e
        attr, journal, view, sim, executor, px = e.attr, e.journal, e.view, e.sim, e.executor, e.px
        events: dict[int, list[tuple[str, float]]] = {}
        count, book = e.stretches.count_stale, e.book
        pending, p = sorted(marks), 0  # the stale-mark ticks, counted in order
        block = ahead if isinstance(ahead, list) else None
        if block is not None:
            ahead, r = None, 0
            self.settled["ahead"] += len(funds)
        for t in funds:
            while p < len(pending) and pending[p] <= t:
                for key in marks[pending[p]]:
                    count(key, pending[p])
                p += 1
            view.i = t
            if block is not None:  # booked below, all together: only the stale marks' hours here
                while r < len(block) and block[r][0] <= t:
                    if block[r][8]:
                        count(block[r][1], t)
                    r += 1
                continue
            if ahead is None:
                self.settled["again"] += 1
                fills = sim.funding(t, book)
            else:
                self.settled["ahead"] += 1
                fills, read = ahead.get(t, ((), ()))
                for key in read:
                    px.mark(key)
            got = []
            for fill in fills:
                executor.apply(fill, record=False)  # booked below, in the span's order
                executor.on_fill(fill)
                got.append((fill.category, fill.impact))
            if got:
                events[t - i] = got
        if block:
            impacts = executor.apply_settlements(block)
            journal.funding_fills(block, impacts, e.iso)
            for row, impact in zip(block, impacts):
                got = events.get(row[0] - i)
                if got is None:
                    events[row[0] - i] = [("funding", impact)]
                else:
                    got.append(("funding", impact))
        for u in pending[p:]:
            for key in marks[u]:
                count(key, u)
        marks.clear()
        capital, net = e.capital, e.cflows.net
        amounts = attr.add_span(cats, rows[:k], events, [x - capital - net for x in equity])
        if amounts is None or not journal.ledger_span(i, amounts):
            raise AssertionError("quiet span: categories checked by _columns_ok")  # never


def _head(cols: dict, k: int) -> dict:
    """The first ``k`` ticks of each metric: an array sliced, one value for all as a float."""
    out = {}
    for name, v in cols.items():
        if isinstance(v, np.ndarray):
            out[name] = v[:k] if v.ndim else float(v)
        else:
            out[name] = float(v) if isinstance(v, np.generic) else v
    return out
