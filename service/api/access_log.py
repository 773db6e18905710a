"""Keys never reach the access log: query values that could be secrets are replaced by ``***``.

uvicorn logs each request's path with its query string (logger ``uvicorn.access``, arguments
``(client, method, path, http_version, status)``). ``RedactSecrets`` rewrites that path before any
handler formats it: values of parameters named like a secret (``api_key``, ``token``, ...; see
``service.api.guards.SECRET_QUERY_NAMES``) and any value that looks like one of our keys
(``pnas_...``). Such requests are refused anyway (401 key-in-url); this keeps them out of the log.
"""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl, urlencode

from service.api.guards import SECRET_QUERY_NAMES
from service.keys import KEY_PREFIX

__all__ = ["RedactSecrets", "install_access_log_redaction", "redact_target"]

_ACCESS_LOGGER = "uvicorn.access"


def redact_target(target: str) -> str:
    """``target`` (path?query) with secret-looking query values replaced by ``***``."""
    path, sep, query = target.partition("?")
    if not sep:
        return target
    pairs = parse_qsl(query, keep_blank_values=True)
    if not any(_secret(name, value) for name, value in pairs):
        return target
    safe = [(name, "***" if _secret(name, value) else value) for name, value in pairs]
    return f"{path}?{urlencode(safe, safe='*')}"


def _secret(name: str, value: str) -> bool:
    return name.lower() in SECRET_QUERY_NAMES or KEY_PREFIX in value


class RedactSecrets(logging.Filter):
    """A filter for ``uvicorn.access`` records (see the module doc)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) >= 3 and isinstance(args[2], str):
            record.args = (*args[:2], redact_target(args[2]), *args[3:])
        return True


def install_access_log_redaction() -> None:
    """Add ``RedactSecrets`` to uvicorn's access logger once per process."""
    logger = logging.getLogger(_ACCESS_LOGGER)
    if not any(isinstance(f, RedactSecrets) for f in logger.filters):
        logger.addFilter(RedactSecrets())
