from django.apps import AppConfig


class VendorsConfig(AppConfig):
    name = "voicebots.vendors"
    verbose_name = "Vendors"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the start-up check of the vendor settings)
