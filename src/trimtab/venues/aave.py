"""Aave v3 as the protocol computes it: eMode per asset, health factor, liquidations.

Sources (aave-dao/aave-v3-origin, v3.3, ``src/contracts/protocol/libraries/logic/``):

* ``GenericLogic.calculateUserAccountData``: HF = sum(collateral_i x LT_i) / total debt, all in
  the base currency (USD), where LT_i is the user's eMode category's threshold when the user is
  in a category and asset i is one of its collateral members, else the reserve's own;
* ``ValidationLogic.validateBorrow``: a user in an eMode category may only borrow the
  category's borrowable assets (``Errors.NOT_BORROWABLE_IN_EMODE``);
* ``LiquidationLogic.executeLiquidationCall``: the close factor (50% of the *total* debt while
  HF > 0.95 and the liquidated reserve's debt and collateral are both >= 2000 USD, else 100% of
  that reserve's debt), the bonus (the eMode category's for its collateral members, else the
  reserve's), the dust rule (MUST_NOT_LEAVE_DUST: a liquidation that neither clears the debt
  reserve nor the collateral reserve must leave >= 1000 USD of each) and the bad-debt burn
  (when the liquidation takes all the user's collateral, the rest of the debt is burned);
* ``LiquidationLogic._calculateAvailableCollateralToLiquidate``: collateral = debt x price_d /
  price_c x (1 + bonus); when that exceeds the user's balance, all of it is taken and the debt
  repaid is scaled down to balance x price_c / price_d / (1 + bonus) ("deep underwater").

The liquidation protocol fee is a share of the bonus paid to the treasury *out of the seized
collateral*: the user loses ``collateralAmount`` whether it goes to the liquidator or the
treasury, so the user's accounting ignores the split.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ..accounting.book import Book, Fill, Leg
from ..errors import ExecutionError


@dataclass(frozen=True)
class Liquidation:
    """One ``liquidationCall`` on a (debt reserve, collateral reserve) pair, in asset units:
    ``debt_repaid`` (by the liquidator), ``collateral_seized`` (from the user, bonus included),
    ``close_factor`` (the cap that applied: 0.5 or 1.0), ``deep`` (collateral short of debt x
    (1 + bonus): debt scaled down), ``bad_debt`` (all the user's collateral is taken with debt
    left: v3.3 burns the rest of the debt as a reserve deficit)."""

    debt_repaid: float
    collateral_seized: float
    close_factor: float
    deep: bool
    bad_debt: bool


class DustError(ExecutionError):
    """The liquidation would leave less than MIN_LEFTOVER_BASE of debt or collateral
    (``Errors.MUST_NOT_LEAVE_DUST``): the protocol reverts it."""


def available_collateral(debt_to_cover: float, debt_price: float, coll_price: float, coll_balance: float,
                         bonus: float) -> tuple[float, float]:
    """(collateral to seize, debt repaid), asset units, of covering ``debt_to_cover`` against a
    collateral balance ``coll_balance`` at USD prices ``debt_price`` / ``coll_price`` and
    liquidation ``bonus`` (fraction, 0.05 = 5%): ``_calculateAvailableCollateralToLiquidate``
    without rounding. Deep underwater (the balance is short of debt x (1 + bonus)): all the
    balance, and the debt scaled down to what it covers."""
    want = debt_to_cover * debt_price / coll_price * (1 + bonus)
    if want > coll_balance:
        return coll_balance, coll_balance * coll_price / debt_price / (1 + bonus)
    return want, debt_to_cover


def liquidation_call(hf: float, total_debt_usd: float, total_coll_usd: float, debt_balance: float, debt_price: float,
                     coll_balance: float, coll_price: float, bonus: float, debt_to_cover: float = math.inf, *,
                     close_factor: float = 0.5, hf_threshold: float = 0.95, min_base_usd: float = 2000.0,
                     min_leftover_usd: float = 1000.0) -> Liquidation:
    """``executeLiquidationCall`` on one debt reserve (``debt_balance`` units at ``debt_price``
    USD) and one collateral reserve (``coll_balance`` units at ``coll_price``), for a user at
    health factor ``hf`` with ``total_debt_usd`` / ``total_coll_usd`` over all reserves.
    ``debt_to_cover``: what the liquidator offers (inf: the maximum, as liquidators call it).

    Raises:
        ExecutionError: ``hf`` >= 1 (HEALTH_FACTOR_NOT_BELOW_THRESHOLD).
        DustError: the result would leave dust (MUST_NOT_LEAVE_DUST).
    """
    if not hf < 1.0:
        raise ExecutionError(f"health factor {hf:.4f} is not below 1: not liquidatable (HEALTH_FACTOR_NOT_BELOW_THRESHOLD)")
    debt_usd, coll_usd = debt_balance * debt_price, coll_balance * coll_price
    max_debt, cf = debt_balance, 1.0
    if coll_usd >= min_base_usd and debt_usd >= min_base_usd and hf > hf_threshold:
        cap_usd = total_debt_usd * close_factor
        if debt_usd > cap_usd:
            max_debt, cf = cap_usd / debt_price, close_factor
    seized, repaid = available_collateral(min(debt_to_cover, max_debt), debt_price, coll_price, coll_balance, bonus)
    deep = seized >= coll_balance and repaid < min(debt_to_cover, max_debt)
    if repaid < debt_balance and seized < coll_balance:
        if (debt_balance - repaid) * debt_price < min_leftover_usd or (coll_balance - seized) * coll_price < min_leftover_usd:
            raise DustError(f"liquidation would leave {(debt_balance - repaid) * debt_price:.2f} USD of debt and "
                            f"{(coll_balance - seized) * coll_price:.2f} USD of collateral, under {min_leftover_usd:g} (MUST_NOT_LEAVE_DUST)")
    bad = seized * coll_price >= total_coll_usd * (1 - 1e-12) and total_debt_usd - repaid * debt_price > 1e-9
    return Liquidation(repaid, seized, cf, deep, bad)


def account_emode(strategy) -> dict[str, str | None]:
    """The eMode category of each lending venue's account (Aave sets it per user, so every loop
    target on a venue must agree), from the targets' ``emode`` choice (auto: the category
    holding the loop's collateral and debt, :meth:`LendingRisk.category_for`)."""
    from ..templates.leveraged_stake import loop_risk   # templates are below venues
    from ..templates.registry import template_for
    out: dict[str, str | None] = {}
    for t in strategy.config.targets:
        loop = template_for(t).loop(t)
        if loop is None or loop.collateral not in strategy.instruments:
            continue
        venue = strategy.instruments[loop.collateral][0]
        lr = loop_risk(loop, strategy.venues, strategy.instruments)
        if lr is not None:
            out.setdefault(venue, lr[0] if lr[0] in strategy.venues[venue].risk.emode else None)
    return out


