"""Readable output, through the real command line on the bundled data (issue 16, item 2):
the attribution table adds up with capital flows, compare formats money as `run` does and
keeps every compare in its own folder, Aave balances are shown in underlying units, and
`explain --at` shows one set of metrics: the ones the rules saw."""
import json
import re
import sqlite3
import subprocess
from pathlib import Path

import pytest

from trimtab.data.feed import load_market_data
from trimtab.engine.journal import metrics_at, rule_inputs_at

ROOT = Path(__file__).resolve().parents[2]
TRIMTAB = str(ROOT / ".venv" / "bin" / "trimtab")
FLAGSHIP = "configs/usdt_eth_staking_hedged_leveraged.yaml"
MONEY = re.compile(r"[+-]?[\d,]+\.\d+")


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([TRIMTAB, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


def _row(text: str, label: str) -> str:
    """The amount of the attribution row ``label`` (the first money figure after it)."""
    m = re.search(rf"^\s*{re.escape(label)}\s+({MONEY.pattern})", text, re.M)
    assert m, f"no {label!r} row in:\n{text}"
    return m.group(1)


def _money(s: str) -> float:
    return float(s.replace(",", ""))


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("flows")
    p = cli("run", FLAGSHIP, "--start", "2025-01-01", "--end", "2025-02-01", "--flow", "2025-01-15:+50000",
            "--out", str(out), "--run-id", "f")
    assert p.returncode == 0, p.stderr
    return p.stdout, out / "f"


def test_attribution_with_flows_adds_up(flow_run):
    text, run_dir = flow_run
    s = json.loads((run_dir / "summary.json").read_text())
    total, flows, change = (_money(_row(text, x)) for x in ("total P&L", "net flows", "equity change"))
    assert flows == pytest.approx(s["net_flows"], abs=0.005) and flows != 0
    assert change == pytest.approx(s["final_equity"] - s["initial_equity"], abs=0.005)
    assert total == pytest.approx(sum(s["attribution"].values()), abs=0.005)
    # the printed rows add up to the cent (each is rounded once), and the difference row says so
    assert abs(total + flows - change) <= 0.0100001
    assert _row(text, "difference") in ("0.00", "+0.01", "-0.01")
    assert not re.search(r"\d[eE][+-]\d", text.split("P&L attribution")[1].split("costs by route")[0])


def test_final_positions_show_aave_in_underlying_units(flow_run):
    text, run_dir = flow_run
    s = json.loads((run_dir / "summary.json").read_text())
    aave = {k: v for k, v in s["final_positions"].items() if k.split(":")[1] in ("aToken", "debtToken")}
    assert aave, "the flagship holds an Aave supply and debt at the end"
    # the index each position was booked with, from the journal's fills; its value at the end from the data
    db = sqlite3.connect(run_dir / "journal.sqlite")
    fields = {}
    for field, legs in db.execute("SELECT price_field, legs FROM fills ORDER BY fill_id"):
        for leg in json.loads(legs):
            if leg[0] in aave and field.endswith("_index"):
                fields[leg[0]] = field
    db.close()
    assert fields.keys() == aave.keys()
    data = load_market_data(start=s["end"], end=s["end"])
    st = json.loads(cli("status", str(run_dir), "--json").stdout)
    for key, scaled in aave.items():
        index = float(data.field(fields[key])[-1])
        underlying = scaled * index
        assert index > 1.0 and underlying != pytest.approx(scaled)  # the index has grown since Aave's start
        assert st["aave"][key]["underlying"] == pytest.approx(underlying, rel=1e-12)
        assert st["aave"][key]["index"] == pytest.approx(index, rel=1e-12)
        assert st["aave"][key]["scaled"] == scaled == st["positions"][key]
        # the summary (summary.json, run --json) carries the same, from the engine's own last tick
        assert s["final_aave"][key]["underlying"] == pytest.approx(underlying, rel=1e-12)
        assert s["final_aave"][key]["index_field"] == fields[key] and s["final_aave"][key]["scaled"] == scaled
        line = next(ln for ln in text.splitlines() if ln.strip().startswith(key))
        assert f"{underlying:,.6f} {st['aave'][key]['asset']}" in line and f"{scaled:,.6f}" in line
    status_text = cli("status", str(run_dir)).stdout
    assert all(f"{st['aave'][k]['underlying']:,.6f}" in status_text for k in aave)


def test_explain_at_shows_the_metrics_the_rules_saw(flow_run):
    _, run_dir = flow_run
    db = sqlite3.connect(run_dir / "journal.sqlite")
    ticks = [t for (t,) in db.execute("SELECT tick FROM metrics WHERE seen IS NOT NULL ORDER BY tick")]
    assert ticks, "a run with plans has ticks whose rules saw other metrics than the row keeps"
    tick = ticks[0]
    (time,) = db.execute("SELECT time FROM metrics WHERE tick = ?", (tick,)).fetchone()
    saw, stored = rule_inputs_at(db, tick), metrics_at(db, tick)
    db.close()
    differ = [k for k in saw if saw[k] == saw[k] and saw[k] != stored.get(k)]
    assert differ
    e = json.loads(cli("explain", str(run_dir), "--at", time, "--json").stdout)["at"]
    assert e["tick"] == tick
    for k in differ:   # JSON writes inf as "inf"
        assert float(e["metrics"][k]) == pytest.approx(saw[k], rel=1e-12)
    # every comparison's observed value of a bare metric is the value the metrics line shows
    for r in e["rules"]:
        for c in r["comparisons"]:
            if c["left"] in e["metrics"] and isinstance(c["observed"], float):
                assert c["observed"] == pytest.approx(e["metrics"][c["left"]], rel=1e-12)
    text = cli("explain", str(run_dir), "--at", time).stdout
    assert text.count("metrics the rules saw") == 1 and text.count("metrics") == 1 + text.count("metrics_")


def test_compare_formats_money_and_keeps_each_compare(tmp_path):
    args = ("compare", "configs/pure_lending_usdt.yaml", "configs/eth_staking_only.yaml", "--start", "2025-01-01",
            "--end", "2025-01-15", "--out", str(tmp_path), "--jobs", "1")
    first, second = cli(*args), cli(*args)
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    dirs = sorted(d for d in tmp_path.iterdir() if d.name.startswith("compare-"))
    assert len(dirs) == 2 and dirs[0] != dirs[1]
    for d, p in zip(dirs, sorted([first, second], key=lambda p: re.search(r"runs written to (\S+)/", p.stdout).group(1))):
        assert f"runs written to {d}/" in p.stdout
        r = json.loads((d / "comparison.json").read_text())
        assert [Path(x["run_dir"]).parent for x in r["rows"]] == [d, d]
        assert all((Path(x["run_dir"]) / "journal.sqlite").is_file() for x in r["rows"])
        assert not re.search(r"\d[eE][+-]?\d", p.stdout)  # no scientific notation anywhere
        # money as `run` prints it: cents for USDT, 6 decimals for ETH
        lending = next(ln for ln in p.stdout.splitlines() if ln.strip().startswith("pure_lending_usdt") and "USDT" in ln
                       and "%" not in ln)
        supply = r["rows"][0]["attribution"]["supply_yield"]
        assert f"{supply:+,.2f}" in lending
        eth = next(ln for ln in p.stdout.splitlines() if ln.strip().startswith("eth_staking_only") and "%" not in ln)
        assert f"{r['rows'][1]['attribution']['staking_yield']:+,.6f}" in eth


def test_run_directory_lists_each_file_at_its_final_size(tmp_path):
    # `trimtab run` shows the summary while the loader's child may still write equity.csv
    # (RunResult.settle): the files are listed once they are complete, at their final sizes.
    # The flagship's whole window, so the file takes the child long enough to matter.
    from trimtab.cli.render import size

    p = cli("run", FLAGSHIP, "--out", str(tmp_path), "--run-id", "full")
    assert p.returncode == 0, p.stderr
    run_dir = tmp_path / "full"
    listed = dict(re.findall(r"^  (\S+)\s+(\d[\d.]* [KMG]?B)\s", p.stdout.split("run directory", 1)[1], re.M))
    assert {"journal.sqlite", "summary.json", "equity.csv"} <= listed.keys(), p.stdout
    for name in ("journal.sqlite", "summary.json", "equity.csv"):
        assert listed[name] == size((run_dir / name).stat().st_size), name
    assert (run_dir / "equity.csv").read_text().count("\n") > 12_000  # every hour of the window


def test_files_are_listed_once_ready(tmp_path):
    # print_summary waits for the run's files (files_ready) before it lists them: a file
    # finished there is listed at its final size; nothing else of the summary waits for it
    import io

    from rich.console import Console

    from trimtab.cli.render import print_summary

    p = cli("run", FLAGSHIP, "--start", "2025-01-01", "--end", "2025-01-03", "--out", str(tmp_path), "--run-id", "r", "--json")
    assert p.returncode == 0, p.stderr
    summary = json.loads(p.stdout)
    late = tmp_path / "r" / "late.csv"
    seen = []

    def ready():
        seen.append(buf.getvalue())
        late.write_text("x" * 2048)

    buf = io.StringIO()
    print_summary(summary, Console(file=buf, width=160), files_ready=ready)
    assert "P&L attribution" in seen[0] and "run directory" not in seen[0]
    assert re.search(r"^  late\.csv\s+2\.0 KB", buf.getvalue(), re.M), buf.getvalue()
