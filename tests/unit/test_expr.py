"""Tests for the rule-guard expression language (trimtab.rules)."""

from __future__ import annotations

import builtins
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trimtab.rules.comparison import Comparison
from trimtab.rules.compile import CompiledExpr, compile_expr
from trimtab.rules.nodes import ExprError, Node, names
from trimtab.rules.parse import parse
from trimtab.rules.printer import to_text

NAN = math.nan
INF = math.inf


def shape(node: Node):
    """Structure without positions; nested and/or flattened (parse flattens them too)."""
    kids = []
    for child in node.children:
        if node.kind in ("and", "or") and child.kind == node.kind:
            kids.extend(shape(child)[2])
        else:
            kids.append(shape(child))
    return (node.kind, node.value, tuple(kids))


def s(text: str):
    return shape(parse(text))


def name(n):
    return ("name", n, ())


def num(v):
    return ("num", float(v), ())


def same_float(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    return a == b and math.copysign(1, a) == math.copysign(1, b)


def same_comparison(a: Comparison, b: Comparison) -> bool:
    return (
        (a.text, a.left_text, a.op, a.right_text, a.result)
        == (b.text, b.left_text, b.op, b.right_text, b.result)
        and same_float(a.observed, b.observed)
        and same_float(a.threshold, b.threshold)
    )


# ------------------------------------------------------------------------------------------
# Parsing and precedence
# ------------------------------------------------------------------------------------------


def test_precedence_or_and_not_comparison():
    assert s("a < b or c < d and not e > f") == (
        "or",
        None,
        (
            ("cmp", "<", (name("a"), name("b"))),
            (
                "and",
                None,
                (
                    ("cmp", "<", (name("c"), name("d"))),
                    ("not", None, (("cmp", ">", (name("e"), name("f"))),)),
                ),
            ),
        ),
    )


def test_precedence_arithmetic_and_unary():
    assert s("a + b * c") == ("binop", "+", (name("a"), ("binop", "*", (name("b"), name("c")))))
    assert s("a - b - c") == ("binop", "-", (("binop", "-", (name("a"), name("b"))), name("c")))
    assert s("a / b / c") == ("binop", "/", (("binop", "/", (name("a"), name("b"))), name("c")))
    assert s("-a * b") == ("binop", "*", (("unary", "-", (name("a"),)), name("b")))
    assert s("(a + b) * c")[2][0] == ("binop", "+", (name("a"), name("b")))
    assert s("a * b > c + d") == (
        "cmp",
        ">",
        (("binop", "*", (name("a"), name("b"))), ("binop", "+", (name("c"), name("d")))),
    )
    assert s("--a") == ("unary", "-", (("unary", "-", (name("a"),)),))
    inner = ("cmp", "<", (name("x"), num(1)))
    assert s("not not x < 1") == ("not", None, (("not", None, (inner,)),))


def test_atoms_numbers_bools_names_calls():
    assert s("1") == num(1)
    assert s("1.10") == num(1.1)
    assert s("1e-6") == num(1e-6)
    assert s(".5") == num(0.5)
    assert s("2.5E+3") == num(2500)
    assert s("true") == ("bool", True, ())
    assert s("false") == ("bool", False, ())
    assert s("margin_ratio.binance") == name("margin_ratio.binance")
    assert s("_x1.y_2.z") == name("_x1.y_2.z")
    assert s("abs(x)") == ("call", "abs", (name("x"),))
    assert s("min(a, b, 3)") == ("call", "min", (name("a"), name("b"), num(3)))
    assert s("max(a,b)") == ("call", "max", (name("a"), name("b")))
    assert s(" \n a\t<\n1 ") == ("cmp", "<", (name("a"), num(1)))


def test_and_or_chains_are_flattened():
    assert s("a and b and c") == ("and", None, (name("a"), name("b"), name("c")))
    assert s("(a and b) and c") == ("and", None, (name("a"), name("b"), name("c")))
    assert s("a or (b or c)") == ("or", None, (name("a"), name("b"), name("c")))
    assert s("(a or b) and c")[2][0][0] == "or"


def test_spans():
    src = "abs(delta_drift) > max_delta_drift and (t >= 4)"
    node = parse(src)
    assert (node.start, node.end) == (0, len(src))
    cmp1, cmp2 = node.children
    assert src[cmp1.start : cmp1.end] == "abs(delta_drift) > max_delta_drift"
    assert src[cmp2.start : cmp2.end] == "(t >= 4)"  # spans include parentheses
    call = cmp1.children[0]
    assert src[call.children[0].start : call.children[0].end] == "delta_drift"


def test_names_excludes_functions():
    node = parse("abs(delta_drift) > max_delta_drift and min(a.b, c) < max(c, 1)")
    assert names(node) == frozenset({"delta_drift", "max_delta_drift", "a.b", "c"})
    assert names(parse("1 < 2")) == frozenset()


def test_to_text_canonical_and_minimal():
    cases = {
        "(a+b)*c": "(a + b) * c",
        "a+(b*c)": "a + b * c",
        "a-(b-c)": "a - (b - c)",
        "(a-b)-c": "a - b - c",
        "a/(b*c)": "a / (b * c)",
        "-(a+b)": "-(a + b)",
        "-(-a)": "--a",
        "not (a < b)": "not a < b",
        "not (a and b)": "not (a and b)",
        "(not a) and b": "not a and b",
        "a or (b and c)": "a or b and c",
        "(a or b) and c": "(a or b) and c",
        "(a < b) == (c < d)": "(a < b) == (c < d)",
        "min( a ,b,   1.50)": "min(a, b, 1.5)",
        "1.0 + 1e-6 + 2e20": "1 + 1e-06 + 2e+20",
        "x.y >= .5": "x.y >= 0.5",
        "true != (false)": "true != false",
    }
    for src, want in cases.items():
        assert to_text(parse(src)) == want, src
        assert to_text(parse(want)) == want


def test_to_text_rejects_malformed_nodes():
    with pytest.raises(ValueError):
        to_text(Node("pow", None, (), 0, 0))
    with pytest.raises(ValueError):
        to_text(Node("num", NAN, (), 0, 0))


# ------------------------------------------------------------------------------------------
# Errors and their offsets
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "src, offset, fragment",
    [
        ("exp(x)", 0, "unknown function 'exp'"),
        ("a <", 3, "end of expression"),
        ("(a", 0, "unclosed '('"),
        ("a < b < c", 6, "chained"),
        ("a < (b) > c", 8, "chained"),
        ("__import__('os')", 0, "unknown function '__import__'"),
        ("a.b()", 0, "unknown function 'a.b'"),
        ("x[0]", 1, "unexpected character '['"),
        ("", 0, "empty expression"),
        ("a)", 1, "unmatched ')'"),
        ("a b", 2, "unexpected name 'b'"),
        ("(a b)", 3, "expected ')'"),
        ("min(a, b", 3, "unclosed '('"),
        ("min(a)", 0, "at least 2"),
        ("abs(a, b)", 0, "exactly 1"),
        ("abs()", 0, "exactly 1"),
        ("min(a,)", 6, "expected a value"),
        ("()", 1, "empty parentheses"),
        ("a and", 5, "end of expression"),
        ("and a", 0, "expected a value, found 'and'"),
        ("true = 1", 5, "'=='"),
        ("a && b", 2, "use 'and'"),
        ("a.", 1, "name part"),
        ("a.or < 1", 2, "reserved word 'or'"),
        ("1.2.3", 0, "malformed number"),
        ("1e", 0, "malformed number"),
        ("x.__class__.__init__()", 0, "unknown function"),
        ("true + 1", 0, "needs a number"),
        ("-(a < b)", 1, "needs a number"),
        ("abs(a < b)", 4, "argument 1 is a boolean"),
        ("(a < b) < c", 0, "compares numbers"),
        ("a == true", 2, "cannot compare a number with a boolean"),
        ("x ** 2", 3, "expected a value, found '*'"),
        ("'x' < 1", 0, "strings are not supported"),
    ],
)
def test_parse_errors_have_exact_offsets(src, offset, fragment):
    with pytest.raises(ExprError) as info:
        parse(src)
    err = info.value
    assert err.offset == offset, (src, err.message)
    assert err.source == src
    assert fragment in err.message


