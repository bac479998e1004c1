"""Building the Document Repository of one process: its store, its index, its registry gateway."""
from __future__ import annotations

from pathlib import Path

from config import Settings
from registry.register import Registry
from repository.faults import FaultPlan
from repository.index import DocumentIndex, migrate
from repository.reconciler import Reconciler, new_owner_id
from repository.recovery import PENDING_MIN_AGE, SweepReport, sweep
from repository.registry_client import InProcessRegistry, RegistryGateway, SoapRegistry
from repository.store import FileSystemStore
from repository.transactions import Repository
from storage import Database, host_lock

REGISTRY_TIMEOUT = 30.0


def ensure_schema(database: Database, store: FileSystemStore) -> None:
    """Migrate if ``startup`` has not (one process at a time on this host; idempotent)."""
    with host_lock(store.locks / "migrate.lock"):
        migrate(database)


def registry_gateway(settings: Settings, database: Database, registry: Registry | None = None) -> RegistryGateway:
    """ITI-42 over SOAP to ``remote_registry_url``'s registry, or in-process."""
    if settings.remote_registry_url:
        cert = (settings.tls_cert, settings.tls_key or settings.tls_cert) if settings.tls_cert else None
        return SoapRegistry(settings.remote_registry_url, timeout=REGISTRY_TIMEOUT, client_cert=cert,
                            ca=settings.tls_ca or None)
    return InProcessRegistry(registry, database)


def build_repository(settings: Settings, database: Database, store: FileSystemStore,
                     gateway: RegistryGateway) -> Repository:
    """The repository of one worker process: an owner of its pending rows, its lease taken and
    its reconciler running (:mod:`repository.reconciler`; ``repository_reconcile_interval`` 0: the
    lease is taken but no thread runs, for tests that run the rounds themselves).
    ``repository_faults`` (the crash tests' injected failures) is read here, once."""
    repository = Repository(store, DocumentIndex(database), gateway, settings.repository_unique_id,
                            owner=new_owner_id(), faults=FaultPlan.parse(settings.repository_faults))
    reconciler = Reconciler(repository, settings.repository_lease_seconds,
                            settings.repository_reconcile_interval or settings.repository_lease_seconds)
    if settings.repository_reconcile_interval > 0:
        reconciler.start()
    else:
        reconciler.beat()
    repository.background = reconciler
    return repository


def startup(settings: Settings, older_than: float = PENDING_MIN_AGE) -> SweepReport:
    """Run once in ``xds serve`` before the workers start: migrate the repository tables, then sweep.

    The sweep settles only pending rows whose owner's lease has expired (rows without an owner:
    older than ``older_than``, default :data:`repository.recovery.PENDING_MIN_AGE`, 900 s) and only
    staging folders of processes that are gone: another server on the same database, or the
    workers of a server killed a moment ago, may still be inside a submission (issue 19 finding 1:
    36 + 1 acknowledged documents lost)."""
    Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
    database = Database(settings.effective_database_url())
    try:
        store = FileSystemStore(settings.documents_dir)
        ensure_schema(database, store)
        return sweep(store, DocumentIndex(database), registry_gateway(settings, database), older_than=older_than,
                     owned_older_than=settings.repository_lease_seconds)
    finally:
        database.dispose()
