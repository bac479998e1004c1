"""Alembic environment of the audit tables (own version table, beside the registry's and repository's)."""
from alembic import context
from sqlalchemy import create_engine

from audit.store import VERSION_TABLE, metadata

config = context.config
connection = config.attributes.get("connection")


def _include(obj, name, type_, reflected, compare_to) -> bool:
    # Other actors' tables share the database: autogenerate must only look at ours.
    return not (type_ == "table" and reflected and compare_to is None)


def _run(conn) -> None:
    context.configure(connection=conn, target_metadata=metadata, version_table=VERSION_TABLE,
                      include_object=_include, render_as_batch=conn.dialect.name == "sqlite")
    with context.begin_transaction():
        context.run_migrations()


if connection is not None:
    _run(connection)
else:
    with create_engine(config.get_main_option("sqlalchemy.url")).connect() as conn:
        _run(conn)
        conn.commit()
