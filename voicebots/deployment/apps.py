from django.apps import AppConfig


class DeploymentConfig(AppConfig):
    name = "voicebots.deployment"
    verbose_name = "Deployment"
