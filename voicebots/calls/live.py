"""Live control of a call from any web process: end it, have the bot say something, transfer it.

A call's audio stream is served start to end by the web process that accepted its WebSocket; an API request
may reach any other. They meet on the Channels layer (Redis): for as long as the call is live, the group
`call.<id>` holds the command channel of the process carrying it (`attach`), and a request sends its command
to that group with a channel of its own to answer on (`send_command`). The process hands the command to the
call (its CallSession's `say`, `end`, `transfer`) and replies whether it took it. No reply within REPLY_TIMEOUT_S
means no process carries the call any more (it just ended, or its process died): the request gets a 409.

`attach` also marks the call as carried by this process (`Call.web_process`, the deployment's heartbeats),
which is how the reaper finds calls whose process was killed, and drain (SIGTERM) finds the calls to let
finish.
"""
from __future__ import annotations

import asyncio
import logging
import uuid
import weakref
from typing import Any, Awaitable, Callable, Protocol

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.utils import timezone

from voicebots.deployment import capacity, process, registry

from . import services as calls
from .models import Call

logger = logging.getLogger(__name__)

REPLY_TIMEOUT_S = 3.0
LISTEN_RETRY_S = 1.0
LEAVE_TIMEOUT_S = 2.0
COMMAND = "call.command"
REPLY = "call.reply"


class Controllable(Protocol):
    """What a live call offers (CallSession does): each returns False when the call can no longer do it."""

    def say(self, text: str, *, interrupt: bool = False) -> bool: ...

    def end(self, goodbye: str = "") -> bool: ...

    def transfer(self, to: str, summary: str = "") -> bool: ...


class NotLive(Exception):
    """The call cannot take a command (it is not live, or it is ending); the message says why."""


def group_name(call_id) -> str:
    return f"call.{call_id}"


# --- In the process that carries the call ---------------------------------------------------------------

_carried: dict[str, "LiveCall"] = {}


def carried() -> list["LiveCall"]:
    """The live calls of this process."""
    return list(_carried.values())


class _Inbox:
    """This process's one channel for commands, and the task that hands them to its calls (one per event loop).

    One channel per process rather than per call: a call only joins its group with it (one Redis write at its
    start, one at its end), and no call waits on Redis for its whole life.
    """

    def __init__(self) -> None:
        self.layer = get_channel_layer()
        self.channel = ""
        self._ready: asyncio.Future[str] | None = None
        self._task: asyncio.Task[None] | None = None

    async def channel_name(self) -> str:
        if self._ready is None:
            self._ready = asyncio.get_running_loop().create_future()
            self._task = asyncio.create_task(self._run(), name="live-control-inbox")
        return await asyncio.shield(self._ready)

    async def _run(self) -> None:
        try:
            self.channel = await self.layer.new_channel()
        except Exception as error:
            self._ready.set_exception(error)
            self._ready = None  # the next call tries again
            return
        self._ready.set_result(self.channel)
        while True:
            try:
                message = await self.layer.receive(self.channel)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # Redis gone for a moment: the calls go on; control comes back with it
                if asyncio.current_task().cancelling():
                    # channels_redis may turn a cancellation into another error (an assertion in its clean-up):
                    # this task was asked to stop, so it stops.
                    raise asyncio.CancelledError() from error
                logger.warning("Live control cannot receive commands: %s", error)
                await asyncio.sleep(LISTEN_RETRY_S)
                continue
            if message.get("type") == COMMAND:
                # In a task of its own: a command that takes a while must not hold up the others.
                asyncio.create_task(_answer(message), name="live-control-command")


_inboxes: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Inbox]" = weakref.WeakKeyDictionary()


def _inbox() -> _Inbox:
    loop = asyncio.get_running_loop()
    if loop not in _inboxes:
        _inboxes[loop] = _Inbox()
    return _inboxes[loop]


async def _answer(message: dict) -> None:
    live = _carried.get(str(message.get("call_id", "")))
    if live is None:
        error: str | None = "The call has just ended."
    else:
        try:
            error = await live.execute(message.get("command", ""), message.get("args") or {})
        except Exception:
            logger.exception("Live control command %s failed", message.get("command"))
            error = "The call could not carry out the command."
    if reply_to := message.get("reply_to"):
        try:
            await _inbox().layer.send(reply_to, {"type": REPLY, "accepted": error is None, "error": error or "",
                                                 "web_process": process.process_id()})
        except Exception as failure:  # the requester times out and answers 409
            logger.warning("Could not reply to a live control command: %s", failure)


