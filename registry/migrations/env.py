"""Alembic environment: run against the connection handed over by ``Database.migrate``."""
from alembic import context
from sqlalchemy import create_engine

from registry.store.schema import metadata

config = context.config
connection = config.attributes.get("connection")


def _include(obj, name, type_, reflected, compare_to) -> bool:
    """Only the registry's tables: the repository and the audit trail migrate on their own."""
    return type_ != "table" or name in metadata.tables


def _run(conn) -> None:
    context.configure(connection=conn, target_metadata=metadata, include_object=_include,
                      render_as_batch=conn.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    with create_engine(config.get_main_option("sqlalchemy.url")).connect() as conn:
        _run(conn)
        conn.commit()
