"""What can go wrong on the client side, each with the exit code the ``xds`` commands return.

0 success, 1 XDS failure (the registry or repository refused), 2 usage or input error (nothing
was sent), 3 transport error (server down, TLS, not a SOAP answer).
"""
from __future__ import annotations

from dataclasses import dataclass


class XdsClientError(Exception):
    exit_code = 1


class InputError(XdsClientError):
    """The input cannot become a valid message: nothing was sent."""
    exit_code = 2


class MissingMetadata(InputError):
    def __init__(self, source: str, fields: list[str], note: str = "") -> None:
        self.source = source
        self.fields = list(fields)
        tail = f"; {note}" if note else ""
        super().__init__(f"{source}: missing mandatory metadata: {', '.join(self.fields)}{tail}")


class PatientMismatch(InputError):
    """``--patient`` names another patient than the CDA header: filing it there is a patient-safety error."""

    def __init__(self, source: str, flag: str, header: list[str]) -> None:
        self.source = source
        self.flag = flag
        self.header = list(header)
        super().__init__(
            f"{source}: --patient {flag} is not the patient of the CDA header ({', '.join(self.header)}; "
            "compared on CX.1 and the assigning authority): nothing sent. Give the header's patient, or "
            "--override-patient to file it under --patient with the header's patient as sourcePatientId")


class TransportError(XdsClientError):
    """The server could not be reached or did not answer in SOAP."""
    exit_code = 3


class SoapFaultError(XdsClientError):
    """The server answered with a SOAP fault (it refused the message itself)."""

    def __init__(self, code: str, reason: str) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"SOAP fault {code}: {reason}")


@dataclass
class RegistryErrorItem:
    code: str
    context: str
    location: str = ""
    severity: str = ""

    @property
    def is_warning(self) -> bool:
        return self.severity.endswith(":Warning")

    def __str__(self) -> str:
        where = f" [{self.location}]" if self.location else ""
        kind = "warning" if self.is_warning else "error"
        return f"{kind} {self.code}: {self.context}{where}"


class XdsFailure(XdsClientError):
    """A RegistryResponse with status Failure (or PartialSuccess): the errors as the server gave them."""

    def __init__(self, status: str, errors: list[RegistryErrorItem]) -> None:
        self.status = status
        self.errors = errors
        lines = "\n  ".join(str(e) for e in errors) or "(no RegistryError given)"
        super().__init__(f"{status.rsplit(':', 1)[-1]}:\n  {lines}")
