"""``audit: {accept: [...]}`` entries: an audit warning acknowledged in the config, with a reason.

An entry is one string ``CODE@FILE:PATH: reason``:

* ``CODE``: the finding's code (``guard-overlap``; ``trimtab audit --format json`` prints it);
* ``FILE``: the file the finding is reported in, relative to the project root
  (``machines/lifecycle.yaml``, ``venues/okx.yaml``, ``configs/btc_basis.yaml``);
* ``PATH``: the finding's YAML path as the audit prints it (``transitions[4]``,
  ``instruments[0].mark_field``); the line number is not used, so an edit above the finding
  does not make the entry stale;
* ``reason``: why the warning is true but intended (required, shown by the audit).

This module only parses; :mod:`trimtab.audit.accept` matches entries against findings (the
audit's code registry sits above the config layer).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

# PATH may hold ':' (a quoted key such as ["binance:Perp:ETHUSDT"]): the greedy \S+ backtracks to
# the last ': ' before the reason.
_ENTRY = re.compile(r"^\s*(?P<code>[a-z][a-z0-9-]*)@(?P<file>[^:\s]+):(?P<path>\S+):\s+(?P<reason>\S.*?)\s*$", re.S)

FORMAT = "CODE@FILE:PATH: reason"
EXAMPLE = "guard-overlap@machines/lifecycle.yaml:transitions[4]: both risks need their own response; file order is intended"


@dataclass(frozen=True)
class Acknowledgement:
    """One parsed entry: ``code``, ``file`` (relative to the project root), ``path`` (the YAML
    path text, :func:`trimtab.diagnostics.format_path`), ``reason``; ``index`` its position in
    ``audit.accept``."""

    index: int
    code: str
    file: str
    path: str
    reason: str

    @property
    def location(self) -> str:
        """``FILE:PATH`` as written."""
        return f"{self.file}:{self.path}"


def parse_accept(index: int, text: str) -> Acknowledgement:
    """Parse entry ``index`` of ``audit.accept``.

    Raises:
        ValueError: the text is not ``CODE@FILE:PATH: reason``; the message names the part that
            is missing and shows the format with an example.
    """
    m = _ENTRY.match(text)
    if m:
        return Acknowledgement(index, m["code"], m["file"], m["path"], m["reason"])
    if "@" not in text:
        what = "no '@' between the finding code and its location"
    elif not re.match(r"^\s*[a-z][a-z0-9-]*@", text):
        what = "the finding code before '@' must be lowercase words joined by '-' (e.g. data-gaps)"
    elif not re.search(r"@[^:\s]+:\S+:\s+\S", text):
        what = "the location must be FILE:PATH followed by ': ' and a reason"
    else:
        what = "unreadable entry"
    raise ValueError(f"{what}; write {FORMAT!r}, e.g. {EXAMPLE!r} (codes, files and paths as `trimtab audit --format json` prints them)")
