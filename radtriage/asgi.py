"""ASGI entry point: HTTP through Django, websockets through Channels."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

from radtriage import access_log

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "radtriage.settings")
# uvicorn has configured its logging by the time it imports the application.
access_log.install()
# Django must be set up before the consumers' modules import models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from radtriage.body_limits import BodyLimits  # noqa: E402
from worklist.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": BodyLimits(
            django_asgi_app,
            idle_seconds=settings.RADTRIAGE_BODY_IDLE_SECONDS,
            body_seconds=settings.RADTRIAGE_BODY_SECONDS,
            max_bytes=settings.RADTRIAGE_MAX_REQUEST_BYTES,
        ),
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
