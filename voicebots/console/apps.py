from django.apps import AppConfig


class ConsoleConfig(AppConfig):
    name = "voicebots.console"
    default_auto_field = "django.db.models.BigAutoField"
