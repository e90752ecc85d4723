"""``trimtab serve``: the operator console (issue 17; docs/console.md) over a runs folder."""
# No `from __future__ import annotations`: typer reads these at every start-up (cli/main.py).

import sys
from pathlib import Path

import typer

from .common import fail

# The console (fastapi, uvicorn, plotly) is imported inside the command: `trimtab --help` stays fast.


def serve(
    runs_dir: Path = typer.Option(Path("runs"), "--runs", help="Folder holding the run directories to serve."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address to listen on. Any non-loopback address requires the token for every request."),
    port: int = typer.Option(8765, "--port", min=1, max=65535, help="TCP port."),
) -> None:
    """The operator console: every run in a browser, a REST API, and stop / stop-and-flatten for live runs.

    Read-only pages and API need no token on 127.0.0.1; actions need the token printed at start
    (or TRIMTAB_CONSOLE_TOKEN) and a confirmation. On another --host every request needs it."""
    import socket

    import uvicorn

    from ..console import ConsoleError
    from ..console.app import Settings, create_app
    from ..console.security import TOKEN_ENV, TOKEN_QUERY, is_loopback, load_token

    if not runs_dir.is_dir():
        raise fail(f"--runs {runs_dir}: not a folder; give the folder holding run directories (default runs/)")
    try:
        token, where = load_token(runs_dir)
        app = create_app(Settings(runs_dir=runs_dir.resolve(), token=token, host=host, port=port))
    except (ConsoleError, OSError) as e:
        raise fail(str(e)) from None
    try:  # a busy port is said here, in one line, before anything is printed as running
        socket.create_server((host, port), family=socket.AF_INET6 if ":" in host else socket.AF_INET).close()
    except OSError as e:
        raise fail(f"cannot listen on {host}:{port} ({e.strerror or e}); pick another --port or --host") from None
    shown = f"from {TOKEN_ENV}" if where == TOKEN_ENV else f"{token}   (stored in {where}, mode 0600)"
    url_host = f"[{host}]" if ":" in host else host
    lines = [f"trimtab console: http://{url_host}:{port}/   runs: {runs_dir.resolve()}", f"action token: {shown}"]
    if not is_loopback(host):
        lines.append(f"listening on {host} (not loopback): every request needs the token; open http://{url_host}:{port}/?{TOKEN_QUERY}=TOKEN")
    sys.stdout.write("\n".join(lines) + "\n")
    sys.stdout.flush()
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                           timeout_graceful_shutdown=5))
    app.state.server = server  # the event streams end when it is told to exit, so Ctrl-C does not wait on them
    server.run()
