"""One diagnostic type for configuration errors and audit findings.

A :class:`Diagnostic` is one problem at ``file:line:col`` (1-based) of a YAML file: the YAML
``path`` to the offending key or value as a tuple (``("transitions", 2, "dest")``), a stable
``code``, a :class:`Severity`, the ``message`` saying what is wrong and, when there is one, a
``hint`` saying how to fix it (``"did you mean 'trigger'? allowed: action, trigger"``). Config
loading raises them in a :class:`~trimtab.errors.ConfigError`; the audit reports them as findings
(``code`` from :data:`trimtab.audit.findings.CODES`; a config that does not load is code
``config``).

The type stores data, not text. Text is made only at the edges, by the functions here and by the
CLI renderers: :func:`format_path` (``transitions[2].dest``), :func:`format_line` (the one-line
``file:line:col: path: message; hint`` form of ``trimtab validate`` and of ``str(diagnostic)``)
and :func:`to_json` (a JSON-ready dict). The audit's table and Markdown are in
:mod:`trimtab.cli.audit`.

Severities: before issue 12 config issues said ``"error"``, audit findings ``"error"`` or
``"warning"``, and the audit ranked rule priorities ``info``/``warning``/``critical``. Diagnostics
use :class:`Severity` (``error``, ``warning``, ``info``); a rule's ``severity`` in the YAML is the
priority of its guard, not a diagnostic, and keeps its own vocabulary.

This module imports nothing from trimtab, so every layer can use it.
"""
from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass

__all__ = ["Diagnostic", "Path", "Severity", "format_line", "format_path", "full_message", "sort_key",
           "to_json"]

#: A YAML path: mapping keys (str) and list indices (int), from the document root.
Path = tuple[str | int, ...]


class Severity(enum.StrEnum):
    """How bad a diagnostic is. A ``StrEnum``: it compares equal to, prints and serialises as its
    value (``Severity.ERROR == "error"``)."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"

    @property
    def rank(self) -> int:
        """0 for error, 1 for warning, 2 for info: the order reports list them in."""
        return _RANK[self]


_RANK = {Severity.ERROR: 0, Severity.WARNING: 1, Severity.INFO: 2}


@functools.total_ordering
@dataclass(frozen=True)
class Diagnostic:
    """One problem at ``file:line:col`` (1-based) of a file.

    Attributes:
        file: the file as the user named it (relative paths stay relative).
        line, col: 1-based position of the key or value the problem is about.
        path: YAML path from the document root; ``()`` is the whole file.
        code: stable identifier (``"config"`` for a config that does not load, an audit code
            such as ``"guard-never-holds"`` for a finding).
        severity: a :class:`Severity`.
        message: what is wrong, one line, no trailing period.
        hint: how to fix it, or None.

    Instances sort by (file, line, col, path, message) and hash by value, so duplicates collapse
    in a set.
    """

    file: str
    line: int
    col: int
    path: Path
    message: str
    code: str = "config"
    severity: Severity = Severity.ERROR
    hint: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.severity, Severity):  # accept "error"/"warning"/"info"
            object.__setattr__(self, "severity", Severity(self.severity))
        if not isinstance(self.path, tuple):
            object.__setattr__(self, "path", tuple(self.path))

    def __lt__(self, other: Diagnostic) -> bool:
        if not isinstance(other, Diagnostic):
            return NotImplemented
        return sort_key(self) < sort_key(other)

    def __str__(self) -> str:
        return format_line(self)


def sort_key(d: Diagnostic) -> tuple:
    """(file, line, col, formatted path, message, code): file order, comparable whatever the
    path's key types."""
    return (d.file, d.line, d.col, format_path(d.path), d.message, d.code)


_PLAIN_KEY = re.compile(r"^[^.:\[\]\s\"']+$")


def format_path(path: Path) -> str:
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


def full_message(d: Diagnostic) -> str:
    """The message with its hint: ``message; hint`` (or just the message)."""
    return f"{d.message}; {d.hint}" if d.hint else d.message


def format_line(d: Diagnostic, code: bool = False) -> str:
    """``file:line:col: path: message; hint``: the line ``trimtab validate`` prints; with
    ``code=True``, ``file:line:col: severity: [code] path: message; hint`` (the audit's findings
    on stderr when they refuse a run)."""
    label = f"{d.severity.value}: [{d.code}] " if code else ""
    return f"{d.file}:{d.line}:{d.col}: {label}{format_path(d.path)}: {full_message(d)}"


def to_json(d: Diagnostic) -> dict:
    """A JSON-ready dict: file, line, col, code, ``path`` (formatted, as in the text), message,
    severity, hint, and ``loc`` (the path as a list of keys and indices)."""
    return {"file": d.file, "line": d.line, "col": d.col, "code": d.code, "path": format_path(d.path),
            "message": d.message, "severity": d.severity.value, "hint": d.hint, "loc": list(d.path)}
