"""The NIST XDS.b repository schema from ../shared, loaded once (DESIGN.md section 7)."""
from __future__ import annotations

from functools import lru_cache

from lxml import etree

from tests.conftest import shared_path


@lru_cache(maxsize=1)
def _schema(path: str) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(path))


def assert_valid(element: etree._Element) -> None:
    """Validate an ITI-41/43 body element (or an rs:RegistryResponse) against XDS.b_DocumentRepository.xsd."""
    schema = _schema(str(shared_path("schemas", "nist-v3", "XDS.b_DocumentRepository.xsd")))
    doc = etree.fromstring(etree.tostring(element))
    # XOP: the schema sees the reconstructed infoset, where an xop:Include stands for base64 text
    for inc in list(doc.iter("{http://www.w3.org/2004/08/xop/include}Include")):
        parent = inc.getparent()
        parent.remove(inc)
        parent.text = "AAAA"
    if not schema.validate(doc):
        raise AssertionError(f"{doc.tag} is not valid: {schema.error_log}")
