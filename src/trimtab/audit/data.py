"""Data findings: the series a strategy needs, against the bundled data and the window.

The series come from :func:`trimtab.engine.window.required_series` (what the engine itself
refuses to run without, and the perp series it trades around when stale):

* ``data-missing``: a required series is not in the bundle, or does not cover the window (or
  the required series have no common window at all);
* ``data-gaps`` (warning): a series has holes longer than twice its native interval inside the
  window (listed), or a perp series starts late / ends early or is not in the bundle at all;
  the engine does not trade that venue while its data is stale;
* ``data-faulty-rows`` (warning): rows in the window fail the data checks
  (trimtab.data.quality, with the config's ``data_checks``) and will be quarantined.

Each finding points at the YAML field that names the series (a venue's ``mark_field``,
``reserve``, ``usd_field``, ...).
"""
from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from ..data.clock import to_ts
from ..data.feed import DEFAULT_DATA_DIR, DataError
from ..data.quality import REASONS
from ..engine.window import default_window, required_series
from ..timeutil import UtcTime, utc
from .findings import Context

MAX_LISTED_GAPS = 6


def bundle_series() -> set[str]:
    """Names of every series in the data bundle's manifest (empty if there is no bundle)."""
    try:
        return set(json.loads((Path(DEFAULT_DATA_DIR) / "manifest.json").read_text())["series"])
    except (OSError, ValueError, KeyError):
        return set()


def needed_series(ctx: Context) -> tuple[set[str], set[str]]:
    """(required, optional) series of the strategy, as the engine defines them."""
    return required_series(ctx.s)


