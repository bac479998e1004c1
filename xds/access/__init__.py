"""Security and the DMP's patient-controlled access.

* :mod:`xds.access.policy`: the one module that decides (rules in its docstring);
* :mod:`xds.access.xua`: XUA (ITI-40) SAML 2.0 assertions: verification and test issuing;
* :mod:`xds.access.store`: the patient's decisions (own tables, own Alembic version table);
* :mod:`xds.access.api`: the JSON HTTP API (``/dmp/api``) the portal uses;
* :mod:`xds.access.commands`: ``xds dmp ...`` and ``xds xua issue``.
"""
