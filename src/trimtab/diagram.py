"""The strategy's state machine as a diagram: Mermaid text and an SVG/PNG image.

:func:`mermaid` writes a ``stateDiagram-v2`` with every transition as the engine runs it
(``source: "*"`` expanded to one edge per state), labelled with its trigger and guard rules, or
with the guard expressions with the config's parameters folded in (``expressions=True``).
:func:`draw` renders the same machine with matplotlib: states on a circle (the initial state at
the top, ``emergency`` at the bottom), one arrow per (from, to) pair labelled with its triggers
and guards in priority order, action states shaded, ``"*"`` transitions dashed and labelled once.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from .config.load import Strategy
from .rules.nodes import Node
from .rules.parse import parse
from .rules.printer import to_text


def folded(when: str, params: dict[str, float]) -> str:
    """A rule expression with its parameters replaced by their values (``health_factor < 1.08``)."""

    def sub(n: Node) -> Node:
        if n.kind == "name" and n.value in params:
            v = float(params[n.value])
            num = Node("num", abs(v), (), n.start, n.end)
            return num if v >= 0 else Node("unary", "-", (num,), n.start, n.end)
        if n.children:
            return Node(n.kind, n.value, tuple(sub(c) for c in n.children), n.start, n.end)
        return n

    return to_text(sub(parse(when)))


@dataclass(frozen=True)
class Edge:
    """One (source, dest, trigger) of the machine; ``order`` is the transition's index (priority)."""

    source: str
    dest: str
    trigger: str
    rules: tuple[str, ...]
    star: bool
    order: int


def edges(strategy: Strategy) -> list[Edge]:
    """Every (source, dest, trigger) the machine can take, ``"*"`` expanded, in priority order."""
    m = strategy.machine
    out = []
    for i, t in enumerate(m.transitions):
        star = t.source == "*"
        sources = [s for s in m.states if s != t.dest] if star else ([t.source] if isinstance(t.source, str) else list(t.source))
        for s in sources:
            out.append(Edge(s, t.dest, t.trigger, tuple(t.when), star, i))
    return out


def guard_label(strategy: Strategy, rules: tuple[str, ...], expressions: bool) -> str:
    """``rule_a ∧ rule_b``, or their expressions with parameters folded in."""
    if not expressions:
        return " ∧ ".join(rules)
    parts = [folded(strategy.rules[r].spec.when, strategy.params) if r in strategy.rules else r for r in rules]
    return " ∧ ".join(f"({p})" if len(parts) > 1 and (" or " in p or " and " in p) else p for p in parts)


_MM_ESCAPE = str.maketrans({"#": "#35;", "<": "#lt;", ">": "#gt;", ":": "#58;", ";": "#59;", '"': "#quot;"})


def _mm(text: str) -> str:
    """Escape text for a Mermaid label: ``< > : ; # "`` as Mermaid entity codes (``#lt;``)."""
    return text.translate(_MM_ESCAPE)


def mermaid(strategy: Strategy, expressions: bool = False) -> str:
    """Mermaid ``stateDiagram-v2`` text of the strategy's machine."""
    m = strategy.machine
    lines = ["---", f"title: {m.name} ({strategy.name})", "---", "stateDiagram-v2", f"    [*] --> {m.initial}"]
    for name, st in m.states.items():
        if st.action:
            ov = ", ".join(f"{k} = {v}" for k, v in st.action.overrides.items())
            lines.append(f"    {name} : action {st.action.kind}{_mm(' (' + ov + ')') if ov else ''}")
    for e in edges(strategy):
        t = m.transitions[e.order]
        ov = getattr(t, "overrides", None) or {}
        extra = f" ({', '.join(f'{k} = {v}' for k, v in ov.items())})" if ov else ""
        lines.append(f"    {e.source} --> {e.dest} : {e.order + 1}. {e.trigger} [{_mm(guard_label(strategy, e.rules, expressions))}]{_mm(extra)}")
    if "emergency" in m.states:
        lines.append("    classDef emergency fill:#fde2e2,stroke:#c0392b,color:#7b241c")
        lines.append("    class emergency emergency")
    lines.append("")
    lines.append("    %% guards (parameters folded in):")
    for r in sorted({r for t in m.transitions for r in t.when}):
        if r in strategy.rules:
            lines.append(f"    %%   {r} ({strategy.rules[r].spec.severity}): {folded(strategy.rules[r].spec.when, strategy.params)}")
    return "\n".join(lines) + "\n"


def _layout(strategy: Strategy) -> dict[str, tuple[float, float]]:
    m = strategy.machine
    names = list(m.states)
    ring = [m.initial] + [s for s in names if s not in (m.initial, "emergency")]
    pos = {}
    n = len(names)
    if "emergency" in m.states and m.initial != "emergency":
        # initial at the top, emergency at the bottom, the others down both sides
        others = ring[1:]
        left, right = others[::2], others[1::2]
        pos[m.initial] = (0.0, 1.15)
        pos["emergency"] = (0.0, -1.15)
        for side, group in ((-1, left), (1, right)):
            k = len(group)
            for j, s in enumerate(group):
                a = math.pi / 2 + side * math.pi * (j + 1) / (k + 1)
                pos[s] = (math.cos(a) * 1.9, math.sin(a) * 1.15)
    else:
        for j, s in enumerate(ring):
            a = math.pi / 2 - 2 * math.pi * j / n
            pos[s] = (math.cos(a) * 1.9, math.sin(a) * 1.15)
    return pos


