"""``token_weights``: a wallet basket held at target weights (seed 002, the drift engine).

Target units = weight x equity / price for each token, at its ``price_source`` price; a token
without a healthy price holds what it has. The basket owns every wallet token, so it is the
config's only target, and its trades (matched swaps, sells before buys, the slippage guard)
are planned by :class:`trimtab.planner.drift.Basket` (``owns_wallet``).
"""
# No `from __future__ import annotations`: pydantic reads these at import (templates/base.py).

from typing import Literal

from .base import BaseTemplate, Expr, Strict, TargetModel, spec

#: Health of a basket token's price (trimtab.planner.drift): only HEALTHY tokens are traded.
HEALTHY, NO_PRICE, STALE, DIVERGED = "HEALTHY", "NO_PRICE", "STALE", "DIVERGED"


class TokenWeight(Strict):
    """One token of a ``token_weights`` basket: held as ``wallet:BaseToken:<token>`` with
    ``weight`` (a fraction of the basket's value; the weights of a basket sum to 1)."""

    token: str = spec("The token, held as `wallet:BaseToken:<token>` (a wallet asset with a price).", "-")
    weight: Expr = spec("Target share of the basket's value; the basket's weights sum to 1.", "fraction")


class DriftAlertsSpec(Strict):
    """Alerts of a ``token_weights`` basket (seed 002 "Alert Conditions"), each with its own
    cooldown in minutes of simulated time: ``high_drift`` when the largest |drift| passes
    ``high_drift``; ``rebalance_failed`` when a rebalance fails at execution or a trade is not
    sent (slippage guard); ``unusual_gas`` when a rebalance pays a gas price above
    ``gas_multiple`` x the median gas price of the previous ``gas_baseline_h`` hours."""

    high_drift: Expr = spec("Largest |drift| (relative to target value) that raises a high_drift alert.", "fraction", "alert_high_drift")
    high_drift_cooldown_min: Expr = spec("Simulated time between two high_drift alerts.", "minutes", "alert_high_drift_cooldown_min")
    failed_cooldown_min: Expr = spec("Simulated time between two rebalance_failed alerts.", "minutes", "alert_failed_cooldown_min")
    gas_multiple: Expr = spec("Gas price, as a multiple of the recent median, that raises an unusual_gas alert.", "multiple",
                              "alert_gas_multiple")
    gas_cooldown_min: Expr = spec("Simulated time between two unusual_gas alerts.", "minutes", "alert_gas_cooldown_min")
    gas_baseline_h: Expr = spec("Window of the median gas price unusual_gas compares with.", "hours", "alert_gas_baseline_h")


class TokenWeightsTarget(TargetModel):
    """A wallet basket held at target weights (seed 002, the drift rebalancing engine).

    drift = (value - target value) / target value per token, valued at ``price_source``:
    ``ORACLE`` (the wallet's asset prices: CEX closes, USDT = 1) or ``ROUTER`` (the price of
    each token's pair on ``swap_venue``, e.g. the Uniswap WETH/USDT pool). A rebalance pairs
    oversized tokens (sells) with undersized ones (buys) for the exact amounts back to target;
    every trade is a swap against ``quote`` on ``swap_venue`` (ETH -> BTC is two swaps, ETH ->
    USDT -> BTC). A matched trade under ``min_trade_usd`` is skipped, one over
    ``max_trade_usd`` is cut to it; a trade whose output would be under the quoted price x
    (1 - ``slippage_tolerance``) is not sent (logged); a token whose price is older than
    ``max_price_age_h`` or whose router and oracle prices differ by more than
    ``max_price_divergence`` is unhealthy and not traded. ``calendar`` adds a calendar
    rebalance on the first tick of each UTC day, ISO week or month (metric ``calendar_due``)."""

    template: Literal["token_weights"] = spec("The template this target uses (its model and behaviour; docs/templates.md).", "-")
    tokens: list[TokenWeight] = spec("The basket's tokens with their target weights (at least two; ETH and the quote among them).", "-",
                                     min_length=2)
    swap_venue: str = spec("DEX venue every rebalance trade swaps on (e.g. uniswap_v3).", "-")
    quote: str = spec("Token every trade is a swap against (one of the basket's tokens).", "-", "USDT")
    price_source: Literal["ORACLE", "ROUTER"] = spec("Prices drift is valued at: ORACLE (the wallet's asset prices) or ROUTER "
                                                     "(each token's pair on swap_venue).", "-", "ORACLE")
    calendar: Literal["none", "daily", "weekly", "monthly"] = spec("Calendar rebalance on the first tick of each UTC day, ISO week "
                                                                   "or month (metric calendar_due); none: drift only.", "-", "none")
    min_trade_usd: Expr = spec("A matched trade under this notional is skipped.", "USD", "trade_min_usd")
    max_trade_usd: Expr = spec("A matched trade over this notional is cut to it.", "USD", "trade_max_usd")
    slippage_tolerance: Expr = spec("A trade whose output would be under the quoted price x (1 - this) is not sent.", "fraction",
                                    "slippage_tolerance")
    max_price_age_h: Expr = spec("A token whose price is older than this is unhealthy and not traded.", "hours", "price_max_age_h")
    max_price_divergence: Expr = spec("A token whose router and oracle prices differ by more than this (relative) is not traded.",
                                      "fraction", "price_max_divergence")
    alerts: DriftAlertsSpec = spec("Alert thresholds and cooldowns (high_drift, rebalance_failed, unusual_gas).", "-", DriftAlertsSpec())


