"""YAML loading with positions, and pydantic validation with readable errors.

``load_yaml`` parses a file with ruamel.yaml's round-trip parser, records the
1-based (line, col) of every key and value in a side table keyed by path, and
hands back plain Python data (dict/list/str/int/float/bool/None, key order
kept). ``validate`` runs a pydantic model over that data and turns every
validation error into a :class:`~trimtab.errors.ConfigIssue` that points at the
exact spot in the file::

    strategy.yaml:7:5: states.idle.trgger: unknown field 'trgger'; did you mean 'trigger'? allowed: action, trigger
    strategy.yaml:9:15: params.max_ltv: expected a number, got 'high'
    strategy.yaml:11:13: actions[0].kind: unknown kind 'swapp'; did you mean 'swap'? allowed: lend, swap
    strategy.yaml:14:5: actions[1]: missing required field 'venue'

Problems that make the file unreadable (missing file, YAML syntax, duplicate
keys, non-mapping top level) raise :class:`~trimtab.errors.ConfigError` from
``load_yaml`` with all of them at once where the parser allows it.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import difflib
import enum
import math
import re
import typing
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin

import pydantic
from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from trimtab.errors import ConfigError, ConfigIssue

try:  # Python 3.10+ ``X | Y`` unions
    from types import NoneType, UnionType
except ImportError:  # pragma: no cover
    NoneType = type(None)  # type: ignore[misc]
    UnionType = Union  # type: ignore[misc,assignment]

__all__ = [
    "Path_",
    "YamlDoc",
    "format_path",
    "load_yaml",
    "load_yaml_text",
    "pydantic_issues",
    "suggest",
    "validate",
]

Path_ = tuple[str | int, ...]

_MAP_TAG = "tag:yaml.org,2002:map"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_NULL_TAG = "tag:yaml.org,2002:null"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_STD_TAG_PREFIX = "tag:yaml.org,2002:"
_MISSING: Any = object()


# --------------------------------------------------------------------------
# paths and suggestions
# --------------------------------------------------------------------------

_PLAIN_KEY = re.compile(r"^[^.:\[\]\s\"']+$")


def format_path(path: Path_) -> str:
    """``("states", "idle", "action")`` -> ``states.idle.action``;
    ``("transitions", 2, "dest")`` -> ``transitions[2].dest``; ``()`` -> ``<root>``.

    Keys that contain dots, brackets, quotes or spaces are written ``["a.b"]``.
    """
    if not path:
        return "<root>"
    out: list[str] = []
    for part in path:
        if isinstance(part, int) and not isinstance(part, bool):
            out.append(f"[{part}]")
        else:
            s = str(part)
            if _PLAIN_KEY.match(s):
                out.append(("." if out else "") + s)
            else:
                out.append('["' + s.replace("\\", "\\\\").replace('"', '\\"') + '"]')
    return "".join(out)


def _closest(name: str, choices: Iterable[str]) -> str | None:
    choices = [str(c) for c in choices]
    if not choices:
        return None
    lowered = {c.lower(): c for c in choices}
    key = str(name).lower()
    if key in lowered and lowered[key] != name:
        return lowered[key]
    norm = {re.sub(r"[\s_-]", "", c.lower()): c for c in choices}
    nkey = re.sub(r"[\s_-]", "", key)
    if nkey in norm and norm[nkey] != name:
        return norm[nkey]
    match = difflib.get_close_matches(key, list(lowered), n=1, cutoff=0.6)
    if match and lowered[match[0]] != name:
        return lowered[match[0]]
    return None


def suggest(name: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest choice, or ``""``."""
    best = _closest(name, choices)
    return f" (did you mean '{best}'?)" if best is not None else ""


def _list(values: Iterable[Any], limit: int = 25) -> str:
    vals = [_plain_repr(v) for v in values]
    if len(vals) > limit:
        return ", ".join(vals[:limit]) + f", ... ({len(vals) - limit} more)"
    return ", ".join(vals)


def _with_choices(msg: str, name: Any, choices: list[str]) -> str:
    """Append "; did you mean 'x'? allowed: a, b" (each part only when known)."""
    best = _closest(str(name), choices) if isinstance(name, str) else None
    if best is not None:
        msg += f"; did you mean '{best}'?"
        if choices:
            msg += f" allowed: {_list(choices)}"
    elif choices:
        msg += f"; allowed: {_list(choices)}"
    return msg


