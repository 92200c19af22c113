"""The live-call buttons of the pages (the admin's call page, and the console's): Say, Transfer, End.

Plain forms posting here; the command goes to the call wherever it runs (calls/live.py), exactly as the API's
`POST Call/{id}/end|say|transfer` does, and the page comes back with a message saying what happened.
"""
from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from voicebots.accounts.services import accounts_of_user

from . import live
from .models import Call
from .serializers import EndCallSerializer, SayOnCallSerializer, TransferCallSerializer

FORMS = {"say": SayOnCallSerializer, "transfer": TransferCallSerializer, "end": EndCallSerializer}
DONE = {"say": "The bot will say it.", "transfer": "The call is being transferred.",
        "end": "The call is ending."}


def calls_of_user(user):
    """The calls a signed-in user may act on: their accounts' (superusers: all)."""
    return Call.objects.all() if user.is_superuser else Call.objects.filter(account__in=accounts_of_user(user))


@login_required
@require_POST
def live_command(request, call_id, command):
    call = calls_of_user(request.user).filter(pk=call_id).first()
    if call is None or command not in FORMS:
        raise Http404("No such call in your accounts.")
    fields = {name: value for name, value in request.POST.items() if name in FORMS[command]().fields}
    if command == "say":
        fields["interrupt"] = request.POST.get("interrupt") == "on"
    form = FORMS[command](data=fields)
    if not form.is_valid():
        problems = "; ".join(f"{name}: {' '.join(map(str, errors))}" for name, errors in form.errors.items())
        messages.error(request, f"Nothing was sent: {problems}")
    else:
        try:
            live.send_command(call, command, **form.validated_data)
            messages.success(request, DONE[command])
        except live.NotLive as error:
            messages.error(request, str(error))
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, allowed_hosts={request.get_host()},
                                           require_https=request.is_secure()):
        back = reverse("admin:calls_call_change", args=[call.pk])
    return redirect(back)
