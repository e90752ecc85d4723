"""The planner: diff target positions against the book and compile a deterministic plan.

Every template's difference becomes *moves* that either release funds (into the wallet or
a CEX account) or deploy them. The plan runs in five phases, each step waiting only for what
it needs:

1. *release*: perp reductions, the atomic unwind bundle of a smaller leveraged position
   (flash_borrow -> repay -> withdraw -> swap LST to ETH -> flash_repay), LST sales, lending
   withdrawals, CEX spot sales;
2. *withdraw*: CEX account equity above target goes back to the wallet (after that venue's
   releases);
3. *convert*: wallet swaps between ETH and USDT so each side covers what the deploy phase,
   deposits and gas need; what is left over goes back into the share class;
4. *fund*: USDT deposits to CEX accounts (credited after the venue's deposit latency);
5. *deploy*: spot buys and perp increases (after their venue's deposit), staking and lending
   supplies (after the swap that funds them), and last the atomic entry bundle
   (flash_borrow -> stake -> supply -> borrow -> flash_repay), which waits for the perp
   increases so an on-chain leg and its hedge land in the same tick.

The hedge follows the leg it hedges (issue 13 part 4): a hedge increase waits for what funds
the legs going up (the entry bundle, a stake, a CEX spot buy: the ETH buy, LST releases, their
venue's deposit) as well as its own venue's deposit, and those legs wait for the hedge
increases; the ETH buy waits for the hedge's deposits (gas money excepted). So ETH bought,
perps and on-chain leg land in one tick. The part of a hedge reduction that moves to another
venue waits for that venue's increase. Perp reductions matching an on-chain reduction run at
once, as the unwind does.

Targets are sized on equity less the plan's own expected cost (one refinement pass), so the
plan funds itself. Moves smaller than ``MIN_TRADE_USD`` are skipped.

A ``token_weights`` basket is planned by :class:`trimtab.planner.drift.Basket` instead:
matched swaps between its tokens, sells before buys, with the slippage guard and health gate.

One job: ordering the moves of a target diff into a plan's phased steps. What the targets are
is :mod:`.targets` / :mod:`.emergency` (and each template's module), the plan records are
:mod:`.plan`, and the phases share the bookkeeping in ``_Moves``, which is why they stay together.
"""
from __future__ import annotations

from collections import defaultdict

from ..accounting.book import Book
from ..config.load import Strategy
from ..errors import TrimtabError
from ..templates.registry import template_for
from ..venues.pricing import Pricing
from ..venues.sim import WALLET_ETH, SimVenues
from .drift import Basket, basket_of
from .plan import Instruction, Plan, Step
from .routes import candidates, choose, deadline_s
from .emergency import current_targets, emergency_targets
from .targets import Targets, compute_targets


def hedge_current(strategy: Strategy, params: dict[str, float], px: Pricing, sim: SimVenues, book: Book) -> Targets:
    """Targets that keep every on-chain and wallet position and every CEX account as they are,
    and re-size the perp hedges to the on-chain delta as it stands (a compensating plan)."""
    tg = current_targets(strategy, px, sim, book)
    onchain = sum(px.delta(k, q)[1] for k, q in book.bal.items()
                  if q and px.info[k].ptype != "Perp" and px.delta(k, q)[0] == strategy.config.asset)
    for t in strategy.config.targets:
        legs = template_for(t).hedge_legs(t)
        if legs:
            ratio = strategy.target_value(t.hedge_ratio, params)
            w = {leg.instrument: strategy.target_value(leg.weight, params) for leg in legs if leg.instrument not in tg.frozen}
            # This plan moves no margin: a short on a venue whose account holds none would be
            # liquidated at once, so the hedge goes to the funded venues (all, if none is).
            funded = {k: wk for k, wk in w.items() if sim.perp_account(book, px.info[k].venue)[0] > 0}
            w = funded or w
            rest = -onchain * ratio - sum(book.qty(k) for k in tg.frozen)
            for k, wk in w.items():
                tg.positions[k] = rest * wk / sum(w.values())
    return tg

MIN_TRADE_USD = 25.0
GAS_SAFETY = 2.0  # gas is bought ahead at this multiple of the estimate at this tick's gas price
WALLET_USDT = "wallet:BaseToken:USDT"


