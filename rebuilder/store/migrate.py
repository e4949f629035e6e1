"""Schema migrations: the ``*.sql`` files of ``rebuilder.store.migrations``, in name order.

Each file runs once, in its own transaction, and is recorded in ``schema_migrations``
with the sha256 of its text. Every run holds a PostgreSQL advisory lock, so several
processes starting at once (a compose ``migrate`` service and a worker, say) apply each
file exactly once and the others wait, then find nothing to do. An applied file whose
text changed is refused: the database would no longer match the code's idea of it.

Files must be runnable inside a transaction (no ``CREATE INDEX CONCURRENTLY``).
"""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
from collections.abc import Sequence
from dataclasses import dataclass

import psycopg
import psycopg.conninfo
from psycopg import sql

from rebuilder.store import StoreError
from rebuilder.store.db import database_error

logger = logging.getLogger(__name__)

MIGRATIONS_PACKAGE = "rebuilder.store.migrations"
# A fixed key in the database's advisory-lock space ("migrate" as ASCII), distinct from
# the scheduler's leadership lock.
MIGRATION_LOCK_KEY = 0x6D69_6772_6174_65

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    name        text        PRIMARY KEY,
    sha256      text        NOT NULL CHECK (sha256 ~ '^[0-9a-f]{64}$'),
    applied_at  timestamptz NOT NULL DEFAULT now()
)
"""


class MigrationError(StoreError):
    """The migrations cannot be applied (a changed file, a failing statement)."""


@dataclass(frozen=True)
class Migration:
    """One SQL file: its name (which orders it), its text and the text's sha256."""

    name: str
    script: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.script.encode("utf-8")).hexdigest()


def bundled_migrations() -> list[Migration]:
    """Every ``*.sql`` file shipped in the migrations package, in name order."""
    folder = importlib.resources.files(MIGRATIONS_PACKAGE)
    found = [
        Migration(entry.name, entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".sql") and entry.is_file()
    ]
    return sorted(found, key=lambda m: m.name)


def migrate(url: str, *, migrations: Sequence[Migration] | None = None) -> list[str]:
    """Apply the migrations not yet applied to the database at ``url``; their names.

    ``migrations`` defaults to :func:`bundled_migrations`. Raises MigrationError when an
    applied file changed or a file fails (that file is rolled back, earlier ones stay),
    StoreError when the database cannot be reached.
    """
    wanted = sorted(migrations if migrations is not None else bundled_migrations(), key=_name)
    ensure_database(url)
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (MIGRATION_LOCK_KEY,))
            try:
                return _apply(conn, wanted)
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (MIGRATION_LOCK_KEY,))
    except psycopg.Error as exc:
        raise database_error(exc, "migrating the schema") from None


def ensure_database(url: str) -> bool:
    """Create the database ``url`` names when the server says it does not exist; True if made.

    A fresh machine's PostgreSQL has no ``rebuilder`` database; the operator's role may
    create it (the local default). Any other trouble is left to the caller's connect.
    """
    try:
        psycopg.connect(url, autocommit=True, connect_timeout=10).close()
    except psycopg.OperationalError as exc:
        if "does not exist" not in str(exc):
            return False
    else:
        return False
    info = psycopg.conninfo.conninfo_to_dict(url)
    name = str(info.get("dbname") or "")
    if not name:
        return False
    admin = psycopg.conninfo.make_conninfo(url, dbname="postgres")
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=10) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.errors.DuplicateDatabase:
        return False  # someone else made it meanwhile
    except psycopg.Error as exc:
        raise database_error(exc, f"creating the database {name}") from None
    logger.warning("created the database %s", name)
    return True


def applied_migrations(url: str) -> dict[str, str]:
    """{name: sha256} of the migrations recorded in the database at ``url``."""
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            exists = conn.execute("SELECT to_regclass('schema_migrations')").fetchone()
            if exists is None or exists[0] is None:
                return {}
            rows = conn.execute("SELECT name, sha256 FROM schema_migrations").fetchall()
    except psycopg.Error as exc:
        raise database_error(exc, "reading the applied migrations") from None
    return {str(name): str(digest) for name, digest in rows}


def _name(migration: Migration) -> str:
    return migration.name


def _apply(conn: psycopg.Connection[tuple[object, ...]], wanted: list[Migration]) -> list[str]:
    conn.execute(_CREATE_LEDGER)
    rows = conn.execute("SELECT name, sha256 FROM schema_migrations").fetchall()
    done = {str(name): str(digest) for name, digest in rows}
    for migration in wanted:
        recorded = done.get(migration.name)
        if recorded is not None and recorded != migration.sha256:
            raise MigrationError(
                f"migration {migration.name} was changed after it was applied "
                f"(applied sha256 {recorded}, file sha256 {migration.sha256}); "
                "add a new migration instead of editing an applied one"
            )
    unknown = sorted(set(done) - {m.name for m in wanted})
    if unknown:
        logger.warning("database has migrations this code does not know: %s", unknown)
    applied: list[str] = []
    for migration in wanted:
        if migration.name in done:
            continue
        logger.info("applying migration %s", migration.name)
        try:
            with conn.transaction():
                # No parameters: sent as a simple query, so a file may hold many statements.
                conn.execute(migration.script.encode("utf-8"))
                conn.execute(
                    "INSERT INTO schema_migrations (name, sha256) VALUES (%s, %s)",
                    (migration.name, migration.sha256),
                )
        except psycopg.Error as exc:
            detail = exc.diag.message_primary or str(exc).strip()
            raise MigrationError(f"migration {migration.name} failed: {detail}") from None
        applied.append(migration.name)
    return applied
