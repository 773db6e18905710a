"""The Jinja2 environment of the dashboard's templates (``service/dashboard/templates``).

Autoescaping is on. Helpers available in every template: ``csrf_field(signed_in)`` (the hidden
form field of the session's CSRF token), and the filters ``count`` (1,234,567), ``acc`` (0.9731),
``when`` (2026-12-01 21:04 UTC) and ``kinds`` (a spec's layers as "full×1.0 bilinear×0.5").
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from service.api.results import layer_kinds
from service.dashboard.session import CSRF_FIELD, SignedIn

__all__ = ["TEMPLATES_DIR", "templates"]

TEMPLATES_DIR = Path(__file__).with_name("templates")


def csrf_field(signed_in: SignedIn) -> Markup:
    """``<input type="hidden" name="csrf_token" value="...">`` for a form of this session."""
    return Markup(
        f'<input type="hidden" name="{CSRF_FIELD}" value="{escape(signed_in.csrf_token)}">'
    )


def _count(value: int | None) -> str:
    return "–" if value is None else f"{value:,}"


def _acc(value: float | None) -> str:
    return "–" if value is None else f"{value:.4f}"


def _when(value: datetime | None) -> str:
    return "–" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


templates = Jinja2Templates(directory=TEMPLATES_DIR)
templates.env.globals["csrf_field"] = csrf_field
templates.env.filters["count"] = _count
templates.env.filters["acc"] = _acc
templates.env.filters["when"] = _when
templates.env.filters["kinds"] = layer_kinds
