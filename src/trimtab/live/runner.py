"""Live runs through the same engine: paper trading against a feed, crash-safe.

``trimtab run CONFIG --live --replay`` builds the same :class:`trimtab.engine.kernel.Engine`
as a backtest and steps it as the feed delivers ticks. After every tick the journal commits
that tick's rows *and* the engine state (:meth:`Engine.state`) in one SQLite transaction (WAL
mode), so a process killed at any moment -- even mid-plan, with transfers in flight -- loses
the whole of the tick it was on or none of it. ``--resume RUN`` reloads the last checkpoint
and carries on from the next tick: nothing that was committed runs again, so no instruction
is executed twice, and the run ends where an uninterrupted one ends. The state is data, not code
(versioned JSON, :mod:`trimtab.engine.checkpoint`), and a resume first checks the journal
(:mod:`trimtab.engine.recovery`: SQLite's integrity check, the checkpoint against the rows and
the ``checkpoint.json`` marker):
a damaged journal is refused with the path and the reason, never continued.

Execution is paper by default: fills come from the same simulated venue models as backtests.
``--execute`` (live feed only) puts the venue side of the executor on the real venues
(:func:`trimtab.live.connect.enable_execution`): every step is still simulated first (the
pre-trade estimate and safety check), then sent through the ccxt/web3 adapters with
idempotency keys (client order ids; signed transactions written ahead to the journal's
``outbox``), and the venues' fills are booked. Before the first tick, and again on
``--resume``, the book is reconciled against the venues; a mismatch beyond tolerance halts
the machine (rules still evaluated and journaled, nothing sent).

Every run owns its directory for its life (:mod:`trimtab.runs`: an exclusive lock on
``run.lock`` and an owner record), so a second ``--resume`` of a running run is refused.
``trimtab stop RUN`` writes a stop request into the journal of a run a process owns (a run no
process owns has nothing to stop: it says so and writes nothing); the loop sees it at the next
tick, cancels the plan in flight (``--flatten``: submits an unwind plan first and waits for
it), checkpoints with the request consumed and exits, so a later ``--resume`` continues.
``trimtab status RUN`` reads state, positions and open plans from the journal, and whether a
process runs it from the lock. Those two commands are :mod:`trimtab.live.control`; this module
is the run loops (replay and live feed), their start, resume and stop handling.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pandas as pd

from ..config.load import Strategy
from ..data.feed import DEFAULT_DATA_DIR, MarketData, load_market_data
from ..data.market import MarketView, series_of
from ..engine import checkpoint, recovery
from ..engine.kernel import Engine, RunResult
from ..engine.window import new_run_id, required_series, resolve_window
from ..runs import claim
from ..secrets import eth_rpc_url
from ..timeutil import utc
from ..venues.pricing import Pricing
from ..venues.sim import SimVenues
from .collect import FeedUnavailable, LiveStore, Observation, build_collector
from .connect import check_execution, enable_execution
from .control import LiveError, read_meta
from .feed import LiveFeed, ReplayFeed, last_closed_hour
from .sources import load_sources


def _resume_meta(out: Path, run_id: str | None, strategy: Strategy) -> dict:
    """The journal meta of the run to resume, checked to be ``strategy``'s."""
    if not run_id:
        raise LiveError("--resume needs the run id to continue")
    run_dir = out / run_id
    meta = read_meta(run_dir)
    if meta.get("strategy", {}).get("name") != strategy.name:
        raise LiveError(f"{run_dir} is a run of {meta.get('strategy', {}).get('name')!r}, not {strategy.name!r}")
    if "live" not in meta:
        raise LiveError(f"{run_dir} is a backtest, not a live run: there is nothing to resume (a backtest is run again under "
                        f"a new --run-id, or replaced with --overwrite)")
    _check_same_parameters(run_dir, meta, strategy)
    return meta


