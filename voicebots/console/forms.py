from django import forms

from voicebots.calls.models import Call

PERIODS = {"24h": 1, "7d": 7, "30d": 30, "90d": 90}


class OverviewForm(forms.Form):
    period = forms.ChoiceField(choices=[(key, key) for key in PERIODS], required=False)
    bot = forms.UUIDField(required=False)


class CallFilterForm(forms.Form):
    bot = forms.UUIDField(required=False)
    direction = forms.ChoiceField(choices=[("", "any direction"), *Call.Direction.choices], required=False)
    status = forms.ChoiceField(choices=[("", "any status"), *Call.Status.choices], required=False)
    since = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(required=False, widget=forms.DateInput(attrs={"type": "date"}))
    text = forms.CharField(required=False, max_length=200,
                           widget=forms.TextInput(attrs={"placeholder": "words said in the call"}))
    page = forms.IntegerField(required=False, min_value=1, max_value=10_000)

    def clean(self):
        data = super().clean()
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise forms.ValidationError("The start date is after the end date.")
        return data
