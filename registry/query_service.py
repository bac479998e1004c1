"""SOAP binding of ITI-18 Registry Stored Query on ``/registry`` (ITI TF-2 3.18.4.1.2, 3.18.4.1.3).

Transport only: read ``query:AdhocQueryRequest`` into (query id, parameters, returnType), run it
with :func:`registry.query.run_stored_query`, write ``query:AdhocQueryResponse``.
"""
from __future__ import annotations

from lxml import etree

from xds.responses import error_list_element
from xds.soap import Operation, SoapRequest, SoapResponse
from xds.vocabulary import Actions, NS_QUERY, NS_RIM, NS_RS, q

from .query import QueryResult, run_stored_query


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


def response_element(result: QueryResult) -> etree._Element:
    root = etree.Element(q(NS_QUERY, "AdhocQueryResponse"), nsmap={"query": NS_QUERY, "rs": NS_RS, "rim": NS_RIM},
                         status=result.status)
    error_list_element(result.errors, root)
    object_list = etree.SubElement(root, q(NS_RIM, "RegistryObjectList"))
    for el in result.objects:
        object_list.append(el)
    return root


def query_handler(services):
    def handle(request: SoapRequest) -> SoapResponse:
        query_id, params, return_type = read_request(request.body)
        access = getattr(services, "access", None)
        # the replay check of the caller's assertion is done with the first read of the record
        caller = access.identify(request, defer_replay=True) if access is not None else None
        if access is None or not access.is_dmp:
            if access is not None:
                access.settle(caller)
            result = run_stored_query(services.database, query_id, params, return_type, services.settings)
            return SoapResponse(body=response_element(result), action=Actions.STORED_QUERY_RESPONSE)
        decisions: dict = {}
        # one connection for the policy's reads and the query: a checkout is a cost of its own
        with services.database.quick_read() as conn:
            result = record = None
            carried = access.record_expression(caller, query_id, params, conn)
            if carried is not None:  # FindDocuments reads the patient's record in its own statement
                result = run_stored_query(conn, query_id, params, return_type, services.settings,
                                          entry_facts=True, also=carried)
                record = access.record_of_value(params, result.also)
            refused = access.check_query(caller, params, decisions, conn, record)
            if refused is not None:
                result = QueryResult(errors=refused, return_type=return_type)
            else:
                if result is None:
                    result = run_stored_query(conn, query_id, params, return_type, services.settings,
                                              entry_facts=True)
                if result.ok:
                    access.filter_query(caller, result, decisions, conn)
        return SoapResponse(body=response_element(result), action=Actions.STORED_QUERY_RESPONSE)
    return handle


def query_operations(services) -> list[Operation]:
    handler = query_handler(services)
    auditor = getattr(services, "auditor", None)
    if auditor is not None:
        from audit.edges import audited_query
        handler = audited_query(handler, auditor)
    return [Operation(action=Actions.STORED_QUERY, body=q(NS_QUERY, "AdhocQueryRequest"), handler=handler)]
