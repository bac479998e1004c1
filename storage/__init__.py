"""Storage: the database engines every actor shares and the one locked-migration helper.

The bottom layer: it knows SQLAlchemy and Alembic, and nothing of XDS. Each actor keeps its own
tables and Alembic history (``registry/migrations``, ``repository/migrations``, ...).
"""
from storage.database import LAZY_COMMIT, Database, alembic_env, driver_execute, host_lock

__all__ = ["Database", "LAZY_COMMIT", "alembic_env", "driver_execute", "host_lock"]
