"""Build the compact data bundle from the raw market data.

``build(raw_dir, out_dir)`` reads the raw CSV/parquet/JSON files described in
``shared/data/README.md`` through the series catalog (:mod:`trimtab.data.catalog`:
``src/trimtab/data/catalog.yaml`` plus the output directory's own ``catalog.yaml``) and writes::

    out_dir/series/<name>.parquet   ts, avail (timestamp[s, UTC]) + float64 value columns, zstd
    out_dir/manifest.json           per series: source files + sha256, rows kept / dropped by reason,
                                    availability span, gaps, clock policy (read by the loader)
    out_dir/static.json             risk parameters, margins, gas units, execution costs, EtherFi rewards
    out_dir/README.md               what is bundled and the conventions (generated)

Cleaning, per series: every file its globs match is read and the files are concatenated in
catalog order; a timestamp present in a later file replaces the rows of earlier files
(``replaced_by_later_file``: a newer export corrects an older one). Then unparsable rows (time
or value) dropped; non-positive prices dropped; exact duplicate rows collapsed; rows sharing a
timestamp with *different* values all dropped (the choice would be a guess, so it becomes a
gap); rows sorted; for ``daily_samples`` series only midnight rows kept, after checking the
others are interpolations of them. Every drop is counted by reason in the manifest.

CLI: ``trimtab data build --raw ../shared/data --out data`` (``scripts/build_data.py`` is the
same build, for ``make data``).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from trimtab.data.catalog import CatalogError, SeriesSpec, catalog_for
from trimtab.data.clock import HOUR, find_gaps
from trimtab.errors import TrimtabError

__all__ = ["BuildError", "build", "build_series", "main", "read_raw", "series_files"]

DAY = 24 * HOUR
INTERP_TOL = 1e-9


class BuildError(TrimtabError):
    """The raw data does not match what the catalog expects (missing file, changed shape)."""


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _iso(epoch_s: int) -> str:
    return pd.Timestamp(int(epoch_s), unit="s", tz="UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _one_file(raw_dir: Path, pattern: str) -> Path:
    files = sorted(raw_dir.glob(pattern))
    if len(files) != 1:
        raise BuildError(f"{pattern}: expected exactly one raw file under {raw_dir}, found {len(files)}: "
                         f"{[f.name for f in files]}")
    return files[0]


def _read_csv(path: Path) -> tuple[pd.DataFrame, int]:
    """CSV without its '#' comment lines (and BOM); returns (frame, comment line count)."""
    lines = path.read_text(encoding="utf-8-sig").splitlines(keepends=True)
    body = [ln for ln in lines if not ln.startswith("#")]
    return pd.read_csv(io.StringIO("".join(body)), dtype=str), len(lines) - len(body)


def read_raw(path: Path) -> tuple[pd.DataFrame, int]:
    """One raw file as text columns: ``(frame of str, comment lines skipped)``.

    CSV (``#`` comment lines and a BOM skipped) or parquet (``.parquet``/``.pq``: datetime
    columns become epoch seconds, numbers their exact ``repr``), so both go through the same
    parsing and checks.

    Raises:
        BuildError: the file cannot be read or parsed (named, with the reader's reason).
    """
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
            for c in df.columns:
                if pd.api.types.is_datetime64_any_dtype(df[c]):
                    t = df[c].dt.tz_localize("UTC") if df[c].dt.tz is None else df[c].dt.tz_convert("UTC")
                    # whatever the stored unit (ns, us, ms); NaT stays missing (then unparsable)
                    df[c] = ((t - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).astype("Int64")
            out = df.astype(object).where(df.notna(), None)
            return out.apply(lambda col: col.map(lambda v: None if v is None else repr(float(v)) if isinstance(v, float)
                                                 else str(v))).astype(object), 0
        return _read_csv(path)
    except (OSError, UnicodeDecodeError, ValueError, pd.errors.ParserError) as e:
        raise BuildError(f"{path}: not a readable CSV or parquet file ({type(e).__name__}: {str(e)[:200]})") from None
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for a damaged parquet file
        raise BuildError(f"{path}: not a readable CSV or parquet file ({type(e).__name__}: {str(e)[:200]})") from None


def series_files(spec: SeriesSpec, raw_dir: Path) -> list[Path]:
    """The files of ``spec``: every match of each glob, in catalog order (a glob's matches
    sorted by name), each once. Relative globs resolve against ``spec.base`` when the entry
    comes from a data directory's catalog, else against ``raw_dir``.

    Raises:
        BuildError: a glob matches no file (naming the glob and the directory searched).
    """
    root = Path(spec.base) if spec.base is not None else raw_dir
    out: list[Path] = []
    for pattern in spec.files:
        if Path(pattern).is_absolute():
            p = Path(pattern)
            found = sorted(Path(p.anchor).glob(str(p.relative_to(p.anchor))))
        else:
            found = sorted(root.glob(pattern))
        found = [f for f in found if f.is_file()]
        if not found:
            raise BuildError(f"{spec.name}: no raw file matches {pattern!r} under {root}; fix `files:` in the "
                             "catalog or pass the raw data directory with --raw")
        out += [f for f in found if f not in out]
    return out


def _rel(path: Path, *roots: Path) -> str:
    for r in roots:
        try:
            return path.resolve().relative_to(r.resolve()).as_posix()
        except ValueError:
            continue
    return path.resolve().as_posix()


def _parse_time(col: pd.Series) -> np.ndarray:
    """Epoch seconds (float, NaN if unparsable) of epoch-second or ISO-8601 text."""
    s = col.astype(str).str.strip()
    out = np.full(len(s), np.nan)
    digits = s.str.fullmatch(r"\d{9,11}")
    out[digits.to_numpy()] = s[digits].astype(np.int64).to_numpy()
    rest = ~digits
    if rest.any():
        txt = s[rest].str.replace(r"([+-]\d\d:\d\d)Z$", r"\1", regex=True)   # '2024-01-01T00:00:00+00:00Z'
        t = pd.to_datetime(txt, utc=True, errors="coerce", format="ISO8601")
        ok = t.notna().to_numpy()
        vals = np.full(len(t), np.nan)
        vals[ok] = pd.DatetimeIndex(t[ok]).as_unit("s").asi8
        out[rest.to_numpy()] = vals
    return out


def _interp_check(kind: str, ts: np.ndarray, v: np.ndarray, keep: np.ndarray) -> dict:
    """Compare dropped rows with the linear/geometric interpolation of the kept midnight rows."""
    ks, kv = ts[keep], v[keep]
    drop = ~keep
    a = np.searchsorted(ks, ts[drop], side="right") - 1
    inside = (a >= 0) & (a < ks.size - 1)
    inside[inside] = (ks[a[inside] + 1] - ks[a[inside]]) == DAY
    ai = a[inside]
    w = (ts[drop][inside] - ks[ai]) / DAY
    if kind == "linear":
        exp = kv[ai] + w * (kv[ai + 1] - kv[ai])
    else:
        exp = kv[ai] ** (1 - w) * kv[ai + 1] ** w
    rel = np.abs(v[drop][inside] / exp - 1.0)
    return {"method": kind, "rows_checked": int(inside.sum()), "rows_matching": int((rel <= INTERP_TOL).sum()),
            "max_rel_dev": float(rel.max()) if rel.size else 0.0,
            "rows_not_checkable": int((~inside).sum())}


def build_series(spec: SeriesSpec, raw_dir: Path, out_dir: Path) -> dict:
    """Build one series into ``out_dir/series/<name>.parquet``; return its manifest entry.

    Raises:
        BuildError: a glob matches nothing, a file is unreadable or lacks a column, or a
            sampling/interpolation assumption fails.
    """
    paths = series_files(spec, raw_dir)
    frames, n_comment = [], 0
    for k, path in enumerate(paths):
        df, nc = read_raw(path)
        missing = [c for c in [spec.time_col, *spec.columns.values()] if c not in df.columns]
        if spec.availability == "block_time" and "block_timestamp" not in df.columns:
            missing.append("block_timestamp")
        if missing:
            raise BuildError(f"{spec.name}: {path.name} lacks columns {missing}; has {list(df.columns)}; "
                             "map them with the catalog's `columns:` (output: raw)")
        frames.append(df.assign(_file=k))
        n_comment += nc
    df = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
    n_raw = len(df)
    dropped: Counter = Counter()
    notes: list[str] = []

    ts = _parse_time(df[spec.time_col])
    vals = {out: pd.to_numeric(df[raw], errors="coerce").to_numpy(np.float64) for out, raw in spec.columns.items()}
    block = _parse_time(df["block_timestamp"]) if spec.availability == "block_time" else None

    if "date_utc" in df.columns:        # Uniswap: epoch `timestamp` and text `date_utc` must agree
        bad = int(np.sum(_parse_time(df["date_utc"]) != ts))
        if bad:
            notes.append(f"{bad} rows where date_utc disagrees with timestamp (epoch used)")

    ok = ~np.isnan(ts)
    for c in vals.values():
        ok &= ~np.isnan(c)
    if block is not None:
        ok &= ~np.isnan(block)
    dropped["unparsable"] += int((~ok).sum())
    pos = np.ones(n_raw, dtype=bool)
    for c in spec.positive:
        pos &= ~(vals[c] <= 0)
    dropped["non_positive_price"] += int((ok & ~pos).sum())
    ok &= pos
    if len(paths) > 1:
        # A later file replaces every earlier row of a timestamp it has (a re-export or a
        # newer download corrects the older one); counted, so the manifest shows the overlap.
        fidx = df["_file"].to_numpy()
        last = pd.Series(np.where(ok, fidx, -1)).groupby(np.where(ok, ts, np.nan)).transform("max").to_numpy()
        replaced = ok & (fidx < last)
        dropped["replaced_by_later_file"] += int(replaced.sum())
        ok &= ~replaced

    frame = pd.DataFrame({"ts": ts[ok].astype(np.int64), **{c: v[ok] for c, v in vals.items()}})
    if block is not None:
        frame["_block"] = block[ok].astype(np.int64)
    back = int((np.diff(frame["ts"].to_numpy()) < 0).sum())
    if back:
        notes.append(f"rows out of time order in the raw file: {back} backward steps (sorted)")
    frame = frame.sort_values("ts", kind="stable").reset_index(drop=True)

    value_cols = list(spec.columns)
    exact = frame.duplicated(["ts", *value_cols], keep="first")
    dropped["duplicate"] += int(exact.sum())
    frame = frame[~exact]
    conflict = frame["ts"].duplicated(keep=False)
    if conflict.any():
        dropped["conflicting_duplicate"] += int(conflict.sum())
        lo, hi = frame.loc[conflict, "ts"].min(), frame.loc[conflict, "ts"].max()
        notes.append(f"{int(frame.loc[conflict, 'ts'].nunique())} timestamps with conflicting values "
                     f"({_iso(lo)} .. {_iso(hi)}): all dropped, they show as a gap")
        frame = frame[~conflict]
    frame = frame.reset_index(drop=True)

    interp = None
    if spec.sampling == "daily_samples":
        t = frame["ts"].to_numpy()
        keep = t % DAY == 0
        if spec.interp_check:
            checks = {c: _interp_check(spec.interp_check, t, frame[c].to_numpy(), keep)
                      for c in (spec.geometric or value_cols)}
            for c, chk in checks.items():
                if chk["rows_checked"] and chk["rows_matching"] < 0.99 * chk["rows_checked"]:
                    raise BuildError(f"{spec.name}.{c}: only {chk['rows_matching']}/{chk['rows_checked']} "
                                     f"non-midnight rows are {spec.interp_check} interpolations of the midnight "
                                     "samples; the file may now hold real hourly observations: review the catalog")
            interp = checks
        dropped["interpolated_between_daily_samples"] += int((~keep).sum())
        frame = frame[keep].reset_index(drop=True)

    t = frame["ts"].to_numpy()
    if spec.availability == "bar_close":
        avail = t + int(spec.interval_h * HOUR)
    elif spec.availability == "at_timestamp":
        avail = t.copy()
    elif spec.availability == "end_of_day":
        avail = (t // DAY + 1) * DAY
    elif spec.availability == "block_time":
        avail = np.maximum(t, frame.pop("_block").to_numpy())
    else:
        raise BuildError(f"{spec.name}: unknown availability rule {spec.availability!r}")
    if np.any(np.diff(avail) < 0):
        raise BuildError(f"{spec.name}: availability is not monotone in observation time")

    rel = Path("series") / f"{spec.name}.parquet"
    table = pa.table({
        "ts": pa.array(t, pa.int64()).cast(pa.timestamp("s", tz="UTC")),
        "avail": pa.array(avail, pa.int64()).cast(pa.timestamp("s", tz="UTC")),
        **{c: pa.array(frame[c].to_numpy(np.float64), pa.float64()) for c in value_cols},
    })
    (out_dir / rel).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out_dir / rel, compression="zstd", compression_level=9)

    gaps = [{"start": _iso(a), "end": _iso(b), "hours": (b - a) / HOUR}
            for a, b in find_gaps(avail, spec.interval_h)]
    entry = {
        "name": spec.name, "kind": spec.kind, "file": rel.as_posix(), "columns": value_cols,
        "interval_h": spec.interval_h, "fill": spec.fill, "geometric": list(spec.geometric),
        "availability": spec.availability, "sampling": spec.sampling, "note": spec.note,
        "sources": [{"file": _rel(p, *([Path(spec.base)] if spec.base else []), raw_dir), "sha256": _sha256(p),
                     **({"rows": int((df["_file"] == k).sum())} if len(paths) > 1 else {})}
                    for k, p in enumerate(paths)],
        "source_columns": dict(spec.columns), "time_column": spec.time_col,
        "rows_raw": n_raw, "rows_kept": int(len(frame)),
        "rows_dropped": {k: v for k, v in sorted(dropped.items()) if v},
        "first_available": _iso(avail[0]) if avail.size else None,
        "last_available": _iso(avail[-1]) if avail.size else None,
        "gaps": gaps, "notes": notes,
    }
    if n_comment:
        entry["comment_lines_skipped"] = n_comment
    if interp:
        entry["interpolation_check"] = interp
    return entry


# -- static ---------------------------------------------------------------------
def _pct(x: str):
    x = x.strip()
    if x.upper() in ("TRUE", "FALSE"):
        return x.upper() == "TRUE"
    if x.endswith("%"):
        return round(float(x[:-1]) / 100.0, 10)
    return x


def _build_static(raw_dir: Path) -> tuple[dict, list[dict]]:
    used: list[Path] = []

    def load(pattern: str) -> Path:
        p = _one_file(raw_dir, pattern)
        used.append(p)
        return p

    # Aave risk parameters: protocol JSON as-is + per-asset rows of the manual CSV
    prot = json.loads(load("protocol_data/aave/risk_params/aave_v3_risk_parameters.json").read_text())
    rows = list(csv.reader(io.StringIO(
        load("manual_sources/aave_params/aave_current_v3_prams_etherum_mainnet.csv").read_text(encoding="utf-8-sig"))))
    assets = rows[0][1:]
    per_asset = {}
    for a in ("WETH", "weETH", "wstETH", "USDT"):
        if a not in assets:
            raise BuildError(f"aave params CSV has no column {a}")
        j = assets.index(a) + 1
        per_asset[a] = {r[0].strip().lower().replace(" ", "_"): _pct(r[j]) for r in rows[1:] if r and r[0].strip()}
    aave = {
        "sources": {
            "protocol_json": "protocol_data/aave/risk_params/aave_v3_risk_parameters.json: eMode (ETH-correlated: "
                             "LTV 0.93, LT 0.95, bonus 0.01) and a 'standard' block per collateral/debt pair",
            "per_asset": "manual_sources/aave_params/aave_current_v3_prams_etherum_mainnet.csv: current per-asset "
                         "NON-eMode parameters from the Aave UI; percentages converted to fractions; caps kept as "
                         "text ('0.0032B' = billions of tokens). Differs from the JSON 'standard' block (e.g. weETH "
                         "LTV 0.775 vs 0.80): use per_asset for standard mode, protocol_json.emode for eMode.",
        },
        "protocol_json": prot,
        "per_asset": per_asset,
    }

    margin = {}
    for v in ("binance", "bybit", "okx"):
        margin[v] = json.loads(load(f"market_data/derivatives/risk_params/{v}_margin_requirements.json").read_text())
    cex = {"sources": "market_data/derivatives/risk_params/{venue}_margin_requirements.json as-is. Note: the three "
                      "files are identical and maintenance_margin_requirement (0.10) exceeds "
                      "initial_margin_requirement (0.05), which is inverted for real venues: review before use.",
           **margin}

    ops = json.loads(load("blockchain_data/gas_prices/operation_gas_costs_summary_*.json").read_text())
    gas = {"sources": "blockchain_data/gas_prices/operation_gas_costs_summary_*.json: operation_costs.*.gas_units",
           **{k: int(v["gas_units"]) for k, v in ops["operation_costs"].items()}}

    lookup = json.loads(load("execution_costs/lookup_tables/execution_costs_lookup.json").read_text())
    costs = {}
    for pair, buckets in lookup.items():
        costs[pair] = {}
        for b, by_day in buckets.items():
            distinct = sorted(set(by_day.values()))
            if len(distinct) != 1:
                raise BuildError(f"execution cost {pair}/{b} is not constant over days: {distinct[:10]}; "
                                 "the bundle stores one number per pair and bucket")
            costs[pair][b] = distinct[0]
    span = sorted({d for bk in lookup.values() for bd in bk.values() for d in bd})
    exec_costs = {"sources": f"execution_costs/lookup_tables/execution_costs_lookup.json: spread + slippage in bps "
                             f"by pair and trade-size bucket (USD 10k/100k/1m); daily {span[0]} .. {span[-1]}, "
                             "checked constant per pair/bucket by the build", **costs}

    rew, _ = _read_csv(load("protocol_data/staking/restaking_final/etherfi_seasonal_rewards_*.csv"))
    weekly = rew[rew["reward_type"].isin(["EIGEN_via_KING", "ETHFI_via_KING"])]
    cols = ["period_start", "period_end", "payout_date", "reward_type", "eigen_per_eeth_weekly", "ethfi_per_eeth"]
    weekly_rows = []
    for r in weekly[cols].to_dict("records"):
        for k in ("eigen_per_eeth_weekly", "ethfi_per_eeth"):
            r[k] = float(r[k]) if isinstance(r[k], str) and r[k] else None
        weekly_rows.append(r)
    skipped = rew.loc[~rew.index.isin(weekly.index), "reward_type"].value_counts().to_dict()
    dist = {}
    for stem in ("eigen_distributions_raw", "ethfi_topups_raw"):
        df, _ = _read_csv(load(f"manual_sources/etherfi_distributions/{stem}.csv"))
        dist[stem] = [{k: (float(v) if k not in ("staking_period_start", "staking_period_end", "top_up_date")
                           else v) for k, v in r.items()} for r in df.to_dict("records")]
    etherfi = {
        "sources": {
            "weekly": "protocol_data/staking/restaking_final/etherfi_seasonal_rewards_*.csv rows with reward_type "
                      "EIGEN_via_KING (weekly EIGEN per eETH, data_quality 'exact') and ETHFI_via_KING (ad-hoc ETHFI "
                      f"top-ups per eETH, 'exact'). Not bundled (estimates): {skipped}.",
            "distributions": "manual_sources/etherfi_distributions/*.csv as-is (raw EIGEN distributions, ETHFI top-ups)",
        },
        "weekly": weekly_rows,
        "distributions": dist,
    }
    static = {"aave_risk_params": aave, "cex_margin": cex, "gas_units": gas,
              "execution_costs_bps": exec_costs, "etherfi_rewards": etherfi}
    srcs = [{"file": p.relative_to(raw_dir).as_posix(), "sha256": _sha256(p)} for p in used]
    return static, srcs


UNUSED_REASONS = {
    "_perp_1m_": "1-minute bars, 2025-09-27..29 only (intra-hour checks); not on the hourly clock, not bundled",
    "aave_v3_aave-v3-ethereum_weETH_rates_2024-05-12_2025-09-18.csv": "daily file; the *_hourly.csv is used (same "
                                                                       "midnight values)",
    "aave_v3_aave-v3-ethereum_wstETH_rates_2024-05-12_2025-09-18.csv": "daily file; the *_hourly.csv is used (same "
                                                                        "midnight values)",
    "execution_cost_summary.json": "summary of the lookup table, which is bundled in static.json",
    "README.md": "raw data description",
}


def _unused(raw_dir: Path, used: set[str]) -> list[dict]:
    out = []
    for p in sorted(raw_dir.rglob("*")):
        rel = p.relative_to(raw_dir).as_posix()
        if p.is_file() and rel not in used:
            reason = next((r for k, r in UNUSED_REASONS.items() if k in p.name), "not used by the catalog")
            out.append({"file": rel, "reason": reason})
    return out


def build(raw_dir: Path, out_dir: Path, catalog: dict[str, SeriesSpec] | None = None,
          progress=None) -> dict:
    """Build the bundle from ``raw_dir`` into ``out_dir`` and return the manifest.

    Args:
        catalog: series to build (default: :func:`trimtab.data.catalog.catalog_for` ``out_dir``:
            the shipped catalog plus ``out_dir/catalog.yaml``, whose relative globs resolve
            against ``out_dir``).
        progress: called with each series name before it is built (or None).

    Raises:
        BuildError: a catalog glob matches no file, a file is unreadable or lacks a column, a
            'constant' lookup is not constant, an interpolation assumption fails, or the
            catalog is invalid.
    """
    raw_dir, out_dir = Path(raw_dir), Path(out_dir)
    if not raw_dir.is_dir():
        raise BuildError(f"raw data directory not found: {raw_dir}; pass it with --raw (e.g. ../shared/data)")
    if catalog is None:
        try:
            catalog = catalog_for(out_dir)
        except CatalogError as e:
            raise BuildError(str(e)) from None
    out_dir.mkdir(parents=True, exist_ok=True)
    series = {}
    for s in catalog.values():
        if progress:
            progress(s.name)
        series[s.name] = build_series(s, raw_dir, out_dir)
    # Stale files go only once every series is rebuilt: a failed build leaves the old bundle.
    for old in (out_dir / "series").glob("*.parquet"):
        if old.stem not in series:
            old.unlink()
    static, static_sources = _build_static(raw_dir)
    used = {src["file"] for e in series.values() for src in e["sources"]} | {s["file"] for s in static_sources}
    manifest = {
        "format": 1,
        "clock": "hourly UTC; a row is used from the first tick >= its availability time",
        "series": series,
        "static_sources": static_sources,
        "raw_files_not_bundled": _unused(raw_dir, used),
    }
    (out_dir / "static.json").write_text(json.dumps(static, indent=1) + "\n")
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    (out_dir / "README.md").write_text(_readme(manifest, out_dir))
    return manifest


# -- README -----------------------------------------------------------------------
README_HEAD = """\
# Bundled market data

Generated by `trimtab data build --raw ../shared/data --out data` (or `make data`;
`src/trimtab/data/build.py`, catalog in `src/trimtab/data/catalog.yaml`) from the raw
files of `shared/data` (see its README.md). Do not edit by hand: rebuild.
Loader: `trimtab.data.feed.load_market_data()`.

* `series/<name>.parquet`: one file per series: `ts` (observation time as in the raw file,
  UTC), `avail` (when it could first be known), float64 value columns; zstd.
* `manifest.json`: per series the source file and its sha256, rows kept and dropped by
  reason, first/last availability, the gaps found, the clock policy, and notes.
* `static.json`: `aave_risk_params`, `cex_margin`, `gas_units`, `execution_costs_bps`,
  `etherfi_rewards`, each with a `sources` note.

## Clock and availability (no look-ahead)

The loader puts everything on one hourly UTC clock. A row is used from the first tick
at or after its availability time:

| rule | series | available at |
|---|---|---|
| `bar_close` | perp.\\*, spot.\\*, dex.\\* (1h OHLCV, stamped with the bar OPEN) | open + 1h (the close) |
| `at_timestamp` | funding.\\*, oracle.\\*, aave.\\* | the timestamp (funding settlement, daily snapshot) |
| `end_of_day` | staking.\\*, benchmark.susde (daily figures computed from the whole UTC day) | next midnight |
| `block_time` | gas.ethereum | max(hour label, block_timestamp) (the block is up to 11 min after the label) |

Fill: value at a tick = the latest available row (as-of), NaN before the first one;
never zero-filled. Funding is an event: the rate appears only at its 00/08/16 UTC tick,
NaN elsewhere. `age_hours(series)` gives the hours since the latest available row;
`gaps(series)` lists holes longer than 2x the native interval.

## Interpolation conventions

* **Aave oracle files are daily, not hourly.** The raw oracle files have hourly rows,
  but between midnight samples the prices are an exact straight line to the NEXT
  midnight (the build verifies it: see `interpolation_check` in the manifest). Using
  them would leak the next day's price (on 2024-08-05 the raw "hourly" WETH oracle glides
  from 2683 to 2418 while the Binance perp closed at 2317 by 02:00 and touched 2112). Only the midnight
  samples are kept (`interpolated_between_daily_samples` in the drop counts), held as-of:
  the oracle is a daily step and its age reaches 23h within a day. The LST/ETH rates
  (weETH_ETH, wstETH_ETH) are ratios of those interpolations and are treated the same.
  For intraday ETH moves use the CEX/DEX bars.