def _plain_repr(v: Any) -> str:
    """A value as it would be written in YAML (no quotes around strings)."""
    if isinstance(v, enum.Enum):
        v = v.value
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _show(v: Any) -> str:
    """A user value inside a message: ``'abc'``, ``1.5``, ``true``, ``a list``."""
    if v is None:
        return "an empty value (null)"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        s = repr(v)
        return s if len(s) <= 30 else f"a {len(s)}-digit number"
    if isinstance(v, str):
        s = v if len(v) <= 60 else v[:57] + "..."
        return "'" + s.replace("\n", "\\n") + "'"
    if isinstance(v, Mapping):
        return "a mapping"
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, (_dt.datetime, _dt.date)):
        return f"a date ({v.isoformat()})"
    s = repr(v)
    return s if len(s) <= 60 else s[:57] + "..."


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
        self, path: Path_, message: str, key: bool = False, severity: str = "error"
    ) -> ConfigIssue:
        """A :class:`ConfigIssue` located at ``path`` (its key when ``key=True``)."""
        path = self._norm(path)
        line, col = self.locate_key(path) if key else self.locate(path)
        return ConfigIssue(self.file, line, col, format_path(path), message, severity)


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


def _syntax_issue(exc: YAMLError, file: str, text: str) -> ConfigIssue:
    line, col = 1, 1
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
        for needle, hint in _SYNTAX_HINTS:
            if needle in msg:
                msg += f"; {hint}"
                break
    else:
        position = getattr(exc, "position", None)  # ReaderError
        if isinstance(position, int):
            before = text[:position]
            line = before.count("\n") + 1
            col = position - (before.rfind("\n") + 1) + 1
        msg = f"YAML syntax error: {str(exc).strip().splitlines()[0] if str(exc).strip() else 'invalid YAML'}"
        if getattr(exc, "reason", None):
            msg = f"YAML syntax error: {exc.reason}"  # type: ignore[attr-defined]
    return ConfigIssue(file, line, col, "<root>", msg)


class _Builder:
    """Turns a composed ruamel node tree into plain data plus a position table."""

    def __init__(self, file: str):
        self.file = file
        self.values: dict[Path_, tuple[int, int]] = {}
        self.keys: dict[Path_, tuple[int, int]] = {}
        self.issues: list[ConfigIssue] = []
        self._active: set[int] = set()
        self._scalar_loader = YAML(typ="safe", pure=True)

    def _issue(self, pos: tuple[int, int], path: Path_, message: str) -> None:
        self.issues.append(ConfigIssue(self.file, pos[0], pos[1], format_path(path), message))

    def build(self, node: Node, path: Path_, pos: tuple[int, int] | None = None) -> Any:
        pos = pos or _mark_pos(node.start_mark)
        self.values[path] = pos
        if id(node) in self._active:
            self._issue(pos, path, "recursive alias: this value refers to itself; remove the alias")
            return None
        tag = str(node.tag) if node.tag is not None else ""
        if isinstance(node, MappingNode):
            if tag != _MAP_TAG:
                self._issue(pos, path, f"unsupported YAML tag '{tag}'; remove the tag and write a plain mapping")
            self._active.add(id(node))
            try:
                return self._mapping(node, path)
            finally:
                self._active.discard(id(node))
        if isinstance(node, SequenceNode):
            if tag != _SEQ_TAG:
                self._issue(pos, path, f"unsupported YAML tag '{tag}'; remove the tag and write a plain list")
            self._active.add(id(node))
            try:
                out = []
                for i, item in enumerate(node.value):
                    out.append(self.build(item, path + (i,)))
                return out
            finally:
                self._active.discard(id(node))
        return self._scalar(node, path, pos)

    def _scalar(self, node: ScalarNode, path: Path_, pos: tuple[int, int]) -> Any:
        tag = str(node.tag)
        if not tag.startswith(_STD_TAG_PREFIX):
            self._issue(pos, path, f"unsupported YAML tag '{tag}'; remove the tag and write a plain value")
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
            if str(key_node.tag) == _MERGE_TAG:
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
                    f"duplicate key '{key}' (first defined at line {fl}, column {fc}); "
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
        if isinstance(value_node, ScalarNode) and str(value_node.tag) == _NULL_TAG and value_node.value == "":
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


def _flow_depth_issue(text: str, file: str) -> ConfigIssue | None:
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
                return ConfigIssue(file, line, col, "<root>",
                                   f"YAML nested deeper than {MAX_DEPTH} levels; flatten the structure")
        elif ch in "]}":
            depth = max(depth - 1, 0)
    return None


