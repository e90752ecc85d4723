"""The planner: diff target positions against the book and compile a deterministic plan.

Order of a plan (each step waits only for what it needs):

1. *release*: perp reductions, and an atomic unwind bundle for a smaller leveraged position
   (flash_borrow -> repay -> withdraw -> swap LST to ETH -> flash_repay);
2. *withdraw*: CEX margin above target goes back to the wallet (after that venue's reduction);
3. *convert*: wallet swaps, selling surplus ETH for USDT or buying the ETH the on-chain leg
   and gas need;
4. *fund*: USDT margin deposits to the CEXs (arrive after the venue's deposit latency);
5. *deploy*: perp increases (after their venue's deposit) and then the atomic entry bundle
   (flash_borrow -> stake -> supply -> borrow -> flash_repay). The entry bundle waits for the
   perp increases so the on-chain leg and its hedge land in the same tick.

Targets are sized on equity less the plan's own expected cost (one refinement pass), so the
plan funds itself. Moves smaller than ``min_trade_usd`` are skipped.
"""
from __future__ import annotations

from ..accounting.book import Book
from ..config.load import Strategy
from ..config.models import LeveragedStakeTarget, WalletReserveTarget
from ..venues.pricing import Pricing
from ..venues.sim import WALLET_ETH, SimVenues
from .plan import Instruction, Plan, Step
from .targets import Targets, compute_targets

MIN_TRADE_USD = 25.0
GAS_SAFETY = 2.0  # gas is bought ahead at this multiple of the estimate at this tick's gas price
WALLET_USDT = "wallet:BaseToken:USDT"


