from django import forms
from django.contrib import admin, messages

from . import services
from .admin_scoping import AccountScopedAdmin
from .login_guard import GuardedAuthenticationForm
from .models import Account, Membership


class AccountForm(forms.ModelForm):
    plivo_auth_token = forms.CharField(
        required=False, widget=forms.PasswordInput(render_value=False),
        help_text="Stored encrypted. Leave empty to keep the current token.",
    )

    class Meta:
        model = Account
        fields = ["name", "plivo_auth_id", "plivo_auth_token"]
        widgets = {"plivo_auth_id": forms.TextInput(attrs={"size": 30})}

    def clean_plivo_auth_token(self):
        value = self.cleaned_data["plivo_auth_token"]
        return value or (self.instance.plivo_auth_token if self.instance.pk else "")


@admin.register(Account)
class AccountAdmin(AccountScopedAdmin):
    form = AccountForm
    account_field = "pk"
    list_display = ["name", "auth_id", "created_at"]
    search_fields = ["name", "auth_id"]
    readonly_fields = ["auth_id", "webhook_signing_secret", "created_at"]
    actions = ["reissue_api_token", "rotate_webhook_secret"]

    def get_queryset(self, request):
        queryset = Account.objects.all()
        if request.user.is_superuser:
            return queryset
        account = self._account(request)
        return queryset.filter(pk=account.pk) if account else queryset.none()

    def get_exclude(self, request, obj=None):
        return []

    def has_add_permission(self, request):
        return request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_superuser

    def save_model(self, request, obj, form, change):
        token = None if change else services.assign_credentials(obj)
        obj.save()
        if token:
            messages.warning(
                request, f"API credentials for {obj.name}: auth_id {obj.auth_id}, auth_token {token}. "
                "Copy the token now: it is not shown again.",
            )

    @admin.display(description="Webhook signing secret")
    def webhook_signing_secret(self, obj):
        """Function handlers verify X-Voicebots-Signature with it (see the README)."""
        return obj.webhook_secret if obj.pk else "-"

    @admin.action(description="Rotate the webhook signing secret")
    def rotate_webhook_secret(self, request, queryset):
        for account in queryset:
            services.rotate_webhook_secret(account)
        messages.success(request, "New webhook signing secret(s) issued; update your function handlers.")

    @admin.action(description="Re-issue the API token (the old one stops working)")
    def reissue_api_token(self, request, queryset):
        for account in queryset:
            token = services.reissue_token(account)
            messages.warning(
                request, f"New API token for {account.auth_id}: {token}. Copy it now: it is not shown again."
            )


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "account", "created_at"]
    search_fields = ["user__username", "account__name", "account__auth_id"]
    list_select_related = ["user", "account"]
    autocomplete_fields = ["account"]

    def has_module_permission(self, request):
        return request.user.is_superuser


# The admin's sign-in (also the web pages' LOGIN_URL) locks out repeated failures (see login_guard).
admin.site.login_form = GuardedAuthenticationForm
