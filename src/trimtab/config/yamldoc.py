"""Positioned YAML loading: plain data plus the 1-based (line, col) of every key and value.

``load_yaml`` parses a file into ruamel.yaml's round-trip node tree, records the position of
every key and value in a side table keyed by path (:class:`YamlDoc`), and hands back plain Python
data (dict/list/str/int/float/bool/None, key order kept). The tree comes from libyaml's C parser
when :mod:`trimtab.data.yamlfast` can vouch that it equals ruamel's (a plain file: no tags,
directives, odd characters or problems), else from ruamel's own parser, which then reports any
problem; values, positions and messages are ruamel's either way. Files are possibly hostile:
size, nesting depth and alias expansion are bounded (:data:`MAX_BYTES`, :data:`MAX_DEPTH`,
:data:`MAX_VALUES`) before the parser spends time or memory on them. One parse serves the bounds
and the node tree.

Problems that make a file unreadable (missing file, not UTF-8, YAML syntax, duplicate keys,
unsupported tags, a non-mapping top level) raise :class:`~trimtab.errors.ConfigError` with every
one of them as a :class:`~trimtab.diagnostics.Diagnostic`, where the parser allows more than one.
Schema validation of the loaded data is :mod:`trimtab.config.pydantic_errors`.
"""
from __future__ import annotations

import dataclasses
import datetime as _dt
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.composer import Composer
from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, ScalarEvent
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.parser import RoundTripParser

from ..diagnostics import Diagnostic, Path as Path_, Severity
from ..errors import ConfigError
from ..data import yamlfast
from .wording import show

__all__ = ["MAX_BYTES", "MAX_DEPTH", "MAX_VALUES", "Path_", "YamlDoc", "load_yaml", "load_yaml_text"]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_NULL_TAG = "tag:yaml.org,2002:null"
_STR_TAG = "tag:yaml.org,2002:str"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STD_TAG_PREFIX = "tag:yaml.org,2002:"

# --------------------------------------------------------------------------
# documents
# --------------------------------------------------------------------------


@dataclasses.dataclass
class YamlDoc:
    """Plain data loaded from YAML plus the position of every key and value."""

    file: str
    data: Any
    _values: dict[Path_, tuple[int, int]] = dataclasses.field(default_factory=dict, repr=False)
    _keys: dict[Path_, tuple[int, int]] = dataclasses.field(default_factory=dict, repr=False)

    @staticmethod
    def _norm(path: Iterable[str | int]) -> Path_:
        return tuple(path)

    def _find(self, table: dict[Path_, tuple[int, int]], path: Path_) -> tuple[int, int] | None:
        if path in table:
            return table[path]
        alt = tuple(str(p) if isinstance(p, int) and not isinstance(p, bool) else p for p in path)
        return table.get(alt)

    def locate(self, path: Path_) -> tuple[int, int]:
        """1-based (line, col) of the value at ``path``; if it does not exist,
        of the nearest existing ancestor."""
        path = self._norm(path)
        for n in range(len(path), -1, -1):
            pos = self._find(self._values, path[:n])
            if pos is not None:
                return pos
        return (1, 1)

    def locate_key(self, path: Path_) -> tuple[int, int]:
        """1-based (line, col) of the mapping key at ``path`` (falls back to :meth:`locate`)."""
        path = self._norm(path)
        pos = self._find(self._keys, path)
        return pos if pos is not None else self.locate(path)

    def has(self, path: Path_) -> bool:
        """Whether ``path`` exists in the document."""
        return self._find(self._values, self._norm(path)) is not None

    def get(self, path: Path_, default: Any = None) -> Any:
        """The plain value at ``path`` or ``default``."""
        return _dig(self.data, self._norm(path), default)

    def issue(
        self, path: Path_, message: str, key: bool = False, severity: Severity = Severity.ERROR,
        hint: str | None = None, code: str = "config",
    ) -> Diagnostic:
        """A :class:`~trimtab.diagnostics.Diagnostic` located at ``path`` (its key when
        ``key=True``)."""
        path = self._norm(path)
        line, col = self.locate_key(path) if key else self.locate(path)
        return Diagnostic(self.file, line, col, path, message, code, severity, hint)