def test_error_str_has_caret_under_offending_column():
    with pytest.raises(ExprError) as info:
        parse("health_factor < hf and exp(x) > 1")
    lines = str(info.value).splitlines()
    assert lines[0] == "unknown function 'exp' (allowed: abs, max, min)"
    assert lines[1].strip() == "health_factor < hf and exp(x) > 1"
    assert lines[2].index("^") == lines[1].index("exp")


def test_error_on_multiline_source_reports_line_and_column():
    src = "a < 1 and\n  b > (2"
    with pytest.raises(ExprError) as info:
        parse(src)
    err = info.value
    assert err.offset == src.index("(")
    assert (err.line, err.column) == (2, 7)
    text = str(err)
    assert "(line 2, column 7)" in text
    assert text.splitlines()[1].strip() == "b > (2"
    assert text.splitlines()[2].index("^") == text.splitlines()[1].index("(")


def test_deep_nesting_is_an_error_not_a_crash():
    with pytest.raises(ExprError, match="nested too deeply"):
        parse("(" * 500 + "a" + ")" * 500)
    with pytest.raises(ExprError, match="nested too deeply"):
        parse(" + ".join(["a"] * 500))
    with pytest.raises(ExprError, match="nested too deeply"):
        parse("-" * 500 + "a")
    assert to_text(parse(" and ".join(["a < 1"] * 500))).count("and") == 499  # flat: fine


