"""``leveraged_stake``: stake ETH into an LST and loop it on a lending venue to ``target_ltv``,
built and resized with one atomic flash-loan bundle.

Sizing (seed 004 "Position Calculation", corrected): with equity e in ETH and loan-to-value L,
collateral = e / (1 - L) ETH of LST and debt = e x L / (1 - L) ETH, so collateral - debt = e and
debt / collateral = L. (Seed 004's ``leverage = L / (1 - L)`` gives collateral 9e and debt 8e at
L = 0.9, i.e. LTV 0.889, not 0.9.) Net delta: e ETH.
"""
# No `from __future__ import annotations`: pydantic reads these at import (templates/base.py).

from typing import Literal

from .base import BaseTemplate, Expr, Loop, TargetModel, spec


class LeveragedStakeTarget(TargetModel):
    """Stake the asset into an LST and loop it on a lending venue to ``target_ltv``, built and
    resized with one atomic flash-loan bundle. ``lst`` (weETH or wstETH) picks the staking
    venue (the venue whose ``lst.token`` it is) and the collateral ``<lending>:aToken:a<lst>``
    unless ``lst_venue`` / ``collateral`` are given."""

    template: Literal["leveraged_stake"] = spec("The template this target uses (its model and behaviour; docs/templates.md).", "-")
    allocation: Expr = spec("Fraction of the strategy's equity this target holds (a number or an expression over parameters).", "fraction")
    lst: str = spec("The liquid staking token staked into (weETH or wstETH); picks the staking venue minting it.", "-", "weETH")
    lending_venue: str = spec("Lending venue the LST is looped on (an aave_v3 venue).", "-", "aave_v3")
    collateral: str | None = spec("The collateral aToken key (omitted: `<lending_venue>:aToken:a<lst>`).", "-", None)
    debt: str = spec("The borrowed debt, a debtToken key (e.g. aave_v3:debtToken:debtWETH).", "-")
    lst_venue: str | None = spec("Staking venue minting the LST (omitted: the configured venue whose lst.token is `lst`).", "-", None)
    flash_venue: str = spec("Flash-loan venue lending the ETH the entry bundle loops with (e.g. morpho).", "-")
    bundler: str = spec("Bundler venue casting the atomic flash-loan bundle (e.g. instadapp).", "-")
    swap_venue: str = spec("DEX venue the bundle swaps on (LST back to ETH when deleveraging).", "-")
    target_ltv: Expr = spec("Loan-to-value the loop is built to (debt value / collateral value), under the venue's max LTV.", "fraction")
    #: Aave eMode category of the lending account (a name under the venue's ``risk.emode``;
    #: ``none``: no eMode; omitted: the one category holding the collateral and the debt).
    emode: str | None = spec("Aave eMode category of the lending account (a name under the venue's risk.emode; `none`: no eMode; "
                             "omitted: the one category holding the collateral and the debt).", "-", None)


def loop_risk(t, venues: dict, instruments: dict):
    """(eMode category or None, the collateral's ReserveRisk for it, label) of a loop target
    (``collateral``, ``debt``, ``emode``): per asset, as Aave v3 computes it
    (:meth:`trimtab.config.models.LendingRisk.params`: the category's LTV/LT/bonus for its
    collateral members, the reserve's own otherwise); None when the instruments or the venue's
    risk parameters are unknown (reported elsewhere)."""
    coll, debt = instruments.get(t.collateral or ""), instruments.get(t.debt)
    if not coll or not debt:
        return None
    risk = venues[coll[0]].risk
    if risk is None:
        return None
    ca, da = coll[1].asset, debt[1].asset
    cat = risk.category_for(getattr(t, "emode", None), ca, da)
    if cat is not None and cat not in risk.emode:
        return None   # an unknown category (check_emode reports it)
    r = risk.params(ca, cat)
    if r is None:
        return None
    in_cat = cat in risk.emode and ca in risk.emode[cat].assets
    return cat, r, (f"{coll[0]} eMode" if in_cat else f"{coll[0]} {ca}")


def max_ltv(t, venues: dict, instruments: dict) -> tuple[float, str] | None:
    """(max LTV of the loop's collateral on its lending venue, which parameter set), per asset
    for the target's eMode category (:func:`loop_risk`); None when unknown."""
    lr = loop_risk(t, venues, instruments)
    return (lr[1].ltv, lr[2]) if lr is not None else None


