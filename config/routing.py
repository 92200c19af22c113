"""WebSocket routes.

The browser pages' sockets authenticate with the session cookie, which a browser also sends to sockets opened by
other sites' pages: those routes take only connections whose Origin is one of ALLOWED_HOSTS. Plivo's stream
sends no Origin; its token is its authentication.
"""
from channels.security.websocket import AllowedHostsOriginValidator
from django.urls import path, re_path

from voicebots.telephony.consumer import PlivoStreamConsumer
from voicebots.web.consumers import PlaygroundConsumer
from voicebots.web.voice_consumer import BrowserCallConsumer

websocket_urlpatterns = [
    path("ws/playground/<uuid:bot_id>/", AllowedHostsOriginValidator(PlaygroundConsumer.as_asgi())),
    path("ws/voice/<uuid:bot_id>/", AllowedHostsOriginValidator(BrowserCallConsumer.as_asgi())),
    re_path(r"^v1/Account/(?P<auth_id>[^/]+)/Voicebot/(?P<bot_id>[^/]+)/connect/?$", PlivoStreamConsumer.as_asgi()),
]
