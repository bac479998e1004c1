"""ebRS 3.0 response bodies: ``rs:RegistryResponse`` and its ``RegistryErrorList`` (TF-3 4.2.4)."""
from __future__ import annotations

from lxml import etree

from xds.errors import ErrorList
from xds.vocabulary import NS_RS, ResponseStatus, Severity, q


def response_status(errors: ErrorList, partial: bool = False) -> str:
    if errors.has_errors:
        return ResponseStatus.PARTIAL_SUCCESS if partial else ResponseStatus.FAILURE
    return ResponseStatus.SUCCESS


def error_list_element(errors: ErrorList, parent: etree._Element) -> etree._Element | None:
    """Append ``rs:RegistryErrorList`` with ``highestSeverity`` when there is anything to say."""
    if not errors:
        return None
    el = etree.SubElement(parent, q(NS_RS, "RegistryErrorList"),
                          highestSeverity=Severity.ERROR if errors.has_errors else Severity.WARNING)
    for e in errors:
        err = etree.SubElement(el, q(NS_RS, "RegistryError"), errorCode=e.code, codeContext=e.context,
                               severity=e.severity)
        if e.location:
            err.set("location", e.location)
    return el


def registry_response(errors: ErrorList, partial: bool = False) -> etree._Element:
    root = etree.Element(q(NS_RS, "RegistryResponse"), nsmap={"rs": NS_RS},
                         status=response_status(errors, partial))
    error_list_element(errors, root)
    return root
