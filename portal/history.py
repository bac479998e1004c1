"""The patient's access history in words (issue 23): who, what, when, from the audit trail.

:func:`audit.history.history_page` reads the records naming the patient; this module says each one
as a sentence a patient understands, in her language: the person (name, profession, organisation
from the audit record's human requestor, DICOM PS3.15 A.5.1 ActiveParticipant), or "a health
system" and its host name when no person is named (never a bare IP address); the transaction in
words (ITI-18 a search, ITI-43 a download naming the document, ITI-41/42 an addition, DICOM 110127
an emergency access with the reason the professional gave); the time in the portal's zone.

A document is named only when the patient may see it (:meth:`access.policy.Decision.sees`): the
history must not reveal the title of a document kept from her (INVISIBLE_PATIENT).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from audit.history import HistoryEntry
from portal.dates import Clock
from registry.facts import DocumentLabel

PROFESSIONS = {"10": "Médecin", "21": "Pharmacien", "26": "Audioprothésiste", "28": "Opticien-lunetier",
               "40": "Chirurgien-dentiste", "50": "Sage-femme", "60": "Infirmier", "69": "Infirmier psychiatrique",
               "70": "Masseur-kinésithérapeute", "80": "Pédicure-podologue", "81": "Orthoprothésiste",
               "82": "Podo-orthésiste", "83": "Orthopédiste-orthésiste", "84": "Oculariste", "85": "Épithésiste",
               "86": "Technicien de laboratoire médical", "91": "Orthophoniste", "92": "Orthoptiste",
               "94": "Ergothérapeute", "95": "Diététicien", "96": "Psychomotricien",
               "98": "Manipulateur ERM"}
"""Professions of the RPPS (ANS nomenclature TRE_G15 ProfessionSante): an XUA role code as a word."""


@dataclass
class HistoryRow:
    seq: int
    when: str
    who: str
    person_id: str | None
    profession: str
    organization: str
    what: str
    emergency: bool
    failed: bool
    own: bool


def profession(entry: HistoryEntry, _: Callable[[str], str]) -> str:
    if entry.role_code == "PATIENT":
        return _("Patient")
    if entry.role_code in PROFESSIONS:
        return PROFESSIONS[entry.role_code]
    text = entry.role_text or ""
    return text if text and text != entry.role_code else ""


def _document(label: DocumentLabel | None, clock: Clock, _: Callable[[str], str]) -> str:
    if label is None:
        return ""
    title = label.title or _("untitled document")
    return _("the document “{title}” of {date}").format(title=title, date=clock.dtm(label.creation_time)[:10]) \
        if label.creation_time else _("the document “{title}”").format(title=title)


def what(entry: HistoryEntry, labels: dict[str, DocumentLabel], clock: Clock, _: Callable[[str], str]) -> str:
    """The sentence of one record (after the person's name)."""
    named = [labels[u] for u in entry.documents if u in labels]
    if entry.kind == "search":
        text = _("searched your record")
    elif entry.kind == "retrieve":
        text = _("downloaded {document}").format(document=_document(named[0], clock, _)) if named \
            else _("downloaded a document")
    elif entry.kind == "add":
        text = _("added {document}").format(document=_document(named[0], clock, _)) if named \
            else _("added a document")
    elif entry.kind == "emergency":
        text = _("emergency access: {reason}").format(reason=entry.reason) if entry.reason \
            else _("emergency access")
    elif entry.kind == "refused":
        return _("was refused access to your record")
    elif entry.kind == "trail":
        text = _("read the access history of your record")
    elif entry.kind == "record":
        text = _("read who may access your record")
    elif entry.kind == "policy":
        text = _("changed who may access your record")
    elif entry.kind == "login":
        text = _("logged in")
    else:
        text = _("technical operation on your record")
    return text


def rows(entries: list[HistoryEntry], labels: dict[str, DocumentLabel], clock: Clock,
         _: Callable[[str], str]) -> list[HistoryRow]:
    out: list[HistoryRow] = []
    for e in entries:
        if e.own:
            who = _("You")
        elif e.person_id:
            who = e.person_name or e.person_id
        else:
            who = _("a health system") + (f" ({e.system})" if e.system else "")
        row = HistoryRow(e.seq, clock.instant(e.time), who, e.person_id if not e.own else None,
                         profession(e, _) if e.person_id and not e.own else "",
                         (e.organization or "") if not e.own else "", what(e, labels, clock, _), e.emergency,
                         e.outcome not in (None, 0), e.own)
        last = out[-1] if out else None
        if last is not None and (last.when, last.who, last.what, last.emergency, last.failed) == \
                (row.when, row.who, row.what, row.emergency, row.failed):
            continue  # one page view is several queries (the list, then its page's documents): told once
        if last is not None and last.failed and row.failed and (last.when, last.who) == (row.when, row.who):
            continue  # a refused query and the policy's alert about it: one refusal
        out.append(row)
    return out
