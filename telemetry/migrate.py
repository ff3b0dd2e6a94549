"""Forward-only SQL migrations: discovered in migrations/NNNN_name.sql, applied in order,
recorded with a checksum, serialised across processes by a PostgreSQL advisory lock.

An applied migration is never edited: a changed checksum stops the service rather than
leaving two databases that claim the same version with different schemas.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from telemetry.db import Conn

# Any constant works as long as every wattwise process agrees on it.
MIGRATION_LOCK_KEY = 0x77617474_77697365 & 0x7FFF_FFFF_FFFF_FFFF

_FILE_RE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_TABLE_SQL = """
CREATE TABLE IF NOT EXISTS wattwise_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(RuntimeError):
    pass


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def load_migrations() -> list[Migration]:
    found: list[Migration] = []
    for entry in (resources.files("telemetry") / "migrations").iterdir():
        match = _FILE_RE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"duplicate migration versions in {versions}")
    return found


async def applied_versions(conn: Conn) -> dict[int, str]:
    """Version -> checksum of what this database has applied (empty if never migrated)."""
    exists = await conn.fetchval("SELECT to_regclass('wattwise_migrations') IS NOT NULL")
    if not exists:
        return {}
    rows = await conn.fetch("SELECT version, checksum FROM wattwise_migrations")
    return {r["version"]: r["checksum"] for r in rows}


async def pending(conn: Conn) -> list[Migration]:
    done = await applied_versions(conn)
    return [m for m in load_migrations() if m.version not in done]


async def migrate(conn: Conn) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; returns what was applied.

    Concurrent callers queue on the advisory lock, then find nothing left to do.
    """
    migrations = load_migrations()
    await conn.execute("SELECT pg_advisory_lock($1)", MIGRATION_LOCK_KEY)
    try:
        await conn.execute(_CREATE_TABLE_SQL)
        done = await applied_versions(conn)
        known = {m.version: m for m in migrations}
        for version, checksum in sorted(done.items()):
            if version not in known:
                raise MigrationError(
                    f"database has migration {version}, which this build does not know: "
                    "the database is newer than the code"
                )
            if known[version].checksum != checksum:
                raise MigrationError(
                    f"migration {version}_{known[version].name} was edited after it was applied"
                )
        applied: list[Migration] = []
        for migration in migrations:
            if migration.version in done:
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO wattwise_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            applied.append(migration)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", MIGRATION_LOCK_KEY)
