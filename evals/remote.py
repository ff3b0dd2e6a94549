"""The eval against a running service (`python -m evals --url URL --token T`), through its
public API only. T is an administrator's token: the harness creates the fixture households
and their devices, posts their telemetry through POST /v1/telemetry, then asks every
case through POST /v1/households/{id}/chat and reads the UI message stream.

Over HTTP the service's clock is the real one, so every fixture is asked at the time of the
run (no DST day for the Chatham cottage), and faithfulness counts a stated number as
computed when a tool result of the turn holds it or the server's verification checked it.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from agent.events import ActionProposed, CommandIssued, ToolOutput
from agent.verify import Stated, adopt, figures, same, stated, supported
from demo.synthetic import generate
from evals.cases import Case
from evals.fixtures import DAYS, TARIFF, Fixture, fixtures
from evals.runner import OWNERS, Homes, TurnResult, score_turn

BATCH = 50_000


@dataclass
class Remote:
    client: httpx.AsyncClient
    homes: Homes
    ids: dict[str, str]  # fixture name -> household id


async def _post(client: httpx.AsyncClient, path: str, body: Any) -> Any:
    r = await client.post(path, json=body)
    if r.status_code >= 300:
        raise RuntimeError(f"POST {path}: {r.status_code} {r.text[:300]}")
    return r.json()


async def seed_remote(client: httpx.AsyncClient) -> Remote:
    """Create the fixtures on the service; returns the households to ask about."""
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    fx = {name: Fixture(f.spec, f.seed, now) for name, f in fixtures(now).items()}
    me = (await client.get("/v1/me")).json()
    if me["role"] != "admin":
        raise RuntimeError("--token must be an administrator's: the harness seeds fixtures")
    ids: dict[str, str] = {}
    tag = uuid.uuid4().hex[:6]
    for name, fixture in fx.items():
        created = await _post(
            client,
            "/v1/households",
            {
                "name": f"eval {name} {tag}",
                "timezone": fixture.spec.timezone,
                "tariff": TARIFF.model_dump(mode="json"),
            },
        )
        ids[name] = created["id"]
        devices = {}
        for d in fixture.spec.devices:
            device = await _post(
                client,
                f"/v1/households/{created['id']}/devices",
                {
                    "name": d.name,
                    "kind": d.kind,
                    "controllable": d.controllable,
                    "max_watts": d.max_watts,
                },
            )
            devices[d.key] = device["id"]
        readings = [
            {"device_id": devices[r.device_key], "ts": r.ts.isoformat(), "watts": r.watts}
            for r in generate(
                fixture.spec, start=fixture.end - timedelta(days=DAYS), days=DAYS, seed=fixture.seed
            )
        ]
        for i in range(0, len(readings), BATCH):
            await _post(client, "/v1/telemetry", {"readings": readings[i : i + BATCH]})
    # The administrator asks about every fixture; each is still scored as its owner's.
    emails = dict.fromkeys(OWNERS.values(), me["email"])
    households = {name: uuid.UUID(i) for name, i in ids.items()}
    return Remote(client, Homes(dict(OWNERS), emails, households, fx), ids)


def _sse(body: str) -> list[dict[str, Any]]:
    out = []
    for event in body.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[6:] for line in event.splitlines() if line.startswith("data: "))
        if data and data != "[DONE]":
            out.append(json.loads(data))
    return out


async def run_case_remote(remote: Remote, case: Case) -> list[TurnResult]:
    history: list[dict[str, str]] = []
    results = []
    proposals_seen: list[str] = []
    path = f"/v1/households/{remote.ids[case.household]}/chat"
    for index, t in enumerate(case.turns):
        history.append({"role": "user", "content": t.user})
        result = TurnResult(case.id, case.category, index, t.user)
        started = time.perf_counter()
        r = await remote.client.post(path, json={"messages": history})
        result.latency_ms = (time.perf_counter() - started) * 1000
        commands: list[CommandIssued] = []
        proposals: list[ActionProposed] = []
        outputs: list[ToolOutput] = []
        # Judged as in process: the user's numbers pass only as the user's (asked), never
        # as figures the server computed (known), unless the server adopted them for a
        # proposal or a command.
        known: list[float] = []
        projected: list[float] = []
        asked = stated(t.user)
        vouched: list[Stated] = []
        if r.status_code != 200:
            result.error = f"http {r.status_code}"
            result.failures.append(result.error)
            chunks = []
        else:
            chunks = _sse(r.text)
        text = []
        for c in chunks:
            kind: str = c["type"]
            data: Any = c.get("data")
            if kind == "text-delta":
                text.append(c["delta"])
            elif kind == "data-route":
                result.branch, result.rule = data["branch"], data["rule"]
                result.window = data["window"]["name"] if data["window"] else None
            elif kind == "data-command":
                commands.append(
                    CommandIssued(
                        data["action_id"], data["command_id"], data["command"], data["replayed"]
                    )
                )
                adopted, asked = adopt(data["command"]["value"], asked)
                known += adopted
            elif kind == "data-action":
                proposals.append(ActionProposed(data))
                proposals_seen.append(data["id"])
                adopted, asked = adopt(data["value"], asked)
                known += adopted
            elif kind == "tool-output-available":
                outputs.append(ToolOutput(c["toolCallId"], c["output"]))
                measured, projecting = figures(c["output"])
                known += measured
                projected += projecting
            elif kind == "data-verification":
                # The figures the server vouched for, from what it computed (its context
                # included, which the stream does not show) or as the user's own numbers.
                vouched += [s for n in data["numbers_checked"] for s in stated(n)]
            elif kind == "data-usage":
                result.prompt_tokens = data["prompt_tokens"]
                result.completion_tokens = data["completion_tokens"]
                result.cost = data["cost"]
            elif kind == "error":
                result.error = c["errorText"]
                result.failures.append(f"error {result.error}")
        result.answer = "".join(text).strip()
        # A vouched figure that is one of the user's numbers the stream does not show the
        # server computing is left to the user-number rule, not taken on trust.
        known += [
            f.value for f in vouched if supported(f, known) or not any(same(f, a) for a in asked)
        ]
        score_turn(
            result,
            case,
            index,
            remote.homes,
            commands=commands,
            proposals=proposals,
            outputs=outputs,
            known=known,
            asked=asked,
            projected=projected,
        )
        history.append({"role": "assistant", "content": result.answer or "..."})
        results.append(result)
    for action_id in proposals_seen:  # the next case starts with nothing pending
        await remote.client.post(f"/v1/actions/{action_id}/cancel")
    return results
