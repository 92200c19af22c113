from django.apps import AppConfig


class CampaignsConfig(AppConfig):
    name = "voicebots.campaigns"

    def ready(self):
        from voicebots.calls.services import call_finished

        from .receivers import on_call_finished

        call_finished.connect(on_call_finished, dispatch_uid="campaigns.on_call_finished")
