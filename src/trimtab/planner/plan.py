"""Plans are pure data: ordered steps of instructions or atomic bundles.

Same inputs, same plan: a plan is built only from the strategy, the action, the positions and
this tick's prices; it serialises to canonical JSON and its id is the SHA-256 of that JSON.
A step runs when the steps it ``depends_on`` are done; a step with ``latency_s`` (a CEX
deposit, a withdrawal) is done when its funds arrive.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field, fields, is_dataclass
from functools import cached_property


@dataclass(frozen=True)
class Instruction:
    """One venue operation. ``amount`` is in asset units of ``asset`` (perp trades: signed
    contracts in the perp's asset). ``expected_cost`` is in the share class."""

    venue: str
    operation: str
    instrument: str
    amount: float
    asset: str
    params: dict = field(default_factory=dict)
    price_field: str | None = None
    expected_cost: float = 0.0


@dataclass(frozen=True)
class Step:
    """A plan step: one instruction, or an atomic bundle (``bundle=True``) that applies whole
    or not at all, executed by ``venue`` (the bundler) as ``operation``."""

    id: str
    description: str
    instructions: tuple[Instruction, ...]
    bundle: bool = False
    venue: str | None = None
    operation: str | None = None
    depends_on: tuple[str, ...] = ()
    latency_s: float = 0.0
    expected_cost: float = 0.0


@dataclass(frozen=True)
class Plan:
    """An ordered, hashed plan. ``targets`` are the target positions it moves toward."""

    strategy: str
    state: str
    action: str
    trigger: str
    time: str
    targets: dict
    steps: tuple[Step, ...]
    expected_cost: float
    notes: tuple[str, ...] = ()

    def to_dict(self) -> dict:
        """The fields as :func:`dataclasses.asdict` gives them (steps and instructions as
        dicts, tuples kept), plus ``id``. Containers are fresh copies; leaves are shared
        (they are str, numbers and None)."""
        d = _plain(self)
        d["id"] = self.id
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Plan":
        """The plan a :meth:`to_dict` (possibly through JSON: tuples as lists) describes.

        Raises:
            ValueError: ``d["id"]`` is not the id of the plan rebuilt from the other fields
                (the data was changed after the plan was hashed); KeyError/TypeError on a
                missing or unexpected field.
        """
        steps = tuple(Step(**{**s, "instructions": tuple(Instruction(**i) for i in s["instructions"]),
                              "depends_on": tuple(s["depends_on"])}) for s in d["steps"])
        plan = cls(**{k: v for k, v in d.items() if k != "id"} | {"steps": steps, "notes": tuple(d["notes"])})
        if d.get("id") is not None and plan.id != d["id"]:
            raise ValueError(f"plan id {d['id']} does not match its content (hash {plan.id})")
        return plan

    def canonical_json(self) -> str:
        """The plan's fields as sorted, compact JSON (the same text as ``json.dumps(asdict(plan))``
        with those options: :func:`_plain` builds the same structure without asdict's deep copy)."""
        return json.dumps(self._content, sort_keys=True, separators=(",", ":"), allow_nan=False, default=str)

    def json_text(self) -> str:
        """:meth:`to_dict` as compact JSON, keys in field order then ``id`` (the journal's text
        of the plan). Raises ValueError (from :attr:`id`) on a non-finite float."""
        plan_id = self.id  # hashed first: its allow_nan=False proves every float finite, so no inf/nan mapping is due
        return json.dumps({**self._content, "id": plan_id}, separators=(",", ":"), default=str)

    @cached_property
    def _content(self) -> dict:
        # The fields as _plain gives them, built once for the id and the journal text (plans are
        # pure data: nothing edits them once built). Never handed out: to_dict gives fresh copies.
        return _plain(self)

    @cached_property
    def id(self) -> str:
        """First 16 hex digits of the SHA-256 of the canonical JSON.

        Hashed on first read and kept: a plan is frozen and nothing edits its dicts once built
        (plans are pure data), while the engine reads the id for every step, fill and journal
        row. A plan rebuilt by :meth:`from_dict` is a new object, so its id is hashed afresh
        from its content, which is what the restore check compares."""
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()[:16]


_SCALARS = frozenset((str, int, float, bool, type(None)))
_FIELD_NAMES: dict[type, tuple[str, ...]] = {}  # dataclass -> its field names, in order (fields() builds them per call)


def _plain(x):
    """``x`` as :func:`dataclasses.asdict` builds it (dataclasses as dicts of their fields,
    lists and tuples rebuilt with their own type, dicts as dicts, recursively), without
    asdict's deep copy of every leaf: leaves are returned as they are (json's ``default`` sees
    the same objects asdict would have copied). Plans hold str, numbers, None and containers
    of them, so the canonical JSON, and with it the id, is the text asdict gave."""
    t = type(x)
    if t in _SCALARS:
        return x
    names = _FIELD_NAMES.get(t)
    if names is None and is_dataclass(x) and not isinstance(x, type):
        names = _FIELD_NAMES[t] = tuple(f.name for f in fields(x))
    if names is not None:
        return {n: _plain(getattr(x, n)) for n in names}
    if isinstance(x, tuple) and hasattr(x, "_fields"):  # a namedtuple, as asdict rebuilds it
        return t(*[_plain(v) for v in x])
    if isinstance(x, (list, tuple)):
        return t(v if type(v) in _SCALARS else _plain(v) for v in x)
    if isinstance(x, dict):
        return {k: v if type(v) in _SCALARS else _plain(v) for k, v in x.items()}
    return x
