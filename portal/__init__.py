"""The web portal of DMP-XDS (``/portal``): the patient's record in a browser, professional access and
the auditor's desk. Plain server-rendered pages (Jinja2), no JavaScript, no build step.

* :mod:`portal.app`: the WSGI app (routes, security headers, CSRF, sessions);
* :mod:`portal.accounts`: local accounts (scrypt), sessions, login attempt limiting;
* :mod:`portal.oidc`: the pluggable OpenID Connect login (authorization-code flow, PKCE);
* :mod:`portal.records`: documents through the access policy, the actors and the auditor;
* :mod:`portal.cda`: CDA R2 -> safe HTML (allow-list of narrative elements);
* :mod:`portal.i18n`: French (default) and English;
* :mod:`server.commands.portal`: ``xds portal user add``.
"""
