"""The window a strategy runs over: the series it reads, the longest window they all cover, a
requested window checked against it, and run ids (shared by backtest, live and portfolio runs)."""
from __future__ import annotations

import sys
from pathlib import Path

from ..config.load import Strategy
from ..data.clock import to_ts
from ..data.feed import DataError, MarketData
from ..data.market import MarketView, series_of
from ..runs import unique_run_id
from ..templates.registry import template_for
from ..timeutil import UtcTime, utc
from ..venues.sim import GAS_FIELD


def required_series(strategy: Strategy) -> tuple[set[str], set[str]]:
    """(series the strategy cannot run without, perp series it can run around when stale)."""
    must = {series_of((strategy.venues["wallet"].assets or {})["ETH"].usd_field), series_of(GAS_FIELD)}
    optional: set[str] = set()
    wallet_assets = strategy.venues["wallet"].assets or {}
    for t in strategy.config.targets:
        m, o = template_for(t).required_series(t, strategy, series_of)
        must |= m
        optional |= o
    if strategy.config.share_class != "USDT":
        a = wallet_assets[strategy.config.share_class]
        must.add(series_of(a.usd_field or a.eth_rate_field))
    return must, optional


def default_window(strategy: Strategy, data: MarketData) -> tuple[UtcTime, UtcTime]:
    """The longest window the strategy's required series all cover (and one hedge venue)."""
    must, optional = required_series(strategy)
    have = set(data.series_names())
    missing = sorted(s for s in must if s not in have)
    if missing:   # checked first: the coverage of a missing series would only say "unknown series"
        raise DataError(f"{strategy.name} needs series the data does not have: {', '.join(missing)}; "
                        "`trimtab data info` lists what it holds, `trimtab data import` adds a series")
    starts, ends = [], []
    for s in must:
        a, b = data.coverage(s)
        starts.append(a)
        ends.append(b)
    perps = [data.coverage(s) for s in optional if s.startswith("perp.") and s in have]
    if perps:
        starts.append(min(a for a, _ in perps))
        ends.append(max(b for _, b in perps))
    start, end = max(starts).ceil("h"), min(ends).floor("h")
    if start >= end:
        raise DataError(f"the data the strategy needs has no common window (start {start}, end {end})")
    return start, end


#: Clamp warnings already printed by this process (a run resolves its window more than once).
_WARNED: set[str] = set()


def clamp_window(what: str, d0: UtcTime, d1: UtcTime, start=None, end=None) -> tuple[UtcTime, UtcTime]:
    """``start``/``end`` (default ``d0``/``d1``) narrowed to the covered ``[d0, d1]``.

    A window that only partly overlaps the data is clamped to the overlap, with one warning
    line on stderr per process (``warning: window ... only partly overlaps ...: running ...``);
    a window wholly outside it, or empty, is refused.

    Raises:
        DataError: naming ``what`` ("usdt_eth_...'s data") and the window it covers.
    """
    start = utc(start) if start is not None else d0
    end = utc(end) if end is not None else d1
    if start >= end or end <= d0 or start >= d1:
        raise DataError(f"window {start:%Y-%m-%d %H:%M} -> {end:%Y-%m-%d %H:%M} is outside what {what} covers: "
                        f"{d0:%Y-%m-%d %H:%M} -> {d1:%Y-%m-%d %H:%M} (UTC)")
    a, b = max(start, d0), min(end, d1)
    if (a, b) != (start, end):
        msg = (f"warning: window {start:%Y-%m-%d %H:%M} -> {end:%Y-%m-%d %H:%M} only partly overlaps what {what} "
               f"covers ({d0:%Y-%m-%d %H:%M} -> {d1:%Y-%m-%d %H:%M} UTC): running {a:%Y-%m-%d %H:%M} -> "
               f"{b:%Y-%m-%d %H:%M}")
        if msg not in _WARNED:
            _WARNED.add(msg)
            print(msg, file=sys.stderr, flush=True)
    return a, b


def resolve_window(strategy: Strategy, data: MarketData, start=None, end=None) -> tuple[UtcTime, UtcTime]:
    """The requested window, defaulting to (and checked against) the strategy's data window."""
    d0, d1 = default_window(strategy, data)
    return clamp_window(f"{strategy.name}'s data", d0, d1, start, end)


def new_run_id(strategy: Strategy, start, end, out: Path | str, prefix: str = "") -> str:
    """A run id for ``strategy`` over ``start..end`` that names no existing directory under
    ``out`` (:func:`trimtab.runs.unique_run_id`)."""
    return unique_run_id(out, strategy.name, start, end, prefix)


def series_notes(strategy: Strategy, window: MarketData, view: MarketView, last: int) -> list[dict]:
    """The summary's ``data_gaps``: for every series the strategy reads (:func:`required_series`,
    the valuation reference included) that is missing, has gaps or duplicate rows within the
    first ``last`` ticks of ``view``. One dict per series: ``{"series", "missing"}`` or
    ``{"series", "gaps": [{start, end, hours}], "duplicates": [{time, rows, values_differ}]}``."""
    data_notes = []
    must, optional = required_series(strategy)
    quality = window.quality()
    for s in sorted(must | optional):   # every required series, the valuation reference included
        if s not in window.series_names():
            data_notes.append({"series": s, "missing": "not in the bundled data: this venue is never traded"})
            continue
        note: dict = {}
        gaps = window.gaps(s)
        if gaps:
            note["gaps"] = [{"start": f"{g.start:%Y-%m-%d %H:%M}", "end": f"{g.end:%Y-%m-%d %H:%M}", "hours": g.hours} for g in gaps]
        lo, hi = int(view.epoch[0]), int(view.epoch[last - 1])
        dups = [d for d in quality[s].duplicates if lo - 86400 <= d[0] <= hi]
        if dups:   # the later row is used (trimtab.data.quality)
            note["duplicates"] = [{"time": f"{to_ts(t):%Y-%m-%d %H:%M}", "rows": k,
                                   "values_differ": differ} for t, k, differ in dups]
        if note:
            data_notes.append({"series": s, **note})
    return data_notes
