"""``lend_loop``: stablecoin looping on a lending venue (supply, borrow the same stable, re-supply).

With equity e (asset units) and target loan-to-value L: collateral C = e / (1 - L) and debt
D = e x L / (1 - L), so C - D = e and D / C = L (the same algebra as ``leveraged_stake``). The
loop earns supply APR on C and pays borrow APR on D; it only pays when supply (plus rewards)
beats borrow x L, so it is a building block, not a yield promise.

Without a flash loan of the stable (the bundled flash venue lends WETH only) the loop is built
the way Instadapp/DeFi Saver recipes do it in one transaction: supply e, then borrow and
re-supply in rounds, each borrow at most what the venue's max LTV allows on the collateral
supplied so far (Aave v3 refuses a borrow above LTV: ``ValidationLogic.validateBorrow``), the
last one cut to reach D exactly. Unwinding runs the mirror image: withdraw what the max LTV
leaves free, repay, repeat, then withdraw the rest. Both are atomic bundles on ``bundler``
(one bundle's gas, ``bundle_entry`` / ``bundle_unwind``) and at most :data:`MAX_ROUNDS` rounds;
a bundle that cannot reach its target in that many stops where it is (the rest is planned on
the next rebalance).

The lending venue's collateral and debt must be the same asset (a USDT loop on Aave v3 here):
a loop of two different stables needs a swap per round, which this template does not plan.
One plan holds at most one entry bundle: do not combine it with ``leveraged_stake``. Real
execution (``--execute``) refuses it by name until the live bundle adapter can cast the rounds.
"""
# No `from __future__ import annotations`: pydantic reads these at import (templates/base.py).

from typing import Literal

from .base import BaseTemplate, Expr, Loop, TargetModel, held_series, spec
from .leveraged_stake import check_emode, check_target_ltv, loop_risk

#: Most borrow/re-supply (or withdraw/repay) rounds in one bundle. At L = 0.70 under a max LTV
#: of 0.75, building from zero takes 6 rounds.
MAX_ROUNDS = 40
_WALLET_SIGN = {"supply": -1.0, "withdraw": 1.0, "borrow": 1.0, "repay": -1.0}
#: A round smaller than this fraction of the equity is not worth its calldata: stop.
_EPS = 1e-9


class LendLoopTarget(TargetModel):
    """Loop ``allocation`` of equity on a lending venue: supply ``collateral`` (an aToken),
    borrow ``debt`` (a debtToken of the same asset) and re-supply, to ``target_ltv`` (keep it
    under the venue's max LTV, with a margin under the liquidation threshold). Built and
    resized with atomic bundles on ``bundler``."""

    template: Literal["lend_loop"] = spec("The template this target uses (its model and behaviour; docs/templates.md).", "-")
    allocation: Expr = spec("Fraction of the strategy's equity this target holds (a number or an expression over parameters).", "fraction")
    collateral: str = spec("The supplied collateral, an aToken key (e.g. aave_v3:aToken:aUSDT).", "-")
    debt: str = spec("The borrowed debt, a debtToken key of the collateral's asset on the same venue (e.g. aave_v3:debtToken:debtUSDT).", "-")
    target_ltv: Expr = spec("Loan-to-value the loop is built to (debt value / collateral value), under the venue's max LTV.", "fraction")
    bundler: str = spec("Bundler venue whose atomic bundles build and unwind the loop (e.g. instadapp).", "-")
    #: Aave eMode category of the account (as on ``leveraged_stake``; omitted: auto).
    emode: str | None = spec("Aave eMode category of the account (a name under the venue's risk.emode; `none`: no eMode; "
                             "omitted: the one category holding the collateral and the debt).", "-", None)


#: Each borrow stays this fraction under the max LTV: the executor cuts a supply to what the
#: wallet holds (gas bought ahead takes a little of the stable), and the borrows planned on
#: the uncut supply must still pass Aave's LTV check.
BORROW_MARGIN = 0.002
#: Collateral (asset units) a full unwind leaves behind: a repaid debt's scaled balance may
#: keep a rounding residue (amount / index x index is not exact in floating point), and any
#: residue against zero collateral reads as health factor 0, which reverts the bundle.
KEEP_COLLATERAL = 1e-6
#: Health factor a withdrawal inside an unwind keeps (Aave v3 refuses a withdrawal that leaves
#: it under 1, ``ValidationLogic.validateHFAndLtv``); 1% above that for index moves in the block.
WITHDRAW_HF = 1.01


