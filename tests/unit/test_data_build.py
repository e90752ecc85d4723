"""The bundle build: from the raw real data (../shared/data) to data/, and its manifest."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

REPO = Path(__file__).resolve().parents[2]
try:
    import trimtab  # noqa: F401
except ImportError:  # not installed: run from the source tree
    sys.path.insert(0, str(REPO / "src"))

from trimtab.data import build as build_mod  # noqa: E402
from trimtab.data.build import BuildError, build, main  # noqa: E402
from trimtab.data.catalog import CATALOG  # noqa: E402

DATA = REPO / "data"
RAW = Path(os.environ.get("TRIMTAB_RAW", REPO.parent / "shared" / "data"))
needs_raw = pytest.mark.skipif(not RAW.is_dir(), reason=f"raw data not present at {RAW} (a clone has only data/; "
                                                        "set TRIMTAB_RAW to rebuild)")


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[dict, Path]:
    out = tmp_path_factory.mktemp("bundle")
    return build(RAW, out), out


def committed() -> dict:
    return json.loads((DATA / "manifest.json").read_text())


def test_committed_manifest_describes_every_catalog_series():
    m = committed()
    assert list(m["series"]) == [s.name for s in CATALOG]
    for name, e in m["series"].items():
        assert (DATA / e["file"]).is_file(), name
        assert pq.read_metadata(DATA / e["file"]).num_rows == e["rows_kept"], name
        assert e["rows_kept"] + sum(e["rows_dropped"].values()) == e["rows_raw"], name
        assert len(e["sources"]) == 1 and len(e["sources"][0]["sha256"]) == 64
        assert e["first_available"] <= e["last_available"]
        for g in e["gaps"]:
            assert g["hours"] > 2 * e["interval_h"]
    names = {u["file"].rsplit("/", 1)[-1] for u in m["raw_files_not_bundled"]}
    assert {"binance_ETHUSDT_perp_1m_2025-09-27_2025-09-29.csv", "bybit_ETHUSDT_perp_1m_2025-09-27_2025-09-29.csv",
            "okx_ETHUSDT_perp_1m_2025-09-27_2025-09-29.csv"} <= names
    assert "1m" in (DATA / "README.md").read_text() or "1-minute" in (DATA / "README.md").read_text()


def test_committed_manifest_records_drops_by_reason():
    s = committed()["series"]
    assert s["perp.bybit.ETHUSDT"]["rows_dropped"] == {"duplicate": 15}
    assert s["funding.okx.ETHUSDT"]["rows_dropped"] == {"conflicting_duplicate": 420}
    assert s["oracle.WETH_USD"]["rows_dropped"] == {"interpolated_between_daily_samples": 14651}
    for name in ("oracle.WETH_USD", "oracle.weETH_USD", "oracle.wstETH_USD", "aave.weETH", "aave.wstETH"):
        for col, chk in s[name]["interpolation_check"].items():
            assert chk["rows_checked"] > 10000 and chk["rows_matching"] == chk["rows_checked"], (name, col)
    assert any("out of time order" in n for n in s["staking.wstETH"]["notes"])
    assert [g["hours"] for g in s["perp.okx.ETHUSDT"]["gaps"]] == [721.0, 721.0]


def test_static_blocks_have_sources():
    st = json.loads((DATA / "static.json").read_text())
    for block in ("aave_risk_params", "cex_margin", "gas_units", "execution_costs_bps", "etherfi_rewards"):
        assert st[block]["sources"], block
    aave = st["aave_risk_params"]
    assert aave["protocol_json"]["emode"]["ltv_limits"]["weETH_WETH"] == 0.93
    assert set(aave["per_asset"]) == {"WETH", "weETH", "wstETH", "USDT"}
    assert aave["per_asset"]["weETH"]["ltv"] == 0.775 and aave["per_asset"]["WETH"]["liquidation_threshold"] == 0.83
    assert set(st["cex_margin"]) == {"sources", "binance", "bybit", "okx"}
    assert st["gas_units"]["ATOMIC_ENTRY"] == 1_250_000 and st["gas_units"]["STAKE_DEPOSIT"] == 150_000
    assert st["execution_costs_bps"]["ETH_USDT"] == {"10k": 5, "100k": 7, "1m": 13}
    weekly = st["etherfi_rewards"]["weekly"]
    assert {r["reward_type"] for r in weekly} == {"EIGEN_via_KING", "ETHFI_via_KING"}
    assert set(weekly[0]) == {"period_start", "period_end", "payout_date", "reward_type",
                              "eigen_per_eeth_weekly", "ethfi_per_eeth"}
    assert set(st["etherfi_rewards"]["distributions"]) == {"eigen_distributions_raw", "ethfi_topups_raw"}


@needs_raw
def test_build_from_raw_matches_committed_bundle(built):
    manifest, out = built
    old = committed()
    assert list(manifest["series"]) == list(old["series"])
    for name, e in manifest["series"].items():
        o = old["series"][name]
        assert e["rows_kept"] == o["rows_kept"], name
        assert e["rows_dropped"] == o["rows_dropped"], name
        assert e["sources"] == o["sources"], f"{name}: raw file changed since data/ was built; rebuild"
        assert e["gaps"] == o["gaps"], name
        assert pq.read_metadata(out / e["file"]).num_rows == e["rows_kept"]
    assert json.loads((out / "static.json").read_text()) == json.loads((DATA / "static.json").read_text())
    assert json.loads((out / "manifest.json").read_text()) == manifest
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    assert size < 20e6


@needs_raw
def test_non_constant_execution_costs_fail_loudly(tmp_path):
    # the real files, with one day of one bucket changed
    raw = tmp_path / "raw"
    shutil.copytree(RAW, raw, ignore=shutil.ignore_patterns("*.csv"))   # json files only: static needs csv too
    for rel in ("manual_sources/aave_params", "manual_sources/etherfi_distributions",
                "protocol_data/staking/restaking_final"):
        shutil.copytree(RAW / rel, raw / rel, dirs_exist_ok=True)
    lookup = raw / "execution_costs/lookup_tables/execution_costs_lookup.json"
    table = json.loads(lookup.read_text())
    table["ETH_weETH"]["100k"]["2024-08-05"] += 1
    lookup.write_text(json.dumps(table))
    build_mod._build_static(RAW)                                   # the real one passes
    with pytest.raises(BuildError, match=r"ETH_weETH/100k is not constant"):
        build_mod._build_static(raw)


def test_cli_reports_a_missing_raw_dir(tmp_path, capsys):
    assert main(["--raw", str(tmp_path / "nope"), "--out", str(tmp_path / "out")]) == 1
    assert "raw data directory not found" in capsys.readouterr().err
    with pytest.raises(BuildError, match="expected exactly one raw file"):
        build_mod._one_file(tmp_path, "market_data/*.csv")
