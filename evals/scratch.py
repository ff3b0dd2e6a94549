"""A scratch database for a run from the checkout (the eval, the benchmarks): made on the
server of an administrator's DSN and dropped afterwards. The product never makes one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import asyncpg


@asynccontextmanager
async def scratch_database(admin_dsn: str, name: str) -> AsyncIterator[str]:
    """A new, empty database `name` on the server of `admin_dsn` (replacing one left by a
    crashed run); yields its DSN and drops it on the way out."""
    dsn = urlsplit(admin_dsn)._replace(path=f"/{name}").geturl()
    admin = await asyncpg.connect(admin_dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield dsn
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
