"""Fill a registry with synthetic but valid XDS metadata, fast (issue 3: queries at scale).

    python benchmarks/loader.py --url URL --entries 100000 [--verify 3]

Every patient gets 10 DocumentEntries in four submissions (4, 3, 2 and 1 documents), each a
SubmissionSet with its HasMember associations, loaded round by round in a shuffled patient order
so that one patient's rows are spread over the tables as they are in a registry fed over time.
Codes (class, type, format, practice setting, facility type, confidentiality, event) vary by
template and document; creation and service times vary by submission.

The rows and the stored ebRIM are not written by hand: each template submission is registered
once through ``Registry.register`` on a scratch SQLite database while ``Database.insert_many`` is
watched, and what ``Registry._store`` wrote (every table, every row, the XML bytes) becomes the
template. Identifiers, the patient, uniqueIds and times are then substituted per instance (one
``%`` formatting per stored XML) and the rows are bulk-inserted: PostgreSQL ``COPY ... FORMAT
BINARY`` with the secondary indexes and constraints dropped for the load and rebuilt after it,
SQLite ``executemany`` in large transactions. :func:`verify` then checks that the real query
engine answers loaded entries exactly as it answers the same submissions registered through
``Registry.register`` (ids, patient and uniqueIds normalised), so the loader cannot drift from the
write path.
"""
from __future__ import annotations

import argparse
import queue
import random
import re
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from registry.register import Registry  # noqa: E402
from registry.store import migrate as migrate_registry
from registry.store import schema as t  # noqa: E402
from storage.database import Database  # noqa: E402
from tests.support.metadata import SubmissionDraft, document_entry, submission_set  # noqa: E402
from xds.metadata import Code  # noqa: E402

DOCS_PER_PATIENT = 10
ROUNDS = (4, 3, 2, 1)
"""Documents per submission, one submission per round: 10 documents per patient."""
TEMPLATES_PER_ROUND = 8
PATIENT_DOMAIN = "^^^&1.2.250.1.213.1.4.10&ISO"
"""Without CX.5, so that the ids written in the XML are the registry's patient keys (xds.patient)."""

CLASS_CODES = [Code(c, "1.2.250.1.213.1.1.4.1", f"Classe {c}")
               for c in ("10", "11", "12", "13", "14", "15", "16", "17")]
TYPE_CODES = [Code(c, "2.16.840.1.113883.6.1", f"Type {c}")
              for c in ("11490-0", "34133-9", "18842-5", "11506-3", "34112-3", "60591-5", "57833-6", "11488-4")]
FORMAT_CODES = [Code(c, "1.3.6.1.4.1.19376.1.2.3", c)
                for c in ("urn:ihe:iti:xds-sd:text:2008", "urn:ihe:iti:xds-sd:pdf:2008", "urn:ihe:pcc:xphr:2007")]
PRACTICE_CODES = [Code(c, "1.2.250.1.213.1.1.4.9", c) for c in ("ETABLISSEMENT", "AMBULATOIRE", "DOMICILE", "SSR")]
FACILITY_CODES = [Code(c, "1.2.250.1.71.4.2.4", c) for c in ("SA01", "SA02", "SA05", "SA07", "SA29")]
CONFIDENTIALITY = [Code(c, "2.16.840.1.113883.5.25", c) for c in ("N", "R", "V")]
EVENT_CODES = [Code(c, "1.2.250.1.213.1.1.4.11", f"Evenement {c}") for c in ("E1", "E2", "E3", "E4", "E5", "E6")]

