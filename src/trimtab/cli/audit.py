"""Rendering of audit reports for ``trimtab audit``: a rich table, JSON, or Markdown.

Findings are :class:`~trimtab.diagnostics.Diagnostic` records; this module is where they become
text (``file:line:col``, the formatted path, ``message; hint``)."""
from __future__ import annotations

import json

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from ..audit import AuditReport
from ..diagnostics import Diagnostic, Severity, format_path, full_message

STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "yellow", Severity.INFO: "dim"}


def _where(f: Diagnostic) -> str:
    return f"{f.file}:{f.line}:{f.col}"


def _counts(reports: list[AuditReport]) -> tuple[int, int]:
    return sum(len(r.errors) for r in reports), sum(len(r.warnings) for r in reports)


def _tally(e: int, w: int, a: int) -> str:
    """``0 errors, 1 warning, 3 accepted`` (accepted only when there are some)."""
    out = f"{e} error{'s' if e != 1 else ''}, {w} warning{'s' if w != 1 else ''}"
    return out + (f", {a} accepted" if a else "")


def print_table(reports: list[AuditReport], console: Console) -> None:
    """One table per config (severity, finding code, file:line:col, message; acknowledged
    warnings as ``accepted`` with their reason), then totals."""
    for r in reports:
        head = Text(f"audit {r.config}", style="bold")
        if r.window:
            head.append(f"  ·  data window {r.window[0]} → {r.window[1]}", style="dim")
        console.print(head, soft_wrap=True)
        if not r.findings and not r.accepted:
            console.print(Text("  no findings", style="green"))
            console.print()
            continue
        t = Table(box=box.SIMPLE_HEAD, show_lines=False, pad_edge=False)
        t.add_column("severity", no_wrap=True)
        t.add_column("finding", no_wrap=True)
        t.add_column("where", no_wrap=True, overflow="fold")
        t.add_column("message", overflow="fold")
        for f in r.findings:
            t.add_row(Text(f.severity.value, style=STYLE[f.severity]), f.code, _where(f),
                      f"{format_path(f.path)}: {full_message(f)}")
        # Acknowledged warnings (audit.accept): shown with the config's reason, not counted as warnings.
        for a in r.accepted:
            f = a.finding
            t.add_row(Text("accepted", style="dim green"), f.code, _where(f),
                      Text(f"{format_path(f.path)}: {full_message(f)}\n", style="dim").append(f"accepted: {a.reason}", style="green"))
        console.print(t)
        e, w = len(r.errors), len(r.warnings)
        console.print(Text(f"{r.config}: {_tally(e, w, len(r.accepted))}",
                           style="bold red" if e else "yellow" if w else "green"), soft_wrap=True)
        console.print()
    if len(reports) > 1:
        e, w = _counts(reports)
        console.print(Text(f"{len(reports)} configs: {_tally(e, w, sum(len(r.accepted) for r in reports))}", style="bold"))


def to_json(reports: list[AuditReport]) -> str:
    """One JSON object: per config its findings, and the totals."""
    e, w = _counts(reports)
    return json.dumps({"errors": e, "warnings": w, "accepted": sum(len(r.accepted) for r in reports),
                       "configs": [r.to_dict() for r in reports]}, indent=2)


def _md(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def to_markdown(reports: list[AuditReport]) -> str:
    """A Markdown section per config with a findings table."""
    out = []
    for r in reports:
        out.append(f"## audit `{r.config}`\n")
        if r.window:
            out.append(f"Data window {r.window[0]} → {r.window[1]}.\n")
        out.append(f"{_tally(len(r.errors), len(r.warnings), len(r.accepted))}.\n")
        if r.findings or r.accepted:
            out.append("| severity | finding | where | message |")
            out.append("|---|---|---|---|")
            for f in r.findings:
                out.append(f"| {f.severity.value} | `{f.code}` | `{_where(f)}` | {_md(format_path(f.path))}: {_md(full_message(f))} |")
            for a in r.accepted:
                f = a.finding
                out.append(f"| accepted | `{f.code}` | `{_where(f)}` | {_md(format_path(f.path))}: {_md(full_message(f))} "
                           f"**Accepted:** {_md(a.reason)} |")
            out.append("")
    return "\n".join(out) + "\n"