def _walk(data: Any, path: tuple = ()):
    if isinstance(data, dict):
        for k, v in data.items():
            yield from _walk(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield from _walk(v, path + (i,))
    elif isinstance(data, str):
        yield path, data


def series_loc(ctx: Context, series: str):
    """The first YAML field (config, then venues) naming ``series`` or one of its fields."""
    for doc in [ctx.cdoc, *ctx.vdocs.values()]:
        for path, v in _walk(doc.data):
            if v == series or v.startswith(series + "."):
                return (doc, path, False)
    return (ctx.cdoc, ("venues",), True)


def _ts(x) -> str:
    return f"{utc(x):%Y-%m-%d %H:%M}"


def resolve_window(ctx: Context, data, start=None, end=None) -> tuple[UtcTime, UtcTime] | None:
    """The window to check: the given one, else the engine's default window for the strategy
    (None, with a ``data-missing`` finding, if the series have no common window)."""
    if start is not None and end is not None:
        return utc(start), utc(end)
    try:
        d0, d1 = default_window(ctx.s, data)
    except DataError as e:
        ctx.add("data-missing", ctx.cdoc, ("venues",), f"no window to run in: {e}", key=True)
        return None
    return (utc(start) if start is not None else d0), (utc(end) if end is not None else d1)


def check_data(ctx: Context, data, start=None, end=None) -> tuple[UtcTime, UtcTime] | None:
    """Append the data findings of ``ctx`` against ``data`` (a MarketData holding at least the
    strategy's series that exist in the bundle). Returns the window checked."""
    must, optional = needed_series(ctx)
    have = set(data.series_names())
    absent = [s for s in sorted(must | optional) if s not in have]
    for s in absent:
        near = sorted(x for x in bundle_series() if x.split(".")[0] == s.split(".")[0])[:8]
        similar = f"; similar: {', '.join(near)}" if near else ""
        if s in must:
            ctx.add_at("data-missing", series_loc(ctx, s), f"required series {s!r} is not in the data bundle{similar}")
        else:
            ctx.add_at("data-gaps", series_loc(ctx, s), f"series {s!r} is not in the data bundle{similar}: that venue is never "
                                                        f"traded and its hedge weight goes to the other legs")
    if absent and any(s in must for s in absent):
        return None
    window = resolve_window(ctx, data, start, end)
    if window is None:
        return None
    t0, t1 = window
    for s in sorted((must | optional) - set(absent)):
        a, b = data.coverage(s)
        required = s in must
        notes = []
        if a > t0:
            notes.append(f"starts {_ts(a)}")
        if b < t1 - timedelta(hours=data.interval_hours(s)):
            notes.append(f"ends {_ts(b)}")
        if notes and required:
            ctx.add_at("data-missing", series_loc(ctx, s),
                       f"required series {s!r} {' and '.join(notes)}, so it does not cover the window {_ts(t0)} -> {_ts(t1)}")
            continue
        gaps = data.gaps(s, t0, t1)
        if not gaps and not notes:
            continue
        listed = [f"{_ts(g.start)} -> {_ts(g.end)} ({g.hours:,.0f}h)" for g in gaps[:MAX_LISTED_GAPS]]
        more = f", and {len(gaps) - MAX_LISTED_GAPS} more" if len(gaps) > MAX_LISTED_GAPS else ""
        hours = sum(g.hours for g in gaps)
        what = []
        if notes:
            what.append(f"{' and '.join(notes)} (window {_ts(t0)} -> {_ts(t1)})")
        if gaps:
            what.append(f"{len(gaps)} gap{'s' if len(gaps) != 1 else ''} ({hours:,.0f}h) in the window: {', '.join(listed)}{more}")
        ctx.add_at("data-gaps", series_loc(ctx, s),
                   f"series {s!r} {'; '.join(what)}; {'the venue is not traded while it is stale' if not required else 'its last value is held (stale) across them'}")
    _check_quality(ctx, data, sorted((must | optional) - set(absent)), t0, t1)
    return window


def _check_quality(ctx: Context, data, series: list[str], t0, t1) -> None:
    """``data-faulty-rows`` warnings for rows the data checks quarantine in the window (trimtab.data.quality,
    with the config's ``data_checks``): the run will not trade on them."""
    checked = data.with_checks(getattr(ctx.config, "data_checks", None))
    try:
        # On the window's own clock: its per-tick quarantine arrays go with it after the audit
        # instead of staying cached on the run's whole-bundle data for the run's life (~6 MB for
        # the flagship). The same codes at the same ticks: a tick's latest row does not depend on
        # the clock, and the slice shares the checks' results (MarketData.slice).
        checked = checked.slice(t0, t1)
    except DataError:   # a window inside one hour has no tick: the bundle's clock, masked below
        pass
    e0, e1 = utc(t0).epoch, utc(t1).epoch
    inside = (checked.epoch >= e0) & (checked.epoch <= e1)
    for s in series:
        codes, rows = checked.quarantine(s)
        hit = inside & (codes != 0)
        if not hit.any():
            continue
        reasons: dict[str, int] = {}
        for c, r in set(zip(codes[hit].tolist(), rows[hit].tolist())):
            reasons[REASONS[c]] = reasons.get(REASONS[c], 0) + 1
        first = to_ts(checked.epoch[hit.argmax()])
        ctx.add_at("data-faulty-rows", series_loc(ctx, s),
                   f"series {s!r} has {sum(reasons.values())} faulty rows in the window "
                   f"({', '.join(f'{k} x{v}' for k, v in sorted(reasons.items()))}), first at {_ts(first)}: quarantined for "
                   f"{int(hit.sum())}h, not traded and valued at the last good value")


def share_price_usd(ctx: Context, data, at) -> float | None:
    """USD price of the share class at ``at`` from the wallet's asset prices (None if unknown)."""
    wallet = ctx.s.venues.get("wallet")
    assets = (wallet.assets or {}) if wallet else {}
    a = assets.get(ctx.config.share_class)
    if a is None:
        return None
    if a.usd is not None:
        return a.usd
    if data is None:
        return None
    try:
        i = data.position(utc(at).floor("h"))
        if a.usd_field:
            return float(data.field(a.usd_field)[i])
        if a.eth_rate_field and "ETH" in assets and assets["ETH"].usd_field:
            return float(data.field(a.eth_rate_field)[i] * data.field(assets["ETH"].usd_field)[i])
    except Exception:  # noqa: BLE001 - a price we cannot read just skips the size checks
        return None
    return None
