"""Alembic environment of the DMP access tables (own version table, beside the registry's)."""
from alembic import context
from sqlalchemy import create_engine

from xds.access.store import VERSION_TABLE, metadata

config = context.config
connection = config.attributes.get("connection")


def _include(obj, name, type_, reflected, compare_to) -> bool:
    # The registry's and repository's tables share the database: autogenerate looks at ours only.
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
