"""One diagnostic type (trimtab.diagnostics) for config errors and audit findings, formatted only
at the edges; and pydantic's error types mapped to messages by one template table
(trimtab.config.pydantic_errors)."""
from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Annotated

import pytest
from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError
from rich.console import Console

from trimtab.audit import CODES, audit_config, load_error_report
from trimtab.cli.audit import print_table, to_json as report_json, to_markdown
from trimtab.config.load import load_strategy
from trimtab.config.pydantic_errors import validate
from trimtab.config.yamldoc import load_yaml_text
from trimtab.diagnostics import Diagnostic, Severity, format_line, format_path, full_message, to_json
from trimtab.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
CONFIG_CASES = ROOT / "tests" / "cases" / "config"
AUDIT_CASES = ROOT / "tests" / "cases" / "audit"


def test_severity_is_one_enum_that_reads_as_its_value():
    assert [s.value for s in Severity] == ["error", "warning", "info"]
    assert Severity("warning") is Severity.WARNING and Severity.ERROR == "error"
    assert [s.rank for s in Severity] == [0, 1, 2]
    assert json.dumps({"s": Severity.INFO}) == '{"s": "info"}'
    with pytest.raises(ValueError):
        Severity("critical")  # a rule's priority, not a diagnostic severity
    # every audit code's severity is a Severity
    assert all(isinstance(sev, Severity) for sev, _, _ in CODES.values())


def test_a_diagnostic_stores_data_and_the_edges_make_text():
    d = Diagnostic("m.yaml", 4, 7, ("states", "idle", "transitions", 2, "a.b"), "unknown field 'x'", "config",
                   Severity.ERROR, "did you mean 'y'?")
    assert d.path == ("states", "idle", "transitions", 2, "a.b")  # the tuple, not a string
    assert format_path(d.path) == 'states.idle.transitions[2]["a.b"]'
    assert full_message(d) == "unknown field 'x'; did you mean 'y'?"
    assert format_line(d) == str(d) == "m.yaml:4:7: states.idle.transitions[2][\"a.b\"]: unknown field 'x'; did you mean 'y'?"
    assert format_line(d, code=True).startswith("m.yaml:4:7: error: [config] states.idle")
    j = to_json(d)
    assert j["loc"] == ["states", "idle", "transitions", 2, "a.b"] and j["hint"] == "did you mean 'y'?"
    assert json.loads(json.dumps(j)) == j
    # a list path becomes a tuple; equal diagnostics hash equal (the audit de-duplicates them)
    same = Diagnostic("m.yaml", 4, 7, list(d.path), "unknown field 'x'", hint="did you mean 'y'?")
    assert same == d and len({same, d}) == 1
    with pytest.raises(AttributeError):
        d.line = 5  # frozen


def test_config_error_carries_diagnostics_and_survives_pickling():
    err = ConfigError([Diagnostic("b.yaml", 1, 1, (), "z"), Diagnostic("a.yaml", 9, 1, ("x", 0), "y", severity="warning")])
    assert [i.file for i in err.issues] == ["a.yaml", "b.yaml"]
    assert [i.severity for i in err.errors] == [Severity.ERROR]
    back = pickle.loads(pickle.dumps(err))
    assert back.issues == err.issues and str(back) == "a.yaml:9:1: x[0]: y\nb.yaml:1:1: <root>: z"


def test_a_config_that_does_not_load_gives_the_audit_the_same_diagnostics(monkeypatch):
    monkeypatch.chdir(CONFIG_CASES)
    with pytest.raises(ConfigError) as info:
        load_strategy("configs/unknown_field.yaml")
    report = audit_config("configs/unknown_field.yaml", check_data=False)
    assert report.findings == info.value.issues  # one type: nothing converted, nothing re-worded
    typo = [f for f in report.findings if f.path == ("share_clas",)]
    assert len(typo) == 1 and typo[0].code == "config" and typo[0].severity is Severity.ERROR
    assert typo[0].message == "unknown field 'share_clas'" and typo[0].hint.startswith("did you mean 'share_class'?")
    # the hint reaches every edge: JSON, Markdown and the table
    (cfg,) = json.loads(report_json([report]))["configs"]
    (f,) = [f for f in cfg["findings"] if f["loc"] == ["share_clas"]]
    assert (f["path"], f["line"], f["col"], f["code"]) == ("share_clas", 9, 1, "config")
    assert f["hint"].startswith("did you mean 'share_class'?")
    md = to_markdown([report])
    assert "| error | `config` | `configs/unknown_field.yaml:9:1` | share_clas: unknown field 'share_clas'; did you mean" in md
    console = Console(record=True, width=400)
    print_table([report], console)
    assert "share_clas: unknown field 'share_clas'; did you mean 'share_class'?" in console.export_text()


