"""A user's own series into a data directory: ``trimtab data import SERIES FILE...``.

:func:`import_series` copies the user's CSV/parquet files into ``<data>/raw/<series>/``,
declares the series in ``<data>/catalog.yaml`` (:mod:`trimtab.data.catalog`; relative globs
resolve against the data directory, so ``trimtab data build`` rebuilds it too), builds
``<data>/series/<series>.parquet`` through the same code as the bundle
(:func:`trimtab.data.build.build_series`: timestamps parsed, NaN/unparsable rows, non-positive
prices and duplicates dropped and counted, never zero-filled) and adds its entry to
``<data>/manifest.json``, so a config can name ``<series>.<column>`` at once.

Files written are replaced atomically (temp file + rename); a failed import leaves the data
directory as it was.
"""
from __future__ import annotations

import glob as globlib
import io
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap

from .build import BuildError, build_series, read_raw
from .catalog import BY_NAME, OHLCV, USER_CATALOG, SeriesSpec, load_catalog, parse_interval

__all__ = ["DataImportError", "ImportResult", "import_series", "parse_columns", "write_manifest_entry"]

_NAME = re.compile(r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+$")
#: Kind -> (clock, fill, positive columns) used when the command line does not say.
KIND_DEFAULTS = {
    "bar": ("bar_close", "asof", ("open", "high", "low", "close")),
    "event": ("at_timestamp", "event", ()),
    "point": ("at_timestamp", "asof", ()),
    "daily": ("at_timestamp", "asof", ()),
    "rate": ("end_of_day", "asof", ()),
}
USER_CATALOG_HEAD = """\
# Series of this data directory, merged over trimtab's shipped catalog
# (src/trimtab/data/catalog.yaml documents every field). Written by `trimtab data import`;
# relative `files:` globs resolve against this directory.
"""


class DataImportError(BuildError):
    """An import that cannot be done: bad series name, missing file or column, no usable row."""


@dataclass
class ImportResult:
    """What an import did: the series' manifest ``entry`` (rows kept, dropped by reason, first
    and last availability, gaps), the ``files`` copied, and the ``catalog`` file written."""

    series: str
    entry: dict
    files: list[Path]
    catalog: Path


def parse_columns(text: str | None) -> dict[str, str] | None:
    """``"close=price,volume=qty"`` -> ``{"close": "price", "volume": "qty"}`` (output=raw).

    Raises:
        DataImportError: an item is not ``out=raw``.
    """
    if not text:
        return None
    out: dict[str, str] = {}
    for item in text.split(","):
        out_col, sep, raw = item.strip().partition("=")
        if not sep or not out_col.strip() or not raw.strip():
            raise DataImportError(f"--columns item {item.strip()!r} is not out=raw (e.g. close=price)")
        out[out_col.strip()] = raw.strip()
    return out


def _default_columns(kind: str, header: list[str]) -> dict[str, str]:
    if kind == "bar":
        missing = [c for c in OHLCV[:4] if c not in header]
        if missing:
            raise DataImportError(f"a bar series needs open, high, low, close columns; the file lacks {missing} "
                               f"(has {header}); map them with --columns close=<raw>,...")
        return {c: c for c in OHLCV if c in header}
    if kind == "event" and "funding_rate" in header:
        return {"rate": "funding_rate"}
    raise DataImportError(f"say which columns to read with --columns out=raw,... (the file has {header})")


#: Time column names tried, in order, when --time-column is not given.
TIME_COLUMNS = ("timestamp", "funding_timestamp", "time", "datetime", "date", "open_time")


def _time_column(header: list[str]) -> str:
    found = next((c for c in TIME_COLUMNS if c in header), None)
    if found is None:
        raise DataImportError(f"no time column among {list(TIME_COLUMNS)} in the file (has {header}); "
                              "name it with --time-column")
    return found


def _atomic_write(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_manifest_entry(data_dir: Path, name: str, entry: dict) -> None:
    """Set ``manifest.json``'s entry for ``name`` (a new manifest if there is none).

    Raises:
        DataImportError: the existing manifest is not a JSON object with a ``series`` object.
    """
    mpath = data_dir / "manifest.json"
    if mpath.exists():
        try:
            manifest = json.loads(mpath.read_text(encoding="utf-8"))
        except (ValueError, OSError) as e:
            raise DataImportError(f"{mpath}: not valid JSON ({e}); rebuild it with `trimtab data build`") from None
        if not isinstance(manifest, dict) or not isinstance(manifest.get("series"), dict):
            raise DataImportError(f"{mpath}: not a bundle manifest (no 'series' object)")
    else:
        manifest = {"format": 1, "clock": "hourly UTC; a row is used from the first tick >= its availability time",
                    "series": {}}
    manifest["series"][name] = entry
    _atomic_write(mpath, json.dumps(manifest, indent=1) + "\n")


def _write_catalog_entry(path: Path, spec: SeriesSpec, files: list[str]) -> None:
    yaml = YAML(typ="rt")
    yaml.width = 120
    if path.exists():
        load_catalog(path)            # refuse to edit an invalid file (CatalogError names the spot)
        doc = yaml.load(path.read_text(encoding="utf-8")) or CommentedMap()
    else:
        doc = yaml.load(USER_CATALOG_HEAD + "format: 1\nseries: {}\n")
    if doc.get("series") is None:
        doc["series"] = CommentedMap()
    entry = CommentedMap()
    entry["files"] = files
    entry["kind"] = spec.kind
    entry["interval"] = f"{spec.interval_h:g}h"
    entry["clock"] = spec.availability
    if spec.time_col != "timestamp":
        entry["time_column"] = spec.time_col
    entry["columns"] = dict(spec.columns)
    if spec.fill != "asof":
        entry["fill"] = spec.fill
    if spec.positive:
        entry["positive"] = list(spec.positive)
    if spec.exchange:
        entry["exchange"] = {k: v for k, v in vars(spec.exchange).items() if v is not None}
    entry["note"] = spec.note
    doc["series"][spec.name] = entry
    buf = io.StringIO()
    yaml.dump(doc, buf)
    _atomic_write(path, buf.getvalue())


def import_series(data_dir: str | Path, name: str, files: list[str | Path], *, columns: dict[str, str] | None = None,
                  clock: str | None = None, kind: str | None = None, interval: str | None = None,
                  time_column: str | None = None, note: str | None = None) -> ImportResult:
    """Import ``files`` as series ``name`` into ``data_dir`` (see the module docstring).

    Args:
        columns: output column -> raw column (default: OHLCV for a bar, ``rate: funding_rate``
            for an event); clock/kind/interval/time_column: the catalog's rules (defaults by
            kind, :data:`KIND_DEFAULTS`; ``bar``, ``1h``, ``timestamp``). Re-importing a series
            adds the files after its earlier ones (a later file wins on a shared timestamp) and
            keeps the settings not given again.

    Raises:
        DataImportError: a bad name, a bundled series' name, a missing file or column, no row left.
        CatalogError: the data directory's catalog.yaml is invalid.
    """
    d = Path(data_dir)
    if not _NAME.match(name):
        raise DataImportError(f"series name {name!r} must be dotted words, e.g. perp.myvenue.SOLUSDT")
    if name in BY_NAME:
        raise DataImportError(f"{name} is a bundled series; import under a new name (e.g. {name.split('.')[0]}.myvenue."
                           f"{name.split('.')[-1]}), or fetch newer rows with `trimtab data fetch {name}`")
    paths = [Path(f) for f in files]
    for p in paths:
        if not p.is_file():
            raise DataImportError(f"file not found: {p}")
    if not d.is_dir():
        raise DataImportError(f"data directory {d} does not exist; create it or pass --data DIR")
    cat_path = d / USER_CATALOG
    previous = load_catalog(cat_path, base=d).get(name) if cat_path.exists() else None

    header = list(read_raw(paths[0])[0].columns)
    kind = kind or (previous.kind if previous else "bar")
    if kind not in KIND_DEFAULTS:
        raise DataImportError(f"--kind {kind!r} is not one of {', '.join(KIND_DEFAULTS)}")
    dclock, dfill, dpos = KIND_DEFAULTS[kind]
    cols = columns or (dict(previous.columns) if previous else _default_columns(kind, header))
    try:
        interval_h = parse_interval(interval) if interval else (previous.interval_h if previous else 1.0)
    except ValueError as e:
        raise DataImportError(f"--interval: {e}") from None
    spec = SeriesSpec(
        name=name, files=(), kind=kind, columns=cols, interval_h=interval_h,
        time_col=time_column or (previous.time_col if previous else _time_column(header)),
        availability=clock or (previous.availability if previous else dclock),
        fill=dfill,
        positive=tuple(c for c in dpos if c in cols),
        note=note if note is not None else (previous.note if previous else f"imported with `trimtab data import` "
                                                                            f"from {', '.join(p.name for p in paths)}"),
        exchange=previous.exchange if previous else None, base=str(d))
    if spec.availability not in ("bar_close", "at_timestamp", "end_of_day", "block_time"):
        raise DataImportError(f"--clock {spec.availability!r} is not one of bar_close, at_timestamp, end_of_day, block_time")

    for p in paths:      # every file of a series is read with one time column and column map
        have = list(read_raw(p)[0].columns)
        lacking = [c for c in (spec.time_col, *spec.columns.values()) if c not in have]
        if lacking:
            raise DataImportError(f"{p} lacks columns {lacking} (has {have}); name them with --time-column / "
                                  "--columns out=raw,... (all files of a series share them)")

    raw_rel = Path("raw") / name
    old_files = [f for f in (previous.files if previous else ()) if Path(f).parent == raw_rel]
    new_rel = [(raw_rel / p.name).as_posix() for p in paths]
    rel_globs = [globlib.escape(f) for f in [*(f for f in old_files if globlib.escape(f) not in
                                             [globlib.escape(n) for n in new_rel]), *new_rel]]
    with tempfile.TemporaryDirectory(dir=d, prefix=".import-") as tmp:
        # Everything is built in a scratch copy first: a refused import changes nothing.
        stage = Path(tmp)
        for f in old_files:
            src = d / f
            if src.is_file():
                (stage / f).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, stage / f)
        for p, rel in zip(paths, new_rel):
            (stage / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, stage / rel)
        staged = replace(spec, files=tuple(rel_globs), base=str(stage))
        entry = build_series(staged, stage, stage)
        if entry["rows_kept"] == 0:
            raise DataImportError(f"{name}: no usable row in {', '.join(map(str, paths))} (dropped: {entry['rows_dropped']}); "
                               f"check --time-column ({spec.time_col}) and --columns")
        (d / "series").mkdir(exist_ok=True)
        (d / raw_rel).mkdir(parents=True, exist_ok=True)
        for rel in new_rel:
            shutil.copy2(stage / rel, d / rel)
        os.replace(stage / "series" / f"{name}.parquet", d / "series" / f"{name}.parquet")
    _write_catalog_entry(cat_path, spec, rel_globs)
    write_manifest_entry(d, name, entry)
    return ImportResult(name, entry, [d / r for r in new_rel], cat_path)
