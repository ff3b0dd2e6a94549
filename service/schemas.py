"""Request bodies of the administration API, validated at the edge with pydantic."""

from __future__ import annotations

import re
import zoneinfo
from functools import cache
from typing import Annotated
from uuid import UUID

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints

from telemetry.access import MemberRole, Role
from telemetry.kinds import DeviceKind
from telemetry.tariff import Tariff as Tariff  # the tariff body of the household API

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


# Files in a system's zoneinfo directory that are not IANA zone names.
_NOT_ZONES = {"localtime", "posixrules", "Factory"}


@cache
def _zones() -> frozenset[str]:
    return frozenset(
        z
        for z in zoneinfo.available_timezones()
        if z not in _NOT_ZONES and not z.startswith(("posix/", "right/"))
    )


def _iana_zone(value: str) -> str:
    if value not in _zones():
        raise ValueError(f"'{value}' is not an IANA timezone name (e.g. Europe/Berlin)")
    return value


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")
    return value


def _email(value: str) -> str:
    if not _EMAIL.match(value):
        raise ValueError("must be an email address")
    return value


# The raw name, bounded; its rule (telemetry.names) is applied where every device is made,
# telemetry.households.create_device, whoever calls it, and answers invalid_device_name.
DeviceName = Annotated[str, StringConstraints(max_length=400)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HouseholdIn(_Body):
    name: Annotated[
        str,
        StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
        AfterValidator(_printable),
    ]
    timezone: Annotated[str, AfterValidator(_iana_zone)]
    tariff: Tariff


class DeviceIn(_Body):
    name: DeviceName
    kind: DeviceKind
    controllable: bool = False
    max_watts: float = Field(gt=0, le=1_000_000, allow_inf_nan=False)


class UserIn(_Body):
    email: Annotated[
        str, StringConstraints(strip_whitespace=True, max_length=320), AfterValidator(_email)
    ]
    role: Role


class MemberIn(_Body):
    user_id: UUID
    role: MemberRole


class SupportIn(_Body):
    user_id: UUID
    expires_at: AwareDatetime | None = None
