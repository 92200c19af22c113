from importlib import import_module

from django.apps import AppConfig


class VendorsConfig(AppConfig):
    name = "voicebots.vendors"
    verbose_name = "Vendors"

    def ready(self) -> None:
        import_module(f"{self.name}.checks")  # registers the start-up check of the vendor settings
