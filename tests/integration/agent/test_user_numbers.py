"""A number the user typed is the user's, not a measurement: a model sentence may repeat it
as the user's (a question, a comparison the server's own figure bears out), never state it
as what a device used (issue 16, item 3)."""

from __future__ import annotations

from service.deps import Deps
from tests.fakes.llm import FakeLLM, says
from tests.integration.service.test_chat import (
    TODAY,
    Home,
    _ask,
    _calls,
    _client,
    _data,
    _text,
    _today_kwh,
    fake,
    home,
    with_model,
)

__all__ = ["fake", "home", "with_model"]  # the fixtures, shared with the chat tests
HEAT_PUMP_TODAY = {"device_name": "Heat pump", "window": TODAY, "step": "1h"}


async def test_a_number_the_user_typed_is_not_verified_as_a_measurement(
    with_model: Deps, home: Home, fake: FakeLLM
) -> None:
    fake.replies += [
        _calls("device_usage", HEAT_PUMP_TODAY, usage=(300, 20)),
        says("Your heat pump used 999 kWh today."),
    ]
    async with _client(with_model) as client:
        response, chunks = await _ask(client, home, "did the heat pump use 999 kWh today?")
    assert response.status_code == 200, response.text
    text = _text(chunks)
    assert "999" not in text
    outputs = [
        c["output"] for c in chunks if isinstance(c, dict) and c["type"] == "tool-output-available"
    ]
    kwh = outputs[0]["kwh"]
    assert f'"Heat pump" used {kwh:.2f} kWh' in text  # its real figure instead
    [verification] = _data(chunks, "verification")
    assert "999 kWh" not in verification["numbers_checked"]
    [replaced] = verification["replaced"]
    assert replaced["sentence"] == "Your heat pump used 999 kWh today."


async def test_the_users_number_may_be_repeated_as_the_users(
    with_model: Deps, home: Home, fake: FakeLLM
) -> None:
    async with _client(with_model) as client:
        kwh = await _today_kwh(client, home)
        compared = (
            f"No: you used {kwh:.1f} kWh today so far, less than the 999 kWh you asked about. "
        )
        asked = "You asked about 999 kWh; that would be a month of heating. "
        fake.replies += [
            _calls("energy_summary", {"window": TODAY}, usage=(300, 20)),
            says(compared, asked),
        ]
        response, chunks = await _ask(client, home, "did I use more than 999 kWh today?")
    assert response.status_code == 200, response.text
    assert _text(chunks) == compared + asked
    [verification] = _data(chunks, "verification")
    assert verification["replaced"] == []
    assert verification["dropped"] == []
    assert "999 kWh" in verification["numbers_checked"]
