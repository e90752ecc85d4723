"""The audit's result: :class:`AuditReport` (one config's findings) and how findings are ordered."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..diagnostics import Diagnostic, Severity, to_json
from ..errors import ConfigError, TrimtabError


@dataclass
class AuditReport:
    """Findings of one config, sorted errors first then by file position; ``window`` is the
    data window checked (None if data was not checked); ``accepted``: the warnings the config
    acknowledges (``audit.accept``, :mod:`trimtab.audit.accept`), with their reasons: they are
    not in ``findings`` and do not count as warnings."""

    config: str
    findings: list[Diagnostic] = field(default_factory=list)
    window: tuple[str, str] | None = None
    accepted: list = field(default_factory=list)  # of trimtab.audit.accept.Accepted

    @property
    def errors(self) -> list[Diagnostic]:
        """Findings of severity ``error``."""
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Diagnostic]:
        """Findings of severity ``warning``."""
        return [f for f in self.findings if f.severity is Severity.WARNING]

    def to_dict(self) -> dict:
        """JSON-ready: config, window, error, warning and accepted counts, findings (each
        :func:`trimtab.diagnostics.to_json`) and ``accepted`` (each finding's JSON plus ``reason``)."""
        return {"config": self.config, "window": list(self.window) if self.window else None,
                "errors": len(self.errors), "warnings": len(self.warnings), "accepted_count": len(self.accepted),
                "findings": [to_json(f) for f in self.findings],
                "accepted": [{**to_json(a.finding), "reason": a.reason} for a in self.accepted]}


def sort_findings(findings: list[Diagnostic]) -> list[Diagnostic]:
    """Findings without duplicates, errors first, then warnings, each by file position and code."""
    unique = list(dict.fromkeys(findings))
    return sorted(unique, key=lambda f: (f.severity.rank, f.file, f.line, f.col, f.code, f.message))


def sort_accepted(accepted: list) -> list:
    """Accepted findings (:class:`trimtab.audit.accept.Accepted`) without duplicates, by file position."""
    unique = list(dict.fromkeys(accepted))
    return sorted(unique, key=lambda a: (a.finding.file, a.finding.line, a.finding.col, a.finding.code, a.finding.message))


def load_error_report(path, e: TrimtabError) -> AuditReport:
    """The report of a config that does not load: every ConfigError diagnostic (as errors of code
    ``config``), or the one error at the top of the file."""
    if isinstance(e, ConfigError):
        return AuditReport(str(path), sort_findings([replace(i, code="config", severity=Severity.ERROR) for i in e.issues]))
    return AuditReport(str(path), [Diagnostic(str(path), 1, 1, (), " ".join(str(e).split()))])
