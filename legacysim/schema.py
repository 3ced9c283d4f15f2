"""The monolith's schema: created idempotently in its own database on the same server.

Writers are serialised by a transaction-level advisory lock taken in the event trigger, so
`migration_events.id` grows in commit order: a reader that checkpoints on the last id it saw
never skips an event committed later with a smaller id (the real monolith would feed a logical
decoding slot instead; the simulator keeps it to one table).
"""

from __future__ import annotations

import asyncpg
from sqlalchemy.engine import make_url

# Which legacy write needs which domain unfrozen: money moves touch accounts and transactions.
FROZEN_DOMAINS = ("users", "accounts", "transactions")
FREEZE_LOCK_KEY = 7_311_503  # writers hold it shared; freezing a domain takes it exclusive
EVENT_LOCK_KEY = 7_311_501  # arbitrary, constant: the advisory lock of the event trigger

DDL = """
CREATE TABLE IF NOT EXISTS users (
    id bigserial PRIMARY KEY,
    email varchar(255) NOT NULL,
    password_digest varchar(100) NOT NULL,
    full_name varchar(200) NOT NULL DEFAULT '',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS accounts (
    id bigserial PRIMARY KEY,
    user_id bigint NOT NULL REFERENCES users (id),
    name varchar(100) NOT NULL DEFAULT 'Account',
    kind varchar(20) NOT NULL DEFAULT 'checking',
    currency varchar(3) NOT NULL,
    balance numeric(14, 2) NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
-- The monolith never had a foreign key here: orphan transactions exist in the wild.
CREATE TABLE IF NOT EXISTS transactions (
    id bigserial PRIMARY KEY,
    account_id bigint NOT NULL,
    amount numeric(14, 2) NOT NULL,
    description varchar(500) NOT NULL DEFAULT '',
    counterparty varchar(200),
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ix_transactions_account ON transactions (account_id, id);
CREATE TABLE IF NOT EXISTS migration_events (
    id bigserial PRIMARY KEY,
    table_name varchar(40) NOT NULL,
    op varchar(10) NOT NULL,
    row_id bigint NOT NULL,
    data jsonb,
    old_data jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS frozen_domains (
    domain varchar(40) PRIMARY KEY,
    frozen_at timestamptz NOT NULL DEFAULT now(),
    frozen_by varchar(100) NOT NULL DEFAULT 'migration'
);
CREATE OR REPLACE FUNCTION record_migration_event() RETURNS trigger AS $$
BEGIN
    PERFORM pg_advisory_xact_lock(__EVENT_LOCK__);
    INSERT INTO migration_events (table_name, op, row_id, data, old_data)
    VALUES (
        TG_TABLE_NAME,
        TG_OP,
        CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END,
        CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE to_jsonb(NEW) END,
        CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE to_jsonb(OLD) END
    );
    RETURN NULL;
END
$$ LANGUAGE plpgsql;
""".replace("__EVENT_LOCK__", str(EVENT_LOCK_KEY))

TRIGGER = """
DO $$ BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'migration_events_{table}') THEN
        CREATE TRIGGER migration_events_{table}
        AFTER INSERT OR UPDATE OR DELETE ON {table}
        FOR EACH ROW EXECUTE FUNCTION record_migration_event();
    END IF;
END $$;
"""


def legacy_dsn(url: str) -> str:
    """An asyncpg DSN for a SQLAlchemy-style or plain PostgreSQL URL."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def legacy_url_beside(database_url: str, name: str = "vortex_legacy") -> str:
    """The URL of the monolith's database on the same server as `database_url`."""
    return make_url(database_url).set(database=name).render_as_string(hide_password=False)


async def ensure_database(url: str) -> None:
    """Create the database `url` names if it does not exist (connecting to `postgres`)."""
    parsed = make_url(url)
    admin = await asyncpg.connect(
        legacy_dsn(parsed.set(database="postgres").render_as_string(False))
    )
    try:
        exists = await admin.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", parsed.database
        )
        if not exists:
            await admin.execute(f'CREATE DATABASE "{parsed.database}"')
    finally:
        await admin.close()


async def create_schema(url: str) -> None:
    """Create the tables, the event trigger function and the triggers (idempotent)."""
    conn = await asyncpg.connect(legacy_dsn(url))
    try:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", EVENT_LOCK_KEY + 1)
            await conn.execute(DDL)
            for table in ("users", "accounts", "transactions"):
                await conn.execute(TRIGGER.format(table=table))
    finally:
        await conn.close()


async def drop_database(url: str) -> None:
    """Drop the database `url` names (tests and benchmarks clean up with it)."""
    parsed = make_url(url)
    admin = await asyncpg.connect(
        legacy_dsn(parsed.set(database="postgres").render_as_string(False))
    )
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
    finally:
        await admin.close()
