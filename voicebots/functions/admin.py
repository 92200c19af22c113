from django.contrib import admin

from voicebots.accounts.admin_scoping import AccountScopedAdmin
from voicebots.api.admin_forms import ApiValidatedForm

from .admin_fields import FixedParametersField, UserParametersField
from .models import Function
from .serializers import FunctionSerializer


class FunctionForm(ApiValidatedForm):
    """The API's FunctionSerializer decides what is valid; parameters are edited as rows."""

    serializer_class = FunctionSerializer
    user_parameters = UserParametersField(label="User parameters", help_text="What the model fills in.")
    fixed_parameters = FixedParametersField(label="Fixed parameters", help_text="Constants never shown to the model.")

    class Meta:
        model = Function
        fields = "__all__"


@admin.register(Function)
class FunctionAdmin(AccountScopedAdmin):
    form = FunctionForm
    list_display = ["name", "handler_url", "timeout_seconds", "created_at"]
    search_fields = ["name", "description", "handler_url"]
    list_filter = ["created_at"]
    readonly_fields = ["id", "created_at", "updated_at"]
