"""The `wattwise` command: serve, demo, migrate, seeding, and the administration commands
that mirror the admin API (same validation, same rules).

Output meant for scripts (an id, a token) goes alone on its line to stdout; everything
else goes to stderr. A refused command exits with 2 and says why in one line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from uuid import UUID

from pydantic import BaseModel, SecretStr, ValidationError

from demo import embedded
from service import logs, schemas
from service.settings import ConfigError, Settings, check, load
from telemetry import access, households, kinds
from telemetry.db import connect
from telemetry.migrate import migrate

if TYPE_CHECKING:
    from telemetry.db import Conn

log = logging.getLogger("wattwise.cli")

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class CommandError(Exception):
    """A refusal to report in one line, exit code 2."""


def resolve_settings(
    *,
    demo: bool = False,
    needs_secret: bool = True,
    serving: bool = False,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Settings from the environment, with the embedded defaults of local runs filled in;
    `serving` (serve, demo) switches logging to the service's format and level first.

    A local run (no DATABASE_URL, not production) uses the embedded PostgreSQL and, unless
    one is given, the secret kept in the data directory: `wattwise token` then signs tokens
    that a running `wattwise demo` accepts. `overrides` (command-line flags) win over the
    environment and are validated like it.
    """
    given = dict(overrides or {})
    if demo:
        given.setdefault("env", os.environ.get("WATTWISE_ENV", "demo"))
    settings = load(**given)
    local = settings.database_url is None and not settings.production
    if settings.jwt_secret is None and (local or settings.env == "demo"):
        secret = embedded.demo_secret(settings.data_dir)
        settings = settings.model_copy(update={"jwt_secret": SecretStr(secret)})
    checked, warnings = check(settings, needs_secret=needs_secret)
    if serving:
        logs.configure(level=checked.log_level, fmt=checked.logs_as)
    for warning in warnings:
        log.warning("configuration: %s", warning)
    if local:
        print(f"using the embedded PostgreSQL in {settings.data_dir}/pgdata", file=sys.stderr)
        checked = checked.model_copy(
            update={"database_url": embedded.database_url(settings.data_dir)}
        )
    return checked


