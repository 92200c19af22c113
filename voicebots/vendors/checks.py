"""The start-up check of the vendor settings: unknown provider names, malformed base URLs and missing keys
are reported by `manage.py check`, `migrate` and `run` before anything is served."""
from __future__ import annotations

from django.core import checks

from . import registry


@checks.register()
def vendor_settings(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    return [(checks.Error if problem.error else checks.Warning)(problem.message, hint=problem.hint or None,
                                                                 id=f"vendors.{problem.code}")
            for problem in registry.configuration_problems()]
