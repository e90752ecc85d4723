"""YAML loading with positions (trimtab.config.yamldoc) and pydantic validation errors mapped to
file:line:col diagnostics (trimtab.config.pydantic_errors)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal, Union

import pytest

try:  # the package may not be installed in the venv yet (``make test`` installs it)
    import trimtab  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from trimtab.config.pydantic_errors import pydantic_issues, validate
from trimtab.config.wording import suggest
from trimtab.config.yamldoc import YamlDoc, load_yaml, load_yaml_text
from trimtab.diagnostics import Diagnostic, Severity, format_path, full_message, to_json
from trimtab.errors import ConfigError, TrimtabError


def write(tmp_path: Path, text: str, name: str = "strategy.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def load_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        load_yaml(path)
    return info.value


# ---------------------------------------------------------------- models


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Rule(Strict):
    name: str
    trigger: str | None = None
    threshold: float = 0.0
    severity: Literal["info", "warn", "critical"] = "warn"


class Swap(Strict):
    kind: Literal["swap"]
    amount: float
    slippage_bps: int = 30


class Lend(Strict):
    kind: Literal["lend"]
    venue: str
    amount: float = 0.0


Action = Annotated[Union[Swap, Lend], Field(discriminator="kind")]


class Strategy(Strict):
    name: str
    mode: Literal["live", "paper", "backtest"]
    max_ltv: float
    description: str = ""
    rules: list[Rule] = []
    actions: list[Action] = []
    size: Union[PositiveInt, Literal["max"]] = 1


# ---------------------------------------------------------------- positions

NESTED = """\
name: demo
params:
  target_ltv: 0.85
  limits:
    hf_min: 1.1
venues:
  - aave
  - binance
rules:
  - name: r1
    trigger: hf < 1.1
  - name: r2
