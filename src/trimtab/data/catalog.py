"""The series catalog: every market series trimtab knows, and how its raw files are read.

The catalog is YAML, not code: ``src/trimtab/data/catalog.yaml`` ships with the package (the
bundled series, documented field by field in its header), and a data directory may carry its
own ``catalog.yaml`` in the same shape whose series are added to (or replace, by name) the
shipped ones (:func:`catalog_for`). ``trimtab data import`` writes such entries, so a new venue
or symbol needs no Python edit.

One :class:`SeriesSpec` per series. The names are the contract with the engine
(``perp.binance.ETHUSDT``, ``oracle.WETH_USD``, ...); a field is addressed as
``<series>.<column>`` (``perp.binance.ETHUSDT.close``). ``build.py`` turns the raw files into
``data/series/<name>.parquet``; ``feed.py`` puts them on one hourly UTC clock.

Availability rules (when a row may first be used, no look-ahead):

``bar_close``
    OHLCV bars are stamped with their OPEN time; a bar is known at its close,
    ``timestamp + interval``.
``at_timestamp``
    Point-in-time samples and events (funding at ``funding_timestamp``, Aave
    daily snapshots at ``targetDate``, oracle samples at their timestamp).
``end_of_day``
    Daily aggregates computed from the whole UTC day (staking APRs, sUSDe APY):
    known at the next midnight, ``date + 24 h``.
``block_time``
    Gas: the fee sample is read at ``block_timestamp``, which is up to ~11 min
    after the hourly label for some rows; available at ``max(label, block)``.

Sampling rule ``daily_samples``: the Aave oracle and the Aave ``*_hourly.csv``
files are NOT hourly observations. Between midnight samples the source filled
the hours by linear interpolation (checked by the build), so an hourly row
carries the NEXT day's value.
Only the midnight rows are kept as observations; the others are dropped with
reason ``interpolated_between_daily_samples``.

A catalog file is read as untrusted data: at most 1 MB, no aliases, anchors or tags, no
duplicate keys, every field checked (pydantic); each problem is reported as
``file:line:col: path: message`` in one :class:`CatalogError`. A valid file of plain values is
read by libyaml (:mod:`trimtab.data.yamlfast`, ~25x faster); anything else, and every error, by
ruamel's round-trip loader as before. The shipped catalog is read on first use (``CATALOG``,
``BY_NAME``, :func:`spec`, :func:`catalog_for`), not when this module is imported.
"""

# No `from __future__ import annotations`: pydantic reads these at import (templates/base.py).

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import pydantic
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent, CollectionStartEvent, ScalarEvent
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

from . import yamlfast
from ..diagnostics import Diagnostic
from ..errors import ConfigError

__all__ = ["CATALOG", "BY_NAME", "CATALOG_FILE", "CatalogError", "ExchangeSource", "SeriesSpec",
           "catalog_for", "load_catalog", "parse_interval", "spec"]

#: The shipped catalog (the bundled series).
CATALOG_FILE = Path(__file__).with_name("catalog.yaml")
#: File name of a data directory's own catalog additions.
USER_CATALOG = "catalog.yaml"
MAX_BYTES = 1_000_000

OHLCV = ("open", "high", "low", "close", "volume")


class CatalogError(ConfigError):
    """A catalog file that cannot be read or has invalid entries; one ``file:line:col`` line each."""


@dataclass(frozen=True)
class ExchangeSource:
    """Where ``trimtab data fetch`` downloads a series: a ccxt exchange ``id`` (``binanceusdm``),
    its unified ``symbol`` (``ETH/USDT:USDT``) and, where the exchange needs it, the ``market``
    category (``linear``, ``swap``, ``spot``)."""

    id: str
    symbol: str
    market: str | None = None


