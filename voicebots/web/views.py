from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import JsonResponse
from django.conf import settings
from django.http import Http404
from django.shortcuts import render

from voicebots.accounts.services import account_of_user
from voicebots.bots.models import Voicebot
from voicebots.deployment import registry


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
    if registry.is_draining():  # a load balancer stops sending new connections here
        return JsonResponse({"status": "draining", "calls": registry.live_calls()}, status=503)
    with connection.cursor() as cursor:
        cursor.execute("select 1")
    return JsonResponse({"status": "ok"})


@login_required
def playground(request, bot_id):
    """Chat with a bot in the browser: tokens stream in, tool calls and passages show beside the answer."""
    account = account_of_user(request.user)
    bot = Voicebot.objects.filter(pk=bot_id, account=account).first() if account else None
    if bot is None:
        raise Http404("No such bot in your account.")
    return render(request, "web/playground.html", {
        "bot": bot, "missing_key": "" if settings.ANTHROPIC_API_KEY else "ANTHROPIC_API_KEY",
        "functions": bot.functions.all(), "documents": bot.knowledgebases.all(),
    })
