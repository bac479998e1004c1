"""The Document Repository actor, transport-free: ITI-41 provide-and-register, ITI-43 retrieve.

ITI-41 (ITI TF-2 3.41.4.1.3), in this order, so that no document the registry does not know
survives in the repository:

1. match documents and DocumentEntries; refuse a message with a document missing either way,
   duplicate uniqueIds or ids (nothing is written);
2. stream each document into staging while hashing it; refuse empty documents and a
   submitter's hash or size that differ from the bytes (staging discarded);
3. set ``size``, ``hash`` and ``repositoryUniqueId`` on each DocumentEntry;
4. per document, under the store's guard for its address: insert a ``pending`` index row,
   then place the bytes durably (fsync file and folder, atomic rename);
5. register with ITI-42; on Success mark the rows ``committed``; on anything else (error
   answer, unreachable registry, exception) delete the rows and every byte no row uses.

A crash after step 4 leaves ``pending`` rows of this process (their ``owner``): once its lease
has expired, the reconciler of a live process (:mod:`repository.reconciler`) settles them against
the registry. Rows this process could not settle itself (the index commit or the rollback failed)
are queued in :attr:`Repository.unsettled` and retried by this process's reconciler.

A full disk or quota, for the bytes or for the database, answers ``XDSRepositoryOutOfResources``
(ITI TF-3 Table 4.2.4.1-2) with nothing stored (issue 19 finding 6).
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from repository.faults import FaultPlan, InjectedFault
from repository.index import COMMITTED, PENDING, DocumentIndex, IndexRow
from repository.registry_client import RegistryAnswer, RegistryGateway
from repository.resources import out_of_resources
from repository.store import ContentRef, DocumentStore, StagedContent
from xds.errors import ErrorCode, ErrorList
from xds.metadata import DocumentEntry
from xds.rim import RegistryObject
from xds.vocabulary import DOC, ResponseStatus

log = logging.getLogger(__name__)


@dataclass
class DocumentPart:
    """One ``xdsb:Document``: its id and a way to read its bytes chunk by chunk."""
    id: str
    chunks: Callable[[], Iterable[bytes]]


@dataclass
class DocumentRequest:
    repository_unique_id: str
    document_unique_id: str
    home_community_id: str | None = None


@dataclass
class RetrieveResult:
    errors: ErrorList
    found: list[tuple[DocumentRequest, IndexRow]] = field(default_factory=list)

    @property
    def status(self) -> str:
        if not self.errors.has_errors:
            return ResponseStatus.SUCCESS
        return ResponseStatus.PARTIAL_SUCCESS if self.found else ResponseStatus.FAILURE


def _failure(errors: ErrorList) -> RegistryAnswer:
    return RegistryAnswer(ResponseStatus.FAILURE, errors)


def _set_slot(o: RegistryObject, name: str, value: str) -> None:
    o.set_slot(name, [value])


@dataclass
class _Claim:
    unique_id: str
    ref: ContentRef


class Unsettled:
    """(uniqueId, submission txn) of this process's pending rows that it could not settle at once;
    its reconciler takes them and settles them against the registry (issue 19 finding 2)."""

    def __init__(self) -> None:
        self._keys: set[tuple[str, str]] = set()
        self._lock = threading.Lock()

    def add(self, claims: list[_Claim], txn: str) -> None:
        with self._lock:
            self._keys.update((c.unique_id, txn) for c in claims)

    def put_back(self, keys: list[tuple[str, str]]) -> None:
        with self._lock:
            self._keys.update(keys)

    def take(self) -> list[tuple[str, str]]:
        with self._lock:
            keys, self._keys = sorted(self._keys), set()
        return keys

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)


class Background(Protocol):
    """Work a repository keeps going beside its requests (its reconciler)."""

    def stop(self) -> None: ...


class Repository:
    def __init__(self, store: DocumentStore, index: DocumentIndex, registry: RegistryGateway,
                 repository_unique_id: str, busy_wait: float = 10.0, owner: str | None = None,
                 faults: FaultPlan | None = None) -> None:
        """``owner``: this process's owner id, written on its pending rows and kept alive by its
        lease (:mod:`repository.reconciler`); None writes rows that only the age bound settles.
        ``faults``: the crash tests' injected failures (:mod:`repository.faults`)."""
        self.store = store
        self.index = index
        self.registry = registry
        self.repository_unique_id = repository_unique_id
        self.busy_wait = busy_wait
        self.owner = owner
        self.faults = faults if faults is not None else FaultPlan()
        self.unsettled = Unsettled()
        self.background: Background | None = None

    def close(self) -> None:
        """Stop the background work (the reconciler gives up this owner's leases)."""
        if self.background is not None:
            self.background.stop()
            self.background = None

    # ------------------------------------------------------------------ ITI-41

    def provide(self, objects: list[RegistryObject], documents: list[DocumentPart],
                security_header: bytes | None = None) -> RegistryAnswer:
        """ITI-41: store the documents, register their metadata (ITI-42), commit both or neither.

        ``security_header``: the submitter's ``wsse:Security`` (XUA assertion), forwarded with the
        ITI-42 to a remote registry that decides on it as on an ITI-41 (issue 17)."""
        errors = ErrorList()
        entries = self._match(objects, documents, errors)
        if errors.has_errors:
            return _failure(errors)
        try:
            return self._store_and_register(objects, documents, entries, security_header, errors)
        except Exception as exc:
            if not out_of_resources(exc):
                raise
            log.error("ITI-41 refused, out of resources (nothing stored): %s", exc)
            full = ErrorList()
            full.add(ErrorCode.REPOSITORY_OUT_OF_RESOURCES,
                     f"the repository is out of storage resources, nothing was stored: {exc}")
            return _failure(full)

    def _store_and_register(self, objects: list[RegistryObject], documents: list[DocumentPart],
                            entries: dict[str, tuple[RegistryObject, DocumentEntry]],
                            security_header: bytes | None, errors: ErrorList) -> RegistryAnswer:
        staged: dict[str, StagedContent] = {}
        try:
            for part in documents:
                self.faults.enospc()
                staged[part.id] = self.store.stage(part.chunks())
            self._check_content(entries, staged, errors)
            if errors.has_errors:
                return _failure(errors)
            for doc_id, (o, _entry) in entries.items():
                ref = staged[doc_id].ref
                _set_slot(o, "size", str(ref.size))
                _set_slot(o, "hash", ref.sha1)
                _set_slot(o, "repositoryUniqueId", self.repository_unique_id)
            txn = str(uuid.uuid4())
            claims: list[_Claim] = []
            try:
                for doc_id, (o, entry) in entries.items():
                    claim = self._claim(entry, o.get("mimeType") or "application/octet-stream",
                                        staged.pop(doc_id), txn, errors)
                    if claim is not None:
                        claims.append(claim)
                    if errors.has_errors:
                        self._rollback(claims, txn)
                        return _failure(errors)
                answer = self.registry.register(objects, security_header)
            except BaseException:
                self._rollback(claims, txn)
                raise
            if not answer.success:
                self._rollback(claims, txn)
                return answer
            self.faults.exit_after_register()
            return self._commit(claims, txn, answer)
        finally:
            for s in staged.values():
                self.store.discard(s)

    def _match(self, objects: list[RegistryObject], documents: list[DocumentPart],
               errors: ErrorList) -> dict[str, tuple[RegistryObject, DocumentEntry]]:
        eos = {o.id: o for o in objects if o.tag == "ExtrinsicObject"}
        seen_docs: set[str] = set()
        for part in documents:
            if part.id in seen_docs:
                errors.add(ErrorCode.REPOSITORY_METADATA_ERROR,
                           f"xdsb:Document id {part.id} appears more than once in the message", part.id)
            seen_docs.add(part.id)
            if not part.id:
                errors.add(ErrorCode.MISSING_DOCUMENT_METADATA, "xdsb:Document without an id attribute")
            elif part.id not in eos:
                errors.add(ErrorCode.MISSING_DOCUMENT_METADATA,
                           f"xdsb:Document {part.id} has no DocumentEntry (ExtrinsicObject) in the metadata", part.id)
        entries: dict[str, tuple[RegistryObject, DocumentEntry]] = {}
        by_unique_id: dict[str, str] = {}
        for eo_id, o in eos.items():
            entry = DocumentEntry.from_rim(o)
            if eo_id not in seen_docs:
                errors.add(ErrorCode.MISSING_DOCUMENT,
                           f"DocumentEntry {eo_id} has no xdsb:Document in the message", eo_id)
                continue
            if not entry.unique_id:
                errors.add(ErrorCode.REPOSITORY_METADATA_ERROR,
                           f"DocumentEntry {eo_id} has no uniqueId (ExternalIdentifier {DOC.UNIQUE_ID})", eo_id)
                continue
            if entry.unique_id in by_unique_id:
                errors.add(ErrorCode.REPOSITORY_DUPLICATE_UNIQUE_ID_IN_MESSAGE,
                           f"DocumentEntries {by_unique_id[entry.unique_id]} and {eo_id} have the same uniqueId "
                           f"{entry.unique_id}", entry.unique_id)
                continue
            by_unique_id[entry.unique_id] = eo_id
            entries[eo_id] = (o, entry)
        return entries

    def _check_content(self, entries, staged: dict[str, StagedContent], errors: ErrorList) -> None:
        for doc_id, (_o, entry) in entries.items():
            ref = staged[doc_id].ref
            if ref.size == 0:
                errors.add(ErrorCode.REPOSITORY_ERROR, f"document {doc_id} is empty (0 bytes)", doc_id)
                continue
            if entry.hash is not None and entry.hash.strip().lower() != ref.sha1:
                errors.add(ErrorCode.REPOSITORY_METADATA_ERROR,
                           f"DocumentEntry {doc_id}: submitted hash {entry.hash} differs from the SHA-1 of the "
                           f"document, {ref.sha1}", doc_id)
            # from_rim gives None for a size that is not a number: compare the slot text then.
            o = _o
            raw_size = o.slot_value("size")
            if raw_size is not None and raw_size.strip() != str(ref.size):
                errors.add(ErrorCode.REPOSITORY_METADATA_ERROR,
                           f"DocumentEntry {doc_id}: submitted size {raw_size} differs from the size of the "
                           f"document, {ref.size} bytes", doc_id)

    def _claim(self, entry: DocumentEntry, mime_type: str, staged: StagedContent, txn: str,
               errors: ErrorList) -> _Claim | None:
        """Index the document as pending and place its bytes; None when nothing new was stored."""
        uid = entry.unique_id
        assert uid is not None, "_entries keeps only entries with a uniqueId"
        ref = staged.ref
        deadline = time.monotonic() + self.busy_wait
        try:
            while True:
                with self.store.guard(ref.address):
                    existing = self.index.insert_pending(uid, ref, mime_type, txn, self.owner)
                    if existing is None:
                        self.store.place(staged)
                        return _Claim(uid, ref)
                if existing.state == COMMITTED:
                    if existing.ref.sha1 != ref.sha1 or existing.ref.size != ref.size:
                        errors.add(ErrorCode.NON_IDENTICAL_HASH,
                                   f"document uniqueId {uid} is already stored with hash {existing.ref.sha1} "
                                   f"({existing.ref.size} bytes); this submission has {ref.sha1} ({ref.size} bytes)",
                                   uid)
                    return None  # same bytes already stored: the registry decides on the metadata
                assert existing.state == PENDING
                if time.monotonic() >= deadline:
                    errors.add(ErrorCode.REPOSITORY_BUSY,
                               f"document uniqueId {uid} is being stored by another submission; retry", uid)
                    return None
                time.sleep(0.05)
        finally:
            self.store.discard(staged)

    def _commit(self, claims: list[_Claim], txn: str, answer: RegistryAnswer) -> RegistryAnswer:
        """Mark this submission's pending rows committed; acknowledge only what is committed.

        Issue 19 finding 1: a sweep of another process (or of an immediate restart) deleted pending
        rows, and their bytes, between the registration and this commit; the commit updated 0 rows
        and Success was answered anyway - 36 + 1 acknowledged documents lost, each answering
        ``XDSDocumentUniqueIdError`` on ITI-43 forever. Now every claimed row must be committed (by
        this update, or already by a sweep that found the same hash at the registry); otherwise the
        answer is a Failure with ``XDSRepositoryError`` per missing document. The registry keeps the
        metadata it registered (the gateway has no way to withdraw an ITI-42): the entry points to
        no bytes, which is logged as an error naming the uniqueIds so that an operator can deprecate
        it; the submitter is told the documents are not stored. Rows that did commit stay committed.

        A commit that raises three times (a full disk, a lost database connection) leaves the rows
        pending and answers Success: the registry has the metadata and the bytes are in place. The
        rows are queued in :attr:`unsettled`, and this process's reconciler commits them within one
        reconcile interval once it finds them registered; if the process dies first, its lease
        expires and the reconciler of another process does (issue 19 finding 2: such documents
        stayed unretrievable until the next full restart).
        """
        ids = [c.unique_id for c in claims]
        if not ids:
            return answer
        injected = self.faults.fires("commit_error")
        for attempt in range(3):
            try:
                if injected:
                    raise InjectedFault("index commit failed (injected: repository_faults)")
                updated = self.index.commit(ids, txn)
            except Exception:  # noqa: BLE001 - the registry has the metadata: keep the bytes
                log.exception("could not mark documents %s committed (attempt %d)", ids, attempt + 1)
                time.sleep(0.1 * (attempt + 1))
                continue
            if updated == len(ids):
                return answer
            return self._verify_committed(claims, answer)
        log.error("documents %s are registered and stored but not yet marked committed: queued for this "
                  "process's reconciler", ids)
        self.unsettled.add(claims, txn)
        return answer

    def _verify_committed(self, claims: list[_Claim], answer: RegistryAnswer) -> RegistryAnswer:
        rows = self.index.committed([c.unique_id for c in claims])
        lost = [c for c in claims
                if (row := rows.get(c.unique_id)) is None or row.ref.sha1 != c.ref.sha1 or row.ref.size != c.ref.size]
        if not lost:
            return answer
        log.error("documents %s were registered but their pending rows were gone at commit (swept by another "
                  "process?): not acknowledged; the registry keeps entries without bytes",
                  [c.unique_id for c in lost])
        errors = ErrorList()
        for c in lost:
            errors.add(ErrorCode.REPOSITORY_ERROR,
                       f"document uniqueId {c.unique_id} was registered but could not be committed to the "
                       f"repository (its pending record was removed during the submission); it is not stored",
                       c.unique_id)
        return _failure(errors)

    def _rollback(self, claims: list[_Claim], txn: str) -> None:
        for c in claims:
            try:
                self.release(c.unique_id, c.ref, txn)
            except Exception:  # noqa: BLE001 - the reconciler settles what is left pending
                log.exception("rollback of document %s failed; queued for this process's reconciler", c.unique_id)
                self.unsettled.add([c], txn)

    def release(self, unique_id: str, ref: ContentRef, txn: str | None) -> None:
        """Drop a pending row and the bytes when no row uses them any more."""
        with self.store.guard(ref.address):
            self.index.remove_pending(unique_id, txn)
            if self.index.references(ref.address) == 0:
                self.store.delete(ref)

    # ------------------------------------------------------------------ ITI-43

    def retrieve(self, requests: list[DocumentRequest]) -> RetrieveResult:
        errors = ErrorList()
        result = RetrieveResult(errors)
        ours = [r for r in requests if r.repository_unique_id == self.repository_unique_id]
        rows = self.index.committed(sorted({r.document_unique_id for r in ours}))
        for r in requests:
            if r.repository_unique_id != self.repository_unique_id:
                errors.add(ErrorCode.UNKNOWN_REPOSITORY_ID,
                           f"repositoryUniqueId {r.repository_unique_id} is not this repository "
                           f"({self.repository_unique_id})", r.document_unique_id)
                continue
            row = rows.get(r.document_unique_id)
            if row is None:
                errors.add(ErrorCode.DOCUMENT_UNIQUE_ID_ERROR,
                           f"document uniqueId {r.document_unique_id} is not in this repository",
                           r.document_unique_id)
                continue
            result.found.append((r, row))
        return result
