"""The console's REST API (issue 17) against a real `trimtab serve` on localhost and real run
directories (a backtest, a portfolio, a live replay in progress): every endpoint's content equals
what the journal holds, read independently here through the journal readers and sqlite3."""
from __future__ import annotations

import json
import math
import shutil
import sqlite3
from urllib.parse import quote

import pytest

from console_support import world, stop_world
from trimtab.engine.journal import read_metrics
from trimtab.explain import explain_at, list_transitions
from trimtab.live.control import status as live_status
from trimtab.runs import holder


@pytest.fixture(scope="session")
def console(tmp_path_factory, request):
    w = world(tmp_path_factory)
    request.addfinalizer(stop_world)
    return w


def _ro(path):
    return sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)


def _json_num(v):
    """A journal float as the API writes it: NaN null, inf "inf"."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return None
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def test_openapi_lists_every_endpoint(console):
    status, spec, _ = console.get("/openapi.json")
    assert status == 200 and spec["info"]["title"] == "trimtab console"
    paths = set(spec["paths"])
    for p in ("/api/runs", "/api/runs/{run_id}", "/api/runs/{run_id}/metrics", "/api/runs/{run_id}/transitions",
              "/api/runs/{run_id}/plans", "/api/runs/{run_id}/fills", "/api/runs/{run_id}/alerts",
              "/api/runs/{run_id}/decision", "/api/runs/{run_id}/stop", "/api/runs/{run_id}/stream"):
        assert p in paths, p


def test_runs_list_matches_each_run(console):
    status, runs, _ = console.get("/api/runs")
    assert status == 200
    by_id = {r["id"]: r for r in runs}
    assert {"bt", "pf", "sec", "live"} <= set(by_id)
    bt_summary = json.loads((console.runs / "bt" / "summary.json").read_text())
    bt = by_id["bt"]
    assert bt["kind"] == "strategy" and bt["mode"] == "backtest" and bt["status"] == "finished" and not bt["alive"]
    assert bt["apy"] == bt_summary["apy"] and bt["equity"] == bt_summary["final_equity"]
    assert bt["config"] == "configs/usdt_eth_staking_hedged_leveraged.yaml"
    with _ro(console.journal("bt")) as db:
        last = read_metrics(db)[-1]
    assert bt["state"] == last.state and bt["tick"] == last.tick and bt["last_time"] == last.time
    # Health: graded against the run's own thresholds, the values the last tick holds.
    assert bt["health"]["metrics"]["health_factor"]["value"] == _json_num(last.metrics["health_factor"])
    assert 1.0 in bt["health"]["metrics"]["health_factor"]["thresholds"]
    assert bt["health"]["level"] in ("ok", "warning", "critical")
    pf = by_id["pf"]
    pf_summary = json.loads((console.runs / "pf" / "summary.json").read_text())
    assert pf["kind"] == "portfolio" and pf["status"] == "finished" and pf["apy"] == pf_summary["apy"]
    live = by_id["live"]
    assert live["status"] == "live" and live["alive"] and live["mode"] == "live (replay)"
    assert live["pid"] == console.live.pid == holder(console.runs / "live")["pid"]


def test_run_summary_and_meta(console):
    status, body, _ = console.get("/api/runs/bt")
    assert status == 200
    assert body["summary"] == json.loads((console.runs / "bt" / "summary.json").read_text())
    with _ro(console.journal("bt")) as db:
        meta = {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}
    assert body["meta"]["parameters"] == meta["parameters"] and body["meta"]["window"] == meta["window"]
    status, body, _ = console.get("/api/runs/live")
    assert status == 200 and body["summary"] is None and body["meta"]["live"]["feed"] == "replay"


@pytest.mark.parametrize("run_id", ["bt", "live"])
def test_metrics_equal_the_journal(console, run_id):
    status, body, _ = console.get(f"/api/runs/{run_id}/metrics?columns=equity,health_factor,margin_ratio.binance,ltv")
    assert status == 200 and body["rows"]
    last = body["last_tick"]
    with _ro(console.journal(run_id)) as db:
        rows = read_metrics(db, 0, last, names=("equity", "health_factor", "margin_ratio.binance", "ltv"))
    assert [r["tick"] for r in body["rows"]] == [r.tick for r in rows]
    for got, want in zip(body["rows"], rows):
        assert got["time"] == want.time and got["state"] == want.state
        assert {k: v for k, v in got.items() if k not in ("tick", "time", "state")} == {k: _json_num(v) for k, v in want.metrics.items()}
    # Paging: only the ticks after since_tick.
    status, page, _ = console.get(f"/api/runs/{run_id}/metrics?columns=equity&since_tick=0&limit=2")  # the live run has >= 3 ticks
    assert [r["tick"] for r in page["rows"]] == [1, 2] and page["columns"] == ["equity"]


def test_portfolio_metrics_equal_its_store(console):
    status, body, _ = console.get("/api/runs/pf/metrics")
    with _ro(console.journal("pf")) as db:
        series = db.execute("SELECT tick, time, state, equity, cash, nav FROM series ORDER BY tick").fetchall()
    assert status == 200 and len(body["rows"]) == len(series)
    assert [(r["tick"], r["time"], r["state"], r["equity"], r["cash"], r["nav"]) for r in body["rows"]] == \
        [tuple(_json_num(x) for x in s) for s in series]


def test_transitions_are_explains(console):
    for run_id in ("bt", "pf"):
        status, body, _ = console.get(f"/api/runs/{run_id}/transitions")
        assert status == 200
        want = json.loads(json.dumps(list_transitions(console.journal(run_id))))
        assert body == want
    assert body["kind"] == "portfolio"
    with _ro(console.journal("bt")) as db:
        want = db.execute("SELECT tick, trigger FROM decisions WHERE trigger IS NOT NULL ORDER BY tick").fetchall()
    got = console.get("/api/runs/bt/transitions")[1]["transitions"]
    assert want and [(t["tick"], t["trigger"]) for t in got] == [tuple(w) for w in want]


def test_plans_with_step_statuses_equal_the_journal(console):
    status, plans, _ = console.get("/api/runs/bt/plans")
    assert status == 200 and plans
    with _ro(console.journal("bt")) as db:
        ids = [r[0] for r in db.execute("SELECT plan_id FROM plans ORDER BY tick, rowid")]
        last = {}
        for pid, sid, st in db.execute("SELECT plan_id, step_id, status FROM instructions ORDER BY rowid"):
            last[(pid, sid)] = st
        steps = {pid: [s["id"] for s in json.loads(text)["steps"]] for pid, text in db.execute("SELECT plan_id, plan FROM plans")}
    assert [p["plan_id"] for p in plans] == ids
    for p in plans:
        assert [s["id"] for s in p["steps"]] == steps[p["plan_id"]]
        for s in p["steps"]:
            assert s["status"] == last.get((p["plan_id"], s["id"]), "pending")
    status, reallocs, _ = console.get("/api/runs/pf/plans")
    with _ro(console.journal("pf")) as db:
        n = db.execute("SELECT count(*) FROM reallocations").fetchone()[0]
    assert status == 200 and len(reallocs) == n


def test_fills_equal_the_journal(console):
    status, fills, _ = console.get("/api/runs/bt/fills")
    with _ro(console.journal("bt")) as db:
        want = db.execute("SELECT fill_id, tick, venue, operation, category, impact, legs FROM fills ORDER BY fill_id").fetchall()
    assert status == 200 and len(fills) == len(want) > 0
    assert [(f["fill_id"], f["tick"], f["venue"], f["operation"], f["category"], f["impact"], f["legs"]) for f in fills] == \
        [(a, b, c, d, e, _json_num(g), json.loads(h)) for a, b, c, d, e, g, h in want]
    status, page, _ = console.get(f"/api/runs/bt/fills?since_id={want[1][0]}&limit=2")
    assert [f["fill_id"] for f in page] == [w[0] for w in want[2:4]]


def test_alerts_equal_the_journal(console):
    status, alerts, _ = console.get("/api/runs/bt/alerts")
    with _ro(console.journal("bt")) as db:
        failed = db.execute("SELECT count(*) FROM instructions WHERE status = 'failed'").fetchone()[0]
        quarantined = db.execute("SELECT count(*) FROM quarantine").fetchone()[0]
        emergencies = db.execute("SELECT count(*) FROM decisions WHERE trigger IS NOT NULL AND dest = 'emergency'").fetchone()[0]
    assert status == 200
    kinds = [a["kind"] for a in alerts]
    assert kinds.count("step_failed") == failed and kinds.count("quarantine") == quarantined and kinds.count("emergency") == emergencies


@pytest.mark.parametrize("run_id, at", [("bt", "2025-01-03T05:30Z"), ("pf", "2025-01-04T00:00Z"), ("live", "2025-01-01T02:00Z")])
def test_decision_at_a_time_is_explain_at(console, run_id, at):
    status, body, _ = console.get(f"/api/runs/{run_id}/decision?at={quote(at)}")
    assert status == 200
    want = json.loads(json.dumps(explain_at(console.journal(run_id), at)))
    assert body == want and body["state"] and body["rules"]


def test_decision_outside_the_run_and_bad_time_are_400(console):
    status, body, _ = console.get("/api/runs/bt/decision?at=2019-01-01T00:00Z")
    assert status == 400 and "before the run starts" in body["detail"]
    status, body, _ = console.get("/api/runs/bt/decision?at=yesterday-ish")
    assert status == 400 and "not a date/time" in body["detail"]


def test_status_of_the_live_run_is_trimtab_status(console):
    status, body, _ = console.get("/api/runs/live/status")
    want = live_status(console.runs / "live")
    assert status == 200 and body["running"] and body["pid"] == want["pid"] == console.live.pid
    assert body["positions"].keys() == want["positions"].keys() or body["tick"] != want["tick"]


def test_stream_sends_the_new_ticks_of_the_live_run(console):
    import urllib.request

    j = console.journal("live")
    with _ro(j) as db:
        (hi,) = db.execute("SELECT max(tick) FROM metrics").fetchone()
    req = urllib.request.Request(f"{console.base}/api/runs/live/stream?since_tick={hi - 2}")
    events = []
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.headers["Content-Type"].startswith("text/event-stream")
        name = None
        for raw in r:
            line = raw.decode().rstrip("\n")
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                events.append((name, json.loads(line[6:])))
                if sum(1 for n, _ in events if n == "tick") >= 4:
                    break
    ticks = [d for n, d in events if n == "tick"]
    assert [t["tick"] for t in ticks] == list(range(hi - 1, hi + 3))  # the two it had, then two new ones
    assert any(n == "status" and d["alive"] and d["status"] == "live" for n, d in events)
    with _ro(j) as db:
        rows = {r.tick: r for r in read_metrics(db, hi - 1, hi + 2, names=("equity", "health_factor", "margin_ratio_min"))}
    for t in ticks:
        assert t["time"] == rows[t["tick"]].time and t["equity"] == rows[t["tick"]].metrics["equity"]


def test_ctrl_c_with_an_open_stream_exits_at_once(console):
    """A live run's page keeps an event stream open: Ctrl-C must still stop the server promptly
    and cleanly (the stream ends when uvicorn is told to exit)."""
    import os
    import signal
    import time
    import urllib.request

    from console_support import free_port, start_server

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIMTAB_")}
    p = start_server(console.runs, "127.0.0.1", port, env)
    try:
        r = urllib.request.urlopen(f"http://127.0.0.1:{port}/api/runs/live/stream", timeout=30)
        assert r.readline().startswith(b"retry:")
        t0 = time.monotonic()
        p.send_signal(signal.SIGINT)
        p.wait(timeout=20)
        took = time.monotonic() - t0
        r.close()
    finally:
        if p.poll() is None:
            p.kill()
    err = p.stderr.read()
    assert p.returncode in (0, 130) and took < 3.0, (p.returncode, took, err)  # 130: the shell convention for SIGINT
    assert "Traceback" not in err and "CancelledError" not in err


def test_a_damaged_plan_is_refused_and_the_live_chart_run_matches_the_report(console):
    """The console reads plans and a run still going through the report's readers: a plan whose
    JSON is damaged is a 422 naming it, and a run without summary.json charts from its journal."""
    from trimtab.console.journals import loaded_run
    from trimtab.reports.rundata import load_run

    copy = console.runs / "badplan"
    shutil.copytree(console.runs / "bt", copy, ignore=shutil.ignore_patterns("run.lock"))
    try:
        with sqlite3.connect(copy / "journal.sqlite") as db:
            plan_id = db.execute("SELECT plan_id FROM plans ORDER BY tick LIMIT 1").fetchone()[0]
            db.execute("UPDATE plans SET plan = '{' WHERE plan_id = ?", (plan_id,))
        db.close()
        status, body, _ = console.get("/api/runs/badplan/plans")
        assert status == 422 and f"plan {plan_id} is not valid JSON" in body["detail"], body
        status, body, _ = console.get("/api/runs/bt/plans")
        assert status == 200 and body and all(isinstance(p["steps"], list) for p in body)
        (copy / "summary.json").unlink()
        (copy / "equity.csv").unlink()
        with sqlite3.connect(copy / "journal.sqlite") as db:
            db.execute("UPDATE plans SET plan = (SELECT plan FROM plans WHERE plan_id != ? LIMIT 1) WHERE plan_id = ?", (plan_id, plan_id))
        db.close()
        going, done = loaded_run(copy), load_run(console.runs / "bt")
        assert list(going.equity.columns) == list(done.equity.columns)
        assert going.equity["equity"].tolist() == pytest.approx(done.equity["equity"].tolist(), rel=1e-12)
        assert going.summary["attribution"] == {} and len(going.transitions) == len(done.transitions)
    finally:
        shutil.rmtree(copy)


def test_a_damaged_journal_is_refused_clearly(console):
    broken = console.runs / "broken"
    broken.mkdir()
    (broken / "journal.sqlite").write_bytes(b"this is not SQLite " * 64)
    try:
        runs = {r["id"]: r for r in console.get("/api/runs")[1]}
        assert runs["broken"]["status"] == "unreadable" and "not a readable SQLite journal" in runs["broken"]["error"]
        assert runs["bt"]["status"] == "finished"  # one damaged run does not hide the others
        for sub in ("", "/metrics", "/plans", "/fills", "/alerts", "/transitions", "/decision?at=2025-01-02T00:00Z"):
            status, body, _ = console.get(f"/api/runs/broken{sub}")
            assert status == 422 and "broken" in body["detail"], (sub, status, body)
        status, _, _ = console.get("/runs/broken")
        assert status == 422
    finally:
        (broken / "journal.sqlite").unlink()
        broken.rmdir()
