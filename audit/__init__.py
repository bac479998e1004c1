"""ATNA (IHE ITI-20, DICOM PS3.15 A.5): audit records, their transport, the Audit Record
Repository and its review.

Modules, each named for what it holds:

* :mod:`audit.messages`: the AuditMessage model and one builder per transaction (ITI-18/41/42/43),
  Application Start/Stop, Security Alert;
* :mod:`audit.auditor`: what the actors call, ``services.auditor.record(event)`` and
  ``services.auditor.security_alert(caller, description, ...)``; hands events to a writer thread
  that batches them into the outbox in their compact form;
* :mod:`audit.compact`: that form (JSON of the event) and the RFC 5424 message the audit
  process writes from it;
* :mod:`transactions.edges`: wrappers of the SOAP handlers that build the Caller and record each call;
* :mod:`audit.syslog`: RFC 5424 messages, RFC 5425 octet counting;
* :mod:`audit.store`: outbox, delivery cursors, the hash-chained record store, searches, verify;
* :mod:`audit.fields`: what the ARR indexes from a received message (with truncation repair);
* :mod:`audit.sender`: delivery to the local store and to external ARRs over TLS and UDP;
* :mod:`audit.arr`: the built-in ARR's UDP and TLS listeners;
* :mod:`audit.daemon`: the one audit process per server (sender + listeners, below the workers'
  priority) and ``xds arr``;
* :mod:`audit.fhir`: ITI-81's search and DICOM -> FHIR R4 mapping (who may read and the audit of
  each read: :mod:`transactions.iti81`; the HTTP door: :mod:`bindings.fhir_audit`);
* :mod:`audit.history`: ``access_history(database, patient_id)`` for the patient's portal;
* :mod:`server.commands.audit`: ``xds audit verify|search`` and ``xds arr``.
"""
