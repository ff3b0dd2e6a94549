"""Revocations in the live fan-out of one process: the clients of the revoked user are told
to check again, in the named household only when one is named, at once; nobody else is."""

from __future__ import annotations

from uuid import uuid4

from service.live import LiveHub, Revocation


async def test_a_household_revocation_signals_that_users_clients_there_only() -> None:
    hub = LiveHub(None, prefix="t")
    home, elsewhere, user, neighbour = uuid4(), uuid4(), uuid4(), uuid4()
    try:
        with (
            hub.subscribe(home, user) as mine,
            hub.subscribe(elsewhere, user) as my_other,
            hub.subscribe(home, neighbour) as theirs,
        ):
            await hub.revoke(Revocation(user, home))
            assert (mine.recheck, my_other.recheck, theirs.recheck) == (True, False, False)
            # It may not wait for the next event's interval.
            assert mine.wake.is_set()
            assert mine.urgent.is_set()
            assert not theirs.wake.is_set()
    finally:
        await hub.close()


async def test_a_users_revocation_signals_their_clients_in_every_household() -> None:
    hub = LiveHub(None, prefix="t")
    home, elsewhere, user = uuid4(), uuid4(), uuid4()
    try:
        with hub.subscribe(home, user) as one, hub.subscribe(elsewhere, user) as two:
            await hub.revoke(Revocation(user))
            assert [c.recheck for c in (one, two)] == [True, True]
            assert two.urgent.is_set()
    finally:
        await hub.close()


async def test_an_announcement_of_this_process_is_not_applied_twice() -> None:
    hub = LiveHub(None, prefix="t")
    home, user = uuid4(), uuid4()
    try:
        with hub.subscribe(home, user) as client:
            hub._announced(
                f'{{"origin": "{hub._origin}", "user_id": "{user}", "household_id": null}}'
            )
            assert not client.recheck
            hub._announced(f'{{"origin": "elsewhere", "user_id": "{user}", "household_id": null}}')
            assert client.recheck
            hub._announced("not json")  # logged and ignored
    finally:
        await hub.close()