def check_emode(t, ctx) -> None:
    """The target's ``emode`` names one of the venue's categories, and the category may borrow
    the debt asset: Aave v3 refuses a borrow outside the user's category
    (ValidationLogic.validateBorrow, Errors.NOT_BORROWABLE_IN_EMODE, aave-v3-origin v3.2+)."""
    coll, debt = ctx.instruments.get(t.collateral or ""), ctx.instruments.get(t.debt)
    if not coll or not debt or ctx.venues[coll[0]].risk is None:
        return
    risk = ctx.venues[coll[0]].risk
    choice = getattr(t, "emode", None)
    if choice in (None, "auto", "none"):
        return
    if choice not in risk.emode:
        ctx.add(("emode",), f"target {t.id!r}: {coll[0]} has no eMode category {choice!r}"
                            f"{ctx.suggest(choice, list(risk.emode))}; categories: {', '.join(risk.emode) or 'none'} (or 'none')")
    elif not risk.emode[choice].can_borrow(debt[1].asset):
        ctx.add(("debt",), f"target {t.id!r}: {debt[1].asset} is not borrowable in eMode {choice!r} on {coll[0]}: the protocol "
                           f"refuses the borrow (NOT_BORROWABLE_IN_EMODE); borrow one of "
                           f"{', '.join(b for b in risk.emode[choice].borrowable or risk.emode[choice].assets)} or choose another category")


def check_target_ltv(t, ctx) -> None:
    """Target LTV in (0, the lending venue's max LTV) and below 1 (shared by lending loops)."""
    where = f"target {t.id!r}"
    v = ctx.value(("target_ltv",), t.target_ltv, f"{where} target LTV")
    if v is None:
        return
    mx = max_ltv(t, ctx.venues, ctx.instruments)
    named = ctx.named(t.target_ltv, v)
    if v <= 0:
        ctx.add_value(t.target_ltv, ("target_ltv",), f"{where} target LTV {named} must be above 0 (0 borrows nothing: use a stake target)")
    elif mx is not None and v > mx[0]:
        ctx.add_value(t.target_ltv, ("target_ltv",), f"{where} target LTV {named} is above the {mx[1]} max LTV {mx[0]:g}: the borrow "
                                                     "would revert; lower it")
    elif v >= 1:
        ctx.add_value(t.target_ltv, ("target_ltv",), f"{where} target LTV {named} must be below 1")


class LeveragedStake(BaseTemplate):
    name = "leveraged_stake"
    model = LeveragedStakeTarget
    operations = [("flash_venue", ("flash_borrow", "flash_repay")), ("lst_venue", ("stake",)),
                  ("@collateral", ("supply", "withdraw", "borrow", "repay")), ("swap_venue", ("swap",)),
                  ("bundler", ("bundle_entry", "bundle_unwind"))]

    def check(self, t, base, ctx):
        given_collateral = t.collateral
        lv = ctx.lst_venue_of(base + ("lst",), t.lst, t.lst_venue)
        upd = {"lst_venue": lv}
        if not t.collateral:
            upd["collateral"] = f"{t.lending_venue}:aToken:a{t.lst}"
        t = t.model_copy(update=upd)
        ctx.check_expr(base + ("allocation",), t.allocation)
        ctx.check_expr(base + ("target_ltv",), t.target_ltv)
        ctx.check_inst(base + ("collateral",) if given_collateral else base + ("lst",), t.collateral, ("aToken",))
        ctx.check_inst(base + ("debt",), t.debt, ("debtToken",))
        if t.lst_venue:
            ctx.check_venue(base + ("lst_venue",), t.lst_venue, ("lst",))
        ctx.check_venue(base + ("flash_venue",), t.flash_venue, ("flash_loan",))
        ctx.check_venue(base + ("bundler",), t.bundler, ("bundler",))
        ctx.check_venue(base + ("swap_venue",), t.swap_venue, ("dex",))
        return t

    def check_values(self, t, ctx) -> None:
        check_emode(t, ctx)
        check_target_ltv(t, ctx)

    def required_series(self, t, strategy, series_of):
        must: set[str] = set()
        wallet_assets = strategy.venues["wallet"].assets or {}
        for k in (t.collateral, t.debt):
            must.add(strategy.instruments[k][1].reserve)
        asset = strategy.instruments[t.collateral][1].asset
        if wallet_assets[asset].eth_rate_field:
            must.add(series_of(wallet_assets[asset].eth_rate_field))
        for p in (strategy.venues[t.swap_venue].pairs or {}).values():
            if p.price_field and p.cost_pair == "ETH_USDT":
                must.add(series_of(p.price_field))
        return must, set()

    def targets(self, t, ctx) -> None:
        px, out = ctx.px, ctx.out
        e = 0.0 if ctx.unwind else ctx.value(t.allocation) * ctx.usd / ctx.eth
        ltv = ctx.value(t.target_ltv)
        asset = px.info[t.collateral].asset
        out.positions[t.collateral] = e / (1 - ltv) / px.eth_rate(asset)
        out.positions[t.debt] = e * ltv / (1 - ltv)
        out.deltas[t.id] = e

    def current(self, t, out, px, sim, book) -> None:
        out.positions.setdefault(t.collateral, 0.0)
        out.positions.setdefault(t.debt, 0.0)

    def moves(self, t, ctx) -> None:
        px, book, tg, eth, sc = ctx.px, ctx.book, ctx.tg, ctx.eth, ctx.sc
        coll, debt = t.collateral, t.debt
        asset = px.info[coll].asset
        rate = px.eth_rate(asset)
        dc = tg.positions[coll] - px.amount(coll, book.qty(coll))
        dd = tg.positions[debt] - px.amount(debt, book.qty(debt))
        if abs(dc) * rate * eth < ctx.min_trade_usd and abs(dd) * eth < ctx.min_trade_usd:
            return
        if dc < 0 or dd < 0:
            b = _unwind_bundle(ctx, t, max(-dc, 0.0), max(-dd, 0.0), rate)
            g = ctx.gas_of(t.bundler, "bundle_unwind")
            st = ctx.step(ctx.next_id(), f"unwind {t.id}: withdraw {max(-dc, 0):.4f} {asset}, repay {max(-dd, 0):.4f} WETH",
                          b, bundle=True, venue=t.bundler, operation="bundle_unwind",
                          expected_cost=sum(x.expected_cost for x in b) + g * eth / sc)
            ctx.release.append(st)
            ctx.wallet_release["ETH"].append(st.id)
            ctx.gas_eth += g
            proceeds = max(-dc, 0.0) * rate * (1 - ctx.swap_cost(t.swap_venue, asset, "ETH", max(-dc, 0.0)) / 1e4)
            ctx.wallet_in["ETH"] += proceeds - min(max(-dd, 0.0), proceeds)
        if dc > 0 or dd > 0:
            b = _entry_bundle(ctx, t, max(dc, 0.0), max(dd, 0.0), rate)
            g = ctx.gas_of(t.bundler, "bundle_entry")
            ctx.entry_bundle = ctx.step("", f"enter {t.id}: flash_borrow -> stake -> supply -> borrow -> flash_repay", b, bundle=True,
                                        venue=t.bundler, operation="bundle_entry", expected_cost=sum(x.expected_cost for x in b) + g * eth / sc)
            ctx.wallet_out["ETH"] += max(dc, 0.0) * rate - max(dd, 0.0)
            ctx.gas_eth += g

    def emergency_source(self, t) -> str | None:
        return "lending"

    def loop(self, t) -> Loop | None:
        return Loop(t.collateral, t.debt, t.target_ltv, t.emode)


