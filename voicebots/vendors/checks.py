"""Start-up checks of the vendor settings: unknown provider names, malformed base URLs, an embedding provider
without a key or with vectors of the wrong size stop `manage.py check`, `migrate` and `run` before anything
is served; missing keys of the default providers are warnings. With the database (`migrate`, `check
--database default`), chunks embedded by another model than the configured one are a warning too."""
from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings
from django.core import checks
from django.db import DatabaseError
from django.db.models import Count

from . import choices, registry
from .choices import InvalidOption


@checks.register()
def vendor_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    return [(checks.Error if problem.error else checks.Warning)(problem.message, hint=problem.hint or None,
                                                                 id=f"vendors.{problem.code}")
            for problem in configuration_problems()]


@checks.register(checks.Tags.database)
def chunks_of_another_embedding_model(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    """Query vectors of one model are meaningless next to chunk vectors of another."""
    if not databases:
        return []
    from voicebots.knowledge.models import Chunk

    try:
        current = registry.embedding_model_name()
        others = list(Chunk.objects.exclude(embedding_model=current).values_list("embedding_model")
                      .annotate(count=Count("id")).order_by("embedding_model"))
    except (registry.ProviderUnavailable, DatabaseError):
        return []  # reported by vendor_settings, or the table is not migrated yet
    if not others:
        return []
    found = ", ".join(f"{count} by {model}" for model, count in others)
    return [checks.Warning(f"Knowledge chunks were embedded by another model than {current} ({found}): searches "
                           f"do not find them well until they are re-embedded.",
                           hint="Run `python manage.py reembed` (it can run while the server serves).",
                           id="vendors.W002")]


@dataclass(frozen=True)
class Problem:
    code: str  # E...: an error, the server does not start; W...: it runs, and says what is missing when used
    message: str
    hint: str = ""

    @property
    def error(self) -> bool:
        return self.code.startswith("E")


def configuration_problems() -> list[Problem]:
    """What is wrong with this server's vendor settings, errors first by setting, then warnings."""
    problems = [problem for setting in _url_settings() if (problem := _bad_url(setting)) is not None]
    try:
        embeddings = registry.require(registry.EMBEDDINGS, settings.EMBEDDING_PROVIDER)
    except registry.UnknownProvider as error:
        problems.append(Problem("E002", f"EMBEDDING_PROVIDER: {error.message}"))
    except registry.MissingProviderKey as error:
        problems.append(Problem("E003", f"EMBEDDING_PROVIDER is {settings.EMBEDDING_PROVIDER}, but {error.message}",
                                "Set EMBEDDING_API_KEY or OPENAI_API_KEY, or point EMBEDDING_BASE_URL at a server "
                                "that needs no key."))
    else:
        if embeddings.name == "openai":
            problems.extend(_openai_embedding_problems())
    try:
        choices.canonical_model_id(settings.OPENAI_MODEL)
    except InvalidOption as error:
        problems.append(Problem("E004", f"OPENAI_MODEL: {error.message}"))
    if settings.ANALYSIS_LLM_PROVIDER:
        try:
            registry.validate(registry.LLM, settings.ANALYSIS_LLM_PROVIDER, settings.ANALYSIS_LLM_MODEL or None)
        except (registry.UnknownProvider, InvalidOption) as error:
            problems.append(Problem("E008", f"ANALYSIS_LLM_PROVIDER/ANALYSIS_LLM_MODEL: {error.message}"))
    for kind in (registry.LLM, registry.STT, registry.TTS):
        default = registry.get(kind, registry.DEFAULTS[kind])
        for setting in default.missing_settings():
            problems.append(Problem("W001", f"{setting} is not set: bots use {default.title} "
                                            f"({registry.KIND_TITLES[kind]}) unless they name another provider.",
                                    "Chats and calls with such a bot will say that the key is missing."))
    return problems


def _url_settings() -> list[str]:
    return sorted({provider.base_url_setting for providers in registry.PROVIDERS.values() for provider in providers
                   if provider.base_url_setting})


def _bad_url(setting: str) -> Problem | None:
    value = getattr(settings, setting, "")
    if not value and setting == "EMBEDDING_BASE_URL":
        return None  # falls back to OPENAI_BASE_URL
    parts = urlsplit(value)
    if parts.scheme in ("http", "https") and parts.hostname and not parts.query and not parts.fragment:
        return None
    return Problem("E001", f"{setting} is not a valid base URL: {value!r}.",
                   "Use an http:// or https:// URL with a host, such as http://127.0.0.1:11434/v1.")


def _openai_embedding_problems() -> list[Problem]:
    problems = []
    try:
        choices.canonical_model_id(settings.EMBEDDING_MODEL)
    except InvalidOption as error:
        problems.append(Problem("E005", f"EMBEDDING_MODEL: {error.message}"))
    from voicebots.knowledge.models import EMBEDDING_DIMENSION
    from voicebots.providers.openai_embeddings import dimension_problem

    if (reason := dimension_problem(settings.EMBEDDING_MODEL, EMBEDDING_DIMENSION,
                                    settings.EMBEDDING_SEND_DIMENSIONS)) is not None:
        problems.append(Problem("E006", reason))
    for setting in ("EMBEDDING_BATCH_SIZE", "EMBEDDING_CONCURRENCY"):
        if getattr(settings, setting) < 1:
            problems.append(Problem("E007", f"{setting} must be at least 1."))
    return problems