def test_parse_and_compile_never_use_eval(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("eval/exec/compile must not be used")

    for fn in ("eval", "exec", "compile"):
        monkeypatch.setattr(builtins, fn, forbidden)
    expr = compile_expr("abs(a) > p and not (b / 0 < min(a, 2))", {"p": 1})
    assert expr({"a": -2.0, "b": 1.0}) is True
    assert expr.trace({"a": -2.0, "b": 1.0})[0] is True


# ------------------------------------------------------------------------------------------
# Compilation, constant folding, runtime semantics
# ------------------------------------------------------------------------------------------


def test_typical_rules_evaluate():
    params = {"hf_emergency_enter": 1.10, "margin_emergency_enter": 0.2}
    rule = compile_expr(
        "health_factor < hf_emergency_enter or margin_ratio_min < margin_emergency_enter", params
    )
    assert isinstance(rule, CompiledExpr)
    assert rule.names == frozenset({"health_factor", "margin_ratio_min"})
    assert rule({"health_factor": 1.05, "margin_ratio_min": 0.5}) is True
    assert rule({"health_factor": 1.50, "margin_ratio_min": 0.1}) is True
    assert rule({"health_factor": 1.50, "margin_ratio_min": 0.5}) is False
    dev = compile_expr("equity_deviation > position_deviation_threshold", {"position_deviation_threshold": 0.02})
    assert dev({"equity_deviation": 0.03}) is True


def test_numeric_expressions_return_numbers():
    expr = compile_expr("a * 2 + max(b, 1) / 4 - -c")
    assert expr({"a": 1.5, "b": 3.0, "c": 1.0}) == 1.5 * 2 + 3 / 4 + 1
    assert compile_expr("min(a, b, c)")({"a": 3.0, "b": 1.0, "c": 2.0}) == 1.0
    assert compile_expr("max(a, b, c, 7)")({"a": 3.0, "b": 1.0, "c": 2.0}) == 7.0
    assert compile_expr("abs(a - 5)")({"a": 3.0}) == 2.0
    assert compile_expr("x")({"x": 4.5}) == 4.5


def test_constant_folding():
    expr = compile_expr("x > 2 * p + q", {"p": 3, "q": 0.5, "unused": 9})
    assert expr.names == frozenset({"x"})
    assert dict(expr.constants) == {"p": 3.0, "q": 0.5}
    assert expr({"x": 7.0}) is True and expr({"x": 6.5}) is False
    # the environment is not consulted for folded names
    assert expr({"x": 7.0, "p": 100.0}) is True
    # everything constant: no free names at all, the value is fixed
    full = compile_expr("p > 1 and q < 1", {"p": 2, "q": 0})
    assert full.names == frozenset() and full({}) is True
    # a constant operand that decides and/or removes the rest, even names never supplied
    off = compile_expr("enabled > 0 and x < 1", {"enabled": 0})
    assert off.names == frozenset() and off({}) is False
    on = compile_expr("enabled > 0 and x < 1", {"enabled": 1})
    assert on.names == frozenset({"x"}) and on({"x": 0.0}) is True
    forced = compile_expr("override > 0 or x < 1", {"override": 1})
    assert forced.names == frozenset() and forced({}) is True
    assert compile_expr("-p", {"p": 2})({}) == -2.0
    assert compile_expr("abs(p) + min(p, 1)", {"p": -2})({}) == 0.0


def test_constant_must_be_a_number():
    with pytest.raises(ExprError) as info:
        compile_expr("x > limit", {"limit": "1.1"})
    assert info.value.offset == 4 and "'limit'" in info.value.message


def test_compile_from_node():
    node = parse("a   <  p")
    expr = compile_expr(node, {"p": 1})
    assert expr.source == "a < p" and shape(expr.node) == shape(node)
    assert expr({"a": 0.5}) is True
    src = "  a <  p"
    kept = compile_expr(parse(src), {"p": 1}, source=src)
    assert kept.source == src and kept.node == parse(src)
    with pytest.raises(ExprError) as info:
        kept({})
    assert info.value.offset == 2
    with pytest.raises(ExprError, match="unknown function"):
        compile_expr(Node("call", "exp", (Node("name", "x", (), 0, 0),), 0, 0))


def test_missing_name_raises_expr_error_not_key_error():
    expr = compile_expr("abs(drift) > 0.1 and t >= cooldown", {"cooldown": 4})
    with pytest.raises(ExprError) as info:
        expr({"drift": 0.5})
    err = info.value
    assert not isinstance(err, KeyError)
    assert "'t'" in err.message and err.offset == expr.source.index("t >=")
    assert err.__suppress_context__
    with pytest.raises(ExprError) as info:
        expr.trace({"t": 5.0})
    assert "'drift'" in info.value.message and info.value.offset == 4
    # short-circuit: a name after a false operand is never looked up
    assert expr({"drift": 0.0}) is False


def test_non_number_in_env_is_an_expr_error():
    expr = compile_expr("x < 1")
    with pytest.raises(ExprError, match="'x' must be a number"):
        expr({"x": "0.5"})


def test_bool_contexts_and_return_types():
    assert compile_expr("a and b")({"a": 2.0, "b": -1.0}) is True
    assert compile_expr("a and b")({"a": 2.0, "b": 0.0}) is False
    assert compile_expr("a or b")({"a": 0.0, "b": 0.0}) is False
    assert compile_expr("not a")({"a": 0.0}) is True
    assert compile_expr("a < 1 or b")({"a": 5.0, "b": 3.0}) is True
    assert compile_expr("true and not false")({}) is True
    assert compile_expr("(a < 1) == (b < 1)")({"a": 0.0, "b": 0.0}) is True
    assert compile_expr("(a < 1) != (b < 1)")({"a": 0.0, "b": 0.0}) is False
    assert compile_expr("(a < 1) != true")({"a": 3.0}) is True
    # n-ary chains, larger than the specialised 2- and 3-operand closures
    four_and = compile_expr("a > 0 and b > 0 and c > 0 and d > 0")
    assert four_and({"a": 1.0, "b": 1.0, "c": 1.0, "d": 1.0}) is True
    assert four_and({"a": 1.0, "b": 1.0, "c": 1.0, "d": 0.0}) is False
    four_or = compile_expr("a > 0 or b > 0 or c > 0 or d > 0")
    assert four_or({"a": 0.0, "b": 0.0, "c": 0.0, "d": 1.0}) is True
    assert four_or({"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0}) is False


# ------------------------------------------------------------------------------------------
# NaN and division by zero
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "==", "!="])
def test_comparisons_with_nan_are_false(op):
    for src in (f"x {op} 1", f"1 {op} x", f"x {op} y", f"abs(x) {op} 1", f"x {op} y + 0"):
        expr = compile_expr(src)
        assert expr({"x": NAN, "y": 1.0}) is False, src
        value, comps = expr.trace({"x": NAN, "y": 1.0})
        assert value is False and comps[-1].result is False
    assert compile_expr(f"x {op} c", {"c": NAN})({"x": 1.0}) is False
    assert compile_expr(f"c {op} 1", {"c": NAN})({}) is False


def test_nan_propagation_and_truthiness():
    env = {"x": NAN, "y": 2.0}
    assert math.isnan(compile_expr("x + 1")(env))
    assert math.isnan(compile_expr("min(y, x)")(env))
    assert math.isnan(compile_expr("min(x, y)")(env))
    assert math.isnan(compile_expr("max(y, x, 1)")(env))
    assert compile_expr("x and true")(env) is False  # NaN is not truthy
    assert compile_expr("not x")(env) is True
    assert compile_expr("not (x < 1)")(env) is True  # documented: negation of a NaN comparison


def test_division_by_zero_follows_ieee():
    div = compile_expr("a / b")
    assert div({"a": 1.0, "b": 0.0}) == INF
    assert div({"a": -1.0, "b": 0.0}) == -INF
    assert div({"a": 1.0, "b": -0.0}) == -INF
    assert math.isnan(div({"a": 0.0, "b": 0.0}))
    assert math.isnan(div({"a": NAN, "b": 0.0}))
    assert div({"a": INF, "b": 0.0}) == INF
    assert div({"a": 3.0, "b": 2.0}) == 1.5
    assert compile_expr("a / 0")({"a": 2.0}) == INF
    assert compile_expr("a / -0")({"a": 2.0}) == -INF
    assert math.isnan(compile_expr("a / z", {"z": 0})({"a": 0.0}))
    assert compile_expr("1 / 0")({}) == INF  # folded at compile time, no exception
    assert compile_expr("x > 1 / 0")({"x": 1e308}) is False
    assert compile_expr("a / b > 1")({"a": 1.0, "b": 0.0}) is True


# ------------------------------------------------------------------------------------------
# Comparison sites and traces
# ------------------------------------------------------------------------------------------


def test_sites_are_static_in_source_order():
    expr = compile_expr("1.10 > hf or (m < lim and not d != 0)", {"lim": 0.5})
    assert [site.text for site in expr.sites] == ["1.1 > hf", "m < lim", "d != 0"]
    first = expr.sites[0]
    assert first.op == ">" and first.left.kind == "num" and first.right.value == "hf"
    assert expr.source[first.start : first.end] == "1.10 > hf"
    assert expr.sites[1].right.kind == "name"  # sites keep the unfolded operands


def test_trace_reports_evaluated_comparisons_with_short_circuit():
    expr = compile_expr(
        "health_factor < hf_enter or margin_ratio_min < margin_enter",
        {"hf_enter": 1.10, "margin_enter": 0.2},
    )
    value, comps = expr.trace({"health_factor": 1.07, "margin_ratio_min": 0.5})
    assert value is True
    assert comps == [
        Comparison("health_factor < hf_enter", "health_factor", "<", "hf_enter", 1.07, 1.10, True)
    ]
    value, comps = expr.trace({"health_factor": 1.5, "margin_ratio_min": 0.5})
    assert value is False
    assert [(c.left_text, c.observed, c.threshold, c.result) for c in comps] == [
        ("health_factor", 1.5, 1.10, False),
        ("margin_ratio_min", 0.5, 0.2, False),
    ]
    guard = compile_expr("abs(delta_drift) > max_drift and t >= cooldown", {"max_drift": 0.05, "cooldown": 4})
    value, comps = guard.trace({"delta_drift": 0.01, "t": 10.0})
    assert value is False and len(comps) == 1
    assert (comps[0].left_text, comps[0].observed, comps[0].threshold) == ("abs(delta_drift)", 0.01, 0.05)


def test_trace_mirrors_constant_left_side():
    expr = compile_expr("1.10 > health_factor")
    value, (comp,) = expr.trace({"health_factor": 1.05})
    assert value is True
    assert comp == Comparison("1.1 > health_factor", "health_factor", "<", "1.1", 1.05, 1.10, True)
    param_left = compile_expr("lo <= x", {"lo": 2})
    _, (comp,) = param_left.trace({"x": 1.0})
    assert (comp.left_text, comp.op, comp.right_text, comp.observed, comp.threshold, comp.result) == (
        "x", ">=", "lo", 1.0, 2.0, False
    )
    # neither side constant: reported as written
    _, (comp,) = compile_expr("2 * a > b").trace({"a": 1.0, "b": 1.0})
    assert (comp.left_text, comp.op, comp.observed, comp.threshold) == ("2 * a", ">", 2.0, 1.0)


def test_trace_reports_folded_constant_comparisons_when_reached():
    expr = compile_expr("enabled > 0 and x < lim", {"enabled": 1, "lim": 3})
    value, comps = expr.trace({"x": 5.0})
    assert value is False
    assert [(c.text, c.observed, c.threshold, c.result) for c in comps] == [
        ("enabled > 0", 1.0, 0.0, True),
        ("x < lim", 5.0, 3.0, False),
    ]
    off = compile_expr("enabled > 0 and x < lim", {"enabled": 0, "lim": 3})
    assert off.trace({}) == (False, [Comparison("enabled > 0", "enabled", ">", "0", 0.0, 0.0, False)])


def test_trace_of_nested_boolean_comparison_and_numeric_expression():
    expr = compile_expr("(a < 1) == (b < 1)")
    value, comps = expr.trace({"a": 0.0, "b": 2.0})
    assert value is False
    assert [c.text for c in comps] == ["a < 1", "b < 1", "(a < 1) == (b < 1)"]
    assert (comps[-1].observed, comps[-1].threshold) == (1.0, 0.0)
    assert compile_expr("a + 1").trace({"a": 1.0}) == (2.0, [])


def test_trace_value_matches_fast_path():
    expr = compile_expr("x > 1 or y < 2 and not z == 3")
    for env in ({"x": 2.0, "y": 0.0, "z": 3.0}, {"x": 0.0, "y": 0.0, "z": 3.0}, {"x": NAN, "y": 0.0, "z": 1.0}):
        assert expr.trace(env)[0] is expr(env)


# ------------------------------------------------------------------------------------------
# Property test: round trip through text, and agreement with a reference evaluator
# ------------------------------------------------------------------------------------------

NAMES = ["a", "b", "c.x"]
NUM_KINDS = {"num", "name", "call", "unary", "binop"}


def N(kind, value, children=()):
    return Node(kind, value, tuple(children), 0, 0)


numbers = st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.25, 1e-6, 1e300])
num_leaf = st.one_of(numbers.map(lambda v: N("num", v)), st.sampled_from(NAMES).map(lambda n: N("name", n)))


