"""``--grid NAME=SPEC`` and ``--random N``: the variants of a sweep, and their ids.

A spec is one of:

* ``a:b:step`` -- every value from ``a`` to ``b`` inclusive in steps of ``step``, computed in
  decimal arithmetic so ``0.75:0.9:0.05`` is exactly ``0.75, 0.8, 0.85, 0.9`` (binary floats would
  give ``0.8500000000000001`` and may drop the end point);
* ``a:b`` -- the interval [a, b], only with ``--random N`` (each variant draws a value uniformly);
* ``v1,v2,...`` (or one value) -- these values, each read as ``--set NAME=v`` reads it (a YAML scalar).

``NAME`` is anything ``--set`` accepts (a parameter or a dotted config path,
:mod:`trimtab.config.overrides`). A variant is one value per name; its id is a hash of those
values (:func:`variant_id`), so the same variant gets the same directory whatever the order of
the flags, which is what ``--resume`` relies on.
"""
from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
from decimal import Decimal, InvalidOperation

from . import ResearchError

__all__ = ["GridAxis", "Variant", "MAX_VARIANTS", "expand", "parse_axes", "parse_axis", "variant_id"]

#: Most variants one sweep may hold: beyond this, sample with ``--random N``.
MAX_VARIANTS = 100_000
FLAG = "--grid"


@dataclasses.dataclass(frozen=True)
class GridAxis:
    """One ``--grid`` flag.

    Attributes:
        name: the ``--set`` name (``target_ltv``, ``targets.hedge.allocation``).
        spec: the text after ``=`` as given.
        values: the values as ``--set`` text (``("0.75", "0.8")``); empty for an interval.
        low, high: the interval of ``a:b`` (no step), else None.
        numeric: every value (or the interval) is a number: the ``param.<name>`` column is float.
    """

    name: str
    spec: str
    values: tuple[str, ...]
    low: float | None = None
    high: float | None = None
    numeric: bool = True

    @property
    def flag(self) -> str:
        """``--grid NAME=SPEC``, how messages name this axis."""
        return f"{FLAG} {self.name}={self.spec}"

    @property
    def interval(self) -> bool:
        """True for ``a:b`` (sampled uniformly), False for listed or stepped values."""
        return self.low is not None

    def column(self, text: str) -> float | str:
        """A value of this axis as its ``param.<name>`` column holds it (float if numeric)."""
        return float(text) if self.numeric else text


@dataclasses.dataclass(frozen=True)
class Variant:
    """One point of the grid: ``values`` ``{name: --set text}`` in axis order; ``id`` from :func:`variant_id`."""

    id: str
    values: dict[str, str]

    @property
    def sets(self) -> list[str]:
        """The ``--set NAME=VALUE`` strings of this variant."""
        return [f"{n}={v}" for n, v in self.values.items()]


def variant_id(values: dict[str, str]) -> str:
    """``v-`` + the first 12 hex digits of SHA-256 over the sorted ``name=value`` pairs: a valid run id
    (:data:`trimtab.runs.RUN_ID`), stable across runs and flag order."""
    text = json.dumps(sorted(values.items()), separators=(",", ":"))
    return "v-" + hashlib.sha256(text.encode()).hexdigest()[:12]


def _decimal(text: str, what: str, flag: str) -> Decimal:
    try:
        d = Decimal(text.strip())
    except InvalidOperation:
        raise ResearchError(f"{flag}: {what} {text.strip()!r} is not a number", FLAG) from None
    if not d.is_finite():
        raise ResearchError(f"{flag}: {what} must be a finite number, got {text.strip()!r}", FLAG)
    return d


