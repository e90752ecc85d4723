"""The console's guards (issue 17) against a real `trimtab serve`: no action without the token, no
path traversal through run ids, secrets never in a response, the token on every request of a
non-loopback bind, and cross-site POSTs refused."""
from __future__ import annotations

import http.client
import os
import shutil
import socket
import sqlite3
import stat
import subprocess

import pytest

from console_support import SECRET, TOKEN, TRIMTAB, ROOT, free_port, request, start_server, stop_world, world


@pytest.fixture(scope="session")
def console(tmp_path_factory, request):
    w = world(tmp_path_factory)
    request.addfinalizer(stop_world)
    return w


def _controls(journal) -> list:
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute("SELECT key, value FROM control").fetchall()
    finally:
        db.close()


def _raw_get(base: str, path: str, host: str | None = None) -> tuple[int, str]:
    """A GET with the path sent exactly as given (urllib would not normalise it, but be explicit)."""
    hostport = base.split("//", 1)[1]
    c = http.client.HTTPConnection(*hostport.split(":"), timeout=30)
    try:
        c.putrequest("GET", path, skip_host=host is not None)
        if host is not None:
            c.putheader("Host", host)
        c.endheaders()
        r = c.getresponse()
        return r.status, r.read().decode("utf-8", "replace")
    finally:
        c.close()


@pytest.mark.parametrize("headers, code", [({}, 403), ({"X-Trimtab-Token": "wrong-token-0123456789"}, 403),
                                           ({"X-Trimtab-Token": TOKEN[:-1]}, 403)])
def test_no_stop_without_the_right_token(console, headers, code):
    for run_id in ("live", "bt"):
        status, body, _ = console.post(f"/api/runs/{run_id}/stop", {"confirm": run_id, "flatten": True}, headers=headers)
        assert status == code and "token" in body["detail"]
        assert _controls(console.journal(run_id)) == []


def test_stop_needs_the_confirmation_and_a_running_live_run(console):
    status, body, _ = console.post("/api/runs/bt/stop", {"confirm": "other", "flatten": False}, headers={"X-Trimtab-Token": TOKEN})
    assert status == 400 and "confirm" in body["detail"]
    status, body, _ = console.post("/api/runs/bt/stop", {"flatten": False}, headers={"X-Trimtab-Token": TOKEN})
    assert status == 422  # no confirm field at all
    status, body, _ = console.post("/api/runs/bt/stop", {"confirm": "bt"}, headers={"X-Trimtab-Token": TOKEN})
    assert status == 409 and "backtest" in body["detail"]
    assert _controls(console.journal("bt")) == []


def test_cross_site_post_is_refused_even_with_the_token(console):
    status, body, _ = console.post("/api/runs/live/stop", {"confirm": "live"},
                                   headers={"X-Trimtab-Token": TOKEN, "Origin": "http://evil.example"})
    assert status == 403 and "cross-site" in body["detail"]
    assert _controls(console.journal("live")) == []


@pytest.mark.parametrize("path", ["/api/runs/../metrics", "/api/runs/%2e%2e/metrics", "/api/runs/%2E%2E", "/api/runs/..%2f..%2fetc/plans",
                                  "/api/runs/%2fetc%2fpasswd", "/api/runs/%2Ftmp/fills", "/runs/%2e%2e", "/api/runs/.hidden/alerts",
                                  "/api/runs/bt%2f..%2f..%2fpf/summary", "/api/runs/..%5c..%5cetc/metrics"])
def test_traversal_ids_are_refused(console, path):
    status, text = _raw_get(console.base, path)
    assert status == 404, (path, status, text[:200])
    assert "passwd" not in text or "not a valid run id" in text


def test_symlinks_out_of_the_runs_folder_are_refused(console, tmp_path):
    outside = tmp_path / "outside"
    shutil.copytree(console.runs / "bt", outside, ignore=shutil.ignore_patterns("run.lock"))
    (console.runs / "escape").symlink_to(outside, target_is_directory=True)
    inner = console.runs / "inner"
    inner.mkdir()
    (inner / "journal.sqlite").symlink_to(outside / "journal.sqlite")
    try:
        for run_id in ("escape", "inner"):
            for sub in ("", "/metrics", "/plans", "/decision?at=2025-01-02T00:00Z"):
                status, body, _ = console.get(f"/api/runs/{run_id}{sub}")
                assert status == 404 and "symlink" in body["detail"], (run_id, sub, body)
            assert _raw_get(console.base, f"/runs/{run_id}")[0] == 404
        ids = {r["id"] for r in console.get("/api/runs")[1]}
        assert "escape" not in ids and "inner" not in ids and "bt" in ids
    finally:
        (console.runs / "escape").unlink()
        shutil.rmtree(inner)


