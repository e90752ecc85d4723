"""What the console tests share (issue 17): real run directories made by real `trimtab` processes
and a real `trimtab serve` on a free localhost port.

Built once per test session (:func:`world`) whichever console test module asks first, and torn
down at the session's end:

* ``bt`` -- a flagship backtest, 2025-01-01 -> 2025-01-08;
* ``pf`` -- a portfolio of strategies, same window;
* ``sec`` -- a pure lending backtest whose config description carries a secret value (``--set
  description=...``), so its journal meta holds it; the server runs with that value in
  ``TRIMTAB_BINANCE_SECRET``, as a deployment whose config refers to its API key would;
* ``live`` -- a flagship live replay at 1 tick per second (``--speed 3600``), still running;
* the server, ``trimtab serve --runs DIR --port P`` with ``TRIMTAB_CONSOLE_TOKEN`` set.
"""
from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
TRIMTAB = Path(sys.executable).with_name("trimtab")
FLAGSHIP = "configs/usdt_eth_staking_hedged_leveraged.yaml"
SECRET = "sk-live-7f3a9c1e55b2d0aa"
TOKEN = "console-test-token-5d1e2f7a9b"
WINDOW = ("--start", "2025-01-01", "--end", "2025-01-08")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


@contextmanager
def chromium() -> Iterator:
    """The system Chromium, headless, launched by Playwright (the console's and the report's
    browser tests); closed after the block. Skips the test naming what is missing and how to
    install it (``make test`` runs scripts/sysdeps.sh, which apt-installs Chromium)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install the system Chromium (apt-get install chromium; `make test` runs scripts/sysdeps.sh)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed: pip install -e '.[test]' (or `make test`, which installs the test extras)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class World:
    runs: Path
    base: str
    procs: list = field(default_factory=list)
    live: subprocess.Popen | None = None

    def journal(self, run_id: str) -> Path:
        d = self.runs / run_id
        return d / "portfolio.sqlite" if (d / "portfolio.sqlite").is_file() else d / "journal.sqlite"

    def get(self, path: str, headers: dict | None = None, base: str | None = None):
        """(status, parsed JSON or text, headers) of a GET."""
        return request("GET", (base or self.base) + path, headers=headers)

    def post(self, path: str, body: dict, headers: dict | None = None, base: str | None = None):
        return request("POST", (base or self.base) + path, body=body, headers=headers)

    def stop(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)


def request(method: str, url: str, body: dict | None = None, headers: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    h = {"Content-Type": "application/json"} if data is not None else {}
    req = urllib.request.Request(url, data=data, method=method, headers={**h, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, raw, hdrs = r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        status, raw, hdrs = e.code, e.read(), dict(e.headers)
    text = raw.decode("utf-8")
    try:
        return status, json.loads(text), hdrs
    except ValueError:
        return status, text, hdrs


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([str(TRIMTAB), *args], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)


def start_server(runs: Path, host: str, port: int, env: dict) -> subprocess.Popen:
    """``trimtab serve`` as a subprocess, returned once it answers HTTP (or its stderr raised)."""
    p = subprocess.Popen([str(TRIMTAB), "serve", "--runs", str(runs), "--host", host, "--port", str(port)], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.monotonic()
    while time.monotonic() - t0 < 30:
        if p.poll() is not None:
            raise AssertionError(f"trimtab serve exited {p.returncode}: {p.stderr.read()}")
        try:
            request("GET", f"http://127.0.0.1:{port}/api/health")  # any answer (403 without a token on 0.0.0.0)
            return p
        except OSError:
            pass
        time.sleep(0.1)
    p.kill()
    raise AssertionError("trimtab serve did not answer within 30 s")


def ticks(journal: Path) -> int:
    if not journal.is_file():
        return -1
    try:
        db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=5)
        try:
            (n,) = db.execute("SELECT count(*) FROM metrics").fetchone()
        finally:
            db.close()
        return n
    except sqlite3.DatabaseError:
        return -1


_WORLD: World | None = None


def world(tmp_path_factory) -> World:
    """The shared runs and server (module docstring), built on first use."""
    global _WORLD
    if _WORLD is not None:
        return _WORLD
    runs = tmp_path_factory.mktemp("console_runs")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIMTAB_")}
    live = subprocess.Popen([str(TRIMTAB), "run", FLAGSHIP, "--live", "--replay", "--start", "2025-01-01", "--end", "2025-01-20",
                             "--speed", "3600", "--run-id", "live", "--out", str(runs)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    w = World(runs, "", [live], live)
    try:
        for args in (("run", FLAGSHIP, *WINDOW, "--run-id", "bt"),
                     ("run", "configs/portfolio_strategies.yaml", *WINDOW, "--run-id", "pf"),
                     ("run", "configs/pure_lending_usdt.yaml", "--start", "2025-01-01", "--end", "2025-01-03", "--run-id", "sec",
                      "--set", f"description=pure lending; exchange key {SECRET}")):
            p = run_cli(*args, "--out", str(runs), env=env)
            assert p.returncode == 0, p.stderr
        port = free_port()
        w.procs.append(start_server(runs, "127.0.0.1", port,
                                    {**env, "TRIMTAB_CONSOLE_TOKEN": TOKEN, "TRIMTAB_BINANCE_SECRET": SECRET}))
        w.base = f"http://127.0.0.1:{port}"
        t0 = time.monotonic()
        while ticks(runs / "live" / "journal.sqlite") < 3:  # the live run is under way
            assert live.poll() is None, live.stderr.read()
            assert time.monotonic() - t0 < 60, "the live replay journaled no tick in 60 s"
            time.sleep(0.1)
    except BaseException:
        w.stop()
        raise
    _WORLD = w
    return w


def stop_world() -> None:
    if _WORLD is not None:
        _WORLD.stop()
