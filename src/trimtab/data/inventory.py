"""What a data directory holds, series by series (``trimtab data info``).

:func:`inventory` reads each series file itself (its ``avail`` column), not only the manifest's
figures, so a deleted or damaged file shows; a series the catalog (:func:`trimtab.data.catalog.
catalog_for`) or the manifest declares but whose file is absent is ``MISSING`` with the reason,
never "0 gaps".
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from .catalog import CatalogError, catalog_for
from .clock import HOUR, epochs, find_gaps
from .feed import DataError

__all__ = ["inventory"]


def _iso(epoch_s: int) -> str:
    return np.datetime64(int(epoch_s), "s").astype(str) + "Z"


def inventory(data_dir: Path, only: str | None = None) -> list[dict]:
    """One dict per series of ``data_dir``, catalog order then manifest-only series.

    Keys: ``series``, ``status`` (``ok`` | ``MISSING`` | ``EMPTY``), ``reason`` (when not ok),
    ``first_available`` / ``last_available`` (ISO UTC or None), ``rows``, ``interval_h``,
    ``gaps`` (``[{start, end, hours}]``, holes longer than 2x the native interval, as the
    loader counts them), ``gap_hours``, ``columns``, ``sources`` (the manifest's), ``exchange``
    (ccxt id and symbol, or None).

    Raises:
        DataError: ``only`` names no series (with close matches), the manifest or catalog is
            invalid, or a series file is unreadable.
    """
    d = Path(data_dir)
    try:
        catalog = catalog_for(d)
    except CatalogError as e:
        raise DataError(str(e)) from None
    mpath = d / "manifest.json"
    manifest: dict = {}
    if mpath.exists():
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))["series"]
            if not isinstance(manifest, dict):
                raise TypeError("'series' is not an object")
        except (ValueError, KeyError, TypeError, OSError) as e:
            raise DataError(f"{mpath}: not a valid bundle manifest ({type(e).__name__}: {e}); rebuild it with "
                            "`trimtab data build`") from None
    names = list(dict.fromkeys([*catalog, *manifest]))
    if only is not None:
        if only not in names:
            import difflib
            close = difflib.get_close_matches(only, names, n=5, cutoff=0.6)
            raise DataError(f"unknown series {only!r} in {d}" + (f"; did you mean: {', '.join(close)}" if close else "")
                            + "; `trimtab data info` lists them")
        names = [only]
    out = []
    for n in names:
        spec, m = catalog.get(n), manifest.get(n)
        row: dict = {"series": n, "status": "ok", "first_available": None, "last_available": None, "rows": 0,
                     "interval_h": spec.interval_h if spec else float(m.get("interval_h", 1.0)),
                     "gaps": [], "gap_hours": 0.0,
                     "columns": list(spec.columns) if spec else list(m.get("columns", [])),
                     "sources": (m or {}).get("sources", []),
                     "exchange": ({"id": spec.exchange.id, "symbol": spec.exchange.symbol} if spec and spec.exchange
                                  else None)}
        rel = (m or {}).get("file", f"series/{n}.parquet")
        f = (d / rel).resolve()
        if not f.is_relative_to(d.resolve()):
            raise DataError(f"{mpath}: series {n!r} file {rel!r} is outside the data directory")
        if m is None or not f.is_file():
            row["status"] = "MISSING"
            row["reason"] = ("declared in the catalog but not built or imported into this data directory"
                             if m is None else f"listed in manifest.json but {rel} does not exist")
            out.append(row)
            continue
        try:
            with pq.ParquetFile(f) as pf:
                avail = epochs(pf.read(columns=["avail"], use_threads=False).column("avail").to_numpy())
        except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a damaged file
            raise DataError(f"{f}: not a readable series file ({type(e).__name__}: {str(e)[:200]})") from None
        avail = np.sort(avail)
        row["rows"] = int(avail.size)
        if avail.size == 0:
            row["status"], row["reason"] = "EMPTY", "the series file has no rows"
        else:
            row["first_available"], row["last_available"] = _iso(avail[0]), _iso(avail[-1])
            row["gaps"] = [{"start": _iso(a), "end": _iso(b), "hours": (b - a) / HOUR}
                           for a, b in find_gaps(avail, row["interval_h"])]
            row["gap_hours"] = float(sum(g["hours"] for g in row["gaps"]))
        out.append(row)
    return out
