"""Checkpoints as data: the versioned JSON format, its schema, encoding and checked decoding.

A checkpoint is UTF-8 JSON text (stdlib :mod:`json`, so floats round-trip exactly)::

    {"format": "trimtab-checkpoint", "version": 1, "kind": "engine" | "portfolio", "state": {...}}

``state`` is :meth:`trimtab.engine.kernel.Engine.state` (kind ``engine``) or the portfolio
runner's ``{"portfolio": ..., "sleeves": {id: {"engine": ..., "tracker": ...}}}`` (kind
``portfolio``). Decoding never runs code: the text is parsed as JSON and checked against the
pydantic models below (strict types, no unknown fields), and anything else -- serialised Python
objects, other bytes, another format or version, a field of the wrong type -- is a :class:`CheckpointError`
naming the run, the tick and what is wrong. NaN and infinities are accepted only in the fields
that really hold them (a "withdraw all" flow, an unset correlation, free-form records such as
a reallocation's); everywhere else a number must be finite.

How a run commits a checkpoint and checks its journal before resuming from one is
:mod:`trimtab.engine.recovery`; this module is the format alone.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError

from ..errors import TrimtabError

FORMAT = "trimtab-checkpoint"
#: The checkpoint layout this trimtab writes and reads. Bump it when ``state`` changes shape.
VERSION = 1


class CheckpointError(TrimtabError):
    """A checkpoint or the journal holding it cannot be trusted; the message names the run
    directory (or file), the tick and what is wrong. Nothing has been resumed."""


# --------------------------------------------------------------------------- the schema
class _Data(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


AnyFloat = Annotated[float, Field(allow_inf_nan=True)]  # only where NaN/inf is a real value


class _Book(_Data):
    bal: dict[str, float]
    entry: dict[str, float]
    sums: dict[str, float]


class _Instruction(_Data):
    venue: str
    operation: str
    instrument: str
    amount: float
    asset: str
    params: dict[str, JsonValue]
    price_field: str | None
    expected_cost: float


class _Step(_Data):
    id: str
    description: str
    instructions: list[_Instruction]
    bundle: bool
    venue: str | None
    operation: str | None
    depends_on: list[str]
    latency_s: float
    expected_cost: float


class _Plan(_Data):
    strategy: str
    state: str
    action: str
    trigger: str
    time: str
    targets: dict[str, JsonValue]
    steps: list[_Step]
    expected_cost: float
    notes: list[str]
    id: str


class _Transit(_Data):
    plan_id: str
    step_id: str
    venue: str
    arrival_epoch: int
    src: str
    dst: str
    amount: float


class _Executor(_Data):
    plan: _Plan | None
    status: dict[str, Literal["pending", "in_transit", "done", "failed", "cancelled"]]
    transits: list[_Transit]
    counts: dict[str, int]
    last_failure: str | None
    failed_at: int | None


class _Sim(_Data):
    stops: dict[str, Annotated[list[AnyFloat | None], Field(min_length=2, max_length=2)]]  # [take profit, stop loss]; may be unbounded
    last_rate: dict[str, float]
    funding_proxies: dict[str, int]
    funding_missing: dict[str, int]


class _Pricing(_Data):
    stale_marks: dict[str, Annotated[list[int], Field(min_length=2, max_length=2)]]


class _Attr(_Data):
    total: dict[str, float]
    max_error: float


class _Monitors(_Data):
    last_rebalance_equity: float | None
    last_rebalance_epoch: int | None


class _Machine(_Data):
    state: str


class _Flow(_Data):
    time: str
    amount: AnyFloat  # -inf: withdraw everything


class _Flows(_Data):
    flows: list[_Flow]
    next: int
    units: float
    pending_deposit: float
    pending_withdrawal: float
    withdraw_all: bool
    net: float
    log: list[dict[str, JsonValue]]


class _Rewards(_Data):
    next: int
    paid: dict[str, float]


class _PlanGap(_Data):
    plan_id: str
    tick: int
    max_unhedged_usd: float
    max_unhedged_tick: int | None
    max_drift: float
    unhedged_hours: int
    hours_in_flight: int


class _LegRisk(_Data):
    since: int | None
    gap: _PlanGap | None = None  # absent in checkpoints written before the per-plan hedge gap


class EngineState(_Data):
    """The shape of :meth:`trimtab.engine.kernel.Engine.state`."""

    next_tick: int
    book: _Book
    executor: _Executor
    sim: _Sim
    pricing: _Pricing
    attr: _Attr
    monitors: _Monitors
    machine: _Machine
    cflows: _Flows
    rewards: _Rewards
    legrisk: _LegRisk
    halted: bool
    last_plan_empty: bool
    transitions: int
    liquidations: int
    fill_id: int


class _Tracker(_Data):
    last_alert: dict[str, int | None]
    suppressed: dict[str, int]
    fired: dict[str, int]
    suppressed_total: dict[str, int]
    counts: dict[str, float]
    by_status: dict[str, int]
    next_rebalance_id: int
    next_alert_id: int
    recent_alerts: list[dict[str, JsonValue]]


class _Sleeve(_Data):
    engine: EngineState
    tracker: _Tracker | None


class _Portfolio(_Data):
    next_tick: int
    cash: float
    method_raw: dict[str, AnyFloat]  # a method's raw target may be undefined (too little history)
    target_info: dict[str, JsonValue]
    peak: float
    sleeve_peak: dict[str, float]
    cut: list[str]
    last_realloc_epoch: int | None
    realloc: dict[str, JsonValue] | None
    realloc_count: int
    max_corr: AnyFloat  # NaN until there is enough history
    transitions: int
    limit_events: list[dict[str, JsonValue]]
    history_status: dict[str, int]
    machine: str


class PortfolioState(_Data):
    """The shape of the portfolio runner's checkpoint state."""

    portfolio: _Portfolio
    sleeves: dict[str, _Sleeve]