class Planner:
    """Builds plans for one strategy. Stateless between calls: same inputs, same plan."""

    def __init__(self, strategy: Strategy, px: Pricing, sim: SimVenues, signals=None):
        self.s = strategy
        self.px = px
        self.sim = sim
        self.signals = signals
        #: perp instrument -> the target trading it on a signal (its trades carry resting stops)
        self.signal_targets = {t.instrument: t for t in strategy.config.targets if template_for(t).signal_file(t)}
        #: perp legs hedging other targets' delta: they move with the leg they hedge (``_hedge_timing``)
        self.hedge_keys = {leg.instrument for t in strategy.config.targets for leg in template_for(t).hedge_legs(t)}
        self.swap_venue = next((t.swap_venue for t in strategy.config.targets if hasattr(t, "swap_venue")), None)
        basket = basket_of(strategy)
        #: A token_weights basket plans its own matched swaps (trimtab.planner.drift).
        self.basket = Basket(strategy, basket, px, sim) if basket is not None else None

    def plan(self, book: Book, equity: float, state: str, action_kind: str, params: dict[str, float], trigger: str,
             protocol=None) -> Plan:
        """Compile the plan that moves ``book`` toward the targets for ``equity`` under ``params``
        (``emergency``: toward what the ``protocol`` decides, with its reasons as notes;
        ``hedge``: re-hedge the on-chain delta as it stands, nothing else moves)."""
        reasons: list[str] = []
        self.deadline_s = deadline_s(action_kind, params)
        if self.basket is not None and action_kind in ("target", "unwind"):
            return self.basket.plan(book, equity, state, action_kind, params, trigger)
        if action_kind == "sell_dust":
            steps, cost, targets = self._dust_steps(book), 0.0, Targets()
            cost = sum(s.expected_cost for s in steps)
        elif action_kind == "emergency":
            targets, reasons = emergency_targets(self.s, params, protocol, self.px, self.sim, book, equity)
            steps, cost = self._steps(book, targets, params, False)
        elif action_kind == "hedge":
            targets = hedge_current(self.s, params, self.px, self.sim, book)
            steps, cost = self._steps(book, targets, params, False)
        else:
            unwind = action_kind == "unwind"
            targets = compute_targets(self.s, params, self.px, self.sim, book, equity, unwind, self.signals)
            steps, cost = self._steps(book, targets, params, unwind)
            if cost > 0 and not unwind:
                targets = compute_targets(self.s, params, self.px, self.sim, book, max(equity - cost, 0.0), unwind, self.signals)
                steps, cost = self._steps(book, targets, params, unwind)
        t = self.px.view.time
        notes = tuple(reasons) + tuple(f"{k}: venue data stale, position held, not traded" for k in targets.frozen)
        return Plan(
            strategy=self.s.name, state=state, action=action_kind, trigger=trigger,
            time=f"{t:%Y-%m-%dT%H:%MZ}",
            targets={"positions": _r(targets.positions), "cex_equity_usdt": _r(targets.margin), "deltas": _r(targets.deltas)},
            steps=tuple(steps), expected_cost=round(cost, 6), notes=notes,
        )

    # ------------------------------------------------------------------ the phases
    def _steps(self, book: Book, tg: Targets, params: dict[str, float], unwind: bool) -> tuple[list[Step], float]:
        px, sim = self.px, self.sim
        eth = px.eth_usd()
        sc = px.share_usd()
        sid = _ids()
        release: list[Step] = []
        deploy: list[tuple[str, Step]] = []  # (what it waits for: 'deposit:<venue>', 'buy', 'sell', 'perps'), step
        wallet_in: dict[str, float] = defaultdict(float)  # asset -> amount releases bring to the wallet
        wallet_out: dict[str, float] = defaultdict(float)  # asset -> amount deploys take from the wallet
        venue_in: dict[str, float] = defaultdict(float)  # venue -> USDT its releases free
        venue_out: dict[str, float] = defaultdict(float)  # venue -> USDT its deploys spend
        venue_release: dict[str, list[str]] = defaultdict(list)
        wallet_release: dict[str, list[str]] = defaultdict(list)
        gas_eth = 0.0

        def gas_of(venue: str, op: str) -> float:
            return sim.gas_eth(sim.op(venue, op).gas_op)

        # --- perps: reductions release, increases deploy after the venue's deposit; the part of
        # a hedge reduction that moves to another venue waits for that venue's increase
        moved = self._hedge_moved(book, tg)
        hedge_increases: list[str] = []
        moved_later: list[Step] = []
        for key in sorted(k for k in tg.positions if px.info[k].ptype == "Perp"):
            if key in tg.frozen:
                continue
            cur, tgt = book.qty(key), tg.positions[key]
            d = tgt - cur
            mark = px.mark(key)
            venue = px.info[key].venue
            least = max(MIN_TRADE_USD, sim.op(venue, "trade").min_notional)
            if abs(d) * mark < least:
                continue
            if abs(tgt) < abs(cur) or (cur and (tgt > 0) != (cur > 0)):
                later = d * moved if key in self.hedge_keys and (tgt > 0) == (cur > 0) else 0.0
                if abs(later) * mark < least:
                    later = 0.0
                elif abs(d - later) * mark < least:
                    later = d
                if d - later:
                    ins = self._perp_ins(key, d - later, mark, cur + d - later, params)
                    st = Step(next(sid), f"reduce {key} by {d - later:+.4f}", (ins,), expected_cost=ins.expected_cost)
                    release.append(st)
                    venue_release[venue].append(st.id)
                if later:
                    ins = self._perp_ins(key, later, mark, tgt, params)
                    moved_later.append(Step(next(sid), f"reduce {key} by {later:+.4f} as the hedge moves to another venue", (ins,),
                                            expected_cost=ins.expected_cost))
            else:
                ins = self._perp_ins(key, d, mark, tgt, params)
                st = Step(next(sid), f"increase {key} by {d:+.4f}", (ins,), expected_cost=ins.expected_cost)
                deploy.append((f"deposit:{venue}", st))
                if key in self.hedge_keys:
                    hedge_increases.append(st.id)

        # --- templates holding on-chain or spot positions
        moves = _Moves(self, book, tg, params, eth, sc, sid, release, deploy, wallet_in, wallet_out, venue_in, venue_out,
                       venue_release, wallet_release, gas_eth)
        for t in self.s.config.targets:
            template_for(t).moves(t, moves)
        gas_eth, entry_bundle = moves.gas_eth, moves.entry_bundle

        # --- CEX accounts: withdraw what is above target, deposit what is short
        steps: list[Step] = list(release)
        deposits: list[tuple[str, float]] = []
        withdraw_ids: list[str] = []
        for venue in sorted(set(tg.margin) | set(venue_in) | set(venue_out)):
            eq, _, _ = sim.perp_account(book, venue)
            target = tg.margin.get(venue, 0.0 if venue not in self._signal_venues() else eq)
            d = target - eq + venue_out[venue] - venue_in[venue]
            if abs(d) < MIN_TRADE_USD:
                continue
            if d < 0:
                # Planned on account equity (closing trades realise their P&L into the USDT
                # balance first); the executor clamps to the balance and the margin floor.
                amt = -d
                fee = sim.op(venue, "withdraw").fee
                st = Step(next(sid), f"withdraw {amt:.2f} USDT from {venue}",
                          (Instruction(venue, "withdraw", f"{venue}:Margin:USDT", amt, "USDT", expected_cost=fee / sc),),
                          depends_on=tuple(venue_release[venue]), latency_s=sim.op(venue, "withdraw").latency_s, expected_cost=fee / sc)
                steps.append(st)
                withdraw_ids.append(st.id)
                wallet_in["USDT_later"] += amt - fee
            else:
                deposits.append((venue, d))
                gas_eth += gas_of("wallet", "transfer")

        # --- wallet conversions between ETH and USDT
        reserve = sum(tg.positions.get(WALLET_ETH, 0.0) for t in self.s.config.targets
                      if template_for(t).reserve_key(t) == WALLET_ETH)
        deposit_total = sum(d for _, d in deposits)
        usdt_now = book.qty(WALLET_USDT) + wallet_in["USDT"]
        eth_need = wallet_out["ETH"] + GAS_SAFETY * gas_eth + reserve - book.qty(WALLET_ETH) - wallet_in["ETH"]
        usdt_need = deposit_total + wallet_out["USDT"]
        share = self.s.config.share_class
        buy_id = sell_id = None
        wait_for_withdrawals = bool(withdraw_ids) and usdt_need > usdt_now + 1e-6
        usdt_total = usdt_now + wallet_in["USDT_later"]
        if self.swap_venue and eth_need * eth > MIN_TRADE_USD and usdt_total - usdt_need > MIN_TRADE_USD:
            eth_need = min(eth_need, (usdt_total - usdt_need) / eth)  # no more than the spare USDT buys
            venue, routes = self.route("USDT", "ETH", eth_need * eth)
            g = gas_of(venue, "swap")
            eth_need += GAS_SAFETY * g
            cost = self._swap_cost(venue, "USDT", "ETH", eth_need * eth)
            usdt = eth_need * eth / (1 - cost / 1e4)
            buy_id = next(sid)
            c = usdt * cost / 1e4 / sc
            deps = tuple(wallet_release["USDT"])
            if usdt + usdt_need > usdt_now:
                deps += tuple(withdraw_ids)
                wait_for_withdrawals = bool(withdraw_ids)
            steps.append(Step(buy_id, f"buy {eth_need:.4f} ETH with USDT on {venue}",
                              (Instruction(venue, "swap", WALLET_USDT, usdt, "USDT", {"buy": "ETH", "routes": routes}, "dex ETH/USDT", c),),
                              depends_on=deps, expected_cost=c + g * eth / sc))
        else:
            surplus = -eth_need
            shortfall = usdt_need - usdt_now - (wallet_in["USDT_later"] if not wait_for_withdrawals else 0.0)
            sell = 0.0
            if shortfall > 0:
                sell = min(surplus, shortfall / eth * 1.01)
            elif share != "ETH" and (unwind or wallet_release["ETH"]):
                sell = surplus  # ETH freed by releases goes back into the share class
            if self.swap_venue and sell * eth > MIN_TRADE_USD:
                venue, routes = self.route("ETH", "USDT", sell)
                cost = self._swap_cost(venue, "ETH", "USDT", sell)
                g = gas_of(venue, "swap")
                sell_id = next(sid)
                c = sell * eth * cost / 1e4 / sc
                steps.append(Step(sell_id, f"sell {sell:.4f} ETH for USDT on {venue}",
                                  (Instruction(venue, "swap", WALLET_ETH, sell, "ETH", {"buy": "USDT", "routes": routes}, "dex ETH/USDT", c),),
                                  depends_on=tuple(wallet_release["ETH"]), expected_cost=c + g * eth / sc))
        if share == "ETH" and self.swap_venue and (wallet_in["USDT_later"] > MIN_TRADE_USD) and (unwind or not deposits):
            # CEX withdrawals in an ETH share class come back as USDT: buy ETH with them on arrival.
            amt = wallet_in["USDT_later"]
            venue, routes = self.route("USDT", "ETH", amt)
            cost = self._swap_cost(venue, "USDT", "ETH", amt)
            c = amt * cost / 1e4 / sc
            steps.append(Step(next(sid), f"buy ETH with {amt:.2f} USDT withdrawn on {venue}",
                              (Instruction(venue, "swap", WALLET_USDT, amt, "USDT", {"buy": "ETH", "routes": routes}, "dex ETH/USDT", c),),
                              depends_on=tuple(withdraw_ids), expected_cost=c))

        # Never plan to deposit more USDT than the wallet will have: scale deposits down to it.
        sold_usdt = sum(st.instructions[0].amount * eth * (1 - 0.005) for st in steps if st.id == sell_id)
        available = usdt_now + wallet_in["USDT_later"] + sold_usdt - wallet_out["USDT"]
        if deposit_total > available > 0:
            deposits = [(v, d * available / deposit_total) for v, d in deposits]
        elif available <= 0:
            deposits = []
        deposits = [(v, d) for v, d in deposits if d >= MIN_TRADE_USD]
        dep_ids: dict[str, str] = {}
        for venue, d in deposits:
            g = gas_of("wallet", "transfer") * eth / sc
            deps = tuple(x for x in [sell_id] if x) + tuple(wallet_release["USDT"]) + (tuple(withdraw_ids) if wait_for_withdrawals else ())
            st = Step(next(sid), f"deposit {d:.2f} USDT to {venue}", (Instruction(venue, "deposit", WALLET_USDT, d, "USDT", expected_cost=g),),
                      depends_on=deps, latency_s=sim.op(venue, "deposit").latency_s, expected_cost=g)
            steps.append(st)
            dep_ids[venue] = st.id

        # The hedge goes on with the leg it hedges: hedge increases wait for what funds the legs
        # going up (the entry bundle, stakes, CEX spot buys) and those legs wait for the hedge
        # increases, so both land in one tick.
        legs_up = [st.id for w, st in deploy if w == "buy" or (st.instructions[0].operation == "spot_trade" and st.instructions[0].amount > 0)]
        together = bool(hedge_increases) and (entry_bundle is not None or bool(legs_up))
        hedge_deps = tuple(sorted({dep_ids[w.split(":", 1)[1]] for w, st in deploy
                                   if st.id in hedge_increases and w.split(":", 1)[1] in dep_ids}))
        if together and buy_id is not None and hedge_deps and (entry_bundle is not None or any(w == "buy" for w, _ in deploy)):
            # The ETH bought for them is unhedged delta until the hedge is on: buy it in the
            # tick the deposits land (gas money for the deposits first, if short).
            steps, buy_id = self._buy_with_hedge(book, steps, buy_id, hedge_deps, gas_eth, reserve, sid)
        deps_of: dict[str, tuple[str, ...]] = {}
        for wait, st in deploy:
            if wait.startswith("deposit:"):
                deps_of[st.id] = tuple(x for x in [dep_ids.get(wait.split(":", 1)[1])] if x)
            elif wait == "buy":
                deps_of[st.id] = tuple(x for x in [buy_id] if x) + tuple(wallet_release["ETH"])
            else:  # supply from the wallet's own asset
                deps_of[st.id] = tuple(x for x in [sell_id] if x) + (tuple(withdraw_ids) if wait_for_withdrawals else ())
        bundle_deps = tuple(wallet_release["ETH"]) + tuple(x for x in [buy_id] if x)
        if together:
            funding = {d for i in legs_up for d in deps_of[i]} | (set(bundle_deps) if entry_bundle is not None else set())
            for i in hedge_increases:
                deps_of[i] += tuple(sorted(funding - set(deps_of[i])))
            for i in legs_up:
                deps_of[i] += tuple(hedge_increases)
        perp_ids = []
        for wait, st in deploy:
            st = Step(st.id, st.description, st.instructions, depends_on=deps_of[st.id], expected_cost=st.expected_cost)
            steps.append(st)
            if st.instructions[0].operation == "trade":
                perp_ids.append(st.id)
        for st in moved_later:
            steps.append(Step(st.id, st.description, st.instructions, depends_on=tuple(hedge_increases), expected_cost=st.expected_cost))
        if entry_bundle is not None:
            deps = bundle_deps + tuple(perp_ids)
            steps.append(Step(next(sid), entry_bundle.description, entry_bundle.instructions, bundle=True,
                              venue=entry_bundle.venue, operation=entry_bundle.operation, depends_on=deps,
                              expected_cost=entry_bundle.expected_cost))
        # Each step's expected cost includes its own gas, so the plan's cost is their sum.
        return steps, max(sum(s.expected_cost for s in steps), 0.0)

    def _hedge_moved(self, book: Book, tg: Targets) -> float:
        """The fraction of the hedge legs' reductions that moves to other hedge legs (their
        increases), 0..1: that part is reduced only once the other venue holds it, so a hedge
        moving between venues is never off both (issue 13 part 4). Same-sign legs only."""
        red = inc = 0.0
        for key in self.hedge_keys:
            if key in tg.frozen or key not in tg.positions:
                continue
            cur, tgt = book.qty(key), tg.positions[key]
            if cur and (tgt > 0) != (cur > 0):
                continue  # a flip closes the old side first
            units = (abs(tgt) - abs(cur)) * self.px.mark(key)
            red, inc = red + max(-units, 0.0), inc + max(units, 0.0)
        return min(red, inc) / red if red > 0 else 0.0

    def _buy_with_hedge(self, book: Book, steps: list[Step], buy_id: str, dep_ids: tuple[str, ...], gas_eth: float,
                        reserve: float, sid) -> tuple[list[Step], str]:
        """Make the ETH buy funding an entry bundle wait for the CEX deposits its hedge needs, so
        the ETH is bought in the tick the perps and the bundle go on. The part the plan's gas
        and the wallet reserve need now (the deposits pay gas in ETH) is bought at once as its
        own step. Returns the new steps and the id of the buy the bundle waits for."""
        i = next(n for n, st in enumerate(steps) if st.id == buy_id)
        st = steps[i]
        ins = st.instructions[0]
        eth = self.px.eth_usd()
        bought = ins.amount / eth  # ETH, before costs: the split is pro rata
        now = min(max(GAS_SAFETY * gas_eth + reserve - book.qty(WALLET_ETH), 0.0), bought)
        if now * eth < MIN_TRADE_USD:
            steps[i] = Step(st.id, st.description, st.instructions, depends_on=st.depends_on + dep_ids, expected_cost=st.expected_cost)
            return steps, buy_id
        if (bought - now) * eth < MIN_TRADE_USD:
            return steps, buy_id  # it is (almost) all gas money: buy it now
        f = now / bought
        gas = self.sim.gas_eth(self.sim.op(ins.venue, "swap").gas_op) * eth / self.px.share_usd()
        first = Step(st.id, f"buy {now:.4f} ETH for gas with USDT on {ins.venue}",
                     (Instruction(ins.venue, ins.operation, ins.instrument, ins.amount * f, ins.asset, ins.params, ins.price_field,
                                  ins.expected_cost * f),),
                     depends_on=st.depends_on, expected_cost=ins.expected_cost * f + gas)
        rest_id = next(sid)
        rest = Step(rest_id, f"buy {bought - now:.4f} ETH with USDT on {ins.venue} as the hedge goes on",
                    (Instruction(ins.venue, ins.operation, ins.instrument, ins.amount * (1 - f), ins.asset, ins.params, ins.price_field,
                                 ins.expected_cost * (1 - f)),),
                    depends_on=st.depends_on + dep_ids, expected_cost=st.expected_cost - ins.expected_cost * f)
        steps[i] = first
        steps.append(rest)
        return steps, rest_id

    def _signal_venues(self) -> set[str]:
        return {self.px.info[k].venue for k in self.signal_targets}

    def _dust_steps(self, book: Book) -> list[Step]:
        """Sell every reward token in the wallet for ETH, then (USDT share class) ETH for USDT."""
        px, sim = self.px, self.sim
        sc = px.share_usd()
        eth = px.eth_usd()
        steps: list[Step] = []
        sid = _ids()
        got_eth = 0.0
        for token in sorted(REWARD_TOKENS):
            key = f"wallet:BaseToken:{token}"
            q = book.qty(key)
            if q <= 0 or key not in px.info:
                continue
            cost = self._swap_cost(self.swap_venue, token, "ETH", q)
            got_eth += q * px.asset_usd(token) / eth * (1 - cost / 1e4)
            c = q * px.asset_usd(token) * cost / 1e4 / sc
            steps.append(Step(next(sid), f"sell {q:.4f} {token} dust for ETH on {self.swap_venue}",
                              (Instruction(self.swap_venue, "swap", key, q, token, {"buy": "ETH"}, f"dex {token}/ETH", c),),
                              expected_cost=c + sim.gas_eth(sim.op(self.swap_venue, "swap").gas_op) * eth / sc))
        if steps and self.s.config.share_class == "USDT":
            cost = self._swap_cost(self.swap_venue, "ETH", "USDT", got_eth)
            c = got_eth * eth * cost / 1e4 / sc
            steps.append(Step(next(sid), f"sell {got_eth:.6f} ETH from dust for USDT on {self.swap_venue}",
                              (Instruction(self.swap_venue, "swap", WALLET_ETH, got_eth, "ETH", {"buy": "USDT"}, "dex ETH/USDT", c),),
                              depends_on=tuple(s.id for s in steps), expected_cost=c))
        return steps

    # ------------------------------------------------------------------ instruction builders
    def route(self, sell: str, buy: str, amount: float, atomic: bool = False, kinds: tuple[str, ...] = ("dex",),
              funds_on: str | None = None) -> tuple[str, list[dict]]:
        """(venue, routes considered) for converting ``amount`` of ``sell`` into ``buy``: the
        cheapest of the strategy's routes of ``kinds`` that fits this plan's deadline
        (:mod:`trimtab.planner.routes`); the target's ``swap_venue`` with no routes listed when
        none can be priced (the instruction then fails with the venue's own error).
        ``funds_on``: the CEX venue holding ``sell`` (None: the wallet)."""
        try:
            # routes the funds cannot take here (CEX spot from the wallet, the wallet's pools from an
            # exchange) are journaled beside the others, never chosen (routes.cex_spot)
            quotes = [q for q in candidates(self.sim, sell, buy, amount, atomic, funds_on)
                      if q.kind in kinds or q.kind == "cex_spot" or not q.executable]
            best, considered = choose(quotes, getattr(self, "deadline_s", 0.0))
        except TrimtabError:  # stale or bad prices, no pair: the swap venue reports it when run
            return self.swap_venue, []
        return best.venue, considered

    def _swap_cost(self, venue: str | None, sell: str, buy: str, amount: float) -> float:
        if venue is None:
            return 0.0
        try:
            return self.sim.swap_quote(venue, sell, buy, amount)[3]
        except Exception:
            return 0.0

    def _perp_ins(self, key: str, d: float, mark: float, target: float, params: dict[str, float]) -> Instruction:
        venue = self.px.info[key].venue
        notional = abs(d) * mark
        spec = self.s.instruments[key][1]
        cost = notional * (self.sim.op(venue, "trade").fee_bps + self.sim.exec_cost_bps(spec.cost_pair, notional)) / 1e4
        t = self.signal_targets.get(key)
        extra = template_for(t).order_extra(t, self.signals, self.s, params, mark, target) if t is not None else {}
        return Instruction(venue, "trade", key, d, self.px.info[key].asset, extra, price_field=self.px.info[key].mark_field,
                           expected_cost=cost / self.px.share_usd())


