"""Start-up speed paths give exactly what the slow paths give (issue 14, lane S).

* YAML: :mod:`trimtab.data.yamlfast` composes with libyaml; every file it vouches for must give
  ruamel's node tree (class, tag, value, style, marks, shared aliases) and the same
  :func:`~trimtab.config.yamldoc.load_yaml_text` result (data, positions, or the same issues);
  everything else must be left to ruamel (``None``).
* The series catalog: the libyaml path gives the specs ruamel's gives; it is parsed on first use.
* The audit's solver memos and the cached known-series table hand out copies.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml.nodes import MappingNode, ScalarNode

from trimtab.audit.intervals import Solver
from trimtab.config import domains
from trimtab.config.yamldoc import _Bounds, _compose_ruamel, load_yaml_text
from trimtab.data import yamlfast
from trimtab.data.catalog import CATALOG_FILE, CatalogError, load_catalog
from trimtab.errors import ConfigError
from trimtab.rules.parse import parse

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = sorted(p for d in ("configs", "machines", "rules", "venues", "feeds", "tests/cases/config")
                 for p in (ROOT / d).rglob("*.yaml")) + [CATALOG_FILE]

# Each snippet is one construct the fast path must either reproduce exactly or leave to ruamel.
SNIPPETS = [
    "a: 1\nb: [x, 'y', \"z\\n\"]\nc: {d: 2, e: [3, 4]}\n",
    "k: >\n  folded line one\n  line two\n\n  after a blank\nz: 1\n",        # ruamel keeps \a fold marks
    "outer:\n  k: >-\n    a\n    b\n  j: |\n    lit\n     more\n",
    "k: |+\n  kept\n\n\nz: 1\n",
    "k: >\n  no final newline",
    "base: &b {x: 1, y: 2}\nuse:\n  <<: *b\n  y: 3\n",
    "a: &s text\nb: *s\nc: [*s, *s]\n",
    "note: é → ü 😀\nkey: \"\\u00e9\\t\"\n",
    "plain: multi\n  line plain\nquoted: 'multi\n  line'\n",
    "n: ~\nm: null\nb: true\no: 0o17\nh: 0x1f\nu: 1_000\nf: 1e3\ni: .inf\nd: 2024-01-01\n",
    "---\na: 1\n...\n",
]
FALLBACK = [
    "a: !custom 1\n",                 # a tag
    "%YAML 1.1\n---\na: yes\n",       # a directive (1.1 rules)
    "a:\tb\n",                        # a tab
    "a: 1\r\nb: 2\r\n",               # \r
    "a:\nb: 1\n",                     # an empty value (the two mark it differently)
    "a: 1\n---\nb: 2\n",              # a second document
    "a: *nowhere\n",                  # an undefined alias
    "a: &x 1\nb: &x 2\n",             # an anchor defined twice
    "a: [1, 2\n",                     # a syntax error
    "\ufeffa: 1\n",                   # a byte-order mark
    "k: |\n    \n  less\n",           # a block scalar ruamel refuses
    "- >\n  folded in a sequence\n",  # a block scalar outside a block mapping
    "",                               # empty
]


def _same_tree(a, b, seen: dict) -> None:
    assert type(a) is type(b)
    assert (a.start_mark.line, a.start_mark.column) == (b.start_mark.line, b.start_mark.column)
    assert (a.tag, a.anchor) == (b.tag, b.anchor)
    if id(a) in seen:  # an alias: the same node object in both trees
        assert seen[id(a)] is b
        return
    seen[id(a)] = b
    if isinstance(a, ScalarNode):
        assert (a.value, a.style) == (b.value, b.style)
        return
    assert a.flow_style == b.flow_style and len(a.value) == len(b.value)
    for x, y in zip(a.value, b.value):
        if isinstance(a, MappingNode):
            _same_tree(x[0], y[0], seen)
            _same_tree(x[1], y[1], seen)
        else:
            _same_tree(x, y, seen)


def _fast(text: str):
    """yamlfast's tree under the loader's own bounds (as load_yaml_text calls it)."""
    bounds = _Bounds("f.yaml")
    return yamlfast.compose(text, lambda kind, anchor, mark: bounds.step(kind, anchor, mark) is not None)


def _outcome(text: str, fast: bool):
    try:
        doc = load_yaml_text(text, "f.yaml", fast=fast)
    except ConfigError as e:
        return "error", [(d.line, d.col, d.path, d.message, d.hint) for d in e.issues]
    return "ok", repr(doc.data), doc._values, doc._keys


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else p.name)
def test_shipped_yaml_loads_the_same_through_libyaml(path):
    text = path.read_bytes().decode("utf-8-sig", errors="replace")  # as load_yaml decodes (one case is not UTF-8)
    assert _outcome(text, fast=True) == _outcome(text, fast=False)
    fast = _fast(text)
    if fast is not None:
        _same_tree(_compose_ruamel(text, str(path)), fast, {})


def test_the_shipped_files_take_the_fast_path():
    # What a run reads must not fall back to the slow parser (it would still be right, only slow).
    for d in ("configs", "machines", "rules", "venues"):
        for p in (ROOT / d).glob("*.yaml"):
            assert _fast(p.read_text(encoding="utf-8")) is not None, p


@pytest.mark.parametrize("text", SNIPPETS)
def test_snippets_compose_as_ruamel_does(text):
    fast = _fast(text)
    assert fast is not None
    _same_tree(_compose_ruamel(text, "f.yaml"), fast, {})
    assert _outcome(text, fast=True) == _outcome(text, fast=False)


def test_folded_scalars_keep_ruamels_fold_marks():
    data = load_yaml_text("k: >\n  one\n  two\n", fast=True).data
    assert data == load_yaml_text("k: >\n  one\n  two\n", fast=False).data
    assert "\a" in data["k"]  # what trimtab's loader has always returned; kept bit for bit


@pytest.mark.filterwarnings("ignore::ruamel.yaml.error.ReusedAnchorWarning")  # ruamel's, on the reused anchor
@pytest.mark.parametrize("text", FALLBACK)
def test_what_libyaml_cannot_vouch_for_goes_to_ruamel(text):
    assert _fast(text) is None
    assert _outcome(text, fast=True) == _outcome(text, fast=False)


def test_a_bound_crossed_abandons_the_fast_path_before_anything_expands():
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + k)}: &{chr(98 + k)} [{', '.join(['*' + chr(97 + k)] * 9)}]\n" for k in range(8))
    seen: list[str] = []

    def see(kind, anchor, mark):
        seen.append(kind)
        return len(seen) > 50  # the caller's bound
    assert yamlfast.compose(bomb, see) is None
    assert len(seen) == 51
    out = _outcome(bomb, fast=True)
    assert out == _outcome(bomb, fast=False) and out[0] == "error" and "alias bomb" in out[1][0][3]


def test_catalog_through_libyaml_equals_ruamel(tmp_path):
    assert load_catalog(CATALOG_FILE) == load_catalog(CATALOG_FILE, fast=False)
    # values the fast path leaves to ruamel (a zero, a folded note) still load the same
    user = tmp_path / "catalog.yaml"
    user.write_text("format: 1\nseries:\n  perp.myex.SOLUSDT:\n    files: [a.csv]\n    kind: bar\n    interval: 1h\n"
                    "    clock: bar_close\n    columns: {close: c}\n    note: >\n      folded\n      note\n")
    assert load_catalog(user, base=tmp_path) == load_catalog(user, base=tmp_path, fast=False)
    assert load_catalog(user)["perp.myex.SOLUSDT"].note == "folded note\n"
    user.write_text("format: 0\nseries: {}\n")
    with pytest.raises(CatalogError) as fast_err:
        load_catalog(user)
    with pytest.raises(CatalogError) as slow_err:
        load_catalog(user, fast=False)
    assert str(fast_err.value) == str(slow_err.value)


def test_the_shipped_catalog_is_read_on_first_use_only():
    code = ("import trimtab.data.catalog as c, trimtab.config.domains; print('CATALOG' in vars(c), c._SHIPPED is None); "
            "n = len(c.CATALOG); print('CATALOG' in vars(c), n == len(c.BY_NAME) > 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True", "True", "True"]


def test_known_series_hands_out_a_copy():
    known = domains.known_series()
    name, cols = next(iter(known.items()))
    cols.append("invented")
    known.clear()
    assert domains.field_error(f"{name}.invented") is not None
    assert domains.field_error(f"{name}.{domains.known_series()[name][0]}") is None


def test_solver_memos_answer_alike_and_hand_out_copies():
    solver = Solver({"enter": 1.05, "leave": 1.1})
    g = parse("health_factor < enter and margin_ratio_min < 0.5")
    first = solver.satisfiable(g)
    first["health_factor"] = None  # a caller's change must not reach the memo
    again = solver.satisfiable(g)
    assert again is not None and again["health_factor"] is not None
    assert again == Solver({"enter": 1.05, "leave": 1.1}).satisfiable(g)
    assert solver.can_hold(parse("health_factor < leave"), negated=[parse("health_factor < enter")])
    assert not solver.can_hold(parse("health_factor < 1.0"), negated=[parse("health_factor < enter")])
