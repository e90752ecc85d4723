"""The HTML report in a real headless browser (issue 15, item 4): Chromium from the system packages,
driven by Playwright.

The report of a real January 2025 flagship backtest is opened from disk with every network
request refused (and recorded): each plotly chart must have drawn its SVG with at least one
trace, the page must log no console error and raise no page error, and it must not try to
fetch anything. A full-page screenshot is saved in the test's tmp dir.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from console_support import ROOT, TRIMTAB, chromium  # the same Chromium launch as the console's browser tests

# Every plotly chart of the page: its SVG and how many traces it drew (scatter and bar traces are
# `.trace` groups; a heatmap draws an image; a waterfall's bars are `.trace` too).
DRAWN = """() => Array.from(document.querySelectorAll('.js-plotly-plot')).map(el => ({
    id: el.id,
    svgs: el.querySelectorAll('svg.main-svg').length,
    svgChildren: el.querySelector('svg.main-svg') ? el.querySelector('svg.main-svg').childElementCount : 0,
    traces: el.querySelectorAll('g.trace, g.hm image').length,
    paths: el.querySelectorAll('g.trace path, g.hm image').length,
}))"""


@pytest.fixture(scope="module")
def flagship_report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("browser_runs")
    p = subprocess.run([str(TRIMTAB), "run", str(ROOT / "configs" / "usdt_eth_staking_hedged_leveraged.yaml"), "--start", "2025-01-01",
                        "--end", "2025-02-01", "--out", str(out), "--run-id", "flagship", "--report"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return out / "flagship" / "report.html"


def test_every_chart_renders_with_no_errors_and_no_network(flagship_report, tmp_path):
    html = flagship_report.read_text(encoding="utf-8")
    expected = re.findall(r'data-chart="([^"]+)"', html)
    assert len(expected) >= 9
    errors: list[str] = []
    requests: list[str] = []
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))

        def route(r):
            if r.request.url.startswith("file://"):
                r.continue_()
            else:  # the report must open with no network: refuse and remember any attempt
                requests.append(r.request.url)
                r.abort()

        page.route("**/*", route)
        page.goto(flagship_report.as_uri(), wait_until="load")
        page.wait_for_function(f"document.querySelectorAll('.js-plotly-plot svg.main-svg').length >= {len(expected)}", timeout=20_000)
        drawn = page.evaluate(DRAWN)
        shot = tmp_path / "report_flagship.png"
        page.screenshot(path=str(shot), full_page=True)
    assert sorted(d["id"] for d in drawn) == sorted(f"fig-{k}" for k in expected)
    for d in drawn:
        assert d["svgs"] >= 1 and d["svgChildren"] > 0, d
        assert d["traces"] >= 1 and d["paths"] >= 1, d
    assert errors == []
    assert requests == []
    assert shot.stat().st_size > 50_000