def _validated(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = ".".join(str(p) for p in err["loc"])
        raise CommandError(f"{field}: {err['msg']}") from exc


async def _with_conn(settings: Settings, work: Callable[[Conn], Awaitable[T]]) -> T:
    assert settings.database_url is not None
    conn = await connect(settings.database_url)
    try:
        await migrate(conn)
        return await work(conn)
    finally:
        await conn.close()


async def _user(conn: Conn, email: str) -> access.User:
    user = await access.get_user_by_email(conn, email)
    if user is None:
        raise CommandError(f"no user with email {email}")
    return user


async def _household(conn: Conn, household_id: str) -> households.Household:
    try:
        found = await households.get_household(conn, UUID(household_id))
    except ValueError:
        found = None
    if found is None:
        raise CommandError(f"no household with id {household_id}")
    return found


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> None:
    async def work(conn: Conn) -> None:
        return None  # _with_conn migrates; nothing else to do

    asyncio.run(_with_conn(settings, work))
    print("migrations are current", file=sys.stderr)


def cmd_seed_demo(settings: Settings, args: argparse.Namespace) -> None:
    from demo.seed import seed_demo

    async def work(conn: Conn) -> None:
        seeded = await seed_demo(conn, days=args.days, seed=args.seed)
        print(
            f"seeded {seeded.household.name}: {len(seeded.device_ids)} devices, "
            f"{seeded.readings} readings",
            file=sys.stderr,
        )
        print(seeded.household.id)

    asyncio.run(_with_conn(settings, work))


def cmd_refresh(settings: Settings, args: argparse.Namespace) -> None:
    from telemetry.rollups import rebuild, refresh_all

    cap = timedelta(seconds=settings.gap_cap_seconds)

    async def work(conn: Conn) -> None:
        written = await (rebuild(conn, cap=cap) if args.rebuild else refresh_all(conn, cap=cap))
        print(f"rollups current: {written} buckets written", file=sys.stderr)

    asyncio.run(_with_conn(settings, work))


def cmd_user_add(settings: Settings, args: argparse.Namespace) -> None:
    body = _validated(schemas.UserIn, {"email": args.email, "role": args.role})

    async def work(conn: Conn) -> None:
        try:
            user = await access.create_user(conn, email=body.email, role=body.role)
        except access.DuplicateEmail as exc:
            raise CommandError(f"a user with email {body.email} exists") from exc
        print(user.id)

    asyncio.run(_with_conn(settings, work))


def cmd_token(settings: Settings, args: argparse.Namespace) -> None:
    from service.deps import token_issuer

    async def work(conn: Conn) -> None:
        user = await _user(conn, args.user)
        ttl = timedelta(minutes=args.ttl_minutes or settings.token_ttl_minutes)
        print(token_issuer(settings).issue(user.id, ttl=ttl))

    asyncio.run(_with_conn(settings, work))


def cmd_household_add(settings: Settings, args: argparse.Namespace) -> None:
    try:
        tariff = json.loads(args.tariff)
    except json.JSONDecodeError as exc:
        raise CommandError(f"--tariff is not JSON: {exc}") from exc
    body = _validated(
        schemas.HouseholdIn, {"name": args.name, "timezone": args.timezone, "tariff": tariff}
    )

    async def work(conn: Conn) -> None:
        created = await households.create_household(
            conn, name=body.name, timezone=body.timezone, tariff=body.tariff
        )
        print(created.id)

    asyncio.run(_with_conn(settings, work))


def cmd_device_add(settings: Settings, args: argparse.Namespace) -> None:
    body = _validated(
        schemas.DeviceIn,
        {
            "name": args.name,
            "kind": args.kind,
            "controllable": args.controllable,
            "max_watts": args.max_watts,
        },
    )

    async def work(conn: Conn) -> None:
        household = await _household(conn, args.household)
        try:
            device = await households.create_device(
                conn,
                household_id=household.id,
                name=body.name,
                kind=body.kind,
                controllable=body.controllable,
                max_watts=body.max_watts,
            )
        except households.InvalidDeviceName as exc:
            raise CommandError(f"name: {exc.reason}") from exc
        except households.ConfusableDeviceName as exc:
            raise CommandError(
                f"{exc.args[0]} looks like {exc.existing}, a device of the household"
            ) from exc
        except households.DuplicateDeviceName as exc:
            raise CommandError(f"the household already has a device named {exc.args[0]}") from exc
        print(device.id)

    asyncio.run(_with_conn(settings, work))


def cmd_member_add(settings: Settings, args: argparse.Namespace) -> None:
    async def work(conn: Conn) -> None:
        household = await _household(conn, args.household)
        user = await _user(conn, args.user)
        body = _validated(schemas.MemberIn, {"user_id": user.id, "role": args.role})
        if body.role not in access.MEMBER_ROLES_BY_USER_ROLE[user.role]:
            raise CommandError(f"a {user.role} user cannot be bound as {body.role}")
        await access.add_member(conn, household_id=household.id, user_id=user.id, role=body.role)

    asyncio.run(_with_conn(settings, work))


def cmd_member_remove(settings: Settings, args: argparse.Namespace) -> None:
    _end_access(settings, args, access.remove_member, "is not bound to this household")


def cmd_support_remove(settings: Settings, args: argparse.Namespace) -> None:
    _end_access(settings, args, access.remove_support, "is not assigned to this household")


def _end_access(
    settings: Settings,
    args: argparse.Namespace,
    remove: Callable[..., Awaitable[bool]],
    none: str,
) -> None:
    """Unbind the user `args.user` from the household `args.household` with `remove`
    (access.remove_member or remove_support), then announce it; `none`: why not, if it was
    not there to remove."""

    async def work(conn: Conn) -> None:
        household = await _household(conn, args.household)
        user = await _user(conn, args.user)
        if not await remove(conn, household_id=household.id, user_id=user.id):
            raise CommandError(f"{user.email} {none}")
        await _announce(settings, user.id, household.id)

    asyncio.run(_with_conn(settings, work))


def cmd_user_revoke_tokens(settings: Settings, args: argparse.Namespace) -> None:
    async def work(conn: Conn) -> None:
        user = await _user(conn, args.email)
        after = await access.revoke_tokens_before_now(conn, user.id)
        if after is None:  # deleted meanwhile
            raise CommandError(f"no user with email {args.email}")
        await _announce(settings, user.id, None)
        print(after.isoformat())

    asyncio.run(_with_conn(settings, work))


async def _announce(settings: Settings, user_id: UUID, household_id: UUID | None) -> None:
    """Tell the running service's open live streams that the user's access ended, as the
    API's twin of the command does (service.routes.admin); the change is in PostgreSQL
    already, so without Redis (or when it is down) the streams meet it at their resync."""
    if settings.redis_url is None:
        return
    from service.deps import redis_client
    from service.live import LiveHub, Revocation

    client = redis_client(settings, settings.redis_url)
    try:
        await LiveHub(client, prefix=settings.quota_prefix).revoke(
            Revocation(user_id, household_id)
        )
    finally:
        await client.aclose()


def cmd_support_add(settings: Settings, args: argparse.Namespace) -> None:
    async def work(conn: Conn) -> None:
        household = await _household(conn, args.household)
        user = await _user(conn, args.user)
        body = _validated(schemas.SupportIn, {"user_id": user.id, "expires_at": args.expires_at})
        if user.role != "support":
            raise CommandError(f"{user.email} is a {user.role} user, not support")
        await access.assign_support(
            conn, household_id=household.id, user_id=user.id, expires_at=body.expires_at
        )

    asyncio.run(_with_conn(settings, work))


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    from service.server import serve

    serve(settings)


def cmd_ask(settings: Settings, args: argparse.Namespace) -> None:
    """One turn in process, as `--as` (default: the demo's resident), streamed to stdout;
    the route, the freshness and the usage go to stderr."""
    from service.ask import ask

    code = asyncio.run(
        ask(
            settings,
            args.question,
            email=args.as_email,
            household=args.household,
            voice=args.voice,
        )
    )
    if code:
        raise CommandError(code)


def cmd_demo(settings: Settings, args: argparse.Namespace) -> None:
    from service.demo_command import run_demo

    run_demo(settings, days=args.days)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wattwise", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the service with the environment's settings")
    serve.add_argument("--host", help="address to listen on (default: WATTWISE_HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (default: WATTWISE_PORT)")
    serve.add_argument(
        "--workers", type=int, help="processes on the one socket (default: WATTWISE_WORKERS)"
    )
    demo = sub.add_parser("demo", help="run the service on embedded defaults with a demo home")
    demo.add_argument("--days", type=float, default=30, help="days of demo telemetry")
    demo.add_argument("--port", type=int, help="port to listen on (default: WATTWISE_PORT)")
    sub.add_parser("migrate", help="apply pending database migrations")
    ask = sub.add_parser("ask", help="ask the assistant one question; streams the answer")
    ask.add_argument("question")
    ask.add_argument("--household", help="household id (default: the user's only household)")
    ask.add_argument(
        "--as", dest="as_email", default="demo@wattwise.local", help="the asking user's email"
    )
    ask.add_argument("--voice", action="store_true", help="answer in the voice style")
    seed = sub.add_parser("seed-demo", help="create a demo household with synthetic telemetry")
    seed.add_argument("--days", type=float, default=30)
    seed.add_argument("--seed", type=int, default=1)

    refresh = sub.add_parser("refresh", help="bring the energy rollups up to date")
    refresh.add_argument(
        "--rebuild", action="store_true", help="recompute every bucket (after a gap-cap change)"
    )

    user = sub.add_parser("user", help="manage users").add_subparsers(dest="action", required=True)
    user_add = user.add_parser("add", help="create a user; prints its id")
    user_add.add_argument("email")
    user_add.add_argument("--role", required=True, choices=access.ROLES)
    user_revoke = user.add_parser(
        "revoke-tokens", help="refuse every token of the user issued before now; prints when"
    )
    user_revoke.add_argument("email")

    token = sub.add_parser("token", help="print a bearer token for a user")
    token.add_argument("--user", required=True, metavar="EMAIL")
    token.add_argument("--ttl-minutes", type=int, default=None)

    hh = sub.add_parser("household", help="manage households")
    hh_add = hh.add_subparsers(dest="action", required=True).add_parser("add")
    hh_add.add_argument("--name", required=True)
    hh_add.add_argument("--timezone", required=True)
    hh_add.add_argument("--tariff", required=True, help="tariff as JSON")

    dev = sub.add_parser("device", help="manage devices")
    dev_add = dev.add_subparsers(dest="action", required=True).add_parser("add")
    dev_add.add_argument("household", metavar="HOUSEHOLD_ID")
    dev_add.add_argument("--name", required=True)
    dev_add.add_argument("--kind", required=True, choices=kinds.DEVICE_KINDS)
    dev_add.add_argument("--max-watts", required=True, type=float)
    dev_add.add_argument("--controllable", action="store_true")

    mem = sub.add_parser("member", help="bind users to households, or unbind them")
    mem_actions = mem.add_subparsers(dest="action", required=True)
    mem_add = mem_actions.add_parser("add")
    mem_remove = mem_actions.add_parser("remove", help="unbind; open live streams end at once")
    sup = sub.add_parser("support", help="assign support users to households, or end it")
    sup_actions = sup.add_subparsers(dest="action", required=True)
    sup_add = sup_actions.add_parser("add")
    sup_remove = sup_actions.add_parser("remove", help="end; open live streams end at once")
    for action in (mem_add, mem_remove, sup_add, sup_remove):
        action.add_argument("household", metavar="HOUSEHOLD_ID")
        action.add_argument("user", metavar="EMAIL")
    mem_add.add_argument("--role", required=True, choices=["owner", "member", "gateway"])
    sup_add.add_argument("--expires-at", default=None, help="ISO 8601 with a UTC offset")
    return p