# Sentinels put in the template submission and replaced per instance: distinct, fixed width and
# valid where they stand (CX patient, OID uniqueIds, 14-digit DTM times).
_PATIENT = "999999999999983" + PATIENT_DOMAIN
_UID = "1.2.250.1.999.424242.{}"
_TIMES = ("1901", "1902", "1903", "1904")  # creation, service start, service stop, submission
_UUID_RE = re.compile(r"urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _sentinel_time(kind: int, i: int) -> str:
    return f"{_TIMES[kind]}0101{i:06d}"


def _xml_escape(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


# ----------------------------------------------------------------------------- template submissions

def template_draft(template: int, documents: int, patient: str, uids: list[str],
                   times: dict[str, str]) -> SubmissionDraft:
    """Submission ``template`` (deterministic codes and content) for ``patient``.

    ``uids``: the SubmissionSet's uniqueId then one per document. ``times``: ``c{i}``, ``s{i}``,
    ``e{i}`` (creation, service start, service stop of document i) and ``ss`` (submission time).
    """
    rnd = random.Random(template * 1000 + documents)
    ss = submission_set(patient, "SubmissionSet01")
    ss.unique_id = uids[0]
    ss.submission_time = times["ss"]
    d = SubmissionDraft(patient, ss)
    for i in range(documents):
        content = f"template {template}/{documents} document {i}".encode()
        doc = document_entry(
            patient, f"Document{i:02d}", content=content, unique_id=uids[1 + i],
            class_code=rnd.choice(CLASS_CODES), type_code=rnd.choice(TYPE_CODES), format_code=rnd.choice(FORMAT_CODES),
            practice_setting_code=rnd.choice(PRACTICE_CODES), healthcare_facility_type_code=rnd.choice(FACILITY_CODES),
            confidentiality_codes=rnd.sample(CONFIDENTIALITY, rnd.choice((1, 1, 2))),
            event_codes=rnd.sample(EVENT_CODES, rnd.choice((0, 1, 2))),
            creation_time=times[f"c{i}"], service_start_time=times[f"s{i}"], service_stop_time=times[f"e{i}"],
            title=f"Document {template}-{i}")
        d.add_document(doc)
    return d


def sentinel_values(documents: int) -> tuple[list[str], dict[str, str]]:
    uids = [_UID.format(1000 + i) for i in range(documents + 1)]
    times = {"ss": _sentinel_time(3, 0)}
    for i in range(documents):
        times[f"c{i}"], times[f"s{i}"], times[f"e{i}"] = (_sentinel_time(k, i) for k in range(3))
    return uids, times


_DAYS = [time.strftime("%Y%m%d", time.gmtime(1262304000 + d * 86400)) for d in range(16 * 365 + 10)]


def instance_times(documents: int, seed: int) -> dict[str, str]:
    """Creation and service times of one submission, spread over 2010-2025 (cheap and deterministic)."""
    h = (seed * 2654435761 + 97) % 2**32
    day, second = 10 + h % (16 * 365), (h >> 12) % 86400
    clock = f"{second // 3600:02d}{second // 60 % 60:02d}{second % 60:02d}"
    stamp, start = _DAYS[day] + clock, _DAYS[day - 1 - (h >> 7) % 9] + clock
    out = {"ss": stamp}
    for i in range(documents):
        out[f"c{i}"], out[f"s{i}"], out[f"e{i}"] = stamp, start, stamp
    return out


@dataclass
class Template:
    """What one registration wrote, with placeholders: ``tables`` is [(table, columns, rows)],
    each cell a constant, a ``("v", key)`` variable or an ``("x", format)`` XML format string."""
    documents: int
    tables: list[tuple[str, tuple[str, ...], list[list]]]
    uuid_keys: list[str]

    def __post_init__(self) -> None:
        # One generated function per table: a list display of tuples, so that rendering an
        # instance is a few C-level operations per row (``%`` formatting of each XML included).
        self._renderers = {}
        for name, _cols, rows in self.tables:
            consts: list = []

            def cell(c) -> str:
                if type(c) is tuple and c[0] == "v":
                    return f"v[{c[1]!r}]"
                # called at once below, within this iteration
                consts.append(c[1] if type(c) is tuple else c)  # noqa: B023
                return f"(k[{len(consts) - 1}] % v).encode()" if type(c) is tuple else f"k[{len(consts) - 1}]"  # noqa: B023

            source = "lambda v: [" + ", ".join("(" + "".join(cell(c) + ", " for c in row) + ")" for row in rows) + "]"
            self._renderers[name] = eval(source, {"k": consts})  # noqa: S307 - our own generated source

    def render(self, values: dict[str, str]) -> dict[str, list[tuple]]:
        return {name: fn(values) for name, fn in self._renderers.items()}


def capture(template: int, documents: int) -> Template:
    """Register the template submission through Registry.register; keep what _store inserted."""
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{tmp}/template.db")
        migrate_registry(db)
        captured: list = []
        real = db.insert_many

        def watch(conn, batches):
            captured.append([(table.name, [dict(r) for r in rows]) for table, rows in batches if rows])
            return real(conn, batches)

        db.insert_many = watch
        registry = Registry(db)
        registry.add_patient(_PATIENT)
        uids, times = sentinel_values(documents)
        errors = registry.register(template_draft(template, documents, _PATIENT, uids, times).objects())
        db.dispose()
    if errors.has_errors or len(captured) != 1:
        raise RuntimeError(f"template {template}/{documents} did not register: {[(e.code, e.context) for e in errors]}")
    batches = captured[0]

    # Variables: object and nested ids (from the stored XML's id attributes and the rows' uuids),
    # the patient (raw in rows, escaped in XML), uniqueIds and sentinel times.
    ids: list[str] = []
    for _name, rows in batches:
        for row in rows:
            for key in ("uuid", "entry_uuid"):
                if key in row and row[key] not in ids:
                    ids.append(row[key])
            if "xml" in row:
                for m in re.finditer(rb'\bid="(urn:uuid:[^"]+)"', row["xml"]):
                    if m.group(1).decode() not in ids:
                        ids.append(m.group(1).decode())
    variables = {u: f"u{k}" for k, u in enumerate(ids)}
    uids, times = sentinel_values(documents)
    variables.update({u: f"uid{k}" for k, u in enumerate(uids)})
    variables.update({v: f"t_{k}" for k, v in times.items()})
    xml_variables = dict(variables)
    variables[_PATIENT] = "patient"
    xml_variables[_xml_escape(_PATIENT)] = "patient_xml"
    pattern = re.compile("|".join(re.escape(v) for v in sorted(xml_variables, key=len, reverse=True)))

    def xml_format(data: bytes) -> str:
        text = data.decode("utf-8").replace("%", "%%")
        return pattern.sub(lambda m: f"%({xml_variables[m.group(0)]})s", text)

    tables = []
    for name, rows in batches:
        cols = tuple(rows[0])
        out_rows = []
        for row in rows:
            cells = []
            for c in cols:
                v = row[c]
                if c == "xml":
                    cells.append(("x", xml_format(v)))
                elif isinstance(v, str) and v in variables:
                    cells.append(("v", variables[v]))
                elif isinstance(v, str) and _UUID_RE.fullmatch(v) and v in ids:
                    cells.append(("v", variables[v]))
                else:
                    cells.append(v)
            out_rows.append(cells)
        tables.append((name, cols, out_rows))
    leftovers = [v for _n, rows in batches for r in rows for v in r.values()
                 if isinstance(v, str) and any(s in v for s in (_PATIENT, "424242", "19010101"))
                 and v not in variables]
    if leftovers:
        raise RuntimeError(f"template values not substituted: {leftovers[:3]}")
    return Template(documents, tables, [f"u{k}" for k in range(len(ids))])


# ----------------------------------------------------------------------------- instance values

class Naming:
    """Identifiers of one load: patient n, submission (n, round), document i; UUIDs from a counter."""

    def __init__(self, run: int | None = None) -> None:
        self.run = run if run is not None else random.randrange(10**6, 10**7)
        h = uuid.uuid4().hex
        self._uuid_prefix = f"urn:uuid:{h[:8]}-{h[8:12]}-4{h[13:16]}-8{h[17:20]}-{self.run % 4096:03x}"
        self._next = 0

    def patient(self, n: int) -> str:
        """An INS-NIR test id: 13 digits (the run's last 5, n's 8) and their check key."""
        number = int(f"{self.run % 10**5:05d}{n:08d}")
        return f"{number:013d}{97 - number % 97:02d}{PATIENT_DOMAIN}"

    def uids(self, n: int, rnd: int, documents: int) -> list[str]:
        base = f"1.2.250.1.999.8.{self.run}.{n}.{rnd}"
        return [base + ".0"] + [f"{base}.{i + 1}" for i in range(documents)]

    def uuids(self, count: int) -> list[str]:
        start, self._next = self._next, self._next + count
        p = self._uuid_prefix
        return [f"{p}{i:09x}" for i in range(start, start + count)]


def instance_values(template: Template, naming: Naming, n: int, rnd: int) -> dict[str, str]:
    patient = naming.patient(n)
    values = dict(zip(template.uuid_keys, naming.uuids(len(template.uuid_keys))))
    values.update({f"uid{k}": u for k, u in enumerate(naming.uids(n, rnd, template.documents))})
    values.update({f"t_{k}": v for k, v in instance_times(template.documents, n * 8 + rnd).items()})
    values["patient"], values["patient_xml"] = patient, _xml_escape(patient)
    return values


def template_of(n: int, rnd: int) -> int:
    return (n * 7 + rnd * 3) % TEMPLATES_PER_ROUND


# ----------------------------------------------------------------------------- bulk writers

TABLE_ORDER = ("document_unique_ids", "registry_objects", "document_entries", "submission_sets", "associations",
               "entry_codes", "entry_authors")


class _PostgresWriter:
    def __init__(self, url: str) -> None:
        import psycopg
        from sqlalchemy.engine import make_url
        u = make_url(url)
        options = u.query.get("options")
        self.conn = psycopg.connect(host=u.host, port=u.port or 5432, user=u.username, password=u.password,
                                    dbname=u.database, options=options or "")
        self.conn.execute("SET synchronous_commit = off")
        self.conn.execute("SET maintenance_work_mem = '512MB'")
        self.saved: list[str] = []

    def empty(self) -> bool:
        return self.conn.execute("SELECT NOT EXISTS (SELECT 1 FROM registry_objects)").fetchone()[0]

    def drop_indexes(self) -> None:
        """Drop secondary indexes, unique and primary key constraints of the registry tables;
        :meth:`restore_indexes` recreates them from their own definitions."""
        names = tuple(table.name for table in t.metadata.sorted_tables)
        cons = self.conn.execute(
            "SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid) FROM pg_constraint c "
            "WHERE c.connamespace = current_schema()::regnamespace AND c.contype IN ('p', 'u') "
            "AND c.conrelid::regclass::text = ANY(%s)", (list(names),)).fetchall()
        idx = self.conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename = ANY(%s) "
            "AND indexname <> ALL(%s)", (list(names), [c[1] for c in cons])).fetchall()
        for name, definition in idx:
            self.saved.append(definition)
            self.conn.execute(f'DROP INDEX "{name}"')
        for table, name, definition in cons:
            self.saved.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
            self.conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        self.conn.commit()

    def restore_indexes(self) -> None:
        for statement in self.saved:
            self.conn.execute(statement)
        self.conn.commit()
        self.conn.execute("ANALYZE")
        self.conn.commit()

    def write(self, table: str, cols: tuple[str, ...], rows: list[tuple]) -> None:
        if not rows:
            return
        with self.conn.cursor() as cur:
            with cur.copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types([_PG_TYPES[table][c] for c in cols])
                for row in rows:
                    copy.write_row(row)

    def commit(self) -> None:
        self.conn.commit()

    def close(self) -> None:
        self.conn.close()


def _pg_types() -> dict[str, dict[str, str]]:
    out = {}
    for table in t.metadata.sorted_tables:
        out[table.name] = {c.name: ("bytea" if c.name == "xml" else "bigint" if c.name in ("size", "seq")
                                    else "integer" if c.name in ("version", "id") else "text") for c in table.columns}
    return out


_PG_TYPES = _pg_types()


class _SqliteWriter:
    def __init__(self, url: str) -> None:
        import sqlite3
        self.conn = sqlite3.connect(url.split("///", 1)[1], isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("PRAGMA cache_size=-1000000")
        self.conn.execute("BEGIN")
        self.saved: list[str] = []

    def empty(self) -> bool:
        return self.conn.execute("SELECT NOT EXISTS (SELECT 1 FROM registry_objects)").fetchone()[0] == 1

    def drop_indexes(self) -> None:
        names = {table.name for table in t.metadata.sorted_tables}
        for name, table, sql in self.conn.execute("SELECT name, tbl_name, sql FROM sqlite_master "
                                                  "WHERE type = 'index' AND sql IS NOT NULL").fetchall():
            if table in names:
                self.saved.append(sql)
                self.conn.execute(f'DROP INDEX "{name}"')

    def restore_indexes(self) -> None:
        for sql in self.saved:
            self.conn.execute(sql)
        self.conn.execute("COMMIT")
        self.conn.execute("ANALYZE")
        self.conn.execute("BEGIN")

    def write(self, table: str, cols: tuple[str, ...], rows: list[tuple]) -> None:
        if rows:
            self.conn.executemany(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})",
                                  rows)

    def commit(self) -> None:
        self.conn.execute("COMMIT")
        self.conn.execute("BEGIN")

    def close(self) -> None:
        self.conn.execute("COMMIT")
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        self.conn.close()