def _num_ext(children):
    return st.one_of(
        st.tuples(st.sampled_from("+-*/"), children, children).map(lambda t: N("binop", t[0], t[1:])),
        children.map(lambda c: N("unary", "-", [c])),
        children.map(lambda c: N("call", "abs", [c])),
        st.tuples(st.sampled_from(["min", "max"]), st.lists(children, min_size=2, max_size=3)).map(
            lambda t: N("call", t[0], t[1])
        ),
    )


num_exprs = st.recursive(num_leaf, _num_ext, max_leaves=6)
bool_leaf = st.one_of(
    st.booleans().map(lambda v: N("bool", v)),
    st.tuples(st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), num_exprs, num_exprs).map(
        lambda t: N("cmp", t[0], t[1:])
    ),
)


def _bool_ext(children):
    operand = st.one_of(children, children, num_exprs)  # numbers are allowed in bool contexts
    return st.one_of(
        st.tuples(st.sampled_from(["and", "or"]), st.lists(operand, min_size=2, max_size=3)).map(
            lambda t: N(t[0], None, t[1])
        ),
        operand.map(lambda c: N("not", None, [c])),
        st.tuples(st.sampled_from(["==", "!="]), children, children).map(lambda t: N("cmp", t[0], t[1:])),
    )


bool_exprs = st.recursive(bool_leaf, _bool_ext, max_leaves=8)
exprs = st.one_of(num_exprs, bool_exprs)
values = st.sampled_from([NAN, INF, -INF, 0.0, -0.0, 1.0, -1.0, 0.5, 2.0, 3.25, -3.5, 1e-6, 1e308])


