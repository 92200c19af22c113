from django.apps import AppConfig


class WebhooksConfig(AppConfig):
    name = "voicebots.webhooks"