def _expansion_issue(yaml: YAML, text: str, file: str) -> ConfigIssue | None:
    """One pass over the parser's events (no recursion, no values built): refuse nesting deeper
    than MAX_DEPTH and aliases that would expand the document past MAX_VALUES values, at the
    position of the event that crosses the bound."""
    from ruamel.yaml.events import (AliasEvent, CollectionEndEvent, CollectionStartEvent,
                                    ScalarEvent)

    sizes: dict[str, int] = {}
    stack: list[list[Any]] = [[None, 0]]  # [anchor, values inside]
    total = 0
    for ev in yaml.parse(text):
        if isinstance(ev, CollectionStartEvent):
            stack.append([ev.anchor, 1])
            total += 1
            if len(stack) - 1 > MAX_DEPTH:
                line, col = _mark_pos(ev.start_mark)
                return ConfigIssue(file, line, col, "<root>",
                                   f"YAML nested deeper than {MAX_DEPTH} levels; flatten the structure")
        elif isinstance(ev, CollectionEndEvent):
            anchor, n = stack.pop()
            if anchor is not None:
                sizes[anchor] = n
            stack[-1][1] += n
        elif isinstance(ev, (ScalarEvent, AliasEvent)):
            n = sizes.get(ev.anchor, 1) if isinstance(ev, AliasEvent) else 1
            if isinstance(ev, ScalarEvent) and ev.anchor is not None:
                sizes[ev.anchor] = 1
            stack[-1][1] += n
            total += n
        if total > MAX_VALUES:
            line, col = _mark_pos(ev.start_mark)
            return ConfigIssue(file, line, col, "<root>",
                               f"YAML aliases expand this file to more than {MAX_VALUES:,} values "
                               "(an alias bomb?); write the values out or use fewer aliases")
    return None


def load_yaml_text(text: str, file: str = "<string>") -> YamlDoc:
    """Parse YAML text; raise :class:`ConfigError` listing every load problem.

    Hostile input is refused with a located issue before it costs time or memory: more than
    :data:`MAX_BYTES` characters, nesting deeper than :data:`MAX_DEPTH`, or aliases expanding
    to more than :data:`MAX_VALUES` values. ``RecursionError`` never escapes.
    """
    if len(text) > MAX_BYTES:
        raise ConfigError([ConfigIssue(file, 1, 1, "<root>",
                                       f"file is {len(text):,} characters; trimtab reads YAML files up to {MAX_BYTES:,}")])
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False  # duplicates are reported by _Builder
    try:
        bound = _flow_depth_issue(text, file) or _expansion_issue(yaml, text, file)
        if bound is not None:
            raise ConfigError([bound])
        yaml = YAML(typ="rt")
        yaml.allow_duplicate_keys = False
        root = yaml.compose(text)
    except YAMLError as exc:
        raise ConfigError([_syntax_issue(exc, file, text)]) from None
    except RecursionError:  # pragma: no cover - the bounds above should make this unreachable
        raise ConfigError([ConfigIssue(file, 1, 1, "<root>", "YAML nested too deeply to read; flatten the structure")]) from None

    if root is None:
        raise ConfigError([ConfigIssue(file, 1, 1, "<root>", "file is empty; expected a mapping of 'key: value' pairs")])

    builder = _Builder(file)
    try:
        data = builder.build(root, ())
    except RecursionError:  # pragma: no cover - bounded by MAX_DEPTH above
        raise ConfigError([ConfigIssue(file, 1, 1, "<root>", "YAML nested too deeply to read; flatten the structure")]) from None
    if not isinstance(root, MappingNode):
        line, col = _mark_pos(root.start_mark)
        builder.issues.append(
            ConfigIssue(
                file, line, col, "<root>",
                f"the top level must be a mapping of 'key: value' pairs, got {_show(data)}",
            )
        )
    if builder.issues:
        raise ConfigError(builder.issues)
    return YamlDoc(file=file, data=data, _values=builder.values, _keys=builder.keys)