def ref_truth(x) -> bool:
    return x != 0 and not math.isnan(x)


def ref_cmp(op, a, b) -> bool:
    if isinstance(a, float) and (math.isnan(a) or math.isnan(b)):
        return False
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b, "==": a == b, "!=": a != b}[op]


def ref_div(a, b) -> float:
    with np.errstate(all="ignore"):
        return float(np.float64(a) / np.float64(b))


def ref_const(node, consts, env) -> bool:
    """Whether a sub-expression is constant once `consts` are known (and/or cut short)."""
    if node.kind == "name":
        return node.value in consts
    if node.kind in ("and", "or"):
        stop = node.kind == "or"
        for child in node.children:
            if not ref_const(child, consts, env):
                return False
            if ref_bool_c(child, env, [], consts) == stop:
                return True
        return True
    return all(ref_const(c, consts, env) for c in node.children)


def ref_eval(node, env, out, consts=frozenset()):
    k = node.kind
    if k in ("num", "bool"):
        return node.value
    if k == "name":
        return env[node.value]
    if k == "unary":
        return -ref_eval(node.children[0], env, out, consts)
    if k == "call":
        args = [ref_eval(c, env, out, consts) for c in node.children]
        if node.value == "abs":
            return abs(args[0])
        if any(math.isnan(x) for x in args):
            return NAN
        return min(args) if node.value == "min" else max(args)
    if k == "binop":
        a, b = (ref_eval(c, env, out, consts) for c in node.children)
        return {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: ref_div(a, b)}[
            node.value
        ]()
    if k == "not":
        return not ref_bool_c(node.children[0], env, out, consts)
    if k in ("and", "or"):
        stop = k == "or"
        for child in node.children:
            if ref_bool_c(child, env, out, consts) == stop:
                return stop
        return not stop
    if k == "cmp":
        left, right = node.children
        a = ref_eval(left, env, out, consts)
        b = ref_eval(right, env, out, consts)
        res = ref_cmp(node.value, a, b)
        if ref_const(left, consts, env) and not ref_const(right, consts, env):
            mirror = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}[node.value]
            out.append(Comparison(to_text(node), to_text(right), mirror, to_text(left), float(b), float(a), res))
        else:
            out.append(Comparison(to_text(node), to_text(left), node.value, to_text(right), float(a), float(b), res))
        return res
    raise AssertionError(k)