@dataclass(frozen=True)
class SeriesSpec:
    """How one series is found, cleaned and put on the hourly clock.

    Attributes:
        name: series name, the engine's key.
        files: raw file globs (relative to the raw data dir, or to ``base`` when set); every
            match is read; later files win on a shared timestamp.
        kind: ``bar`` (OHLCV), ``point`` (sampled level), ``event`` (funding),
            ``daily`` (daily point samples), ``rate`` (yield/APR level).
        columns: output column -> raw column (values are float64).
        interval_h: native interval in hours (gap threshold is a multiple of it).
        time_col: raw time column (ISO text or epoch seconds, auto-detected).
        availability: ``bar_close`` | ``at_timestamp`` | ``end_of_day`` | ``block_time``.
        fill: ``asof`` (forward fill of the latest available row) or ``event``
            (value only at the tick of the event, NaN elsewhere).
        geometric: columns put on the hourly clock by geometric interpolation
            between samples (accruing indices only), the rest as-of.
        sampling: ``all`` or ``daily_samples`` (keep midnight rows only).
        interp_check: ``linear`` | ``geometric`` | None: how the build verifies that
            the dropped non-midnight rows are interpolations of the kept ones.
        positive: columns that must be > 0 (rows failing it are dropped).
        note: where the data comes from and anything a user must know.
        exchange: the ccxt source ``trimtab data fetch`` uses, or None.
        base: directory relative globs of ``files`` resolve against (a data directory's own
            catalog: that directory); None for the raw data dir given to the build.
    """

    name: str
    files: tuple[str, ...]
    kind: str
    columns: dict[str, str]
    interval_h: float
    time_col: str = "timestamp"
    availability: str = "at_timestamp"
    fill: str = "asof"
    geometric: tuple[str, ...] = ()
    sampling: str = "all"
    interp_check: str | None = None
    positive: tuple[str, ...] = ()
    note: str = ""
    exchange: ExchangeSource | None = None
    base: str | None = None

    @property
    def glob(self) -> str:
        """The first raw file glob (the catalog had one glob per series before issue 16)."""
        return self.files[0]


# -- the file's schema ------------------------------------------------------------
_NAME = r"^[A-Za-z0-9_]+(\.[A-Za-z0-9_]+)+$"
_COLUMN = r"^[A-Za-z_][A-Za-z0-9_]*$"


def parse_interval(text: str) -> float:
    """Hours in an interval such as ``1h``, ``8h``, ``30m``, ``1d``.

    Raises:
        ValueError: not a positive ``<number><m|h|d>``.
    """
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([mhd])\s*", str(text))
    if not m or float(m.group(1)) <= 0:
        raise ValueError(f"interval {text!r} is not a positive <number><m|h|d>, e.g. 1h, 8h, 1d")
    return float(m.group(1)) * {"m": 1 / 60, "h": 1.0, "d": 24.0}[m.group(2)]


# The three models are built when the catalog is first parsed, as one validator (_File's), not
# each at import (trimtab.templates.base.Strict says why).
class _Exchange(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True, defer_build=True)
    id: str = pydantic.Field(pattern=r"^[a-z0-9]+$", description="ccxt exchange id, e.g. binanceusdm")
    symbol: str = pydantic.Field(min_length=1, description="ccxt unified symbol, e.g. ETH/USDT:USDT")
    market: str | None = None


class _Entry(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True, defer_build=True)
    files: list[str] = pydantic.Field(min_length=1)
    kind: Literal["bar", "point", "event", "daily", "rate"]
    interval: str
    clock: Literal["bar_close", "at_timestamp", "end_of_day", "block_time"]
    columns: dict[str, str] = pydantic.Field(min_length=1)
    time_column: str = "timestamp"
    fill: Literal["asof", "event"] = "asof"
    sampling: Literal["all", "daily_samples"] = "all"
    interpolation_check: Literal["linear", "geometric"] | None = None
    geometric: list[str] = []
    positive: list[str] = []
    exchange: _Exchange | None = None
    note: str = ""

    @pydantic.field_validator("interval")
    @classmethod
    def _interval(cls, v: str) -> str:
        parse_interval(v)
        return v

    @pydantic.field_validator("columns")
    @classmethod
    def _columns(cls, v: dict[str, str]) -> dict[str, str]:
        bad = [c for c in v if not re.match(_COLUMN, c)]
        if bad:
            raise ValueError(f"output column names must be identifiers (letters, digits, _): {bad}")
        return v

    @pydantic.model_validator(mode="after")
    def _known_columns(self) -> "_Entry":
        for what in ("geometric", "positive"):
            unknown = [c for c in getattr(self, what) if c not in self.columns]
            if unknown:
                raise ValueError(f"{what} names columns that are not in columns: {unknown}; "
                                 f"columns: {list(self.columns)}")
        return self


class _File(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True, defer_build=True)
    format: Literal[1] = 1
    series: dict[pydantic.constr(pattern=_NAME), _Entry] = {}


