"""Recorded venue responses in place of the network: an HTTP session for ccxt, a JSON-RPC
provider for web3. Used by the tests (no network here) and usable by a replay run.

Fixture shape (JSON), shared by both::

    {"source": ["doc page the shapes follow", ...],
     "responses": [
        {"method": "GET", "path": "/fapi/v1/order",             # HTTP: method + URL path
         "match": {"origClientOrderId": "tt..."},               # optional: query/body params that must match
                                                                # ("data__startswith": prefix match)
         "status": 200, "body": {...},                          # the exchange's response
         "once": true,                                          # optional: served one time, then dropped
         "error": "timeout"},                                   # optional: raise a read timeout instead
        {"rpc": "eth_call", "match": {"to": "0x..."}, "result": "0x..."}   # JSON-RPC
     ]}

Routes are tried in file order; the first whose method, path and ``match`` fit is served.
Every request is appended to ``requests`` (method, path, params) so a test can assert what was
sent on the wire. An unmatched request raises :class:`UnrecordedRequest` naming it.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import requests
from web3.providers.base import BaseProvider


class UnrecordedRequest(AssertionError):
    """A request no recorded response matches."""


def load_fixture(path: str | Path) -> dict:
    return json.loads(Path(path).read_text())


def _matches(match: dict, params: dict) -> bool:
    for k, v in match.items():
        if k.endswith("__startswith"):  # e.g. {"data__startswith": "0x617ba037"}: a selector
            got = params.get(k[: -len("__startswith")])
            if not (isinstance(got, str) and got.lower().startswith(str(v).lower())):
                return False
            continue
        got = params.get(k)
        if isinstance(v, str) and isinstance(got, str):
            if v.lower() != got.lower():
                return False
        elif got != v and str(got) != str(v):
            return False
    return True


class RecordedSession(requests.Session):
    """Stands in for ccxt's ``requests.Session``: ``exchange.session = RecordedSession(routes)``.

    Only the transport is replaced: ccxt still signs requests, builds URLs, parses bodies and
    maps error codes to its exception classes exactly as with the real venue.
    """

    def __init__(self, responses: list[dict]) -> None:
        super().__init__()
        self.routes = [r for r in copy.deepcopy(responses) if "path" in r]
        self.requests: list[dict] = []

    def add(self, route: dict, first: bool = True) -> None:
        """Add a route (first: tried before the recorded ones)."""
        if first:
            self.routes.insert(0, route)
        else:
            self.routes.append(route)

    def calls(self, method: str | None = None, path: str | None = None) -> list[dict]:
        return [r for r in self.requests if (method is None or r["method"] == method) and (path is None or r["path"] == path)]

    def request(self, method, url, data=None, headers=None, timeout=None, proxies=None, verify=None, files=None, **_):
        parts = urlsplit(url)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        if data:
            text = data.decode() if isinstance(data, bytes) else str(data)
            try:
                body = json.loads(text)
                if isinstance(body, list) and len(body) == 1 and isinstance(body[0], dict):
                    body = body[0]  # a one-item batch (OKX batch-orders): match on its fields
                if isinstance(body, dict):
                    params.update(body)
            except ValueError:
                params.update(dict(parse_qsl(text, keep_blank_values=True)))
        self.requests.append({"method": method.upper(), "path": parts.path, "params": params})
        for i, r in enumerate(self.routes):
            if r.get("method", "GET").upper() == method.upper() and r["path"] == parts.path and _matches(r.get("match", {}), params):
                if r.get("once"):
                    self.routes.pop(i)
                if r.get("error") == "timeout":
                    raise requests.exceptions.ReadTimeout(f"Read timed out. (recorded timeout for {parts.path})")
                return self._response(url, r)
        raise UnrecordedRequest(f"no recorded response for {method.upper()} {parts.path} {sorted(params)}")

    @staticmethod
    def _response(url: str, r: dict) -> requests.Response:
        resp = requests.Response()
        resp.status_code = int(r.get("status", 200))
        resp.reason = r.get("reason", "OK" if resp.status_code < 400 else "Error")
        body = r.get("body", {})
        resp._content = (body if isinstance(body, str) else json.dumps(body)).encode()
        resp.headers["Content-Type"] = "application/json"
        resp.url = url
        resp.encoding = "utf-8"
        return resp


class RecordedProvider(BaseProvider):
    """A web3 provider serving recorded JSON-RPC results: ``Web3(RecordedProvider(routes))``.

    A route ``{"rpc": "eth_call", "match": {"to": ..., "data": ...}, "result": ...}`` matches
    on the method and on fields of the first param when it is a dict (a transaction), and on
    ``block`` (the block tag or hex number an ``eth_call`` is made at); a route
    with ``"error": {"code": 3, "message": "execution reverted", "data": "0x..."}`` answers with
    that JSON-RPC error. Requests are appended to ``requests`` as ``(method, params)``.
    """

    def __init__(self, responses: list[dict]) -> None:
        super().__init__()
        self.routes = [r for r in copy.deepcopy(responses) if "rpc" in r]
        self.requests: list[tuple[str, Any]] = []
        self._id = 0

    def is_connected(self, show_traceback: bool = False) -> bool:
        return True

    def make_request(self, method, params) -> dict:
        self._id += 1
        self.requests.append((str(method), params))
        first = params[0] if params and isinstance(params[0], dict) else {}
        if first and len(params) > 1 and isinstance(params[1], str):
            first = {**first, "block": params[1]}  # eth_call at a block: routes may match {"block": "0x..."}
        for i, r in enumerate(self.routes):
            if r["rpc"] == method and _matches(r.get("match", {}), first):
                if r.get("once"):
                    self.routes.pop(i)
                if "error" in r:
                    return {"jsonrpc": "2.0", "id": self._id, "error": r["error"]}
                return {"jsonrpc": "2.0", "id": self._id, "result": r["result"]}
        raise UnrecordedRequest(f"no recorded JSON-RPC response for {method} {first or params}")

    def calls(self, method: str) -> list:
        return [p for m, p in self.requests if m == method]
