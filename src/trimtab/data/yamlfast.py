"""Compose a YAML text into ruamel's node tree with libyaml, when it is sure to match ruamel's.

ruamel.yaml's pure-Python scanner is most of the cost of loading a config (about 15 ms per
file; ruamel's own C extension is not installed). PyYAML, which dask requires, ships libyaml's
parser as a C extension. :func:`compose` runs libyaml's *parser only* (events with their
marks) and composes the events exactly as ruamel's ``Composer`` does: the same node classes,
tags from ruamel's own ``VersionedResolver`` (YAML 1.2 rules, the ones ``YAML(typ="rt")``
applies), so the node tree -- values, tags, 0-based marks -- is the one ruamel would build.

It only vouches for the plain case and returns ``None`` for anything else, so the caller parses
with ruamel and reports exactly what it always did: libyaml missing, a character the two
readers may count or accept differently (tabs, ``\\r``, control and non-printable characters,
the byte-order mark, YAML 1.1 line breaks), a syntax error, a directive, a tag, a reused or
undefined anchor, more than one document, an empty stream, or a bound of the caller's checker
crossed. Equivalence with ruamel on everything it accepts is tested (tests/unit/test_startup_yaml.py).
"""
from __future__ import annotations

import re
from typing import Any, Callable

from ruamel.yaml import YAML
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from ruamel.yaml.resolver import VersionedResolver

__all__ = ["compose"]

# Kinds of event handed to the caller's ``see`` (the bounds checker of trimtab.config.yamldoc).
START, END, SCALAR, ALIAS = "start", "end", "scalar", "alias"

# Characters the two readers may count or accept differently: tabs, \r, C0/C1 controls (NEL
# \x85 among them), the YAML 1.1 line separators, surrogates, the byte-order mark, non-characters.
# Everything else is one printable column to both; a text with any of these goes to ruamel.
_RISKY = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff\ufeff\ufffe\uffff]")

_libyaml: Any = None  # PyYAML's C module, imported on first use (about 20 ms); False: not available


def _parser_class() -> Any:
    global _libyaml
    if _libyaml is None:
        try:
            from yaml import _yaml  # PyYAML's libyaml binding (a dependency of dask)

            _libyaml = _yaml if hasattr(_yaml, "CParser") else False
        except ImportError:
            _libyaml = False
    return _libyaml.CParser if _libyaml else None


class _Unsure(Exception):
    """The text is not in the plain case :func:`compose` vouches for."""


# The implicit tag of a node is a function of (kind, value, implicit) alone here (YAML 1.2, no
# path resolvers, no directive), and ruamel's resolve() is slow: tags found are kept for the
# process, as a config, its machine, rules and venues repeat most keys and values; up to
# _TAGS_MAX of them (then started afresh). Nothing changes a Tag once made (ruamel shares its
# default ones too).
_TAGS: dict[tuple[Any, Any, Any], Any] = {}
_TAGS_MAX = 4096


class _Tags:
    """The tag resolver of one document: :data:`_TAGS`, else a ruamel ``VersionedResolver`` made
    for the document at its first new (kind, value, implicit), as ruamel makes one per
    ``YAML()`` (its resolve() extends its own lists)."""

    def __init__(self) -> None:
        self._resolver: Any = None

    def resolve(self, kind: Any, value: Any, implicit: Any) -> Any:
        """The tag ruamel gives a node of class ``kind`` with scalar ``value`` (None for a
        collection) and the event's ``implicit`` flags."""
        key = (kind, value, implicit)
        tag = _TAGS.get(key)
        if tag is None:
            if self._resolver is None:
                self._resolver = VersionedResolver().resolve
            tag = self._resolver(kind, value, implicit)
            if len(_TAGS) >= _TAGS_MAX:
                _TAGS.clear()
            _TAGS[key] = tag
        return tag


def compose(text: str, see: Callable[[str, Any, Any], bool] | None = None) -> Node | None:
    """The ruamel node tree of ``text`` (one document), or ``None`` when this fast path cannot
    vouch that it equals ruamel's (the caller then parses with ruamel).

    Args:
        text: the YAML text (already size-checked by the caller).
        see: called with ``(kind, anchor, start_mark)`` for every node event in stream order,
            ``kind`` one of ``start`` (mapping or sequence), ``end``, ``scalar``, ``alias``;
            returning True (a bound crossed) abandons the fast path before any alias expands.

    Returns:
        The root ``MappingNode``/``SequenceNode``/``ScalarNode``, its marks 0-based like
        ruamel's (``line``, ``column``), or ``None``.
    """
    cls = _parser_class()
    if cls is None or _RISKY.search(text):
        return None
    parser = cls(text)
    try:
        return _compose(text, parser, see)
    except Exception:  # _Unsure, a libyaml error (PyYAML's YAMLError), anything else: ruamel reads it
        return None
    finally:
        parser.dispose()


