"""The strategy's state machine as a diagram: Mermaid text and an SVG/PNG image.

:func:`mermaid` writes a ``stateDiagram-v2`` with every transition as the engine runs it
(``source: "*"`` expanded to one edge per state), labelled with its trigger and guard rules, or
with the guard expressions with the config's parameters folded in (``expressions=True``).
:func:`draw` renders the same machine as SVG or PNG, laid out by Graphviz ``dot`` (through the
``graphviz`` binding; dot places edge labels as nodes of the layout, so no two labels overlap):
one arrow per (from, to) pair labelled with its triggers and guards in priority order, action
states shaded, ``emergency`` red, ``"*"`` transitions dashed and labelled once, the guards with
their parameters folded in as a legend. :func:`graph` is the ``graphviz.Digraph`` it renders.
"""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from .config.load import Strategy
from .errors import TrimtabError
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


class DiagramError(TrimtabError):
    """The image cannot be made: Graphviz's ``dot`` is missing or failed."""


#: How to get ``dot`` (Graphviz), named in the error when it is missing.
INSTALL_DOT = ("install Graphviz, which provides `dot`: `sudo apt-get install graphviz` (Debian/Ubuntu; "
               "scripts/sysdeps.sh does it), `brew install graphviz` (macOS), or see https://graphviz.org/download/; "
               "`trimtab diagram CONFIG --no-image` prints the Mermaid text without it")

_FONT = "Helvetica"


def _esc(text: str) -> str:
    """Text for a Graphviz double-quoted label: backslashes doubled (the binding quotes the rest)."""
    return text.replace("\\", "\\\\")


def _lines(lines: list[str], just: str = "c") -> str:
    """Lines of one Graphviz label: ``\\n`` centred, ``\\l`` left-justified (dot escapes)."""
    end = "\\l" if just == "l" else "\\n"
    return "".join(_esc(x) + end for x in lines)


def graph(strategy: Strategy, expressions: bool = False):
    """The machine as a ``graphviz.Digraph`` laid out by ``dot``, top to bottom from the initial
    state: a node per state (action states shaded with their action, ``emergency`` red), one
    edge per (from, to) pair labelled ``priority. trigger [guards]`` (every transition between
    the two, in priority order), ``"*"`` transitions dashed and labelled on one edge only, and
    the title and a legend of the guards with their parameters folded in (unless
    ``expressions``, where the labels carry them) as the graph's label, below the drawing."""
    import graphviz

    m = strategy.machine
    g = graphviz.Digraph(m.name, engine="dot")
    g.attr(rankdir="TB", splines="true", nodesep="0.5", ranksep="0.7", fontname=_FONT, forcelabels="true")
    g.attr("node", fontname=_FONT, fontsize="12", shape="box", style="rounded,filled", margin="0.2,0.1")
    g.attr("edge", fontname=_FONT, fontsize="9", arrowsize="0.7")
    g.node("__start", label="", shape="point", width="0.15", style="filled", fillcolor="black")
    for name, st in m.states.items():
        sub = []
        if st.action:
            ov = ", ".join(f"{k}={v}" for k, v in st.action.overrides.items())
            sub = [f"{st.action.kind}" + (f" ({ov})" if ov else "")]
        fill = "#fde2e2" if name == "emergency" else "#e8f0fb" if st.action else "#f4f4f4"
        color = "#c0392b" if name == "emergency" else "#2c3e50"
        g.node(name, label=_lines([name] + sub), fillcolor=fill, color=color, penwidth="2" if name == m.initial else "1")
    g.edge("__start", m.initial)
    groups: dict[tuple[str, str], list[Edge]] = {}
    for e in edges(strategy):
        groups.setdefault((e.source, e.dest), []).append(e)
    star_labelled: set[int] = set()
    for (a, b), es in groups.items():
        labels = []
        for e in es:
            if e.star:
                if e.order in star_labelled:
                    continue
                star_labelled.add(e.order)
                labels.append(f"{e.order + 1}. {e.trigger} [{guard_label(strategy, e.rules, expressions)}] (from every state)")
            else:
                labels.append(f"{e.order + 1}. {e.trigger} [{guard_label(strategy, e.rules, expressions)}]")
        star = all(e.star for e in es)
        color = "#c0392b" if b == "emergency" else "#34495e"
        attrs = {"color": color, "fontcolor": color}
        if star:
            attrs |= {"style": "dashed"}
        if labels:
            attrs["label"] = _lines(labels, "l")
        g.edge(a, b, **attrs)
    # Title and legend are the graph's own label, laid out below the drawing (never over it).
    legend = [f"{m.name} — {strategy.name}", ""]
    if not expressions:
        used = sorted({r for t in m.transitions for r in t.when if r in strategy.rules})
        legend += ["guards (parameters folded in):"] + [f"  {r}: {folded(strategy.rules[r].spec.when, strategy.params)}" for r in used]
    legend.append("numbers: priority (transitions are tried in this order; the first whose guards hold fires)")
    g.attr(label=_lines(legend, "l"), labelloc="b", labeljust="l", fontsize="11")
    return g


def dot_path() -> str | None:
    """Where Graphviz's ``dot`` is, or None when it is not installed."""
    return shutil.which("dot")


def draw(strategy: Strategy, out: str | Path, expressions: bool = False) -> Path:
    """Render the machine (:func:`graph`) to ``out`` (.svg or .png, by suffix) with Graphviz
    ``dot``; returns the path.

    Raises:
        ValueError: another suffix.
        DiagramError: ``dot`` is not installed (the message says how to install it) or failed.
        OSError: ``out`` cannot be written.
    """
    import graphviz

    out = Path(out)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("svg", "png"):
        raise ValueError(f"diagram image must be .svg or .png, not {out.suffix or 'no suffix'}")
    if dot_path() is None:
        raise DiagramError(f"Graphviz's `dot` is not installed, so no {out.name} was drawn: {INSTALL_DOT}")
    g = graph(strategy, expressions=expressions)
    try:
        image = g.pipe(format=fmt, **({"renderer": "cairo"} if fmt == "png" else {}))
    except graphviz.ExecutableNotFound:
        raise DiagramError(f"Graphviz's `dot` is not installed, so no {out.name} was drawn: {INSTALL_DOT}") from None
    except graphviz.CalledProcessError as e:
        why = (e.stderr or b"").decode("utf-8", "replace").strip().splitlines()
        raise DiagramError(f"Graphviz's `dot` failed drawing {out.name}: {why[-1] if why else e}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(image)
    return out


def layout(strategy: Strategy, expressions: bool = False) -> dict:
    """The laid-out graph as ``dot -Tjson`` gives it (node and edge positions, and their
    drawing operations, text included, in points). Raises DiagramError without ``dot``."""
    import json

    import graphviz

    try:
        return json.loads(graph(strategy, expressions=expressions).pipe(format="json"))
    except graphviz.ExecutableNotFound:
        raise DiagramError(f"Graphviz's `dot` is not installed: {INSTALL_DOT}") from None
