"""The device-name rule (telemetry.names): what is refused, what two look-alikes share, and
that the consent text's code block holds whatever name it quotes."""

from __future__ import annotations

import json
import re
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent import narrator
from telemetry import names


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("ECO pump", "\u0415\u0421\u041e pump"),  # Cyrillic capitals
        ("Oven", "\u039fven"),  # Greek capital omicron (a mixed word: refused on creation)
        ("Fridge 1", "Fridge l"),
        ("Fridge I", "Fridge l"),
        ("Fridge 0", "Fridge O"),
        ("Corner lamp", "Comer lamp"),
        ("Heater", "Heater\u200b"),  # a name stored before the rule: the invisible is dropped
        ("Heat-pump", "Heat\u2013pump"),
        ("Heater", "\uff28eater"),  # full width
    ],
)
def test_look_alikes_share_a_skeleton(a: str, b: str) -> None:
    assert names.skeleton(a) == names.skeleton(b)


@pytest.mark.parametrize(("a", "b"), [("Wärmepumpe", "Warmepumpe"), ("Heater", "Heater 2")])
def test_different_names_do_not(a: str, b: str) -> None:
    assert names.skeleton(a) != names.skeleton(b)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        ("Heater\u200b", "U+200B"),
        ("Heater\u202e", "U+202E"),
        ("Heater\u1680", "space U+1680"),
        ("Bad\nname", "U+000A"),
        ("Heater```", "backticks"),
        ("\u041d\u0435\u0430ter", "mixes Cyrillic and Latin"),
        ("   ", "empty"),
        ("x" * 101, "at most 100"),
        ("\ufdfa" * 6, "at most 100"),  # NFKC makes each one 18 characters
    ],
)
def test_a_refused_name_says_why(raw: str, reason: str) -> None:
    with pytest.raises(names.InvalidName) as refused:
        names.device_name(raw)
    assert reason in refused.value.reason


@settings(max_examples=300, derandomize=True)
@given(st.text(max_size=120))
def test_an_accepted_name_is_normal_visible_and_stable(raw: str) -> None:
    try:
        name = names.device_name(raw)
    except names.InvalidName:
        return
    assert name == unicodedata.normalize("NFKC", name) == name.strip()
    assert names.device_name(name) == name
    assert not any(unicodedata.category(c) in ("Cc", "Cf", "Co", "Cs", "Cn") for c in name)
    assert "`" not in name


@pytest.mark.parametrize("name", ["Heater", 'Porch ```` "} lamp', "`", "a``b"])
def test_the_consent_block_holds_any_name(name: str) -> None:
    command = {"op": "SET_POWER", "device_name": name, "value": "OFF"}
    text = narrator.fenced("json", json.dumps(command))
    block = re.fullmatch(r"\n\n(`{3,})json\n(.*)\n\1\n", text, re.DOTALL)
    assert block is not None
    assert block.group(1) not in block.group(2)
    assert json.loads(block.group(2)) == command
