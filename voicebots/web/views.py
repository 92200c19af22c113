from django.contrib.auth.decorators import login_required
from django.db import connection
from django.conf import settings
from django.http import Http404, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static

from voicebots.accounts.services import account_of_user
from voicebots.callruntime.vendors import missing_keys
from voicebots.deployment import registry as deployment
from voicebots.vendors import registry

from .access import bot_for_user


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


def favicon(request):
    """Browsers ask every site for /favicon.ico; a 404 there is an error in every page's console."""
    return redirect(static("web/favicon.svg"), permanent=True)


def healthz(request):
    if deployment.is_draining():  # a load balancer stops sending new connections here
        return JsonResponse({"status": "draining", "calls": deployment.live_calls()}, status=503)
    with connection.cursor() as cursor:
        cursor.execute("select 1")
    return JsonResponse({"status": "ok"})


@login_required
def playground(request, bot_id):
    """Chat or talk with a bot in the browser: replies stream in, tool calls and passages show beside them."""
    bot = bot_for_user(request.user, bot_id)
    if bot is None:
        raise Http404("No such bot in your accounts.")
    return render(request, "web/playground.html", {
        "bot": bot, "missing_key": _missing_llm_setting(bot),
        "voice_missing_keys": missing_keys(bot), "functions": bot.functions.all(),
        "documents": bot.knowledgebases.all(), "max_seconds": settings.BROWSER_CALL_MAX_SECONDS,
    })


def _missing_llm_setting(bot) -> str:
    """What keeps the bot's model from answering on this server ("X is not configured..."), or ""."""
    try:
        return ", ".join(registry.missing_settings(registry.LLM, bot.llm_provider))
    except registry.ProviderUnavailable:
        return f"The LLM provider \"{bot.llm_provider}\""