def _check_same_parameters(run_dir: Path, meta: dict, strategy: Strategy) -> None:
    """Refuse a resume whose parameters (config ``parameters:``, rules defaults and ``--set``
    flags, as folded into ``strategy.params``) differ from those the run started with (journal
    meta ``parameters``): half a run under other thresholds is neither run, and its journal
    could not explain its own decisions. A journal without that record is not checked.

    Raises:
        LiveError: naming each differing parameter, old -> new, and the flags the run started with.
    """
    stored = meta.get("parameters")
    if not isinstance(stored, dict):
        return
    changed = sorted(k for k in set(stored) | set(strategy.params) if stored.get(k) != strategy.params.get(k))
    if not changed:
        return
    shown = ", ".join(f"{k} {stored.get(k)!r} -> {strategy.params.get(k)!r}" for k in changed[:6])
    more = f" (+{len(changed) - 6} more)" if len(changed) > 6 else ""
    flags = " ".join(f"--set {k}={v}" for k, v in (meta.get("overrides") or {}).items()) or "no --set flags"
    raise LiveError(f"{run_dir} ran with other parameters: {shown}{more}; resume it with the config and flags it "
                    f"started with ({flags}), or start a new run under another --run-id")


def _stop_request(engine: Engine, i: int, stopped: dict | None) -> dict | None:
    """Act on a ``trimtab stop`` request at tick ``i`` (once): halt the machine, cancel the plan
    in flight and, with ``flatten``, submit the unwind plan. Returns the request (or None).

    The request is served inside :meth:`Engine.step` of tick ``i`` (``Engine.on_tick``, after
    the hour's market move and arrivals), so the unwind is priced at tick ``i`` and its costs
    land in tick ``i``'s ledger: the journal still reconciles. The request row is read as data:
    anything but ``{"flatten": true}`` is a plain stop."""
    request = engine.journal.control("stop")
    if request is None or stopped is not None:
        return stopped
    stopped = _stop_value(request)

    def serve(tick: int) -> None:
        engine.on_tick = None
        engine.halted = True
        engine.executor.cancel(tick, "stop requested")
        if stopped["flatten"]:
            plan = engine.planner.plan(engine.book, engine.equity(), "exit_full", "unwind", engine.params, "stop")
            engine.journal.plan(plan, tick)
            engine.executor.submit(plan, tick)

    engine.on_tick = serve
    return stopped


def _stop_value(raw: str) -> dict:
    """A control row's stop request as ``{"flatten": bool}``; anything unreadable is a plain stop."""
    try:
        value = json.loads(raw)
    except ValueError:
        value = None
    return {"flatten": isinstance(value, dict) and value.get("flatten") is True}


def _step_and_checkpoint(engine: Engine, i: int, stopped: dict | None) -> bool:
    """Step tick ``i`` and commit its rows with the engine state; True when a stop is complete.

    A completed stop is recorded (meta ``stopped``) and its request consumed in the same
    transaction as the tick's checkpoint, so a ``--resume`` continues instead of stopping again."""
    engine.step(i)
    done = stopped is not None and not engine.executor.in_flight
    if done:
        engine.journal.meta("stopped", {"tick": i, "time": engine.iso[i], **stopped})
        engine.journal.consume_control("stop")
    recovery.commit(engine, i)
    return done


def run_live(strategy: Strategy, out: Path | str = "runs", run_id: str | None = None, start=None, end=None,
             speed: float = 3600.0, resume: bool = False, data: MarketData | None = None, progress=None,
             feed: str = "replay", execute: bool = False, journal: str = "slim", **live_kw) -> RunResult:
    """Run ``strategy`` live, checkpointing every tick: over a replay of the bundled data
    (``feed="replay"``, paper only) or over live market data on the wall clock
    (``feed="live"``, see :func:`run_live_feed`, which receives ``execute`` and ``live_kw``).
    ``journal``: the journal mode of a new run, "slim" or "full" (:mod:`trimtab.engine.journal`);
    a resumed run keeps its own.

    Raises:
        LiveError: resuming a run that has no checkpoint, or a run directory that is not this
            strategy's; ``execute`` on the replay feed; DataError for a window outside the data.
    """
    if feed == "live":
        if start is not None:
            raise LiveError("a run on the live feed starts at the last closed hour; --start applies to backtests and --replay")
        return run_live_feed(strategy, out=out, run_id=run_id, end=end, resume=resume, progress=progress, execute=execute,
                             journal=journal, **live_kw)
    if execute:
        raise LiveError("--execute sends real orders, which need live prices: use it with --live (not --replay)")
    data = data or load_market_data()
    out = Path(out)
    if resume:
        if not run_id:
            raise LiveError("--resume needs the run id to continue")
        owned = claim(out, run_id, resume=True)
    else:
        start, end = resolve_window(strategy, data, start, end)
        owned = claim(out, run_id, new_id=lambda: new_run_id(strategy, start, end, out))
    try:
        return _run_replay(strategy, owned.run_dir, start, end, speed, resume, data, progress, journal)
    finally:
        owned.release()  # the lock is the run's liveness: held exactly while this process runs it


