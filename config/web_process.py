"""One web process: Daphne serving the ASGI app, which drains its calls on SIGTERM instead of cutting them.

    python -m config.web_process [daphne's options, e.g. --fd 3 or -b 0.0.0.0 -p 8000] config.asgi:application

Daphne's own signal handling stops the reactor at once, cancelling every live call mid-sentence and leaving its
record unfinished. Here the first SIGTERM or SIGINT starts a drain (voicebots/deployment/drain.py): the calls
may finish for up to DRAIN_TIMEOUT_S, then are ended politely, then the server stops. A second signal ends the
calls politely at once. The process also joins the deployment's registry (heartbeats in Redis) before it
serves, and leaves it when it exits.
"""
from __future__ import annotations

import asyncio
import logging
import signal

from daphne.cli import CommandLineInterface
from daphne.server import Server

logger = logging.getLogger("voicebots.web_process")


class DrainingServer(Server):
    def __init__(self, *args, **kwargs) -> None:
        kwargs["signal_handlers"] = False  # ours, below
        super().__init__(*args, **kwargs)
        self._drain: asyncio.Task[None] | None = None

    def run(self) -> None:
        from django.conf import settings
        from twisted.internet import reactor

        from voicebots.deployment import registry

        self.drain_timeout_s = float(settings.DRAIN_TIMEOUT_S)
        registry.ensure_started()
        reactor.callWhenRunning(self._handle_stop_signals)
        try:
            super().run()
        finally:
            registry.stop()

    def _handle_stop_signals(self) -> None:
        loop = asyncio.get_event_loop()
        for number in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(number, self._on_stop_signal, number)

    def _on_stop_signal(self, number: int) -> None:
        if self._drain is None:
            logger.info("%s: draining, then stopping", signal.Signals(number).name)
            self._drain = asyncio.ensure_future(self._drain_then_stop(self.drain_timeout_s))
        else:
            logger.info("%s again: ending the calls now", signal.Signals(number).name)
            self._drain.cancel()
            self._drain = asyncio.ensure_future(self._drain_then_stop(0))

    async def _drain_then_stop(self, timeout_s: float) -> None:
        from voicebots.deployment.drain import drain

        try:
            await drain(timeout_s)
        finally:
            if not asyncio.current_task().cancelling():
                self.stop()


class DrainingCommandLine(CommandLineInterface):
    server_class = DrainingServer


if __name__ == "__main__":
    DrainingCommandLine.entrypoint()