@dataclass
class LoadReport:
    entries: int
    patients: int
    submissions: int
    seconds: float
    rows: dict[str, int]
    naming: Naming


def templates() -> dict[tuple[int, int], Template]:
    return {(k, d): capture(k, d) for d in sorted(set(ROUNDS)) for k in range(TEMPLATES_PER_ROUND)}


def load(url: str, entries: int, *, batch: int = 2000, naming: Naming | None = None,
         progress: Callable[[str], None] | None = None, seed: int = 1) -> LoadReport:
    """Load ``entries`` DocumentEntries (entries // 10 patients) into the migrated, empty registry at ``url``."""
    naming = naming or Naming()
    tpl = templates()
    patients = max(1, entries // DOCS_PER_PATIENT)
    writer = _SqliteWriter(url) if url.startswith("sqlite") else _PostgresWriter(url)
    counts: dict[str, int] = {}
    spent: dict[str, float] = {}
    t0 = time.perf_counter()
    try:
        if not writer.empty():
            raise RuntimeError("the loader fills an empty registry (it drops and rebuilds the indexes)")
        writer.drop_indexes()
        now = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
        for start in range(0, patients, 20000):
            rows = [(naming.patient(n), "open", now) for n in range(start, min(patients, start + 20000))]
            writer.write("patients", ("patient_id", "state", "created_at"), rows)
        # A producer thread renders batches while this thread streams the previous one to the
        # database: rendering is Python, the database's work is in its own process (2 cores).
        batches: queue.Queue = queue.Queue(maxsize=2)
        submissions = [0]

        def produce() -> None:
            try:
                order = list(range(patients))
                rng = random.Random(seed)
                for rnd, documents in enumerate(ROUNDS):
                    rng.shuffle(order)
                    for start in range(0, patients, batch):
                        tables: dict[str, tuple[tuple, list]] = {}
                        for n in order[start:start + batch]:
                            template = tpl[(template_of(n, rnd), documents)]
                            rendered = template.render(instance_values(template, naming, n, rnd))
                            for name, cols, _rows in template.tables:
                                tables.setdefault(name, (cols, []))[1].extend(rendered[name])
                            submissions[0] += 1
                        batches.put((f"round {rnd + 1}/{len(ROUNDS)}: {min(start + batch, patients)}/{patients} "
                                     "patients", tables))
                batches.put(None)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                batches.put(exc)

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        while (item := batches.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            label, tables = item
            for name in TABLE_ORDER:
                if name in tables:
                    cols, rows = tables[name]
                    w0 = time.perf_counter()
                    writer.write(name, cols, rows)
                    spent[name] = spent.get(name, 0.0) + time.perf_counter() - w0
                    counts[name] = counts.get(name, 0) + len(rows)
            writer.commit()
            if progress:
                progress(f"{label}, {time.perf_counter() - t0:.0f} s")
        producer.join()
        submissions = submissions[0]
        if progress:
            progress("seconds writing each table: " + ", ".join(f"{k} {v:.1f}" for k, v in spent.items()))
        t1 = time.perf_counter()
        writer.restore_indexes()
        if progress:
            progress(f"indexes rebuilt in {time.perf_counter() - t1:.0f} s")
    finally:
        writer.close()
    counts["patients"] = patients
    return LoadReport(patients * DOCS_PER_PATIENT, patients, submissions, time.perf_counter() - t0, counts, naming)


def fill_patient(url: str, n: int, documents: int, naming: Naming, template: Template | None = None) -> str:
    """Give patient ``n`` of ``naming`` ``documents`` more DocumentEntries (submissions of 4), indexes
    kept: for tests that need one large record. Returns the patient id."""
    template = template or capture(0, 4)
    writer = _SqliteWriter(url) if url.startswith("sqlite") else _PostgresWriter(url)
    try:
        writer.write("patients", ("patient_id", "state", "created_at"), [(naming.patient(n), "open", "2026")])
        tables: dict[str, tuple[tuple, list]] = {}
        for k in range(-(-documents // template.documents)):
            rendered = template.render(instance_values(template, naming, n, 100 + k))
            for name, cols, _rows in template.tables:
                tables.setdefault(name, (cols, []))[1].extend(rendered[name])
        for name in TABLE_ORDER:
            if name in tables:
                writer.write(name, *tables[name])
        writer.commit()
    finally:
        writer.close()
    return naming.patient(n)


# ----------------------------------------------------------------------------- drift check

def _normalise(answer: list[bytes], patient: str, uids: list[str]) -> list[bytes]:
    """Answer objects with UUIDs numbered by first appearance, the patient and uniqueIds named."""
    seen: dict[bytes, bytes] = {}
    out = []
    for data in answer:
        for k, u in enumerate(uids):
            data = data.replace(f">{u}<".encode(), f">UID{k}<".encode()).replace(f'"{u}"'.encode(),
                                                                               f'"UID{k}"'.encode())
        data = data.replace(_xml_escape(patient).encode(), b"PATIENT")
        out.append(re.sub(rb"urn:uuid:[0-9a-f-]{36}", lambda m: seen.setdefault(m.group(0), b"ID%d" % len(seen)), data))
    return out


def verify(url: str, report: LoadReport, sample: int = 3, seed: int = 7) -> list[str]:
    """Compare the query engine's answers for sampled loaded patients with its answers for the same
    submissions registered through Registry.register; returns the differences (empty: identical)."""
    from lxml import etree

    from registry.query import BY_NAME, run_stored_query
    from xds.vocabulary import Status

    db = Database(url)
    registry = Registry(db)
    naming = report.naming
    twin_naming = Naming(run=naming.run + 1)
    problems: list[str] = []
    rng = random.Random(seed)
    approved = f"('{Status.APPROVED}')"

    def ask(name: str, params: dict, return_type: str = "LeafClass") -> list[bytes]:
        r = run_stored_query(db, BY_NAME[name].id, {k: [[v] if isinstance(v, str) else v] for k, v in params.items()},
                             return_type)
        if not r.ok:
            problems.append(f"{name}: {[(e.code, e.context) for e in r.errors]}")
        return [etree.tostring(el) for el in r.objects]

    try:
        for n in rng.sample(range(report.patients), min(sample, report.patients)):
            loaded, twin = naming.patient(n), twin_naming.patient(n)
            registry.add_patient(twin)
            loaded_uids, twin_uids = [], []
            class_codes = set()
            for rnd, documents in enumerate(ROUNDS):
                k = template_of(n, rnd)
                times = instance_times(documents, n * 8 + rnd)
                uids = twin_naming.uids(n, rnd, documents)
                d = template_draft(k, documents, twin, uids, times)
                class_codes |= {doc.class_code.key() for doc in d.documents}
                errors = registry.register(d.objects())
                if errors.has_errors:
                    problems.append(f"twin registration failed: {[(e.code, e.context) for e in errors]}")
                loaded_uids += naming.uids(n, rnd, documents)
                twin_uids += uids
            codes = [f"'{c}'" for c in sorted(class_codes)[:2]]
            class_list = f"({','.join(codes)})"
            cases = [
                ("FindDocuments", lambda p: {"$XDSDocumentEntryPatientId": f"'{p}'",
                                             "$XDSDocumentEntryStatus": approved,
                                             "$XDSDocumentEntryClassCode": class_list}),  # noqa: B023 - used below
                ("GetAll", lambda p: {"$patientId": f"'{p}'", "$XDSDocumentEntryStatus": approved,
                                      "$XDSSubmissionSetStatus": approved, "$XDSFolderStatus": approved}),
            ]
            for name, params in cases:
                a = _normalise(ask(name, params(loaded)), loaded, loaded_uids)
                b = _normalise(ask(name, params(twin)), twin, twin_uids)
                if a != b or not a:
                    problems.append(f"{name} for loaded patient {loaded} differs from registered twin "
                                    f"({len(a)} vs {len(b)} objects)" + _first_difference(a, b))
            for lu, tu in zip(loaded_uids, twin_uids):
                if lu.endswith(".0"):
                    name, key = "GetSubmissionSetAndContents", "$XDSSubmissionSetUniqueId"
                else:
                    name, key = "GetDocuments", "$XDSDocumentEntryUniqueId"
                a = _normalise(ask(name, {key: f"'{lu}'" if name != "GetDocuments" else f"('{lu}')"}), loaded,
                               loaded_uids)
                b = _normalise(ask(name, {key: f"'{tu}'" if name != "GetDocuments" else f"('{tu}')"}), twin, twin_uids)
                if a != b or not a:
                    problems.append(f"{name} {lu} differs from registered twin {tu}" + _first_difference(a, b))
    finally:
        db.dispose()
    return problems


def _first_difference(a: list[bytes], b: list[bytes]) -> str:
    for x, y in zip(a, b):
        if x != y:
            i = next((k for k in range(min(len(x), len(y))) if x[k] != y[k]), min(len(x), len(y)))
            return f": loaded ...{x[max(0, i - 80):i + 80]!r} / registered ...{y[max(0, i - 80):i + 80]!r}"
    return ""


def disk_bytes(url: str) -> int:
    if url.startswith("sqlite"):
        path = Path(url.split("///", 1)[1])
        return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))
    from sqlalchemy import create_engine, text
    engine = create_engine(url)
    with engine.connect() as conn:
        size = conn.execute(text(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "WHERE c.relnamespace = current_schema()::regnamespace AND c.relkind IN ('r', 'm')")).scalar()
    engine.dispose()
    return int(size)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--url", help="registry database URL (migrated and empty); default: a fresh PostgreSQL schema")
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--verify", type=int, default=3, help="patients checked against Registry.register twins")
    ap.add_argument("--keep", action="store_true", help="keep the fresh PostgreSQL schema")
    args = ap.parse_args()
    handle = None
    url = args.url
    if url is None:
        from tests.support.databases import PostgresSchema
        handle = PostgresSchema()
        url = handle.url
    try:
        db = Database(url)
        migrate_registry(db)
        db.dispose()
        report = load(url, args.entries, progress=lambda s: print("#", s, flush=True))
        print(f"loaded {report.entries} entries, {report.patients} patients, {report.submissions} submissions "
              f"in {report.seconds:.1f} s ({report.entries / report.seconds:.0f} entries/s), "
              f"{disk_bytes(url) / 2**20:.0f} MiB; rows {report.rows}")
        problems = verify(url, report, args.verify)
        print("verify:", "identical to Registry.register" if not problems else problems)
        if problems:
            raise SystemExit(1)
    finally:
        if handle is not None and not args.keep:
            handle.close()
        elif handle is not None:
            print("schema kept:", url)


if __name__ == "__main__":
    main()