COMMANDS: dict[tuple[str, str | None], Callable[[Settings, argparse.Namespace], None]] = {
    ("serve", None): cmd_serve,
    ("demo", None): cmd_demo,
    ("ask", None): cmd_ask,
    ("migrate", None): cmd_migrate,
    ("seed-demo", None): cmd_seed_demo,
    ("refresh", None): cmd_refresh,
    ("user", "add"): cmd_user_add,
    ("token", None): cmd_token,
    ("household", "add"): cmd_household_add,
    ("device", "add"): cmd_device_add,
    ("member", "add"): cmd_member_add,
    ("member", "remove"): cmd_member_remove,
    ("support", "add"): cmd_support_add,
    ("support", "remove"): cmd_support_remove,
    ("user", "revoke-tokens"): cmd_user_revoke_tokens,
}


SIGNING_COMMANDS = {"serve", "demo", "token", "ask"}
# Flags that stand for a setting: given, they win over the environment.
SETTING_FLAGS = ("host", "port", "workers")


def main(argv: Sequence[str] | None = None) -> int:
    logs.configure(fmt="text")
    args = parser().parse_args(argv)
    command = COMMANDS[(args.command, getattr(args, "action", None))]
    try:
        settings = resolve_settings(
            demo=args.command == "demo",
            needs_secret=args.command in SIGNING_COMMANDS,
            serving=args.command in ("serve", "demo"),
            overrides={k: v for k in SETTING_FLAGS if (v := getattr(args, k, None)) is not None},
        )
        command(settings, args)
    except (CommandError, ConfigError, ValidationError) as exc:
        print(f"wattwise: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
