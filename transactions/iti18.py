"""ITI-18 Registry Stored Query: the one door of every query (SOAP, portal, later FHIR ITI-67).

Identify the caller, ask the policy (a refused patient is answered with an error, the objects
the caller may not see are dropped from the answer), run the query, audit it (Query 110112, E,
ITI TF-2 3.18.5.1.1), whatever the outcome.
"""
from __future__ import annotations

from lxml import etree

from access.policy import Decision
from audit.messages import MAJOR_FAILURE, outcome_of_status
from registry.query import QueryResult, run_stored_query
from transactions.services import Authenticate, Services, safely
from xds.context import Caller
from xds.vocabulary import NS_QUERY, NS_RIM, q


def read_request(body: etree._Element) -> tuple[str, dict[str, list[list[str]]], str]:
    """(query id, {parameter: one list of Value texts per Slot}, returnType) of an AdhocQueryRequest."""
    option = body.find(q(NS_QUERY, "ResponseOption"))
    return_type = option.get("returnType", "") if option is not None else ""
    query = body.find(q(NS_RIM, "AdhocQuery"))
    query_id = query.get("id", "") if query is not None else ""
    params: dict[str, list[list[str]]] = {}
    if query is not None:
        for slot in query.iterchildren(q(NS_RIM, "Slot")):
            values = [v.text or "" for v in slot.iterfind(f"{q(NS_RIM, 'ValueList')}/{q(NS_RIM, 'Value')}")]
            params.setdefault(slot.get("name", ""), []).append(values)
    return query_id, params, return_type


def stored_query(services: Services, caller: Caller, authenticate: Authenticate,
                 request: etree._Element) -> QueryResult:
    """Answer one AdhocQueryRequest for ``caller``; the audit record is written in every case
    (a refusal raised by ``authenticate`` included, outcome 12)."""
    outcome = MAJOR_FAILURE
    try:
        authenticate(caller)
        result = _answer(services, caller, *read_request(request))
        outcome = outcome_of_status(result.status)
        return result
    finally:
        safely(services.auditor.record_facts, "iti18", caller, outcome, etree.tostring(request, encoding="UTF-8"),
               None)


def _answer(services: Services, caller: Caller, query_id: str, params: dict[str, list[list[str]]],
            return_type: str) -> QueryResult:
    policy = services.policy
    if not policy.is_dmp:
        policy.settle(caller)
        return run_stored_query(services.database, query_id, params, return_type, services.settings)
    decisions: dict[str, Decision] = {}
    # one connection for the policy's reads and the query: a checkout is a cost of its own
    with services.database.quick_read() as conn:
        result = record = None
        carried = policy.record_expression(caller, query_id, params, conn)
        if carried is not None:  # FindDocuments reads the patient's record in its own statement
            result = run_stored_query(conn, query_id, params, return_type, services.settings,
                                      entry_facts=True, also=carried)
            record = policy.record_of_value(params, result.also)
        refused = policy.check_query(caller, params, decisions, conn, record)
        if refused is not None:
            return QueryResult(errors=refused, return_type=return_type)
        if result is None:
            params = policy.conceal(caller, params, conn, decisions)
            result = run_stored_query(conn, query_id, params, return_type, services.settings, entry_facts=True)
        if result.ok:
            policy.filter_query(caller, result, decisions, conn)
    return result
