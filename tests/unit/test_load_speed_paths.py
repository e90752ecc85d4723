"""The faster load paths of issue 14 give exactly what the slower ones gave: the YAML parse cache
(trimtab.config.yamlcache), the single-parse bounds check (trimtab.config.yamldoc), the audit
reusing the documents load_strategy parsed, and the data checks' median (trimtab.data.quality).
Nothing here times anything: each test compares results."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from trimtab.config import yamlcache
from trimtab.config.load import load_strategy
from trimtab.config.yamldoc import load_yaml, load_yaml_text
from trimtab.data.quality import _nanmedian0
from trimtab.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"


def typed(x):
    """The value with every type spelled out (1 and 1.0 and True differ; key order kept)."""
    if isinstance(x, dict):
        return ("dict", [(k, typed(v)) for k, v in x.items()])
    if isinstance(x, list):
        return ("list", [typed(v) for v in x])
    return (type(x).__name__, repr(x))


def snapshot(doc):
    return typed(doc.data), list(doc._values.items()), list(doc._keys.items()), doc.file


@pytest.fixture
def cache(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("TRIMTAB_CACHE_DIR", str(d))
    return d / "yaml"


def test_cached_document_is_the_parsed_one(cache):
    files = [FLAGSHIP, *sorted((ROOT / "venues").glob("*.yaml")), *sorted((ROOT / "rules").glob("*.yaml")),
             *sorted((ROOT / "machines").glob("*.yaml"))]
    first = [snapshot(load_yaml(f)) for f in files]
    entries = sorted(cache.glob("*.json"))
    assert len(entries) == len({f.read_text(encoding="utf-8") for f in files})
    second = [snapshot(load_yaml(f)) for f in files]
    assert second == first
    # Served from the entries: a damaged entry is a miss, and the file is parsed again.
    for e in entries:
        e.write_text("{not json", encoding="utf-8")
    assert [snapshot(load_yaml(f)) for f in files] == first
    assert all(json.loads(e.read_text(encoding="utf-8"))["format"] == yamlcache.FORMAT for e in entries)


def test_cache_keys_on_the_text_and_stores_only_plain_documents(cache):
    a = load_yaml_text("x: 1\ny: [1.0, true, null, 'two']\n", "a.yaml")
    b = load_yaml_text("x: 2\ny: [1.0, true, null, 'two']\n", "a.yaml")   # an edit is another text
    assert a.data["x"] == 1 and b.data["x"] == 2
    assert len(list(cache.glob("*.json"))) == 2
    load_yaml_text("d: 2024-01-01\n", "d.yaml")                 # a date: not JSON, parsed every time
    load_yaml_text("a: &x {k: 1}\nb: *x\n", "al.yaml")          # anchors and aliases: parsed every time
    assert len(list(cache.glob("*.json"))) == 2
    assert load_yaml_text("a: &x {k: 1}\nb: *x\n", "al.yaml").data == {"a": {"k": 1}, "b": {"k": 1}}
    with pytest.raises(ConfigError):                            # errors are never cached
        load_yaml_text("a: 1\na: 2\n", "dup.yaml")
    with pytest.raises(ConfigError):
        load_yaml_text("a: 1\na: 2\n", "dup.yaml")
    assert len(list(cache.glob("*.json"))) == 2
    # The file name is not part of the entry: the same text under another name says that name.
    assert load_yaml_text("x: 1\ny: [1.0, true, null, 'two']\n", "other.yaml").issue(("x",), "m").file == "other.yaml"


def test_cache_off(tmp_path, monkeypatch):
    monkeypatch.setenv("TRIMTAB_CACHE_DIR", "off")
    assert yamlcache.cache_dir() is None
    assert load_yaml_text("x: 1\n").data == {"x": 1}


@pytest.mark.parametrize("text, expect", [
    ("a: *nope\nb: [1, 2\n", "YAML syntax error"),        # a syntax error anywhere comes before the composer's error
    ("a: *nope\nb: 1\n", "undefined alias"),
    ("a: 1\n---\nb: 2\n", "single document"),
    ("x: *nope\n" + "".join("  " * i + f"k{i}:\n" for i in range(70)) + "  " * 70 + "v: 1\n", "nested deeper than 64"),
    ("a: &a [1,1,1,1,1,1,1,1,1,1]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
     "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\nf: [*e,*e]\ng: *zz\n", "alias bomb"),
])
def test_one_parse_reports_problems_in_whole_stream_order(cache, text, expect):
    with pytest.raises(ConfigError) as info:
        load_yaml_text(text, "h.yaml")
    assert len(info.value.issues) == 1 and expect in info.value.issues[0].message


def test_audit_reuses_the_parsed_documents(cache, monkeypatch):
    """The audit reads positions from the documents load_strategy parsed; it parses no file again."""
    from trimtab.audit import findings

    s = load_strategy(FLAGSHIP)
    calls = []
    monkeypatch.setattr(findings, "load_yaml", lambda p: calls.append(p) or load_yaml(p))
    ctx = findings.Context(s)
    assert calls == []
    assert ctx.mdoc is s.docs["machine"]
    assert {r.file for r in s.rules.values()} == set(ctx.rdocs)


def test_fast_median_is_numpys_bit_for_bit():
    rng = np.random.default_rng(7)
    pool = np.array([0.0, -0.0, 1.0, np.inf, -np.inf, 1e308, 1.7e308, -1.7e308, 5e-324, 3.3])
    for trial in range(400):
        k, n = int(rng.integers(1, 8)), int(rng.integers(1, 60))
        a = rng.choice(pool, (k, n)) if trial % 2 else rng.normal(3000, 50, (k, n))
        a[rng.random((k, n)) < rng.random() * 0.7] = np.nan
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")   # numpy warns on an all-NaN column
            want = np.nanmedian(a, axis=0)
            got = _nanmedian0(a)
        assert np.array_equal(want, got, equal_nan=True) and np.array_equal(np.signbit(want), np.signbit(got))


def test_fresh_processes_share_the_cache(tmp_path):
    """`trimtab validate` in two fresh processes: the first writes the entries, the second reads
    them (writes none) and prints the same result."""
    env = {"TRIMTAB_CACHE_DIR": str(tmp_path / "c"), "PATH": ""}
    exe = Path(sys.executable).parent / "trimtab"
    outs, counts = [], []
    for _ in range(2):
        p = subprocess.run([str(exe), "validate", str(FLAGSHIP)], cwd=ROOT, env=env, capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        outs.append(p.stdout)
        counts.append(sorted(e.name for e in (tmp_path / "c" / "yaml").glob("*.json")))
    assert outs[0].startswith("ok: ") and outs[1] == outs[0]
    assert len(counts[0]) >= 10 and counts[1] == counts[0]


def test_equity_csv_is_what_pandas_writes(tmp_path):
    """engine.results.write_equity_csv against pandas' to_csv of the same frame, byte for byte."""
    import pandas as pd

    from trimtab.engine.results import write_equity_csv

    rng = np.random.default_rng(3)
    idx = pd.DatetimeIndex(list(pd.date_range("2024-05-13", periods=3000, freq="h", tz="UTC")))
    odd = np.array([1e16, 1e-5, 0.1, np.nan, np.inf, -np.inf, -0.0, 5e-324, 1e300, 123.456, 100000.0])
    for equity, nav in ((rng.normal(1e5, 3e3, idx.size), rng.normal(1.0, 0.05, idx.size)),
                        (rng.choice(odd, idx.size), rng.normal(0.0, 1e6, idx.size))):
        want, got = tmp_path / "pandas.csv", tmp_path / "fast.csv"
        pd.DataFrame({"equity": pd.Series(equity, index=idx), "nav": pd.Series(nav, index=idx)}).to_csv(want, index_label="time")
        write_equity_csv(got, idx.as_unit("s").asi8, equity.tolist(), nav.tolist())
        assert got.read_bytes() == want.read_bytes()


def test_cache_keeps_at_most_max_entries(cache, monkeypatch):
    monkeypatch.setattr(yamlcache, "MAX_ENTRIES", 6)
    for i in range(7):
        load_yaml_text(f"k: {i}\n", "n.yaml")
    kept = sorted(cache.glob("*.json"))
    assert len(kept) == 3                                 # past the bound, the oldest are dropped down to half
    assert load_yaml_text("k: 6\n", "n.yaml").data == {"k": 6}
