"""What every transaction module works with: one worker's actors, policy and auditor, typed.

Built once per worker process by the composition root (:func:`server.app.build_services`) and
handed to every door (SOAP bindings, portal, JSON API); nothing here is looked up by name.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from access.policy import AccessPolicy
from audit.auditor import AuditorLike
from config import Settings
from registry.register import Registry
from repository.transactions import Repository
from storage import Database
from xds.context import Caller

log = logging.getLogger("transactions")

Authenticate = Callable[[Caller], None]
"""Fills the Caller from what the transport received (an XUA assertion) or raises the
transport's refusal (a SoapFault); a door that already knows its caller (a portal session)
passes :func:`already_authenticated`."""


def already_authenticated(caller: Caller) -> None:
    """The caller was identified before the transaction (portal session, API token)."""


@dataclass
class Services:
    """Everything one worker process holds: engines, actors, the policy and the auditor."""
    settings: Settings
    database: Database
    registry: Registry
    repository: Repository
    policy: AccessPolicy
    auditor: AuditorLike

    def close(self) -> None:
        self.auditor.close()
        self.database.dispose()


def safely(record: Callable[..., None], *args: object) -> None:
    """Hand one record to the auditor; an error here is logged, never the caller's problem (an
    audit failure must not fail a transaction: ITI TF-2 3.20.4.1.1 leaves delivery to the
    node)."""
    try:
        record(*args)
    except Exception:  # noqa: BLE001 - auditing never fails a transaction
        log.exception("audit: could not record an event")
