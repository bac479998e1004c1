"""Security and the DMP's patient-controlled access.

* :mod:`access.policy`: the one module that decides (rules in its docstring);
* :mod:`access.xua`: XUA (ITI-40) SAML 2.0 assertions: verification and test issuing;
* :mod:`access.store`: the patient's decisions (own tables, own Alembic version table);
* :mod:`bindings.policy_api`: the JSON HTTP API (``/dmp/api``) the portal uses;
* :mod:`server.commands.access`: ``xds dmp ...`` and ``xds xua issue``.
"""