def test_a_secret_in_a_config_never_shows(console):
    # The journal does hold it (the run was made without the variable set), so the test can fail.
    db = sqlite3.connect(f"file:{console.journal('sec')}?mode=ro", uri=True)
    try:
        assert SECRET in db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()[0]
    finally:
        db.close()
    seen_mask = False
    for path in ("/api/runs", "/api/runs/sec", "/api/runs/sec/metrics", "/api/runs/sec/transitions", "/api/runs/sec/plans",
                 "/api/runs/sec/fills", "/api/runs/sec/alerts", "/api/runs/sec/decision?at=2025-01-02T00:00Z", "/", "/runs/sec",
                 "/api/runs/sec/stream"):
        status, text = _raw_get(console.base, path)
        assert status == 200, (path, status, text[:300])
        assert SECRET not in text, path
        seen_mask |= "***" in text
    assert seen_mask
    status, body, _ = console.get("/api/runs/sec")
    assert "exchange key ***" in body["meta"]["config"]["description"]


def test_reads_need_no_token_on_loopback_but_the_host_must_be_ours(console):
    assert console.get("/api/runs")[0] == 200 and console.get("/")[0] == 200
    port = console.base.rsplit(":", 1)[1]
    assert _raw_get(console.base, "/api/runs", host=f"localhost:{port}")[0] == 200
    status, text = _raw_get(console.base, "/api/runs", host=f"attacker.example:{port}")  # DNS rebinding
    assert status == 403 and "not this console's address" in text


def test_non_loopback_bind_needs_the_token_for_every_request(tmp_path):
    """Bound to 0.0.0.0 with no TRIMTAB_CONSOLE_TOKEN: a token is generated, stored 0600, printed;
    then every request needs it (header, or ?token= on a page load and the event stream)."""
    runs = tmp_path / "runs"
    runs.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIMTAB_")}
    port = free_port()
    p = start_server(runs, "0.0.0.0", port, env)
    try:
        token_file = runs / ".console-token"
        assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
        token = token_file.read_text().strip()
        base = f"http://127.0.0.1:{port}"
        for path in ("/api/runs", "/", "/openapi.json", "/static/console.js", "/api/runs/x/metrics"):
            status, body, _ = request("GET", base + path)
            assert status == 403 and "needs the token" in str(body), path
            assert request("GET", base + path, headers={"X-Trimtab-Token": "nope-nope-nope-nope"})[0] == 403
        assert request("GET", base + "/api/runs", headers={"X-Trimtab-Token": token})[:2] == (200, [])
        assert request("GET", base + f"/?token={token}")[0] == 200
        assert request("GET", base + "/api/runs?token=wrong")[0] == 403
        assert request("POST", base + f"/api/runs/x/stop?token={token}", body={"confirm": "x"})[0] == 403  # a POST: header only
    finally:
        p.terminate()
        out, _ = p.communicate(timeout=20)
    assert f"action token: {token}" in out and "every request needs the token" in out


def test_a_token_file_others_can_read_is_refused(tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / ".console-token").write_text("x" * 40 + "\n")
    os.chmod(runs / ".console-token", 0o644)
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIMTAB_")}
    p = subprocess.run([str(TRIMTAB), "serve", "--runs", str(runs), "--port", str(free_port())], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "chmod 600" in p.stderr and "Traceback" not in p.stderr
    p = subprocess.run([str(TRIMTAB), "serve", "--runs", str(tmp_path / "missing")], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 1 and "not a folder" in p.stderr
    with socket.create_server(("127.0.0.1", 0)) as busy:
        p = subprocess.run([str(TRIMTAB), "serve", "--runs", str(runs), "--port", str(busy.getsockname()[1])], cwd=ROOT,
                           env={**env, "TRIMTAB_CONSOLE_TOKEN": TOKEN}, capture_output=True, text=True, timeout=60)
    assert p.returncode == 1 and "cannot listen" in p.stderr and "--port" in p.stderr and p.stdout == ""
