"""``signal_perp``: a directional perp following a signal file (seed 001 ``ml_config``).

size = side x ``max_position_size`` x equity / mark, with side from the signal in force (0
below ``signal_threshold`` confidence), margined with the whole equity; a position rests with
take-profit and stop-loss orders from the signal's sd (:func:`stop_prices`).
"""
# No `from __future__ import annotations`: pydantic reads these at import (templates/base.py).

import math
from typing import Literal

from .base import BaseTemplate, Expr, Strict, TargetModel, TradeLeg, held_series, spec


class SignalSpec(Strict):
    """A signal file (CSV: timestamp, signal long/short/neutral, confidence, sd) and how to
    trade it (seed 001 ``ml_config``)."""

    file: str = spec("The signal CSV (timestamp, signal, confidence, sd), relative to the config file.", "-")
    signal_threshold: Expr = spec("Confidence a signal needs to be traded (in [0, 1]); below it the position is flat.", "fraction", 0.7)
    max_position_size: Expr = spec("Position notional as a multiple of equity when a signal is traded.", "multiple", 1.0)
    take_profit_sd: Expr = spec("Take-profit distance from entry, in multiples of the signal's sd.", "multiple", 2.0)
    stop_loss_sd: Expr = spec("Stop-loss distance from entry, in multiples of the signal's sd.", "multiple", 2.0)
    sd_floor_bps: Expr = spec("Smallest sd the stops use (the signal's sd is clamped to [floor, cap]).", "bps", 10.0)
    sd_cap_bps: Expr = spec("Largest sd the stops use (the signal's sd is clamped to [floor, cap]).", "bps", 1000.0)


class SignalPerpTarget(TargetModel):
    """A directional perp position following ``signal``: long or short ``max_position_size`` x
    equity when confidence passes the threshold, flat otherwise, with take-profit and
    stop-loss orders from the signal's sd."""

    template: Literal["signal_perp"] = spec("The template this target uses (its model and behaviour; docs/templates.md).", "-")
    instrument: str = spec("The perp traded, `venue:Perp:SYMBOL` (e.g. binance:Perp:BTCUSDT).", "-")
    signal: SignalSpec = spec("The signal file and how to trade it (threshold, size, stops).", "-")


def stop_prices(entry: float, side: float, sd: float, tp_k: float, sl_k: float, floor_bps: float, cap_bps: float) -> tuple[float, float]:
    """(take_profit, stop_loss) prices for a position of ``side`` (+1/-1) entered at ``entry``
    (seed 001): entry x (1 +/- k x sd), sd (a fraction; NaN reads as 0) clamped to
    [``floor_bps``, ``cap_bps``] basis points."""
    sd_bps = max(floor_bps, min((sd if sd == sd else 0.0) * 1e4, cap_bps))
    d = sd_bps / 1e4
    return entry * (1 + side * tp_k * d), entry * (1 - side * sl_k * d)


#: Signal fields with their domain (low, high, low inclusive); high is inclusive.
_DOMAINS = (("signal_threshold", 0, 1, True), ("max_position_size", 0, math.inf, False),
            ("take_profit_sd", 0, math.inf, False), ("stop_loss_sd", 0, math.inf, False),
            ("sd_floor_bps", 0, math.inf, True), ("sd_cap_bps", 0, math.inf, False))


class SignalPerp(BaseTemplate):
    name = "signal_perp"
    model = SignalPerpTarget
    operations = [("@instrument", ("trade", "deposit", "withdraw"))]
    cex = True

    def check(self, t, base, ctx):
        ctx.check_inst(base + ("instrument",), t.instrument, ("Perp",))
        for fname, *_ in _DOMAINS:
            ctx.check_expr(base + ("signal", fname), getattr(t.signal, fname))
        if not (ctx.config_dir / t.signal.file).exists():
            ctx.add(base + ("signal", "file"), f"signal file {t.signal.file!r} not found next to the config "
                                               f"(generate one with `python scripts/make_signals.py`)")
        return t

    def metric_keys(self, t) -> dict[str, list[str]]:
        return {"signal_target": [t.id]}  # signal_side.<id>, position_side.<id> (trimtab.metrics)

    def check_values(self, t, ctx) -> None:
        where = f"target {t.id!r}"
        for f, lo, hi, lo_in in _DOMAINS:
            expr = getattr(t.signal, f)
            v = ctx.value(("signal", f), expr, f"{where} {f}")
            if v is not None and not ((v >= lo if lo_in else v > lo) and v <= hi):
                interval = f"{'[' if lo_in else '('}{lo:g}, {'inf)' if math.isinf(hi) else f'{hi:g}]'}"
                ctx.add_value(expr, ("signal", f), f"{where} {f} {ctx.named(expr, v)} is outside {interval}")

    def required_series(self, t, strategy, series_of):
        spec = strategy.instruments[t.instrument][1]
        return {series_of(spec.mark_field), series_of(spec.funding_field)} | held_series(strategy, t.instrument, series_of), set()

    def targets(self, t, ctx) -> None:
        px, out, signals = ctx.px, ctx.out, ctx.signals
        side = 0.0 if ctx.unwind else signals.side(t, ctx.params) if signals else 0.0
        size = side * ctx.value(t.signal.max_position_size) * ctx.usd / px.mark(t.instrument)
        if not px.tradable(t.instrument):
            size = ctx.book.qty(t.instrument)
            out.frozen.append(t.instrument)
        out.positions[t.instrument] = size
        out.deltas[t.id] = size

    def signal_file(self, t) -> str | None:
        return t.signal.file

    def order_extra(self, t, signals, strategy, params, mark, target) -> dict:
        # Resting take-profit / stop-loss for the position this trade leaves (seed 001).
        if target == 0:
            return {"clear_stops": True}
        _, _, sd = signals.current(t)
        v = lambda e: strategy.target_value(e, params)  # noqa: E731
        tp, sl = stop_prices(mark, 1.0 if target > 0 else -1.0, sd, v(t.signal.take_profit_sd), v(t.signal.stop_loss_sd),
                             v(t.signal.sd_floor_bps), v(t.signal.sd_cap_bps))
        return {"take_profit": tp, "stop_loss": sl}

    def hedged_fraction(self, t, value, delta_asset, asset) -> float:
        return value(t.signal.max_position_size) or 0.0

    def trade_legs(self, t, index, value, capital_usd, hedge_margin):
        m = value(t.signal.max_position_size) or 0.0
        yield TradeLeg(index, ("targets", index, "instrument"), t.instrument, "trade", capital_usd * m, None)

    def live_gaps(self, t, has_spot, has_stops) -> set[str]:
        venue = t.instrument.split(":")[0]
        return set() if has_stops(venue) else {f"{venue} perp take-profit/stop-loss orders"}


TEMPLATE = SignalPerp()