flow_map: {a: 1, b: two}
flow_seq: [x, 10, {k: v}]
"""


def test_positions_of_nested_values_keys_and_list_items(tmp_path):
    doc = load_yaml(write(tmp_path, NESTED))
    assert doc.locate(("name",)) == (1, 7)
    assert doc.locate_key(("name",)) == (1, 1)
    assert doc.locate(("params", "target_ltv")) == (3, 15)
    assert doc.locate_key(("params", "target_ltv")) == (3, 3)
    assert doc.locate(("params", "limits", "hf_min")) == (5, 13)
    assert doc.locate_key(("params", "limits", "hf_min")) == (5, 5)
    # list items: scalars and mappings
    assert doc.locate(("venues", 0)) == (7, 5)
    assert doc.locate(("venues", 1)) == (8, 5)
    assert doc.locate(("rules", 1)) == (12, 5)
    assert doc.locate(("rules", 0, "trigger")) == (11, 14)
    assert doc.locate_key(("rules", 0, "trigger")) == (11, 5)
    # a collection's position is where its content starts
    assert doc.locate(("venues",)) == (7, 3)
    assert doc.locate(()) == (1, 1)


def test_positions_in_flow_style(tmp_path):
    doc = load_yaml(write(tmp_path, NESTED))
    assert doc.locate(("flow_map",)) == (13, 11)
    assert doc.locate_key(("flow_map", "a")) == (13, 12)
    assert doc.locate(("flow_map", "a")) == (13, 15)
    assert doc.locate_key(("flow_map", "b")) == (13, 18)
    assert doc.locate(("flow_map", "b")) == (13, 21)
    assert doc.locate(("flow_seq", 0)) == (14, 12)
    assert doc.locate(("flow_seq", 1)) == (14, 15)
    assert doc.locate(("flow_seq", 2, "k")) == (14, 23)
    assert doc.locate_key(("flow_seq", 2, "k")) == (14, 20)


def test_missing_paths_fall_back_to_nearest_ancestor(tmp_path):
    doc = load_yaml(write(tmp_path, NESTED))
    assert doc.locate(("params", "limits", "nope", "deeper")) == doc.locate(("params", "limits"))
    assert doc.locate(("rules", 7, "x")) == doc.locate(("rules",))
    assert doc.locate(("absent",)) == (1, 1)
    # locate_key falls back to locate
    assert doc.locate_key(("venues", 0)) == doc.locate(("venues", 0))
    assert doc.locate_key(("params", "missing")) == doc.locate(("params",))


def test_empty_value_points_at_its_key(tmp_path):
    doc = load_yaml(write(tmp_path, "a:\nb: 1\nc:   \n"))
    assert doc.data == {"a": None, "b": 1, "c": None}
    assert doc.locate(("a",)) == (1, 1)
    assert doc.locate(("c",)) == (3, 1)


def test_data_is_plain_python_with_keys_as_written(tmp_path):
    text = "z: 1\n1: one\ntrue: yes-ish\nnull: n\nf: 2.5\nb: false\nn:\ns: 'quoted'\nl: [1, 2]\nm: {x: y}\n"
    doc = load_yaml(write(tmp_path, text))
    assert doc.data == {
        "z": 1, "1": "one", "true": "yes-ish", "null": "n", "f": 2.5, "b": False,
        "n": None, "s": "quoted", "l": [1, 2], "m": {"x": "y"},
    }
    assert list(doc.data) == ["z", "1", "true", "null", "f", "b", "n", "s", "l", "m"]
    assert type(doc.data) is dict and type(doc.data["l"]) is list and type(doc.data["m"]) is dict
    assert type(doc.data["f"]) is float and type(doc.data["z"]) is int and type(doc.data["b"]) is bool
    assert type(doc.data["s"]) is str
    assert doc.locate(("1",)) == (2, 4)
    assert doc.locate_key(("true",)) == (3, 1)


def test_file_is_kept_as_given_and_text_loader(tmp_path, monkeypatch):
    write(tmp_path, "a: 1\n", "rel.yaml")
    monkeypatch.chdir(tmp_path)
    doc = load_yaml("rel.yaml")
    assert doc.file == "rel.yaml"
    assert doc.issue(("a",), "bad").file == "rel.yaml"
    doc2 = load_yaml_text("a: {b: 2}\n")
    assert doc2.file == "<string>"
    assert doc2.locate(("a", "b")) == (1, 8)


def test_merge_keys_and_aliases(tmp_path):
    text = "base: &base {fee: 1, venue: aave}\nleg:\n  <<: *base\n  fee: 2\ncopy: *base\n"
    doc = load_yaml(write(tmp_path, text))
    assert doc.data["leg"] == {"venue": "aave", "fee": 2}
    assert doc.data["copy"] == {"fee": 1, "venue": "aave"}
    assert doc.data["copy"] is not doc.data["base"]
    assert doc.locate(("leg", "fee")) == (4, 8)
    assert doc.locate(("leg", "venue")) == (1, 29)  # the anchored definition


# ---------------------------------------------------------------- load errors


def test_syntax_error_reports_parser_position(tmp_path):
    p = write(tmp_path, "name: demo\nparams:\n  a: 1\n   b: 2\n")
    err = load_error(p)
    assert len(err.issues) == 1
    issue = err.issues[0]
    assert (issue.line, issue.col) == (4, 5)
    assert issue.message.startswith("YAML syntax error: mapping values are not allowed here")
    assert str(issue).startswith(f"{p}:4:5: <root>: YAML syntax error")


def test_unclosed_flow_collection_names_where_it_started(tmp_path):
    err = load_error(write(tmp_path, "a: 1\nb: {x: 1,\n  y: 2\n"))
    (issue,) = err.issues
    assert issue.message.startswith("YAML syntax error: expected ',' or '}'")
    assert "started at line 2, column 4" in issue.message


def test_tab_indentation_gets_a_hint(tmp_path):
    (issue,) = load_error(write(tmp_path, "a:\n\tb: 1\n")).issues
    assert (issue.line, issue.col) == (2, 1)
    assert issue.message == "YAML syntax error: found character '\\t' that cannot start any token"
    assert issue.hint == "YAML indentation must use spaces, not tabs"


def test_duplicate_keys_all_reported_with_both_lines(tmp_path):
    p = write(tmp_path, "a: 1\nb:\n  c: 2\n  d: 3\n  c: 4\na: 5\n")
    err = load_error(p)
    assert [str(i) for i in err.issues] == [
        f"{p}:5:3: b.c: duplicate key 'c' (first defined at line 3, column 3); "
        "YAML keeps only one value, so remove or rename one of them",
        f"{p}:6:1: a: duplicate key 'a' (first defined at line 1, column 1); "
        "YAML keeps only one value, so remove or rename one of them",
    ]


def test_int_and_bool_keys_do_not_collide(tmp_path):
    # In Python 1 == True; the loader must not see these as duplicates.
    doc = load_yaml(write(tmp_path, "1: a\ntrue: b\n"))
    assert doc.data == {"1": "a", "true": "b"}


def test_missing_file(tmp_path):
    p = tmp_path / "nope.yaml"
    err = load_error(p)
    assert str(err) == f"{p}:1:1: <root>: file not found"


def test_top_level_must_be_a_mapping(tmp_path):
    (issue,) = load_error(write(tmp_path, "- a\n- b\n")).issues
    assert issue.message == "the top level must be a mapping of 'key: value' pairs, got a list"
    (issue,) = load_error(write(tmp_path, "just text\n")).issues
    assert issue.message == "the top level must be a mapping of 'key: value' pairs, got 'just text'"
    (issue,) = load_error(write(tmp_path, "# only a comment\n")).issues
    assert issue.message.startswith("file is empty")


def test_custom_tags_are_rejected(tmp_path):
    (issue,) = load_error(write(tmp_path, "a: 1\nb: !Ref x\n")).issues
    assert (issue.line, issue.col, issue.path) == (2, 4, ("b",))
    assert "unsupported YAML tag '!Ref'" in issue.message


# ---------------------------------------------------------------- helpers


def test_format_path():
    assert format_path(("states", "idle", "action")) == "states.idle.action"
    assert format_path(("transitions", 2, "dest")) == "transitions[2].dest"
    assert format_path((0, "a")) == "[0].a"
    assert format_path(()) == "<root>"
    assert format_path(("m", "a.b")) == 'm["a.b"]'


def test_suggest():
    assert suggest("trgger", ["trigger", "action"]) == " (did you mean 'trigger'?)"
    assert suggest("Trigger", ["trigger"]) == " (did you mean 'trigger'?)"
    assert suggest("zzz", ["trigger", "action"]) == ""
    assert suggest("x", []) == ""


def test_error_types_and_formatting():
    a = Diagnostic("f.yaml", 3, 1, ("b", 0), "second", hint="do this")
    b = Diagnostic("f.yaml", 1, 5, ("a",), "first")
    assert str(a) == "f.yaml:3:1: b[0]: second; do this"
    assert a.severity is Severity.ERROR and a.code == "config"
    assert Diagnostic("f.yaml", 1, 1, (), "m", severity="warning").severity is Severity.WARNING
    # sorting compares formatted paths, so int and str keys at one position never clash
    assert sorted([Diagnostic("f", 1, 1, ("x", 1), "m"), Diagnostic("f", 1, 1, ("x", "a"), "m")])[0].path == ("x", "a")
    err = ConfigError([a, b])
    assert err.issues == [b, a]
    assert str(err) == "f.yaml:1:5: a: first\nf.yaml:3:1: b[0]: second; do this"
    assert to_json(a) == {"file": "f.yaml", "line": 3, "col": 1, "code": "config", "path": "b[0]", "message": "second",
                          "severity": "error", "hint": "do this", "loc": ["b", 0]}
    assert isinstance(err, TrimtabError)
    with pytest.raises(Exception):
        a.line = 2  # frozen


# ---------------------------------------------------------------- validation

FOUR_MISTAKES = """\
name: demo
mode: livee
max_ltv: 0.8
descripton: leveraged staking
rules:
  - name: hf_low
    threshold: abc
