import uuid

from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

from voicebots.api.errors import Conflict
from voicebots.api.pagination import paginate
from voicebots.api.views import AccountResourceViewSet

from . import services
from .models import WebhookDelivery, WebhookEndpoint
from .serializers import WebhookDeliverySerializer, WebhookEndpointSerializer

SECRET_RESPONSE = inline_serializer("WebhookSecret", {"secret": serializers.CharField()})


class WebhookViewSet(AccountResourceViewSet):
    model = WebhookEndpoint
    serializer_class = WebhookEndpointSerializer
    list_key = "webhooks"
    label = "Webhook"
    list_keys = {"deliveries": "deliveries"}  # see api/schema.py
    error_statuses = {"retry": (409,)}  # see api/openapi_hooks.py

    def create(self, request, *args, **kwargs):
        """Add an endpoint; the response carries its signing secret, shown only this once."""
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        endpoint, secret = services.create_endpoint(request.account, **serializer.validated_data)
        return Response({**self.serialize(endpoint), "secret": secret}, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: SECRET_RESPONSE})
    def rotate_secret(self, request, *args, **kwargs):
        """A new signing secret; the old one keeps signing beside it for WEBHOOK_SECRET_GRACE_HOURS."""
        return Response({"secret": services.rotate_secret(self.get_object())})

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=WebhookDelivery.Status.values)],
                   responses={200: WebhookDeliverySerializer(many=True)})
    def deliveries(self, request, *args, **kwargs):
        """The endpoint's deliveries, newest first."""
        endpoint = self.get_object()
        deliveries = WebhookDelivery.objects.filter(endpoint=endpoint, endpoint__account=request.account)
        wanted = request.query_params.get("status")
        if wanted:
            if wanted not in WebhookDelivery.Status.values:
                statuses = ", ".join(WebhookDelivery.Status.values)
                raise exceptions.ValidationError({"status": [f"'{wanted}' is not a delivery status; use {statuses}."]})
            deliveries = deliveries.filter(status=wanted)
        deliveries = deliveries.select_related("event").order_by("-created_at", "-id")
        return Response(paginate(request, deliveries, "deliveries", lambda d: WebhookDeliverySerializer(d).data))

    @extend_schema(request=None, responses={202: None})
    def retry(self, request, *args, **kwargs):
        """Send a failed or pending delivery again now."""
        endpoint = self.get_object()
        raw = kwargs["delivery_id"]
        delivery_id = _uuid_or_none(raw)
        delivery = WebhookDelivery.objects.filter(endpoint=endpoint, endpoint__account=request.account,
                                                  pk=delivery_id).first() if delivery_id else None
        if delivery is None:
            raise exceptions.NotFound(f"Delivery {raw} not found.")
        try:
            services.retry(delivery)
        except services.NotRetryable as error:
            raise Conflict(str(error))
        return Response({"message": "The delivery will be sent again now."}, status=status.HTTP_202_ACCEPTED)


def _uuid_or_none(raw):
    try:
        return uuid.UUID(str(raw))
    except ValueError:
        return None