def _entry_bundle(ctx, t, dc: float, dd: float, rate: float) -> tuple:
    """flash_borrow WETH -> stake ETH -> supply the LST -> borrow WETH -> flash_repay."""
    lending = ctx.px.info[t.collateral].venue
    asset = ctx.px.info[t.collateral].asset
    ins = ctx.instruction
    wallet_eth = "wallet:BaseToken:ETH"
    return (
        ins(t.flash_venue, "flash_borrow", f"{t.flash_venue}:debtToken:flashWETH", dd, "WETH"),
        ins(t.lst_venue, "stake", wallet_eth, dc * rate, "ETH", {"mint": asset}, ctx.strategy.venues[t.lst_venue].lst.rate_field),
        ins(lending, "supply", t.collateral, dc, asset),
        ins(lending, "borrow", t.debt, dd, "WETH"),
        ins(t.flash_venue, "flash_repay", f"{t.flash_venue}:debtToken:flashWETH", dd, "WETH"),
    )


def _unwind_bundle(ctx, t, dc: float, dd: float, rate: float) -> tuple:
    """flash_borrow WETH -> repay -> withdraw the LST -> swap it to ETH -> flash_repay."""
    lending = ctx.px.info[t.collateral].venue
    asset = ctx.px.info[t.collateral].asset
    # Inside the flash-loan bundle only an atomic route (a DEX pool) can repay the loan.
    venue, routes = ctx.route(asset, "ETH", dc, atomic=True)
    cost = ctx.swap_cost(venue, asset, "ETH", dc)
    proceeds = dc * rate * (1 - cost / 1e4)
    repay = min(dd, proceeds) if dc > 0 else dd
    eth = ctx.px.eth_usd()
    ins = ctx.instruction
    return (
        ins(t.flash_venue, "flash_borrow", f"{t.flash_venue}:debtToken:flashWETH", repay, "WETH"),
        ins(lending, "repay", t.debt, repay, "WETH"),
        ins(lending, "withdraw", t.collateral, dc, asset),
        ins(venue, "swap", f"wallet:BaseToken:{asset}", dc, asset, {"buy": "ETH", "routes": routes}, "oracle rate",
            dc * rate * cost / 1e4 * eth / ctx.px.share_usd()),
        ins(t.flash_venue, "flash_repay", f"{t.flash_venue}:debtToken:flashWETH", repay, "WETH"),
    )


TEMPLATE = LeveragedStake()
