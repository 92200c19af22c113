"""Post-call analysis of a Call: queued when the call ends, run by a Celery task, kept in `Call.analysis`:

    {"status": "pending" | "done" | "failed" | "skipped", "summary", "success", "success_reason", "data",
     "error", "completed_at"}

A final state is written once (under the call's row lock) and announced as the `call.analyzed` webhook.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models.fields.json import KT
from django.utils import timezone

from voicebots.calls.models import Call
from voicebots.conversation.ports import LLMError
from voicebots.vendors import registry
from voicebots.vendors.choices import InvalidOption
from voicebots.webhooks import events as webhook_events

from . import analyzer
from .llm import ModelCompleter

logger = logging.getLogger(__name__)

PENDING, DONE, FAILED, SKIPPED = "pending", "done", "failed", "skipped"
LOST_AFTER = timedelta(minutes=15)  # a pending analysis this old lost its task (retries end sooner)
GIVE_UP_AFTER = timedelta(days=1)


def state(status: str, **fields) -> dict:
    base = {"status": status, "summary": None, "success": None, "success_reason": None, "data": None,
            "error": None, "completed_at": None}
    if status != PENDING:
        base["completed_at"] = timezone.now().isoformat()
    return {**base, **fields}


def mark_pending(call: Call) -> None:
    """As a call ends (inside its transaction): its analysis is pending."""
    call.analysis = state(PENDING)
    Call.objects.filter(pk=call.pk).update(analysis=call.analysis)


def queue_after_commit(call: Call) -> None:
    """Queue the analysis once the call's end is committed (the task would not see it before)."""
    call_id = str(call.id)
    transaction.on_commit(lambda: queue(call_id))


def queue(call_id: str) -> None:
    from .tasks import analyze_call

    try:
        analyze_call.apply_async((call_id,), retry=False)  # a broker that is down must not hold up the caller
    except Exception:  # the broker is down: the sweep queues it later
        logger.warning("Could not queue the analysis of call %s; the sweep will", call_id, exc_info=True)


def _facts(call: Call) -> analyzer.CallFacts:
    bot = call.voicebot
    return analyzer.CallFacts(
        turns=list(call.turns.order_by("index").values_list("caller_text", "bot_text")),
        bot_prompt=bot.prompt if bot else "", direction=call.direction,
        duration_seconds=call.duration_seconds, end_reason=call.end_reason)


def _skip_reason(call: Call, wanted: analyzer.Settings, facts: analyzer.CallFacts) -> str | None:
    if call.voicebot is None:
        return "The call's voicebot was deleted."
    if not wanted.wanted:
        return "Analysis is turned off for this voicebot."
    if not facts.caller_spoke:
        return "The caller said nothing, so there is nothing to analyze."
    return None


def model_for(bot) -> tuple[str, str]:
    """The (provider, model) that analyzes the bot's calls: ANALYSIS_LLM_PROVIDER and ANALYSIS_LLM_MODEL when
    set, else the bot's own (a provider set alone brings its default model)."""
    provider = settings.ANALYSIS_LLM_PROVIDER or bot.llm_provider
    if settings.ANALYSIS_LLM_MODEL:
        return registry.validate(registry.LLM, provider, settings.ANALYSIS_LLM_MODEL)
    if registry.get(registry.LLM, provider).name == bot.llm_provider:
        return provider, bot.llm_model
    return registry.validate(registry.LLM, provider)


async def _ask(wanted: analyzer.Settings, facts: analyzer.CallFacts, provider: str, model: str) -> analyzer.Result:
    timeout = settings.ANALYSIS_LLM_TIMEOUT_SECONDS
    llm = registry.language_model(provider, timeout_s=timeout, total_budget_s=timeout * 2, complete_timeout_s=timeout)
    try:
        return await analyzer.analyze(ModelCompleter(llm, model), wanted, facts)
    finally:
        await llm.aclose()


def run(call_id: str, attempt: int = 0) -> float | None:
    """Analyze one call. Returns seconds to wait before trying again (a model failure that may pass), or
    None when the analysis reached its final state (or another run already did)."""
    call = Call.objects.select_related("voicebot").filter(pk=call_id).first()
    if call is None or (call.analysis or {}).get("status") != PENDING:
        return None
    wanted = analyzer.Settings.from_json(call.voicebot.analysis if call.voicebot else None)
    facts = _facts(call)
    skip = _skip_reason(call, wanted, facts)
    if skip:
        return finish(call_id, state(SKIPPED, error=skip))
    try:
        provider, model = model_for(call.voicebot)
        registry.require(registry.LLM, provider)
    except registry.MissingProviderKey as error:
        return finish(call_id, state(FAILED, error=f"{error.setting} is not configured on this server."))
    except (registry.UnknownProvider, InvalidOption) as error:
        return finish(call_id, state(FAILED, error=f"The analysis model cannot be used: {error.message}"))
    try:
        result = asyncio.run(_ask(wanted, facts, provider, model))
    except LLMError as error:
        delays = settings.ANALYSIS_RETRY_DELAYS
        if error.retryable and attempt < len(delays):
            note(call_id, f"{error.message} Trying again in {delays[attempt]} s.")
            return delays[attempt]
        return finish(call_id, state(FAILED, error=error.message))
    except analyzer.AnalysisFailed as error:
        return finish(call_id, state(FAILED, error=str(error)))
    except Exception:
        logger.exception("The analysis of call %s failed unexpectedly", call_id)
        return finish(call_id, state(FAILED, error="The analysis failed unexpectedly; the server log has details."))
    return finish(call_id, state(DONE, summary=result.summary, success=result.success,
                                 success_reason=result.success_reason, data=result.data))


@transaction.atomic
def finish(call_id: str, final: dict) -> None:
    """Write the final state unless another run did first, and announce it."""
    call = Call.objects.select_for_update().filter(pk=call_id).first()
    if call is None or (call.analysis or {}).get("status") != PENDING:
        return None
    call.analysis = final
    call.save(update_fields=["analysis", "updated_at"])
    webhook_events.call_analyzed(call)
    return None


@transaction.atomic
def note(call_id: str, error: str) -> None:
    """Say on a pending analysis why it is waiting."""
    call = Call.objects.select_for_update().filter(pk=call_id).first()
    if call is not None and (call.analysis or {}).get("status") == PENDING:
        call.analysis = {**call.analysis, "error": error}
        call.save(update_fields=["analysis", "updated_at"])


def pending_calls():
    """Calls whose analysis is pending (read off a partial index, see migration 0001)."""
    return Call.objects.alias(analysis_status=KT("analysis__status")).filter(analysis_status=PENDING)


def sweep() -> int:
    """Queue again the analyses whose task was lost; fail those pending for more than a day."""
    now = timezone.now()
    stale = pending_calls().filter(ended_at__lt=now - LOST_AFTER)
    for call in stale.filter(ended_at__lt=now - GIVE_UP_AFTER).only("id")[:100]:
        finish(str(call.id), state(FAILED, error="The analysis did not run: its task was lost."))
    call_ids = [str(call_id) for call_id in stale.values_list("id", flat=True)[:100]]
    for call_id in call_ids:
        queue(call_id)
    return len(call_ids)
