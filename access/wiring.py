"""Building one worker's access policy: its tables, its XUA verifier, its alert sink."""
from __future__ import annotations

from pathlib import Path

from access.policy import AccessPolicy, AlertSink, log_alert
from access.store import AccessStore, migrate
from access.xua import build_verifier
from config import Settings
from storage import Database, host_lock


def ensure_schema(settings: Settings, database: Database) -> None:
    """Migrate the access tables (idempotent; one process of this host at a time)."""
    with host_lock(Path(settings.data_dir) / "access-migrate.lock"):
        migrate(database)


def build_access(settings: Settings, database: Database, alert: AlertSink = log_alert) -> AccessPolicy:
    ensure_schema(settings, database)
    store = AccessStore(database, replay_sync_commit=settings.xua_replay_sync_commit)
    return AccessPolicy(settings, database, store, build_verifier(settings, store), alert)