class TokenWeights(BaseTemplate):
    name = "token_weights"
    model = TokenWeightsTarget
    operations = [("swap_venue", ("swap",))]
    owns_wallet = True

    def check(self, t, base, ctx):
        """Every token a priced wallet token with a pair against ``quote`` on the swap venue,
        ETH (gas) and the quote in the basket, weights in (0, 1] summing to 1, and the basket
        the config's only target (it owns the wallet's tokens)."""
        venues, instruments = ctx.venues, ctx.instruments
        ctx.check_venue(base + ("swap_venue",), t.swap_venue, ("dex",))
        for f in ("min_trade_usd", "max_trade_usd", "slippage_tolerance", "max_price_age_h", "max_price_divergence"):
            ctx.check_expr(base + (f,), getattr(t, f))
        for f, v in t.alerts.model_dump().items():
            if ctx.has(base + ("alerts", f)) or isinstance(v, (int, float)):
                ctx.check_expr(base + ("alerts", f), v)
            else:  # a default naming a parameter: point at the target when it is undeclared
                ctx.check_expr(base + ("template",), v)
        if len(ctx.target_ids) > 1:
            ctx.add(base + ("template",), "a token_weights basket owns the wallet's tokens: it must be the config's only target")
        wallet_assets = (venues["wallet"].assets or {}) if "wallet" in venues else {}
        pairs = (venues[t.swap_venue].pairs or {}) if t.swap_venue in venues else {}
        have_pairs = [frozenset(("ETH" if a == "WETH" else a) for a in name.split("/")) for name in pairs]
        tokens = [tw.token for tw in t.tokens]
        total, ok = 0.0, True
        for j, tw in enumerate(t.tokens):
            p = base + ("tokens", j, "token")
            key = f"wallet:BaseToken:{tw.token}"
            if tokens.index(tw.token) != j:
                ctx.add(p, f"token {tw.token!r} is listed twice")
            if key not in instruments:
                ctx.add(p, f"token {tw.token!r}: the wallet has no instrument {key!r}"
                           f"{ctx.suggest(key, sorted(k for k in instruments if k.startswith('wallet:BaseToken:')))}")
            elif tw.token not in wallet_assets:
                ctx.add(p, f"token {tw.token!r} has no price in venues/wallet.yaml assets")
            if tw.token != t.quote and t.swap_venue in venues and frozenset((tw.token, t.quote)) not in have_pairs:
                ctx.add(p, f"venue {t.swap_venue!r} has no {tw.token}/{t.quote} pair to trade {tw.token!r} against the quote "
                           f"(pairs: {', '.join(pairs) or 'none'})")
            ctx.check_expr(base + ("tokens", j, "weight"), tw.weight)
            w = ctx.number(tw.weight)
            if w is None:  # an expression error, reported by check_expr
                ok = False
                continue
            if not 0 < w <= 1:
                ctx.add(base + ("tokens", j, "weight"), f"token {tw.token!r} weight {w:g} is outside (0, 1]")
            total += w
        if ok and abs(total - 1.0) > 1e-9:
            ctx.add(base + ("tokens",), f"basket weights sum to {total:.6g}, not 1")
        if t.quote not in tokens:
            ctx.add(base + ("quote",), f"the quote token {t.quote!r} (every trade is a swap against it) must be one of the basket's tokens")
        if "ETH" not in tokens:
            ctx.add(base + ("tokens",), "gas is paid in ETH from the wallet: a token_weights basket must hold ETH")
        return t

    def metric_keys(self, t) -> dict[str, list[str]]:
        return {"token": [tw.token for tw in t.tokens]}

    def targets(self, t, ctx) -> None:
        out, book, px = ctx.out, ctx.book, ctx.px
        prices = ctx.basket(t).prices(ctx.params)
        for tw in t.tokens:
            key = f"wallet:BaseToken:{tw.token}"
            price, _, _, health, _ = prices[tw.token]
            if health != HEALTHY:
                out.positions[key] = book.qty(key)
                out.frozen.append(key)
                continue
            w = (1.0 if tw.token == t.quote else 0.0) if ctx.unwind else ctx.value(tw.weight)
            out.positions[key] = w * ctx.usd / price
            if px.delta_asset(tw.token) == ctx.strategy.config.asset:
                out.deltas[t.id] = out.deltas.get(t.id, 0.0) + out.positions[key]


TEMPLATE = TokenWeights()
