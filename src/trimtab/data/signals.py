"""Model signals for directional strategies: reading signal files and a baseline generator.

A signal file is a CSV with columns ``timestamp`` (UTC, when the signal became available),
``signal`` (``long``, ``short`` or ``neutral``), ``confidence`` (0..1) and ``sd`` (the model's
standard deviation of the next candle's return, a fraction). A signal applies to the candle
that starts at or after its timestamp and to no later candle: one older than ``max_age_h``
(default 1 h, one candle) reads as neutral, so a missing signal never keeps a position open.

Trading rules (seed 001, ML modes): trade only when ``confidence >= signal_threshold``;
size ``max_position_size`` x equity; take-profit and stop-loss at
``entry x (1 +/- k x sd)`` with ``sd`` floored and capped in bps
(``sd_bps = max(sd_floor_bps, min(sd x 1e4, sd_cap_bps))``, k = ``take_profit_sd`` or
``stop_loss_sd``; :func:`trimtab.templates.signal_perp.stop_prices`); exits in priority stop-loss,
take-profit, end of candle (the next signal).

:func:`baseline` is the documented baseline generator for the bundled data (not a model):
7-day time-series momentum on the perp's hourly closes. At close t, r = log(close_t /
close_{t-168}), sigma = std of the last 168 hourly log returns, z = r / (sigma x sqrt(168));
signal = sign(r) when |z| > 0.5 else neutral, confidence = min(1, |z| / 2), sd = sigma (one
candle ahead). Only closes available at t are used. (Of 24h, 72h, 168h and 336h lookbacks on
the bundled BTC data, 168h had the best gross return and the fewest flips; none covers its
trading costs, so expect a baseline that loses money after fees.)
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import TrimtabError
from ..templates.registry import template_for

SIDES = {"long": 1.0, "short": -1.0, "neutral": 0.0}


class SignalError(TrimtabError):
    """A malformed signal file; the message names the file, row and problem."""


def read_signals(path: Path) -> pd.DataFrame:
    """Read and check a signal file. Returns a frame indexed by UTC timestamp with columns
    ``side`` (-1/0/1), ``confidence`` and ``sd``.

    Raises:
        SignalError: missing columns, an unknown signal value, confidence outside [0, 1], a
            negative or missing sd, unparsable or duplicate timestamps.
    """
    try:
        df = pd.read_csv(path)
    except (OSError, pd.errors.ParserError) as e:
        raise SignalError(f"{path}: cannot read signal file: {e}") from None
    need = {"timestamp", "signal", "confidence", "sd"}
    if not need <= set(df.columns):
        raise SignalError(f"{path}: missing column(s) {sorted(need - set(df.columns))}; expected {sorted(need)}")
    ts = pd.to_datetime(df["timestamp"], utc=True, errors="coerce")
    for i in np.flatnonzero(ts.isna().to_numpy())[:1]:
        raise SignalError(f"{path}:{i + 2}: unparsable timestamp {df['timestamp'].iloc[i]!r}")
    bad = ~df["signal"].isin(list(SIDES))
    for i in np.flatnonzero(bad.to_numpy())[:1]:
        raise SignalError(f"{path}:{i + 2}: signal {df['signal'].iloc[i]!r} is not one of long, short, neutral")
    conf = pd.to_numeric(df["confidence"], errors="coerce")
    for i in np.flatnonzero((conf.isna() | (conf < 0) | (conf > 1)).to_numpy())[:1]:
        raise SignalError(f"{path}:{i + 2}: confidence {df['confidence'].iloc[i]!r} must be a number in [0, 1]")
    sd = pd.to_numeric(df["sd"], errors="coerce")
    for i in np.flatnonzero((sd.isna() | (sd < 0)).to_numpy())[:1]:
        raise SignalError(f"{path}:{i + 2}: sd {df['sd'].iloc[i]!r} must be a non-negative number")
    out = pd.DataFrame({"side": df["signal"].map(SIDES).to_numpy(), "confidence": conf.to_numpy(), "sd": sd.to_numpy()},
                       index=pd.DatetimeIndex(ts))
    dup = out.index.duplicated()
    if dup.any():
        raise SignalError(f"{path}: duplicate timestamp {out.index[dup][0]}")
    return out.sort_index()


def align(signals: pd.DataFrame, epoch: list[int], max_age_h: float = 1.0) -> tuple[list[float], list[float], list[float]]:
    """(side, confidence, sd) per tick: the latest signal at or before each tick, neutral
    (0, 0, nan) when none is younger than ``max_age_h``."""
    t = signals.index.as_unit("s").asi8.astype(np.int64)  # pandas may store us or ns: ask for seconds
    ticks = np.asarray(epoch, dtype=np.int64)
    pos = np.searchsorted(t, ticks, side="right") - 1
    ok = (pos >= 0) & (ticks - t[np.maximum(pos, 0)] <= max_age_h * 3600)
    p = np.maximum(pos, 0)
    side = np.where(ok, signals["side"].to_numpy()[p], 0.0)
    conf = np.where(ok, signals["confidence"].to_numpy()[p], 0.0)
    sd = np.where(ok, signals["sd"].to_numpy()[p], np.nan)
    return side.tolist(), conf.tolist(), sd.tolist()


def baseline(close: pd.Series) -> pd.DataFrame:
    """The baseline momentum signal (module docstring) for an hourly close series indexed by
    the time each close became available. Returns the signal-file frame (timestamp column)."""
    lr = np.log(close).diff()
    lookback = 168
    r = np.log(close / close.shift(lookback))
    sigma = lr.rolling(168, min_periods=48).std()
    z = r / (sigma * math.sqrt(lookback))
    side = np.where(z.abs() > 0.5, np.sign(r), 0.0)
    df = pd.DataFrame({
        "timestamp": close.index.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "signal": pd.Series(side, index=close.index).map({1.0: "long", -1.0: "short", 0.0: "neutral"}).to_numpy(),
        "confidence": (z.abs() / 2).clip(upper=1.0).round(4).to_numpy(),
        "sd": sigma.round(6).to_numpy(),
    })
    return df.dropna()


class SignalBook:
    """Signals in force for the strategy's ``signal_perp`` targets at the view's tick."""

    def __init__(self, strategy, view, config_dir: Path):
        self.view = view
        self.s = strategy
        self.cols: dict[str, tuple[list[float], list[float], list[float]]] = {}
        for t in strategy.config.targets:
            file = template_for(t).signal_file(t)
            if file:
                self.cols[t.id] = align(read_signals(config_dir / file), view.epoch)

    def current(self, t) -> tuple[float, float, float]:
        side, conf, sd = self.cols[t.id]
        i = self.view.i
        return side[i], conf[i], sd[i]

    def side(self, t, params: dict[str, float]) -> float:
        """-1, 0 or +1: the signal's side when its confidence passes the threshold, else 0."""
        side, conf, _ = self.current(t)
        return side if conf >= self.s.target_value(t.signal.signal_threshold, params) else 0.0
