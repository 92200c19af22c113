import uuid

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from voicebots.api.errors import Conflict
from voicebots.api.views import AccountResourceViewSet
from voicebots.providers.plivo_api import PlivoApiError
from voicebots.telephony import rest
from voicebots.telephony.api_errors import api_error

from . import live
from . import services as calls
from . import templating
from .models import Call
from .serializers import (CallDetailSerializer, CallSerializer, EndCallSerializer, OutboundCallSerializer,
                          SayOnCallSerializer, TransferCallSerializer)


class CallViewSet(AccountResourceViewSet):
    model = Call
    serializer_class = CallSerializer
    list_key = "calls"
    label = "Call"
    # Plivo's answers, and live control's 409 for a call not running; see api/openapi_hooks.py
    error_statuses = {"create": (409, 502), "destroy": (409, 502), "end": (409,), "say": (409,), "transfer": (409,)}

    def get_queryset(self):
        calls = super().get_queryset().select_related("account", "recording")
        bot = self.request.query_params.get("voicebot_id")
        direction = self.request.query_params.get("direction")
        if direction and direction not in Call.Direction.values:
            raise ValidationError({"direction": [f"Use one of {', '.join(Call.Direction.values)}."]})
        if direction:
            calls = calls.filter(direction=direction)
        if bot:
            try:
                calls = calls.filter(voicebot_id=uuid.UUID(bot))
            except ValueError:
                raise ValidationError({"voicebot_id": ["Not a valid bot id (a UUID)."]}) from None
        return calls

    @extend_schema(parameters=[
        OpenApiParameter("direction", str, enum=Call.Direction.values,
                         description="Only calls in this direction (web: browser calls from the voice playground)."),
        OpenApiParameter("voicebot_id", str, description="Only calls with this bot."),
    ])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    def retrieve(self, request, *args, **kwargs):
        call = self.get_object()
        return Response(CallDetailSerializer(call).data)

    @extend_schema(request=OutboundCallSerializer, responses={201: CallSerializer})
    def create(self, request, *args, **kwargs):
        """Place an outbound call answered by a bot; its status then follows Plivo's callbacks."""
        serializer = OutboundCallSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            rest.plivo_api_for(request.account)  # refuse before keeping a record of a call that cannot be made
            call = calls.new_outbound(request.account, data["voicebot_id"], from_number=data["from"],
                                      to_number=data["to"], variables=data["variables"])
            rest.place_call(call, ring_timeout=data["ring_timeout"], machine_detection=data["machine_detection"],
                            voicemail_message=templating.render(data["voicemail_message"], data["variables"]))
        except (rest.PlivoNotConfigured, PlivoApiError) as error:
            raise api_error(error)
        call.refresh_from_db()
        return Response({"message": "call fired", **self.serialize(call)}, status=status.HTTP_201_CREATED)

    def destroy(self, request, *args, **kwargs):
        """Hang up a live call (cancel it if it has not been answered yet)."""
        call = self.get_object()
        if call.has_ended:
            raise Conflict(f"Call {call.id} has already ended ({call.status}).")
        try:
            asked = rest.end_call(call)
        except (rest.PlivoNotConfigured, PlivoApiError) as error:
            raise api_error(error)
        if asked:
            calls.record_event(call, "hangup_requested")  # Plivo's hangup callback makes it final
        else:
            calls.finalize(call, status=Call.Status.CANCELED, reason="Hung up through the API.")
        return Response(status=status.HTTP_204_NO_CONTENT)

    # Live control: the command reaches the call on whichever web process carries it (calls/live.py).

    @extend_schema(request=EndCallSerializer, responses={202: None})
    def end(self, request, *args, **kwargs):
        """The bot says the goodbye (if any) and hangs up."""
        return self._live_command(request, "end", EndCallSerializer, "call end requested")

    @extend_schema(request=SayOnCallSerializer, responses={202: None})
    def say(self, request, *args, **kwargs):
        """The bot says the text at the next turn boundary, or at once with `interrupt`."""
        return self._live_command(request, "say", SayOnCallSerializer, "text queued")

    @extend_schema(request=TransferCallSerializer, responses={202: None})
    def transfer(self, request, *args, **kwargs):
        """The bot tells the caller, then hands them to `to`; a `summary` is said to whoever answers first."""
        return self._live_command(request, "transfer", TransferCallSerializer, "call transfer requested")

    def _live_command(self, request, command: str, serializer_class, message: str):
        call = self.get_object()
        serializer = serializer_class(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            live.send_command(call, command, **serializer.validated_data)
        except live.NotLive as error:
            raise Conflict(str(error))
        return Response({"message": message, "id": str(call.id)}, status=status.HTTP_202_ACCEPTED)
