"""XML namespaces and well-known URIs used by the SOAP 1.2 transport."""

NS_SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
NS_SOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
NS_WSA = "http://www.w3.org/2005/08/addressing"
NS_XOP = "http://www.w3.org/2004/08/xop/include"
NS_XMIME = "http://www.w3.org/2005/05/xmlmime"
NS_XML = "http://www.w3.org/XML/1998/namespace"
NS_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
NS_WSDL_SOAP12 = "http://schemas.xmlsoap.org/wsdl/soap12/"

WSA_ANONYMOUS = NS_WSA + "/anonymous"
WSA_NONE = NS_WSA + "/none"
WSA_FAULT_ACTION = NS_WSA + "/soap/fault"

SOAP12_ROLE_NEXT = NS_SOAP12 + "/role/next"
SOAP12_ROLE_ULTIMATE_RECEIVER = NS_SOAP12 + "/role/ultimateReceiver"


def qname(ns: str, local: str) -> str:
    """Clark notation: ``{ns}local``."""
    return f"{{{ns}}}{local}"


def split_qname(clark: str) -> tuple[str | None, str]:
    """``{ns}local`` -> (ns, local); ``local`` -> (None, local)."""
    if clark.startswith("{"):
        ns, _, local = clark[1:].partition("}")
        return ns, local
    return None, clark
