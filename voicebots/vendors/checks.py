"""Start-up checks of the vendor settings: unknown provider names, malformed base URLs and missing keys are
reported by `manage.py check`, `migrate` and `run` before anything is served; with the database (`migrate`,
`check --database default`), so are chunks embedded by another model than the configured one."""
from __future__ import annotations

from django.core import checks
from django.db import DatabaseError
from django.db.models import Count

from . import registry


@checks.register()
def vendor_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    return [(checks.Error if problem.error else checks.Warning)(problem.message, hint=problem.hint or None,
                                                                 id=f"vendors.{problem.code}")
            for problem in registry.configuration_problems()]


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