def load_yaml(path: str | Path) -> YamlDoc:
    """Read and parse a YAML file; raise :class:`ConfigError` on any load problem.

    ``YamlDoc.file`` is the path as given, so relative paths stay relative.
    """
    file = str(path)
    p = Path(path)
    try:
        if p.is_file() and p.stat().st_size > MAX_BYTES:
            raise ConfigError([ConfigIssue(file, 1, 1, "<root>", f"file is {p.stat().st_size:,} bytes; trimtab reads YAML "
                                                                 f"files up to {MAX_BYTES:,}")])
        raw = p.read_bytes()
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(file, 1, 1, "<root>", "file not found")]) from None
    except IsADirectoryError:
        raise ConfigError([ConfigIssue(file, 1, 1, "<root>", "is a directory, expected a YAML file")]) from None
    except OSError as exc:
        raise ConfigError([ConfigIssue(file, 1, 1, "<root>", f"cannot read file: {exc.strerror or exc}")]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        line = before.count(b"\n") + 1
        col = exc.start - (before.rfind(b"\n") + 1) + 1
        raise ConfigError(
            [ConfigIssue(file, line, col, "<root>", "file is not valid UTF-8 text; save it as UTF-8")]
        ) from None
    return load_yaml_text(text, file)


# --------------------------------------------------------------------------
# type walking (to know which model / literal an error belongs to)
# --------------------------------------------------------------------------


def _unwrap(tp: Any) -> tuple[Any, str | None, tuple[Any, ...]]:
    """Strip Annotated and Optional. Returns (type, discriminator, annotated metadata)."""
    disc: str | None = None
    meta: tuple[Any, ...] = ()
    while True:
        if get_origin(tp) is typing.Annotated:
            args = get_args(tp)
            tp, extra = args[0], args[1:]
            meta = meta + tuple(extra)
            for m in extra:
                d = getattr(m, "discriminator", None)
                if isinstance(d, str):
                    disc = d
            continue
        if _is_union(tp):
            members = [a for a in get_args(tp) if a is not NoneType]
            if len(members) == 1:
                tp = members[0]
                continue
        return tp, disc, meta


def _is_union(tp: Any) -> bool:
    origin = get_origin(tp)
    return origin is Union or origin is UnionType


def _union_members(tp: Any) -> list[Any]:
    return [a for a in get_args(tp) if a is not NoneType]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


def _fields(tp: Any) -> dict[str, tuple[Any, str | None]] | None:
    """Field name (as written in YAML) -> (annotation, discriminator) for models/dataclasses/TypedDicts."""
    if _is_model(tp):
        out = {}
        for name, info in tp.model_fields.items():
            alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
            d = info.discriminator if isinstance(info.discriminator, str) else None
            out[alias or name] = (info.annotation, d)
        return out
    if isinstance(tp, type) and (dataclasses.is_dataclass(tp) or typing.is_typeddict(tp)):
        try:
            hints = typing.get_type_hints(tp, include_extras=True)
        except Exception:
            return None
        if dataclasses.is_dataclass(tp):
            return {f.name: (hints.get(f.name, Any), None) for f in dataclasses.fields(tp)}
        return {k: (v, None) for k, v in hints.items()}
    return None


def _child(tp: Any, key: str | int) -> tuple[Any, str | None]:
    """Type (and discriminator) of ``tp[key]``, or (None, None) when unknown."""
    if tp is None:
        return None, None
    fields = _fields(tp)
    if fields is not None:
        return fields.get(str(key), (None, None))
    origin = get_origin(tp) or tp
    args = get_args(tp)
    if isinstance(origin, type):
        if issubclass(origin, tuple):
            if len(args) == 2 and args[1] is Ellipsis:
                return args[0], None
            if isinstance(key, int) and 0 <= key < len(args):
                return args[key], None
            return None, None
        if issubclass(origin, Mapping):
            return (args[1] if len(args) == 2 else None), None
        if issubclass(origin, (Sequence, set, frozenset)) and not issubclass(origin, (str, bytes)):
            return (args[0] if args else None), None
    return None, None


def _literal_values(tp: Any) -> list[Any] | None:
    tp, _, _ = _unwrap(tp)
    if get_origin(tp) is Literal:
        return list(get_args(tp))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return [m.value for m in tp]
    if _is_union(tp):
        vals: list[Any] = []
        for m in _union_members(tp):
            sub = _literal_values(m)
            if sub is None:
                return None
            vals.extend(sub)
        return vals
    return None


def _tag_values(branch: Any, disc: str | None) -> list[str]:
    """Discriminator tag values selecting a union branch."""
    tp, _, meta = _unwrap(branch)
    tags = [str(m.tag) for m in meta if type(m).__name__ == "Tag" and hasattr(m, "tag")]
    if tags:
        return tags
    fields = _fields(tp)
    if not fields:
        return []
    names = [disc] if disc and disc in fields else list(fields)
    out: list[str] = []
    for name in names:
        vals = _literal_values(fields[name][0])
        if vals is not None and get_origin(_unwrap(fields[name][0])[0]) is Literal:
            out.extend(str(_plain_repr(v)) for v in vals)
    return out


def _match_branch(members: list[Any], tag: str, disc: str | None) -> Any:
    for m in members:
        base, _, _ = _unwrap(m)
        if getattr(base, "__name__", None) == tag:
            return m
    if disc:
        for m in members:
            if tag in _tag_values(m, disc):
                return m
    for m in members:
        base, _, _ = _unwrap(m)
        name = getattr(get_origin(base) or base, "__name__", "")
        if name and (tag == name.lower() or tag.startswith(name.lower() + "[")):
            return m
        if get_origin(base) is Literal and tag.startswith("literal["):
            return m
    if not disc:
        for m in members:
            if tag in _tag_values(m, None):
                return m
    return None


def _describe_type(tp: Any) -> str:
    """'a number', 'a list', 'a SwapAction mapping', "'max'"... for messages."""
    base, _, _ = _unwrap(tp)
    if base is None or base is Any:
        return "a value"
    if base is NoneType:
        return "null"
    vals = _literal_values(base)
    if vals is not None:
        return " or ".join(f"'{_plain_repr(v)}'" for v in vals)
    if _is_model(base):
        return f"a {base.__name__} mapping"
    if _is_union(base):
        return " or ".join(_describe_type(m) for m in _union_members(base))
    origin = get_origin(base) or base
    if isinstance(origin, type):
        if issubclass(origin, bool):
            return "a boolean (true/false)"
        if issubclass(origin, int):
            return "an integer"
        if issubclass(origin, float):
            return "a number"
        if issubclass(origin, str):
            return "a string"
        if issubclass(origin, _dt.datetime):
            return "a date-time"
        if issubclass(origin, _dt.date):
            return "a date"
        if issubclass(origin, Mapping) or _fields(origin) is not None:
            return "a mapping"
        if issubclass(origin, (Sequence, set, frozenset, tuple)):
            return "a list"
    return f"a {getattr(base, '__name__', str(base))}"


def _describe_tag(tag: str) -> str:
    t = tag.lower()
    for prefix, text in (
        ("literal[", None), ("int", "an integer"), ("constrained-int", "an integer"), ("float", "a number"),
        ("constrained-float", "a number"), ("decimal", "a number"), ("str", "a string"),
        ("constrained-str", "a string"), ("bool", "a boolean (true/false)"), ("list", "a list"),
        ("tuple", "a list"), ("set", "a list"), ("dict", "a mapping"), ("none", "null"),
    ):
        if t.startswith(prefix):
            if text is None:
                inner = tag[len("literal["):-1]
                return inner.replace(",", " or")
            return text
    return f"a {tag} mapping" if tag[:1].isupper() else f"a {tag}"


# --------------------------------------------------------------------------
# pydantic error -> issue
# --------------------------------------------------------------------------

_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_parsing_size": "an integer of reasonable size",
    "int_from_float": "a whole number (integer)",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "decimal_type": "a number", "decimal_parsing": "a number",
    "bool_type": "a boolean (true/false)", "bool_parsing": "a boolean (true/false)",
    "string_type": "a string", "string_unicode": "a string", "bytes_type": "a string",
    "list_type": "a list", "tuple_type": "a list", "set_type": "a list", "frozen_set_type": "a list",
    "iterable_type": "a list",
    "dict_type": "a mapping", "mapping_type": "a mapping", "model_type": "a mapping",
    "model_attributes_type": "a mapping", "dataclass_type": "a mapping", "typed_dict_type": "a mapping",
    "none_required": "an empty value (null)",
    "date_type": "a date (YYYY-MM-DD)", "date_parsing": "a date (YYYY-MM-DD)",
    "date_from_datetime_parsing": "a date (YYYY-MM-DD)", "date_from_datetime_inexact": "a date without a time",
    "datetime_type": "a date-time (YYYY-MM-DDTHH:MM:SS)", "datetime_parsing": "a date-time (YYYY-MM-DDTHH:MM:SS)",
    "datetime_from_date_parsing": "a date-time (YYYY-MM-DDTHH:MM:SS)",
    "time_type": "a time (HH:MM:SS)", "time_parsing": "a time (HH:MM:SS)",
    "time_delta_type": "a duration", "time_delta_parsing": "a duration (e.g. 'PT1H' or seconds)",
    "url_type": "a URL", "url_parsing": "a URL", "uuid_type": "a UUID", "uuid_parsing": "a UUID",
    "callable_type": "a callable", "is_instance_of": "a {class}",
}

