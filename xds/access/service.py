"""Wiring for ``xds.app.build_services``: the access policy of one worker and the JSON API."""
from __future__ import annotations

import fcntl
import os
from pathlib import Path

from .policy import AccessPolicy
from .store import AccessStore, migrate


def ensure_schema(settings, database) -> None:
    """Migrate the access tables (idempotent; one process of this host at a time)."""
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    fd = os.open(Path(settings.data_dir) / "access-migrate.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        migrate(database)
    finally:
        os.close(fd)


def build_access(services) -> AccessPolicy:
    from .xua import build_verifier
    settings, database = services.settings, services.database
    ensure_schema(settings, database)
    store = AccessStore(database, replay_sync_commit=bool(getattr(settings, "xua_replay_sync_commit", False)))
    return AccessPolicy(settings, database, store, build_verifier(settings, store), services)


def api_app(services):
    from .admin import PolicyAdmin
    from .api import PolicyApi
    return PolicyApi(PolicyAdmin(services.database, getattr(services, "auditor", None)),
                     getattr(services.settings, "access_api_token", ""), services)
