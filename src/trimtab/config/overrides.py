"""``--set NAME=VALUE``: change a loaded strategy config before it is validated.

``NAME`` is a parameter (a rules file's ``parameters:`` default or the config's ``parameters:``
block) or a config field by dotted path: ``capital``, ``targets.hedge.allocation`` (a list item
by its ``id``, or by index: ``targets.1.allocation``), ``costs.multiplier``. ``VALUE`` is read as
a YAML scalar or flow collection (``0.8``, ``true``, ``abc``, ``[a, b]``).

The value is written into the config's plain YAML data, so the usual validation and cross-file
checks see it exactly as if the file said it; every problem they find under an overridden path
is located at the flag (``--set target_ltv=abc``) instead of at a line of the file.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..diagnostics import Diagnostic, Severity, format_line, format_path, full_message
from ..errors import ConfigError
from .models import StrategyConfig
from .wording import suggest
from .yamldoc import Path_, YamlDoc, load_yaml, load_yaml_text

__all__ = ["OverriddenDoc", "apply_overrides", "format_issue", "is_flag_issue", "parameter_names"]

FLAG = "--set"


@dataclasses.dataclass
class OverriddenDoc(YamlDoc):
    """A config :class:`YamlDoc` with ``--set`` values written into ``data``.

    Attributes:
        overrides: ``{NAME: value}`` as given on the command line (value as parsed from YAML), in order.
        flags: ``{path: "--set NAME=VALUE"}``: the YAML path each flag wrote, for locating issues.
    """

    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    flags: dict[Path_, str] = dataclasses.field(default_factory=dict)

    def issue(self, path: Path_, message: str, key: bool = False, severity: Severity = Severity.ERROR,
              hint: str | None = None, code: str = "config") -> Diagnostic:
        """As :meth:`YamlDoc.issue`, but an issue at or below an overridden path is located at its
        flag: ``file`` is ``"--set NAME=VALUE"``, line and col 0 (no line of any file says it)."""
        path = tuple(path)
        for p, flag in self.flags.items():
            if path[:len(p)] == p or tuple(map(str, path[:len(p)])) == tuple(map(str, p)):
                return Diagnostic(flag, 0, 0, path, message, code, severity, hint)
        return super().issue(path, message, key=key, severity=severity, hint=hint, code=code)


def is_flag_issue(d: Diagnostic) -> bool:
    """True for a diagnostic located at a ``--set`` flag rather than in a file."""
    return d.file.startswith(FLAG + " ")


def format_issue(d: Diagnostic) -> str:
    """``--set NAME=VALUE: path: message`` for an issue at a flag, else the usual
    ``file:line:col: path: message`` (:func:`trimtab.diagnostics.format_line`)."""
    if not is_flag_issue(d):
        return format_line(d)
    where = format_path(d.path) if d.path else ""
    return f"{d.file}: {where + ': ' if where else ''}{full_message(d)}"


def parameter_names(doc: YamlDoc, root: Path) -> dict[str, str]:
    """Every parameter the config can set: ``{name: where}`` with ``where`` the rules file that
    declares it (``rules/risk.yaml``) or ``"config"`` for one only the config's ``parameters:``
    names. Rules files that do not load are skipped (the full load reports them)."""
    data = doc.data if isinstance(doc.data, dict) else {}
    names: dict[str, str] = {}
    rules = data.get("rules") if isinstance(data.get("rules"), list) else []
    for r in rules:
        if not isinstance(r, str):
            continue
        file = root / "rules" / f"{r}.yaml"
        try:
            rdata = load_yaml(file).data if file.is_file() else None
        except ConfigError:
            continue
        params = rdata.get("parameters") if isinstance(rdata, dict) else None
        for n in params if isinstance(params, dict) else ():
            names.setdefault(str(n), f"rules/{r}.yaml")
    own = data.get("parameters")
    for n in own if isinstance(own, dict) else ():
        names.setdefault(str(n), "config")
    return names


def _flag_error(flag: str, message: str) -> Diagnostic:
    return Diagnostic(flag, 0, 0, (), message)


def _parse_value(flag: str, text: str) -> Any:
    """``text`` read as the YAML value of a key (so ``0.8`` is a number, ``abc`` a string)."""
    doc = load_yaml_text("value: " + text, file=flag)
    return doc.data.get("value") if isinstance(doc.data, dict) else None


def _resolve(name: str, data: dict, params: dict[str, str]) -> tuple[Path_ | None, str]:
    """The YAML path ``name`` writes, or (None, why not)."""
    fields = list(StrategyConfig.model_fields)
    if "." not in name:
        if name in params:
            return ("parameters", name), ""
        if name in fields:
            return (name,), ""
        return None, (f"unknown parameter or config field {name!r}{suggest(name, [*params, *fields])}; "
                      f"parameters: {', '.join(sorted(params))}; fields: {', '.join(fields)}")
    segs = name.split(".")
    if segs[0] not in fields:
        return None, f"unknown config field {segs[0]!r}{suggest(segs[0], fields)}; fields: {', '.join(fields)}"
    if segs[0] == "parameters":
        if len(segs) != 2 or segs[1] not in params:
            pname = ".".join(segs[1:])
            return None, f"unknown parameter {pname!r}{suggest(pname, list(params))}; parameters: {', '.join(sorted(params))}"
        return ("parameters", segs[1]), ""
    path: list[str | int] = [segs[0]]
    cur: Any = data.get(segs[0])
    absent = segs[0] not in data
    for i, seg in enumerate(segs[1:], start=1):
        last = i == len(segs) - 1
        here = ".".join(segs[:i])
        if isinstance(cur, list):
            ids = [x.get("id") for x in cur if isinstance(x, dict) and isinstance(x.get("id"), str)]
            if seg in ids:
                idx = next(j for j, x in enumerate(cur) if isinstance(x, dict) and x.get("id") == seg)
            elif seg.isdigit() and int(seg) < len(cur):
                idx = int(seg)
            else:
                return None, (f"{here} has no item {seg!r}{suggest(seg, ids)}; items: "
                              f"{', '.join(ids) if ids else f'0..{len(cur) - 1}'}")
            path.append(idx)
            absent, cur = False, cur[idx]
        elif isinstance(cur, dict):
            # A new field, or a block the YAML leaves to its defaults (a basket's alerts:), is
            # written as given: validation refuses a field the model does not have, at the flag.
            path.append(seg)
            absent, cur = seg not in cur, cur.get(seg)
        elif cur is None and absent:
            path.append(seg)  # a block the config leaves to its defaults (costs:): written as a new mapping
        else:
            return None, f"{here} is a single value; it has no field {seg!r}"
    return tuple(path), ""


def _first_missing(data: dict, path: Path_) -> Path_:
    """The shortest prefix of ``path`` that ``data`` does not hold yet (``path`` itself when only
    the last key is new or the value is replaced)."""
    cur: Any = data
    for k, p in enumerate(path[:-1]):
        if not isinstance(cur, dict) and not isinstance(cur, list):
            break
        if isinstance(cur, dict) and p not in cur:
            return tuple(path[:k + 1])
        cur = cur[p]
    return tuple(path)


def _write(data: dict, path: Path_, value: Any) -> None:
    cur: Any = data
    for p in path[:-1]:
        if isinstance(cur, dict) and p not in cur:
            cur[p] = {}
        cur = cur[p]
    cur[path[-1]] = value


def apply_overrides(doc: YamlDoc, overrides: list[str], root: Path) -> OverriddenDoc:
    """Write ``NAME=VALUE`` overrides into a copy of a strategy config's data.

    Args:
        doc: the config as loaded by :func:`trimtab.config.yamldoc.load_yaml` (left unchanged).
        overrides: ``["target_ltv=0.8", "targets.hedge.allocation=0.4", ...]``; a later flag for the
            same name wins.
        root: the project root (its ``rules/`` declare the parameters).

    Returns:
        An :class:`OverriddenDoc` whose ``data`` has the values written, to validate as usual.

    Raises:
        ConfigError: a flag without ``=``, a value that is not YAML, or an unknown name (with the
            close names), each located at its flag.
    """
    import copy

    data = copy.deepcopy(doc.data) if isinstance(doc.data, dict) else {}
    params = parameter_names(doc, root)
    out = OverriddenDoc(doc.file, data, doc._values, doc._keys)
    issues: list[Diagnostic] = []
    for raw in overrides:
        flag = f"{FLAG} {raw}"
        name, eq, text = raw.partition("=")
        name = name.strip()
        if not eq or not name:
            issues.append(_flag_error(flag, "expected NAME=VALUE, e.g. --set target_ltv=0.8"))
            continue
        path, why = _resolve(name, data, params)
        if path is None:
            issues.append(_flag_error(flag, why))
            continue
        try:
            value = _parse_value(flag, text)
        except ConfigError as e:
            issues.append(_flag_error(flag, "not a YAML value: " + "; ".join(i.message for i in e.issues)))
            continue
        created = _first_missing(data, path)
        _write(data, path, value)
        out.overrides.pop(name, None)  # the last flag for a name wins, and is listed last
        out.overrides[name] = value
        out.flags = {p: f for p, f in out.flags.items() if p != path}
        out.flags[path] = flag
        if created != path:
            # The flag made the block it writes into: an issue with that block (a misspelt
            # field name) is the flag's too, not the line of the file it hangs from.
            out.flags[created] = flag
    if issues:
        raise ConfigError(issues)
    return out
