"""Hints that name the fix when a config uses something the project has but the config does not enable.

A config enables a subset of the project: the venues in ``venues:`` (of ``venues/*.yaml``), the
rule files in ``rules:`` (of ``rules/*.yaml``) and the targets whose templates publish per-member
metrics. A name that is unknown *to the config* may still exist in the project; then "did you
mean" a similar enabled name misleads (``lst: wstETH`` without ``lido`` is not a typo of
``weETH``). Each function here looks the name up in the project root and returns the hint that
says what to enable, or None when the project does not have it either (the caller keeps its
did-you-mean).

Only called on the error path: the project's files are read then, leniently (a file that does
not parse or validate is skipped; its own errors are reported when a config names it).
"""
from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..metrics import Family, Scope, lookup
from . import domains
from .models import RuleFile, VenueSpec
from .yamldoc import load_yaml

#: Who publishes the members of a metric family (trimtab.metrics.Family.member), and what to add
#: for member ``{m}``, in a config's words.
MEMBER_SOURCES = {
    "venue": ("the config's cex_perp venues", "the cex_perp venue {m!r} to `venues:`"),
    "perp": ("the perp instruments of the config's cex_perp venues (<venue>.<symbol>)", "the venue of perp {m!r} to `venues:`"),
    "token": ("the tokens of a `token_weights` target", "a `token_weights` target holding {m!r}"),
    "hedge_target": ("the ids of `perp_hedge` targets", "a `perp_hedge` target with id {m!r}"),
    "signal_target": ("the ids of `signal_perp` targets", "a `signal_perp` target with id {m!r}"),
}


def _models(root: Path, folder: str, model) -> dict[str, object]:
    out = {}
    for f in sorted((root / folder).glob("*.yaml")):
        try:
            out[f.stem] = model.model_validate(load_yaml(f).data)
        except (ConfigError, ValueError, TypeError):
            continue  # a broken file is reported when a config names it
    return out


def _venue_files(root: Path) -> dict[str, VenueSpec]:
    """The project's venue files that would load cleanly: a file with its own errors (an unknown
    data field, a name that is not its file's) is no fix to suggest."""
    out = {}
    for name, v in _models(root, "venues", VenueSpec).items():
        problems: list = []
        domains.check_venue(v, load_yaml(root / "venues" / f"{name}.yaml"), lambda *a, **k: problems.append(a), None)
        if v.name == name and not problems:
            out[name] = v
    return out


def venue_hint(root: Path, name: str, enabled) -> str | None:
    """For a venue ``name`` not in the config's ``venues:``: "add it" when ``venues/<name>.yaml``
    exists and loads cleanly, else None."""
    if name in enabled or name not in _venue_files(root):
        return None
    return f"venues/{name}.yaml exists: add `{name}` to the config's `venues:`"


def lst_hint(root: Path, token: str, enabled) -> str | None:
    """For an LST ``token`` no enabled staking venue mints: the catalog venues that mint it."""
    mints = [n for n, v in _venue_files(root).items() if v.model == "lst" and v.lst and v.lst.token == token and n not in enabled]
    if not mints:
        return None
    return f"{' and '.join(f'venues/{n}.yaml' for n in mints)} mint{'s' if len(mints) == 1 else ''} {token!r}: add `{mints[0]}` to the config's `venues:`"


def instrument_hint(root: Path, key: str, enabled) -> str | None:
    """For an instrument ``key`` (``venue:type:symbol``) its venue does not hold or does not enable:
    where it exists. The venue's own file when that venue is not enabled and holds it, else the
    same ``type:symbol`` on other catalog venues."""
    venue, _, rest = key.partition(":")
    files = _venue_files(root)
    own = files.get(venue)
    if venue not in enabled and own is not None and any(i.key == key for i in own.instruments):
        return f"venues/{venue}.yaml holds {key!r}: add `{venue}` to the config's `venues:`"
    elsewhere = [i.key for n, v in files.items() if n != venue for i in v.instruments if i.key.partition(":")[2] == rest]
    if not elsewhere:
        return None
    other = elsewhere[0].partition(":")[0]
    add = "" if other in enabled else f", and add `{other}` to the config's `venues:`"
    return f"{rest!r} exists on {', '.join(repr(k.partition(':')[0]) for k in elsewhere)}: use {elsewhere[0]!r}{add}"


def rules_hint(root: Path, enabled, *, rule: str | None = None, parameter: str | None = None) -> str | None:
    """For a ``rule`` or ``parameter`` no loaded rule file declares: the project's rule files that
    declare it, as "add `<file>` to the config's `rules:`", else None."""
    files = _models(root, "rules", RuleFile)
    have = [n for n, rf in files.items() if n not in enabled
            and ((rule is not None and rule in rf.rules) or (parameter is not None and parameter in rf.parameters))]
    if not have:
        return None
    files = " and ".join(f"rules/{n}.yaml" for n in have)
    return f"{files} declare{'s' if len(have) == 1 else ''} it: add `{have[0]}` to the config's `rules:`"


def metric_hint(name: str, members: dict[str, list[str]]) -> str | None:
    """For a name a strategy rule cannot read although the registry declares it: a portfolio
    metric, or a family member the config does not publish (``drift.ETH`` without a basket
    holding ETH). ``members``: the config's family members (:func:`trimtab.config.load.metric_members`)."""
    m = lookup(name, Scope.STRATEGY)
    if isinstance(m, Family):
        member = m.member_of(name)
        have = members.get(m.member) or []
        src, fix = MEMBER_SOURCES.get(m.member, (f"the config's {m.member}s", f"the {m.member} {{m!r}}"))
        return (f"{m.name} is published for {src}; this config publishes it for "
                f"{', '.join(repr(x) for x in have) if have else 'none'}: add {fix.format(m=member)}")
    if m is None and lookup(name, Scope.PORTFOLIO) is not None:
        return f"{name!r} is a portfolio metric: only the rules of a portfolio config (`sleeves:`) read it"
    return None
