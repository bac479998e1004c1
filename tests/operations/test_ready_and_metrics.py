"""``/ready``, ``/metrics`` and the request id of the in-process application, on SQLite and PostgreSQL
(issue 19, operations)."""
from __future__ import annotations

import dataclasses
import io
import json
import logging
import re

import pytest

from audit import store as audit_store
from repository import index as repository_index
from repository.index import DocumentIndex
from repository.store import ContentRef
from server.cli import configure_logging
from storage.database import Database
from tests.operations.support import call, make_app
from tests.repository.support import REPOSITORY_UID, call_wsgi, provide_request, retrieve_request, submission
from tests.support.databases import BACKENDS, database_url
from tests.support.metadata import fresh_patient

TOKEN = "metrics-token-5d1e"


@pytest.fixture(params=BACKENDS)
def app(request, tmp_path):
    url, handle = database_url(request.param, tmp_path)
    application = make_app(url, tmp_path / "data", check_patient_ids=False)
    yield application
    application.close()
    if handle is not None:
        handle.close()


def sample(text: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = "^" + re.escape(name + ("{" + wanted + "}" if labels else "")) + r" (\S+)$"
    found = re.search(pattern, text, re.M)
    assert found, f"{name} {labels} not in\n{text}"
    return float(found.group(1))


# ----------------------------------------------------------------------------- /ready

def test_ready_answers_200_once_every_schema_is_current_and_the_database_answers(app):
    answer = call(app, "/ready")
    assert answer.status == 200
    body = json.loads(answer.body)
    assert body["ready"] is True and body["database"] == "ok"
    assert set(body["schemas"]) == {"registry", "repository", "audit", "access", "portal"}
    assert call(app, "/health").status == 200


def test_ready_answers_503_naming_a_schema_behind_this_code(app):
    database = app.services.database
    database.downgrade("-1", repository_index.MIGRATIONS)
    answer = call(app, "/ready")
    assert answer.status == 503
    body = json.loads(answer.body)
    assert body["ready"] is False and body["schemas"]["repository"].startswith("at ")
    database.migrate(repository_index.MIGRATIONS)
    assert call(app, "/ready").status == 200


def test_ready_answers_503_when_the_database_does_not_answer(app, tmp_path):
    bad = "sqlite:///" + str(tmp_path / "missing" / "dir" / "x.db") if app.services.database.is_sqlite else \
        "postgresql+psycopg://postgres@127.0.0.1:1/none"
    gone = Database(bad)
    try:
        app.services = dataclasses.replace(app.services, database=gone)
        answer = call(app, "/ready")
    finally:
        gone.dispose()
    assert answer.status == 503
    assert json.loads(answer.body)["database"].startswith("unavailable")


# ----------------------------------------------------------------------------- /metrics

def test_metrics_count_each_transaction_by_outcome_with_its_latency(app):
    patient = fresh_patient()
    sub = submission([b"<doc>metrics</doc>"], patient=patient)
    assert call_wsgi(app, *provide_request(sub)).status == 200
    reply = call_wsgi(app, *retrieve_request([(REPOSITORY_UID, sub.docs[0].unique_id)]))
    assert reply.status == 200
    missing = call_wsgi(app, *retrieve_request([(REPOSITORY_UID, "1.2.3.4.5.404")]))
    assert missing.status == 200
    assert call(app, "/registry", "POST", b"<not-soap", "application/soap+xml").status >= 400
    text = call(app, "/metrics").body.decode()
    assert sample(text, "xds_requests_total", transaction="ITI-41", outcome="success") == 1
    assert sample(text, "xds_requests_total", transaction="ITI-43", outcome="success") == 1
    assert sample(text, "xds_requests_total", transaction="ITI-43", outcome="failure") == 1
    assert sample(text, "xds_requests_total", transaction="registry", outcome="client_error") == 1
    assert sample(text, "xds_requests_total", transaction="ITI-18", outcome="success") == 0
    assert sample(text, "xds_request_duration_seconds_count", transaction="ITI-43") == 2
    assert sample(text, "xds_request_duration_seconds_bucket", transaction="ITI-43", le="+Inf") == 2
    assert sample(text, "xds_request_duration_seconds_sum", transaction="ITI-43") > 0
    buckets = [float(v) for v in re.findall(r'bucket\{transaction="ITI-41",le="[^"]+"\} (\S+)', text)]
    assert buckets == sorted(buckets) and buckets[-1] == 1, "cumulative buckets"
    assert "# TYPE xds_request_duration_seconds histogram" in text


def test_metrics_report_the_audit_backlog_and_lag_and_pending_submissions(app):
    database = app.services.database
    text = call(app, "/metrics").body.decode()
    assert sample(text, "xds_repository_pending_submissions") == 0
    assert sample(text, "xds_database_up") == 1
    audit_store.enqueue(database, [b"<14>1 - - - - - - queued"])
    DocumentIndex(database).insert_pending("1.2.3.999.1", ContentRef("a" * 64, "b" * 40, 3), "text/plain", "txn-1")
    text = call(app, "/metrics").body.decode()
    assert sample(text, "xds_repository_pending_submissions") == 1
    assert sample(text, "xds_repository_pending_oldest_seconds") >= 0
    assert sample(text, "xds_audit_backlog") >= 1
    assert sample(text, "xds_audit_outbox_rows") >= 1
    assert sample(text, "xds_audit_lag_seconds") >= 0


def test_metrics_are_refused_off_loopback_and_to_relayed_requests_without_a_token(app):
    assert call(app, "/metrics", remote_addr="10.1.2.3").status == 403
    assert call(app, "/metrics", headers={"X-Forwarded-For": "203.0.113.9"}).status == 403
    answer = call(app, "/metrics", remote_addr="::1")
    assert answer.status == 200 and answer.headers["content-type"].startswith("text/plain; version=0.0.4")


def test_metrics_with_a_token_require_it_from_everywhere(app):
    app.services.settings.metrics_token = TOKEN
    assert call(app, "/metrics").status == 401
    wrong = call(app, "/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
    assert call(app, "/metrics", remote_addr="10.1.2.3", headers={"Authorization": f"Bearer {TOKEN}"}).status == 200


# ----------------------------------------------------------------------------- request id

@pytest.fixture
def log_output():
    out = io.StringIO()
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    yield out
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])


