"""`trimtab diagram` lays every shipped machine out with Graphviz `dot`: no two text labels of
the drawing overlap (state names, transition labels, the title and the guard legend).

The text boxes come from dot's own layout (``-Tjson``: each text drawing operation with its
anchor point, alignment, width and the font size in force), so they are the ones the SVG/PNG
draws. A line's box spans its width horizontally and from 0.25 x size below the baseline to
0.75 x size above it (Latin glyphs' descent and ascent)."""
import itertools
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from trimtab.config.load import load_strategy
from trimtab.diagram import layout
from trimtab.portfolio.config import is_portfolio_file, load_portfolio

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz `dot` not installed (scripts/sysdeps.sh installs it)")


def _one_config_per_machine() -> dict[str, Path]:
    """machine name -> the first shipped config that uses it (every machine of machines/*.yaml)."""
    out: dict[str, Path] = {}
    for c in sorted((ROOT / "configs").glob("*.yaml")):
        m = re.search(r"^machine:\s*(\S+)", c.read_text(), re.M)
        if m and m.group(1) not in out:
            out[m.group(1)] = c
    return out


CONFIGS = _one_config_per_machine()


def _load(config: Path):
    return load_portfolio(config) if is_portfolio_file(config) else load_strategy(config)


def text_boxes(lay: dict) -> list[tuple[str, float, float, float, float]]:
    """(text, x0, y0, x1, y1) of every text line dot draws (graph, node and edge labels), in points."""
    boxes = []
    for obj in [lay, *lay.get("objects", []), *lay.get("edges", [])]:
        for key in ("_ldraw_", "_hldraw_", "_tldraw_", "_draw_"):
            size = 14.0
            for op in obj.get(key) or []:
                if op["op"] == "F":
                    size = float(op["size"])
                elif op["op"] == "T" and op["text"].strip():
                    x, y = map(float, op["pt"])
                    w = float(op["width"])
                    x0 = {"l": x, "c": x - w / 2, "r": x - w}[op["align"]]
                    boxes.append((op["text"], x0, y - 0.25 * size, x0 + w, y + 0.75 * size))
    return boxes


def overlaps(boxes) -> list[tuple[str, str]]:
    """Pairs of text lines whose boxes overlap by more than half a point either way."""
    bad = []
    for a, b in itertools.combinations(boxes, 2):
        dx = min(a[3], b[3]) - max(a[1], b[1])
        dy = min(a[4], b[4]) - max(a[2], b[2])
        if dx > 0.5 and dy > 0.5:
            bad.append((a[0], b[0]))
    return bad


def test_every_shipped_machine_is_covered():
    machines = {p.stem for p in (ROOT / "machines").glob("*.yaml")}
    assert machines <= set(CONFIGS), f"machines without a shipped config: {machines - set(CONFIGS)}"


@pytest.mark.parametrize("machine", sorted(CONFIGS))
@pytest.mark.parametrize("expressions", [False, True])
def test_no_two_labels_overlap(machine, expressions):
    s = _load(CONFIGS[machine])
    boxes = text_boxes(layout(s, expressions=expressions))
    texts = " ".join(b[0] for b in boxes)
    # every state and every transition's trigger is drawn, so the check covers all the labels
    assert all(state in texts for state in s.machine.states)
    assert all(t.trigger in texts for t in s.machine.transitions)
    assert overlaps(boxes) == []


def test_the_overlap_check_finds_an_overlap():
    # the same label twice at one place is caught (the check above could otherwise pass vacuously)
    box = ("idle", 0.0, 0.0, 20.0, 10.0)
    assert overlaps([box, ("x", 5.0, 2.0, 30.0, 12.0)]) == [("idle", "x")]
    assert overlaps([box, ("x", 21.0, 0.0, 30.0, 10.0)]) == []


def test_cli_writes_svg_and_png(tmp_path):
    for suffix in ("svg", "png"):
        out = tmp_path / f"m.{suffix}"
        p = subprocess.run([str(ROOT / ".venv/bin/trimtab"), "diagram", "configs/portfolio_strategies.yaml", "-o", str(out)],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, p.stderr
        assert p.stdout.startswith("---") and "stateDiagram-v2" in p.stdout
        data = out.read_bytes()
        assert data.startswith(b"\x89PNG") if suffix == "png" else b"<svg" in data and b"reallocating" in data


def test_cli_without_dot_says_how_to_install(tmp_path):
    p = subprocess.run([sys.executable, "-m", "trimtab.cli.main", "diagram", "configs/eth_basis.yaml", "-o", str(tmp_path / "m.svg")],
                       cwd=ROOT, capture_output=True, text=True, timeout=120, env={"PATH": str(tmp_path), "HOME": str(tmp_path)})
    assert p.returncode == 1
    assert "Graphviz's `dot` is not installed" in p.stderr and "apt-get install graphviz" in p.stderr
    assert not (tmp_path / "m.svg").exists()