def ref_bool_c(node, env, out, consts):
    value = ref_eval(node, env, out, consts)
    return ref_truth(value) if node.kind in NUM_KINDS else value


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exprs)
def test_property_to_text_round_trips(node):
    text = to_text(node)
    parsed = parse(text)
    assert shape(parsed) == shape(node)
    assert to_text(parsed) == text
    assert names(parsed) == names(node)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(exprs, st.fixed_dictionaries({n: values for n in NAMES}), st.sets(st.sampled_from(NAMES)))
def test_property_compiled_matches_reference(node, full_env, const_names):
    consts = {n: full_env[n] for n in const_names}
    runtime_env = {n: v for n, v in full_env.items() if n not in consts}
    expected_comps: list[Comparison] = []
    expected = ref_eval(node, full_env, expected_comps, frozenset(consts))

    for expr in (compile_expr(node, consts), compile_expr(to_text(node), consts)):
        assert expr.names <= names(node) - set(consts)
        got = expr(runtime_env)
        assert same_float(got, expected), (to_text(node), got, expected)
        if node.kind not in NUM_KINDS:
            assert type(got) is bool
        traced, comps = expr.trace(runtime_env)
        assert same_float(traced, expected)
        assert len(comps) == len(expected_comps), (to_text(node), comps, expected_comps)
        for have, want in zip(comps, expected_comps):
            assert same_comparison(have, want), (to_text(node), have, want)
        # only the names still free are needed at runtime
        assert same_float(expr({n: runtime_env[n] for n in expr.names}), expected)
