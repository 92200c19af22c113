"""Webhook endpoints and the delivery log in the admin: each delivery with its attempts, and a retry button."""
from django import forms
from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect
from django.urls import path, reverse
from django.views.decorators.http import require_POST

from voicebots.accounts.admin_scoping import AccountScopedAdmin
from voicebots.api.admin_forms import ApiValidatedForm

from . import services
from .models import EVENT_TYPES, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from .serializers import WebhookEndpointSerializer


class WebhookEndpointForm(ApiValidatedForm):
    """The API's WebhookEndpointSerializer decides what is valid (the URL's guard, the events)."""

    serializer_class = WebhookEndpointSerializer
    events = forms.MultipleChoiceField(choices=[(event, event) for event in EVENT_TYPES],
                                       widget=forms.CheckboxSelectMultiple)

    class Meta:
        model = WebhookEndpoint
        fields = ["account", "url", "description", "events", "enabled"]
        widgets = {"url": forms.URLInput(attrs={"size": 80})}


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(AccountScopedAdmin):
    form = WebhookEndpointForm
    list_display = ["url", "event_list", "enabled", "created_at"]
    list_filter = ["enabled"]
    search_fields = ["url", "description"]
    actions = ["rotate_secret"]

    @admin.display(description="Events")
    def event_list(self, obj):
        return ", ".join(obj.events)

    def save_model(self, request, obj, form, change):
        if not change:
            obj.secret = secret = services.signing.new_secret()
        super().save_model(request, obj, form, change)
        if not change:
            messages.warning(request, f"Signing secret of {obj.url}: {secret} Copy it now: it is not shown again.")

    @admin.action(description="Rotate the signing secret (the old one signs too for a grace period)")
    def rotate_secret(self, request, queryset):
        for endpoint in queryset:
            secret = services.rotate_secret(endpoint)
            messages.warning(request, f"New signing secret of {endpoint.url}: {secret} Copy it now.")


class AttemptInline(admin.TabularInline):
    model = WebhookAttempt
    fields = ["number", "started_at", "duration_ms", "status_code", "error", "response_excerpt"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_view_permission(self, request, obj=None):
        return True  # shown only on a delivery's page, which the delivery admin already scoped

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(WebhookDelivery)
class WebhookDeliveryAdmin(AccountScopedAdmin):
    account_field = "endpoint__account"
    list_display = ["created_at", "event_type", "endpoint", "status", "attempts", "last_status_code",
                    "next_attempt_at"]
    list_filter = ["status", "event__type"]
    search_fields = ["endpoint__url", "last_error"]
    date_hierarchy = "created_at"
    fields = ["event_type", "webhook_id", "endpoint", "status", "attempts", "max_attempts", "last_status_code",
              "last_error", "next_attempt_at", "delivered_at", "created_at", "body"]
    readonly_fields = fields
    inlines = [AttemptInline]
    actions = ["retry_deliveries"]

    def get_queryset(self, request):
        return super().get_queryset(request).select_related("event", "endpoint")

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    @admin.display(description="Event", ordering="event__type")
    def event_type(self, obj):
        return obj.event.type

    @admin.display(description="webhook-id")
    def webhook_id(self, obj):
        return obj.event.message_id

    @admin.display(description="Body sent")
    def body(self, obj):
        return obj.event.body

    def get_urls(self):
        retry = self.admin_site.admin_view(require_POST(self.retry_view))
        return [path("<uuid:delivery_id>/retry/", retry, name="webhooks_webhookdelivery_retry"), *super().get_urls()]

    def retry_view(self, request, delivery_id):
        """The change page's "Retry now" button."""
        if not self.has_view_permission(request):
            return redirect("admin:index")
        delivery = get_object_or_404(self.get_queryset(request), pk=delivery_id)
        self._retry(request, [delivery])
        return redirect(reverse("admin:webhooks_webhookdelivery_change", args=[delivery.pk]))

    @admin.action(description="Retry the selected deliveries now")
    def retry_deliveries(self, request, queryset):
        self._retry(request, list(queryset))

    def _retry(self, request, deliveries):
        queued = 0
        for delivery in deliveries:
            try:
                services.retry(delivery)
                queued += 1
            except services.NotRetryable as error:
                messages.warning(request, str(error))
        if queued:
            messages.success(request, f"{queued} deliver{'y' if queued == 1 else 'ies'} will be sent again now.")
