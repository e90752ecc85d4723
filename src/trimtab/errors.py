"""Error types shared by the whole engine.

Configuration problems are collected as :class:`~trimtab.diagnostics.Diagnostic`
records (one per mistake, with the file position it refers to) and raised together in a
single :class:`ConfigError`, so a user sees every mistake of a file at once::

    strategies/foo.yaml:12:5: states.idle.trgger: unknown field 'trgger'; did you mean 'trigger'? allowed: action, trigger

Runtime failures derive from :class:`TrimtabError`.
"""

from __future__ import annotations

from collections.abc import Iterable

from .diagnostics import Diagnostic, Severity, format_line

__all__ = ["ConfigError", "ExecutionError", "PartialExecution", "TrimtabError"]


class TrimtabError(Exception):
    """Base class for every error raised on purpose by trimtab."""


class ConfigError(TrimtabError):
    """One or more configuration problems as :class:`~trimtab.diagnostics.Diagnostic` records
    (``issues``, sorted by file position); ``str()`` lists one per line as
    ``file:line:col: path: message; hint``."""

    issues: list[Diagnostic]

    def __init__(self, issues: Diagnostic | Iterable[Diagnostic]):
        if isinstance(issues, Diagnostic):
            issues = [issues]
        self.issues = sorted(issues)
        super().__init__(str(self))

    @property
    def errors(self) -> list[Diagnostic]:
        """Issues of severity :attr:`~trimtab.diagnostics.Severity.ERROR`."""
        return [i for i in self.issues if i.severity is Severity.ERROR]

    def __str__(self) -> str:
        return "\n".join(format_line(i) for i in self.issues)

    def __reduce__(self):  # keep pickling (multiprocessing) working
        return (type(self), (self.issues,))


class ExecutionError(TrimtabError):
    """An instruction could not be executed (stale data, insufficient balance, unsafe result).

    Raised by the simulated venues and by the live execution alike, so it lives here rather
    than in either (issue 12: live execution no longer imports the simulator for it)."""


class PartialExecution(ExecutionError):
    """A step that failed after part of it happened on a venue (a partly filled order, the
    first of several transactions mined). ``fills`` (Fill, trade price or None) are what did
    happen: the executor books them, then fails the step."""

    def __init__(self, message: str, fills: list):
        super().__init__(message)
        self.fills = fills
