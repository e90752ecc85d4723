"""The YAML series catalog (src/trimtab/data/catalog.yaml) and the run window's clamp."""
from __future__ import annotations

import time

import pandas as pd
import pytest

from trimtab.data.catalog import BY_NAME, CATALOG, CATALOG_FILE, CatalogError, catalog_for, load_catalog, parse_interval
from trimtab.data.feed import DataError, load_market_data
from trimtab.engine.window import clamp_window

ENTRY = ("format: 1\nseries:\n  perp.myex.SOLUSDT:\n    files: [raw/sol/*.csv]\n    kind: bar\n    interval: 1h\n"
         "    clock: bar_close\n    columns: {open: open, high: high, low: low, close: close}\n")


def test_shipped_catalog_declares_every_bundled_series_with_its_rules():
    manifest_names = load_market_data().series_names()
    assert sorted(s.name for s in CATALOG) == manifest_names
    assert BY_NAME["perp.binance.ETHUSDT"].availability == "bar_close"
    assert BY_NAME["funding.okx.ETHUSDT"].fill == "event" and BY_NAME["funding.okx.ETHUSDT"].interval_h == 8.0
    assert BY_NAME["oracle.WETH_USD"].sampling == "daily_samples"
    assert BY_NAME["aave.weETH"].geometric == ("liquidity_index", "variable_borrow_index")
    assert BY_NAME["perp.bybit.ETHUSDT"].exchange.id == "bybit"
    assert BY_NAME["staking.weETH"].exchange is None


def test_data_dir_catalog_adds_and_replaces_series(tmp_path):
    (tmp_path / "catalog.yaml").write_text(ENTRY)
    merged = catalog_for(tmp_path)
    assert set(merged) == set(BY_NAME) | {"perp.myex.SOLUSDT"}
    sol = merged["perp.myex.SOLUSDT"]
    assert sol.base == str(tmp_path) and sol.files == ("raw/sol/*.csv",) and sol.interval_h == 1.0
    assert catalog_for(tmp_path / "absent") == dict(BY_NAME)


@pytest.mark.parametrize("text, where, words", [
    (ENTRY.replace("kind: bar", "kind: candle"), ":5:11", "kind"),
    (ENTRY.replace("interval: 1h", "interval: hourly"), ":6:15", "interval"),
    (ENTRY.replace("    clock: bar_close\n", "    clock: bar_close\n    clok: x\n"), ":8:5", "unknown field 'clok'"),
    (ENTRY + "    positive: [vwap]\n", ":3:3", "vwap"),
    (ENTRY.replace("  perp.myex.SOLUSDT:", "  perp.myex.SOLUSDT: &a"), ":3:22", "anchors"),
    (ENTRY.replace("    kind: bar\n", "    kind: bar\n    kind: point\n"), ":6:5", "duplicate"),
    (ENTRY.replace("files: [raw/sol/*.csv]", "files: !!python/object:os.system [x]"), ":4:12", "tag"),
    ("- not a mapping\n", ":1:1", "mapping"),
])
def test_catalog_errors_name_file_line_col(tmp_path, text, where, words):
    f = tmp_path / "catalog.yaml"
    f.write_text(text)
    with pytest.raises(CatalogError) as e:
        load_catalog(f)
    msg = str(e.value)
    assert f"{f}{where}" in msg and words in msg.lower()


def test_catalog_refuses_an_alias_bomb_fast(tmp_path):
    lol = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n" for i in range(9))
    (tmp_path / "catalog.yaml").write_text(lol)
    t = time.perf_counter()
    with pytest.raises(CatalogError, match="anchors and aliases"):
        load_catalog(tmp_path / "catalog.yaml")
    assert time.perf_counter() - t < 1.0


def test_parse_interval():
    assert parse_interval("1h") == 1.0 and parse_interval("8h") == 8.0 and parse_interval("1d") == 24.0
    assert parse_interval("30m") == 0.5
    for bad in ("0h", "h", "1w", "-1h"):
        with pytest.raises(ValueError):
            parse_interval(bad)


def test_shipped_catalog_file_is_found_from_the_package():
    assert CATALOG_FILE.is_file() and CATALOG_FILE.name == "catalog.yaml"


D0, D1 = pd.Timestamp("2024-05-13", tz="UTC"), pd.Timestamp("2025-09-01", tz="UTC")


def test_partly_overlapping_window_is_clamped_with_one_warning(capsys):
    a, b = clamp_window("x's data", D0, D1, "2024-03-01", "2024-06-01")
    assert (a, b) == (D0, pd.Timestamp("2024-06-01", tz="UTC"))
    a2, b2 = clamp_window("x's data", D0, D1, "2024-03-01", "2024-06-01")    # resolved again: no second line
    assert (a2, b2) == (a, b)
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "only partly overlaps" in err and "running 2024-05-13 00:00 -> 2024-06-01 00:00" in err
    a, b = clamp_window("x's data", D0, D1, "2025-08-01", "2026-01-01")
    assert (a, b) == (pd.Timestamp("2025-08-01", tz="UTC"), D1)


def test_window_inside_is_kept_and_outside_is_refused_with_the_data_window(capsys):
    assert clamp_window("x's data", D0, D1, "2024-06-01", "2024-07-01") == (
        pd.Timestamp("2024-06-01", tz="UTC"), pd.Timestamp("2024-07-01", tz="UTC"))
    assert capsys.readouterr().err == ""
    with pytest.raises(DataError, match=r"outside what x's data covers: 2024-05-13 00:00 -> 2025-09-01 00:00"):
        clamp_window("x's data", D0, D1, "2019-01-01", "2019-02-01")
    with pytest.raises(DataError, match="outside"):
        clamp_window("x's data", D0, D1, "2025-09-01", "2025-10-01")    # touches the end only: empty overlap
