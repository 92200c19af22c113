"""Recordings' life: begun with the call, finished (or failed) with it, stored, served, deleted."""
from __future__ import annotations

import logging
import os
import socket
import time
from datetime import timedelta
from pathlib import Path

from django.db import transaction
from django.utils import timezone

from voicebots.accounts.models import Account
from voicebots.calls import services as calls
from voicebots.calls.models import Call

from . import peaks as waveform
from . import storage, wav
from .models import Recording
from .recorder import RecordingResult

logger = logging.getLogger(__name__)

STALE_AFTER_S = 120  # a file of a live recording is written every second; untouched this long, its writer is gone
RETRY_STORE_AFTER_S = 60
NO_AUDIO = "No audio: the call's stream carried none."
CRASHED = "The process recording the call stopped mid-call; the recording holds the audio until then."


def recording_name(call: Call) -> str:
    day = (call.created_at or timezone.now()).strftime("%Y/%m/%d")
    return f"recordings/{call.account.auth_id}/{day}/{call.id}.wav"


def begin(call: Call, bot) -> Recording | None:
    """The record of a recording starting now, or None when the bot does not record its calls."""
    if not getattr(bot, "record_calls", True):
        return None
    name = recording_name(call)
    path, spooled = storage.file_to_write(name)
    recording, _ = Recording.objects.update_or_create(call=call, defaults={
        "account_id": call.account_id, "status": Recording.Status.RECORDING, "name": name,
        "spool_path": str(path) if spooled else "", "host": socket.gethostname(), "started_at": timezone.now(),
        "duration_ms": None, "size_bytes": None, "error": "", "peaks": None, "deleted_at": None,
    })
    return recording


def local_file(recording: Recording) -> Path:
    """The file the recorder writes (or wrote) on this machine."""
    return Path(recording.spool_path) if recording.spool_path else storage.file_to_write(recording.name)[0]


def finished(recording: Recording, result: RecordingResult) -> Recording:
    """The recorder closed its file: note how long it is and what went wrong. A bucket's copy is made by
    `store` afterwards (outside the call)."""
    _measured(recording, result.data_bytes)
    if result.data_bytes == 0 or not result.had_audio:
        _remove_local(recording)
        return _failed(recording, result.error or NO_AUDIO)
    recording.error = result.error or ""
    recording.status = Recording.Status.STORING if recording.spool_path else Recording.Status.READY
    recording.save(update_fields=["status", "duration_ms", "size_bytes", "error", "updated_at"])
    if result.error:
        calls.record_event(recording.call, "recording_incomplete", detail=result.error)
    return recording


def _measured(recording: Recording, data_bytes: int) -> None:
    recording.duration_ms = round(data_bytes * 1000 / wav.BYTES_PER_SECOND)
    recording.size_bytes = wav.HEADER_BYTES + data_bytes if data_bytes else 0


def _failed(recording: Recording, error: str) -> Recording:
    recording.status, recording.error = Recording.Status.FAILED, error
    recording.save(update_fields=["status", "duration_ms", "size_bytes", "error", "updated_at"])
    calls.record_event(recording.call, "recording_failed", detail=error)
    return recording


def store(recording: Recording) -> Recording:
    """Copy a spooled recording to the bucket; on failure it stays `storing`, with the error, for the sweep."""
    if recording.status != Recording.Status.STORING:
        return recording
    spool = Path(recording.spool_path)
    try:
        recording.peaks = _peaks_of_file(spool)
        storage.upload(recording.name, spool)
    except Exception as error:  # a bucket fails in many ways (network, credentials, quota): all are recorded
        message = f"Storing the recording failed ({type(error).__name__}: {error}); it is retried."
        logger.warning("Recording of call %s: %s", recording.call_id, message)
        if message != recording.error:
            recording.error = message
            recording.save(update_fields=["error", "updated_at"])
            calls.record_event(recording.call, "recording_store_failed", detail=message)
        return recording
    recording.status = Recording.Status.READY
    recording.error = "" if recording.error.startswith("Storing the recording failed") else recording.error
    recording.save(update_fields=["status", "peaks", "error", "updated_at"])
    _remove_local(recording)
    return recording


