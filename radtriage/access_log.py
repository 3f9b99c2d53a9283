"""Access logs without PHI: no query strings, no DICOM UIDs in paths.

uvicorn logs each request's path with its query string (``/dicomweb/studies
?PatientID=...`` is PHI) and each websocket's path alike. A filter on its
loggers rewrites the path argument before any handler sees it: whatever
handlers and formats a deployment configures, the query string and the UIDs
inside paths (``/dicomweb/studies/1.2.840...``) never reach them. The filter
sits on the loggers themselves, which ``logging.config.dictConfig`` leaves in
place when it reconfigures handlers, so it holds under ``./run web``, the
embedded ``serve`` and a plain ``uvicorn radtriage.asgi:application``.
"""

from __future__ import annotations

import logging
import re

#: Loggers that print request paths: uvicorn's access log and its error log's
#: websocket lines, and Django's warnings about 4xx answers ("Not Found: /...").
LOGGERS = ("uvicorn.access", "uvicorn.error", "django.request")
UID_PLACEHOLDER = ":uid"

# A DICOM UID: dot-separated numbers, at least three components.
_UID_SEGMENT = re.compile(r"^[0-9]+(\.[0-9]+){2,}$")
_PATH_IN_TEXT = re.compile(r"(/[^\s\"?]*)\?[^\s\"]*")


def redact_path(path: str) -> str:
    """``path`` without its query string, DICOM UIDs replaced by ``:uid``."""
    bare = path.split("?", 1)[0]
    return "/".join(
        UID_PLACEHOLDER if _UID_SEGMENT.match(part) else part
        for part in bare.split("/")
    )


class RedactPaths(logging.Filter):
    """Rewrites request paths in a record's arguments (or its text) in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                redact_path(arg) if isinstance(arg, str) and arg[:1] == "/" else arg
                for arg in record.args
            )
        elif isinstance(record.msg, str) and "?" in record.msg:
            record.msg = _PATH_IN_TEXT.sub(lambda m: redact_path(m[1]), record.msg)
        return True


def install() -> None:
    """Put the filter on uvicorn's loggers (once; safe to call again)."""
    for name in LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactPaths) for f in logger.filters):
            logger.addFilter(RedactPaths())
