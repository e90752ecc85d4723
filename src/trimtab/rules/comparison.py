"""Comparisons as evaluated at runtime (:class:`Comparison`) and as written (:class:`ComparisonSite`)."""

from __future__ import annotations

from dataclasses import dataclass

from .nodes import Node
from .printer import to_text

@dataclass(frozen=True)
class Comparison:
    """One comparison as it was evaluated (returned by :meth:`CompiledExpr.trace`).

    ``text`` is the canonical text of the comparison as written. ``left_text op right_text``
    is the same comparison *normalised* so that the varying side comes first: when the written
    left side is constant (a literal, or built only from folded constants) and the right side
    is not, the sides are swapped and ``op`` mirrored -- ``1.1 > health_factor`` is reported as
    ``left_text="health_factor", op="<", right_text="1.1"``. ``observed`` is the value of
    ``left_text`` and ``threshold`` the value of ``right_text`` (as floats; booleans become
    0.0/1.0), and ``result`` is the outcome (False whenever a side is NaN).
    """

    text: str
    left_text: str
    op: str
    right_text: str
    observed: float
    threshold: float
    result: bool

    @property
    def undecided(self) -> bool:
        """True when a side is NaN: the data could not decide this comparison (a data fault)."""
        return self.observed != self.observed or self.threshold != self.threshold


@dataclass(frozen=True)
class ComparisonSite:
    """A comparison as it appears in the source (for static audits such as hysteresis checks).

    ``left``/``right`` are the unfolded operand nodes as written (no mirroring); ``text`` is the
    canonical text of the comparison and ``start``/``end`` its span in the source.
    """

    text: str
    left: Node
    op: str
    right: Node
    start: int
    end: int


def comparison_sites(node: Node) -> tuple[ComparisonSite, ...]:
    """Every comparison in ``node`` in source order (pre-order, left to right), for static audits."""
    out: list[ComparisonSite] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if n.kind == "cmp":
            left, right = n.children
            out.append(ComparisonSite(to_text(n), left, n.value, right, n.start, n.end))  # type: ignore[arg-type]
        stack.extend(reversed(n.children))
    return tuple(out)


def new_comparison(text, left_text, op, right_text, observed, threshold, result) -> Comparison:
    """Build a Comparison without the frozen-dataclass ``__init__`` (twice as fast, same object)."""
    c = _object_new(Comparison)
    c.__dict__.update(
        text=text,
        left_text=left_text,
        op=op,
        right_text=right_text,
        observed=observed,
        threshold=threshold,
        result=result,
    )
    return c


_object_new = object.__new__
