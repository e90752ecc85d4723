"""``trimtab data ...``: build, import, inspect and fetch the market data a run reads.

* ``trimtab data build [--raw DIR] [--out DIR]`` -- the bundle from the raw files, through the
  YAML catalog (:mod:`trimtab.data.build`; ``scripts/build_data.py`` is the same build);
* ``trimtab data import SERIES FILE...`` -- a user's CSV/parquet as a new series
  (:mod:`trimtab.data.importer`);
* ``trimtab data info [SERIES] [--json]`` -- every series: first/last availability, rows, gaps;
  a series the catalog declares without a file is ``MISSING``;
* ``trimtab data fetch SERIES... [--since] [--until]`` -- newer candles and funding through
  ccxt, appended to the series (:mod:`trimtab.data.fetch`).

Every command reads and writes the data directory in force: ``trimtab --data DIR`` (or
``TRIMTAB_DATA``), else the bundled ``data/``. Exit codes: 0 success; 1 a data or build error
(one line naming the file, series or flag and the fix).
"""
# No `from __future__ import annotations`: typer reads these at every start-up (cli/main.py).

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from .common import fail, json_default, out_console, parse_time

data_app = typer.Typer(help="Build, import, inspect and fetch market data (the data directory: --data DIR).",
                       no_args_is_help=True, add_completion=False)

#: Where `make data` and the build look for the raw files by default (a sibling checkout).
DEFAULT_RAW = Path(__file__).resolve().parents[3].parent / "shared" / "data"


def _data_dir() -> Path:
    from ..data.feed import data_dir

    return data_dir()


@data_app.command("build")
def build_command(
    raw: Path = typer.Option(DEFAULT_RAW, "--raw", help="Raw data directory (the files the catalog's `files:` globs name)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Output data directory (default: the data directory in force, --data)."),
) -> None:
    """Build the data bundle (series/*.parquet, manifest.json, static.json) from the raw files."""
    from ..data.build import BuildError, build

    target = out or _data_dir()
    if target.exists() and not target.is_dir():
        raise typer.BadParameter(f"{target} is a file; give a directory", param_hint="'--out'")
    try:
        m = build(raw, target)
    except BuildError as e:
        raise fail(str(e)) from None
    for n, e in m["series"].items():
        drop = ", ".join(f"{k}={v}" for k, v in e["rows_dropped"].items())
        print(f"{n:28s} rows={e['rows_kept']:6d} gaps={len(e['gaps']):3d} {drop}")
    size = sum(p.stat().st_size for p in target.rglob("*") if p.is_file())
    print(f"wrote {target} ({size / 1e6:.2f} MB)")


@data_app.command("import")
def import_command(
    series: str = typer.Argument(..., metavar="SERIES", help="New series name, e.g. perp.myvenue.SOLUSDT."),
    files: list[Path] = typer.Argument(..., metavar="FILE...", help="CSV or parquet files; later files win on a shared timestamp."),
    columns: Optional[str] = typer.Option(None, "--columns", help="Output=raw column map, e.g. close=price,volume=qty (default: OHLCV for a bar, rate=funding_rate for an event)."),
    clock: Optional[str] = typer.Option(None, "--clock", help="When a row is known: bar_close, at_timestamp, end_of_day, block_time (default by kind)."),
    kind: Optional[str] = typer.Option(None, "--kind", help="bar (default), event (funding), point, daily, rate."),
    interval: Optional[str] = typer.Option(None, "--interval", help="Native interval, e.g. 1h (default), 8h, 1d."),
    time_column: Optional[str] = typer.Option(None, "--time-column", help="Raw time column, epoch seconds or ISO-8601 (default: timestamp)."),
    as_json: bool = typer.Option(False, "--json", help="Print the series' manifest entry as one JSON object."),
) -> None:
    """Import your own CSV/parquet as a series of the data directory, usable by a config at once."""
    from ..data.build import BuildError
    from ..data.importer import import_series, parse_columns
    from ..errors import ConfigError

    d = _data_dir()
    try:
        res = import_series(d, series, [str(f) for f in files], columns=parse_columns(columns), clock=clock, kind=kind,
                            interval=interval, time_column=time_column)
    except BuildError as e:
        raise fail(str(e)) from None
    except ConfigError as e:   # the data directory's catalog.yaml is invalid
        raise fail(str(e)) from None
    e = res.entry
    if as_json:
        print(json.dumps(e, default=json_default))
        return
    dropped = ", ".join(f"{k} {v}" for k, v in e["rows_dropped"].items()) or "none"
    print(f"imported {series}: {e['rows_kept']} rows of {e['rows_raw']}, available {e['first_available']} -> "
          f"{e['last_available']}, {len(e['gaps'])} gaps; dropped: {dropped}")
    for n in e["notes"]:
        print(f"  note: {n}")
    print(f"  fields: {', '.join(f'{series}.{c}' for c in e['columns'])}")
    print(f"  wrote {d / e['file']}, {d / 'manifest.json'}, {res.catalog}")


