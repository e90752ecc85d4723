"""Acknowledged warnings: a config's ``audit.accept`` entries matched against its findings.

An entry (:mod:`trimtab.config.acknowledge`: ``CODE@FILE:PATH: reason``) accepts every warning
with that code, reported in that file (resolved from the project root, so symlinked case
folders and a run from another directory match alike) at that YAML path. Accepted warnings
leave ``findings`` for ``accepted``, with the entry's reason: they no longer count as warnings
and ``trimtab audit`` shows them apart.

``stale-accept`` (warning, at the entry in the config) is reported for an entry that:

* cannot be read (a portfolio config's loader does not check the format; a strategy's does);
* names a code the audit does not have;
* matches an *error* (errors are never accepted: fix them, or ``trimtab run
  --allow-audit-errors`` for research);
* matches no finding. A data finding depends on the window and on the data being read, so an
  entry for a data code is judged stale only when the data was checked over the config's
  default window (no ``--start``/``--end``, no ``--no-data``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..config.acknowledge import Acknowledgement, parse_accept
from ..config.yamldoc import YamlDoc
from ..diagnostics import Diagnostic, Severity, format_path
from .findings import CODES


@dataclass(frozen=True)
class Accepted:
    """A warning acknowledged by the config: the ``finding`` and the entry's ``reason``."""

    finding: Diagnostic
    reason: str


def _same_file(finding_file: str, wanted: Path) -> bool:
    try:
        return Path(finding_file).resolve() == wanted.resolve()
    except OSError:
        return False


def apply_accepts(findings: list[Diagnostic], entries: list[str], cdoc: YamlDoc, root: Path,
                  data_judged: bool) -> tuple[list[Diagnostic], list[Accepted]]:
    """Split ``findings`` by the config's ``audit.accept`` ``entries``.

    Args:
        findings: the config's findings (every check's).
        entries: ``audit.accept`` as written (validated at load: each parses).
        cdoc: the config document (stale entries are reported at ``audit.accept[i]``).
        root: the project root the entries' files are relative to.
        data_judged: whether data findings were checked over the default window, so a
            data entry that matches nothing is stale.

    Returns:
        (findings left, plus one ``stale-accept`` warning per stale entry; accepted warnings).
    """
    acks: list[Acknowledgement] = []
    kept: list[Diagnostic] = []
    for i, text in enumerate(entries):
        try:
            acks.append(parse_accept(i, text))
        except ValueError as e:
            # A strategy refuses this at load (trimtab.config.load); a portfolio's loader does not.
            kept.append(cdoc.issue(("audit", "accept", i), f"unreadable acknowledgement: {e}", severity=Severity.WARNING,
                                   code="stale-accept"))
    accepted: list[Accepted] = []
    used: set[int] = set()
    errors_hit: dict[int, Diagnostic] = {}
    for f in findings:
        ack = next((a for a in acks if a.code == f.code and format_path(f.path) == a.path and _same_file(f.file, root / a.file)), None)
        if ack is None:
            kept.append(f)
        elif f.severity is Severity.ERROR:
            errors_hit.setdefault(ack.index, f)
            kept.append(f)
        else:
            used.add(ack.index)
            accepted.append(Accepted(f, ack.reason))
    for a in acks:
        path = ("audit", "accept", a.index)
        if a.code not in CODES:
            kept.append(cdoc.issue(path, f"acknowledges {a.code!r}, which is not an audit finding code", severity=Severity.WARNING,
                                   code="stale-accept", hint=f"codes: {', '.join(sorted(CODES))}"))
        elif a.index in errors_hit:
            kept.append(cdoc.issue(path, f"acknowledges the error {a.code} at {a.location}; errors cannot be accepted",
                                   severity=Severity.WARNING, code="stale-accept",
                                   hint="fix the error (trimtab run --allow-audit-errors runs anyway, for research)"))
        elif a.index not in used and (CODES[a.code][1] != "data" or data_judged):
            kept.append(cdoc.issue(path, f"acknowledges {a.code} at {a.location}, but the audit finds no such warning",
                                   severity=Severity.WARNING, code="stale-accept",
                                   hint="remove the entry, or correct its code, file or path as `trimtab audit --format json` prints them"))
    return kept, accepted
