"""`wattwise serve`: the app under uvicorn, with the drain on SIGTERM (agent.lifecycle).

uvicorn's own access log is off: the app logs one structured line per request itself
(agent.observe), with what uvicorn cannot know (the user, the household, the route).
"""

from __future__ import annotations

import contextlib
import math
from types import FrameType

import uvicorn

from agent.http import create_app
from agent.lifecycle import Lifecycle
from agent.settings import Settings
from agent.widget_routes import DemoPage

# uvicorn waits this much longer than the drain deadline before it cancels what is left,
# so a turn cut at the deadline has time to send its error part and settle its quota.
UVICORN_MARGIN_SECONDS = 5.0


class _DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, lifecycle: Lifecycle) -> None:
        super().__init__(config)
        self.lifecycle = lifecycle

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.lifecycle.drain_threadsafe()
        super().handle_exit(sig, frame)


def serve(settings: Settings, *, demo: DemoPage | None = None) -> None:
    lifecycle = Lifecycle(settings.shutdown_grace_seconds)
    app = create_app(settings=settings, lifecycle=lifecycle, demo=demo)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_config=None,  # the root logger's handler (agent.logs) formats uvicorn's lines too
        access_log=False,
        timeout_graceful_shutdown=math.ceil(
            settings.shutdown_grace_seconds + UVICORN_MARGIN_SECONDS
        ),
    )
    # Ctrl+C: uvicorn re-raises SIGINT once it has shut down; that is a clean exit.
    with contextlib.suppress(KeyboardInterrupt):
        _DrainingServer(config, lifecycle).run()