def test_a_well_formed_request_id_is_returned_and_named_in_every_log_line_of_the_request(app, log_output):
    configure_logging(log_output)
    answer = call(app, "/registry", "POST", b"<not-soap", "application/soap+xml",
                  headers={"X-Request-ID": "lb-7f3a.42"})
    assert answer.headers["x-request-id"] == "lb-7f3a.42"
    lines = [line for line in log_output.getvalue().splitlines() if "security alert" in line]
    assert lines and all("[lb-7f3a.42]" in line for line in lines), log_output.getvalue()
    logging.getLogger("after").info("outside any request")
    assert "[-]: outside any request" in log_output.getvalue()


@pytest.mark.parametrize("given", ["bad\nid", "x" * 129, "id with spaces", "é"])
def test_a_malformed_request_id_is_replaced_by_a_generated_one(app, given):
    answer = call(app, "/health", headers={"X-Request-ID": given})
    assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["x-request-id"])


def test_each_request_without_an_id_gets_its_own(app):
    ids = {call(app, "/health").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3


def test_json_log_format_writes_one_object_per_line_with_the_request_id(app, log_output):
    configure_logging(log_output, log_format="json")
    call(app, "/registry", "POST", b"<not-soap", "application/soap+xml", headers={"X-Request-ID": "req-1"})
    logging.getLogger("registry").warning("value %s", "a\nforged line")
    records = [json.loads(line) for line in log_output.getvalue().splitlines()]
    alerts = [r for r in records if "security alert" in r["message"]]
    assert alerts and all(r["request_id"] == "req-1" and r["level"] == "INFO" for r in alerts)
    assert records[-1]["message"] == "value a\nforged line" and "request_id" not in records[-1]
