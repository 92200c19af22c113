from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render

from voicebots.accounts.services import account_of_user


@login_required
def home(request):
    account = account_of_user(request.user)
    context = {"account": account}
    if account is not None:
        context.update(
            bots=account.voicebots.order_by("-created_at")[:20],
            functions_count=account.functions.count(),
            documents_count=account.documents.count(),
        )
    return render(request, "web/home.html", context)


def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("select 1")
    return JsonResponse({"status": "ok"})
