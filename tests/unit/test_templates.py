"""The template registry (trimtab.templates): every module registers itself by its
``template:`` name, implements the Protocol, and its classes are named nowhere else in src/."""
from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest

from trimtab.config.load import load_strategy
from trimtab.templates import base
from trimtab.templates.registry import TEMPLATES, TargetSpec, template_for

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src" / "trimtab"
PROTOCOL = [n for n in vars(base.Template) if not n.startswith("_")] + ["name", "model", "phase", "operations", "cex",
                                                                          "owns_wallet"]


def test_every_module_with_a_template_is_registered_under_its_tag():
    modules = {p.stem for p in (SRC / "templates").glob("*.py")} - {"__init__", "base", "registry"}
    registered = {type(t).__module__.rsplit(".", 1)[1] for t in TEMPLATES.values()}
    assert registered == modules
    for name, tpl in TEMPLATES.items():
        assert typing.get_args(tpl.model.model_fields["template"].annotation) == (name,)
        missing = [m for m in PROTOCOL if not hasattr(tpl, m)]
        assert not missing, f"{name} lacks {missing}"


def test_the_targets_union_is_the_registered_models():
    union = typing.get_args(typing.get_args(TargetSpec)[0])
    assert set(union) == {t.model for t in TEMPLATES.values()}
    assert "lend_loop" in TEMPLATES


def test_no_concrete_template_class_is_named_outside_its_module():
    # The config models (``LendTarget``, ...): the names a site would test with isinstance.
    names = {t.model.__name__: type(t).__module__.rsplit(".", 1)[1] + ".py" for t in TEMPLATES.values()}
    offenders = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        for name, home in names.items():
            if re.search(rf"\b{name}\b", text) and not (path.parent.name == "templates" and path.name == home):
                offenders.append(f"{path.relative_to(SRC)}: {name}")
    assert not offenders, offenders


@pytest.mark.parametrize("config", sorted(p.name for p in (ROOT / "configs").glob("*.yaml")
                                          if "sleeves" not in p.read_text()))
def test_every_shipped_target_resolves_to_its_template(config):
    s = load_strategy(ROOT / "configs" / config)
    for t in s.config.targets:
        assert template_for(t).name == t.template


def test_an_unregistered_target_is_refused():
    class Stray(base.TargetModel):
        template: typing.Literal["stray"]

    with pytest.raises(KeyError, match="no template registered for Stray"):
        template_for(Stray(id="x", template="stray"))


# --------------------------------------------------------------------------- every field says what it is
def _fields(model, prefix=""):
    """(dotted name, FieldInfo) of every field of ``model`` and of the blocks it nests (a
    Strict model, or a list of them), walked through the annotations."""
    from pydantic import BaseModel

    for name, info in model.model_fields.items():
        yield prefix + name, info
        for arg in (info.annotation, *typing.get_args(info.annotation)):
            if isinstance(arg, type) and issubclass(arg, BaseModel):
                yield from _fields(arg, f"{prefix}{name}.")


#: A unit a field's name already says (tests/unit/test_rules_parameters.py reads parameters the same way).
NAMED_UNITS = {r"_bps$": "bps", r"_usd$": "USD", r"_h$": "hours", r"_min$": "minutes", r"(^|_)ltv$": "fraction",
               r"(^|_)(allocation|weight)$": "fraction", r"_sd$": "multiple"}


@pytest.mark.parametrize("name", sorted(TEMPLATES))
def test_every_template_field_has_a_description_and_a_unit(name):
    """Every field of every template model, nested blocks included, declares a non-empty
    description and a unit of the shared vocabulary (``-`` for a name, an id, a choice or a
    block), and the unit agrees with what the field's name says (``fee_bps`` is in bps)."""
    fields = list(_fields(TEMPLATES[name].model))
    assert len(fields) >= 3
    missing = [f"{path}: description" for path, info in fields if not (info.description or "").strip()]
    missing += [f"{path}: unit {base.field_unit(info)!r}" for path, info in fields if base.field_unit(info) not in base.FIELD_UNITS]
    assert not missing, f"{name}: " + "; ".join(missing)
    for path, info in fields:
        for pattern, unit in NAMED_UNITS.items():
            if re.search(pattern, path.rsplit(".", 1)[-1]):
                assert base.field_unit(info) == unit, f"{name}.{path}: unit {base.field_unit(info)!r}, its name says {unit!r}"


def test_spec_refuses_a_unit_outside_the_vocabulary():
    with pytest.raises(ValueError, match="unit 'percent'"):
        base.spec("a fee", "percent")


def test_the_config_schema_carries_every_template_fields_description_and_unit():
    """schema/config.schema.json (what editors read) gives each template field its description,
    ending with its unit, and the unit as its own key."""
    import json

    defs = json.loads((ROOT / "schema" / "config.schema.json").read_text())["$defs"]
    checked = 0
    for tpl in TEMPLATES.values():
        props = defs[tpl.model.__name__]["properties"]
        for fname, info in tpl.model.model_fields.items():
            unit = base.field_unit(info)
            assert props[fname]["unit"] == unit and props[fname]["description"].startswith(info.description), (tpl.name, fname)
            if unit != "-":
                assert props[fname]["description"].endswith(f"Unit: {unit}."), (tpl.name, fname)
            checked += 1
    assert defs["SpotTarget"]["properties"]["fee_bps"]["unit"] == "bps"
    assert checked >= 40


def test_params_shows_every_target_field_reachable_by_set(tmp_path):
    """`trimtab params --json` (a real process) lists each target field by the name `--set`
    takes, with value, default, unit and description; the override shows in the value and is
    the value a run would use."""
    import json
    import subprocess
    import sys

    exe = Path(sys.executable).with_name("trimtab")
    cfg = ROOT / "configs" / "eth_basis.yaml"
    out = subprocess.run([str(exe), "params", str(cfg), "--json", "--set", "targets.spot.fee_bps=12",
                          "--set", "targets.hedge.hedge_ratio=0.9"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)["fields"]}
    fee = rows["targets.spot.fee_bps"]
    assert (fee["value"], fee["default"], fee["unit"], fee["target"], fee["template"]) == (12, 10.0, "bps", "spot", "spot")
    assert fee["description"]
    ratio = rows["targets.hedge.hedge_ratio"]
    assert (ratio["value"], ratio["default"], ratio["unit"]) == (0.9, 1.0, "multiple")
    leg = rows["targets.hedge.legs.0.weight"]   # a list item by index, as --set names it
    assert (leg["value"], leg["evaluated"], leg["unit"]) == ("hedge_allocation_binance", pytest.approx(0.4), "fraction")
    alloc = rows["targets.hedge.allocation"]
    assert alloc["value"] == "1 - spot_allocation" and alloc["evaluated"] == pytest.approx(0.5) and alloc["unit"] == "fraction"
    # every field of every target is a row, each with a unit and a description
    s = load_strategy(cfg)
    want = {f"targets.{t.id}.{f}" for t in s.config.targets for f in type(t).model_fields if f not in ("id", "template", "legs")}
    assert want <= set(rows), want - set(rows)
    assert all(r["unit"] and r["description"] for r in rows.values())
    table = subprocess.run([str(exe), "params", str(cfg)], capture_output=True, text=True, timeout=120)
    assert table.returncode == 0 and "targets.spot.fee_bps" in table.stdout and "target fields" in table.stdout