actions:
  - kind: swap
    amount: 100
  - kind: lend
    amount: 5
"""


def test_four_mistakes_give_exactly_four_located_issues(tmp_path):
    p = write(tmp_path, FOUR_MISTAKES)
    doc = load_yaml(p)
    model, issues = validate(Strategy, doc)
    assert model is None
    assert [str(i) for i in issues] == [
        f"{p}:2:7: mode: invalid value 'livee'; did you mean 'live'? allowed: live, paper, backtest",
        f"{p}:4:1: descripton: unknown field 'descripton'; did you mean 'description'? "
        "allowed: name, mode, max_ltv, description, rules, actions, size",
        f"{p}:7:16: rules[0].threshold: expected a number, got 'abc'",
        f"{p}:11:5: actions[1]: missing required field 'venue' (a string)",
    ]
    assert all(isinstance(i, Diagnostic) and i.severity is Severity.ERROR for i in issues)


def test_valid_file_returns_the_model(tmp_path):
    fixed = (
        FOUR_MISTAKES.replace("livee", "live").replace("descripton", "description")
        .replace("abc", "1.1").replace("amount: 5", "venue: aave")
    )
    model, issues = validate(Strategy, load_yaml(write(tmp_path, fixed)))
    assert issues == []
    assert isinstance(model, Strategy)
    assert isinstance(model.actions[1], Lend) and model.rules[0].threshold == 1.1


def test_discriminated_union_errors_are_one_line_each(tmp_path):
    text = """\
