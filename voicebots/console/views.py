"""The console's pages: thin views over `selectors`, `stats` and `inspector`."""
from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone

from voicebots.bots.models import Voicebot
from voicebots.recordings import services as recordings
from voicebots.recordings.responses import audio_response

from . import inspector, selectors, stats
from .access import account_for, visible_accounts
from .forms import PERIODS, CallFilterForm, OverviewForm


def _context(request, account, **extra) -> dict:
    return {"account": account, "accounts": visible_accounts(request.user).order_by("name")[:50],
            "bots": Voicebot.objects.filter(account=account).order_by("name").only("id", "name"), **extra}


@login_required
def index(request):
    account = visible_accounts(request.user).order_by("name").first()
    if account is None:
        return render(request, "console/no_account.html", status=403)
    return redirect("console:overview", auth_id=account.auth_id)


@login_required
def overview(request, auth_id):
    account = account_for(request.user, auth_id)
    form = OverviewForm(request.GET)
    choice = form.cleaned_data if form.is_valid() else {}
    period = choice.get("period") or "7d"
    bot = choice.get("bot")
    now = timezone.now()
    step = "hour" if PERIODS[period] <= 2 else "day"
    start = (now - timedelta(days=PERIODS[period])).replace(minute=0, second=0, microsecond=0)
    if step == "day":
        start = start.replace(hour=0)
    summary = stats.overview(account, start=start, end=now + timedelta(hours=1), voicebot_id=bot, step=step)
    charts = {
        "at": [int(point.at.timestamp()) for point in summary.points],
        "calls": [point.counts["calls"] for point in summary.points],
        "minutes": [round(point.counts["seconds"] / 60, 1) for point in summary.points],
        "p50": [point.percentile(0.5) for point in summary.points],
        "p95": [point.percentile(0.95) for point in summary.points],
        **{stage: [_round(point.mean(stage)) for point in summary.points] for stage in inspector.STAGES},
    }
    total = summary.total
    return render(request, "console/overview.html", _context(
        request, account, section="overview", form=form, period=period, periods=list(PERIODS), bot=str(bot or ""),
        charts=charts, total=total.counts, minutes=round(total.counts["seconds"] / 60), p50=total.percentile(0.5),
        p95=total.percentile(0.95), stages=[(stage, _round(total.mean(stage))) for stage in inspector.STAGES],
        end_reasons=summary.end_reasons, live_from=summary.live_from))


def _round(value):
    return None if value is None else round(value, 1)


@login_required
def call_list(request, auth_id):
    account = account_for(request.user, auth_id)
    form = CallFilterForm(request.GET)
    calls, has_next, page = [], False, 1
    if form.is_valid():
        data = form.cleaned_data
        page = data.get("page") or 1
        filters = selectors.CallFilters(voicebot=str(data.get("bot") or ""), direction=data.get("direction") or "",
                                        status=data.get("status") or "", since=data.get("since"),
                                        until=data.get("until"), text=(data.get("text") or "").strip())
        calls, has_next = selectors.calls(account, filters, page)
    query = request.GET.copy()
    query.pop("page", None)
    return render(request, "console/calls.html", _context(
        request, account, section="calls", form=form, calls=calls, page=page, has_next=has_next,
        query=query.urlencode()))


@login_required
def call_detail(request, auth_id, call_id):
    account = account_for(request.user, auth_id)
    call = selectors.call(account, call_id)
    if call is None:
        raise Http404("No such call in this account.")
    recording = getattr(call, "recording", None)
    peaks = recordings.peaks(recording) if recording is not None else None
    turns, events = inspector.lay_out(call, recording, peaks)
    return render(request, "console/call.html", _context(
        request, account, section="calls", call=call, recording=recording, turns=turns, events=events,
        markers=[{"at": view.at_s, "seek": view.seek_s, "index": view.turn.index} for view in turns
                 if view.at_s is not None],
        event_marks=[{"at": view.at_s, "kind": view.event.kind} for view in events if view.at_s is not None]))


def _playable_recording(request, auth_id, call_id):
    account = account_for(request.user, auth_id)
    call = selectors.call(account, call_id)
    recording = getattr(call, "recording", None) if call is not None else None
    if recording is None or not recording.playable:
        raise Http404("This call has no recording to play.")
    return recording


@login_required
def call_audio(request, auth_id, call_id):
    recording = _playable_recording(request, auth_id, call_id)
    try:
        return audio_response(recording, request.headers.get("Range"), filename=f"call-{recording.call_id}.wav")
    except FileNotFoundError:
        raise Http404("The recording is missing from storage.")


@login_required
def call_peaks(request, auth_id, call_id):
    """The waveform: bytes [caller, bot] per 50 ms (see recordings.peaks)."""
    recording = _playable_recording(request, auth_id, call_id)
    data = recordings.peaks(recording)
    if data is None:
        raise Http404("No waveform for this recording.")
    response = HttpResponse(data, content_type="application/octet-stream")
    response["Cache-Control"] = "private, max-age=3600"
    return response