def _dig(data: Any, path: Path_, default: Any = None) -> Any:
    cur = data
    for p in path:
        if isinstance(cur, Mapping):
            if p in cur:
                cur = cur[p]
            elif str(p) in cur:
                cur = cur[str(p)]
            else:
                return default
        elif isinstance(cur, list) and isinstance(p, int) and not isinstance(p, bool):
            if -len(cur) <= p < len(cur):
                cur = cur[p]
            else:
                return default
        else:
            return default
    return cur


# --------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------

_SYNTAX_HINTS = (
    ("found character '\\t'", "YAML indentation must use spaces, not tabs"),
    ("mapping values are not allowed here", "check the indentation, or quote a value that contains ': '"),
    ("could not find expected ':'", "a key needs ': ' after it; check for a missing colon or a stray line"),
    ("expected <block end>", "check the indentation of this line against the lines above it"),
    ("found undefined alias", "define the anchor (&name) before using the alias (*name)"),
    ("expected a single document", "a config file holds one YAML document; remove the extra '---'"),
    ("found unexpected end of stream", "a quoted string or bracket is not closed"),
)


def _mark_pos(mark: Any) -> tuple[int, int]:
    return (mark.line + 1, mark.column + 1)


def _syntax_issue(exc: YAMLError, file: str, text: str) -> Diagnostic:
    line, col, hint = 1, 1, None
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        if mark is not None:
            line, col = _mark_pos(mark)
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        if problem.startswith("but "):
            problem = problem[4:]
        msg = f"YAML syntax error: {problem}"
        if exc.problem and exc.context and exc.context_mark is not None:
            cl, cc = _mark_pos(exc.context_mark)
            msg += f" ({exc.context.strip()} started at line {cl}, column {cc})"
        hint = next((h for needle, h in _SYNTAX_HINTS if needle in msg), None)
    else:
        position = getattr(exc, "position", None)  # ReaderError
        if isinstance(position, int):
            before = text[:position]
            line = before.count("\n") + 1
            col = position - (before.rfind("\n") + 1) + 1
        msg = f"YAML syntax error: {str(exc).strip().splitlines()[0] if str(exc).strip() else 'invalid YAML'}"
        if getattr(exc, "reason", None):
            msg = f"YAML syntax error: {exc.reason}"  # type: ignore[attr-defined]
    return Diagnostic(file, line, col, (), msg, hint=hint)