name: d
mode: paper
max_ltv: 0.5
actions:
  - kind: swapp
    amount: 1
  - {amount: 2}
  - kind: swap
    amount: [1, 2]
  - just a string
"""
    p = write(tmp_path, text)
    _, issues = validate(Strategy, load_yaml(p))
    assert [str(i) for i in issues] == [
        f"{p}:5:11: actions[0].kind: unknown kind 'swapp'; did you mean 'swap'? allowed: swap, lend",
        f"{p}:7:5: actions[1]: missing required field 'kind' (selects the variant; allowed: swap, lend)",
        f"{p}:9:13: actions[2].amount: expected a number, got a list",
        f"{p}:10:5: actions[3]: expected a mapping, got 'just a string'",
    ]


def test_smart_union_collapses_to_one_message(tmp_path):
    base = "name: d\nmode: paper\nmax_ltv: 0.5\n"
    p = write(tmp_path, base + "size: maxx\n")
    _, issues = validate(Strategy, load_yaml(p))
    assert [str(i) for i in issues] == [
        f"{p}:4:7: size: expected an integer or 'max', got 'maxx'; did you mean 'max'?"
    ]
    # the branch that fits the value wins: a negative integer is an integer problem
    p = write(tmp_path, base + "size: -3\n")
    _, issues = validate(Strategy, load_yaml(p))
    assert [i.message for i in issues] == ["must be > 0, got -3"]


def test_type_messages_and_missing_at_parent(tmp_path):
    text = """\
mode: paper
max_ltv:
rules:
  - name: [a]
    severity: critcal
  - threshold: 1
"""
    p = write(tmp_path, text)
    _, issues = validate(Strategy, load_yaml(p))
    assert [str(i) for i in issues] == [
        f"{p}:1:1: <root>: missing required field 'name' (a string)",
        f"{p}:2:1: max_ltv: expected a number, got an empty value (null)",
        f"{p}:4:11: rules[0].name: expected a string, got a list",
        f"{p}:5:15: rules[0].severity: invalid value 'critcal'; did you mean 'critical'? "
        "allowed: info, warn, critical",
        f"{p}:6:5: rules[1]: missing required field 'name' (a string)",
    ]


def test_validate_a_subtree_with_base_and_data(tmp_path):
    text = "version: 1\nstrategy:\n  rules:\n    - name: r\n      trgger: x\n"
    doc = load_yaml(write(tmp_path, text))
    _, issues = validate(Rule, doc, base=("strategy", "rules", 0))
    assert [(i.line, i.col, i.path) for i in issues] == [(5, 7, ("strategy", "rules", 0, "trgger"))]
    assert issues[0].message == "unknown field 'trgger'"
    assert issues[0].hint.startswith("did you mean 'trigger'?")
    # explicit data (e.g. after preprocessing) located at base
    _, issues = validate(Rule, doc, base=("strategy", "rules", 0), data={"name": "r", "severity": "bad"})
    assert [(i.line, i.col, i.path) for i in issues] == [(4, 7, ("strategy", "rules", 0, "severity"))]
    # non-model types work too
    _, issues = validate(list[Rule], doc, base=("strategy", "rules"))
    assert [format_path(i.path) for i in issues] == ["strategy.rules[0].trgger"]


def test_pydantic_issues_of_a_validation_error(tmp_path):
    doc = load_yaml(write(tmp_path, "name: r\ntrgger: x\n"))
    with pytest.raises(ValidationError) as info:
        Rule.model_validate(doc.data)
    (issue,) = pydantic_issues(info.value, doc, model=Rule)
    assert (issue.line, issue.col, issue.path) == (2, 1, ("trgger",))
    assert full_message(issue) == (
        "unknown field 'trgger'; did you mean 'trigger'? allowed: name, trigger, threshold, severity"
    )


def test_yamldoc_issue_helper(tmp_path):
    doc = load_yaml(write(tmp_path, NESTED))
    assert isinstance(doc, YamlDoc)
    i = doc.issue(("rules", 0, "trigger"), "unknown metric 'hf'", severity="warning")
    assert str(i) == f"{doc.file}:11:14: rules[0].trigger: unknown metric 'hf'"
    assert i.severity == "warning"
    assert doc.issue(("rules", 0, "trigger"), "x", key=True).col == 5