_MISMATCH = {"literal_error", "enum", "union_tag_invalid", "union_tag_not_found"} | set(_EXPECTED)

_CONSTRAINT_OPS = {
    "greater_than": (">", "gt"), "greater_than_equal": (">=", "ge"),
    "less_than": ("<", "lt"), "less_than_equal": ("<=", "le"),
}


@dataclasses.dataclass
class _Err:
    raw: dict[str, Any]
    path: Path_                      # data path (relative to base)
    trail: list[tuple[Path_, str, list[Any] | None]]  # (union point, tag, members)
    on_key: bool                     # the error concerns a mapping key ('[key]')
    tp: Any                          # type at the error location (None if unknown)
    parent: Any                      # type of the containing mapping/list
    disc: str | None                 # discriminator of a union at the location

    @property
    def type(self) -> str:
        return self.raw["type"]


def _has(data: Any, key: Any) -> bool:
    if isinstance(data, Mapping):
        return key in data
    if isinstance(data, list) and isinstance(key, int) and not isinstance(key, bool):
        return -len(data) <= key < len(data)
    return False


def _resolve(raw: dict[str, Any], root_tp: Any, root_data: Any) -> _Err:
    loc = tuple(raw.get("loc", ()))
    tp, disc = root_tp, None
    data = root_data
    path: list[str | int] = []
    trail: list[tuple[Path_, str, list[Any] | None]] = []
    parent: Any = None
    on_key = False
    is_missing = raw["type"] == "missing"
    for i, elem in enumerate(loc):
        last = i == len(loc) - 1
        if elem == "[key]":
            on_key = True
            continue
        base, d, _ = _unwrap(tp) if tp is not None else (None, None, ())
        disc = d or disc
        if base is not None and _is_union(base):
            members = _union_members(base)
            trail.append((tuple(path), str(elem), members))
            tp = _match_branch(members, str(elem), disc)
            disc = None
            continue
        if base is None and not _has(data, elem) and not (last and is_missing) and data is not _MISSING:
            if not (isinstance(elem, int) and isinstance(data, list)):
                trail.append((tuple(path), str(elem), None))  # unknown union tag
                continue
        parent = base
        tp, disc = _child(base, elem)
        data = data[elem] if _has(data, elem) else _MISSING
        path.append(elem)
    if tp is not None:
        _, ud, _ = _unwrap(tp)
        disc = ud or disc
    return _Err(raw, tuple(path), trail, on_key, tp, parent, disc)


