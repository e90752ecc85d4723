"""Pydantic validation of positioned YAML, with every error as a located Diagnostic.

``validate(model, doc, base)`` runs a pydantic model (or any type a ``TypeAdapter`` takes) over the
data of a :class:`~trimtab.config.yamldoc.YamlDoc` at ``base`` and turns each validation error
into a :class:`~trimtab.diagnostics.Diagnostic` at the exact spot in the file, with a hint where
one helps::

    strategy.yaml:7:5: states.idle.trgger: unknown field 'trgger'; did you mean 'trigger'? allowed: action, trigger
    strategy.yaml:9:15: params.max_ltv: expected a number, got 'high'
    strategy.yaml:11:13: actions[0].kind: unknown kind 'swapp'; did you mean 'swap'? allowed: lend, swap
    strategy.yaml:14:5: actions[1]: missing required field 'venue'

Each pydantic error carries its ``loc`` (the path, like python-jsonschema's ``error.path``) and
its ``type``; the model's own types give the allowed fields and values. Unions of models are
discriminated (``Field(discriminator=...)``), so pydantic tries one branch and reports its errors;
only plain unions such as ``float | str`` need collapsing into one "expected a or b" message.
Validators raise ``PydanticCustomError`` (or ``ValueError``) with the final wording.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import typing
from collections.abc import Mapping, Sequence
from types import NoneType, UnionType
from typing import Any, Literal, Union, get_args, get_origin

import pydantic
from pydantic_core.core_schema import ErrorType

from ..diagnostics import Diagnostic, Path as Path_
from .wording import closest, plain, show, value_list, with_choices
from .yamldoc import YamlDoc

__all__ = ["pydantic_issues", "validate"]

_MISSING: Any = object()

# --------------------------------------------------------------------------
# type walking (to know which model / literal an error belongs to)
# --------------------------------------------------------------------------


def _unwrap(tp: Any) -> tuple[Any, str | None]:
    """Strip Annotated and Optional. Returns (type, discriminator of an annotated union)."""
    disc: str | None = None
    while True:
        if get_origin(tp) is typing.Annotated:
            args = get_args(tp)
            tp, extra = args[0], args[1:]
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
        return tp, disc


def _is_union(tp: Any) -> bool:
    origin = get_origin(tp)
    return origin is Union or origin is UnionType


def _union_members(tp: Any) -> list[Any]:
    return [a for a in get_args(tp) if a is not NoneType]


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, pydantic.BaseModel)


def _fields(tp: Any) -> dict[str, tuple[Any, str | None]] | None:
    """Field name (as written in YAML) -> (annotation, discriminator) of a model, else None."""
    if not _is_model(tp):
        return None
    out = {}
    for name, info in tp.model_fields.items():
        alias = info.validation_alias if isinstance(info.validation_alias, str) else info.alias
        d = info.discriminator if isinstance(info.discriminator, str) else None
        out[alias or name] = (info.annotation, d)
    return out


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
        if issubclass(origin, Mapping):
            return (args[1] if len(args) == 2 else None), None
        if issubclass(origin, (Sequence, set, frozenset)) and not issubclass(origin, (str, bytes)):
            return (args[0] if args else None), None
    return None, None


def _literal_values(tp: Any) -> list[Any] | None:
    tp, _ = _unwrap(tp)
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


def _tag_values(branch: Any, disc: str) -> list[str]:
    """The discriminator values (``disc``'s literals) that select a union member."""
    fields = _fields(_unwrap(branch)[0]) or {}
    if disc not in fields or get_origin(_unwrap(fields[disc][0])[0]) is not Literal:
        return []
    return [plain(v) for v in _literal_values(fields[disc][0]) or ()]


def _match_branch(members: list[Any], tag: str, disc: str | None) -> Any:
    """The member of a union that pydantic's ``loc`` element ``tag`` names: the discriminator value
    in a discriminated union of models, else the type's name (``float``, ``str``, ``list[str]``,
    ``literal[...]``) in a plain union of scalars; None if none does."""
    for m in members:
        base = _unwrap(m)[0]
        if disc and tag in _tag_values(m, disc):
            return m
        name = getattr(get_origin(base) or base, "__name__", "").lower()
        if name and (tag == name or tag.startswith(name + "[")):
            return m
        if get_origin(base) is Literal and tag.startswith("literal["):
            return m
    return None


def _describe_type(tp: Any) -> str:
    """'a number', 'a list', 'a SwapAction mapping', "'max'"... for messages."""
    base, _ = _unwrap(tp)
    if base is None or base is Any:
        return "a value"
    if base is NoneType:
        return "null"
    vals = _literal_values(base)
    if vals is not None:
        return " or ".join(f"'{plain(v)}'" for v in vals)
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
        if issubclass(origin, Mapping):
            return "a mapping"
        if issubclass(origin, Sequence):
            return "a list"
    return f"a {getattr(base, '__name__', str(base))}"


# --------------------------------------------------------------------------
# pydantic error -> issue
# --------------------------------------------------------------------------

# What a type-mismatch error expected, by pydantic error type (the types trimtab's models use;
# any other falls back to pydantic's own message).
_EXPECTED = {
    "int_type": "an integer", "int_parsing": "an integer", "int_from_float": "a whole number (integer)",
    "float_type": "a number", "float_parsing": "a number", "finite_number": "a finite number",
    "bool_type": "a boolean (true/false)", "bool_parsing": "a boolean (true/false)",
    "string_type": "a string", "list_type": "a list", "dict_type": "a mapping", "model_type": "a mapping",
    "model_attributes_type": "a mapping", "none_required": "an empty value (null)",
}

_BUILTIN = frozenset(get_args(ErrorType))  # pydantic-core's own error types (not a validator's custom ones)

_MISMATCH = {"literal_error", "enum", "union_tag_invalid", "union_tag_not_found"} | set(_EXPECTED)

# Constraint errors: pydantic's own custom-message recipe, a template per error type filled from
# the error's ``ctx`` (pydantic docs, "Customizing error messages"); ``got`` is the user's value
# and ``what`` the counted noun.
_MESSAGES = {
    "greater_than": "must be > {gt}, got {got}", "greater_than_equal": "must be >= {ge}, got {got}",
    "less_than": "must be < {lt}, got {got}", "less_than_equal": "must be <= {le}, got {got}",
    "multiple_of": "must be a multiple of {multiple_of}, got {got}",
    "too_short": "needs at least {min_length} {what}, got {actual_length}",
    "too_long": "needs at most {max_length} {what}, got {actual_length}",
    "string_too_short": "must have at least {min_length} {what}, got {got}",
    "string_too_long": "must have at most {max_length} {what}, got {got}",
    "string_pattern_mismatch": "must match the pattern '{pattern}', got {got}",
}


def _custom_message(typ: str, ctx: dict[str, Any], value: Any) -> str:
    """The :data:`_MESSAGES` template of ``typ`` filled from the error's ``ctx``."""
    n = ctx.get("min_length", ctx.get("max_length"))
    noun = "character" if typ.startswith("string_") else "item" if ctx.get("field_type", "List") == "List" else "entry"
    fill = {k: plain(v) for k, v in ctx.items()}
    return _MESSAGES[typ].format(**fill, got=show(value), what=noun + ("s" if n != 1 else ""))


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
        base, d = _unwrap(tp) if tp is not None else (None, None)
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
        _, ud = _unwrap(tp)
        disc = ud or disc
    return _Err(raw, tuple(path), trail, on_key, tp, parent, disc)


def _select(errs: list[_Err], depth: int, out: list[tuple[_Err | None, Path_, str, str | None]]) -> None:
    """Collapse smart-union branches: keep the most plausible branch's errors,
    or a single 'expected one of' message when no branch fits at all."""
    groups: dict[Path_, list[_Err]] = {}
    for e in errs:
        if len(e.trail) <= depth:
            out.append((e, e.path, "", None))
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
        else:  # a union the model walk could not follow: pydantic's own tags
            descs.extend(f"a {tag}" for tag in by_tag)
        descs = list(dict.fromkeys(descs))
        value = group[0].raw.get("input")
        if len(descs) <= 1:
            expected = descs[0] if descs else "a different value"
        elif len(descs) == 2:
            expected = f"{descs[0]} or {descs[1]}"
        else:
            expected = "one of: " + ", ".join(descs[:-1]) + " or " + descs[-1]
        msg = f"expected {expected}, got {show(value)}"
        if isinstance(value, float) and not math.isfinite(value):
            msg = f"expected a finite number, got {value}"  # .nan/.inf where a number or an expression goes
        best_lit = closest(value, [plain(v) for v in literals]) if isinstance(value, str) and literals else None
        out.append((None, point, msg, f"did you mean '{best_lit}'?" if best_lit is not None else None))


def _message(e: _Err) -> tuple[Path_, str, str | None, bool]:
    """(path to report, message, hint, whether to point at the key)."""
    raw = e.raw
    typ = raw["type"]
    ctx = raw.get("ctx") or {}
    value = raw.get("input")
    path = e.path

    if typ == "extra_forbidden":
        name = str(path[-1]) if path else "?"
        fields = _fields(e.parent) if e.parent is not None else None
        return path, f"unknown field '{name}'", with_choices(name, list(fields or ())) or "remove it", True

    if typ == "missing":
        if not path:
            return path, "missing required value", None, False
        name = str(path[-1])
        if isinstance(path[-1], int):
            return path[:-1], f"missing required item [{name}]", None, False
        msg = f"missing required field '{name}'"
        if e.tp is not None:
            desc = _describe_type(e.tp)
            if desc != "a value":
                msg += f" ({desc})"
        return path[:-1], msg, None, False

    if typ == "union_tag_invalid":
        disc = str(ctx.get("discriminator", "")).strip("'\"")
        tag = ctx.get("tag", value)
        allowed = _allowed_tags(e)
        if not allowed:
            allowed = [t.strip().strip("'\"") for t in str(ctx.get("expected_tags", "")).split(",") if t.strip()]
        label = disc if disc and disc.isidentifier() else "variant"
        target = path + (disc,) if disc.isidentifier() and isinstance(value, Mapping) and disc in value else path
        return target, f"unknown {label} '{tag}'", with_choices(str(tag), allowed), False

    if typ == "union_tag_not_found":
        disc = str(ctx.get("discriminator", "")).strip("'\"")
        allowed = _allowed_tags(e)
        msg = f"missing required field '{disc}'" if disc.isidentifier() else "cannot tell which variant this is"
        if allowed:
            msg += f" (selects the variant; allowed: {value_list(allowed)})"
        return path, msg, None, False

    if typ in ("literal_error", "enum"):
        allowed = _literal_values(e.tp) if e.tp is not None else None
        if allowed is None:
            allowed = re.findall(r"'((?:[^'\\]|\\.)*)'|([^\s,']+)", str(ctx.get("expected", "")))
            allowed = [a or b for a, b in allowed if (a or b) not in ("or",)]
        allowed_s = [str(plain(a)) for a in allowed]
        return path, f"invalid value {show(value)}", with_choices(value, allowed_s), e.on_key

    if typ in _MESSAGES:
        return path, _custom_message(typ, ctx, value), None, e.on_key

    if typ in _EXPECTED:
        expected = _EXPECTED[typ]
        if typ in ("model_type", "model_attributes_type", "dict_type") and e.tp is not None:
            fields = _fields(_unwrap(e.tp)[0])
            if fields:
                expected = f"a mapping with fields {value_list(fields)}"
        msg = f"expected {expected}, got {show(value)}"
        if e.on_key:
            msg = f"invalid key {show(path[-1] if path else value)}: " + msg
        return path, msg, None, e.on_key

    # A validator's PydanticCustomError (or ValueError) already says it all; any other pydantic
    # error keeps pydantic's message, plus the value.
    msg = str(raw.get("msg", typ)).removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if typ in _BUILTIN and typ not in ("value_error", "assertion_error") and not isinstance(value, (Mapping, list)):
        msg += f", got {show(value)}"
    return path, msg, None, e.on_key


def _allowed_tags(e: _Err) -> list[str]:
    if e.tp is None:
        return []
    base, disc = _unwrap(e.tp)
    disc = disc or e.disc
    if not _is_union(base):
        return []
    tags: list[str] = []
    for m in _union_members(base):
        tags.extend(_tag_values(m, disc))
    return list(dict.fromkeys(tags))


def pydantic_issues(
    exc: pydantic.ValidationError,
    doc: YamlDoc,
    base: Path_ = (),
    *,
    model: Any,
    data: Any = _MISSING,
) -> list[Diagnostic]:
    """Map every error of ``exc`` onto ``doc`` (the validated data lives at ``base``), sorted by
    position.

    ``model`` is the validated type (a model class or any type a ``TypeAdapter`` takes): its
    fields, literals and discriminators give the allowed names in the hints. ``data`` is the
    validated input when it differs from ``doc`` at ``base``.
    """
    base = tuple(base)
    root_data = doc.get(base, _MISSING) if data is _MISSING else data
    errs = [_resolve(raw, model, root_data) for raw in exc.errors(include_url=False)]
    picked: list[tuple[_Err | None, Path_, str, str | None]] = []
    _select(errs, 0, picked)
    issues: list[Diagnostic] = []
    seen: set[tuple[Any, ...]] = set()
    for err, path, msg, hint in picked:
        on_key = False
        if err is not None:
            path, msg, hint, on_key = _message(err)
        full = base + tuple(path)
        ident = (full, msg, hint)
        if ident in seen:
            continue
        seen.add(ident)
        issues.append(doc.issue(full, msg, key=on_key, hint=hint))
    return sorted(issues)


_ADAPTERS: dict[Any, pydantic.TypeAdapter] = {}


def validate(model_cls: Any, doc: YamlDoc, base: Path_ = (), data: Any = None) -> tuple[Any, list[Diagnostic]]:
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
