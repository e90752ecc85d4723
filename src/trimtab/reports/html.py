"""One self-contained HTML page of figures and tables: :func:`render_page`.

plotly's JavaScript is embedded once, in the page's head (``plotly.offline.get_plotlyjs()``), and
each figure is a ``to_html(full_html=False, include_plotlyjs=False)`` fragment, so the file opens
with no network. The page is a Jinja2 template with autoescaping: every text from a run (plan
descriptions, data notes, names) is escaped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jinja2
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

#: Plotly's config for every figure: no plotly logo, PNG export kept, resized with the window.
PLOT_CONFIG = {"displaylogo": False, "responsive": True}


@dataclass
class Section:
    """One part of the page. ``key``: a stable id (``data-chart`` of a figure's section, tested);
    ``figure``: a plotly figure or None; ``note``: shown instead of (or under) the figure, e.g.
    "no perps in this run"; ``table``: rows (dicts of one shape) shown as a table."""

    key: str
    title: str
    figure: go.Figure | None = None
    note: str | None = None
    table: list[dict[str, Any]] | None = None
    columns: list[str] | None = None


@dataclass
class Page:
    """``title``; ``facts``: (label, value) pairs in the header; ``sections`` in order."""

    title: str
    facts: list[tuple[str, str]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)
    subtitle: str = ""


_TEMPLATE = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined).from_string("""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ page.title }}</title>
<style>
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; margin: 0 auto; max-width: 1280px; padding: 1rem 2rem; color: #222; }
h1 { margin-bottom: .2rem; } .sub { color: #666; margin-top: 0; }
.facts { display: grid; grid-template-columns: repeat(auto-fill, minmax(190px, 1fr)); gap: .4rem 1rem; margin: 1rem 0; }
.fact { border-left: 3px solid #1f4e79; padding: .2rem .6rem; overflow-wrap: anywhere; } .fact b { display: block; font-size: .75rem; color: #666; font-weight: normal; }
section { margin: 1.5rem 0; } h2 { font-size: 1.1rem; border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.note { color: #555; font-style: italic; }
table { border-collapse: collapse; font-size: .8rem; width: 100%; } th, td { border-bottom: 1px solid #eee; padding: .2rem .5rem; text-align: left; vertical-align: top; }
th { background: #f5f7fa; } td:first-child { white-space: nowrap; } td.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.sub td { color: #555; } tr.sub td:first-child { padding-left: 1.5rem; }
</style>
<script type="text/javascript">{{ plotlyjs | safe }}</script>
</head><body>
<h1>{{ page.title }}</h1><p class="sub">{{ page.subtitle }}</p>
<div class="facts">{% for k, v in page.facts %}<div class="fact"><b>{{ k }}</b>{{ v }}</div>{% endfor %}</div>
{% for s in sections %}
<section id="{{ s.key }}"{% if s.figure %} class="chart" data-chart="{{ s.key }}"{% else %} class="{{ 'table' if s.table is not none else 'note' }}" data-section="{{ s.key }}"{% endif %}>
{% if not s.figure %}<h2>{{ s.title }}</h2>{% endif %}
{% if s.figure %}{{ s.figure | safe }}{% endif %}
{% if s.note %}<p class="note">{{ s.note }}</p>{% endif %}
{% if s.table is not none %}{% if s.table %}<table><thead><tr>{% for c in s.columns %}<th>{{ c }}</th>{% endfor %}</tr></thead><tbody>
{% for r in s.table %}<tr{% if r.get('_sub') %} class="sub"{% endif %}>{% for c in s.columns %}{% set v = r.get(c) %}<td{% if v is number %} class="num"{% endif %}>{{ fmt(v) }}</td>{% endfor %}</tr>
{% endfor %}</tbody></table>{% else %}<p class="note">none</p>{% endif %}{% endif %}
</section>
{% endfor %}
</body></html>
""")


def fmt(v: Any) -> str:
    """A table cell: numbers with thousands separators (4 significant digits under 1), None empty."""
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        if v != v or v in (float("inf"), float("-inf")):
            return str(v)
        return f"{v:,.2f}" if abs(v) >= 100 else f"{v:.4g}"
    return str(v)


def render_page(page: Page) -> str:
    """The page as one HTML document (str, UTF-8 when written): plotly.js once, then each section.
    Each figure is drawn in a ``<div class="plotly-graph-div">`` inside a
    ``<section class="chart" data-chart="KEY">``; tables and notes in sections with ``data-section``."""
    rendered = []
    for s in page.sections:
        html = s.figure.to_html(full_html=False, include_plotlyjs=False, config=PLOT_CONFIG, div_id=f"fig-{s.key}") if s.figure else None
        cols = s.columns or (list(dict.fromkeys(k for r in s.table for k in r if not k.startswith("_"))) if s.table else [])
        rendered.append({"key": s.key, "title": s.title, "figure": html, "note": s.note, "table": s.table, "columns": cols})
    return _TEMPLATE.render(page=page, sections=rendered, plotlyjs=get_plotlyjs(), fmt=fmt)