def _peaks_of_file(path: Path) -> bytes | None:
    with open(path, "rb") as file:
        try:
            return waveform.compute(file)
        except wav.NotAWav:
            return None


def _remove_local(recording: Recording) -> None:
    try:
        local_file(recording).unlink(missing_ok=True)
    except OSError as error:
        logger.warning("Could not remove the local file of recording %s: %s", recording.call_id, error)


def peaks(recording: Recording) -> bytes | None:
    """The waveform of a ready recording, computed once from the stored WAV and kept."""
    if recording.peaks is not None:
        return bytes(recording.peaks)
    if not recording.playable:
        return None
    try:
        with storage.open_for_reading(recording.name) as file:
            computed = waveform.compute(file)
    except (OSError, wav.NotAWav) as error:
        logger.warning("No waveform for recording %s: %s", recording.call_id, error)
        return None
    Recording.objects.filter(pk=recording.pk).update(peaks=computed)
    recording.peaks = computed
    return computed


def delete(recording: Recording, *, reason: str) -> None:
    """Remove the audio from storage; the record stays, saying when and why."""
    if recording.status == Recording.Status.DELETED:
        return
    storage.delete(recording.name)
    if recording.spool_path:
        _remove_local(recording)
    recording.status, recording.peaks, recording.deleted_at = Recording.Status.DELETED, None, timezone.now()
    recording.error = reason
    recording.save(update_fields=["status", "peaks", "deleted_at", "error", "updated_at"])


def delete_expired(now=None, batch: int = 500) -> int:
    """Delete the recordings older than their account's retention (0 keeps them forever); returns how many."""
    now = now or timezone.now()
    deleted = 0
    for account in Account.objects.filter(recording_retention_days__gt=0).only("id", "recording_retention_days"):
        cutoff = now - timedelta(days=account.recording_retention_days)
        expired = (Recording.objects.filter(account=account, started_at__lt=cutoff)
                   .exclude(status__in=[Recording.Status.DELETED, Recording.Status.RECORDING]))
        for recording in expired[:batch]:
            try:
                delete(recording, reason=f"Deleted after {account.recording_retention_days} days (retention).")
                deleted += 1
            except Exception as error:  # a storage outage: try again next time
                logger.warning("Could not delete expired recording %s: %s", recording.call_id, error)
    return deleted


def sweep(now: float | None = None) -> dict[str, int]:
    """Recordings of this machine left behind: a writer that died mid-call (the header is repaired and the
    recording finished with what it holds), and copies to the bucket that failed (tried again)."""
    now = now if now is not None else time.time()
    host = socket.gethostname()
    repaired = stored = 0
    for recording in Recording.objects.filter(status=Recording.Status.RECORDING, host=host).select_related("call"):
        path = local_file(recording)
        try:
            modified = os.stat(path).st_mtime
        except FileNotFoundError:
            modified = None
        if (modified or recording.started_at.timestamp()) > now - STALE_AFTER_S:
            continue
        data_bytes = wav.repair(path) if modified is not None else 0
        finished(recording, RecordingResult(path, data_bytes, CRASHED if data_bytes else None))
        repaired += 1
    retry_before = timezone.now() - timedelta(seconds=RETRY_STORE_AFTER_S)
    for recording in Recording.objects.filter(status=Recording.Status.STORING, host=host,
                                              updated_at__lt=retry_before).select_related("call"):
        stored += store(recording).status == Recording.Status.READY
    return {"repaired": repaired, "stored": stored}


def on_deleted(recording: Recording) -> None:
    """A recording's row went (its call or account was deleted): its audio goes too, once that is committed."""
    def remove():
        try:
            if recording.status != Recording.Status.DELETED:
                storage.delete(recording.name)
            if recording.spool_path:
                Path(recording.spool_path).unlink(missing_ok=True)
        except Exception as error:
            logger.warning("Could not delete the audio of recording %s: %s", recording.call_id, error)

    transaction.on_commit(remove)


def recording_of(call: Call) -> Recording | None:
    return Recording.objects.filter(call=call).first()


