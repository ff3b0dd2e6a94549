"""One chat turn, from a routed message to the events a stream encoder sends:

    prepare()   the household's devices, the state the thread's last answer left
                (agent.dialogue), the route, and for a model
                answer the context and the first round's quota reservation, as one frozen
                Prepared value. Everything that can refuse the turn with a plain HTTP error
                (402, 429, 503) happens here, before a response starts.
    events()    the answer as TurnEvents (agent.events): the route, the context, tool calls
                and results, released text, a proposal or a command, the verification and
                the usage.

Every turn takes one slot of the user's rate limit first. Smalltalk, out-of-scope,
clarifying questions, proposals and consent are answered by the server without a model
and without a token quota. Energy and cost questions go to the model with the household
context and typed tools, or to the offline narrator when no model is configured, when the
model fails before its first token, or (if the deployment chose so) when the person is
over budget. Model text is released sentence by sentence, each only after its numbers are
found among the numbers the server computed for this turn; a sentence that states another
number is replaced by the narrator's sentence for the same fact, or dropped. The model
never writes a command: text that looks like one is dropped, and commands come only from a
stored proposal the person confirmed.

The model's loop is bounded three ways (TurnLimits): at most `max_tool_rounds` rounds with
tools and one last round without; at most `max_tool_calls` calls run per round (the model
asked for more gets, for each call past the cap, a tool result saying it was not run, so
that every call it made has its answer); and a deadline for the whole turn, counted from
prepare(). The deadline cuts a model round or a model's tool call where it waits; the turn
then ends as on a failure of the model: before any text reached the person, the narrator
answers (marked degraded), after it, Failed `turn_deadline`. The narrator's own answer is
not cut: its queries have the database's statement timeout.

The turn depends on nothing of the service: TurnDeps brings the database, the model, the
quota, the clock, the limits, where the finished turn is reported (a TurnRecord), and how
the service's drain cuts a turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, aclosing
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, get_args
from uuid import UUID
from zoneinfo import ZoneInfo

from pydantic import BaseModel

from agent import actions, dialogue, narration, narrator, prompts
from agent.errors import WattwiseError
from agent.events import (
    ActionProposed,
    CommandIssued,
    ContextInfo,
    Failed,
    RouteInfo,
    StepEnd,
    StepStart,
    Text,
    ToolInput,
    ToolOutput,
    TurnEvent,
    Usage,
    Verification,
)
from agent.gate import SentenceGate, closest, command_like, echoes, trailing, trails_off
from agent.model import (
    AssistantMessage,
    ChatModel,
    ModelError,
    ModelMessage,
    RoundEnd,
    SystemMessage,
    TextDelta,
    ToolMessage,
)
from agent.verify import Stated, adopt, check, figures, stated
from agent.windows import follow_up
from context.builder import HouseholdContext, build_context
from quota.core import QuotaExceeded, QuotaRefused, RateLimited, Reservation
from quota.prices import estimate_tokens
from quota.service import QuotaService
from router import ActionRef, DeviceRef, Op, Route, route
from router import Branch as RouterBranch
from router.follow import Previous
from telemetry import access, households
from telemetry.households import Device
from telemetry.queries import CONSUMING
from telemetry.windows import Window, southern
from tools import catalog
from tools.base import Branch, ToolContext, ToolDefinition, call, error
from tools.windows import WindowArg, local_dates, resolve

if TYPE_CHECKING:
    from telemetry.db import Conn

    Connect = Callable[[], AbstractAsyncContextManager[Conn]]

log = logging.getLogger("wattwise.turn")

T = TypeVar("T")
Style = Literal["chat", "voice"]
Mode = Literal["fixed", "narrator", "model"]
MAX_TOOL_ROUNDS = 4
MAX_TOOL_CALLS_PER_ROUND = 8
TURN_DEADLINE_SECONDS = 60.0


# -- what a turn is given --------------------------------------------------------------


@dataclass(frozen=True)
class Message:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True)
class TurnLimits:
    gap_cap: timedelta = timedelta(minutes=15)  # the longest a reading's power is held
    action_ttl: timedelta = actions.DEFAULT_TTL  # how long a proposal waits for consent
    over_budget: Literal["refuse", "narrate"] = "refuse"
    spend_currency: str = "USD"
    max_tool_rounds: int = MAX_TOOL_ROUNDS
    max_tool_calls: int = MAX_TOOL_CALLS_PER_ROUND  # run per round
    deadline_seconds: float = TURN_DEADLINE_SECONDS  # the whole turn, from prepare()


@dataclass(frozen=True)
class TurnRecord:
    """A finished turn, for its owner's metrics and logs. `text` is the user's message."""

    turn_id: str
    user_id: UUID
    household_id: UUID
    branch: str
    rule: str
    mode: Mode
    outcome: str  # ok, cancelled, or the code of the Failed it ended with
    degraded: str | None
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    cost: float
    currency: str
    first_text_seconds: float | None
    duration_seconds: float
    text: str


Farewell = Callable[[], TurnEvent]
Bound = Callable[[AsyncGenerator[TurnEvent], Farewell], AsyncGenerator[TurnEvent]]


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _unobserved(record: TurnRecord) -> None:
    pass


def _unbounded(answer: AsyncGenerator[TurnEvent], farewell: Farewell) -> AsyncGenerator[TurnEvent]:
    return answer


@dataclass(frozen=True)
class TurnDeps:
    """What a turn needs from the process around it. `bound(answer, farewell)` may cut the
    answer where it waits (a drain deadline), closing it and ending with `farewell()`."""

    connection: Connect  # lends a pooled connection
    model: ChatModel | None  # None: the offline narrator answers
    quota: QuotaService
    limits: TurnLimits = field(default_factory=TurnLimits)
    clock: Callable[[], datetime] = _utc_now
    observe: Callable[[TurnRecord], None] = _unobserved
    bound: Bound = _unbounded


# -- what prepare() found --------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    """The question's window, as a tool argument and in UTC."""

    arg: WindowArg
    bounds: Window