class _Builder:
    """Turns a composed ruamel node tree into plain data plus a position table."""

    def __init__(self, file: str):
        self.file = file
        self.values: dict[Path_, tuple[int, int]] = {}
        self.keys: dict[Path_, tuple[int, int]] = {}
        self.issues: list[Diagnostic] = []
        self._active: set[int] = set()
        self._scalar_loader = YAML(typ="safe", pure=True)

    def _issue(self, pos: tuple[int, int], path: Path_, message: str, hint: str | None = None) -> None:
        self.issues.append(Diagnostic(self.file, pos[0], pos[1], path, message, hint=hint))

    def build(self, node: Node, path: Path_, pos: tuple[int, int] | None = None) -> Any:
        pos = pos or _mark_pos(node.start_mark)
        self.values[path] = pos
        if id(node) in self._active:
            self._issue(pos, path, "recursive alias: this value refers to itself", "remove the alias")
            return None
        tag = node.tag or ""   # a str, made anew by ruamel's property on every read: read once
        if isinstance(node, MappingNode):
            if tag != _MAP_TAG:
                self._issue(pos, path, f"unsupported YAML tag '{tag}'",
                            "remove the tag and write a plain mapping")
            self._active.add(id(node))
            try:
                return self._mapping(node, path)
            finally:
                self._active.discard(id(node))
        if isinstance(node, SequenceNode):
            if tag != _SEQ_TAG:
                self._issue(pos, path, f"unsupported YAML tag '{tag}'",
                            "remove the tag and write a plain list")
            self._active.add(id(node))
            try:
                out = []
                for i, item in enumerate(node.value):
                    out.append(self.build(item, path + (i,)))
                return out
            finally:
                self._active.discard(id(node))
        return self._scalar(node, path, pos, tag)

    def _scalar(self, node: ScalarNode, path: Path_, pos: tuple[int, int], tag: str) -> Any:
        if tag == _STR_TAG:
            return node.value   # what the safe constructor makes of it (most of a config's scalars)
        if not tag.startswith(_STD_TAG_PREFIX):
            self._issue(pos, path, f"unsupported YAML tag '{tag}'",
                            "remove the tag and write a plain value")
            return node.value
        try:
            value = self._scalar_loader.constructor.construct_object(node, deep=True)
        except YAMLError as exc:
            problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
            self._issue(pos, path, f"cannot read value {node.value!r}: {problem}")
            return node.value
        return _plainify(value)

    def _mapping(self, node: MappingNode, path: Path_) -> dict[str, Any]:
        explicit: dict[str, Any] = {}
        seen: dict[str, tuple[int, int]] = {}
        merges: list[MappingNode] = []
        for key_node, value_node in node.value:
            kpos = _mark_pos(key_node.start_mark)
            if key_node.tag == _MERGE_TAG:
                merges.extend(self._merge_sources(value_node, path, kpos))
                continue
            if not isinstance(key_node, ScalarNode):
                self._issue(kpos, path, "mapping keys must be plain names, not lists or mappings")
                continue
            key = str(key_node.value)
            if key in seen:
                fl, fc = seen[key]
                self._issue(
                    kpos,
                    path + (key,),
                    f"duplicate key '{key}' (first defined at line {fl}, column {fc})",
                    "YAML keeps only one value, so remove or rename one of them",
                )
                continue
            seen[key] = kpos
            vpos = self._value_pos(value_node, key_node)
            self.keys[path + (key,)] = kpos
            explicit[key] = self.build(value_node, path + (key,), vpos)
        if not merges:
            return explicit
        # YAML merge keys: explicit keys win; earlier merge sources win over later ones.
        out: dict[str, Any] = {}
        for src in merges:
            for key_node, value_node in src.value:
                if not isinstance(key_node, ScalarNode) or str(key_node.tag) == _MERGE_TAG:
                    continue
                key = str(key_node.value)
                if key in out or key in explicit:
                    continue
                self.keys[path + (key,)] = _mark_pos(key_node.start_mark)
                out[key] = self.build(value_node, path + (key,), self._value_pos(value_node, key_node))
        out.update(explicit)
        return out

    def _merge_sources(self, value_node: Node, path: Path_, kpos: tuple[int, int]) -> list[MappingNode]:
        if isinstance(value_node, MappingNode):
            return [value_node]
        if isinstance(value_node, SequenceNode) and all(isinstance(n, MappingNode) for n in value_node.value):
            return list(value_node.value)
        self._issue(kpos, path, "'<<' (merge key) needs an alias to a mapping, e.g. '<<: *defaults'")
        return []

    @staticmethod
    def _value_pos(value_node: Node, key_node: Node) -> tuple[int, int] | None:
        # An empty value (``key:``) has its mark on the following token, often
        # the next line; point at the key instead.
        if isinstance(value_node, ScalarNode) and value_node.value == "" and value_node.tag == _NULL_TAG:
            return _mark_pos(key_node.start_mark)
        return None


def _plainify(value: Any) -> Any:
    if value is None or type(value) in (str, int, float, bool, bytes):
        return value
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int):
        # ruamel's ScalarBoolean is an int subclass
        if type(value).__name__ == "ScalarBoolean":
            return bool(value)
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, _dt.datetime):
        return _dt.datetime(
            value.year, value.month, value.day, value.hour, value.minute, value.second,
            value.microsecond, value.tzinfo,
        )
    if isinstance(value, _dt.date):
        return _dt.date(value.year, value.month, value.day)
    return value


