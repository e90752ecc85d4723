"""The start-up shortcuts of ``trimtab run`` give exactly what the long way gives (issue 14, lane I2).

* A YAML file read again is a copy of the first parse: equal to a fresh parse, independent of
  every other copy, and parsed anew once its text changes.
* ``find_gaps`` without ``np.unique``: the gaps ``np.unique`` then ``np.diff`` give.
* The data checks judged per series on first read (:class:`trimtab.data.quality.Checked`): the
  verdicts of :func:`~trimtab.data.quality.assess` for every series, read in any order.
* The bundle loaded with either kind of Arrow memory pool (released per file or once): the
  same arrays.
* ``trimtab run --json`` into a pipe never imports rich, and ``trimtab validate`` never imports
  numpy; where rich would see a terminal, it is asked (:func:`trimtab.cli.common.stderr_is_terminal`).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trimtab.config.yamldoc import load_yaml, load_yaml_text
from trimtab.data.clock import find_gaps
from trimtab.data.feed import load_market_data
from trimtab.data.quality import Bands, Checked, assess

ROOT = Path(__file__).resolve().parents[2]
FLAGSHIP = ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"


def _run(code: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})}, **kw)


# --------------------------------------------------------------------------- YAML read twice
def test_a_file_read_again_is_an_independent_copy_of_a_fresh_parse(tmp_path):
    f = tmp_path / "c.yaml"
    text = FLAGSHIP.read_text()
    f.write_text(text)
    first, again = load_yaml(f), load_yaml(f)
    fresh = load_yaml_text(text, str(f))
    for doc in (first, again):
        assert doc.data == fresh.data and doc._values == fresh._values and doc._keys == fresh._keys
        assert doc.file == fresh.file
    assert again.data is not first.data
    first.data["targets"].append("changed")        # a caller changing its copy ...
    first.data["name"] = "changed"
    third = load_yaml(f)
    assert third.data == fresh.data                  # ... changes no later read


def test_an_edited_file_is_parsed_anew(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("a: 1\nb: [x, y]\n")
    assert load_yaml(f).data == {"a": 1, "b": ["x", "y"]}
    f.write_text("a: 2\nb: [x, y]\n")
    assert load_yaml(f).data == {"a": 2, "b": ["x", "y"]}
    f.write_text("a: [unclosed\n")
    with pytest.raises(Exception) as first:
        load_yaml(f)
    with pytest.raises(type(first.value)):           # a file that does not load fails every time
        load_yaml(f)


# --------------------------------------------------------------------------- gaps
def _gaps_by_unique(avail, interval_h: float, factor: float) -> list[tuple[int, int]]:
    t = np.unique(np.asarray(avail, dtype=np.int64))
    if t.size < 2:
        return []
    k = np.nonzero(np.diff(t) > factor * interval_h * 3600)[0]
    return [(int(t[i]), int(t[i + 1])) for i in k]


def test_find_gaps_gives_what_unique_gives():
    rng = np.random.default_rng(7)
    seen_gap = 0
    for i in range(400):
        hours = rng.integers(0, 120, int(rng.integers(0, 30)))
        avail = np.sort(hours) if i % 2 else hours                     # sorted, or not
        avail = avail * 3600
        for interval_h, factor in ((1.0, 2.0), (8.0, 2.0), (1.0, 1.0)):
            got = find_gaps(avail, interval_h, factor)
            assert got == _gaps_by_unique(avail, interval_h, factor)
            seen_gap += bool(got)
        assert find_gaps(list(avail), 1.0) == _gaps_by_unique(avail, 1.0, 2.0)   # a list too
    assert seen_gap > 100


# --------------------------------------------------------------------------- data checks
@pytest.fixture(scope="module")
def bundle():
    return load_market_data()


def _same_checks(lazy, eager) -> int:
    assert list(lazy) == list(eager) and len(lazy) == len(eager)
    faulty = 0
    for name in eager:
        a, b = lazy[name], eager[name]
        for f in ("code", "column", "ref", "keep"):
            x, y = getattr(a, f), getattr(b, f)
            assert x.dtype == y.dtype and np.array_equal(x, y, equal_nan=True), (name, f)
        assert a.columns == b.columns and a.duplicates == b.duplicates
        faulty += int(np.count_nonzero(b.code))
    return faulty


@pytest.mark.parametrize("bands", [Bands(), Bands(max_cross_venue_deviation=0.03, max_jump=0.03,
                                                  max_funding_deviation=0.0002, max_index_growth_per_day=0.0002)])
def test_series_judged_on_first_read_get_the_verdicts_of_assess(bundle, bands):
    series = bundle._series
    lazy = Checked(series, bands)
    for name in list(series)[::-3]:          # some series first, backwards: judging order is free
        lazy[name]
    faulty = _same_checks(lazy, assess(series, bands))
    assert faulty > 0 or bands == Bands()    # the tight bands do fire, so verdicts were compared


def test_a_run_judges_only_the_series_it_reads(bundle):
    data = load_market_data()
    data.field("perp.binance.ETHUSDT.close")
    q = data.quality()
    read = [n for n in q._out if n in q._judged]
    assert read == ["perp.binance.ETHUSDT"] and len(q) == len(bundle.series_names())


# --------------------------------------------------------------------------- memory pools
_DIGEST = """
import hashlib, json, pyarrow as pa
from trimtab.data.feed import load_market_data
d = load_market_data()
h = hashlib.sha256()
for n in d.series_names():
    s = d._series[n]
    h.update(n.encode()); h.update(s.avail.tobytes())
    for c, v in s.values.items():
        h.update(c.encode()); h.update(v.tobytes())
