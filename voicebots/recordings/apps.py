from importlib import import_module

from django.apps import AppConfig


class RecordingsConfig(AppConfig):
    name = "voicebots.recordings"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        import_module(f"{self.name}.signals")  # connects the receivers