# Bounds on what a YAML file may cost to read. trimtab's own files are a few KB, nest under 10
# levels and expand to a few thousand values; the bounds leave ample room while refusing a
# "billion laughs" file (aliases of aliases, exponential expansion) or a nesting bomb (the
# ruamel scanner is quadratic in flow depth and its composer is recursive) before they cost
# time or memory.
MAX_BYTES = 1_000_000
MAX_DEPTH = 64
MAX_VALUES = 100_000


def _pos_of(text: str, offset: int) -> tuple[int, int]:
    before = text[:offset]
    return before.count("\n") + 1, offset - (before.rfind("\n") + 1) + 1


def _flow_depth_issue(text: str, file: str) -> Diagnostic | None:
    """Refuse flow nesting (``[[[...`` / ``{{{...``) deeper than MAX_DEPTH before the scanner sees
    it. Brackets are counted outside comments only; quotes are ignored, so the count can only
    over-estimate by brackets written inside strings."""
    depth = 0
    for m in re.finditer(r"[\[\]{}]|(?:^|(?<=\s))#[^\n]*", text, re.M):
        ch = m.group()
        if ch in "[{":
            depth += 1
            if depth > MAX_DEPTH:
                line, col = _pos_of(text, m.start())
                return Diagnostic(file, line, col, (),
                                   f"YAML nested deeper than {MAX_DEPTH} levels", hint="flatten the structure")
        elif ch in "]}":
            depth = max(depth - 1, 0)
    return None


class _Bounds:
    """The MAX_DEPTH / MAX_VALUES bound, checked one parser event at a time, in stream order
    (no recursion, no values built): :meth:`see` returns the issue at the event that crosses
    the bound. Aliases count the values of their anchor, so an alias bomb is refused before
    anything expands it."""

    def __init__(self, file: str):
        self.file = file
        self.sizes: dict[str, int] = {}
        self.stack: list[list[Any]] = [[None, 0]]  # [anchor, values inside]
        self.total = 0

    def see(self, ev: Any) -> Diagnostic | None:
        """Check one ruamel parser event."""
        if isinstance(ev, CollectionStartEvent):
            kind = yamlfast.START
        elif isinstance(ev, CollectionEndEvent):
            kind = yamlfast.END
        elif isinstance(ev, ScalarEvent):
            kind = yamlfast.SCALAR
        elif isinstance(ev, AliasEvent):
            kind = yamlfast.ALIAS
        else:
            kind = None
        return self.step(kind, getattr(ev, "anchor", None), ev.start_mark)

    def step(self, kind: str | None, anchor: Any, mark: Any) -> Diagnostic | None:
        """Check one event given as its kind (:mod:`trimtab.data.yamlfast`'s ``start``,
        ``end``, ``scalar``, ``alias``; None for a stream or document event), anchor and start
        mark; shared by the ruamel parser and the libyaml fast path."""
        stack = self.stack
        if kind == yamlfast.START:
            stack.append([anchor, 1])
            self.total += 1
            if len(stack) - 1 > MAX_DEPTH:
                line, col = _mark_pos(mark)
                return Diagnostic(self.file, line, col, (),
                                   f"YAML nested deeper than {MAX_DEPTH} levels", hint="flatten the structure")
        elif kind == yamlfast.END:
            anchor, n = stack.pop()
            if anchor is not None:
                self.sizes[anchor] = n
            stack[-1][1] += n
        elif kind is not None:
            n = self.sizes.get(anchor, 1) if kind == yamlfast.ALIAS else 1
            if kind == yamlfast.SCALAR and anchor is not None:
                self.sizes[anchor] = 1
            stack[-1][1] += n
            self.total += n
        if self.total > MAX_VALUES:
            line, col = _mark_pos(mark)
            return Diagnostic(self.file, line, col, (),
                               f"YAML aliases expand this file to more than {MAX_VALUES:,} values "
                               "(an alias bomb?)", hint="write the values out or use fewer aliases")
        return None


class _OverBound(Exception):
    """Raised out of the composer by :class:`_BoundedParser` when an event crosses a bound."""

    def __init__(self, issue: Diagnostic):
        super().__init__(issue.message)
        self.issue = issue