print(json.dumps({"pool": pa.default_memory_pool().backend_name, "digest": h.hexdigest()}))
"""


def test_the_bundle_loads_the_same_with_either_memory_pool():
    got = [json.loads(_run(_DIGEST, {"ARROW_DEFAULT_MEMORY_POOL": pool}).stdout) for pool in ("system", "mimalloc")]
    assert [g["pool"] for g in got] == ["system", "mimalloc"]   # released once, and per file
    assert got[0]["digest"] == got[1]["digest"]


# --------------------------------------------------------------------------- imports
_MODULES_AFTER = """
import sys
from trimtab.cli.main import app
try:
    app(sys.argv[1:])
except SystemExit:
    pass
sys.stderr.write("\\nMODULES " + " ".join(sorted(m for m in sys.modules if m.split(".")[0] in ("rich", "numpy", "pandas"))) + "\\n")
"""


def _modules_after(args: list[str]) -> tuple[subprocess.CompletedProcess, set[str]]:
    p = subprocess.run([sys.executable, "-c", _MODULES_AFTER, *args], cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env={k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")})
    line = [x for x in p.stderr.splitlines() if x.startswith("MODULES")][-1]
    return p, {m.split(".")[0] for m in line.split()[1:]}


def test_a_json_run_into_a_pipe_never_imports_rich(tmp_path):
    p, mods = _modules_after(["run", str(FLAGSHIP), "--json", "--out", str(tmp_path), "--start", "2025-01-01", "--end", "2025-01-03"])
    summary = json.loads(p.stdout)
    assert summary["kind"] == "strategy" and summary["final_equity"] > 0
    assert "rich" not in mods and "numpy" in mods
    p, mods = _modules_after(["run", str(FLAGSHIP), "--out", str(tmp_path), "--start", "2025-01-01", "--end", "2025-01-03"])
    assert "rich" in mods and "APY" in p.stdout           # the readable summary is drawn by rich


def test_validate_never_imports_numpy():
    p, mods = _modules_after(["validate", str(FLAGSHIP)])
    assert p.stdout.startswith("ok: ") and mods.isdisjoint({"numpy", "pandas"})


_TERMINAL = """
import json, sys
from rich.console import Console
from trimtab.cli.common import stderr_is_terminal
print(json.dumps([stderr_is_terminal(), Console(stderr=True).is_terminal]))
"""


@pytest.mark.parametrize("env", [{}, {"FORCE_COLOR": "1"}, {"FORCE_COLOR": ""}, {"TTY_COMPATIBLE": "1"}, {"TTY_COMPATIBLE": "0"}])
@pytest.mark.parametrize("tty", [False, True])
def test_stderr_is_terminal_is_what_rich_says(env, tty):
    base = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE")}
    if tty:
        leader, follower = os.openpty()
        try:
            p = subprocess.run([sys.executable, "-c", _TERMINAL], cwd=ROOT, stdout=subprocess.PIPE, stderr=follower,
                               text=True, timeout=120, env={**base, **env})
        finally:
            os.close(follower)
            os.close(leader)
    else:
        p = subprocess.run([sys.executable, "-c", _TERMINAL], cwd=ROOT, capture_output=True, text=True, timeout=120,
                           env={**base, **env})
    ours, rich_says = json.loads(p.stdout)
    assert ours == rich_says
    if not env:
        assert ours is tty