_OTHER, _COLL, _DEBT = 0, 1, 2


def _held(sim, book: Book, venue: str) -> list[tuple[str, float, str, int, float | None]]:
    """``(key, book units, asset, _COLL / _DEBT / _OTHER, liquidation threshold or None)`` of
    every non-zero position of ``venue``'s account, in the book's order. A function of the book
    alone (and the static venue YAML and eMode), so it is kept per (book, ``book.version``):
    only Book.apply / Book.restore change positions, and both bump the version."""
    cache = sim.aave_held
    hit = cache.get(venue)
    if hit is not None and hit[0] is book and hit[1] == book.version:
        return hit[2]
    risk = sim.venues[venue].risk
    cat = sim.emode.get(venue)
    info = sim.px.info
    lts = sim.aave_lt   # (venue, asset) -> liquidation threshold: static per venue YAML and eMode
    prefix = venue + ":"
    out = []
    for key, q in book.bal.items():
        if q == 0.0 or not key.startswith(prefix):
            continue
        inf = info[key]
        kind, lt = _OTHER, None
        if inf.ptype == "aToken":
            kind = _COLL
            lt = lts.get((venue, inf.asset))
            if lt is None:
                lt = lts[(venue, inf.asset)] = risk.params(inf.asset, cat).liquidation_threshold
        elif inf.ptype == "debtToken":
            kind = _DEBT
        out.append((key, q, inf.asset, kind, lt))
    cache[venue] = (book, book.version, out)
    return out


def health(sim, book: Book, venue: str) -> tuple[float, float, float, float]:
    """(health factor, LTV, collateral USD, debt USD) of ``venue``'s account, per asset for the
    account's eMode category (GenericLogic.calculateUserAccountData); HF inf without debt."""
    px = sim.px
    amount, asset_usd = px.amount, px.asset_usd
    coll = debt = weighted = 0.0
    for key, q, asset, kind, lt in _held(sim, book, venue):
        usd = amount(key, q) * asset_usd(asset)
        if kind == _COLL:
            coll += usd
            weighted += usd * lt
        elif kind == _DEBT:
            debt += usd
    return (weighted / debt if debt > 0 else math.inf), (debt / coll if coll > 0 else 0.0), coll, debt


