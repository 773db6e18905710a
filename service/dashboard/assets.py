"""Static files, all from installed packages (the dashboard works with no internet).

- ``/static/*``: the dashboard's stylesheet and scripts (``service/dashboard/static``).
- ``/assets/plotly.min.js``: plotly.js as shipped inside the plotly wheel (``package_data``).
- ``/docs`` and ``/redoc`` come from fastapi-offline (``service.api.app``), its Swagger UI and
  ReDoc files under ``/assets/docs``.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["STATIC_DIR", "install_assets", "plotly_js"]

STATIC_DIR = Path(__file__).with_name("static")
_CACHE = {"Cache-Control": "public, max-age=86400"}

router = APIRouter(include_in_schema=False)


@lru_cache(maxsize=1)
def plotly_js() -> Path:
    """plotly.min.js inside the installed plotly package (found without importing plotly)."""
    spec = importlib.util.find_spec("plotly")
    locations = list(spec.submodule_search_locations or []) if spec else []
    for location in locations:
        path = Path(location) / "package_data" / "plotly.min.js"
        if path.is_file():
            return path
    raise RuntimeError(
        "plotly.min.js is not in the installed plotly package; reinstall it (pip install plotly)"
    )


@router.get("/assets/plotly.min.js")
def plotly() -> FileResponse:
    """plotly.js from the plotly wheel."""
    return FileResponse(plotly_js(), media_type="text/javascript", headers=_CACHE)


def install_assets(app: FastAPI) -> None:
    """Mount /static and route /assets/plotly.min.js."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="dashboard-static")
    app.include_router(router)