# -- positioned, bounded YAML -----------------------------------------------------------
def _pos(node: Any, loc: tuple, value: bool = True) -> tuple[int, int]:
    """1-based (line, col) of the deepest existing element on ``loc`` in a ruamel tree: the
    value's position when ``value`` (a bad value), else its key's (an unknown key)."""
    line, col = 0, 0
    for k, key in enumerate(loc):
        last = k == len(loc) - 1
        if isinstance(node, CommentedMap) and key in node:
            line, col = node.lc.value(key) if last and value and not isinstance(node[key], (dict, list)) \
                else node.lc.key(key)
            node = node[key]
        elif isinstance(node, CommentedSeq) and isinstance(key, int) and 0 <= key < len(node):
            line, col = node.lc.item(key)
            node = node[key]
        else:
            break
    return line + 1, col + 1


def _read(path: Path) -> tuple[Any, str]:
    file = str(path)

    def fail(msg: str, line: int = 1, col: int = 1, hint: str | None = None):
        raise CatalogError(Diagnostic(file, line, col, (), msg, hint=hint))

    try:
        raw = path.read_bytes()
    except OSError as e:
        fail(f"cannot read the catalog: {e.strerror or e}")
    if len(raw) > MAX_BYTES:
        fail(f"catalog file is {len(raw):,} bytes; at most {MAX_BYTES:,} are read")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[:e.start].count(b"\n") + 1
        fail(f"not UTF-8 at byte {e.start}", line)
    yaml = YAML(typ="rt")
    try:
        # Aliases and tags are refused before composing: a catalog needs neither, and an alias
        # bomb or a `!!python/object` tag never reaches the composer.
        for ev in yaml.parse(io.StringIO(text)):
            mark = getattr(ev, "start_mark", None)
            where = (mark.line + 1, mark.column + 1) if mark else (1, 1)
            if isinstance(ev, AliasEvent) or getattr(ev, "anchor", None):
                fail("YAML anchors and aliases are not allowed in a catalog", *where, hint="write each entry out")
            if isinstance(ev, (ScalarEvent, CollectionStartEvent)) and ev.tag:
                fail(f"YAML tag {ev.tag} is not allowed in a catalog (plain values only)", *where)
        data = yaml.load(text)
    except MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        fail(f"YAML: {e.problem or e.context}", line, col)
    except YAMLError as e:
        fail(f"YAML: {e}")
    if data is None:
        data = CommentedMap()
    if not isinstance(data, CommentedMap):
        fail("a catalog is a mapping with `format: 1` and `series:`")
    return data, file


def _plain(node: Any) -> Any:
    if isinstance(node, dict):
        return {str(k) if not isinstance(k, (int, float)) else k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


_INT = re.compile(r"-?[1-9][0-9]*")  # what ruamel's round-trip loader makes a plain int (not ScalarInt)
_STR, _NULL, _INT_TAG = "tag:yaml.org,2002:str", "tag:yaml.org,2002:null", "tag:yaml.org,2002:int"


class _NotPlain(Exception):
    """A catalog the fast path leaves to ruamel (see :func:`_parse_fast`)."""


def _plain_node(node: Any, depth: int = 0) -> Any:
    """The value ``_plain(YAML(typ="rt").load(text))`` gives for a libyaml-composed node, for the
    values a valid catalog holds (string keys; strings, nulls, decimal ints; maps, lists);
    anything else raises :class:`_NotPlain`."""
    if depth > 64:
        raise _NotPlain
    if isinstance(node, MappingNode):
        out: dict[str, Any] = {}
        for k, v in node.value:
            if not isinstance(k, ScalarNode) or k.tag != _STR or k.value in out:
                raise _NotPlain  # a merge key, a non-string key or a duplicate: ruamel decides
            out[k.value] = _plain_node(v, depth + 1)
        return out
    if isinstance(node, SequenceNode):
        return [_plain_node(v, depth + 1) for v in node.value]
    if node.tag == _STR and node.style != ">":  # ruamel keeps fold marks in a '>' scalar's node
        return node.value
    if node.tag == _NULL:
        return None
    if node.tag == _INT_TAG and _INT.fullmatch(node.value):
        return int(node.value)
    raise _NotPlain


def _parse_fast(path: Path) -> _File | None:
    """The validated catalog when libyaml reads it (:mod:`trimtab.config.yamlfast`) as plain
    data that passes the schema; None for anything else -- an unreadable file, a YAML problem, an
    alias, anchor or tag, a value outside :func:`_plain_node`, an invalid entry -- which the
    ruamel path then reads and reports with its positions."""
    try:
        raw = path.read_bytes()
        if len(raw) > MAX_BYTES:
            return None
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError):
        return None
    root = yamlfast.compose(text, lambda kind, anchor, mark: kind == yamlfast.ALIAS or anchor is not None)
    if not isinstance(root, MappingNode):
        return None
    try:
        return _File.model_validate(_plain_node(root))
    except (_NotPlain, pydantic.ValidationError):
        return None


