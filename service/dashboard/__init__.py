"""The web dashboard: server-rendered pages over the same data the JSON API serves.

- ``session``: sign-in sessions (signed, expiring, HttpOnly cookies) and CSRF tokens; the one
  module other pages reuse (``SignedInDep``, ``csrf_field``, ``check_csrf``).
- ``auth``: the sign-in / sign-out routes.
- ``pages``: jobs, job, trial and compare pages.
- ``assets``: the dashboard's own static files, plotly.js from the plotly package, and offline
  Swagger UI / ReDoc for /docs and /redoc.
- ``templating``: the Jinja2 environment of ``templates/``.

Nothing is imported here, so ``service.api.deps`` can use ``session`` without a cycle;
``service.dashboard.install.install_dashboard(app)`` wires it all into an app.
"""
