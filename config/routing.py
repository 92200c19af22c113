"""WebSocket routes. Each feature adds its consumers here."""
websocket_urlpatterns: list = []