class LiveCall:
    def __init__(self, call_id: str, target: Any, hang_up: Callable[[str], Awaitable[None]]) -> None:
        self.call_id = call_id
        self._target = target  # a CallSession; an Announcement only plays its message and hangs up
        self._hang_up = hang_up
        self._channel = ""

    async def execute(self, command: str, args: dict) -> str | None:
        """Carry out one command; None when the call took it, else why not."""
        if command == "end":
            await self.end(str(args.get("say") or ""), "Ended through live control.")
            return None
        if not hasattr(self._target, "say"):
            return "This call only plays an announcement; it can only be ended."
        if command == "say":
            if self._target.say(str(args.get("text") or ""), interrupt=bool(args.get("interrupt"))):
                return None
            return "The call is ending and can no longer speak."
        if command == "transfer":
            if self._target.transfer(str(args.get("to") or ""), str(args.get("summary") or "")):
                return None
            return "The call is already ending or being transferred."
        return f"Unknown command {command!r}."

    async def end(self, goodbye: str, reason: str) -> None:
        """Say `goodbye` (if any) and hang up; the record's end reason is `reason` unless one was set."""
        await _in_database_thread(_set_end_reason)(self.call_id, reason)
        ending = getattr(self._target, "end", None)
        if ending is None or not ending(goodbye):
            await self._hang_up(reason)

    async def _join(self) -> None:
        inbox = _inbox()
        self._channel = await inbox.channel_name()
        await inbox.layer.group_add(group_name(self.call_id), self._channel)

    async def leave(self) -> None:
        _carried.pop(self.call_id, None)
        registry.call_ended(self.call_id)
        if self._channel:
            try:
                async with asyncio.timeout(LEAVE_TIMEOUT_S):
                    await _inbox().layer.group_discard(group_name(self.call_id), self._channel)
            except Exception as error:  # the group's entry expires by itself; commands meanwhile get a 409
                logger.warning("Could not leave the live group of call %s: %s", self.call_id, error)


async def attach(call_id: str, target: Any, hang_up: Callable[[str], Awaitable[None]]) -> LiveCall:
    """This process carries the call from now on: count it, mark it, and listen for commands to it."""
    registry.ensure_started()
    live = LiveCall(call_id, target, hang_up)
    _carried[call_id] = live
    registry.call_started(call_id)
    await _in_database_thread(_carried_here)(call_id, process.process_id())
    try:
        await live._join()
    except Exception as error:  # without Redis the call still runs, only without remote control
        logger.warning("Live control is unavailable for call %s: %s", call_id, error)
    return live


def _carried_here(call_id: str, process_id: str) -> None:
    Call.objects.filter(pk=call_id).update(web_process=process_id, updated_at=timezone.now())
    capacity.stream_started(call_id)


def _set_end_reason(call_id: str, reason: str) -> None:
    Call.objects.filter(pk=call_id, end_reason="").update(end_reason=reason, updated_at=timezone.now())


def _in_database_thread(function):
    from voicebots.callruntime.database import in_call_database_thread  # the calls' own pool of threads

    return in_call_database_thread(function)


# --- In any process: the API and the admin ------------------------------------------------------------


def is_streaming(call: Call) -> bool:
    return call.status == Call.Status.IN_PROGRESS and call.stream_started_at is not None


def send_command(call: Call, command: str, **args) -> str:
    """Hand `command` to the live call wherever it runs; returns the web process that took it.

    Raises NotLive when the call is not live or did not take it. The command is recorded on the call."""
    if call.has_ended:
        raise NotLive(f"Call {call.id} has already ended ({call.status}).")
    if not is_streaming(call):
        raise NotLive(f"Call {call.id} is not connected to a bot yet ({call.status}); "
                      f"DELETE Call/{call.id} hangs up a call that has not been answered.")
    reply = async_to_sync(_ask)(str(call.id), command, args)
    if reply is None:
        raise NotLive(f"Call {call.id} is not live on any web process: its stream has ended, or the process "
                      "carrying it stopped.")
    if not reply.get("accepted"):
        raise NotLive(reply.get("error") or f"Call {call.id} did not take the command.")
    calls.record_event(call, f"live_{command}", web_process=reply.get("web_process", ""), **args)
    return reply.get("web_process", "")


async def _ask(call_id: str, command: str, args: dict) -> dict | None:
    layer = get_channel_layer()
    # A plain channel name (not new_channel()'s process-local kind), so that any event loop may wait on it.
    reply_to = f"live-reply.{uuid.uuid4().hex}"
    await layer.group_send(group_name(call_id), {"type": COMMAND, "call_id": call_id, "command": command,
                                                 "args": args, "reply_to": reply_to})
    try:
        async with asyncio.timeout(REPLY_TIMEOUT_S):
            return await layer.receive(reply_to)
    except TimeoutError:
        return None