REWARD_TOKENS = ("EIGEN", "ETHFI")


def _ids():
    n = 0
    while True:
        n += 1
        yield f"s{n}"


def _r(d: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 10) for k, v in sorted(d.items())}


class _Moves:
    """What a template's ``moves`` reads and appends to (:class:`trimtab.templates.base.MoveContext`):
    the planner's collaborators and one ``_steps`` call's accumulators."""

    def __init__(self, planner: Planner, book: Book, tg: Targets, params, eth, sc, sid, release, deploy, wallet_in, wallet_out,
                 venue_in, venue_out, venue_release, wallet_release, gas_eth):
        self._planner = planner
        self.strategy, self.px, self.sim = planner.s, planner.px, planner.sim
        self.book, self.tg, self.params, self.eth, self.sc = book, tg, params, eth, sc
        self.min_trade_usd = MIN_TRADE_USD
        self._sid = sid
        self.release, self.deploy = release, deploy
        self.wallet_in, self.wallet_out, self.venue_in, self.venue_out = wallet_in, wallet_out, venue_in, venue_out
        self.venue_release, self.wallet_release = venue_release, wallet_release
        self.gas_eth = gas_eth
        self.entry_bundle: Step | None = None
        self.instruction, self.step = Instruction, Step

    def next_id(self) -> str:
        return next(self._sid)

    def gas_of(self, venue: str, op: str) -> float:
        return self.sim.gas_eth(self.sim.op(venue, op).gas_op)

    def swap_cost(self, venue: str | None, sell: str, buy: str, amount: float) -> float:
        return self._planner._swap_cost(venue, sell, buy, amount)

    def route(self, sell: str, buy: str, amount: float, atomic: bool = False, kinds: tuple[str, ...] = ("dex",),
              funds_on: str | None = None) -> tuple[str, list[dict]]:
        """(venue, routes considered): :meth:`Planner.route`."""
        return self._planner.route(sell, buy, amount, atomic, kinds, funds_on)
