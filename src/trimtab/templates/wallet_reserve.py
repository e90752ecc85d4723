"""``wallet_reserve``: keep a fixed ``amount`` of a token in the wallet (gas money), bought
with ``swap_venue``. Its value is set aside before allocations share the equity."""
# No `from __future__ import annotations`: pydantic reads these at import (templates/base.py).

from typing import Literal

from .base import BaseTemplate, Expr, TargetModel, held_series, spec


class WalletReserveTarget(TargetModel):
    """Keep ``amount`` of a token in the wallet (gas money), bought with ``swap_venue``."""

    template: Literal["wallet_reserve"] = spec("The template this target uses (its model and behaviour; docs/templates.md).", "-")
    instrument: str = spec("The token kept, a wallet key `wallet:BaseToken:SYMBOL` (ETH for gas).", "-")
    amount: Expr = spec("Units of the token kept in the wallet, set aside before allocations share the equity.", "asset units")
    swap_venue: str = spec("DEX venue the reserve is bought on.", "-")


class WalletReserve(BaseTemplate):
    name = "wallet_reserve"
    model = WalletReserveTarget
    operations = [("swap_venue", ("swap",))]

    def check(self, t, base, ctx):
        ctx.check_inst(base + ("instrument",), t.instrument, ("BaseToken",))
        ctx.check_expr(base + ("amount",), t.amount)
        ctx.check_venue(base + ("swap_venue",), t.swap_venue, ("dex",))
        return t

    def check_values(self, t, ctx) -> None:
        where = f"target {t.id!r}"
        v = ctx.value(("amount",), t.amount, f"{where} amount")
        if v is not None and v < 0:
            ctx.add_value(t.amount, ("amount",), f"{where} amount {ctx.named(t.amount, v)} is negative")

    def required_series(self, t, strategy, series_of):
        must = held_series(strategy, t.instrument, series_of)
        for p in (strategy.venues[t.swap_venue].pairs or {}).values():
            if p.price_field and p.cost_pair == "ETH_USDT":
                must.add(series_of(p.price_field))
        return must, set()

    def reserved_usd(self, t, strategy, params, px) -> float:
        return strategy.target_value(t.amount, params) * px.asset_usd(px.info[t.instrument].asset)

    def targets(self, t, ctx) -> None:
        ctx.out.positions[t.instrument] = 0.0 if ctx.unwind else ctx.value(t.amount)

    def reserve_key(self, t) -> str | None:
        return t.instrument


TEMPLATE = WalletReserve()
