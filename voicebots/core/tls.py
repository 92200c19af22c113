"""One TLS client context per process, shared by every outgoing HTTP client.

Building a context loads the CA bundle: ~20 ms of CPU. Clients are made per event loop, per call, or per
webhook host on the call's event loop, where those milliseconds stall every other call; a context is
thread-safe and can be shared.
"""
from __future__ import annotations

import ssl

import certifi

CLIENT_CONTEXT = ssl.create_default_context(cafile=certifi.where())  # what httpx builds by default
