import atexit
import os
import threading

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402  (needs Django set up)
from channels.auth import AuthMiddlewareStack  # noqa: E402

from config import http_limits  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402
from voicebots.providers.silero_vad import shared_detector  # noqa: E402
from voicebots.vendors.registry import load_adapters  # noqa: E402

# The SDKs of the vendors this server has keys for load before the process serves (not in commands, which never
# need them), so that no chat's or call's first second is spent importing one.
load_adapters()

# The voice detector's model loads now, in the background, rather than during the first call's start.
_vad_loader = threading.Thread(target=shared_detector, name="silero-vad-load", daemon=True)
_vad_loader.start()
# A process that exits while onnxruntime is still loading the model in that thread is aborted by the C++
# runtime ("terminate called without an active exception"): a stop right after the start waits for it.
atexit.register(_vad_loader.join, 10)

# Daphne answers oversized URLs and headers with 414/431 instead of dropping the connection.
http_limits.install()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
    }
)
