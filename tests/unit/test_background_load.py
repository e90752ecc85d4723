"""The bundle loaded on a thread (trimtab.data.background) is the direct load's, data and errors,
and `trimtab run` ends cleanly when the config is refused while the bundle is still loading.
Nothing here times anything."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from trimtab.data.background import BackgroundLoad
from trimtab.data.feed import DataError, load_market_data

ROOT = Path(__file__).resolve().parents[2]
BUNDLE = ROOT / "data"


def test_the_thread_loads_what_the_direct_call_loads():
    direct = load_market_data(BUNDLE)
    loading = BackgroundLoad(BUNDLE)
    got = loading.result()
    assert loading.result() is got  # collected twice: the same object
    assert np.array_equal(got.epoch, direct.epoch)
    assert got.static == direct.static
    assert sorted(got._series) == sorted(direct._series) and len(got._series) > 20
    for name, s in direct._series.items():
        g = got._series[name]
        assert np.array_equal(g.avail, s.avail), name
        assert sorted(g.values) == sorted(s.values), name
        for col, v in s.values.items():
            assert np.array_equal(g.values[col], v, equal_nan=True), (name, col)
        assert (g.interval_h, g.fill, g.geometric) == (s.interval_h, s.fill, s.geometric), name


def test_a_missing_bundle_raises_the_direct_calls_error(tmp_path):
    with pytest.raises(DataError) as direct:
        load_market_data(tmp_path)
    loading = BackgroundLoad(tmp_path)
    for _ in range(2):  # raised again at every call
        with pytest.raises(DataError) as info:
            loading.result()
        assert str(info.value) == str(direct.value)
        assert "manifest.json missing" in str(info.value)


def test_a_damaged_series_file_raises_the_direct_calls_error(tmp_path):
    bundle = tmp_path / "data"
    shutil.copytree(BUNDLE, bundle)
    victim = sorted((bundle / "series").glob("*.parquet"))[0]
    victim.write_bytes(b"PAR1 not a parquet file PAR1")
    with pytest.raises(DataError) as direct:
        load_market_data(bundle)
    with pytest.raises(DataError) as info:
        BackgroundLoad(bundle).result()
    assert str(info.value) == str(direct.value)
    assert victim.name in str(info.value) and "not a readable series file" in str(info.value)


def test_run_refused_for_its_config_while_the_bundle_loads_exits_cleanly(tmp_path):
    """`trimtab run` starts the bundle's load before it reads the config: a config error still
    exits 2 with its issues and no traceback, the load finishing on its own."""
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nshare_class: USDT\nmachine: [\n", encoding="utf-8")
    p = subprocess.run([sys.executable, "-m", "trimtab.cli.main", "run", str(bad), "--out", str(tmp_path / "runs")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode == 2, p.stderr
    assert "nothing was run" in p.stderr
    assert "Traceback" not in p.stderr and "Exception in thread" not in p.stderr
    assert not (tmp_path / "runs").exists()
