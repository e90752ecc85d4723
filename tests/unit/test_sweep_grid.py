"""``--grid`` / ``--random`` / ``--walk-forward`` parsing and ranking (trimtab.research), no backtest."""
from __future__ import annotations

import itertools
import math

import pandas as pd
import pytest

from trimtab.research import ResearchError
from trimtab.research.grid import MAX_VARIANTS, expand, parse_axes, parse_axis, variant_id
from trimtab.research.rows import DIRECTION, best, check_metric, columns, failed_row, to_frame
from trimtab.research.folds import make_folds, parse_spec
from trimtab.runs import run_id_problem


def test_decimal_range_is_exact_and_inclusive():
    a = parse_axis("target_ltv=0.75:0.9:0.05")
    assert a.values == ("0.75", "0.8", "0.85", "0.9")
    assert [a.column(v) for v in a.values] == [0.75, 0.8, 0.85, 0.9]  # exactly the decimal values, no 0.8500000000000001
    b = parse_axis("x=0.1:0.3:0.1")
    assert [b.column(v) for v in b.values] == [0.1, 0.2, 0.3]
    # Binary-float stepping, which this replaces, misses the end point: 0.30000000000000004.
    assert [0.1 + k * 0.1 for k in range(3)] != [0.1, 0.2, 0.3]
    assert parse_axis("x=0:1:0.3").values == ("0", "0.3", "0.6", "0.9")  # 1 is not a whole number of steps away
    assert parse_axis("capital=50000:150000:50000").values == ("50000", "100000", "150000")
    assert parse_axis("x=0.1:0.1:0.05").values == ("0.1",)


def test_lists_keep_text_and_type():
    a = parse_axis("max_delta_drift=0.01, 0.02,0.05")
    assert a.values == ("0.01", "0.02", "0.05") and a.numeric
    b = parse_axis("targets.staking.emode=eth_correlated,none")
    assert b.values == ("eth_correlated", "none") and not b.numeric and b.column("none") == "none"
    c = parse_axis("target_ltv=0.8")
    assert c.values == ("0.8",)


@pytest.mark.parametrize("raw, words", [
    ("target_ltv", "NAME=a:b:step"),
    ("=0.8", "NAME=a:b:step"),
    ("target_ltv=", "NAME=a:b:step"),
    ("target_ltv=a:0.9:0.05", "start 'a' is not a number"),
    ("target_ltv=0.75:0.9:0", "step must be above 0"),
    ("target_ltv=0.75:0.9:-0.05", "step must be above 0"),
    ("target_ltv=0.9:0.75:0.05", "above end"),
    ("target_ltv=0.75:nan:0.05", "finite"),
    ("target_ltv=0:1:0.5:2", "a:b:step"),
    ("target_ltv=0.8,,0.9", "empty value"),
    ("target_ltv=0.8,0.9,0.8", "listed twice"),
    ("target_ltv=0.8:0.8", "one point"),
    ("x=0:1000000:1", "at most"),
])
def test_bad_specs_are_refused_naming_the_flag(raw, words):
    with pytest.raises(ResearchError) as e:
        parse_axis(raw)
    assert e.value.flag == "--grid" and str(e.value).startswith(f"--grid {raw}") and words in str(e.value)


def test_axes_and_expansion():
    with pytest.raises(ResearchError, match="at least one --grid"):
        parse_axes([])
    with pytest.raises(ResearchError, match="swept twice"):
        parse_axes(["a=1,2", "a=3"])
    axes = parse_axes(["a=1,2", "b=x,y,z"])
    vs = expand(axes)
    assert [tuple(v.values.values()) for v in vs] == list(itertools.product(("1", "2"), ("x", "y", "z")))
    assert len({v.id for v in vs}) == 6 and all(run_id_problem(v.id) is None for v in vs)
    assert vs[0].sets == ["a=1", "b=x"]
    # The id does not depend on the order of the flags (resume finds the same directories).
    assert variant_id({"a": "1", "b": "x"}) == variant_id({"b": "x", "a": "1"}) != variant_id({"a": "1", "b": "y"})
    with pytest.raises(ResearchError, match="--random N") as e:
        expand(parse_axes(["a=0:1"]))
    assert e.value.flag == "--grid"
    with pytest.raises(ResearchError) as e:
        expand(axes, random=0)
    assert e.value.flag == "--random"
    with pytest.raises(ResearchError, match="sample some with --random"):
        expand(parse_axes(["a=0:999:1", "b=0:999:1"]))
    assert MAX_VARIANTS < 1000 * 1000


def test_random_sampling_is_seeded_distinct_and_in_range():
    axes = parse_axes(["a=0:9:1", "b=0:9:1"])
    s0 = expand(axes, random=7, seed=0)
    assert [v.id for v in s0] == [v.id for v in expand(axes, random=7, seed=0)]
    assert [v.id for v in s0] != [v.id for v in expand(axes, random=7, seed=1)]
    assert len({v.id for v in s0}) == 7
    grid = {v.id for v in expand(axes)}
    assert {v.id for v in s0} <= grid
    assert len(expand(axes, random=500)) == 100  # more than the grid: all of it
    cont = expand(parse_axes(["a=0.5:0.9", "b=x,y"]), random=20, seed=3)
    xs = [float(v.values["a"]) for v in cont]
    assert len(cont) == 20 and all(0.5 <= x <= 0.9 for x in xs) and len(set(xs)) == 20
    assert {v.values["b"] for v in cont} <= {"x", "y"}


