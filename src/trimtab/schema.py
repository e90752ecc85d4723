"""JSON Schemas of trimtab's YAML and run summary, generated from the pydantic models.

``trimtab schema --out schema/`` writes one file per kind (``config``, ``machine``, ``rules``,
``venue``, ``ruletest``, and ``summary``: the run summary of ``trimtab run --json`` and
``summary.json``, from :mod:`trimtab.summary`) as ``schema/<kind>.schema.json``. Shipped YAML
starts with the header editors with the YAML language server use to pick the schema up::

    # yaml-language-server: $schema=../schema/config.schema.json

The schemas check shape only (field names, types, allowed values); cross-file references are
checked by ``trimtab validate``.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

from .config.models import MachineSpec, PortfolioConfig, RuleFile, StrategyConfig, VenueSpec
from .ruletest import RuleTestFile
from .summary import json_schema

HEADER_PREFIX = "# yaml-language-server: $schema="
DRAFT = "https://json-schema.org/draft/2020-12/schema"

#: Shipped YAML folder -> schema kind.
FOLDER_KIND = {"configs": "config", "machines": "machine", "rules": "rules", "venues": "venue"}

_TITLES = {
    "config": "trimtab strategy or portfolio config (configs/*.yaml)",
    "machine": "trimtab state machine (machines/*.yaml)",
    "rules": "trimtab rule file (rules/*.yaml)",
    "venue": "trimtab venue catalog entry (venues/*.yaml)",
    "ruletest": "trimtab rule test fixtures (tests/rules/*.yaml, run by `trimtab test`)",
    "summary": "trimtab run summary (`trimtab run --json`, <run>/summary.json), every run kind",
}


def _models() -> dict:
    return {"config": StrategyConfig, "machine": MachineSpec, "rules": RuleFile, "venue": VenueSpec, "ruletest": RuleTestFile}


KINDS = tuple(_TITLES)


def schema(kind: str) -> dict:
    """The JSON Schema (draft 2020-12) of ``kind``; raises KeyError for an unknown kind.

    ``config`` covers both config kinds of ``configs/``: a file with a ``sleeves`` key is a
    portfolio of strategies (:class:`~trimtab.config.models.PortfolioConfig`), any other a
    strategy (:class:`~trimtab.config.models.StrategyConfig`), chosen with ``if``/``then``/``else``
    so a strategy config's errors keep their own paths."""
    if kind == "summary":
        out = {"$schema": DRAFT, "$id": "summary.schema.json", "title": _TITLES[kind]}
        out.update(json_schema())
        return out
    model = _models()[kind]
    s = model.model_json_schema(mode="validation")
    out = {"$schema": DRAFT, "$id": f"{kind}.schema.json", "title": _TITLES[kind]}
    if kind == "config":
        p = PortfolioConfig.model_json_schema(mode="validation", ref_template="#/$defs/{model}")
        defs = dict(s.pop("$defs", {}))
        for name, d in p.pop("$defs", {}).items():
            if name in defs and defs[name] != d:
                raise ValueError(f"schema definition {name!r} differs between the strategy and portfolio configs")
            defs[name] = d
        defs["PortfolioConfig"] = {k: v for k, v in p.items()}
        defs["StrategyConfig"] = {k: v for k, v in s.items() if k != "title"}
        defs["StrategyConfig"]["title"] = s.get("title", "StrategyConfig")
        out.update({"$defs": defs, "if": {"type": "object", "required": ["sleeves"]},
                    "then": {"$ref": "#/$defs/PortfolioConfig"}, "else": {"$ref": "#/$defs/StrategyConfig"}})
        return out
    out.update({k: v for k, v in s.items() if k != "title"})
    return out


def render(kind: str) -> str:
    """``schema(kind)`` as the text written to ``<kind>.schema.json`` (2-space JSON, newline)."""
    return json.dumps(schema(kind), indent=2) + "\n"


def write_schemas(out: str | Path) -> list[Path]:
    """Write every kind's schema to ``out/<kind>.schema.json``; returns the paths written."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for kind in KINDS:
        p = out / f"{kind}.schema.json"
        p.write_text(render(kind))
        paths.append(p)
    return paths


def header(kind: str, yaml_file: str | Path, schema_dir: str | Path) -> str:
    """The editor header line for ``yaml_file``: ``$schema`` relative to the file's folder."""
    rel = os.path.relpath(Path(schema_dir) / f"{kind}.schema.json", Path(yaml_file).parent)
    return f"{HEADER_PREFIX}{Path(rel).as_posix()}"


def kind_of(yaml_file: str | Path) -> str | None:
    """The schema kind of a shipped YAML file from its folder (``configs/`` -> ``config``)."""
    return FOLDER_KIND.get(Path(yaml_file).parent.name)
