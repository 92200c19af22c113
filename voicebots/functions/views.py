from voicebots.api.views import AccountResourceViewSet

from .models import Function
from .serializers import FunctionSerializer


class FunctionViewSet(AccountResourceViewSet):
    model = Function
    serializer_class = FunctionSerializer
    list_key = "functions"
    label = "Function"