_MODELS = {"engine": EngineState, "portfolio": PortfolioState}


# --------------------------------------------------------------------------- bounded JSON
#: Deepest nesting accepted in JSON read back from a run (real states nest under 10 levels).
MAX_DEPTH = 64
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)
_BRACKET = re.compile(r"[\[\]{}]")


def loads(text: str | bytes):
    """``json.loads`` of text read back from a run (a journal, a checkpoint), refusing nesting
    deeper than :data:`MAX_DEPTH` *before* parsing: the C parser recurses on the C stack, and a
    library that raises Python's recursion limit (web3 sets 100000) turns a hostile
    ``[[[[...`` into a segmentation fault instead of a RecursionError.

    Raises:
        ValueError: nested too deeply (json.JSONDecodeError, a ValueError, for bad JSON).
    """
    if isinstance(text, (bytes, bytearray)):
        text = text.decode("utf-8")
    depth = 0
    for m in _BRACKET.finditer(_STRING.sub("", text)):
        depth += 1 if m.group() in "[{" else -1
        if depth > MAX_DEPTH:
            raise ValueError(f"nested more than {MAX_DEPTH} levels deep")
    return json.loads(text)


def _short(x) -> str:
    r = repr(x)
    return r if len(r) <= 40 else r[:37] + "..."


# --------------------------------------------------------------------------- encode / decode
def encode(kind: Literal["engine", "portfolio"], state: dict) -> bytes:
    """The checkpoint of ``state`` as UTF-8 JSON bytes (header and state; see the module doc).

    Raises:
        TypeError: ``state`` holds a value JSON cannot represent (a bug in a ``snapshot()``).
    """
    doc = {"format": FORMAT, "version": VERSION, "kind": kind, "state": state}
    return json.dumps(doc, separators=(",", ":"), allow_nan=True).encode()


def decode(blob, kind: Literal["engine", "portfolio"], where: str | Path, tick: int | None = None) -> dict:
    """The ``state`` of a checkpoint written by :func:`encode`, checked against its schema.

    ``where`` (the run directory or file) and ``tick`` only go into error messages. The blob
    is never deserialised as Python objects or evaluated: such a blob is recognised by its
    first byte and refused.

    Raises:
        CheckpointError: not a trimtab checkpoint (Python objects, other bytes, not JSON, no header),
            another version or kind, or a field of the wrong shape or type (named by path).
    """
    def fail(what: str) -> CheckpointError:
        at = f" at tick {tick}" if tick is not None else ""
        return CheckpointError(f"{where}: checkpoint{at}: {what}; refusing to resume")

    if isinstance(blob, str):
        blob = blob.encode()
    if not isinstance(blob, (bytes, bytearray, memoryview)):
        raise fail(f"not a trimtab checkpoint (a {type(blob).__name__} value, not JSON text)")
    blob = bytes(blob)
    if blob[:1] == b"\x80":  # pickle protocol 2+ opens with PROTO; never unpickled
        raise fail("not a trimtab checkpoint: it is a Python pickle, which trimtab never loads (it can run code)")
    try:
        doc = loads(blob.decode("utf-8"))
    except UnicodeDecodeError:
        raise fail("not a trimtab checkpoint (not UTF-8 text)") from None
    except (ValueError, RecursionError) as e:
        raise fail(f"not a trimtab checkpoint (not JSON: {getattr(e, 'msg', None) or e})") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise fail("not a trimtab checkpoint (no 'format': 'trimtab-checkpoint' header)")
    version = doc.get("version")
    if version != VERSION or type(version) is not int:
        raise fail(f"version {_short(version)}, this trimtab reads version {VERSION}")
    if doc.get("kind") != kind:
        raise fail(f"kind {_short(doc.get('kind'))}, expected {kind!r}")
    if set(doc) != {"format", "version", "kind", "state"}:
        raise fail(f"unexpected header fields {sorted(set(doc) - {'format', 'version', 'kind', 'state'})}")
    try:
        _MODELS[kind].model_validate(doc["state"])
    except ValidationError as e:
        err = e.errors()[0]
        path = ".".join(str(p) for p in err["loc"]) or "state"
        path = path if len(path) <= 120 else f"{path[:100]}...{path[-17:]}"  # a hostile nesting stays one short line
        more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
        raise fail(f"field {path}: {err['msg']}{more}") from None
    return doc["state"]
