"""Credentials never reach a log line, whatever carries them; a client dropped on purpose
is not an error."""

from __future__ import annotations

import contextvars
import logging

import pytest

from service.logs import _UNFINISHED, _WithRequest, redact, unfinished_on_purpose

JWT = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.c2lnbmF0dXJlLXZhbHVl"


@pytest.mark.parametrize(
    ("line", "secret"),
    [
        pytest.param("Authorization: Bearer abc.def-ghi", "abc.def-ghi", id="bearer"),
        pytest.param(f"token {JWT} refused", JWT, id="jwt"),
        pytest.param("key sk-proj-AbCdEfGhIjKlMnOp was rejected", "AbCdEfGhIjKlMnOp", id="api-key"),
        pytest.param("connect postgresql://app:s3cr3t@db:5432/ww failed", "s3cr3t", id="url"),
    ],
)
def test_secrets_are_replaced(line: str, secret: str) -> None:
    cleaned = redact(line)
    assert secret not in cleaned
    assert "[redacted]" in cleaned


def test_ordinary_text_is_left_alone() -> None:
    line = "GET /v1/households/{household_id}/energy 200 in 12.5 ms, user 7f3a-bearing"
    assert redact(line) == line
    assert redact("postgresql://db:5432/ww") == "postgresql://db:5432/ww"


def test_an_unfinished_response_meant_so_is_logged_at_info() -> None:
    def log_it() -> logging.LogRecord:
        record = logging.LogRecord("uvicorn.error", logging.ERROR, "", 0, _UNFINISHED, None, None)
        _WithRequest().filter(record)
        return record

    assert log_it().levelname == "ERROR"  # anywhere else it is an error

    def dropped() -> logging.LogRecord:
        unfinished_on_purpose()
        return log_it()

    assert contextvars.copy_context().run(dropped).levelname == "INFO"
