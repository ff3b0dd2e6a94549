"""`wattwise serve`: the app under uvicorn, with the drain on SIGTERM (service.lifecycle).

uvicorn's own access log is off: the app logs one structured line per request itself
(service.observe), with what uvicorn cannot know (the user, the household, the route).

With several workers, uvicorn's own supervisor binds the socket once and runs one process
per worker; it starts each with a plain uvicorn.Server, so the app (`_WorkerApp`, pickled
into the child with the resolved settings) chains the drain in front of the handler uvicorn
installed for SIGTERM and SIGINT when its lifespan starts.
"""

from __future__ import annotations

import contextlib
import functools
import math
import signal
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from types import FrameType
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send
from uvicorn.supervisors import Multiprocess

from service.app import create_app
from service.lifecycle import Lifecycle
from service.routes.widget import DemoPage
from service.settings import Settings

# uvicorn waits this much longer than the drain deadline before it cancels what is left,
# so a turn cut at the deadline has time to send its error part and settle its quota.
UVICORN_MARGIN_SECONDS = 5.0

# What runs beside the app while the server listens (the demo's simulator and banner):
# entered once the socket is bound, exited first thing on shutdown.
Beside = Callable[[Starlette], AbstractAsyncContextManager[object]]


class _DrainingServer(uvicorn.Server):
    def __init__(
        self,
        config: uvicorn.Config,
        lifecycle: Lifecycle,
        beside: Callable[[], AbstractAsyncContextManager[object]] | None = None,
    ) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle
        self.beside = beside
        self._beside = contextlib.AsyncExitStack()

    async def startup(self, sockets: list[Any] | None = None) -> None:
        await super().startup(sockets)
        if self.started and self.beside is not None:
            await self._beside.enter_async_context(self.beside())

    async def shutdown(self, sockets: list[Any] | None = None) -> None:
        await self._beside.aclose()
        await super().shutdown(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.lifecycle.drain_threadsafe()
        super().handle_exit(sig, frame)


def _config(app: Any, settings: Settings, *, workers: int) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        workers=workers,  # the supervisor starts this many processes
        log_config=None,  # the root logger's handler (service.logs) formats uvicorn's lines too
        access_log=False,
        timeout_graceful_shutdown=math.ceil(
            settings.shutdown_grace_seconds + UVICORN_MARGIN_SECONDS
        ),
    )


class _WorkerApp:
    """The app of one worker process, built in that process from the parent's settings
    (pickled into it before the first call, so only the settings travel)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._app: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._app is None:
            from service import logs

            logs.configure(level=self.settings.log_level, fmt=self.settings.logs_as)
            lifecycle = Lifecycle(self.settings.shutdown_grace_seconds)
            for sig in (signal.SIGTERM, signal.SIGINT):
                _drain_first(sig, lifecycle)
            self._app = create_app(settings=self.settings, lifecycle=lifecycle)
        await self._app(scope, receive, send)


def _drain_first(sig: int, lifecycle: Lifecycle) -> None:
    then = signal.getsignal(sig)

    def handle(signum: int, frame: FrameType | None) -> None:
        lifecycle.drain_threadsafe()
        if callable(then):
            then(signum, frame)

    signal.signal(sig, handle)


def serve(
    settings: Settings, *, demo: DemoPage | None = None, beside: Beside | None = None
) -> None:
    # Ctrl+C: uvicorn re-raises SIGINT once it has shut down; that is a clean exit.
    with contextlib.suppress(KeyboardInterrupt):
        if settings.workers > 1 and demo is None:
            config = _config(_WorkerApp(settings), settings, workers=settings.workers)
            Multiprocess(config, sockets=[config.bind_socket()]).run()
            return
        lifecycle = Lifecycle(settings.shutdown_grace_seconds)
        app = create_app(settings=settings, lifecycle=lifecycle, demo=demo)
        config = _config(app, settings, workers=1)
        _DrainingServer(config, lifecycle, beside and functools.partial(beside, app)).run()
