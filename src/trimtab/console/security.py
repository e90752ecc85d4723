"""The console's guards: the action token, the host rules, and run ids resolved strictly inside
the runs folder.

* **Token** (:func:`load_token`): ``TRIMTAB_CONSOLE_TOKEN`` if set, else the file
  ``<runs>/.console-token`` (created at first start with 0600 permissions, 32 random bytes as
  URL-safe base64, :func:`secrets.token_urlsafe`). Actions (POST) always need it in the
  ``X-Trimtab-Token`` header. On a non-loopback host every request needs it: in that header, or
  as ``?token=`` on a page load or the event stream (a browser cannot set a header there).
  Never a cookie: a cookie is sent by the browser on a forged cross-site request (CSRF), a
  custom header is not.
* **Host/Origin**: on a loopback bind, the ``Host`` header must name the loopback address the
  server listens on (a DNS-rebinding page reaches 127.0.0.1 under another name); a POST whose
  ``Origin`` is not the server's own is refused.
* **Run ids** (:func:`resolve_run`): :func:`trimtab.runs.run_id_problem` (one path component, no
  ``..``), then the resolved directory must lie inside the resolved runs folder and not be a
  symlink, and hold a run's journal (itself no symlink out of it).
"""
from __future__ import annotations

import hmac
import ipaddress
import os
import secrets as pysecrets
import stat
from pathlib import Path

from ..runs import run_id_problem
from . import ConsoleError

TOKEN_ENV = "TRIMTAB_CONSOLE_TOKEN"
TOKEN_FILE = ".console-token"
TOKEN_HEADER = "X-Trimtab-Token"
TOKEN_QUERY = "token"
#: A token shorter than this is refused: it could be guessed.
MIN_TOKEN_LEN = 16
#: The journal file of each run kind (a strategy or basket run, a portfolio run).
JOURNALS = ("journal.sqlite", "portfolio.sqlite")


class RunNotFound(ConsoleError):
    """A run id that names no run inside the runs folder (or is not a valid run id)."""


def load_token(runs_dir: Path) -> tuple[str, str]:
    """``(token, where)``: from ``TRIMTAB_CONSOLE_TOKEN``, else ``runs_dir/.console-token``
    (created with mode 0600 if missing). ``where`` says which, for the start-up message.

    Raises:
        ConsoleError: the variable's value is shorter than :data:`MIN_TOKEN_LEN`; the token file
            is readable by other users (fix: ``chmod 600``), not a regular file, or too short.
    """
    env = os.environ.get(TOKEN_ENV)
    if env is not None:
        if len(env.strip()) < MIN_TOKEN_LEN:
            raise ConsoleError(f"{TOKEN_ENV} is {len(env.strip())} characters; use at least {MIN_TOKEN_LEN} random ones "
                               f"(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))'), or unset it to get one generated")
        return env.strip(), TOKEN_ENV
    path = Path(runs_dir) / TOKEN_FILE
    if not path.exists() and not path.is_symlink():
        token = pysecrets.token_urlsafe(32)
        # O_EXCL: never follow or reuse a file someone else put there; 0600 from the start.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(token + "\n")
        return token, f"{path} (new)"
    st = path.lstat()
    if not stat.S_ISREG(st.st_mode):
        raise ConsoleError(f"{path} is not a regular file; remove it to get a new token generated")
    if st.st_mode & 0o077:
        raise ConsoleError(f"{path} is readable by other users (mode {stat.S_IMODE(st.st_mode):o}); run `chmod 600 {path}` "
                           f"or remove it to get a new token")
    token = path.read_text(encoding="ascii", errors="replace").strip()
    if len(token) < MIN_TOKEN_LEN or not token.isprintable():
        raise ConsoleError(f"{path} does not hold a valid token; remove it to get a new one generated")
    return token, str(path)


def token_matches(given: str | None, token: str) -> bool:
    """True when ``given`` equals ``token`` (constant-time: the comparison leaks no prefix)."""
    return given is not None and hmac.compare_digest(given.encode("utf-8", "replace"), token.encode("utf-8"))


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1); False for anything else,
    including ``0.0.0.0`` (every interface)."""
    h = host.strip("[]")
    if h == "localhost":
        return True
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        return False


def allowed_hosts(host: str, port: int) -> set[str]:
    """The ``Host`` header values a loopback-bound server accepts: its loopback names with the port."""
    names = {host, "127.0.0.1", "localhost", "[::1]"}
    return {f"{n}:{port}" for n in names} | ({"localhost", "127.0.0.1"} if port == 80 else set())


def resolve_run(runs_dir: Path, run_id: str) -> Path:
    """The directory of run ``run_id`` under ``runs_dir``, checked.

    Raises:
        RunNotFound: an invalid run id (``..``, a separator, an absolute path...), a symlinked
            run directory or journal, a path that resolves outside ``runs_dir``, or no run there.
    """
    why = run_id_problem(run_id)
    if why is not None:
        raise RunNotFound(why)
    root = Path(runs_dir).resolve()
    d = root / run_id
    if d.is_symlink():
        raise RunNotFound(f"run {run_id!r} is a symlink; the console serves only run directories inside {root}")
    real = d.resolve()
    if real.parent != root:
        raise RunNotFound(f"run {run_id!r} resolves outside the runs folder {root}")
    for name in JOURNALS:
        j = real / name
        if j.is_symlink():
            raise RunNotFound(f"run {run_id!r}: its {name} is a symlink; refusing to read it")
        if j.is_file():
            return real
    raise RunNotFound(f"no run {run_id!r} in {root}")


def journal_of(run_dir: Path) -> Path:
    """The journal of a run directory :func:`resolve_run` returned: ``portfolio.sqlite`` or
    ``journal.sqlite``."""
    p = run_dir / "portfolio.sqlite"
    return p if p.is_file() else run_dir / "journal.sqlite"
