from django.apps import AppConfig


class TelephonyConfig(AppConfig):
    name = "voicebots.telephony"
