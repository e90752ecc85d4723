"""`trimtab data build | import | info | fetch` and the global `--data DIR`, on real files.

`build` is checked against the bundle itself (needs ../shared/data): the rebuilt series are the
bundled frames, value for value. `fetch` goes through ccxt's real binanceusdm client; only its
HTTP layer (`Exchange.fetch`, ccxt's own transport hook) answers from recorded Binance responses
(tests/fixtures/ccxt/), honouring startTime/limit so the paging is ccxt's and ours.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import ccxt
import pandas as pd
import pytest

from trimtab.data.feed import load_market_data
from trimtab.data.fetch import fetch_series

ROOT = Path(__file__).resolve().parents[2]
TRIMTAB = ROOT / ".venv" / "bin" / "trimtab"
RAW = ROOT.parent / "shared" / "data"
FIXTURE = json.loads((ROOT / "tests" / "fixtures" / "ccxt" / "binanceusdm_ETHUSDT.json").read_text())


def trimtab(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "TRIMTAB_DATA"}
    return subprocess.run([str(TRIMTAB), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


class RecordedBinance(ccxt.binanceusdm):
    """ccxt's binanceusdm with its HTTP transport answering from the recorded responses."""

    requests: list[str]

    def fetch(self, url, method="GET", headers=None, body=None):
        self.requests = getattr(self, "requests", []) + [url]
        u = urlparse(url)
        payload = FIXTURE.get(u.path)
        if payload is None:
            raise ccxt.ExchangeNotAvailable(f"no recorded response for {u.path}")
        q = {k: v[0] for k, v in parse_qs(u.query).items()}
        if isinstance(payload, list):
            key = (lambda r: r[0]) if u.path.endswith("klines") else (lambda r: r["fundingTime"])
            lo = int(q.get("startTime", 0))
            hi = int(q.get("endTime", 2**62))
            payload = [r for r in payload if lo <= key(r) <= hi][: int(q.get("limit", 500))]
        return json.loads(json.dumps(payload))


@pytest.fixture()
def data_copy(tmp_path) -> Path:
    d = tmp_path / "data"
    shutil.copytree(ROOT / "data", d)
    return d


@pytest.mark.skipif(not RAW.is_dir(), reason="needs the raw data in ../shared/data")
def test_build_reproduces_the_bundle_value_for_value(tmp_path):
    out = tmp_path / "rebuilt"
    p = trimtab("data", "build", "--raw", str(RAW), "--out", str(out))
    assert p.returncode == 0, p.stderr
    bundled = sorted(p.name for p in (ROOT / "data" / "series").glob("*.parquet"))
    assert sorted(p.name for p in (out / "series").glob("*.parquet")) == bundled
    for name in bundled:
        pd.testing.assert_frame_equal(pd.read_parquet(out / "series" / name),
                                      pd.read_parquet(ROOT / "data" / "series" / name), check_exact=True)
    assert json.loads((out / "manifest.json").read_text()) == json.loads((ROOT / "data" / "manifest.json").read_text())


def test_data_option_and_missing_series(data_copy, tmp_path):
    # a series the data directory's catalog declares but nobody built is MISSING, not "0 gaps"
    (data_copy / "catalog.yaml").write_text(
        "format: 1\nseries:\n  perp.myex.XRPUSDT:\n    files: [raw/xrp/*.csv]\n    kind: bar\n    interval: 1h\n"
        "    clock: bar_close\n    columns: {open: open, high: high, low: low, close: close}\n")
    p = trimtab("--data", str(data_copy), "data", "info", "--json")
    assert p.returncode == 0, p.stderr
    info = json.loads(p.stdout)
    assert info["data_dir"] == str(data_copy)
    rows = {r["series"]: r for r in info["series"]}
    assert rows["perp.myex.XRPUSDT"]["status"] == "MISSING" and rows["perp.myex.XRPUSDT"]["gaps"] == []
    assert rows["perp.binance.ETHUSDT"]["status"] == "ok" and len(rows["perp.binance.ETHUSDT"]["gaps"]) > 0
    human = trimtab("--data", str(data_copy), "data", "info")
    assert "MISSING" in human.stdout and "1 series missing" in human.stdout
    # a bad --data is refused naming the flag
    p = trimtab("--data", str(tmp_path / "nope"), "data", "info")
    assert p.returncode == 2 and "--data" in p.stderr and "does not exist" in p.stderr
    # a catalog error names file:line:col
    (data_copy / "catalog.yaml").write_text("format: 1\nseries:\n  perp.myex.XRPUSDT:\n    kind: bar\n    intervall: 1h\n")
    p = trimtab("--data", str(data_copy), "data", "info")
    assert p.returncode == 1 and f"{data_copy / 'catalog.yaml'}:5:5" in p.stderr and "intervall" in p.stderr


