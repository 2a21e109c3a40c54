"""Alembic environment: always runs on the connection loopstack hands it."""

from alembic import context

from loopstack.store.metadata.schema import Base

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