@dataclass(frozen=True)
class ModelInput:
    """What the model's first round is sent, and the reservation it runs on."""

    model: ChatModel
    branch: Branch
    context: HouseholdContext
    prompt: tuple[ModelMessage, ...]
    tools: tuple[ToolDefinition, ...]
    reservation: Reservation


@dataclass(frozen=True)
class Prepared:
    route: Route
    devices: tuple[Device, ...]
    state: dialogue.State | None  # what the answer this message follows left
    period: Period | None  # energy, cost and action questions
    mode: Mode
    deadline: float  # loop time by which the answer must have ended
    degraded: str | None = None  # why the narrator answers a question meant for the model
    model_input: ModelInput | None = None  # exactly when mode is "model"
    compared: Period | None = None  # "compare that with last month": the second window

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.devices]


@dataclass
class Ledger:
    """What this turn computed and said, for verification, the usage and its record."""

    known: list[float] = field(default_factory=list)
    projected: list[float] = field(default_factory=list)  # stated only as projections
    # The numbers of the user's message: a sentence may repeat them only as the user's.
    asked: list[Stated] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    replaced: list[dict[str, str]] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)
    released: bool = False
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_micro: int = 0
    degraded: str | None = None
    # The narrator's sentences for the question, computed once, as stand-ins.
    narration: list[str] | None = None


class DeadlinePassed(Exception):
    """The turn's deadline passed while it waited for the model or a tool."""


# -- the turn --------------------------------------------------------------------------


