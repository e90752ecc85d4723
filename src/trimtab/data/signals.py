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

import csv
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import TrimtabError
from ..templates.registry import template_for
from ..timeutil import utc
from .clock import to_ts

if TYPE_CHECKING:   # pandas only for the baseline generator (scripts/make_signals.py), never a run
    import pandas as pd

SIDES = {"long": 1.0, "short": -1.0, "neutral": 0.0}


class SignalError(TrimtabError):
    """A malformed signal file; the message names the file, row and problem."""


@dataclass(frozen=True)
class Signals:
    """A checked signal file, rows in time order, each array shape (n,): ``epoch`` (int64 epoch
    seconds, UTC, strictly increasing), ``side`` (-1/0/1), ``confidence`` (0..1) and ``sd``."""

    epoch: np.ndarray
    side: np.ndarray
    confidence: np.ndarray
    sd: np.ndarray


#: The one timestamp spelling numpy parses for a whole column at once (``2024-01-08T01:00:00Z``).
_PLAIN_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")


def read_signals(path: Path) -> Signals:
    """Read and check a signal file with the csv module (blank lines skipped; a short row's
    missing fields are empty). Floats read as Python's ``float`` (correctly rounded); times as
    :func:`trimtab.timeutil.utc` (naive = UTC).

    Raises:
        SignalError: an unreadable file, missing columns, an unknown signal value, confidence
            outside [0, 1], a negative or missing sd, unparsable or duplicate timestamps; a
            row is named ``path:line`` counting the header as line 1.
    """
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = [r for r in csv.reader(f) if r]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise SignalError(f"{path}: cannot read signal file: {e}") from None
    header = rows[0] if rows else []
    need = {"timestamp", "signal", "confidence", "sd"}
    if not need <= set(header):
        raise SignalError(f"{path}: missing column(s) {sorted(need - set(header))}; expected {sorted(need)}")
    width = len(header)
    for k, r in enumerate(rows[1:]):
        if len(r) > width:
            raise SignalError(f"{path}: cannot read signal file: row {k + 2} has {len(r)} fields, the header {width}")
    col = {name: header.index(name) for name in need}
    body = [r + [""] * (width - len(r)) for r in rows[1:]]
    ts_text = [r[col["timestamp"]] for r in body]
    epoch = _epochs(ts_text)
    for i in np.flatnonzero(epoch == _NAT)[:1]:
        raise SignalError(f"{path}:{i + 2}: unparsable timestamp {ts_text[i]!r}")
    sig = [r[col["signal"]] for r in body]
    for i, v in enumerate(sig):
        if v not in SIDES:
            raise SignalError(f"{path}:{i + 2}: signal {v!r} is not one of long, short, neutral")
    conf_text, sd_text = [r[col["confidence"]] for r in body], [r[col["sd"]] for r in body]
    conf, sd = _floats(conf_text), _floats(sd_text)
    for i in np.flatnonzero(np.isnan(conf) | (conf < 0) | (conf > 1))[:1]:
        raise SignalError(f"{path}:{i + 2}: confidence {conf_text[i]!r} must be a number in [0, 1]")
    for i in np.flatnonzero(np.isnan(sd) | (sd < 0))[:1]:
        raise SignalError(f"{path}:{i + 2}: sd {sd_text[i]!r} must be a non-negative number")
    side = np.array([SIDES[v] for v in sig], dtype=np.float64)
    order = np.argsort(epoch, kind="stable")
    epoch, side, conf, sd = epoch[order], side[order], conf[order], sd[order]
    dup = np.flatnonzero(np.diff(epoch) == 0)
    if dup.size:
        raise SignalError(f"{path}: duplicate timestamp {to_ts(epoch[dup[0]])}")
    return Signals(epoch, side, conf, sd)


_NAT = np.iinfo(np.int64).min


def _epochs(text: list[str]) -> np.ndarray:
    """Epoch seconds of each time (``_NAT`` where it does not parse): a column written as the
    baseline writes it in one numpy call, any other spelling one :func:`utc` at a time."""
    if all(_PLAIN_UTC.fullmatch(t) for t in text):
        try:
            return np.array([t[:-1] for t in text], dtype="datetime64[s]").astype(np.int64)
        except ValueError:
            pass  # e.g. month 13: found row by row below
    out = np.empty(len(text), dtype=np.int64)
    for i, t in enumerate(text):
        try:
            out[i] = utc(t).epoch
        except (ValueError, TypeError, OverflowError):
            out[i] = _NAT
    return out


def _floats(text: list[str]) -> np.ndarray:
    """Each field as a float, NaN where it is not a number (as ``pd.to_numeric(errors="coerce")``)."""
    out = np.empty(len(text), dtype=np.float64)
    for i, t in enumerate(text):
        try:
            out[i] = float(t)
        except ValueError:
            out[i] = math.nan
    return out


def align(signals: Signals, epoch: list[int], max_age_h: float = 1.0) -> tuple[list[float], list[float], list[float]]:
    """(side, confidence, sd) per tick: the latest signal at or before each tick, neutral
    (0, 0, nan) when none is younger than ``max_age_h``."""
    t = signals.epoch
    ticks = np.asarray(epoch, dtype=np.int64)
    pos = np.searchsorted(t, ticks, side="right") - 1
    ok = (pos >= 0) & (ticks - t[np.maximum(pos, 0)] <= max_age_h * 3600)
    p = np.maximum(pos, 0)
    side = np.where(ok, signals.side[p], 0.0)
    conf = np.where(ok, signals.confidence[p], 0.0)
    sd = np.where(ok, signals.sd[p], np.nan)
    return side.tolist(), conf.tolist(), sd.tolist()


def baseline(close: pd.Series) -> pd.DataFrame:
    """The baseline momentum signal (module docstring) for an hourly close series indexed by
    the time each close became available. Returns the signal-file frame (timestamp column)."""
    import pandas as pd

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