def test_import_refuses_bad_input_and_changes_nothing(data_copy, tmp_path):
    before = (data_copy / "manifest.json").read_text()
    csv = tmp_path / "x.csv"
    csv.write_text("timestamp,price\n2025-01-01T00:00:00Z,1.0\n")
    p = trimtab("--data", str(data_copy), "data", "import", "perp.myex.XUSDT", str(csv))
    assert p.returncode == 1 and "--columns" in p.stderr
    csv.write_text("timestamp,open,high,low,close\nnot-a-time,1,1,1,1\n")
    p = trimtab("--data", str(data_copy), "data", "import", "perp.myex.XUSDT", str(csv))
    assert p.returncode == 1 and "no usable row" in p.stderr and "unparsable" in p.stderr
    p = trimtab("--data", str(data_copy), "data", "import", "perp.binance.ETHUSDT", str(csv))
    assert p.returncode == 1 and "bundled series" in p.stderr
    assert (data_copy / "manifest.json").read_text() == before
    assert not (data_copy / "series" / "perp.myex.XUSDT.parquet").exists()


def test_import_two_files_later_file_wins(data_copy, tmp_path):
    # a CSV with ISO times, then a parquet export with a datetime column (stored in us)
    a, b = tmp_path / "a.csv", tmp_path / "b.parquet"
    a.write_text("timestamp,open,high,low,close\n" + "".join(
        f"2025-01-01T{h:02d}:00:00Z,10,11,9,10\n" for h in range(6)))
    pd.DataFrame({"timestamp": pd.date_range("2025-01-01T04:00", periods=4, freq="h", unit="us"),
                  "open": 10.1, "high": 11.0, "low": 9.0, "close": 10.1}).to_parquet(b)   # small moves: data checks pass
    p = trimtab("--data", str(data_copy), "data", "import", "perp.myex.XUSDT", str(a), str(b), "--json")
    assert p.returncode == 0, p.stderr
    e = json.loads(p.stdout)
    assert e["rows_kept"] == 8 and e["rows_dropped"] == {"replaced_by_later_file": 2}
    assert [s["rows"] for s in e["sources"]] == [6, 4]
    md = load_market_data(data_copy, "2025-01-01T01:00Z", "2025-01-01T08:00Z", series=["perp.myex.XUSDT"])
    close = md.field("perp.myex.XUSDT.close")
    # bar h is known at h+1: bars 0-3 from a.csv, 4-7 from b.csv
    assert list(close) == [10, 10, 10, 10, 10.1, 10.1, 10.1, 10.1]


def test_fetch_appends_through_ccxt_with_paging(data_copy):
    ex = RecordedBinance({"enableRateLimit": False})
    before = pd.read_parquet(data_copy / "series" / "perp.binance.ETHUSDT.parquet")
    r = fetch_series(data_copy, "perp.binance.ETHUSDT", exchange=ex, now_ms=1758988800000, page_limit=5)
    klines = FIXTURE["/fapi/v1/klines"]
    assert r["fetched"] == len(klines) and r["added"] == len(klines) and r["replaced"] == 0
    assert r["pages"] >= 4                       # 16 bars at 5 a page, through ccxt's request builder
    assert sum("/fapi/v1/klines" in u for u in ex.requests) == r["pages"]
    after = pd.read_parquet(data_copy / "series" / "perp.binance.ETHUSDT.parquet")
    assert len(after) == len(before) + len(klines) and after.ts.is_monotonic_increasing
    last = klines[-1]
    assert after.close.iloc[-1] == float(last[4])
    assert after.avail.iloc[-1] == pd.Timestamp(last[0] + 3_600_000, unit="ms", tz="UTC")   # known at its close
    m = json.loads((data_copy / "manifest.json").read_text())["series"]["perp.binance.ETHUSDT"]
    assert m["rows_kept"] == len(after) and m["sources"][-1]["rows"] == len(klines)
    # funding overlapping the bundle: every fetched event replaces the stored one, none added
    f_before = pd.read_parquet(data_copy / "series" / "funding.binance.ETHUSDT.parquet")
    r = fetch_series(data_copy, "funding.binance.ETHUSDT", since=pd.Timestamp("2025-09-23", tz="UTC"),
                     until=pd.Timestamp("2025-09-26", tz="UTC"), exchange=ex, page_limit=4)
    assert r["fetched"] == len(FIXTURE["/fapi/v1/fundingRate"]) and r["replaced"] == r["fetched"] and r["added"] == 0
    f_after = pd.read_parquet(data_copy / "series" / "funding.binance.ETHUSDT.parquet")
    pd.testing.assert_frame_equal(f_after, f_before, check_exact=False, rtol=1e-9)


def test_fetch_refuses_a_series_without_an_exchange(data_copy):
    p = trimtab("--data", str(data_copy), "data", "fetch", "oracle.WETH_USD")
    assert p.returncode == 1 and "no exchange source" in p.stderr
