from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, status
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from voicebots.api.errors import Conflict, PayloadTooLarge, error_body
from voicebots.api.pagination import paginate
from voicebots.api.parsers import SafeJSONParser
from voicebots.api.views import AccountResourceViewSet

from . import clock, services
from .contacts_csv import CsvFileError
from .models import Campaign, Contact
from .serializers import CampaignSerializer, ContactSerializer

MAX_CSV_BYTES = 20 * 1024 * 1024
UPLOAD_SCHEMA = {"multipart/form-data": {"type": "object", "properties": {
    "file": {"type": "string", "format": "binary"}, "skip_invalid": {"type": "boolean"}}}}


class CampaignViewSet(AccountResourceViewSet):
    model = Campaign
    serializer_class = CampaignSerializer
    list_key = "campaigns"
    label = "Campaign"
    parser_classes = [SafeJSONParser, MultiPartParser, FormParser]
    rate_classes = {"upload_contacts": "upload"}  # see api/rate_limits.py
    list_keys = {"contacts": "contacts"}  # see api/schema.py
    error_statuses = {action: (409,) for action in ("partial_update", "destroy", "schedule", "pause", "resume",
                                                    "cancel", "upload_contacts")}  # see api/openapi_hooks.py

    def get_queryset(self):
        return super().get_queryset().select_related("voicebot")

    def partial_update(self, request, *args, **kwargs):
        campaign = self.get_object()
        if campaign.status not in services.EDITABLE:
            then = "pause it first" if campaign.status == Campaign.Status.RUNNING else "it is over"
            raise Conflict(f"A {campaign.status} campaign cannot be changed; {then}.")
        return super().partial_update(request, *args, **kwargs)

    def destroy(self, request, *args, **kwargs):
        campaign = self.get_object()
        if campaign.status not in services.DELETABLE:
            raise Conflict(f"A {campaign.status} campaign cannot be deleted; pause or cancel it first.")
        return super().destroy(request, *args, **kwargs)

    def _transition(self, change):
        try:
            campaign = change(self.get_object(), clock.now())
        except services.TransitionError as error:
            raise Conflict(str(error))
        return Response(self.serialize(campaign))

    @extend_schema(request=None)
    def schedule(self, request, *args, **kwargs):
        """Start dialing at starts_at (at once when that has passed)."""
        return self._transition(services.schedule)

    @extend_schema(request=None)
    def pause(self, request, *args, **kwargs):
        """Stop dialing; calls in progress finish."""
        return self._transition(services.pause)

    @extend_schema(request=None)
    def resume(self, request, *args, **kwargs):
        """Dial again after a pause."""
        return self._transition(services.resume)

    @extend_schema(request=None)
    def cancel(self, request, *args, **kwargs):
        """End the campaign for good; contacts not yet called are skipped."""
        return self._transition(services.cancel)

    @extend_schema(responses=ContactSerializer(many=True), parameters=[
        OpenApiParameter("state", str, enum=Contact.State.values, description="Only contacts in this state.")])
    def contacts(self, request, *args, **kwargs):
        """The campaign's contacts in CSV order, a page at a time; `state` filters them."""
        campaign = self.get_object()
        contacts = campaign.contacts.order_by("line_number", "created_at")
        state = request.query_params.get("state")
        if state:
            contacts = contacts.filter(state=state)
        return Response(paginate(request, contacts, "contacts", lambda c: ContactSerializer(c).data))

    @extend_schema(request=UPLOAD_SCHEMA)
    def upload_contacts(self, request, *args, **kwargs):
        """Add contacts from a CSV (multipart `file`): a phone column, optional timezone, variable columns."""
        campaign = self.get_object()
        upload = request.FILES.get("file")
        if upload is None:
            raise exceptions.ValidationError({"file": ["Send the CSV as the multipart field 'file'."]})
        if upload.size > MAX_CSV_BYTES:
            raise PayloadTooLarge(f"The CSV is larger than {MAX_CSV_BYTES // (1024 * 1024)} MB; split it.")
        skip_invalid = str(request.data.get("skip_invalid", request.query_params.get("skip_invalid", ""))).lower() \
            in ("1", "true", "yes")
        try:
            parsed = services.import_contacts(campaign, upload.read(), skip_invalid=skip_invalid, now=clock.now())
        except CsvFileError as error:
            raise exceptions.ValidationError({"file": [str(error)]})
        except services.TransitionError as error:
            raise Conflict(str(error))
        rejected = [{"line": e.line, "phone_number": e.phone_number, "error": e.error} for e in parsed.errors]
        if rejected and not skip_invalid:
            message = (f"{len(rejected)} row(s) of the CSV are invalid, so nothing was imported: fix them, or "
                       "send skip_invalid=true to import the valid rows.")
            return Response(error_body(message, {f"line {e.line}": [e.error] for e in parsed.errors}),
                            status=status.HTTP_400_BAD_REQUEST)
        return Response({"imported": len(parsed.rows), "rejected": rejected,
                         "total_contacts": campaign.contacts.count()}, status=status.HTTP_201_CREATED)
