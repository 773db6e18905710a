"""Wire the dashboard into an app: ``install_dashboard(app)`` (called by ``create_app``)."""

from __future__ import annotations

from fastapi import FastAPI

from service.dashboard import auth, pages, schedules
from service.dashboard.assets import install_assets
from service.dashboard.deps import install_sign_in_redirect

__all__ = ["install_dashboard"]


def install_dashboard(app: FastAPI) -> None:
    """The sign-in pages, the dashboard's pages (schedules too), its static files and plotly.js."""
    install_sign_in_redirect(app)
    install_assets(app)
    app.include_router(auth.router)
    app.include_router(pages.router)
    app.include_router(schedules.router)