def _select(errs: list[_Err], depth: int, out: list[tuple[_Err | None, Path_, str]]) -> None:
    """Collapse smart-union branches: keep the most plausible branch's errors,
    or a single 'expected one of' message when no branch fits at all."""
    groups: dict[Path_, list[_Err]] = {}
    for e in errs:
        if len(e.trail) <= depth:
            out.append((e, e.path, ""))
        else:
            groups.setdefault(e.trail[depth][0], []).append(e)
    for point, group in groups.items():
        by_tag: dict[str, list[_Err]] = {}
        for e in group:
            by_tag.setdefault(e.trail[depth][1], []).append(e)
        if len(by_tag) == 1:  # discriminated union (only one branch was tried)
            _select(group, depth + 1, out)
            continue

        def fits(branch: list[_Err]) -> bool:
            return any(len(e.path) > len(point) or e.type not in _MISMATCH for e in branch)

        candidates = [b for b in by_tag.values() if fits(b)]
        if candidates:
            best = min(candidates, key=lambda b: (-max(len(e.path) for e in b), len(b)))
            _select(best, depth + 1, out)
            continue
        members = group[0].trail[depth][2]
        descs: list[str] = []
        literals: list[Any] = []
        if members:
            for m in members:
                descs.append(_describe_type(m))
                literals.extend(_literal_values(m) or [])
        else:
            for tag in by_tag:
                descs.append(_describe_tag(tag))
        descs = list(dict.fromkeys(descs))
        value = group[0].raw.get("input")
        if len(descs) <= 1:
            expected = descs[0] if descs else "a different value"
        elif len(descs) == 2:
            expected = f"{descs[0]} or {descs[1]}"
        else:
            expected = "one of: " + ", ".join(descs[:-1]) + " or " + descs[-1]
        msg = f"expected {expected}, got {_show(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            msg = f"expected a finite number, got {value}"  # .nan/.inf where a number or an expression goes
        if isinstance(value, str) and literals:
            best_lit = _closest(value, [str(_plain_repr(v)) for v in literals])
            if best_lit is not None:
                msg += f"; did you mean '{best_lit}'?"
        out.append((None, point, msg))