def _risk(ctx, t) -> tuple[float, float]:
    """(max LTV, liquidation threshold) of the loop's asset on its venue, per asset for the
    target's eMode category (:func:`trimtab.templates.leveraged_stake.loop_risk`)."""
    r = loop_risk(t, ctx.strategy.venues, ctx.strategy.instruments)[1]
    return r.ltv, r.liquidation_threshold


def build_rounds(c: float, d: float, c_to: float, d_to: float, max_ltv: float, lt: float) -> list[tuple[str, float]]:
    """Operations (``"supply"``, ``"borrow"``, ``"withdraw"``, ``"repay"``; amount in asset
    units) that move a loop from collateral ``c`` / debt ``d`` to ``c_to`` / ``d_to``, every
    borrow keeping debt <= ``max_ltv`` x (1 - :data:`BORROW_MARGIN`) x collateral and every withdrawal keeping the health
    factor c x ``lt`` / d >= :data:`WITHDRAW_HF`.

    Growing (``d_to > d``): supply the new equity ``(c_to - d_to) - (c - d)`` (if positive), then
    borrow up to that limit and re-supply it, until ``d_to``. Shrinking: while
    debt is above ``d_to``, withdraw what the health factor leaves free and repay with it (the
    surplus stays in the wallet), then withdraw down to ``c_to``. At most :data:`MAX_ROUNDS` rounds.
    """
    ops: list[tuple[str, float]] = []
    if d_to > d:
        e_in = (c_to - d_to) - (c - d)
        if e_in > _EPS:
            ops.append(("supply", e_in))
            c += e_in
        for _ in range(MAX_ROUNDS):
            b = min(max_ltv * (1 - BORROW_MARGIN) * c - d, d_to - d)
            if b <= _EPS:
                break
            ops += [("borrow", b), ("supply", b)]
            d += b
            c += b
        if c_to < c - _EPS:  # equity left the loop while it grew
            ops.append(("withdraw", c - c_to))
        return ops
    for _ in range(MAX_ROUNDS):
        if d - d_to <= _EPS:
            break
        free = c - WITHDRAW_HF * d / lt
        w = min(free, c - c_to) if c > c_to else free
        if w <= _EPS:
            break
        r = min(w, d - d_to)
        ops += [("withdraw", w), ("repay", r)]
        c -= w
        d -= r
    if d - d_to <= _EPS and c - c_to > _EPS:
        keep = KEEP_COLLATERAL if d_to <= _EPS else 0.0
        if c - c_to - keep > _EPS:
            ops.append(("withdraw", c - c_to - keep))
    elif c_to - c > _EPS and d - d_to <= _EPS:
        ops.append(("supply", c_to - c))
    return ops