class Turn:
    def __init__(
        self,
        deps: TurnDeps,
        *,
        user: access.User,
        seen: access.Visible,
        messages: list[Message],
        style: Style = "chat",
        turn_id: str,
        now: datetime | None = None,
    ) -> None:
        if not messages or messages[-1].role != "user":
            raise ValueError("a turn ends with the user's message")
        self.deps = deps
        self.user = user
        self.household = seen.household
        self.messages = tuple(messages)
        self.style = style
        self.turn_id = turn_id
        self.now = now or deps.clock()
        self.ledger = Ledger()
        self.shown: str | None = None  # the proposal this answer showed, for agent.dialogue
        self._prepared: Prepared | None = None
        self._started = time.perf_counter()

    @property
    def text(self) -> str:
        return self.messages[-1].content

    @property
    def today(self) -> date:
        return self.now.astimezone(ZoneInfo(self.household.timezone)).date()

    @property
    def prepared(self) -> Prepared:
        if self._prepared is None:
            raise RuntimeError("prepare() the turn first")
        return self._prepared

    # -- before the response -----------------------------------------------------------

    async def prepare(self) -> Prepared:
        """Take the turn's slot of the user's rate limit, route the message and, for a model
        answer, reserve its first round. Raises the quota's refusals (over budget only with
        over_budget="refuse")."""
        deps, limits = self.deps, self.deps.limits
        deadline = asyncio.get_running_loop().time() + limits.deadline_seconds
        # Every turn counts, first: one that needs no model (a proposal, smalltalk) costs
        # the database as much as any. Its model rounds then take no slot of their own.
        await deps.quota.admit(self.user.id)
        async with deps.connection() as conn:
            devices = tuple(await households.list_devices(conn, self.household.id))
            state = await dialogue.recall(
                conn, household_id=self.household.id, user_id=self.user.id, messages=self.messages
            )
        refs = [DeviceRef(d.name, d.kind, d.controllable) for d in devices]
        proposed = state is not None and state.proposal is not None
        r = route(self.text, refs, pending_action=proposed, previous=_previous(state))
        period = compared = None
        if r.branch in ("energy", "cost", "action"):
            before = state.window if state is not None and r.follows else None
            span = (before.name, before.first, before.last) if before else None
            south = southern(self.household.timezone)
            arg = follow_up(
                None if r.against_previous else r.window, self.today, span, southern=south
            )
            period = self._period(arg)
            if r.against_previous and r.window is not None:
                again = follow_up(r.window, self.today, span, southern=south)
                compared = self._period(again)
            elif len(r.windows) >= 2 and not (
                r.branch == "cost"
                and any(d.kind in CONSUMING for d in devices if d.name in r.devices)
            ):  # "this month against last month"; a device's cost answers the first window.
                # "yesterday with the day before": a relative second window is before the first.
                first = _span(arg.name, period.bounds)
                again = follow_up(
                    r.windows[1], self.today, (first.name, first.first, first.last), southern=south
                )
                compared = self._period(again)
            elif (
                r.follows
                and r.window is None
                and state is not None
                and state.compared is not None
                and r.devices == state.devices
            ):  # "and what did that cost?" after a comparison: the same two windows
                c = state.compared
                again = follow_up(None, self.today, (c.name, c.first, c.last), southern=south)
                compared = self._period(again)
        found = Prepared(r, devices, state, period, "fixed", deadline, compared=compared)
        if r.branch in ("energy", "cost") and not r.clarify:
            found = await self._prepare_answer(found, r.branch)
        self._prepared = found
        self.ledger.degraded = found.degraded
        return found

    @staticmethod
    def _device_cost(r: Route, devices: tuple[Device, ...]) -> bool:
        """Whether the question is what a consuming device it names cost."""
        return r.branch == "cost" and any(
            d.kind in CONSUMING for d in devices if d.name in r.devices
        )

    def _period(self, arg: WindowArg) -> Period:
        return Period(arg, resolve(arg, timezone=self.household.timezone, now=self.now))

    async def _prepare_answer(self, found: Prepared, branch: Branch) -> Prepared:
        """An energy or cost question: the model's first round, reserved, or the narrator."""
        model = self.deps.model
        if model is None:
            return dataclasses.replace(found, mode="narrator")
        context = await build_context(
            self.deps.connection,
            self.household,
            now=self.now,
            cap=self.deps.limits.gap_cap,
            estimate=estimate_tokens,
        )
        history = [(m.role, m.content) for m in self.messages]
        bounds = found.period.bounds if found.period else None
        prompt = prompts.prompt(
            history, context.text, style=self.style, window=bounds, route=found.route
        )
        tools = catalog.definitions(branch)
        try:
            reservation = await model.reserve(
                user_id=self.user.id,
                household_id=self.household.id,
                messages=prompt,
                tools=tools,
                turn_id=self.turn_id,
            )
        except QuotaExceeded as exc:
            if self.deps.limits.over_budget != "narrate":
                raise
            return dataclasses.replace(found, mode="narrator", degraded=_why_not(exc))
        given = ModelInput(model, branch, context, prompt, tools, reservation)
        return dataclasses.replace(found, mode="model", model_input=given)

    # -- the answer --------------------------------------------------------------------

    async def events(self) -> AsyncGenerator[TurnEvent]:
        """The answer's events. A turn the service cuts (TurnDeps.bound) stops where it
        waits (its model request closed, its quota settled) and ends with the farewell,
        Failed `shutting_down`. On every way out, the turn's reservation is closed and the
        turn is reported once (TurnDeps.observe)."""
        p = self.prepared
        first_text: float | None = None
        outcome = "cancelled"  # unless it reaches its end
        failed: str | None = None
        said: list[str] = []
        try:
            async with aclosing(self.deps.bound(self._answer(p), _farewell)) as answer:
                async for event in answer:
                    if isinstance(event, Text):
                        said.append(event.text)
                        if first_text is None:
                            first_text = time.perf_counter()
                    if isinstance(event, Failed):
                        failed = event.code
                    if isinstance(event, Usage) and failed is None:
                        # Before the last event: a client that sends its next message the
                        # moment this answer ends finds the answer's state.
                        await self._remember(p, "".join(said))
                    yield event
            outcome = failed or "ok"
        finally:
            r = p.model_input.reservation if p.model_input is not None else None
            if r is not None and not r.closed and not r.owned:
                # The answer ended before its first round took the reservation over.
                await asyncio.shield(self.deps.quota.release(r))
            self.deps.observe(self._record(p, outcome, first_text))

    async def _remember(self, p: Prepared, answer: str) -> None:
        """Record the state this complete answer leaves (agent.dialogue)."""
        r = p.route
        window = compared = asked = None
        if p.period is not None:
            window = _span(p.period.arg.name, p.period.bounds)
        if p.compared is not None:
            compared = _span(p.compared.arg.name, p.compared.bounds)
        if r.clarify and r.branch in ("energy", "cost", "action"):
            order = r.action
            asked = dialogue.Asked(
                r.branch,
                r.ambiguous,
                order.op if order else None,
                order.value if order else None,
            )
        state = dialogue.State(
            branch=r.branch,
            rule=r.rule,
            window=window,
            compared=compared,
            devices=r.devices,
            proposal=self.shown,
            asked=asked,
        )
        before = p.state
        if r.branch in ("smalltalk", "out_of_scope") and before is not None and before.window:
            # "thanks!", "why?" between two questions: the next follow-up ("and the day
            # before that?") still reads against the last question's window and devices,
            # but nothing this answer did not show waits for a yes.
            state = dataclasses.replace(before, proposal=None, asked=None)
        async with self.deps.connection() as conn:
            await dialogue.record(
                conn,
                turn_id=self.turn_id,
                household_id=self.household.id,
                user_id=self.user.id,
                question=self.text,
                answer=answer,
                state=state,
            )

    def _record(self, p: Prepared, outcome: str, first_text: float | None) -> TurnRecord:
        ended = time.perf_counter()
        ledger = self.ledger
        return TurnRecord(
            turn_id=self.turn_id,
            user_id=self.user.id,
            household_id=self.household.id,
            branch=p.route.branch,
            rule=p.route.rule,
            mode=p.mode,
            outcome=outcome,
            degraded=ledger.degraded,
            model=p.model_input.model.name if p.model_input is not None else None,
            prompt_tokens=ledger.prompt_tokens,
            completion_tokens=ledger.completion_tokens,
            cost=ledger.cost_micro / 1_000_000,
            currency=self.deps.limits.spend_currency,
            first_text_seconds=first_text - self._started if first_text is not None else None,
            duration_seconds=ended - self._started,
            text=self.text,
        )

    async def _answer(self, p: Prepared) -> AsyncGenerator[TurnEvent]:
        yield RouteInfo(p.route, p.period.arg if p.period else None)
        self.ledger.asked += stated(self.text, p.names)
        if p.model_input is not None:
            async for event in self._model(p, p.model_input):
                yield event
        elif p.mode == "narrator":
            yield StepStart()
            async for event in self._narrate(p):
                yield event
            yield StepEnd()
        else:
            yield StepStart()
            async for event in self._fixed(p):
                yield event
            yield StepEnd()
        if p.mode != "fixed":
            yield Verification(
                tuple(self.ledger.checked),
                tuple(self.ledger.replaced),
                tuple(self.ledger.dropped),
                "model" if p.mode == "model" else "narrator",
                self.ledger.degraded,
            )
        yield await self._usage(p)

    def _say(self, sentence: str) -> Text:
        self.ledger.released = True
        text = narrator.spoken(sentence) if self.style == "voice" else sentence
        return Text(text)

    def _said(self, sentences: list[str]) -> list[Text]:
        return [self._say(s + " ") for s in sentences]

    async def _usage(self, p: Prepared) -> Usage:
        remaining = None
        if p.model_input is not None:
            try:
                remaining = await self.deps.quota.usage(self.user.id)
            except QuotaRefused:
                remaining = None
        return Usage(
            self.ledger.prompt_tokens,
            self.ledger.completion_tokens,
            self.ledger.cost_micro / 1_000_000,
            self.deps.limits.spend_currency,
            p.model_input.model.name if p.model_input is not None else None,
            remaining,
        )

    # -- answers without a model -------------------------------------------------------

    async def _fixed(self, p: Prepared) -> AsyncIterator[TurnEvent]:
        r = p.route
        if r.branch in ("smalltalk", "out_of_scope"):
            yield self._say(narrator.fixed(r.rule))
        elif r.branch == "consent":
            async for event in self._consent(p):
                yield event
        elif r.branch == "action" and not r.clarify:
            async for event in self._propose(p):
                yield event
        else:  # which device? (an action without one, or an ambiguous mention)
            yield self._say(narrator.clarify(r.ambiguous or r.devices))

    async def _propose(self, p: Prepared) -> AsyncIterator[TurnEvent]:
        r = p.route
        action = r.action
        if self.user.role == "support":
            yield self._say(
                "Support staff cannot change a household's devices; a resident can ask me."
            )
            return
        if action is None or action.device is None:
            if r.rule == "action.unsupported":
                yield self._say(
                    "I can switch a device on or off, limit a charger's current or set a "
                    "battery's reserve, but not that."
                )
            else:
                yield self._say(narrator.clarify(r.ambiguous or r.devices))
            return
        device = next((d for d in p.devices if d.name == action.device), None)
        if device is None:
            yield self._say(narrator.clarify(r.ambiguous or r.devices))
            return
        try:
            async with self.deps.connection() as conn:
                proposal = await actions.propose(
                    conn,
                    household_id=self.household.id,
                    user=self.user,
                    device=device,
                    op=action.op,
                    value=action.value,
                    ttl=self.deps.limits.action_ttl,
                )
        except WattwiseError as exc:
            # The server's own limits ("a whole number from 6 to 32") are its figures.
            self.ledger.known += [f.value for f in stated(exc.message)]
            yield self._say(f"I can't do that: {exc.message}")
            return
        self._adopt(proposal.value)
        self.shown = proposal.id
        yield ActionProposed(proposal.public())
        shown = catalog.Proposal(
            fresh_as_of=None,
            device_name=proposal.device_name,
            op=proposal.op,
            value=proposal.value,
            command=proposal.command,
            requires_consent=True,
        )
        for text in self._said(narrator.proposal(shown)):
            yield text
        if r.also_report:
            async for event in self._narrate(p, report_only=True):
                yield event

    def _adopt(self, value: str) -> None:
        """The value the person asked for, as the server validated it for a proposal or a
        command: the server's figure from now on (verify.adopt)."""
        known, self.ledger.asked = adopt(value, self.ledger.asked)
        self.ledger.known += known

    async def _consent(self, p: Prepared) -> AsyncIterator[TurnEvent]:
        """An answer to the proposal the previous answer showed, and to no other."""
        proposal = p.state.proposal if p.state is not None else None
        if proposal is None:  # the router gives consent only after a proposal
            raise RuntimeError("consent without a proposal to answer")
        if p.route.consent == "no":
            # Expired or already gone: nothing to cancel.
            async with self.deps.connection() as conn:
                with contextlib.suppress(WattwiseError):
                    await actions.cancel(conn, proposal, self.user)
            yield self._say("OK, I won't change anything.")
            return
        if p.route.consent is None:  # consent.unclear: ask again, exactly
            async for event in self._ask_again(proposal):
                yield event
            return
        try:
            async with self.deps.connection() as conn:
                done = await actions.confirm(conn, proposal, self.user)
        except WattwiseError as exc:
            yield self._say(f"I did not send anything: {exc.message}")
            return
        yield CommandIssued(done.action.id, str(done.command_id), done.command, done.replayed)
        c = done.command
        self._adopt(c["value"])
        yield self._say(narrator.sent(c))
        if self.style == "chat":
            block = json.dumps(c, separators=(", ", ": "))
            self.ledger.released = True
            yield Text(narrator.fenced("json", block))

    async def _ask_again(self, proposal: str) -> AsyncIterator[TurnEvent]:
        """The proposal repeated with its exact command, for an answer that was not a plain
        yes or no; it stays bound to this thread."""
        try:
            async with self.deps.connection() as conn:
                action, _ = await actions.get(conn, proposal, self.user)
        except WattwiseError:
            action = None
        if action is None or action.status != "proposed" or action.expires_at <= self.now:
            yield self._say(
                "I have not changed anything, and the change I proposed is no longer waiting; "
                "ask me again if you still want it."
            )
            return
        self._adopt(action.value)
        self.shown = action.id  # still bound: the next answer may confirm it
        block = json.dumps(action.command, separators=(", ", ": "))
        chat = self.style == "chat"
        sentences = narrator.ask_again(
            action.op, action.device_name, action.value, shows_command=chat
        )
        for text in self._said(sentences):
            yield text
        if chat:
            self.ledger.released = True
            yield Text(narrator.fenced("json", block))

    # -- the narrator ------------------------------------------------------------------

    def _calls(self, p: Prepared, report_only: bool = False) -> list[tuple[str, BaseModel]]:
        if p.period is None:
            raise RuntimeError(f"the narrator needs a window; {p.route.branch} has none")
        return narration.calls(
            p.route,
            p.period.arg,
            p.period.bounds,
            text=self.text,
            report_only=report_only,
            compared=p.compared.arg if p.compared is not None else None,
            kinds={d.name: d.kind for d in p.devices},
        )

    async def _run_tool(
        self, p: Prepared, name: str, arguments: str, branch: Branch
    ) -> dict[str, Any]:
        """A tool call for `branch` (the model gets only its branch's tools)."""
        async with self.deps.connection() as conn:
            ctx = ToolContext(conn, self.household, p.devices, self.now, self.deps.limits.gap_cap)
            result = await call(catalog.TOOLS, name, arguments, ctx, branch)
        if "error" not in result:
            measured, projected = figures(result)
            self.ledger.known += measured
            self.ledger.projected += projected
        return result

    async def _narrate(self, p: Prepared, report_only: bool = False) -> AsyncIterator[TurnEvent]:
        if self.ledger.degraded:
            yield self._say(
                f"(This answer comes from the offline narrator because {self.ledger.degraded}.) "
            )
        sent_context = False
        tz = self.household.timezone
        for i, (name, args) in enumerate(self._calls(p, report_only)):
            call_id = f"{self.turn_id}-n{i}"
            arguments = args.model_dump(mode="json")
            yield ToolInput(call_id, name, arguments)
            result = await self._run_tool(p, name, json.dumps(arguments), narration.branch(name))
            yield ToolOutput(call_id, result)
            if not sent_context and "error" not in result:
                sent_context = True
                yield self._context_info(result)
            sentences = narration.sentences(name, result, p.route, tz)
            self.ledger.checked += [s.text for line in sentences for s in stated(line)]
            for text in self._said(sentences):
                yield text

    def _context_info(self, result: dict[str, Any]) -> ContextInfo:
        fresh = result.get("fresh_as_of")
        window = result.get("window") or result.get("a")
        return ContextInfo(
            datetime.fromisoformat(fresh) if fresh else None,
            catalog.WindowOut.model_validate(window) if window else None,
            self.household.timezone,
        )

    async def _narration(self, p: Prepared) -> list[str]:
        """The narrator's sentences for this question, computed once, for replacing a model
        sentence whose numbers did not check out."""
        if self.ledger.narration is None:
            self.ledger.narration = []
            for name, args in self._calls(p):
                arguments = args.model_dump_json()
                result = await self._run_tool(p, name, arguments, narration.branch(name))
                self.ledger.narration += narration.sentences(
                    name, result, p.route, self.household.timezone
                )
        return self.ledger.narration

    # -- the model ---------------------------------------------------------------------

    async def _model(self, p: Prepared, given: ModelInput) -> AsyncIterator[TurnEvent]:
        ctx = given.context
        window = None
        if p.period is not None:
            w = p.period.bounds
            window = catalog.WindowOut(name=w.name, start=w.start, end=w.end, timezone=w.timezone)
        yield ContextInfo(ctx.fresh_as_of, window, ctx.timezone)
        self.ledger.known += list(ctx.facts.values())
        limits = self.deps.limits
        messages: list[ModelMessage] = list(given.prompt)
        reservation: Reservation | None = given.reservation
        in_step = streamed = False
        try:
            for round_ in range(limits.max_tool_rounds + 1):
                last = round_ == limits.max_tool_rounds
                if last:
                    messages.append(SystemMessage(prompts.LAST_ROUND))
                gate = SentenceGate()
                end: RoundEnd | None = None
                yield StepStart()
                in_step, streamed = True, False
                rounds = given.model.round(
                    user_id=self.user.id,
                    household_id=self.household.id,
                    messages=tuple(messages),
                    tools=None if last else given.tools,
                    turn_id=self.turn_id,
                    reservation=reservation,
                )
                reservation = None  # the first round's; later rounds reserve their own
                # aclosing: the round's quota is settled the moment this turn stops, however
                # it stops (a hang-up cancels it here), not when the generator is collected.
                async with aclosing(rounds) as stream:
                    while (event := await _within(p.deadline, anext(stream, None))) is not None:
                        streamed = True
                        if isinstance(event, TextDelta):
                            for sentence in gate.feed(event.text):
                                async for out in self._release(p, sentence):
                                    yield out
                        else:
                            end = event
                            self._count(given, event)
                for sentence in gate.flush():
                    async for out in self._release(p, sentence, last=True):
                        yield out
                yield StepEnd()
                in_step, streamed = False, False
                if end is None or not end.tool_calls or last:
                    break
                messages.append(AssistantMessage(gate.raw or None, end.tool_calls))
                for i, c in enumerate(end.tool_calls):
                    yield ToolInput(c.id, c.name, _json_or_text(c.arguments))
                    if i < limits.max_tool_calls:
                        run = self._run_tool(p, c.name, c.arguments, given.branch)
                        result = await _within(p.deadline, run)
                    else:
                        result = error(
                            "too_many_tool_calls", prompts.too_many_calls(limits.max_tool_calls)
                        )
                    yield ToolOutput(c.id, result)
                    messages.append(ToolMessage(c.id, json.dumps(result)))
        except (ModelError, QuotaRefused, DeadlinePassed) as exc:
            log.warning("model round failed (%s): %s", type(exc).__name__, exc)
            if streamed or self.ledger.released:
                if in_step:
                    yield StepEnd()
                yield _failed(exc)
                return
            # Nothing reached the person yet: the narrator answers instead.
            self.ledger.degraded = _degraded(exc)
            if not in_step:
                yield StepStart()
            async for out in self._narrate(p):
                yield out
            yield StepEnd()
            return
        if not self.ledger.released:
            # The model said nothing usable: the narrator answers instead.
            async for out in self._narrate(p):
                yield out

    def _count(self, given: ModelInput, end: RoundEnd) -> None:
        prompt, completion = end.usage
        price = self.deps.quota.prices.of(given.model.name)
        self.ledger.prompt_tokens += prompt
        self.ledger.completion_tokens += completion
        self.ledger.cost_micro += price.cost_micro(prompt, completion)

    async def _release(
        self, p: Prepared, sentence: str, *, last: bool = False
    ) -> AsyncIterator[TurnEvent]:
        """A model sentence, if its numbers are the server's; else the narrator's sentence
        for the same fact; else nothing. A sentence that says the question back, or (`last`:
        what followed the round's last sentence end) trails off, is dropped."""
        body = sentence.strip()
        if not body:
            if sentence:
                yield Text(sentence)
            return
        if command_like(body) or echoes(body, self.text):
            self.ledger.dropped.append(body)
            return
        verdict = check(body, self.ledger.known, self.ledger.asked, p.names, self.ledger.projected)
        if last and trails_off(body) and len(verdict.checked) == len(verdict.quoted):
            self.ledger.dropped.append(body)  # unfinished, and no figure of the server's
            return
        if verdict.ok:
            self.ledger.checked += [s.text for s in verdict.checked]
            yield self._say(sentence)
            return
        candidates = await self._narration(p)
        replacement = closest(body, verdict.unsupported, candidates)
        if replacement is None:
            self.ledger.dropped.append(body)
            return
        candidates.remove(replacement)
        self.ledger.replaced.append({"sentence": body, "by": replacement})
        self.ledger.checked += [s.text for s in stated(replacement)]
        yield self._say(replacement + trailing(sentence))