def _message(e: _Err) -> tuple[Path_, str, bool]:
    """(path to report, message, whether to point at the key)."""
    raw = e.raw
    typ = raw["type"]
    ctx = raw.get("ctx") or {}
    value = raw.get("input")
    path = e.path

    if typ == "extra_forbidden":
        name = str(path[-1]) if path else "?"
        fields = _fields(e.parent) if e.parent is not None else None
        if fields:
            msg = _with_choices(f"unknown field '{name}'", name, list(fields))
        else:
            msg = f"unknown field '{name}'; remove it"
        return path, msg, True

    if typ == "missing":
        if not path:
            return path, "missing required value", False
        name = str(path[-1])
        if isinstance(path[-1], int):
            return path[:-1], f"missing required item [{name}]", False
        msg = f"missing required field '{name}'"
        if e.tp is not None:
            desc = _describe_type(e.tp)
            if desc != "a value":
                msg += f" ({desc})"
        return path[:-1], msg, False

    if typ == "union_tag_invalid":
        disc = str(ctx.get("discriminator", "")).strip("'\"")
        tag = ctx.get("tag", value)
        allowed = _allowed_tags(e)
        if not allowed:
            allowed = [t.strip().strip("'\"") for t in str(ctx.get("expected_tags", "")).split(",") if t.strip()]
        label = disc if disc and disc.isidentifier() else "variant"
        msg = _with_choices(f"unknown {label} '{tag}'", str(tag), allowed)
        target = path + (disc,) if disc.isidentifier() and isinstance(value, Mapping) and disc in value else path
        return target, msg, False

    if typ == "union_tag_not_found":
        disc = str(ctx.get("discriminator", "")).strip("'\"")
        allowed = _allowed_tags(e)
        msg = f"missing required field '{disc}'" if disc.isidentifier() else "cannot tell which variant this is"
        if allowed:
            msg += f" (selects the variant; allowed: {_list(allowed)})"
        return path, msg, False

    if typ in ("literal_error", "enum"):
        allowed = _literal_values(e.tp) if e.tp is not None else None
        if allowed is None:
            allowed = re.findall(r"'((?:[^'\\]|\\.)*)'|([^\s,']+)", str(ctx.get("expected", "")))
            allowed = [a or b for a, b in allowed if (a or b) not in ("or",)]
        allowed_s = [str(_plain_repr(a)) for a in allowed]
        msg = _with_choices(f"invalid value {_show(value)}", value, allowed_s)
        return path, msg, e.on_key

    if typ in _CONSTRAINT_OPS:
        op, k = _CONSTRAINT_OPS[typ]
        return path, f"must be {op} {_plain_repr(ctx.get(k))}, got {_show(value)}", e.on_key

    if typ == "multiple_of":
        return path, f"must be a multiple of {_plain_repr(ctx.get('multiple_of'))}, got {_show(value)}", e.on_key

    if typ in ("too_short", "too_long"):
        what = "item" if ctx.get("field_type", "List") in ("List", "Tuple", "Set", "Frozenset") else "entry"
        if typ == "too_short":
            n = ctx.get("min_length")
            bound = f"at least {n} {what}{'s' if n != 1 else ''}"
        else:
            n = ctx.get("max_length")
            bound = f"at most {n} {what}{'s' if n != 1 else ''}"
        return path, f"needs {bound}, got {ctx.get('actual_length')}", e.on_key

    if typ in ("string_too_short", "string_too_long"):
        if typ == "string_too_short":
            n = ctx.get("min_length")
            bound = f"at least {n} character{'s' if n != 1 else ''}"
        else:
            n = ctx.get("max_length")
            bound = f"at most {n} character{'s' if n != 1 else ''}"
        return path, f"must have {bound}, got {_show(value)}", e.on_key

    if typ == "string_pattern_mismatch":
        return path, f"must match the pattern '{ctx.get('pattern')}', got {_show(value)}", e.on_key

    if typ in ("value_error", "assertion_error"):
        msg = str(raw.get("msg", ""))
        for prefix in ("Value error, ", "Assertion failed, "):
            if msg.startswith(prefix):
                msg = msg[len(prefix):]
        return path, msg, e.on_key

    if typ in _EXPECTED:
        expected = _EXPECTED[typ].replace("{class}", str(ctx.get("class", "value")))
        if typ in ("model_type", "model_attributes_type", "dict_type") and e.tp is not None:
            base, _, _ = _unwrap(e.tp)
            fields = _fields(base)
            if fields:
                expected = f"a mapping with fields {_list(fields)}"
        msg = f"expected {expected}, got {_show(value)}"
        if e.on_key:
            msg = f"invalid key {_show(path[-1] if path else value)}: " + msg
        return path, msg, e.on_key

    msg = str(raw.get("msg", typ))
    if "input" in raw and not isinstance(value, (Mapping, list)):
        msg += f", got {_show(value)}"
    return path, msg, e.on_key


