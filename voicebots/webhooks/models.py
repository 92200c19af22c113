"""Webhook endpoints of an account, the events sent to them, and every delivery and attempt.

An event is stored once (its exact body); each endpoint subscribed to it gets a delivery, and each try of
a delivery is an attempt. The `webhook-id` header is the event's id, the same for every retry.
"""
import uuid

from django.contrib.postgres.fields import ArrayField
from django.db import models

from voicebots.accounts.models import Account
from voicebots.core.encryption import EncryptedTextField

EVENT_TYPES = ("call.started", "call.ended", "call.analyzed", "campaign.completed", "campaign.contact_finished")


class WebhookEndpoint(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.CharField(max_length=2000)
    description = models.CharField(max_length=500, blank=True, default="")
    events = ArrayField(models.CharField(max_length=64), default=list,
                        help_text=f"Any of {', '.join(EVENT_TYPES)}.")
    enabled = models.BooleanField(default=True, help_text="Disabled: no new deliveries; pending ones wait.")
    secret = EncryptedTextField(editable=False)
    # After a rotation the old secret still signs, beside the new one, until this time.
    previous_secret = EncryptedTextField(blank=True, default="", editable=False)
    previous_secret_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["account", "-created_at"])]

    def __str__(self):
        return self.url


class WebhookEvent(models.Model):
    """Something that happened, as the exact JSON body every endpoint receives."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="webhook_events")
    type = models.CharField(max_length=64)
    body = models.TextField(help_text='{"type", "timestamp", "data"} as sent, byte for byte.')
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.type} {self.id}"

    @property
    def message_id(self) -> str:
        """The webhook-id header: receivers dedupe on it."""
        return f"msg_{self.id.hex}"


class WebhookDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        DELIVERED = "delivered"
        FAILED = "failed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey(WebhookEvent, on_delete=models.CASCADE, related_name="deliveries")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField(help_text="Tries allowed before it is failed.")
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    # A sender holds a delivery while it sends it; a lease that runs out (the sender died) frees it again.
    leased_until = models.DateTimeField(null=True, blank=True)
    lease_token = models.UUIDField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=500, blank=True, default="")
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["endpoint", "event"], name="unique_delivery_per_endpoint")]
        indexes = [
            models.Index(fields=["endpoint", "-created_at"]),
            # What the sender and the sweep look for: pending deliveries by when they are due.
            models.Index(fields=["next_attempt_at"], name="webhook_due",
                         condition=models.Q(status="pending")),
        ]

    def __str__(self):
        return f"{self.event.type} to {self.endpoint.url} ({self.status})"


class WebhookAttempt(models.Model):
    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    number = models.PositiveIntegerField()
    started_at = models.DateTimeField()
    duration_ms = models.FloatField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True, default="")
    response_excerpt = models.CharField(max_length=1000, blank=True, default="")

    class Meta:
        ordering = ["delivery", "number", "id"]

    def __str__(self):
        return f"attempt {self.number}: {self.status_code or self.error}"
