"""How config messages quote values and suggest names.

Shared by positioned YAML loading (:mod:`.yamldoc`), pydantic message rewriting
(:mod:`.pydantic_errors`) and the cross-file checks (:mod:`.load`, :mod:`.domains`), so every
message shows a user's value, a list of allowed names and a "did you mean" the same way.
"""
from __future__ import annotations

import datetime as _dt
import difflib
import enum
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["closest", "plain", "show", "suggest", "value_list", "with_choices"]


def closest(name: str, choices: Iterable[str]) -> str | None:
    """The choice ``name`` most likely misspells: same but for case, or for ``_``/``-``/spaces,
    else difflib's closest at ratio 0.6; None if none is close or ``name`` is itself a choice."""
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
    best = closest(name, choices)
    return f" (did you mean '{best}'?)" if best is not None else ""


def value_list(values: Iterable[Any], limit: int = 25) -> str:
    """``a, b, c`` as written in YAML; past ``limit`` values, ``..., (N more)``."""
    vals = [plain(v) for v in values]
    if len(vals) > limit:
        return ", ".join(vals[:limit]) + f", ... ({len(vals) - limit} more)"
    return ", ".join(vals)


def with_choices(name: Any, choices: list[str]) -> str | None:
    """The hint for a name not among ``choices``: ``did you mean 'x'? allowed: a, b``, or
    ``allowed: a, b``, or None when there are no choices."""
    best = closest(str(name), choices) if isinstance(name, str) else None
    if best is not None:
        return f"did you mean '{best}'?" + (f" allowed: {value_list(choices)}" if choices else "")
    if choices:
        return f"allowed: {value_list(choices)}"
    return None


def plain(v: Any) -> str:
    """A value as it would be written in YAML (no quotes around strings)."""
    if isinstance(v, enum.Enum):
        v = v.value
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def show(v: Any) -> str:
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