def draw(strategy: Strategy, out: str | Path, expressions: bool = False) -> Path:
    """Render the machine to ``out`` (.svg or .png, by suffix) with matplotlib; returns the path.

    Raises ValueError for another suffix."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch

    out = Path(out)
    if out.suffix.lower() not in (".svg", ".png"):
        raise ValueError(f"diagram image must be .svg or .png, not {out.suffix or 'no suffix'}")
    m = strategy.machine
    pos = _layout(strategy)
    fig, ax = plt.subplots(figsize=(16, 11))
    ax.set_xlim(-2.7, 2.7)
    ax.set_ylim(-2.25, 1.5)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"{m.name} — {strategy.name}", fontsize=13, loc="left")

    for s, (x, y) in pos.items():
        st = m.states[s]
        face = "#fde2e2" if s == "emergency" else "#e8f0fb" if st.action else "#f4f4f4"
        edge = "#c0392b" if s == "emergency" else "#2c3e50"
        sub = f"\n{st.action.kind}" + (f" ({', '.join(f'{k}={v}' for k, v in st.action.overrides.items())})" if st.action.overrides else "") if st.action else ""
        ax.text(x, y, f"{s}{sub}", ha="center", va="center", fontsize=10, fontweight="bold", zorder=5,
                bbox=dict(boxstyle="round,pad=0.5", fc=face, ec=edge, lw=2 if s == m.initial else 1.2))
    ix, iy = pos[m.initial]
    ax.annotate("", xy=(ix - 0.18, iy + 0.06), xytext=(ix - 0.55, iy + 0.22),
                arrowprops=dict(arrowstyle="-|>", color="black", lw=1.2))
    ax.plot([ix - 0.55], [iy + 0.22], "ko", ms=6)

    groups: dict[tuple[str, str], list[Edge]] = {}
    stars: dict[int, list[Edge]] = {}
    for e in edges(strategy):
        if e.star:
            stars.setdefault(e.order, []).append(e)
        groups.setdefault((e.source, e.dest), []).append(e)
    for (a, b), es in groups.items():
        labels = [f"{e.order + 1}. {e.trigger} [{guard_label(strategy, e.rules, expressions)}]" for e in es if not e.star]
        star = all(e.star for e in es)
        color = "#c0392b" if b == "emergency" else "#34495e"
        if a == b:
            x, y = pos[a]
            loop = FancyArrowPatch((x + 0.12, y - 0.1), (x - 0.12, y - 0.1), connectionstyle="arc3,rad=-2.2",
                                   arrowstyle="-|>", mutation_scale=12, color=color, lw=1.1, zorder=3)
            ax.add_patch(loop)
            ax.text(x, y - 0.42, "\n".join(labels), ha="center", va="top", fontsize=7, color=color, zorder=6,
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.85))
            continue
        (x1, y1), (x2, y2) = pos[a], pos[b]
        rad = 0.3 if (b, a) in groups else 0.08
        arrow = FancyArrowPatch((x1, y1), (x2, y2), connectionstyle=f"arc3,rad={rad}", arrowstyle="-|>", mutation_scale=13,
                                shrinkA=26, shrinkB=26, color=color, lw=1.1, ls="--" if star else "-", alpha=0.6 if star else 1, zorder=2)
        ax.add_patch(arrow)
        if labels:
            dx, dy = x2 - x1, y2 - y1
            lx, ly = (x1 + x2) / 2 + rad * dy / 2, (y1 + y2) / 2 - rad * dx / 2
            ax.text(lx, ly, "\n".join(labels), ha="center", va="center", fontsize=7, color=color, zorder=6,
                    bbox=dict(boxstyle="round,pad=0.2", fc="white", ec="none", alpha=0.85))
    for order, es in stars.items():
        e = es[0]
        x, y = pos[e.dest]
        ax.text(x, y + 0.2, f"{order + 1}. {e.trigger} [{guard_label(strategy, e.rules, expressions)}]\nfrom every other state (dashed)",
                ha="center", va="bottom", fontsize=7.5, color="#c0392b", zorder=6,
                bbox=dict(boxstyle="round,pad=0.25", fc="white", ec="#c0392b", alpha=0.9))
    if not expressions:
        used = sorted({r for t in m.transitions for r in t.when if r in strategy.rules})
        legend = "\n".join(f"{r}: {folded(strategy.rules[r].spec.when, strategy.params)}" for r in used)
        ax.text(-2.68, -1.6, "guards (parameters folded in)\n" + legend, ha="left", va="top", fontsize=6.5, family="monospace",
                color="#333333", bbox=dict(boxstyle="round,pad=0.4", fc="#fbfbfb", ec="#cccccc"))
    ax.text(2.68, -1.6, "numbers: priority (transitions are tried in this order; the first whose guards hold fires)",
            ha="right", va="top", fontsize=7, color="#555555")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, bbox_inches="tight", dpi=150 if out.suffix.lower() == ".png" else 100)
    plt.close(fig)
    return out
