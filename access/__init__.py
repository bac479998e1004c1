"""Security and the DMP's patient-controlled access: the policy layer, below the transactions.

* :mod:`access.policy`: the one module that decides who reads, submits, amends and files (rules
  in its docstring);
* :mod:`access.xua`: XUA (ITI-40) SAML 2.0 assertions: verification and test issuing;
* :mod:`access.store`: the patient's decisions (own tables, own Alembic version table);
* :mod:`access.wiring`: building one worker's policy.

Its doors are elsewhere: the JSON API in :mod:`bindings.policy_api`, ``xds dmp ...`` and ``xds
xua issue`` in :mod:`server.commands.access`, the operations themselves in
:mod:`transactions.policy_admin`.
"""