def load_catalog(path: str | Path, base: str | Path | None = None, *, fast: bool = True) -> dict[str, SeriesSpec]:
    """The series of one catalog file, name -> :class:`SeriesSpec`, in file order.

    Args:
        path: a catalog YAML file.
        base: directory the entries' relative ``files`` globs resolve against (None: the raw
            data dir of the build).
        fast: try libyaml first (:func:`_parse_fast`); False reads with ruamel only (the
            reference the fast path is tested against). Results are the same either way.

    Raises:
        CatalogError: unreadable file, YAML error, alias/tag, unknown or invalid field; every
            problem as ``file:line:col: path: message``.
    """
    parsed = _parse_fast(Path(path)) if fast else None
    if parsed is None:
        parsed = _parse_ruamel(Path(path))
    out: dict[str, SeriesSpec] = {}
    for name, e in parsed.series.items():
        ex = e.exchange
        out[name] = SeriesSpec(
            name=name, files=tuple(e.files), kind=e.kind, columns=dict(e.columns),
            interval_h=parse_interval(e.interval), time_col=e.time_column, availability=e.clock,
            fill=e.fill, geometric=tuple(e.geometric), sampling=e.sampling,
            interp_check=e.interpolation_check, positive=tuple(e.positive), note=e.note,
            exchange=ExchangeSource(ex.id, ex.symbol, ex.market) if ex else None,
            base=str(base) if base is not None else None)
    return out


def _parse_ruamel(path: Path) -> _File:
    """The validated catalog read by ruamel's round-trip loader, every problem located
    (:class:`CatalogError`)."""
    tree, file = _read(path)
    try:
        parsed = _File.model_validate(_plain(tree))
    except pydantic.ValidationError as exc:
        issues = []
        for err in exc.errors(include_url=False):
            loc = tuple(err["loc"])
            line, col = _pos(tree, loc, value=err["type"] != "extra_forbidden")
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = f"unknown field {loc[-1]!r}"
            issues.append(Diagnostic(file, line, col, tuple(str(p) if not isinstance(p, int) else p for p in loc),
                                     msg, hint=_hint(err)))
        raise CatalogError(issues) from None
    return parsed


def _hint(err: dict) -> str | None:
    if err["type"] == "extra_forbidden":
        return f"allowed: {', '.join(_Entry.model_fields)}"
    return None


def catalog_for(data_dir: str | Path | None) -> dict[str, SeriesSpec]:
    """The shipped catalog with ``<data_dir>/catalog.yaml`` (when it exists) merged over it:
    its series are added, or replace a shipped series of the same name. Its relative globs
    resolve against ``data_dir``.

    Raises:
        CatalogError: either file is invalid.
    """
    merged = dict(_shipped())
    if data_dir is not None:
        user = Path(data_dir) / USER_CATALOG
        if user.is_file() and user.resolve() != CATALOG_FILE.resolve():
            merged.update(load_catalog(user, base=Path(data_dir)))
    return merged


_SHIPPED: dict[str, SeriesSpec] | None = None


def _shipped() -> dict[str, SeriesSpec]:
    # The shipped catalog is read on first use, not at import: most commands import this module
    # (through trimtab.config) without needing every series spec.
    global _SHIPPED
    if _SHIPPED is None:
        _SHIPPED = load_catalog(CATALOG_FILE)
    return _SHIPPED


def __getattr__(name: str) -> Any:
    """``CATALOG`` (tuple of :class:`SeriesSpec`, file order) and ``BY_NAME`` (name -> spec): the
    shipped catalog, read on first access (PEP 562) and then kept as module attributes."""
    if name == "BY_NAME":
        value: Any = _shipped()
    elif name == "CATALOG":
        value = tuple(_shipped().values())
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def spec(name: str) -> SeriesSpec:
    """Catalog entry for ``name``; ``KeyError`` if unknown."""
    return _shipped()[name]
