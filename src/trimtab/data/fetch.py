"""Newer candles and funding from an exchange, appended to a series: ``trimtab data fetch``.

For a series whose catalog entry names an ``exchange`` (:class:`trimtab.data.catalog.
ExchangeSource`: a ccxt id and unified symbol), :func:`fetch_series` downloads rows through
ccxt -- ``fetch_ohlcv(symbol, "1h", since, limit)`` for a bar series,
``fetch_funding_rate_history(symbol, since, limit)`` for a funding (event) series -- page by
page until ``until``, writes them as a raw CSV under ``<data>/raw/<series>/`` (the provenance,
with its sha256 in the manifest), puts them on the clock with the build's own code
(:func:`trimtab.data.build.build_series`: the same availability rule, checks and drops) and
merges them into ``series/<series>.parquet``: a timestamp already present is replaced by the
fetched row (counted), rows are kept in time order, and the manifest entry's rows, span and
gaps are recomputed.

A bar that has not closed yet (open + interval after now) is never stored. Network or exchange
errors are a :class:`DataError` naming the exchange and symbol.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .build import BuildError, build_series
from .catalog import CatalogError, SeriesSpec, catalog_for
from .clock import HOUR, epochs, find_gaps
from .feed import DataError
from .importer import write_manifest_entry

__all__ = ["MAX_PAGES", "fetch_rows", "fetch_series", "make_exchange"]

#: Safety bound on requests per series and call (1000 bars a page: ~114 years of hours).
MAX_PAGES = 1000
PAGE_LIMIT = 1000


def make_exchange(spec: SeriesSpec):
    """A public (key-less) ccxt client for ``spec.exchange``, rate-limited, 10 s timeout.

    Raises:
        DataError: the series names no exchange, or ccxt has no exchange of that id.
    """
    import ccxt  # about a second to import: only where an exchange is used

    src = spec.exchange
    if src is None:
        raise DataError(f"{spec.name} has no exchange source in the catalog (`exchange: {{id, symbol}}`); "
                        "only such series can be fetched (`trimtab data info` shows them)")
    cls = getattr(ccxt, src.id, None)
    if cls is None:
        raise DataError(f"{spec.name}: ccxt has no exchange {src.id!r}")
    opts = {"defaultType": src.market} if src.market else {}
    return cls({"enableRateLimit": True, "timeout": 10_000, "options": opts})


def _timeframe(interval_h: float) -> str:
    return f"{int(interval_h)}h" if interval_h >= 1 and interval_h == int(interval_h) else f"{int(interval_h * 60)}m"


def fetch_rows(spec: SeriesSpec, exchange, since_ms: int, until_ms: int, now_ms: int | None = None,
               page_limit: int = PAGE_LIMIT) -> tuple[pd.DataFrame, int]:
    """Rows of ``spec`` from ``exchange`` in ``[since_ms, until_ms)``, as the raw CSV columns the
    catalog entry reads (``spec.time_col`` in epoch seconds, ``spec.columns`` values); returns
    ``(frame, requests made)``. Pages forward from ``since_ms`` until ``until_ms``, an empty page
    or a page that does not advance.

    Raises:
        DataError: a ccxt error (named with the exchange and symbol), or an unsupported kind.
    """
    import ccxt

    src = spec.exchange
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    step_ms = int(spec.interval_h * HOUR * 1000)
    params = {}
    rows: list[tuple] = []
    cursor, pages = since_ms, 0
    try:
        while cursor < until_ms and pages < MAX_PAGES:
            if spec.kind == "bar":
                page = exchange.fetch_ohlcv(src.symbol, _timeframe(spec.interval_h), since=cursor, limit=page_limit,
                                            params=params)
                items = [(int(r[0]), *r[1:6]) for r in page]
            elif spec.kind == "event":
                page = exchange.fetch_funding_rate_history(src.symbol, since=cursor, limit=page_limit, params=params)
                items = [(int(r["timestamp"]), r["fundingRate"]) for r in page]
            else:
                raise DataError(f"{spec.name}: kind {spec.kind!r} cannot be fetched (bar or event series only)")
            pages += 1
            items = [r for r in items if cursor <= r[0] < until_ms]
            if not items:
                break
            rows += items
            nxt = max(r[0] for r in items) + (step_ms if spec.kind == "bar" else 1)
            if nxt <= cursor:
                break
            cursor = nxt
    except ccxt.BaseError as e:
        hint = "; the exchange's public API must be reachable (network, proxy)" if isinstance(e, ccxt.NetworkError) else ""
        raise DataError(f"{spec.name}: {src.id} {src.symbol}: {type(e).__name__}: {str(e)[:200]}{hint}") from None
    if spec.kind == "bar":
        rows = [r for r in rows if r[0] + step_ms <= now_ms]     # an open bar is not a bar yet
        out_cols = ["open", "high", "low", "close", "volume"]
        raw = {spec.columns[c]: [r[k + 1] for r in rows] for k, c in enumerate(out_cols) if c in spec.columns}
    else:
        (col,) = spec.columns.values()
        raw = {col: [r[1] for r in rows]}
    frame = pd.DataFrame({spec.time_col: [r[0] // 1000 for r in rows], **raw})
    return frame, pages


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _iso(epoch_s: int) -> str:
    return pd.Timestamp(int(epoch_s), unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def fetch_series(data_dir: str | Path, name: str, since=None, until=None, exchange=None,
                 now_ms: int | None = None, page_limit: int = PAGE_LIMIT) -> dict:
    """Fetch ``name``'s newer rows into ``data_dir`` (see the module docstring).

    Args:
        since, until: UTC bounds (Timestamp, or None: from the series' last row, to now).
        exchange: a ccxt exchange object to use (default :func:`make_exchange`).
        now_ms: the wall clock in ms (default now): bars not closed by then are not stored.
        page_limit: rows asked per request.

    Returns:
        ``{"series", "fetched", "pages", "added", "replaced", "rows", "last_available", "file"}``.

    Raises:
        DataError: unknown series, no exchange source, a ccxt error, or a damaged series file.
    """
    d = Path(data_dir)
    try:
        catalog = catalog_for(d)
    except CatalogError as e:
        raise DataError(str(e)) from None
    spec = catalog.get(name)
    if spec is None:
        raise DataError(f"unknown series {name!r} in the catalog of {d}; `trimtab data info` lists them")
    if spec.exchange is None:
        make_exchange(spec)            # raises the "no exchange source" error
    target = d / "series" / f"{name}.parquet"
    old = None
    if target.exists():
        try:
            old = pq.read_table(target)
        except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a damaged file
            raise DataError(f"{target}: not a readable series file ({type(e).__name__}: {str(e)[:200]})") from None
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if since is not None:
        since_ms = int(pd.Timestamp(since).timestamp() * 1000)
    elif old is not None and old.num_rows:
        since_ms = (int(epochs(old.column("ts").to_numpy()).max()) + int(spec.interval_h * HOUR)) * 1000
    else:
        raise DataError(f"{name} has no rows in {d} yet: give --since")
    until_ms = int(pd.Timestamp(until).timestamp() * 1000) if until is not None else now_ms
    ex = exchange if exchange is not None else make_exchange(spec)
    frame, pages = fetch_rows(spec, ex, since_ms, until_ms, now_ms, page_limit)
    result = {"series": name, "fetched": len(frame), "pages": pages, "added": 0, "replaced": 0}
    if frame.empty:
        result.update(rows=old.num_rows if old is not None else 0, last_available=None, file=None)
        return result

    rel = Path("raw") / name / f"fetched_{_iso(since_ms // 1000)}_{_iso(until_ms // 1000)}.csv".replace(":", "")
    (d / rel).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(d / rel, index=False)
    with tempfile.TemporaryDirectory(dir=d, prefix=".fetch-") as tmp:
        try:
            entry = build_series(replace(spec, files=(rel.as_posix(),), base=str(d)), d, Path(tmp))
        except BuildError as e:
            raise DataError(str(e)) from None
        new = pq.read_table(Path(tmp) / "series" / f"{name}.parquet")
    new_ts = set(epochs(new.column("ts").to_numpy()).tolist())
    if old is not None and old.num_rows:
        old_ts = epochs(old.column("ts").to_numpy())
        keep = np.array([t not in new_ts for t in old_ts.tolist()], dtype=bool)
        result["replaced"] = int((~keep).sum())
        cols = [c for c in old.column_names]
        if set(cols) != set(new.column_names):
            raise DataError(f"{target}: columns {cols} differ from the fetched {new.column_names}; rebuild the series")
        merged = pa.concat_tables([old.filter(pa.array(keep)), new.select(cols)])
    else:
        merged = new
    order = np.argsort(epochs(merged.column("ts").to_numpy()), kind="stable")
    merged = merged.take(pa.array(order))
    result["added"] = merged.num_rows - (old.num_rows if old is not None else 0)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_path = target.with_suffix(".parquet.tmp")
    pq.write_table(merged, tmp_path, compression="zstd", compression_level=9)
    tmp_path.replace(target)

    avail = epochs(merged.column("avail").to_numpy())
    manifest_entry = _manifest_entry(d, name, entry)
    manifest_entry.update(
        rows_kept=int(merged.num_rows), first_available=_iso(avail.min()), last_available=_iso(avail.max()),
        gaps=[{"start": _iso(a), "end": _iso(b), "hours": (b - a) / HOUR} for a, b in find_gaps(np.sort(avail), spec.interval_h)])
    manifest_entry.setdefault("sources", []).append({"file": rel.as_posix(), "sha256": _sha256(d / rel),
                                                     "fetched": f"ccxt {spec.exchange.id} {spec.exchange.symbol}",
                                                     "rows": len(frame)})
    write_manifest_entry(d, name, manifest_entry)
    result.update(rows=int(merged.num_rows), last_available=manifest_entry["last_available"], file=str(d / rel))
    return result


def _manifest_entry(d: Path, name: str, built: dict) -> dict:
    """The series' current manifest entry (or the freshly built one for a new series)."""
    try:
        m = json.loads((d / "manifest.json").read_text(encoding="utf-8"))
        cur = m["series"].get(name)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        cur = None
    return dict(cur) if isinstance(cur, dict) else dict(built)
