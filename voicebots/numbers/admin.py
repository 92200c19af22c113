from django import forms
from django.contrib import admin, messages

from voicebots.accounts.admin_scoping import AccountScopedAdmin
from voicebots.accounts.services import account_of_user
from voicebots.bots.models import Voicebot
from voicebots.providers.plivo_api import PlivoApiError
from voicebots.telephony.rest import PlivoNotConfigured

from . import services
from .serializers import NumberUpdateSerializer
from .models import NumberAssignment


class AssignNumberForm(forms.ModelForm):
    """Assigning happens in Plivo while the form is checked, so that Plivo's refusals show as form errors."""

    number = forms.CharField(help_text="One of the account's Plivo numbers, e.g. +14155550100.")

    class Meta:
        model = NumberAssignment
        fields = ["account", "number", "voicebot"]

    def __init__(self, *args, account=None, plivo_numbers=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.account = account
        self.fields["voicebot"].required = True
        if plivo_numbers:
            self.fields["number"] = forms.ChoiceField(choices=[(n, n) for n in plivo_numbers])

    def clean(self):
        data = super().clean()
        account = self.account or data.get("account")
        digits = services.plivo_digits(data.get("number") or "")
        if digits is None:
            self.add_error("number", "Write the number in E.164, e.g. +14155550100.")
        if self.errors or account is None:
            return data
        # The API's rule decides whether the bot may answer this account's number (one place).
        checked = NumberUpdateSerializer(data={"voicebot_id": str(data["voicebot"].pk)}, context={"account": account})
        if not checked.is_valid():
            self.add_error("voicebot", checked.errors["voicebot_id"])
            return data
        try:
            self.assignment = services.assign(account, digits, data["voicebot"])
        except (PlivoNotConfigured, PlivoApiError) as error:
            raise forms.ValidationError(f"Plivo did not assign the number: {error}")
        return data


@admin.register(NumberAssignment)
class NumberAssignmentAdmin(AccountScopedAdmin):
    list_display = ["__str__", "voicebot", "app_id", "previous_app_id", "updated_at"]
    list_filter = ["voicebot"]
    search_fields = ["number"]

    def get_form(self, request, obj=None, change=False, **kwargs):
        if obj is not None:  # shown read-only
            return super().get_form(request, obj, change=change, **kwargs)
        account = None if request.user.is_superuser else account_of_user(request.user)
        plivo_numbers = self._plivo_numbers(request, account) if account else None
        form = super().get_form(request, obj, change=change, form=AssignNumberForm, **kwargs)

        class AccountForm(form):
            def __init__(self, *args, **form_kwargs):
                super().__init__(*args, account=account, plivo_numbers=plivo_numbers, **form_kwargs)
        return AccountForm

    def _plivo_numbers(self, request, account) -> list[str]:
        try:
            numbers = services.PlivoNumbers(account)
            return [n["number"] for n in numbers[0:100]]
        except (PlivoNotConfigured, PlivoApiError) as error:
            messages.warning(request, f"Could not list the account's Plivo numbers: {error}")
            return []

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        if db_field.name == "voicebot" and not request.user.is_superuser:
            kwargs["queryset"] = Voicebot.objects.filter(account=account_of_user(request.user))
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    # The form's check already assigned the number (and stored the assignment).
    def save_form(self, request, form, change):
        return form.assignment

    def save_model(self, request, obj, form, change):
        pass

    def save_related(self, request, form, formsets, change):
        pass

    def has_change_permission(self, request, obj=None):
        return False  # assign again to point a number at another bot

    # Deleting an assignment unassigns the number: it gets its previous application back.
    def delete_model(self, request, obj):
        self._unassign(request, [obj])

    def delete_queryset(self, request, queryset):
        self._unassign(request, queryset)

    def _unassign(self, request, assignments):
        for assignment in list(assignments):
            try:
                services.unassign(assignment.account, assignment.number)
            except (PlivoNotConfigured, PlivoApiError, services.NotAssigned) as error:
                messages.error(request, f"{assignment}: {error}")