def _plain(d: Decimal) -> str:
    """``Decimal('0.90')`` -> ``'0.9'``, ``Decimal('100')`` -> ``'100'`` (never exponent notation)."""
    s = format(d.normalize(), "f")
    return s if s != "-0" else "0"


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def parse_axis(raw: str) -> GridAxis:
    """One ``--grid`` value ``NAME=SPEC`` (see the module doc).

    Raises:
        ResearchError: (``flag="--grid"``) no ``=`` or no name; a range bound or step that is not a
            finite number; a step <= 0; a start above the end; more than :data:`MAX_VARIANTS`
            values; an empty or repeated list value. The message names the flag and the fix.
    """
    name, eq, spec = raw.partition("=")
    name, spec = name.strip(), spec.strip()
    flag = f"{FLAG} {raw}"
    if not eq or not name or not spec:
        raise ResearchError(f"{flag}: expected NAME=a:b:step or NAME=v1,v2,... (e.g. --grid target_ltv=0.75:0.9:0.05)", FLAG)
    if "," not in spec and ":" in spec:
        parts = spec.split(":")
        if len(parts) not in (2, 3):
            raise ResearchError(f"{flag}: a range is a:b:step (or a:b with --random), got {len(parts)} parts", FLAG)
        a = _decimal(parts[0], "start", flag)
        b = _decimal(parts[1], "end", flag)
        if a > b:
            raise ResearchError(f"{flag}: start {_plain(a)} is above end {_plain(b)}; write the range low:high", FLAG)
        if len(parts) == 2:
            if a == b:
                raise ResearchError(f"{flag}: the interval {_plain(a)}:{_plain(b)} is one point; give the value alone", FLAG)
            return GridAxis(name, spec, (), float(a), float(b))
        step = _decimal(parts[2], "step", flag)
        if step <= 0:
            raise ResearchError(f"{flag}: step must be above 0, got {_plain(step)}", FLAG)
        n = int((b - a) / step) + 1  # inclusive of b when (b - a) is a whole number of steps, exactly
        if n > MAX_VARIANTS:
            raise ResearchError(f"{flag}: {n:,} values (at most {MAX_VARIANTS:,}); use a larger step", FLAG)
        return GridAxis(name, spec, tuple(_plain(a + k * step) for k in range(n)))
    values = [v.strip() for v in spec.split(",")]
    if any(v == "" for v in values):
        raise ResearchError(f"{flag}: an empty value in the list; write v1,v2,... with no empty item", FLAG)
    seen = [v for k, v in enumerate(values) if v in values[:k]]
    if seen:
        raise ResearchError(f"{flag}: {seen[0]!r} is listed twice", FLAG)
    return GridAxis(name, spec, tuple(values), numeric=all(_is_number(v) for v in values))


def parse_axes(raws: list[str]) -> list[GridAxis]:
    """Every ``--grid`` flag, in order.

    Raises:
        ResearchError: no flag at all, a bad one (:func:`parse_axis`), or one name swept twice.
    """
    if not raws:
        raise ResearchError("a sweep needs at least one --grid NAME=SPEC (e.g. --grid target_ltv=0.75:0.9:0.05)", FLAG)
    axes = [parse_axis(r) for r in raws]
    names = [a.name for a in axes]
    dup = next((n for k, n in enumerate(names) if n in names[:k]), None)
    if dup is not None:
        raise ResearchError(f"{FLAG}: {dup!r} is swept twice; give all its values in one flag", FLAG)
    return axes


def expand(axes: list[GridAxis], random: int | None = None, seed: int = 0) -> list[Variant]:
    """The sweep's variants.

    Without ``random``: the cartesian product of the axes' values, the first axis varying slowest.
    With ``random=N``: N variants drawn with ``numpy.random.default_rng(seed)``: N distinct points
    of the product (all of it, in order, when it has N or fewer) when every axis lists its values;
    else N points with each interval axis uniform on [a, b] and each listed axis uniform over its
    values.

    Raises:
        ResearchError: an interval axis without ``random`` (flag ``--grid``); ``random`` below 1
            (flag ``--random``); more than :data:`MAX_VARIANTS` variants.
    """
    import numpy as np

    if random is not None and random < 1:
        raise ResearchError(f"--random: must be 1 or more, got {random}", "--random")
    if random is None:
        loose = next((a for a in axes if a.interval), None)
        if loose is not None:
            raise ResearchError(f"{loose.flag}: a:b without a step is an interval to sample: add --random N, "
                                f"or give a step (a:b:step)", FLAG)
    if random is not None and random > MAX_VARIANTS:
        raise ResearchError(f"--random: at most {MAX_VARIANTS:,} variants, got {random:,}", "--random")
    rng = np.random.default_rng(seed)
    if all(not a.interval for a in axes):
        total = math.prod(len(a.values) for a in axes)
        if random is None or random >= total:
            if total > MAX_VARIANTS:
                raise ResearchError(f"{FLAG}: the grid has {total:,} variants (at most {MAX_VARIANTS:,}); "
                                    f"sample some with --random N", FLAG)
            points = list(itertools.product(*(a.values for a in axes)))
        else:
            # Draw flat indices of the product, then read each back as one value per axis.
            picks = sorted(int(i) for i in rng.choice(total, size=random, replace=False))
            shape = [len(a.values) for a in axes]
            points = [tuple(a.values[j] for a, j in zip(axes, np.unravel_index(i, shape))) for i in picks]
    else:
        points = []
        for _ in range(random):
            points.append(tuple(repr(float(rng.uniform(a.low, a.high))) if a.interval else a.values[int(rng.integers(len(a.values)))]
                                for a in axes))
    out: list[Variant] = []
    seen: set[str] = set()
    for p in points:
        values = {a.name: v for a, v in zip(axes, p)}
        vid = variant_id(values)
        if vid not in seen:  # a listed-only draw repeats nothing; an interval draw almost never does
            seen.add(vid)
            out.append(Variant(vid, values))
    return out
