"""WebSocket routes."""
from django.urls import path

from voicebots.web.consumers import PlaygroundConsumer

websocket_urlpatterns = [
    path("ws/playground/<uuid:bot_id>/", PlaygroundConsumer.as_asgi()),
]