class LendLoop(BaseTemplate):
    name = "lend_loop"
    model = LendLoopTarget
    operations = [("@collateral", ("supply", "withdraw", "borrow", "repay")), ("bundler", ("bundle_entry", "bundle_unwind"))]

    def check(self, t, base, ctx):
        ctx.check_expr(base + ("allocation",), t.allocation)
        ctx.check_expr(base + ("target_ltv",), t.target_ltv)
        ctx.check_inst(base + ("collateral",), t.collateral, ("aToken",))
        ctx.check_inst(base + ("debt",), t.debt, ("debtToken",))
        ctx.check_venue(base + ("bundler",), t.bundler, ("bundler",))
        coll, debt = ctx.instruments.get(t.collateral), ctx.instruments.get(t.debt)
        if coll and debt:
            if coll[0] != debt[0]:
                ctx.add(base + ("debt",), f"debt {t.debt!r} is on {debt[0]!r}, collateral {t.collateral!r} on {coll[0]!r}: "
                                          "a loop borrows where it supplies")
            elif coll[1].asset != debt[1].asset:
                ctx.add(base + ("debt",), f"debt asset {debt[1].asset} differs from the collateral's {coll[1].asset}: "
                                          "lend_loop re-supplies what it borrows (same asset)")
            elif ctx.venues[coll[0]].risk is None:
                ctx.add(base + ("collateral",), f"venue {coll[0]!r} has no risk parameters (max LTV): cannot loop on it")
        return t

    def check_values(self, t, ctx) -> None:
        check_emode(t, ctx)
        check_target_ltv(t, ctx)

    def required_series(self, t, strategy, series_of):
        return held_series(strategy, t.collateral, series_of) | held_series(strategy, t.debt, series_of), set()

    def targets(self, t, ctx) -> None:
        px, out = ctx.px, ctx.out
        asset = px.info[t.collateral].asset
        e = 0.0 if ctx.unwind else ctx.value(t.allocation) * ctx.usd / px.asset_usd(asset)
        ltv = ctx.value(t.target_ltv)
        out.positions[t.collateral] = e / (1 - ltv)
        out.positions[t.debt] = e * ltv / (1 - ltv)
        out.deltas[t.id] = e if px.delta_asset(asset) == ctx.strategy.config.asset else 0.0

    def current(self, t, out, px, sim, book) -> None:
        out.positions.setdefault(t.collateral, 0.0)
        out.positions.setdefault(t.debt, 0.0)

    def moves(self, t, ctx) -> None:
        px, book, tg = ctx.px, ctx.book, ctx.tg
        venue = px.info[t.collateral].venue
        asset = px.info[t.collateral].asset
        usd = px.asset_usd(asset)
        c, d = px.amount(t.collateral, book.qty(t.collateral)), px.amount(t.debt, book.qty(t.debt))
        c_to, d_to = tg.positions[t.collateral], tg.positions[t.debt]
        if abs(c_to - c) * usd < ctx.min_trade_usd and abs(d_to - d) * usd < ctx.min_trade_usd:
            return
        ops = build_rounds(c, d, c_to, d_to, *_risk(ctx, t))
        if not ops:
            return
        key = {"supply": t.collateral, "withdraw": t.collateral, "borrow": t.debt, "repay": t.debt}
        bundle = tuple(ctx.instruction(venue, op, key[op], amount, asset) for op, amount in ops)
        net = sum(_WALLET_SIGN[op] * a for op, a in ops)  # what the bundle leaves in (+) or takes from (-) the wallet
        rounds = sum(1 for op, _ in ops if op in ("borrow", "repay"))
        if d_to > d:
            g = ctx.gas_of(t.bundler, "bundle_entry")
            ctx.entry_bundle = ctx.step("", f"loop {t.id}: supply, then borrow and re-supply {asset} in {rounds} rounds to "
                                            f"debt {d_to:,.2f}", bundle, bundle=True, venue=t.bundler, operation="bundle_entry",
                                        expected_cost=g * ctx.eth / ctx.sc)
            ctx.wallet_out[asset] += max(-net, 0.0)
            ctx.wallet_in[asset] += max(net, 0.0)
        else:
            g = ctx.gas_of(t.bundler, "bundle_unwind")
            st = ctx.step(ctx.next_id(), f"unloop {t.id}: withdraw and repay {asset} in {rounds} rounds to debt {d_to:,.2f}",
                          bundle, bundle=True, venue=t.bundler, operation="bundle_unwind", expected_cost=g * ctx.eth / ctx.sc)
            ctx.release.append(st)
            ctx.wallet_release[asset].append(st.id)
            ctx.wallet_in[asset] += max(net, 0.0)
        ctx.gas_eth += g

    def loop(self, t) -> Loop | None:
        return Loop(t.collateral, t.debt, t.target_ltv, t.emode)

    def live_gaps(self, t, has_spot, has_stops) -> set[str]:
        # The live bundle adapter builds only the flash-loan recipes of leveraged_stake
        # (trimtab.live.adapters.bundle); a looping cast is not written yet. Paper runs work.
        return {f"{t.bundler}.bundle supply/borrow rounds (lend_loop)"}


TEMPLATE = LendLoop()
