"""The console's FastAPI application over one runs folder: :func:`create_app`.

Every request goes through :class:`Guard` (pure ASGI middleware), which

* on a loopback bind refuses a ``Host`` that is not the server's loopback name (DNS rebinding);
* on a non-loopback bind refuses any request without the token (``X-Trimtab-Token`` header, or
  ``?token=`` for a page load or the event stream);
* refuses a POST whose ``Origin`` is not the server's own (the token is also checked by the
  route itself, :func:`trimtab.console.api.run_stop`);
* masks every secret (:func:`trimtab.secrets.redact`: registered values and the current values
  of the ``TRIMTAB_*`` credential variables) in every JSON, HTML and event-stream body, so a
  config or journal that carries one never shows it;
* adds ``Referrer-Policy: no-referrer`` (a ``?token=`` URL is never sent on), ``X-Frame-Options:
  DENY`` and ``Cache-Control: no-store``.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import plotly
from fastapi import FastAPI
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from ..secrets import redact
from . import ConsoleError
from .security import TOKEN_HEADER, TOKEN_QUERY, allowed_hosts, is_loopback, token_matches

PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
STATIC = Path(__file__).with_name("static")
#: Bodies of these content types are redacted (text the server built from run files).
REDACTED_TYPES = (b"application/json", b"text/html", b"text/event-stream", b"text/plain")


def finite(x: Any) -> Any:
    """``x`` with every non-finite float replaced as the journal readers do: NaN -> None, inf ->
    "inf" (JSON has neither; explain's JSON writes inf as a string too)."""
    if isinstance(x, float) and not math.isfinite(x):
        return None if math.isnan(x) else ("inf" if x > 0 else "-inf")
    if isinstance(x, dict):
        return {k: finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [finite(v) for v in x]
    return x


class FiniteJSON(JSONResponse):
    """JSON responses that never fail on a NaN or inf a summary or rule trace may hold."""

    def render(self, content: Any) -> bytes:
        return json.dumps(finite(content), ensure_ascii=False, separators=(",", ":")).encode("utf-8")


@dataclass(frozen=True)
class Settings:
    """``runs_dir``: the folder served; ``token``: the action token; ``host``/``port``: the bind
    (decides the host rules: :func:`~trimtab.console.security.is_loopback`)."""

    runs_dir: Path
    token: str
    host: str = "127.0.0.1"
    port: int = 8765

    @property
    def token_for_reads(self) -> bool:
        """True on a non-loopback bind: every request needs the token."""
        return not is_loopback(self.host)


async def _refuse(send, status: int, message: str) -> None:
    body = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class Guard:
    """The ASGI middleware described in the module docstring."""

    def __init__(self, app, settings: Settings):
        self.app, self.s = app, settings
        self.hosts = {h.encode() for h in allowed_hosts(settings.host, settings.port)}

    @property
    def state(self):
        """The wrapped FastAPI app's state (``settings``; ``server``, the uvicorn server once
        `trimtab serve` runs it, which the event stream watches to end at shutdown)."""
        return self.app.state

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"")
        if not self.s.token_for_reads and host not in self.hosts:
            return await _refuse(send, 403, f"Host {host.decode('latin-1')[:80]!r} is not this console's address; "
                                            f"open http://127.0.0.1:{self.s.port}/")
        given = headers.get(TOKEN_HEADER.lower().encode())
        given = given.decode("latin-1") if given is not None else None
        if self.s.token_for_reads and not token_matches(given, self.s.token):
            q = parse_qs(scope.get("query_string", b"").decode("latin-1"))
            if not (scope["method"] == "GET" and token_matches((q.get(TOKEN_QUERY) or [None])[0], self.s.token)):
                return await _refuse(send, 403, f"this console listens on {self.s.host}: every request needs the token "
                                                f"(header {TOKEN_HEADER}, or ?{TOKEN_QUERY}= to open a page)")
        if scope["method"] not in ("GET", "HEAD", "OPTIONS"):
            origin = headers.get(b"origin")
            if origin is not None and origin not in {b"http://" + h for h in (self.hosts | {host})}:
                return await _refuse(send, 403, f"cross-site request from {origin.decode('latin-1')[:80]!r} refused")
        if scope["path"].startswith("/static/"):
            return await self.app(scope, receive, self._plain_headers(send))
        return await self.app(scope, receive, self._redacting(send))

    @staticmethod
    def _security_headers(message) -> None:
        message["headers"] = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"] + [
            (b"referrer-policy", b"no-referrer"), (b"x-frame-options", b"DENY"), (b"x-content-type-options", b"nosniff")]

    def _plain_headers(self, send):
        async def wrapped(message):
            if message["type"] == "http.response.start":
                message = dict(message)
                message["headers"] = list(message.get("headers", [])) + [(b"referrer-policy", b"no-referrer")]
            await send(message)
        return wrapped

    def _redacting(self, send):
        """Buffer a text body whole and redact it (its length changes); an event stream is
        redacted event by event (each is sent as one chunk)."""
        state = {"start": None, "stream": False, "redact": False, "body": []}

        async def wrapped(message):
            if message["type"] == "http.response.start":
                message = dict(message)
                self._security_headers(message)
                message["headers"].append((b"cache-control", b"no-store"))
                ctype = dict((k.lower(), v) for k, v in message["headers"]).get(b"content-type", b"")
                state["redact"] = any(ctype.startswith(t) for t in REDACTED_TYPES)
                state["stream"] = ctype.startswith(b"text/event-stream")
                if not state["redact"] or state["stream"]:
                    return await send(message)
                state["start"] = message
                return None
            if message["type"] != "http.response.body" or not state["redact"]:
                return await send(message)
            if state["stream"]:
                body = message.get("body", b"")
                return await send({**message, "body": redact(body.decode("utf-8", "replace")).encode("utf-8") if body else body})
            state["body"].append(message.get("body", b""))
            if message.get("more_body"):
                return None
            body = redact(b"".join(state["body"]).decode("utf-8", "replace")).encode("utf-8")
            start = state["start"]
            start["headers"] = [(k, v) for k, v in start["headers"] if k.lower() != b"content-length"] + [
                (b"content-length", str(len(body)).encode())]
            await send(start)
            await send({"type": "http.response.body", "body": body})
        return wrapped


def create_app(settings: Settings) -> "Guard":
    """The console over ``settings.runs_dir``: the API (:mod:`.api`, :mod:`.live`), the pages
    (:mod:`.pages`), plotly.js and the console's static files, behind :class:`Guard`.

    Raises:
        ConsoleError: the runs folder does not exist, or plotly's JavaScript is not installed.
    """
    from . import api, live, pages

    if not settings.runs_dir.is_dir():
        raise ConsoleError(f"--runs {settings.runs_dir}: not a folder; give the folder holding run directories (default runs/)")
    if not PLOTLY_JS.is_file():
        raise ConsoleError(f"{PLOTLY_JS} not found: reinstall plotly (pip install plotly); the console serves its JavaScript")
    # docs_url/redoc_url off: their pages load Swagger's JavaScript from a CDN (no internet here).
    app = FastAPI(title="trimtab console", version="1", docs_url=None, redoc_url=None, default_response_class=FiniteJSON,
                  description="Runs, their journals and a guarded kill switch for live runs (docs/console.md).")
    app.state.settings = settings

    @app.get("/static/plotly.min.js", include_in_schema=False)
    def plotly_js() -> FileResponse:
        return FileResponse(PLOTLY_JS, media_type="text/javascript")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response(status_code=204)  # no icon; a 404 here would be a console error on every page

    app.include_router(api.router)
    app.include_router(live.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return Guard(app, settings)
