from voicebots.api.views import AccountResourceViewSet

from .models import Voicebot
from .serializers import VoicebotSerializer


class VoicebotViewSet(AccountResourceViewSet):
    model = Voicebot
    serializer_class = VoicebotSerializer
    list_key = "voicebots"
    label = "Voicebot"

    def get_queryset(self):
        return super().get_queryset().select_related("account").prefetch_related("functions", "knowledgebases")
