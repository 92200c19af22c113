"""The environment's settings, checked when a process starts.

A typo in a variable should stop `make run`, a web process or a worker at once with a message naming the
variable and what it takes, not fail every call later (a `DEEPGRAM_BASE_URL=ws://...` used to make each call
fail with "isn't a valid URI"). `check(os.environ)` lists every problem; settings.py raises them together.

Only formats are checked here (numbers, booleans, URLs); which vendors and keys a deployment needs is the vendors'
own check, and rates (API_RATE_LIMIT_*) are parsed by core/rates.py. An empty value counts as unset, as in
`.env.example`.
"""
from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off"}

BOOLEANS = (
    "DEBUG", "TRUST_PROXY_HEADERS", "DB_POOL", "CELERY_TASK_ALWAYS_EAGER", "PLIVO_VERIFY_SIGNATURES",
    "FUNCTION_ALLOW_HTTP", "FUNCTION_ALLOW_PRIVATE_ADDRESSES", "EMBEDDING_SEND_DIMENSIONS",
    "SECURE_SSL_REDIRECT", "SESSION_COOKIE_SECURE", "CSRF_COOKIE_SECURE", "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD", "WEBHOOK_ALLOW_HTTP", "WEBHOOK_ALLOW_PRIVATE_ADDRESSES",
)
# name: (lowest, highest or None)
INTEGERS = {
    "PORT": (1, 65535),
    "WEB_PROCESSES": (1, 256),
    "DB_POOL_MAX_SIZE": (1, 1000),
    "DB_CONN_MAX_AGE": (0, None),
    "STT_ENDPOINTING_MS": (10, 10_000),
    "STREAM_TOKEN_MAX_AGE": (10, 86_400),
    "KNOWLEDGE_MAX_UPLOAD_BYTES": (1, None),
    "MAX_CALLS_PER_PROCESS": (1, 10_000),
    "DRAIN_TIMEOUT_S": (0, 86_400),
    "HEARTBEAT_INTERVAL_S": (1, 300),
    "EMBEDDING_THREADS": (1, 256),
    "EMBEDDING_BATCH_SIZE": (1, 2048),
    "EMBEDDING_CONCURRENCY": (1, 256),
    "EMBEDDING_MAX_RETRIES": (0, 100),
    "SECURE_HSTS_SECONDS": (0, None),
    "ADMIN_LOGIN_MAX_FAILURES": (1, 1000),
    "ADMIN_LOGIN_LOCKOUT_SECONDS": (0, None),
    "PLIVO_NONCE_TTL": (1, None),
    "BROWSER_CALLS_PER_ACCOUNT": (0, 10_000),
    "BROWSER_CALL_MAX_SECONDS": (1, 86_400),
    "BROWSER_CALL_IDLE_SECONDS": (1, 86_400),
    "WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT": (1, 1000),
    "WEBHOOK_SENDERS": (1, 256),
    "WEBHOOK_LOG_RETENTION_DAYS": (1, None),
}
# name: lowest (seconds or hours; fractions allowed)
NUMBERS = {
    "EMBEDDING_TIMEOUT_S": 0.1,
    "WEBHOOK_TIMEOUT_SECONDS": 0.1,
    "WEBHOOK_LEASE_SECONDS": 1.0,
    "WEBHOOK_SECRET_GRACE_HOURS": 0.0,
    "ANALYSIS_LLM_TIMEOUT_SECONDS": 0.1,
    "LLM_STALL_S": 0.0,
}
# Vendors' HTTP APIs. Deepgram and Cartesia are also reached over WebSockets, and their consoles show wss://
# URLs, so those two take ws(s):// too (the WebSocket URL is derived from the HTTP one).
VENDOR_URLS = {
    "ANTHROPIC_BASE_URL": ("http", "https"),
    "DEEPGRAM_BASE_URL": ("http", "https", "ws", "wss"),
    "CARTESIA_BASE_URL": ("http", "https", "ws", "wss"),
    "PLIVO_API_BASE_URL": ("http", "https"),
    "OPENAI_BASE_URL": ("http", "https"),
    "EMBEDDING_BASE_URL": ("http", "https"),
}
OTHER_URLS = {
    "PUBLIC_BASE_URL": ("http", "https"),
    "DATABASE_URL": ("postgres", "postgresql", "pgsql", "postgis"),
    "REDIS_URL": ("redis", "rediss", "unix"),
}
HTTP_SCHEME_OF = {"ws": "http", "wss": "https"}
NEEDS_HOST = {"http", "https", "ws", "wss", "redis", "rediss"}  # PostgreSQL may use a local socket instead


