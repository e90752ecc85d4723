"""Error types shared by the whole engine.

Configuration problems are collected as :class:`ConfigIssue` records (one per
mistake, with the file position it refers to) and raised together in a single
:class:`ConfigError`, so a user sees every mistake of a file at once::

    strategies/foo.yaml:12:5: states.idle.trgger: unknown field 'trgger'; did you mean 'trigger'? allowed: action, trigger

Runtime failures derive from :class:`TrimtabError`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

__all__ = ["ConfigError", "ConfigIssue", "TrimtabError"]


class TrimtabError(Exception):
    """Base class for every error raised on purpose by trimtab."""


@dataclass(frozen=True, order=True)
class ConfigIssue:
    """One problem in a configuration file.

    ``line`` and ``col`` are 1-based. Field order makes issues sort by
    (file, line, col, path, message).
    """

    file: str
    line: int
    col: int
    path: str
    message: str
    severity: str = "error"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: {self.path}: {self.message}"


class ConfigError(TrimtabError):
    """One or more configuration issues; ``str()`` lists one issue per line."""

    issues: list[ConfigIssue]

    def __init__(self, issues: ConfigIssue | Iterable[ConfigIssue]):
        if isinstance(issues, ConfigIssue):
            issues = [issues]
        self.issues = sorted(issues)
        super().__init__(str(self))

    @property
    def errors(self) -> list[ConfigIssue]:
        """Issues whose severity is ``"error"``."""
        return [i for i in self.issues if i.severity == "error"]

    def __str__(self) -> str:
        return "\n".join(str(i) for i in self.issues)

    def __reduce__(self):  # keep pickling (multiprocessing) working
        return (type(self), (self.issues,))