class Planner:
    """Builds plans for one strategy. Stateless between calls: same inputs, same plan."""

    def __init__(self, strategy: Strategy, px: Pricing, sim: SimVenues):
        self.s = strategy
        self.px = px
        self.sim = sim

    def plan(self, book: Book, equity: float, state: str, action_kind: str, params: dict[str, float], trigger: str) -> Plan:
        """Compile the plan that moves ``book`` toward the targets for ``equity`` under ``params``."""
        unwind = action_kind == "unwind"
        targets = compute_targets(self.s, params, self.px, self.sim, book, equity, unwind)
        steps, cost = self._steps(book, targets)
        if cost > 0 and not unwind:
            targets = compute_targets(self.s, params, self.px, self.sim, book, max(equity - cost, 0.0), unwind)
            steps, cost = self._steps(book, targets)
        t = self.px.view.time
        notes = tuple(f"{k}: venue data stale, position held, not traded" for k in targets.frozen)
        return Plan(
            strategy=self.s.name, state=state, action=action_kind, trigger=trigger,
            time=f"{t:%Y-%m-%dT%H:%MZ}",
            targets={"positions": _r(targets.positions), "cex_equity_usdt": _r(targets.margin), "deltas": _r(targets.deltas)},
            steps=tuple(steps), expected_cost=round(cost, 6), notes=notes,
        )

    # ------------------------------------------------------------------ steps
    def _steps(self, book: Book, tg: Targets) -> tuple[list[Step], float]:
        px, sim = self.px, self.sim
        eth = px.eth_usd()
        sc = px.share_usd()
        steps: list[Step] = []
        sid = _ids()
        gas_eth = 0.0
        eth_in = 0.0  # ETH the release phase brings to the wallet
        eth_out = 0.0  # ETH the deploy phase takes from the wallet
        usdt_in_later: dict[str, float] = {}

        # --- perps: reductions now, increases after deposits
        reduce_ids: dict[str, str] = {}
        increases: list[tuple[str, float]] = []
        for key in sorted(k for k in tg.positions if px.info[k].ptype == "Perp"):
            if key in tg.frozen:
                continue
            cur = book.qty(key)
            d = tg.positions[key] - cur
            mark = px.mark(key)
            if abs(d) * mark < max(MIN_TRADE_USD, sim.op(px.info[key].venue, "trade").min_notional):
                continue
            ins = self._perp_ins(key, d, mark)
            if abs(tg.positions[key]) < abs(cur) or (cur and (tg.positions[key] > 0) != (cur > 0)):
                i = next(sid)
                steps.append(Step(i, f"reduce {key} by {d:+.4f}", (ins,), depends_on=(), expected_cost=ins.expected_cost))
                reduce_ids[px.info[key].venue] = i
            else:
                increases.append((key, d))

        # --- leveraged stake: unwind or entry bundles
        entry_bundle = None
        unwind_id = None
        for t in self.s.config.targets:
            if not isinstance(t, LeveragedStakeTarget):
                continue
            coll, debt = t.collateral, t.debt
            asset = px.info[coll].asset
            rate = px.eth_rate(asset)
            c_cur = px.amount(coll, book.qty(coll))
            d_cur = px.amount(debt, book.qty(debt))
            dc = tg.positions[coll] - c_cur
            dd = tg.positions[debt] - d_cur
            if abs(dc) * rate * eth < MIN_TRADE_USD and abs(dd) * eth < MIN_TRADE_USD:
                continue
            if dc < 0 or dd < 0:
                b = self._unwind_bundle(t, max(-dc, 0.0), max(-dd, 0.0), rate)
                unwind_id = next(sid)
                steps.append(Step(unwind_id, f"unwind {t.id}: withdraw {max(-dc, 0):.4f} {asset}, repay {max(-dd, 0):.4f} WETH",
                                  b, bundle=True, venue=t.bundler, operation="bundle_unwind",
                                  expected_cost=sum(x.expected_cost for x in b) + sim.gas_eth(sim.op(t.bundler, "bundle_unwind").gas_op) * eth / sc))
                gas_eth += sim.gas_eth(sim.op(t.bundler, "bundle_unwind").gas_op)
                eth_in += max(-dc, 0.0) * rate * (1 - self._swap_cost(t.swap_venue, asset, "ETH", max(-dc, 0.0)) / 1e4) - min(max(-dd, 0.0), max(-dc, 0.0) * rate)
            if dc > 0 or dd > 0:
                b = self._entry_bundle(t, max(dc, 0.0), max(dd, 0.0), rate)
                entry_bundle = (t, b)
                eth_out += max(dc, 0.0) * rate - max(dd, 0.0)
                gas_eth += sim.gas_eth(sim.op(t.bundler, "bundle_entry").gas_op)

        # --- CEX margin: withdrawals (after reductions) and deposits
        deposits: list[tuple[str, float]] = []
        withdraw_ids: list[str] = []
        for venue in sorted(tg.margin):
            eq, _, _ = sim.perp_account(book, venue)
            d = tg.margin[venue] - eq
            if abs(d) < MIN_TRADE_USD:
                continue
            if d < 0:
                amt = min(-d, max(book.qty(f"{venue}:Margin:USDT"), 0.0))
                if amt < MIN_TRADE_USD:
                    continue
                i = next(sid)
                fee = sim.op(venue, "withdraw").fee
                steps.append(Step(i, f"withdraw {amt:.2f} USDT margin from {venue}",
                                  (Instruction(venue, "withdraw", f"{venue}:Margin:USDT", amt, "USDT", expected_cost=fee / sc),),
                                  depends_on=tuple(x for x in [reduce_ids.get(venue)] if x),
                                  latency_s=sim.op(venue, "withdraw").latency_s, expected_cost=fee / sc))
                withdraw_ids.append(i)
                usdt_in_later[i] = amt - fee
            else:
                deposits.append((venue, d))
        gas_eth += len(deposits) * sim.gas_eth(sim.op("wallet", "transfer").gas_op)

        # --- wallet reserve (gas money) and conversions
        reserve = sum(tg.positions.get(t.instrument, 0.0) for t in self.s.config.targets if isinstance(t, WalletReserveTarget) and t.instrument == WALLET_ETH)
        swap_venue = next((t.swap_venue for t in self.s.config.targets if isinstance(t, (LeveragedStakeTarget, WalletReserveTarget))), None)
        usdt_now = book.qty(WALLET_USDT)
        deposit_total = sum(d for _, d in deposits)
        eth_need = eth_out + GAS_SAFETY * gas_eth + reserve - book.qty(WALLET_ETH) - eth_in
        swap_id = sell_id = None
        # USDT for deposits and ETH purchases comes from the wallet now, the sale of unwound ETH,
        # or CEX withdrawals that arrive later; anything short of the first two waits for those.
        wait_for_withdrawals = bool(withdraw_ids) and deposit_total > usdt_now + 1e-6
        if swap_venue and eth_need * eth > MIN_TRADE_USD:
            gas_eth += self.sim.gas_eth(sim.op(swap_venue, "swap").gas_op)
            eth_need += GAS_SAFETY * self.sim.gas_eth(sim.op(swap_venue, "swap").gas_op)
            cost = self._swap_cost(swap_venue, "USDT", "ETH", eth_need * eth)
            usdt = eth_need * eth / (1 - cost / 1e4)
            swap_id = next(sid)
            deps = tuple(withdraw_ids) if usdt + deposit_total > usdt_now else ()
            if deps:
                wait_for_withdrawals = True
            c = usdt * cost / 1e4 / sc
            g = sim.gas_eth(sim.op(swap_venue, "swap").gas_op) * eth / sc
            steps.append(Step(swap_id, f"buy {eth_need:.4f} ETH with USDT on {swap_venue}",
                              (Instruction(swap_venue, "swap", WALLET_USDT, usdt, "USDT", {"buy": "ETH"}, "dex ETH/USDT", c),),
                              depends_on=deps, expected_cost=c + g))
        elif swap_venue and -eth_need * eth > MIN_TRADE_USD and unwind_id is not None:
            sell = -eth_need
            cost = self._swap_cost(swap_venue, "ETH", "USDT", sell)
            sell_id = next(sid)
            c = sell * eth * cost / 1e4 / sc
            g = sim.gas_eth(sim.op(swap_venue, "swap").gas_op) * eth / sc
            steps.append(Step(sell_id, f"sell {sell:.4f} ETH for USDT on {swap_venue}",
                              (Instruction(swap_venue, "swap", WALLET_ETH, sell, "ETH", {"buy": "USDT"}, "dex ETH/USDT", c),),
                              depends_on=(unwind_id,), expected_cost=c + g))

        dep_ids: dict[str, str] = {}
        for venue, d in deposits:
            i = next(sid)
            g = sim.gas_eth(sim.op("wallet", "transfer").gas_op) * eth / sc
            steps.append(Step(i, f"deposit {d:.2f} USDT margin to {venue}",
                              (Instruction(venue, "deposit", WALLET_USDT, d, "USDT", expected_cost=g),),
                              depends_on=tuple(x for x in [sell_id] if x) + (tuple(withdraw_ids) if wait_for_withdrawals else ()),
                              latency_s=sim.op(venue, "deposit").latency_s, expected_cost=g))
            dep_ids[venue] = i

        inc_ids = []
        for key, d in increases:
            venue = px.info[key].venue
            ins = self._perp_ins(key, d, px.mark(key))
            i = next(sid)
            steps.append(Step(i, f"increase {key} by {d:+.4f}", (ins,),
                              depends_on=tuple(x for x in [dep_ids.get(venue)] if x), expected_cost=ins.expected_cost))
            inc_ids.append(i)

        if entry_bundle:
            t, b = entry_bundle
            deps = tuple(x for x in [unwind_id, swap_id] if x) + tuple(inc_ids)
            g = sim.gas_eth(sim.op(t.bundler, "bundle_entry").gas_op) * eth / sc
            steps.append(Step(next(sid), f"enter {t.id}: flash_borrow -> stake -> supply -> borrow -> flash_repay", b, bundle=True,
                              venue=t.bundler, operation="bundle_entry", depends_on=deps,
                              expected_cost=sum(x.expected_cost for x in b) + g))
        # Each step's expected cost includes its own gas, so the plan's cost is their sum.
        return steps, max(sum(s.expected_cost for s in steps), 0.0)

    # ------------------------------------------------------------------ instruction builders
    def _swap_cost(self, venue: str, sell: str, buy: str, amount: float) -> float:
        try:
            return self.sim.swap_quote(venue, sell, buy, amount)[3]
        except Exception:
            return 0.0

    def _perp_ins(self, key: str, d: float, mark: float) -> Instruction:
        venue = self.px.info[key].venue
        notional = abs(d) * mark
        spec = self.s.instruments[key][1]
        cost = notional * (self.sim.op(venue, "trade").fee_bps + self.sim.exec_cost_bps(spec.cost_pair, notional)) / 1e4
        return Instruction(venue, "trade", key, d, self.px.info[key].asset, price_field=self.px.info[key].mark_field,
                           expected_cost=cost / self.px.share_usd())

    def _entry_bundle(self, t: LeveragedStakeTarget, dc: float, dd: float, rate: float) -> tuple[Instruction, ...]:
        lending = self.px.info[t.collateral].venue
        asset = self.px.info[t.collateral].asset
        stake_eth = dc * rate
        return (
            Instruction(t.flash_venue, "flash_borrow", f"{t.flash_venue}:debtToken:flashWETH", dd, "WETH"),
            Instruction(t.lst_venue, "stake", WALLET_ETH, stake_eth, "ETH", {"mint": asset}, self.s.venues[t.lst_venue].lst.rate_field),
            Instruction(lending, "supply", t.collateral, dc, asset),
            Instruction(lending, "borrow", t.debt, dd, "WETH"),
            Instruction(t.flash_venue, "flash_repay", f"{t.flash_venue}:debtToken:flashWETH", dd, "WETH"),
        )

    def _unwind_bundle(self, t: LeveragedStakeTarget, dc: float, dd: float, rate: float) -> tuple[Instruction, ...]:
        lending = self.px.info[t.collateral].venue
        asset = self.px.info[t.collateral].asset
        cost = self._swap_cost(t.swap_venue, asset, "ETH", dc)
        proceeds = dc * rate * (1 - cost / 1e4)
        repay = min(dd, proceeds) if dc > 0 else dd
        eth = self.px.eth_usd()
        return (
            Instruction(t.flash_venue, "flash_borrow", f"{t.flash_venue}:debtToken:flashWETH", repay, "WETH"),
            Instruction(lending, "repay", t.debt, repay, "WETH"),
            Instruction(lending, "withdraw", t.collateral, dc, asset),
            Instruction(t.swap_venue, "swap", f"wallet:BaseToken:{asset}", dc, asset, {"buy": "ETH"}, "oracle rate",
                        dc * rate * cost / 1e4 * eth / self.px.share_usd()),
            Instruction(t.flash_venue, "flash_repay", f"{t.flash_venue}:debtToken:flashWETH", repay, "WETH"),
        )


def _ids():
    n = 0
    while True:
        n += 1
        yield f"s{n}"


def _r(d: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 10) for k, v in sorted(d.items())}
