from django.apps import AppConfig


class FunctionsConfig(AppConfig):
    name = "voicebots.functions"
