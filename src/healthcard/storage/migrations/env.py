"""Alembic environment: the engine comes from :class:`healthcard.storage.db.Database`."""

from __future__ import annotations

from alembic import context

from healthcard.storage.tables import Base

config = context.config
engine = config.attributes["engine"]

with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
    )
    with context.begin_transaction():
        context.run_migrations()
    connection.commit()