def _allowed_tags(e: _Err) -> list[str]:
    if e.tp is None:
        return []
    base, disc, _ = _unwrap(e.tp)
    disc = disc or e.disc
    if not _is_union(base):
        return []
    tags: list[str] = []
    for m in _union_members(base):
        tags.extend(_tag_values(m, disc))
    return list(dict.fromkeys(tags))


def _find_model(exc: pydantic.ValidationError, data: Any) -> Any:
    """Best effort: the BaseModel subclass that raised ``exc`` (matched by its
    title; when several models share the name, the one that reproduces the
    same errors on ``data``)."""
    title = getattr(exc, "title", None)
    if not title:
        return None
    found = []
    stack = list(pydantic.BaseModel.__subclasses__())
    seen: set[int] = set()
    while stack:
        cls = stack.pop()
        if id(cls) in seen:
            continue
        seen.add(id(cls))
        if cls.__name__ == title:
            found.append(cls)
        stack.extend(cls.__subclasses__())
    if len(found) <= 1 or data is _MISSING:
        return found[0] if found else None
    wanted = exc.errors(include_url=False, include_input=False)
    for cls in found:
        try:
            cls.model_validate(data)
        except pydantic.ValidationError as other:
            if other.errors(include_url=False, include_input=False) == wanted:
                return cls
        except Exception:
            continue
    return None


def pydantic_issues(
    exc: pydantic.ValidationError,
    doc: YamlDoc,
    base: Path_ = (),
    *,
    model: Any = None,
    data: Any = _MISSING,
) -> list[ConfigIssue]:
    """Map every error of ``exc`` onto ``doc`` (the validated data lives at ``base``).

    ``model`` (the validated type) lets messages list allowed fields and
    values; when omitted it is looked up by the error's title. ``data`` is
    the validated input when it differs from ``doc`` at ``base``.
    """
    base = tuple(base)
    root_data = doc.get(base, _MISSING) if data is _MISSING else data
    root_tp = model if model is not None else _find_model(exc, root_data)
    errs = [_resolve(raw, root_tp, root_data) for raw in exc.errors(include_url=False)]
    picked: list[tuple[_Err | None, Path_, str]] = []
    _select(errs, 0, picked)
    issues: list[ConfigIssue] = []
    seen: set[tuple[Any, ...]] = set()
    for err, path, msg in picked:
        on_key = False
        if err is not None:
            path, msg, on_key = _message(err)
        full = base + tuple(path)
        ident = (full, msg)
        if ident in seen:
            continue
        seen.add(ident)
        issues.append(doc.issue(full, msg, key=on_key))
    return sorted(issues)


_ADAPTERS: dict[Any, pydantic.TypeAdapter] = {}


def validate(model_cls: Any, doc: YamlDoc, base: Path_ = (), data: Any = None) -> tuple[Any, list[ConfigIssue]]:
    """Validate ``doc.data`` at ``base`` (or ``data``, which sits at ``base`` in
    the file) against ``model_cls``. Returns ``(model, [])`` or ``(None, issues)``;
    never raises for validation errors."""
    base = tuple(base)
    if data is None:
        data = doc.get(base)
    try:
        if _is_model(model_cls):
            return model_cls.model_validate(data), []
        try:
            adapter = _ADAPTERS[model_cls]
        except (KeyError, TypeError):
            adapter = pydantic.TypeAdapter(model_cls)
            try:
                _ADAPTERS[model_cls] = adapter
            except TypeError:
                pass
        return adapter.validate_python(data), []
    except pydantic.ValidationError as exc:
        return None, pydantic_issues(exc, doc, base, model=model_cls, data=data)
