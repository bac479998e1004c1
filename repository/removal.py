"""ITI-86 Remove Documents at the Document Repository (ITI TF-2 3.86.4.1.3).

Each requested document is removed on its own, as ITI-43 retrieves them: a request naming another
repository gets ``XDSUnknownRepositoryId``, a document this repository does not hold (or that the
caller may not remove, answered alike) ``XDSDocumentUniqueIdError``, and the answer is Success,
PartialSuccess or Failure (ITI TF-2 3.86.4.2.2).

The bytes are content-addressed and may be shared by several uniqueIds: they are deleted only
once no index row holds them. One removal, under the store's guard for the address:

1. a durable mark ``removing/<address>`` (:meth:`~repository.store.FileSystemStore.mark_removal`);
2. the committed index row is deleted (the commit point: from here ITI-43 answers the document
   as unknown);
3. the bytes are deleted if no row holds the address any more; the mark is cleared.

A process killed before 2 leaves the old state (the row and the bytes; a mark that the next
:func:`finish_removals` clears); killed after 2, the new state as every reader sees it, with bytes
no row holds that :func:`finish_removals` deletes (the start-up sweep and the elected
reconciler's rounds run it). A removal never deletes bytes another row holds, nor bytes an ITI-41
is placing: both take the same guard.
"""
from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

from repository.index import DocumentIndex
from repository.store import ContentRef, DocumentStore
from repository.transactions import DocumentRequest, Repository
from xds.errors import ErrorCode, ErrorList
from xds.vocabulary import ResponseStatus

log = logging.getLogger(__name__)


@dataclass
class RemoveResult:
    errors: ErrorList
    removed: list[DocumentRequest] = field(default_factory=list)
    """The documents removed (for a dry run: that would be)."""

    @property
    def status(self) -> str:
        if not self.errors.has_errors:
            return ResponseStatus.SUCCESS
        return ResponseStatus.PARTIAL_SUCCESS if self.removed else ResponseStatus.FAILURE


def remove_documents(repository: Repository, requests: list[DocumentRequest], may_remove: Iterable[str] | None = None,
                     dry_run: bool = False) -> RemoveResult:
    """Remove the bytes of each requested document. ``may_remove``: the uniqueIds the access policy
    lets the caller remove (None: all); the others are answered as unknown documents."""
    allowed = set(may_remove) if may_remove is not None else None
    result = RemoveResult(ErrorList())
    if not requests:
        result.errors.add(ErrorCode.REPOSITORY_ERROR, "RemoveDocumentsRequest has no DocumentRequest")
        return result
    for r in requests:
        uid = r.document_unique_id
        if r.repository_unique_id != repository.repository_unique_id:
            result.errors.add(ErrorCode.UNKNOWN_REPOSITORY_ID,
                              f"repositoryUniqueId {r.repository_unique_id} is not this repository "
                              f"({repository.repository_unique_id})", uid)
        elif (allowed is not None and uid not in allowed) or not _remove_one(repository, uid, dry_run):
            result.errors.add(ErrorCode.DOCUMENT_UNIQUE_ID_ERROR, f"document uniqueId {uid} is not in this repository",
                              uid)
        else:
            result.removed.append(r)
    return result


def _remove_one(repository: Repository, unique_id: str, dry_run: bool) -> bool:
    row = repository.index.committed([unique_id]).get(unique_id)
    if row is None or dry_run:
        return row is not None
    store, index = repository.store, repository.index
    with store.guard(row.ref.address):
        store.mark_removal(row.ref.address)
        gone = index.remove_committed(unique_id)
        if gone is not None:
            repository.faults.exit_in_removal()
            if index.references(gone.ref.address) == 0:
                store.delete(gone.ref)
        store.clear_removal_mark(row.ref.address)
    if gone is not None:
        log.info("ITI-86: removed document %s (%s)", unique_id, gone.ref.address)
    return gone is not None


def finish_removals(store: DocumentStore, index: DocumentIndex) -> int:
    """Finish the removals a crash interrupted: delete the bytes of each marked address that no index
    row holds, then clear the mark; returns how many addresses lost their bytes."""
    deleted = 0
    for address in store.removal_marks():
        with store.guard(address):
            if index.references(address) == 0:
                store.delete(ContentRef(address, "", 0))
                deleted += 1
            store.clear_removal_mark(address)
    if deleted:
        log.info("repository: finished %d interrupted removals", deleted)
    return deleted