def check_borrow(sim, venue: str, asset: str) -> None:
    """Refuse a borrow the protocol refuses: ``asset`` outside the account's eMode category's
    borrowable set (ValidationLogic.validateBorrow, NOT_BORROWABLE_IN_EMODE)."""
    cat = sim.emode.get(venue)
    risk = sim.venues[venue].risk
    if cat and risk is not None and cat in risk.emode and not risk.emode[cat].can_borrow(asset):
        raise ExecutionError(f"{venue}: {asset} is not borrowable in eMode {cat!r} (NOT_BORROWABLE_IN_EMODE); "
                             f"the account may borrow {', '.join(risk.emode[cat].borrowable or risk.emode[cat].assets)}")


def liquidations(sim, tick: int, book: Book) -> list[Fill]:
    """One liquidation per unsafe Aave account this tick, as a liquidator calls it: the largest
    debt reserve against the largest collateral reserve, ``debtToCover`` = max. When that
    reverts for dust, the liquidator covers the most that leaves MIN_LEFTOVER_BASE of both the
    collateral and the debt (the largest call that passes); when none passes, none happens."""
    out = []
    for venue in sim.lending:
        hf, _, coll_usd, debt_usd = sim.aave_health(book, venue)   # memoised per tick and book state
        if hf >= 1.0 or debt_usd <= 0:
            continue
        risk, cat = sim.venues[venue].risk, sim.emode.get(venue)
        mine = [(k, q) for k, q in book.bal.items() if q > 0 and k.startswith(venue + ":")]
        debts = [k for k, _ in mine if sim.px.info[k].ptype == "debtToken"]
        colls = [k for k, _ in mine if sim.px.info[k].ptype == "aToken"]
        if not debts or not colls:
            continue
        usd = {k: sim.px.amount(k, book.qty(k)) * sim.px.asset_usd(sim.px.info[k].asset) for k in debts + colls}
        dk, ck = max(debts, key=usd.get), max(colls, key=usd.get)
        d_px, c_px = sim.px.asset_usd(sim.px.info[dk].asset), sim.px.asset_usd(sim.px.info[ck].asset)
        d_bal, c_bal = sim.px.amount(dk, book.qty(dk)), sim.px.amount(ck, book.qty(ck))
        bonus = risk.params(sim.px.info[ck].asset, cat).liquidation_bonus
        args = (hf, debt_usd, coll_usd, d_bal, d_px, c_bal, c_px, bonus)
        kw = dict(close_factor=risk.close_factor, hf_threshold=risk.full_close_health_factor,
                  min_base_usd=risk.max_close_factor_threshold_usd, min_leftover_usd=risk.min_leftover_usd)
        try:
            liq = liquidation_call(*args, **kw)
        except DustError:
            # the largest cover leaving MIN_LEFTOVER_BASE of both the collateral and the debt
            cover = min((c_bal * c_px - risk.min_leftover_usd) / (1 + bonus), d_bal * d_px - risk.min_leftover_usd) / d_px
            try:
                liq = liquidation_call(*args, cover, **kw) if cover > 0 else None
            except DustError:
                liq = None
            if liq is None:
                continue
        legs = [Leg(dk, -liq.debt_repaid / sim.px.index(dk), -liq.debt_repaid),
                Leg(ck, -liq.collateral_seized / sim.px.index(ck), -liq.collateral_seized)]
        note = (f"HF {hf:.4f} < 1: repaid {liq.debt_repaid * d_px:,.2f} USD of {debt_usd:,.2f} (close factor {liq.close_factor:.0%}), "
                f"seized {liq.collateral_seized:.6g} {sim.px.info[ck].asset}, bonus {bonus:.1%}"
                + ("; collateral short of debt x (1+bonus): repaid debt scaled down" if liq.deep else ""))
        if liq.bad_debt:   # v3.3 _burnBadDebt: no collateral left, the rest of every debt is burned
            for k in debts:
                rest = book.qty(k) - (liq.debt_repaid / sim.px.index(dk) if k == dk else 0.0)
                if rest > 0:
                    legs.append(Leg(k, -rest, -rest * sim.px.index(k)))
            note += "; no collateral left: remaining debt burned as bad debt (v3.3 deficit)"
        out.append(Fill(tick, venue, "liquidation", "liquidation", legs, note=note))
    return out
