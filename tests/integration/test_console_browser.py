"""The console in a real headless Chromium (issue 17): Chromium from the system packages, driven by
Playwright, against a real `trimtab serve` and real runs (console_support).

The runs list shows the runs; a run page draws every chart with no console error and no request
leaving the server; clicking a time shows the decision then (as explain --at has it); a live
replay's equity moves on screen without a reload; stop without the token is refused, and with it
the run stops at its next tick and the page says so.

``TRIMTAB_UPDATE_SCREENSHOT=1`` also writes the run page's screenshot to docs/console.png.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from console_support import ROOT, TOKEN, chromium, stop_world, world
from trimtab.explain import explain_at



@pytest.fixture(scope="session")
def console(tmp_path_factory, request):
    w = world(tmp_path_factory)
    request.addfinalizer(stop_world)
    return w


@pytest.fixture(scope="module")
def browser():
    with chromium() as b:
        yield b


class Page:
    """A page that records console errors, page errors and any request off the console server."""

    def __init__(self, browser, base: str):
        self.page = browser.new_page(viewport={"width": 1400, "height": 1000})
        self.errors: list[str] = []
        self.foreign: list[str] = []
        self.page.on("console", lambda m: self.errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))

        def route(r):
            if r.request.url.startswith(base):
                r.continue_()
            else:
                self.foreign.append(r.request.url)
                r.abort()
        self.page.route("**/*", route)

    def close(self):
        self.page.close()


def test_runs_list_shows_every_run(console, browser):
    p = Page(browser, console.base)
    try:
        p.page.goto(console.base + "/", wait_until="load")
        rows = p.page.eval_on_selector_all("#runs tbody tr", "rs => rs.map(r => [r.dataset.run, r.dataset.status, "
                                           "r.querySelector('.health') ? r.querySelector('.health').className : ''])")
        by_id = {r[0]: r for r in rows}
        assert {"bt", "pf", "sec", "live"} <= set(by_id)
        assert by_id["live"][1] == "live" and by_id["bt"][1] == "finished" and by_id["pf"][1] == "finished"
        api = {r["id"]: r for r in console.get("/api/runs")[1]}
        for rid in ("bt", "pf", "live"):
            assert by_id[rid][2] == f"health {api[rid]['health']['level']}"
        # The live run's row follows its ticks without a reload.
        p.page.evaluate("window.__notReloaded = true")
        sel = "#runs tr[data-run='live'] .last"
        tick0 = int(p.page.get_attribute(sel, "data-tick"))
        p.page.wait_for_function(f"Number(document.querySelector(\"{sel}\").dataset.tick) > {tick0}", timeout=15_000)
        assert p.page.evaluate("window.__notReloaded === true")
        assert p.errors == [] and p.foreign == []
    finally:
        p.close()


def test_run_page_draws_every_chart_and_a_click_shows_the_decision(console, browser, tmp_path):
    p = Page(browser, console.base)
    try:
        p.page.goto(console.base + "/runs/bt", wait_until="load")
        expected = p.page.eval_on_selector_all("script[id^='fig-']", "ss => ss.map(s => s.id.slice(4))")
        assert {"equity", "health_factor", "ltv", "margin", "delta", "timeline", "waterfall"} <= set(expected)
        p.page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot svg.main-svg').length >= {len(expected)}", timeout=20_000)
        drawn = p.page.evaluate("""() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => [el.id,
            el.querySelectorAll('g.trace').length])""")
        assert sorted(d[0] for d in drawn) == sorted(f"chart-{k}" for k in expected)
        assert all(n > 0 for _, n in drawn), drawn
        # Every transition is marked on the risk charts (a vertical line each, drawn in the SVG).
        with sqlite3.connect(f"file:{console.journal('bt')}?mode=ro", uri=True) as db:
            n_trans = db.execute("SELECT count(*) FROM decisions WHERE trigger IS NOT NULL").fetchone()[0]
        marked = p.page.evaluate("""() => ['equity', 'health_factor', 'margin'].map(k =>
            document.querySelectorAll('#chart-' + k + ' .shapelayer path').length)""")
        assert n_trans > 0 and all(m >= n_trans for m in marked), (n_trans, marked)
        # Click the middle of the equity chart: the decision in force at that time appears.
        box = p.page.locator("#chart-equity .nsewdrag").first.bounding_box()
        x, y = box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.5
        p.page.mouse.move(x, y)
        p.page.mouse.click(x, y)
        p.page.wait_for_selector("#decision-state", timeout=15_000)
        tick = int(p.page.get_attribute("#decision", "data-tick"))
        shown = p.page.inner_text("#decision .decision-head")
        when = shown.split(" ", 1)[0]
        want = explain_at(console.journal("bt"), when)
        assert want["tick"] == tick and p.page.inner_text("#decision-state") == want["state"]
        assert 20 < tick < 150  # the middle of a 7-day run, not its first or last tick
        rules_shown = p.page.eval_on_selector_all("#decision table tbody tr td:first-child", "tds => tds.map(t => t.textContent)")
        assert {r["rule"] for r in want["rules"]} <= set(rules_shown)
        p.page.screenshot(path=str(tmp_path / "run.png"))
        if os.environ.get("TRIMTAB_UPDATE_SCREENSHOT") == "1":
            p.page.screenshot(path=str(ROOT / "docs" / "console.png"))
        assert p.errors == [] and p.foreign == []
    finally:
        p.close()


def test_portfolio_page_shows_sleeves(console, browser):
    p = Page(browser, console.base)
    try:
        p.page.goto(console.base + "/runs/pf", wait_until="load")
        p.page.wait_for_selector("#chart-equity svg.main-svg", timeout=20_000)
        sleeves = p.page.eval_on_selector_all("#sleeves tbody tr td:first-child", "tds => tds.map(t => t.textContent)")
        summary = json.loads((console.runs / "pf" / "summary.json").read_text())
        assert sleeves and sorted(sleeves) == sorted(summary["sleeves"])
        assert p.errors == [] and p.foreign == []
    finally:
        p.close()


def _controls(journal: Path) -> list:
    db = sqlite3.connect(f"file:{journal}?mode=ro", uri=True, timeout=10)
    try:
        return db.execute("SELECT key FROM control").fetchall()
    finally:
        db.close()


def test_live_equity_updates_and_the_kill_switch(console, browser):
    assert console.live.poll() is None, "the live replay ended before the test"
    p = Page(browser, console.base)
    try:
        p.page.goto(console.base + "/runs/live", wait_until="load")
        p.page.wait_for_selector("#chart-equity svg.main-svg", timeout=20_000)
        p.page.evaluate("window.__notReloaded = true")
        tick0 = int(p.page.inner_text("#last-tick"))
        n0 = p.page.evaluate("document.getElementById('chart-equity').data[0].x.length")
        p.page.wait_for_function(f"Number(document.getElementById('last-tick').textContent) >= {tick0 + 2}", timeout=20_000)
        assert p.page.evaluate("window.__notReloaded === true")
        assert p.page.evaluate("document.getElementById('chart-equity').data[0].x.length") >= n0 + 2
        tick, shown = p.page.evaluate("[Number(document.getElementById('last-tick').textContent), "
                                      "document.getElementById('last-equity').textContent]")
        db = sqlite3.connect(f"file:{console.journal('live')}?mode=ro", uri=True, timeout=10)
        try:
            (equity,) = db.execute("SELECT equity FROM metrics WHERE tick = ?", (tick,)).fetchone()
        finally:
            db.close()
        assert shown == f"{equity:,.2f}"

        assert p.errors == []
        # Without the token (and with a wrong one): refused, nothing written. (Chromium logs each
        # refused request as a console error: exactly those two are expected below.)
        p.page.fill("#stop-confirm", "live")
        p.page.click("#stop-flatten-btn")
        p.page.wait_for_function("document.getElementById('action-result').textContent.startsWith('refused')", timeout=10_000)
        assert "token" in p.page.inner_text("#action-result")
        p.page.fill("#stop-token", "not-the-token-0000")
        p.page.click("#stop-flatten-btn")
        p.page.wait_for_function("document.getElementById('action-result').textContent.includes('refused')", timeout=10_000)
        assert _controls(console.journal("live")) == [] and console.live.poll() is None

        # With the token and the confirmation: the run stops at its next tick, flattened; the page says so.
        p.page.fill("#stop-token", TOKEN)
        t0 = time.monotonic()
        p.page.click("#stop-flatten-btn")
        p.page.wait_for_function("document.getElementById('action-result').textContent.includes('requested')", timeout=10_000)
        p.page.wait_for_function("document.getElementById('run-status').textContent === 'stopped'", timeout=60_000)
        assert "flattened" in p.page.inner_text("#action-result")
        console.live.wait(timeout=60)
        assert console.live.returncode == 0 and time.monotonic() - t0 < 60
        st = console.get("/api/runs/live/status")[1]
        assert not st["running"] and st["stopped"]["flatten"] is True
        perps = {k: v for k, v in st["positions"].items() if ":Perp:" in k or k.startswith("aave_v3:")}
        assert all(abs(v) < 1e-9 for v in perps.values()), perps
        assert p.page.is_disabled("#stop-btn")
        assert len(p.errors) == 2 and all("status of 403" in e for e in p.errors), p.errors
        assert p.foreign == []
    finally:
        p.close()