def test_metric_directions_and_ranking():
    assert DIRECTION["apy"] == "max" and DIRECTION["max_drawdown"] == "min" and DIRECTION["worst_health_factor"] == "max"
    with pytest.raises(ResearchError) as e:
        check_metric("profit")
    assert e.value.flag == "--metric" and "apy" in str(e.value)
    rows = [{**failed_row(v, {"a": a}, "", "d"), "status": "ok", "error": None, "apy": apy, "max_drawdown": dd}
            for v, a, apy, dd in [("v1", 1.0, 0.05, 0.02), ("v2", 2.0, 0.09, 0.10), ("v3", 3.0, 0.09, 0.01)]]
    rows.append(failed_row("v4", {"a": 4.0}, "boom", "d"))
    df = to_frame(rows, ["a"], {"a": True})
    assert list(df.columns) == columns(["a"])
    assert list(best(df, "apy")["variant"]) == ["v2", "v3", "v1"]  # ties keep grid order; failed rows left out
    assert list(best(df, "max_drawdown", top=2)["variant"]) == ["v3", "v1"]  # lower is better
    assert math.isnan(df.set_index("variant").loc["v4", "apy"])


def test_walk_forward_spec_and_folds():
    is_len, oos_len = parse_spec("6m:3m")
    assert pd.Timestamp("2024-01-31", tz="UTC") + is_len == pd.Timestamp("2024-07-31", tz="UTC")
    for bad in ("6m", "6m:3x", "0m:3m", "m:3m", "6m:3m:1m", "1.5m:3m"):
        with pytest.raises(ResearchError) as e:
            parse_spec(bad)
        assert e.value.flag == "--walk-forward"
    start, end = pd.Timestamp("2024-05-01", tz="UTC"), pd.Timestamp("2025-09-01", tz="UTC")
    folds = make_folds(start, end, *parse_spec("6m:3m"))
    assert folds[0].oos_start == pd.Timestamp("2024-11-01", tz="UTC") and folds[-1].oos_end == end
    for a, b in zip(folds, folds[1:]):
        assert a.oos_end == b.oos_start
    for f in folds:
        assert f.is_end == f.oos_start and f.is_start >= start
    assert [f.oos_start.month for f in folds] == [11, 2, 5, 8]
    with pytest.raises(ResearchError, match="shorter than one"):
        make_folds(start, start + pd.Timedelta(days=28, hours=12), *parse_spec("4w:2w"))
    # A tail shorter than a day is left out rather than run as a one-hour fold.
    short = make_folds(start, start + pd.Timedelta(days=28, hours=5), *parse_spec("2w:2w"))
    assert len(short) == 1 and short[0].oos_end == start + pd.Timedelta(days=28)


def test_files_read_back_are_checked(tmp_path):
    """summary.json, equity.csv and sweep.json are parsed as data: a corrupt one never becomes a row or a resume."""
    import json

    from trimtab.research.rows import ok_row, read_summary
    from trimtab.research.sweep import recorded_flags

    run = tmp_path / "v-1"
    run.mkdir()
    for text in ("{not json", "[1, 2]", json.dumps({"final_equity": "100"}), json.dumps({"final_equity": float("nan")})):
        (run / "summary.json").write_text(text)
        assert read_summary(run) is None  # not finished: the variant runs again
    summary = {"final_equity": 101.5, "apy": "high", "sharpe": True, "attribution": ["x"], "costs": {"total": {"fee": 1.0, "gas": 2.0}},
               "start": 5, "end": "2025-01-02T00:00Z"}
    (run / "summary.json").write_text(json.dumps(summary))
    assert read_summary(run) == summary
    (run / "equity.csv").write_text("time,equity,health_factor\n2025-01-01,1,inf\n2025-01-02,1,garbage\n")
    row = ok_row("v-1", {"a": 1.0}, summary, run)
    assert row["final_equity"] == 101.5 and row["fees_usd"] == 3.0 and row["end"] == "2025-01-02T00:00Z"
    assert math.isnan(row["apy"]) and math.isnan(row["sharpe"]) and row["start"] is None  # wrong types: NaN / None
    assert math.isnan(row["attribution.funding"]) and math.isnan(row["worst_health_factor"]) and math.isnan(row["worst_margin_ratio"])
    (run / "equity.csv").write_text("time,equity,health_factor\n2025-01-01,1,1.3\n2025-01-02,1,1.2\n")
    assert ok_row("v-1", {}, summary, run)["worst_health_factor"] == 1.2

    sweep = tmp_path / "s"
    sweep.mkdir()
    for text in ("\x00\x01", json.dumps({"kind": "run"}), json.dumps({"kind": "sweep", "grid": "a=1", "seed": 0})):
        (sweep / "sweep.json").write_text(text)
        with pytest.raises(ResearchError) as e:
            recorded_flags(tmp_path, "s")
        assert e.value.flag == "--resume"
    with pytest.raises(ResearchError, match="no sweep"):
        recorded_flags(tmp_path, "absent")
