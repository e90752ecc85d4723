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