def parse_bool(value: str) -> bool:
    word = value.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError(f"{value!r} is not a boolean: use true or false (also 1/0, yes/no, on/off)")


def _integer_problem(value: str, lowest: int, highest: int | None) -> str | None:
    try:
        number = int(value.strip())
    except ValueError:
        return f"{value!r} is not a whole number"
    if number < lowest or (highest is not None and number > highest):
        bounds = f"from {lowest} to {highest}" if highest is not None else f"at least {lowest}"
        return f"{number} is out of range: use a number {bounds}"
    return None


def _number_problem(value: str, lowest: float) -> str | None:
    try:
        number = float(value.strip())
    except ValueError:
        return f"{value!r} is not a number"
    if not lowest <= number < float("inf"):
        return f"{value.strip()} is out of range: use a number of at least {lowest:g}"
    return None


def _url_problem(value: str, schemes: tuple[str, ...]) -> str | None:
    try:
        parts = urlsplit(value.strip())
    except ValueError as error:
        return f"{value!r} is not a URL ({error})"
    if parts.scheme.lower() not in schemes:
        allowed = [scheme + "://" for scheme in schemes]
        return f"{value!r} must start with {', '.join(allowed[:-1])} or {allowed[-1]}"
    if parts.scheme.lower() in NEEDS_HOST and not parts.hostname:
        return f"{value!r} has no host name"
    if parts.scheme == "unix" and not parts.path:
        return f"{value!r} has no socket path"
    return None


def problems(environ: Mapping[str, str]) -> list[str]:
    """Every malformed setting in `environ`, one sentence each naming the variable."""
    found = []

    def value_of(name: str) -> str | None:
        value = environ.get(name, "").strip()
        return value or None

    for name in BOOLEANS:
        if (value := value_of(name)) is not None:
            try:
                parse_bool(value)
            except ValueError as error:
                found.append(f"{name}: {error}.")
    for name, (lowest, highest) in INTEGERS.items():
        if (value := value_of(name)) is not None and (problem := _integer_problem(value, lowest, highest)):
            found.append(f"{name}: {problem}.")
    for name, lowest in NUMBERS.items():
        if (value := value_of(name)) is not None and (problem := _number_problem(value, lowest)):
            found.append(f"{name}: {problem}.")
    for name, schemes in {**VENDOR_URLS, **OTHER_URLS}.items():
        if (value := value_of(name)) is not None and (problem := _url_problem(value, schemes)):
            found.append(f"{name}: {problem}.")
    return found


class InvalidEnvironment(ImproperlyConfigured):
    """Malformed settings; its message lists them all (manage.py prints it without a traceback)."""


def check(environ: Mapping[str, str]) -> None:
    """Raise InvalidEnvironment listing every malformed setting, if there is any."""
    found = problems(environ)
    if found:
        lines = "\n".join(f"  - {problem}" for problem in found)
        raise InvalidEnvironment(f"Voicebots cannot start: fix these settings in the environment:\n{lines}")


def vendor_base_url(value: str) -> str:
    """A vendor's base URL as its HTTP API takes it: ws(s):// becomes http(s)://, no trailing slash."""
    value = value.strip().rstrip("/")
    scheme, sep, rest = value.partition("://")
    return f"{HTTP_SCHEME_OF.get(scheme.lower(), scheme)}{sep}{rest}"