def test_an_error_that_is_not_a_config_error_becomes_one_root_diagnostic():
    from trimtab.errors import TrimtabError

    r = load_error_report("x.yaml", TrimtabError("no  data\n here"))
    assert r.findings == [Diagnostic("x.yaml", 1, 1, (), "no data here")]


def test_audit_findings_are_diagnostics_with_tuple_paths(market):
    r = audit_config(AUDIT_CASES / "unreachable_state" / "configs" / "x.yaml", data=market)
    (f,) = [f for f in r.findings if f.code == "unreachable-state"]
    assert isinstance(f, Diagnostic) and f.path == ("states", "paused") and f.severity is Severity.ERROR
    assert (f.line, f.col) == (30, 3) and f.hint is None
    assert r.errors == [x for x in r.findings if x.severity is Severity.ERROR]
    assert r.findings == sorted(r.findings, key=lambda x: (x.severity.rank, x.file, x.line, x.col, x.code, x.message))


# --------------------------------------------------------------------------- pydantic messages
def _positive_even(v: int) -> int:
    if v % 2:
        raise PydanticCustomError("odd", "must be even, got {v}", {"v": v})
    return v


class Knobs(BaseModel):
    model_config = ConfigDict(extra="forbid")
    step: float = Field(1.0, multiple_of=0.5)
    tags: list[str] = Field(default_factory=list, max_length=2)
    name: str = Field("n", min_length=2, pattern=r"^[a-z]+$")
    code: str = Field("ab", pattern=r"^[a-z]+$")
    even: Annotated[int, AfterValidator(_positive_even)] = 2
    level: int = Field(1, le=3)


@pytest.mark.parametrize("yaml, path, message", [
    ("step: 0.7\n", ("step",), "must be a multiple of 0.5, got 0.7"),
    ("tags: [a, b, c]\n", ("tags",), "needs at most 2 items, got 3"),
    ("name: a\n", ("name",), "must have at least 2 characters, got 'a'"),
    ("code: A1\n", ("code",), "must match the pattern '^[a-z]+$', got 'A1'"),
    ("even: 3\n", ("even",), "must be even, got 3"),  # a validator's PydanticCustomError, as written
    ("level: 4\n", ("level",), "must be <= 3, got 4"),
    ("level: x\n", ("level",), "expected an integer, got 'x'"),
    ("levle: 2\n", ("levle",), "unknown field 'levle'"),
])
def test_each_pydantic_error_type_has_one_message(yaml, path, message):
    doc = load_yaml_text(yaml, "k.yaml")
    model, issues = validate(Knobs, doc)
    assert model is None and len(issues) == 1
    (d,) = issues
    assert (d.file, d.line, d.path, d.message, d.code) == ("k.yaml", 1, path, message, "config")


def test_an_unknown_field_hints_at_the_allowed_fields():
    (d,) = validate(Knobs, load_yaml_text("levle: 2\n", "k.yaml"))[1]
    assert d.hint == "did you mean 'level'? allowed: step, tags, name, code, even, level"
    (d,) = validate(Knobs, load_yaml_text("zzzzzz: 2\n", "k.yaml"))[1]
    assert d.hint == "allowed: step, tags, name, code, even, level"


def test_validate_prints_the_same_diagnostics_as_text_or_json(monkeypatch):
    from typer.testing import CliRunner

    from trimtab.cli.main import app

    monkeypatch.chdir(CONFIG_CASES)
    text = CliRunner().invoke(app, ["validate", "configs/unknown_field.yaml"])
    js = CliRunner().invoke(app, ["validate", "--json", "configs/unknown_field.yaml"])
    assert text.exit_code == js.exit_code == 1
    out = json.loads(js.stdout)
    (cfg,) = out["configs"]
    assert out["errors"] == 1 and cfg["ok"] is False and cfg["config"] == "configs/unknown_field.yaml"
    lines = [ln for ln in text.stdout.splitlines() if ln.startswith("configs/")]
    rebuilt = [f"{d['file']}:{d['line']}:{d['col']}: {d['path']}: {d['message']}" + (f"; {d['hint']}" if d["hint"] else "")
               for d in cfg["diagnostics"]]
    assert rebuilt == lines and len(lines) == 2
