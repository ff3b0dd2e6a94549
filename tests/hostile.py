"""Hostile request bodies for the public POST routes, as hypothesis strategies, and the
judgement of the answers: valid-shaped bodies whose fields are swapped for NUL, lone
surrogates, huge numbers, NaN and Infinity, wrong types and deep nesting, with extra
fields, truncated or wrapped, with and without a token. Shared by the fuzz test and
bench.fuzz_bodies.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from hypothesis import strategies as st

from telemetry import access, households
from telemetry.tariff import Tariff

NDJSON = "application/x-ndjson"
WHO = ("admin", "resident", "gateway", None, "forged")
OWNER = {
    "chat": "resident",
    "completions": "resident",
    "telemetry": "gateway",
    "ndjson": "gateway",
    "confirm": "resident",
    "cancel": "resident",
    "undo": "resident",
    "ack": "gateway",
}


@dataclass(frozen=True)
class Target:
    """What the bodies may name: a household with a device, and headers per role."""

    household: uuid.UUID
    device: uuid.UUID
    user: uuid.UUID
    headers: dict[str, dict[str, str]]  # role -> Authorization header


TARIFF = Tariff(currency="EUR", import_price_per_kwh=0.3, export_price_per_kwh=0.08)


async def make_target(
    conn: Any, *, resident: uuid.UUID, gateway: uuid.UUID, headers: dict[str, dict[str, str]]
) -> Target:
    """A household with a controllable heater, `resident` its owner and `gateway` its
    gateway; `headers` as Target.headers."""
    home = await households.create_household(conn, name="Home", timezone="UTC", tariff=TARIFF)
    device = await households.create_device(
        conn,
        household_id=home.id,
        name="Heater",
        kind="consumer",
        controllable=True,
        max_watts=3000,
    )
    await access.add_member(conn, household_id=home.id, user_id=resident, role="owner")
    await access.add_member(conn, household_id=home.id, user_id=gateway, role="gateway")
    return Target(home.id, device.id, resident, headers)


@dataclass(frozen=True)
class Probe:
    route: str
    path: str
    who: str | None
    content: bytes
    content_type: str

    def __repr__(self) -> str:
        # A failure report shows the body's start, not 100,000 brackets.
        body = self.content[:200] + (b"..." if len(self.content) > 200 else b"")
        return f"Probe({self.route!r}, who={self.who!r}, {len(self.content)} bytes: {body!r})"

    def headers(self, target: Target) -> dict[str, str]:
        auth = {"authorization": "Bearer forged.token.value"} if self.who == "forged" else {}
        if self.who in target.headers:
            auth = target.headers[self.who]
        return auth | {"content-type": self.content_type, "idempotency-key": "fuzz-key"}


TEXT: st.SearchStrategy[str] = st.one_of(
    st.sampled_from(
        [
            "",
            "\x00",
            "how much \x00 today?",
            "\ud800",
            "x\udfff",
            "\ud83d",
            "\u202e\u200b",
            "\ufeff",
            "😀",
            "\\",
            '"',
            "\r\n",
            "[" * 300,
            "9" * 400,
            "how much energy did I use today?",
            "turn the heater off",
            "yes",
        ]
    ),
    # Every code point, surrogates included; short, so no one word costs the router much.
    st.text(st.characters(exclude_categories=()), max_size=40),
)
NUMBER: st.SearchStrategy[object] = st.one_of(
    st.integers(),
    st.sampled_from([10**400, -(10**4000), 2**63, -(2**64)]),
    st.floats(),  # NaN and the infinities, written as JSON's missing NaN/Infinity
)
JSON: st.SearchStrategy[object] = st.recursive(
    st.one_of(st.none(), st.booleans(), NUMBER, TEXT),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=8,
)


def _field(good: object) -> st.SearchStrategy[object]:
    """Mostly the good value (or one drawn from a strategy), else anything."""
    right = good if isinstance(good, st.SearchStrategy) else st.just(good)
    return st.one_of(right, right, right, TEXT, NUMBER, JSON)


def _object(fields: dict[str, object]) -> st.SearchStrategy[dict[str, object]]:
    """`fields` with hostile values, some left out, and maybe extra fields."""
    drawn = st.fixed_dictionaries({}, optional={k: _field(v) for k, v in fields.items()})
    extra = st.dictionaries(TEXT, JSON, max_size=2)
    return st.builds(lambda d, e: e | d, drawn, st.one_of(st.just({}), extra))


def _messages(roles: list[str]) -> st.SearchStrategy[list[object]]:
    message = st.one_of(
        _object({"role": st.sampled_from(roles), "content": "how much today?"}),
        _object({"role": "user", "parts": [{"type": "text", "text": "hello"}]}),
        st.builds(lambda t: {"role": "user", "content": t}, TEXT),
        JSON,
    )
    return st.lists(message, min_size=0, max_size=4)


def _history() -> st.SearchStrategy[list[object]]:
    """A well-formed history ending with the user's message, of hostile texts."""

    def turns(texts: list[str]) -> list[object]:
        roles = ["user", "assistant"]
        return [
            {"role": roles[(len(texts) - 1 - i) % 2], "content": t} for i, t in enumerate(texts)
        ]

    return st.builds(turns, st.lists(TEXT, min_size=1, max_size=3))


