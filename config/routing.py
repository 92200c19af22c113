"""WebSocket routes."""
from django.urls import path, re_path

from voicebots.telephony.consumer import PlivoStreamConsumer
from voicebots.web.consumers import PlaygroundConsumer

websocket_urlpatterns = [
    path("ws/playground/<uuid:bot_id>/", PlaygroundConsumer.as_asgi()),
    re_path(r"^v1/Account/(?P<auth_id>[^/]+)/Voicebot/(?P<bot_id>[^/]+)/connect/?$", PlivoStreamConsumer.as_asgi()),
]