def _compose(text: str, parser: Any, see: Callable[[str, Any, Any], bool] | None) -> Node:
    get = parser.get_event
    _expect(get(), "StreamStartEvent")
    doc = get()
    _expect(doc, "DocumentStartEvent")
    if doc.version is not None or doc.tags:
        raise _Unsure  # %YAML / %TAG: ruamel's version handling decides
    resolve = _Tags().resolve

    anchors: dict[str, Node] = {}
    stack: list[list[Any]] = []  # [node, pending key node or None] per open collection
    root: Node | None = None
    while True:
        ev = get()
        name = type(ev).__name__
        if name == "ScalarEvent":
            _plain_event(ev, anchors)
            if see is not None and see(SCALAR, ev.anchor, ev.start_mark):
                raise _Unsure
            style = ev.style or None  # plain: libyaml '', ruamel None
            value = ev.value
            if value == "" and style is None:
                raise _Unsure  # an empty value: ruamel marks it at the next token, libyaml at the last
            if style in ("|", ">"):
                value = _block_rt(text, stack, ev)
            node: Node = ScalarNode(resolve(ScalarNode, value, ev.implicit), value, ev.start_mark,
                                    ev.end_mark, style=style, anchor=ev.anchor)
            if ev.anchor is not None:
                anchors[ev.anchor] = node
        elif name == "AliasEvent":
            if ev.anchor not in anchors:
                raise _Unsure  # ruamel reports the undefined alias
            if see is not None and see(ALIAS, ev.anchor, ev.start_mark):
                raise _Unsure
            node = anchors[ev.anchor]
        elif name in ("MappingStartEvent", "SequenceStartEvent"):
            _plain_event(ev, anchors)
            if see is not None and see(START, ev.anchor, ev.start_mark):
                raise _Unsure
            kind = MappingNode if name == "MappingStartEvent" else SequenceNode
            node = kind(resolve(kind, None, ev.implicit), [], ev.start_mark, None,
                        flow_style=ev.flow_style, anchor=ev.anchor)
            if ev.anchor is not None:
                anchors[ev.anchor] = node
            _attach(stack, node)
            stack.append([node, None])
            continue
        elif name in ("MappingEndEvent", "SequenceEndEvent"):
            if see is not None and see(END, None, ev.start_mark):
                raise _Unsure
            node, pending = stack.pop()
            if pending is not None:
                raise _Unsure  # pragma: no cover - libyaml never ends a mapping after a key
            node.end_mark = ev.end_mark
            if not stack:
                root = node
                break
            continue
        else:
            raise _Unsure
        if not stack:
            root = node
            break
        _attach(stack, node)
    _expect(get(), "DocumentEndEvent")
    _expect(get(), "StreamEndEvent")  # a second document: ruamel reports it
    return root


def _block_rt(text: str, stack: list[list[Any]], ev: Any) -> str:
    """A block scalar's (``|``, ``>``) value as ruamel's round-trip scanner gives it: ruamel keeps a
    ``\\a`` before every line break it folds in a ``>`` scalar (for dumping it back), which
    trimtab's loader has always kept, and refuses some indentations libyaml reads. ruamel's own
    scanner re-reads the scalar alone, in a one-key mapping at the column of the scalar's key so
    the indentation rules are the same; only for a value of a block mapping whose key is on the
    indicator's line."""
    top = stack[-1] if stack else None
    if top is None or not isinstance(top[0], MappingNode) or top[0].flow_style or top[1] is None:
        raise _Unsure
    key_mark, mark = top[1].start_mark, ev.start_mark
    if key_mark.line != mark.line:
        raise _Unsure
    starts = [0] + [m.end() for m in re.finditer("\n", text)]
    begin = starts[mark.line] + mark.column
    end = len(text)
    for line in range(mark.line + 1, len(starts)):  # up to the first line not indented past the key
        body = text[starts[line]:starts[line + 1] if line + 1 < len(starts) else len(text)]
        if body.strip() and len(body) - len(body.lstrip(" ")) <= key_mark.column:
            end = starts[line]
            break
    try:
        events = list(YAML(typ="rt").parse(" " * key_mark.column + "k: " + text[begin:end]))
    except Exception:  # anything ruamel would not read alone: let ruamel read the whole file
        raise _Unsure from None
    values = [e for e in events if type(e).__name__ == "ScalarEvent"]
    if len(values) != 2 or values[1].style != ev.style or values[1].value.replace("\a", "") != ev.value:
        raise _Unsure
    return values[1].value


def _expect(ev: Any, name: str) -> None:
    if type(ev).__name__ != name:
        raise _Unsure


def _plain_event(ev: Any, anchors: dict[str, Node]) -> None:
    # An explicit tag, or an anchor defined twice (ruamel warns): leave both to ruamel.
    if ev.tag is not None or (ev.anchor is not None and ev.anchor in anchors):
        raise _Unsure


def _attach(stack: list[list[Any]], node: Node) -> None:
    if not stack:
        return
    top = stack[-1]
    parent = top[0]
    if isinstance(parent, SequenceNode):
        parent.value.append(node)
    elif top[1] is None:
        top[1] = node
    else:
        parent.value.append((top[1], node))
        top[1] = None
