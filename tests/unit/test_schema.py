"""JSON Schemas (schema/*.schema.json, `trimtab schema`): up to date with the models, carried by
every shipped YAML's editor header, and every shipped YAML validates against its schema."""
from __future__ import annotations

import functools
import json
from pathlib import Path

import jsonschema
import pytest

from trimtab.config.yamldoc import load_yaml
from trimtab.schema import FOLDER_KIND, HEADER_PREFIX, KINDS, header, render

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "schema"
SHIPPED = sorted(p for folder in FOLDER_KIND for p in (ROOT / folder).glob("*.yaml")) + sorted((ROOT / "tests" / "rules").glob("*.yaml"))


def kind(path: Path) -> str:
    return "ruletest" if path.parent.name == "rules" and path.parent.parent.name == "tests" else FOLDER_KIND[path.parent.name]


@functools.cache
def validator(k: str) -> jsonschema.Draft202012Validator:
    s = json.loads((SCHEMA_DIR / f"{k}.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(s)
    return jsonschema.Draft202012Validator(s)


@pytest.mark.parametrize("k", KINDS)
def test_schema_files_are_up_to_date_with_the_models(k):
    f = SCHEMA_DIR / f"{k}.schema.json"
    assert f.exists() and f.read_text() == render(k), (
        f"{f.relative_to(ROOT)} is out of date with trimtab.config.models: run `trimtab schema --out schema/`")


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_yaml_carries_the_schema_header(path):
    first = path.read_text().splitlines()[0]
    want = header(kind(path), path, SCHEMA_DIR)
    assert first == want, f"{path.relative_to(ROOT)} must start with the editor header line:\n{want}"
    target = (path.parent / first[len(HEADER_PREFIX):]).resolve()
    assert target.is_file()


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)))
def test_shipped_yaml_validates_against_its_schema(path):
    errors = sorted(validator(kind(path)).iter_errors(load_yaml(path).data), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_the_schema_rejects_what_the_loader_rejects():
    v = validator("config")
    data = load_yaml(ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml").data
    bad = dict(data, share_clas="ETH")
    assert any("share_clas" in e.message for e in v.iter_errors(bad))
    bad = dict(data, share_class="EUR")
    assert any(list(e.path) == ["share_class"] for e in v.iter_errors(bad))
    m = validator("machine")
    mdata = load_yaml(ROOT / "machines" / "lifecycle.yaml").data
    broken = dict(mdata, transitions=[dict(mdata["transitions"][0], when=[])])
    assert any(list(e.path)[:3] == ["transitions", 0, "when"] for e in m.iter_errors(broken))