def _bodies(target: Target) -> dict[str, tuple[str, st.SearchStrategy[object]]]:
    h = f"/v1/households/{target.household}"
    now = datetime.now(UTC)
    reading = {"device_id": str(target.device), "ts": now.isoformat(), "watts": 100.0}
    tariff = {"currency": "EUR", "import_price_per_kwh": 0.3, "export_price_per_kwh": 0.08}
    later = (now + timedelta(days=1)).isoformat()

    def chat_body(m: list[object], s: dict[str, object]) -> dict[str, object]:
        return s | {"messages": m}

    # Half the histories are well formed, with hostile text: they reach the router and the turn.
    history = st.one_of(_history(), _messages(["user", "assistant"]))
    chat = st.builds(chat_body, history, _object({"style": "chat"}))
    completion = st.builds(
        chat_body,
        st.one_of(_history(), _messages(["user", "assistant", "system", "tool"])),
        _object({"model": "wattwise", "stream": False, "stream_options": {"include_usage": True}}),
    )
    action = f"/v1/actions/{uuid.uuid4()}"
    return {
        "chat": (f"{h}/chat", chat),
        "completions": ("/v1/chat/completions", completion),
        "telemetry": ("/v1/telemetry", _object({"readings": [reading, reading]})),
        "households": (
            "/v1/households",
            _object({"name": "Fuzz", "timezone": "UTC", "tariff": tariff}),
        ),
        "devices": (
            f"{h}/devices",
            _object({"name": "Fuzz", "kind": "consumer", "controllable": True, "max_watts": 2000}),
        ),
        "members": (f"{h}/members", _object({"user_id": str(target.user), "role": "member"})),
        "support": (f"{h}/support", _object({"user_id": str(target.user), "expires_at": later})),
        "users": ("/v1/users", _object({"email": "fuzz@example.test", "role": "resident"})),
        "confirm": (f"{action}/confirm", _object({})),
        "cancel": (f"{action}/cancel", _object({})),
        "undo": (f"{action}/undo", _object({})),
        "ack": (f"/v1/commands/{uuid.uuid4()}/ack", _object({"success": True, "detail": "ok"})),
        "ndjson": ("/v1/telemetry", st.lists(_object(reading), max_size=4)),
    }


RAW = [
    b"",
    b"null",
    b"[",
    b"{" * 100_000,
    b"[" * 100_000,
    b"\xff\xfe",
    b"NaN",
    b"1" + b"0" * 5000,
    b'"\\ud800"',
    b'{"messages": [{"role": "user", "content": "\\u0000"}]}',
    b'{"readings": [{"device_id": "\\udfff"}]}',
]


def _encode(value: object, ascii_only: bool) -> bytes:
    # ensure_ascii writes a lone surrogate as \ud800; otherwise it becomes invalid UTF-8.
    return json.dumps(value, ensure_ascii=ascii_only).encode("utf-8", "surrogatepass")


_BODIES: dict[uuid.UUID, dict[str, tuple[str, st.SearchStrategy[object]]]] = {}


@st.composite
def probes(draw: st.DrawFn, target: Target) -> Probe:
    # Built once per target: building the strategies costs more than drawing from them.
    bodies = _BODIES.get(target.household) or _BODIES.setdefault(target.household, _bodies(target))
    route = draw(st.sampled_from(sorted(bodies)))
    path, body = bodies[route]
    value = draw(body)
    ascii_only = draw(st.booleans())
    if route == "ndjson":
        assert isinstance(value, list)
        lines = [_encode(v, ascii_only) for v in value]
        lines += draw(st.lists(st.sampled_from(RAW), max_size=2))
        content = b"\n".join(lines)
    else:
        content = _encode(value, ascii_only)
    shape = draw(st.sampled_from(["as is"] * 6 + ["truncated", "wrapped", "raw"]))
    if shape == "truncated":
        content = content[: draw(st.integers(0, max(0, len(content) - 1)))]
    elif shape == "wrapped":
        depth = draw(st.sampled_from([1, 199, 201, 100_000]))
        content = b"[" * depth + content + b"]" * depth
    elif shape == "raw":
        content = draw(st.sampled_from(RAW))
    content_type = NDJSON if route == "ndjson" else "application/json"
    # Mostly the role the route is for, so that bodies get past the token to be parsed.
    who = draw(st.sampled_from([OWNER.get(route, "admin")] * 4 + list(WHO)))
    return Probe(route, path, who, content, content_type)


def problem(response: httpx.Response) -> str | None:
    """What is wrong with an answer to a hostile body, or None: a 5xx, an error outside the
    one error shape, or a stream that failed on our side."""
    status = response.status_code
    if status >= 500:
        return f"{status}: {response.text[:300]}"
    if status >= 400:
        try:
            error: Any = response.json()["error"]
            if not (isinstance(error["code"], str) and isinstance(error["message"], str)):
                return f"{status} without a code and message: {response.text[:300]}"
        except (ValueError, KeyError, TypeError):
            return f"{status} not in the error shape: {response.text[:300]}"
    elif "internal_error" in response.text:
        return f"{status} carrying an internal error: {response.text[:300]}"
    return None


def alarming(record: logging.LogRecord) -> bool:
    """Whether a log record is one no hostile body may cause: an error, or a traceback."""
    return bool(record.exc_info) or record.levelno >= logging.ERROR