# -- helpers ---------------------------------------------------------------------------


async def _within(deadline: float, awaitable: Awaitable[T]) -> T:
    """`awaitable`'s result, or DeadlinePassed once the loop's clock reaches `deadline`
    (what it waited on is cancelled where it waits)."""
    try:
        async with asyncio.timeout_at(deadline) as timeout:
            return await awaitable
    except TimeoutError:
        if timeout.expired():
            raise DeadlinePassed from None
        raise  # the awaitable's own timeout, not the turn's


def _previous(state: dialogue.State | None) -> Previous | None:
    """What the router reads a follow-up against."""
    if state is None or state.branch not in get_args(RouterBranch):
        return None
    asked = state.asked
    action = None
    if asked is not None and asked.op in get_args(Op) and asked.value is not None:
        action = ActionRef(cast(Op, asked.op), asked.value, None)
    return Previous(
        branch=cast(RouterBranch, state.branch),
        devices=state.devices,
        asked=asked.candidates if asked is not None else None,
        action=action,
    )


def _span(name: str, bounds: Window) -> dialogue.Span:
    """A window's local dates, both included."""
    return dialogue.Span(name, *local_dates(bounds))


def _farewell() -> Failed:
    return Failed(
        "shutting_down",
        "The service is restarting and stopped this answer; ask again in a moment.",
    )


def _failed(exc: Exception) -> Failed:
    """How a model answer that had begun ends, when the model fails or time runs out."""
    if isinstance(exc, DeadlinePassed):
        return Failed("turn_deadline", "The answer took too long and was stopped part-way.")
    return Failed("model_failed", "The model stopped part-way through the answer.")


def _degraded(exc: Exception) -> str:
    """Why the narrator answers instead of the model, as the end of "...because {reason}"."""
    if isinstance(exc, QuotaRefused):
        return _why_not(exc)
    if isinstance(exc, DeadlinePassed):
        return "the language model took too long"
    return "the language model is unavailable"


def _why_not(exc: QuotaRefused) -> str:
    if isinstance(exc, QuotaExceeded):
        return {
            "daily": "your daily token quota is used up",
            "monthly": "your monthly token quota is used up",
            "spend_cap": "the service's monthly spending cap is reached",
        }[exc.limit]
    if isinstance(exc, RateLimited):
        return f"you are over the rate limit for {exc.retry_after} s"
    return "usage accounting is unavailable"


def _json_or_text(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments or "{}")
    except json.JSONDecodeError:
        return {"_unparsed": arguments[:2000]}
    return value if isinstance(value, dict) else {"_value": value}
