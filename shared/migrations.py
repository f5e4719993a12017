"""Alembic, driven from code: every service keeps its migrations in ``<service>/migrations``.

``ptce db upgrade <service>`` and the test suite call :func:`upgrade`; a service's
``env.py`` is two lines calling :func:`run_env`; ``/readyz`` compares the database's
revision with :func:`head_revision`.
"""

from __future__ import annotations

import asyncio
from importlib import resources
from pathlib import Path

from alembic import command, context
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine


def alembic_config(service: str, database_url: str) -> Config:
    location = Path(str(resources.files(service))) / "migrations"
    config = Config()
    config.set_main_option("script_location", str(location))
    config.set_main_option("sqlalchemy.url", database_url)
    config.set_main_option("version_table", "alembic_version")
    return config


def upgrade(service: str, database_url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(service, database_url), revision)


def head_revision(service: str) -> str | None:
    config = alembic_config(service, "postgresql+asyncpg://unused")
    return ScriptDirectory.from_config(config).get_current_head()


async def current_revision(engine: AsyncEngine) -> str | None:
    async with engine.connect() as conn:
        exists = await conn.scalar(text("SELECT to_regclass('alembic_version') IS NOT NULL"))
        if not exists:
            return None
        revision: str | None = await conn.scalar(text("SELECT version_num FROM alembic_version"))
        return revision


def run_env(target_metadata: MetaData) -> None:
    """The body of every service's ``env.py``: run migrations online over asyncpg."""
    url = context.config.get_main_option("sqlalchemy.url")
    assert url is not None

    def do_run(connection: Connection) -> None:
        context.configure(connection=connection, target_metadata=target_metadata)
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = create_async_engine(url, poolclass=pool.NullPool)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(do_run)
        finally:
            await engine.dispose()

    # Alembic's commands are synchronous: callers run them outside an event loop
    # (the CLI, the test harness, `asyncio.to_thread` in `ptce dev`).
    asyncio.run(run_async())


# The relay LISTENs on this channel; a notification is delivered when the inserting
# transaction commits, so it wakes the relay exactly when there is something to send.
KERNEL_SQL_UP = (
    """
    CREATE FUNCTION notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('outbox', '');
        RETURN NULL;
    END;
    $$
    """,
    """
    CREATE TRIGGER outbox_notify AFTER INSERT ON outbox
        FOR EACH STATEMENT EXECUTE FUNCTION notify_outbox()
    """,
)


def create_kernel_schema() -> None:
    """Create the outbox (with its wake-up trigger) and the processed-event record.

    Called from each service's first migration, so the three databases share one shape.
    """
    from alembic import op

    from shared.db import kernel_tables

    metadata = MetaData()
    outbox, processed = kernel_tables(metadata)
    bind = op.get_bind()
    outbox.create(bind)
    processed.create(bind)
    for statement in KERNEL_SQL_UP:
        op.execute(statement)


def drop_kernel_schema() -> None:
    from alembic import op

    op.execute("DROP TABLE IF EXISTS processed_event")
    op.execute("DROP TABLE IF EXISTS outbox")
    op.execute("DROP FUNCTION IF EXISTS notify_outbox()")


def add_outbox_positions() -> None:
    """The partition and offset of each sent event (the first migration of a new database
    already creates them, from :func:`shared.db.kernel_tables`)."""
    from alembic import op

    op.execute("ALTER TABLE outbox ADD COLUMN IF NOT EXISTS kafka_partition integer")
    op.execute("ALTER TABLE outbox ADD COLUMN IF NOT EXISTS kafka_offset bigint")


def drop_outbox_positions() -> None:
    from alembic import op

    op.execute("ALTER TABLE outbox DROP COLUMN IF EXISTS kafka_offset")
    op.execute("ALTER TABLE outbox DROP COLUMN IF EXISTS kafka_partition")