class _BoundedParser(RoundTripParser):
    """ruamel's round-trip parser, checking every event the composer takes against
    :class:`_Bounds` before the composer sees it. One parse serves both the bounds and the node
    tree (the scanner is most of the cost of reading a config). ``parse_failed`` tells a parser or
    scanner error (the text is not YAML) from one the composer raises (an undefined alias, a
    second document)."""

    def __init__(self, loader: Any = None) -> None:
        super().__init__(loader)
        self.bounds: _Bounds | None = None
        self.parse_failed = False

    def check_event(self, *choices: Any) -> bool:
        try:
            return super().check_event(*choices)
        except YAMLError:
            self.parse_failed = True
            raise

    def peek_event(self) -> Any:
        try:
            return super().peek_event()
        except YAMLError:
            self.parse_failed = True
            raise

    def get_event(self) -> Any:
        try:
            ev = super().get_event()
        except YAMLError:
            self.parse_failed = True
            raise
        if self.bounds is not None and ev is not None:
            issue = self.bounds.see(ev)
            if issue is not None:
                raise _OverBound(issue)
        return ev

    def drain(self) -> None:
        """Parse (and check) the rest of the stream: raises the first parser error or bound
        issue after the composer stopped, which a whole-stream check would have met first."""
        while self.check_event():
            self.get_event()


class _DrainingComposer(Composer):
    """ruamel's composer; on an error of its own (an undefined alias, a second document) it
    first parses the rest of the stream, so problems come in the order of checking the whole
    stream before composing: a bound crossed or a syntax error anywhere in the text first."""

    def get_single_node(self) -> Any:
        try:
            return super().get_single_node()
        except YAMLError:
            parser = self.parser
            if isinstance(parser, _BoundedParser) and not parser.parse_failed:
                parser.drain()
            raise


def _compose_ruamel(text: str, file: str) -> Node | None:
    """ruamel's node tree of ``text`` (None for an empty stream), bounds checked event by event;
    raises :class:`ConfigError` with the located problem."""
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False  # duplicates are reported by _Builder
    yaml.Parser, yaml.Composer = _BoundedParser, _DrainingComposer
    try:
        yaml.parser.bounds = _Bounds(file)   # the parser compose() will use (ruamel caches it)
        return yaml.compose(text)
    except _OverBound as over:
        raise ConfigError([over.issue]) from None
    except YAMLError as exc:
        raise ConfigError([_syntax_issue(exc, file, text)]) from None
    except RecursionError:  # pragma: no cover - the bounds above should make this unreachable
        raise ConfigError([Diagnostic(file, 1, 1, (), "YAML nested too deeply to read",
                                      hint="flatten the structure")]) from None


def load_yaml_text(text: str, file: str = "<string>", *, fast: bool = True) -> YamlDoc:
    """Parse YAML text; raise :class:`ConfigError` listing every load problem.

    Hostile input is refused with a located issue before it costs time or memory: more than
    :data:`MAX_BYTES` characters, nesting deeper than :data:`MAX_DEPTH`, or aliases expanding
    to more than :data:`MAX_VALUES` values. ``RecursionError`` never escapes. ``fast=False``
    always parses with ruamel (the reference the libyaml path is tested against).
    """
    if len(text) > MAX_BYTES:
        raise ConfigError([Diagnostic(file, 1, 1, (),
                                       f"file is {len(text):,} characters; trimtab reads YAML files up to {MAX_BYTES:,}")])
    bound = _flow_depth_issue(text, file)
    if bound is not None:
        raise ConfigError([bound])
    root = None
    if fast:
        # libyaml first (C, ~20x faster); on anything but the plain case it vouches for, ruamel
        # parses and reports, so every message and position is ruamel's.
        bounds = _Bounds(file)
        root = yamlfast.compose(text, lambda kind, anchor, mark: bounds.step(kind, anchor, mark) is not None)
    if root is None:
        root = _compose_ruamel(text, file)
    if root is None:
        raise ConfigError([Diagnostic(file, 1, 1, (), "file is empty; expected a mapping of 'key: value' pairs")])

    builder = _Builder(file)
    try:
        data = builder.build(root, ())
    except RecursionError:  # pragma: no cover - bounded by MAX_DEPTH above
        raise ConfigError([Diagnostic(file, 1, 1, (), "YAML nested too deeply to read",
                                      hint="flatten the structure")]) from None
    if not isinstance(root, MappingNode):
        line, col = _mark_pos(root.start_mark)
        builder.issues.append(
            Diagnostic(
                file, line, col, (),
                f"the top level must be a mapping of 'key: value' pairs, got {show(data)}",
            )
        )
    if builder.issues:
        raise ConfigError(builder.issues)
    return YamlDoc(file=file, data=data, _values=builder.values, _keys=builder.keys)


