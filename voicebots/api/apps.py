from importlib import import_module

from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "voicebots.api"

    def ready(self):
        import_module(f"{self.name}.schema")  # registers the OpenAPI auth extension