def _run_replay(strategy: Strategy, run_dir: Path, start, end, speed: float, resume: bool, data: MarketData,
                progress, journal: str = "slim") -> RunResult:
    """The replay loop of :func:`run_live` in the run directory this process owns."""
    if resume:
        meta = _resume_meta(run_dir.parent, run_dir.name, strategy)
        start, end = meta["window"]["start"].replace("Z", ""), meta["window"]["end"].replace("Z", "")
        start, end = resolve_window(strategy, data, start, end)
    engine = Engine(strategy, data.slice(start, end), run_dir, resume=resume, journal_mode=journal)
    journal = engine.journal
    journal.flush_every = 10**9  # rows are committed with each tick's checkpoint, never half a tick
    if resume:
        recovery.restore(engine, *recovery.load_engine(run_dir))
        _resumed(engine, meta)
    else:
        journal.meta("live", {"mode": "paper", "feed": "replay", "speed": speed, "pid": os.getpid()})
        recovery.start_marker(run_dir, journal.path.name)
    stopped = None
    for i in ReplayFeed(engine.view.n, speed).ticks(engine.next_tick):
        stopped = _stop_request(engine, i, stopped)
        done = _step_and_checkpoint(engine, i, stopped)
        if progress:
            progress(i + 1, engine.view.n)
        if done:
            break
    return engine.finish()


def _resumed(engine: Engine, meta: dict) -> None:
    """Record a resume in the journal. A run that ``trimtab stop`` ended acts again: the halt
    its stop set is lifted and its ``stopped``/``summary`` records move into ``resumed``
    (written with the first checkpoint), so ``status`` shows a running run, not a stopped one.
    A halt from a reconciliation mismatch is not lifted here: live execution reconciles again."""
    rec = {"at_tick": engine.next_tick, "pid": os.getpid()}
    if meta.get("stopped") is not None:
        engine.halted = False
        rec["after_stop"] = meta["stopped"]
        engine.journal.db.execute("DELETE FROM meta WHERE key IN ('stopped', 'summary')")
    engine.journal.meta("resumed", rec)


def run_live_feed(strategy: Strategy, out: Path | str = "runs", run_id: str | None = None, **kw) -> RunResult:
    """Paper-trade (or with ``execute``, trade) ``strategy`` on live market data in ``out/run_id``,
    owning the run directory for the run's life (:func:`trimtab.runs.claim`); the arguments and
    the loop are :func:`_run_live_feed`'s.

    Raises:
        RunError: a bad run id, a new run where one exists, a run owned by another process; and
            everything :func:`_run_live_feed` raises.
    """
    owned: list = []
    try:
        return _run_live_feed(strategy, out=out, run_id=run_id, owned=owned, **kw)
    finally:
        for c in owned:
            c.release()