# A process reads the same file more than once (``trimtab run`` asks whether the config is a
# portfolio, then a basket, then loads it; a compare or sweep loads every config's machine and
# rules per run): the parse of a text already read is reused. Keyed by the path as given (it is
# in every position) and the whole text, so an edited file is parsed anew; each caller gets its
# own copy of the data, so no caller sees another's changes. Small files only, a few entries.
_RECENT: dict[tuple[str, str], YamlDoc] = {}
_RECENT_MAX_FILES = 64
_RECENT_MAX_CHARS = 64_000
_RECENT_LOCK = threading.Lock()
_IMMUTABLE = (str, int, float, bool, type(None), bytes, _dt.date)   # datetime is a date


def _copy_plain(value: Any) -> Any:
    """A copy of loaded plain data (dicts and lists anew, immutable scalars shared); raises
    TypeError on any other type (not reused, see :data:`_RECENT`)."""
    t = type(value)
    if t is dict:
        return {k: _copy_plain(v) for k, v in value.items()}
    if t is list:
        return [_copy_plain(v) for v in value]
    if isinstance(value, _IMMUTABLE):
        return value
    raise TypeError(t.__name__)


def _copy_doc(doc: YamlDoc) -> YamlDoc:
    return YamlDoc(file=doc.file, data=_copy_plain(doc.data), _values=dict(doc._values), _keys=dict(doc._keys))


def load_yaml(path: str | Path) -> YamlDoc:
    """Read and parse a YAML file; raise :class:`ConfigError` on any load problem.

    ``YamlDoc.file`` is the path as given, so relative paths stay relative. A text this process
    has parsed before (the same path as given, the same content) is not parsed again: the result
    is a copy of the earlier one, equal to a fresh parse.
    """
    file = str(path)
    p = Path(path)
    try:
        if p.is_file() and p.stat().st_size > MAX_BYTES:
            raise ConfigError([Diagnostic(file, 1, 1, (), f"file is {p.stat().st_size:,} bytes; trimtab reads YAML "
                                                                 f"files up to {MAX_BYTES:,}")])
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError([Diagnostic(file, 1, 1, (), "file not found")]) from None
    except IsADirectoryError:
        raise ConfigError([Diagnostic(file, 1, 1, (), "is a directory, expected a YAML file")]) from None
    except OSError as exc:
        raise ConfigError([Diagnostic(file, 1, 1, (), f"cannot read file: {exc.strerror or exc}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise ConfigError(
            [Diagnostic(file, line, col, (), "file is not valid UTF-8 text", hint="save it as UTF-8")]
        ) from None
    key = (file, text)
    seen = _RECENT.get(key)
    if seen is not None:
        return _copy_doc(seen)
    doc = load_yaml_text(text, file)   # a file that does not load raises, and is read again next time
    if len(text) <= _RECENT_MAX_CHARS:
        try:
            kept = _copy_doc(doc)
        except TypeError:   # a value of another type (a YAML set, ...): parsed anew every time
            return doc
        with _RECENT_LOCK:   # a library caller may load files from several threads
            if len(_RECENT) >= _RECENT_MAX_FILES:
                _RECENT.pop(next(iter(_RECENT)))   # the oldest
            _RECENT[key] = kept
    return doc

