from rest_framework.response import Response

from voicebots.api.views import AccountResourceViewSet

from .models import Call
from .serializers import CallDetailSerializer, CallSerializer


class CallViewSet(AccountResourceViewSet):
    model = Call
    serializer_class = CallSerializer
    list_key = "calls"
    label = "Call"

    def get_queryset(self):
        calls = super().get_queryset()
        bot = self.request.query_params.get("voicebot_id")
        return calls.filter(voicebot_id=bot) if bot else calls

    def retrieve(self, request, *args, **kwargs):
        call = self.get_object()
        return Response(CallDetailSerializer(call).data)
