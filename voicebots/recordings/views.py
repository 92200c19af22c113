from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.response import Response

from voicebots.api.errors import Conflict
from voicebots.api.views import AccountResourceViewSet
from voicebots.calls.models import Call

from . import services
from .models import Recording
from .responses import audio_response


class CallRecordingViewSet(AccountResourceViewSet):
    """Call/{id}/recording: the call's stereo WAV (left the caller, right the bot as heard)."""

    model = Call
    label = "Call"

    def _recording(self) -> Recording:
        call = self.get_object()
        recording = services.recording_of(call)
        if recording is None:
            raise exceptions.NotFound(f"Call {call.id} has no recording.")
        return recording

    @extend_schema(request=None, responses={
        (200, "audio/wav"): bytes, (206, "audio/wav"): bytes,
        416: OpenApiResponse(description="The range starts beyond the recording."),
        404: OpenApiResponse(description="No recording, or it was deleted.")})
    def retrieve(self, request, *args, **kwargs):
        """The recording; a `Range` request gets `206` with that part."""
        recording = self._recording()
        if not recording.playable:
            raise exceptions.NotFound(_why_not(recording))
        try:
            return audio_response(recording, request.headers.get("Range"), filename=f"call-{recording.call_id}.wav")
        except FileNotFoundError:
            raise exceptions.NotFound(f"The recording of call {recording.call_id} is missing from storage.")

    @extend_schema(request=None, responses={
        204: None, 404: OpenApiResponse(description="No recording, or it was deleted already."),
        409: OpenApiResponse(description="The call is still being recorded.")})
    def destroy(self, request, *args, **kwargs):
        """Delete the recording's audio from storage."""
        recording = self._recording()
        if recording.status == Recording.Status.DELETED:
            raise exceptions.NotFound(_why_not(recording))
        if recording.status == Recording.Status.RECORDING:
            raise Conflict("The call is still being recorded; delete the recording once it ends.")
        services.delete(recording, reason="Deleted through the API.")
        return Response(status=status.HTTP_204_NO_CONTENT)


def _why_not(recording: Recording) -> str:
    if recording.status == Recording.Status.DELETED:
        return f"The recording of call {recording.call_id} was deleted ({recording.error or 'no reason given'})."
    if recording.status == Recording.Status.RECORDING:
        return f"Call {recording.call_id} is still being recorded."
    if recording.status == Recording.Status.STORING:
        return f"The recording of call {recording.call_id} is not stored yet."
    return f"Call {recording.call_id} has no recording: {recording.error}"
