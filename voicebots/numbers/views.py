from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status, viewsets
from rest_framework.response import Response

from voicebots.api.errors import Conflict
from voicebots.api.pagination import paginate
from voicebots.providers.plivo_api import PlivoApiError
from voicebots.telephony.api_errors import api_error
from voicebots.telephony.rest import PlivoNotConfigured

from . import services
from .serializers import NumberSerializer, NumberUpdateSerializer

NUMBER = OpenApiParameter("number", str, OpenApiParameter.PATH, description="E.164, with or without the +.")


class NumberViewSet(viewsets.GenericViewSet):
    """The account's Plivo numbers (Plivo keeps the list) and the bots that answer them."""

    serializer_class = NumberSerializer
    label = "Number"
    list_key = "numbers"
    error_statuses = {"*": (409, 502)}  # Plivo's answers; see api/openapi_hooks.py

    def _digits(self) -> str:
        raw = self.kwargs["number"]
        digits = services.plivo_digits(raw)
        if digits is None:
            raise exceptions.NotFound(f"Number {raw} not found: write it in E.164, e.g. +14155550100.")
        return digits

    def _plivo(self, operation, *args, not_found: str = ""):
        try:
            return operation(*args)
        except (PlivoNotConfigured, PlivoApiError) as error:
            raise api_error(error, not_found=not_found)

    def list(self, request, *args, **kwargs):
        """The account's Plivo numbers, as Plivo lists them, each with the bot it is pointed at (if any)."""
        numbers = self._plivo(services.PlivoNumbers, request.account)
        return Response(self._plivo(paginate, request, numbers, "numbers", lambda number: number))

    @extend_schema(parameters=[NUMBER])
    def retrieve(self, request, *args, **kwargs):
        """One of the account's Plivo numbers."""
        digits = self._digits()
        return Response(self._plivo(services.get_number, request.account, digits,
                                    not_found=self._unknown(digits)))

    @extend_schema(parameters=[NUMBER], request=NumberUpdateSerializer, responses={204: None})
    def partial_update(self, request, *args, **kwargs):
        """Point the number at a bot (`voicebot_id`), or give it back its earlier application (null)."""
        digits = self._digits()
        serializer = NumberUpdateSerializer(data=request.data, context={"account": request.account})
        serializer.is_valid(raise_exception=True)
        bot = serializer.validated_data["voicebot_id"]
        try:
            if bot is None:
                services.unassign(request.account, digits)
            else:
                services.assign(request.account, digits, bot)
        except services.NotAssigned as error:
            raise Conflict(str(error))
        except (PlivoNotConfigured, PlivoApiError) as error:
            raise api_error(error, not_found=self._unknown(digits))
        return Response(status=status.HTTP_204_NO_CONTENT)

    @staticmethod
    def _unknown(digits: str) -> str:
        return f"Number +{digits} is not one of this account's Plivo numbers."