* **Aave reserve indices** (`aave.*.liquidity_index`, `variable_borrow_index`) are put on
  the hourly clock by geometric interpolation between daily samples,
  `idx(t) = idx_a^(1-w) * idx_b^w`, `w = (t - t_a)/(t_b - t_a)`. Not look-ahead: the index
  accrues continuously on-chain and its value at t was readable at t; the daily file only
  samples it. After the last sample the value is held (not extrapolated) and `age_hours`
  shows it stale; the age is always the hours since the previous daily sample, so a
  missing day shows. The rate columns are as-of. For weETH/wstETH the `*_hourly.csv`
  files are used; they are themselves the source's (linear) interpolation of the daily
  snapshots (`aave_hourly_interpolated`), so only their midnight rows are kept and the
  same convention applies to all four reserves (linear and geometric differ by < 4e-9
  relative within a day).
* Units are as in the source: prices in the quote currency, volume in the venue's unit
  (OKX: contracts), rates/APR/APY as decimals, gas in gwei.
"""


def _readme(manifest: dict, out_dir: Path) -> str:
    lines = [README_HEAD, "## Series\n",
             "| series | fields | native interval | rows | available from .. to | dropped | gaps > 2x interval |",
             "|---|---|---|---|---|---|---|"]
    for n, e in manifest["series"].items():
        dropped = ", ".join(f"{k} {v}" for k, v in e["rows_dropped"].items()) or "-"
        lines.append(f"| `{n}` | {', '.join(e['columns'])} | {e['interval_h']:g}h | {e['rows_kept']} | "
                     f"{e['first_available']} .. {e['last_available']} | {dropped} | {len(e['gaps'])} |")
    lines += ["", "## Known gaps\n", "Holes between consecutive observations longer than 2x the native interval "
              "(availability times; `start` = last row before the hole, `end` = first after).\n",
              "| series | start | end | hours |", "|---|---|---|---|"]
    for n, e in manifest["series"].items():
        for g in e["gaps"]:
            lines.append(f"| `{n}` | {g['start']} | {g['end']} | {g['hours']:g} |")
    lines += ["", "## Notes per series\n"]
    for n, e in manifest["series"].items():
        lines.append(f"* `{n}`: {e['note']}" + "".join(f" {x}." for x in e["notes"]))
    lines += ["", "## Raw data oddities\n",
              "* Binance 1h files (ETH perp, BTC perp, BTC spot) miss the same 15 days (23 bars each, "
              "every ~41 days); Bybit files have a duplicated midnight bar on those same days (dropped).",
              "* OKX ETH perp bars stop on 2024-08-31 15:00 and 2025-03-31 15:00 for a month each (source outage): "
              "a venue whose data is stale must not be traded on (check `age_hours`).",
              "* OKX funding (ETH and BTC): no events 2024-08-01 .. 2024-08-31, single days without events (see the "
              "gaps), and 2025-03-29 .. 2025-06-09 every event appears twice with two different rates (one of them "
              "often exactly 0.0001): both dropped, so that period is a gap.",
              "* File names do not give the real span: the OKX 1h perp file ('..._2025-09-18') ends 2025-08-31; the "
              "oracle and Aave files ('..._2025-09-18') run to 2025-09-29. The hourly oracle/Aave files start at 01:00 "
              "on their first day, so their first midnight sample is the next day.",
              "* `staking.wstETH`: rows are out of order; its APR was computed by the source between rows in FILE "
              "order and with a daily average ETH price, so it is noise (about half negative, up to 10): do not use "
              "it as a yield; the wstETH/ETH oracle rate is the staking accrual.",
              "* `benchmark.susde` misses 2024-05-02.",
              "* CEX margin files are identical for the three venues with maintenance margin > initial margin.",
              "", "## Raw files not bundled\n"]
    for u in manifest["raw_files_not_bundled"]:
        lines.append(f"* `{u['file']}`: {u['reason']}")
    size = sum(p.stat().st_size for p in out_dir.rglob("*.parquet")) + sum(
        (out_dir / f).stat().st_size for f in ("static.json", "manifest.json") if (out_dir / f).exists())
    lines += ["", f"Bundle size (parquet + json): {size / 1e6:.1f} MB.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI: ``--raw DIR --out DIR``; prints one line per series; exit 1 on a BuildError."""
    ap = argparse.ArgumentParser(prog="build_data", description="Build trimtab's bundled market data.")
    ap.add_argument("--raw", type=Path, required=True, help="raw data dir (e.g. ../shared/data)")
    ap.add_argument("--out", type=Path, required=True, help="output dir (e.g. data)")
    args = ap.parse_args(argv)
    try:
        m = build(args.raw, args.out)
    except BuildError as e:
        print(f"build_data: error: {e}", file=sys.stderr)
        return 1
    for n, e in m["series"].items():
        drop = ", ".join(f"{k}={v}" for k, v in e["rows_dropped"].items())
        print(f"{n:28s} rows={e['rows_kept']:6d} gaps={len(e['gaps']):3d} {drop}")
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out} ({size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