def _run_live_feed(strategy: Strategy, out: Path | str = "runs", run_id: str | None = None, end=None, resume: bool = False,
                   progress=None, notice=None, sources=None, sessions: dict | None = None, w3=None, clock=time.time,
                   sleep=time.sleep, static: dict | None = None, poll_s: float = 5.0, execute: bool = False,
                   execution: dict | None = None, owned: list | None = None, journal: str = "slim") -> RunResult:
    """Paper-trade ``strategy`` on live market data, one tick per closed wall-clock hour.

    The window starts at the last closed hour (:func:`trimtab.live.feed.last_closed_hour`) and
    ends after ``end`` (UTC, inclusive) or at ``trimtab stop``. Each tick the
    :class:`~trimtab.live.feed.LiveFeed` collects the hour's rows (:mod:`trimtab.live.collect`;
    sources in ``feeds/live.yaml``), the engine's clock grows by that tick
    (:meth:`Engine.extend`) and is stepped; the rows, the failed fetches and the engine state
    are committed in one transaction (``observations``, ``feed_errors``, ``checkpoints``), so
    ``--resume`` rebuilds exactly the market data the run saw, tick by tick, and continues.

    Args:
        notice: callable(str) for failed fetches (the CLI prints them on stderr).
        sources: a :class:`~trimtab.live.sources.LiveSources` (default ``feeds/live.yaml``).
        sessions, w3: recorded transports for tests (see :func:`trimtab.live.collect.build_collector`);
            otherwise ccxt's HTTP and ``TRIMTAB_ETH_RPC_URL``.
        clock, sleep: wall clock and sleep (tests inject a fake clock); ``poll_s``: the longest
            sleep between checks for ``trimtab stop`` while waiting for the next hour.
        static: the bundle's static.json (risk parameters, gas units, rewards); default: loaded.
        execute: send the plans to the real venues (:func:`trimtab.live.connect.enable_execution`);
            the credentials are checked before any venue is contacted. ``execution``: options
            for it (tests pass pre-built adapters over recorded transports).
        owned: a list the :class:`~trimtab.runs.RunClaim` of the run directory is appended to
            (claimed before any network call when the run id is known); the caller releases it.
        journal: the journal mode of a new run ("slim" or "full"); a resumed run keeps its own.

    Raises:
        LiveError: a venue or the RPC endpoint cannot be reached or is not configured (naming
            it), a series the strategy needs has no live source, or a bad resume;
            ExecutionSetupError: ``execute`` without the credentials or with operations the
            venue gateway cannot carry out.
    """
    owned = [] if owned is None else owned
    if resume and not run_id:
        raise LiveError("--resume needs the run id to continue")
    if run_id is not None:
        owned.append(claim(out, run_id, resume=resume))
    sources = sources or load_sources()
    execution = dict(execution or {})
    if execute:
        check_execution(strategy, **execution)  # fail on credentials before any network call
    if static is None:
        path = DEFAULT_DATA_DIR / "static.json"
        static = json.loads(path.read_text()) if path.exists() else {}
    out = Path(out)
    end_e = None if end is None else int(utc(end).floor("h").timestamp())
    if resume:
        run_dir = out / run_id
        meta = _resume_meta(out, run_id, strategy)
        live = meta.get("live", {})
        if bool(meta.get("execution")) != execute:
            raise LiveError(f"{run_dir} was started {'with' if meta.get('execution') else 'without'} --execute; "
                            "resume it the same way")
        if live.get("feed") != "live":
            raise LiveError(f"{run_dir} is not a run on the live feed; resume it with --replay")
        t0, end_e = live["start_epoch"], live["end_epoch"]
    else:
        t0 = last_closed_hour(clock(), sources.settle_s)
        if end_e is not None and end_e < t0:
            raise LiveError(f"--end {end} is before the first live tick {pd.Timestamp(t0, unit='s', tz='UTC'):%Y-%m-%d %H:%M}Z")
    # The series the engine will read: the same fields a backtest loads.
    store = LiveStore(static, set(sources.series))
    probe = MarketView(store.market(t0, t0), set())
    px = Pricing(strategy, probe)
    needed = {series_of(f) for f in px.fields() | SimVenues(strategy, px, static).fields()}
    must, _ = required_series(strategy)
    missing = sorted(s for s in must if s not in sources.series)
    if missing:
        raise LiveError(f"{strategy.name} needs series with no live source in {sources.file}: {', '.join(missing)}")
    absent = sorted(s for s in needed if s not in sources.series)
    try:
        rpc = None
        if w3 is None and sources.needs_chain(needed) and os.environ.get("TRIMTAB_ETH_RPC_URL"):
            rpc = eth_rpc_url().reveal()
        collector = build_collector(sources, needed, sessions=sessions, w3=w3, rpc_url=rpc)
        for job in collector.exchanges:
            job.connect()
        if collector.chain is not None:
            from urllib.parse import urlsplit
            collector.chain.connect(f"TRIMTAB_ETH_RPC_URL (host {urlsplit(rpc).hostname})" if rpc else "(given Web3)")
    except FeedUnavailable as e:
        raise LiveError(f"live market data unavailable: {e}. Check the network connection and TRIMTAB_ETH_RPC_URL, or use "
                        "--live --replay to run the live loop over the bundled history") from None

    engine = None
    if resume:
        run_dir = out / run_id
        cp = recovery.load_engine(run_dir)  # the journal checked and the state decoded before anything is rebuilt
        db = recovery.open_checked(run_dir / "journal.sqlite", ("observations",))
        try:
            for series, ts, av, kn, d in db.execute(
                    "SELECT series, ts, avail, known, data FROM observations WHERE tick <= ? ORDER BY rowid", (cp[0],)):
                values = checkpoint.loads(d)
                if not (isinstance(series, str) and all(type(x) is int for x in (ts, av, kn)) and isinstance(values, dict)
                        and all(v is None or type(v) in (int, float) for v in values.values())):
                    raise ValueError(f"row of {series!r} at {ts!r} is not (series, epoch, epoch, epoch, {{column: number}})")
                store.add(Observation(series, ts, av, values), kn)
        except (sqlite3.DatabaseError, TypeError, ValueError, RecursionError) as e:
            raise checkpoint.CheckpointError(f"{run_dir / 'journal.sqlite'}: its observations cannot be read ({e}); "
                                             "refusing to resume") from None
        finally:
            db.close()
        engine = Engine(strategy, store.market(t0, t0), run_dir, resume=True)
        # Stretches of ticks no late row touched go on the clock in one extend each (LiveStore.replay).
        for ticks in store.replay(t0 + 3600, t0 + 3600 * cp[0]):
            engine.extend(ticks)
        engine.journal.flush_every = 10**9
        recovery.restore(engine, *cp)
        _resumed(engine, meta)
        if execute:
            _execute(engine, notice, execution)
    else:
        if not owned:
            owned.append(claim(out, None, new_id=lambda: new_run_id(
                strategy, pd.Timestamp(t0, unit="s", tz="UTC"), pd.Timestamp(end_e if end_e is not None else t0, unit="s", tz="UTC"), out)))
        run_id, run_dir = owned[0].run_id, owned[0].run_dir

    def stop_requested() -> bool:
        return engine is not None and not engine.executor.in_flight and engine.journal.control("stop") is not None

    feed = LiveFeed(collector, store, end=end_e, settle_s=sources.settle_s, clock=clock, sleep=sleep, poll_s=poll_s)
    first = t0 + 3600 * (engine.next_tick if engine is not None else 0)
    stopped = None
    for t, obs, errs in feed.ticks(first, interrupt=stop_requested):
        if engine is None:
            engine = Engine(strategy, store.market(t0, t0), run_dir, journal_mode=journal)
            engine.journal.flush_every = 10**9
            engine.journal.meta("live", {"mode": "execute" if execute else "paper", "feed": "live", "sources": sources.file, "start_epoch": t0,
                                         "end_epoch": end_e, "settle_s": sources.settle_s, "pid": os.getpid(),
                                         "series": sorted(s for s in needed if s in sources.series),
                                         "absent": absent, "no_live_source": store.absent})
            recovery.start_marker(run_dir, engine.journal.path.name)
            if execute:
                _execute(engine, notice, execution)
        else:
            # The newest hour from the store's rolling checks: its cost does not grow with the run.
            engine.extend(store.tick(t, engine.window.bands))
        journal, i = engine.journal, (t - t0) // 3600
        for o in obs:
            journal.observation(i, o.series, o.ts, o.avail, t, o.values)
        for e in errs:
            journal.feed_error(i, engine.iso[i], e.series, e.source, e.message)
            if notice:
                notice(f"{engine.iso[i]}: {e.series}: no data from {e.source}: {e.message}")
        stopped = _stop_request(engine, i, stopped)
        done = _step_and_checkpoint(engine, i, stopped)
        if progress:
            progress(i + 1, (end_e - t0) // 3600 + 1 if end_e is not None else i + 1)
        if done:
            break
    if engine is None:
        raise LiveError("stopped before the first live tick")
    if stopped is None and engine.journal.control("stop") is not None:  # stopped while waiting for an hour
        i = engine.next_tick - 1
        engine.journal.meta("stopped", {"tick": i, "time": engine.iso[i], **_stop_value(engine.journal.control("stop"))})
        engine.journal.consume_control("stop")  # committed when finish() closes the journal
    engine.window = store.market(t0, t0 + 3600 * (engine.view.n - 1))
    return engine.finish()


def _execute(engine: Engine, notice, options: dict) -> None:
    """Put ``engine`` on the real venues; a reconciliation mismatch halts it and is reported."""
    _, mismatches = enable_execution(engine, **options)
    if mismatches and notice:
        for m in mismatches:
            notice(f"reconciliation: {m}")
        notice("the book does not match the venues: the machine is halted (nothing will be sent); "
               "see `trimtab status` and the journal's reconciliation record")
