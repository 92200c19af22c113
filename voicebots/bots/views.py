from django.db.models.functions import Left, Length

from voicebots.api.views import AccountResourceViewSet

from .models import Voicebot
from .serializers import LIST_PROMPT_CHARS, VoicebotSerializer


class VoicebotViewSet(AccountResourceViewSet):
    model = Voicebot
    serializer_class = VoicebotSerializer
    list_key = "voicebots"
    label = "Voicebot"

    def get_queryset(self):
        bots = super().get_queryset().select_related("account").prefetch_related("functions", "knowledgebases")
        if self.action == "list":  # a list shows the start of each prompt: read no more of it
            bots = bots.defer("prompt").annotate(prompt_start=Left("prompt", LIST_PROMPT_CHARS),
                                                 prompt_chars=Length("prompt"))
        return bots
