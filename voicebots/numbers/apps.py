from django.apps import AppConfig


class NumbersConfig(AppConfig):
    name = "voicebots.numbers"