@data_app.command("info")
def info_command(
    series: Optional[str] = typer.Argument(None, metavar="[SERIES]", help="One series (default: all)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object: {data_dir, series: [...]}."),
) -> None:
    """Every series of the data directory: first/last availability, rows, gaps; MISSING if the catalog declares it but it has no file."""
    from rich.table import Table

    from ..data.feed import DataError
    from ..data.inventory import inventory

    d = _data_dir()
    try:
        rows = inventory(d, series)
    except DataError as e:
        raise fail(str(e)) from None
    if as_json:
        print(json.dumps({"data_dir": str(d), "series": rows}, default=json_default))
        return
    t = Table(title=f"market data in {d}", box=None, header_style="bold")
    for c in ("series", "status", "first available", "last available", "rows", "gaps", "gap hours"):
        t.add_column(c, justify="right" if c in ("rows", "gaps", "gap hours") else "left")
    for r in rows:
        missing = r["status"] == "MISSING"
        t.add_row(r["series"], f"[red]{r['status']}[/]" if missing else r["status"], r["first_available"] or "-",
                  r["last_available"] or "-", "-" if missing else f"{r['rows']:,}",
                  "-" if missing else str(len(r["gaps"])), "-" if missing else f"{r['gap_hours']:,.0f}")
    out_console().print(t)
    if series:
        r = rows[0]
        if r["status"] == "MISSING":
            print(f"{series}: {r['reason']}")
        for g in r["gaps"]:
            print(f"  gap {g['start']} -> {g['end']} ({g['hours']:g}h)")
        for s in r.get("sources", []):
            print(f"  source {s['file']}")
    n_missing = sum(r["status"] == "MISSING" for r in rows)
    if n_missing:
        print(f"{n_missing} series missing: build them with `trimtab data build` or import them with `trimtab data import`")


@data_app.command("fetch")
def fetch_command(
    series: list[str] = typer.Argument(..., metavar="SERIES...", help="Series whose catalog entry names an exchange (see `trimtab data info`)."),
    since: Optional[str] = typer.Option(None, "--since", help="UTC start (default: the series' last row, so only newer rows are fetched)."),
    until: Optional[str] = typer.Option(None, "--until", help="UTC end (default: now)."),
) -> None:
    """Download newer candles / funding through ccxt and append them to the series (later rows win)."""
    from ..data.feed import DataError
    from ..data.fetch import fetch_series

    t0, t1 = parse_time(since, "since"), parse_time(until, "until")
    if t0 is not None and t1 is not None and t0 >= t1:
        raise typer.BadParameter(f"{t0:%Y-%m-%d %H:%M} is not before --until {t1:%Y-%m-%d %H:%M}", param_hint="'--since'")
    d = _data_dir()
    failed = 0
    for name in series:
        try:
            r = fetch_series(d, name, since=t0, until=t1)
        except DataError as e:
            failed += 1
            print(f"error: {' '.join(str(e).split())}", file=sys.stderr)
            continue
        print(f"{name}: fetched {r['fetched']} rows ({r['pages']} requests), {r['added']} new, {r['replaced']} replaced; "
              f"now {r['rows']} rows to {r['last_available']}")
    if failed:
        raise typer.Exit(1)


def global_options(
    data: Optional[Path] = typer.Option(
        None, "--data", metavar="DIR", help="Data directory for this command and the processes it starts "
        "(default: TRIMTAB_DATA, else the bundled data/). Made by `trimtab data build` / `trimtab data import`."),
) -> None:
    """Options every command takes (trimtab's app callback)."""
    if data is not None:
        from ..data.feed import DataError, set_data_dir

        try:
            set_data_dir(data)
        except DataError as e:
            raise typer.BadParameter(str(e), param_hint="'--data'") from None
