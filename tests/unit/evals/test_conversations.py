"""The conversation dataset is the file its generator (evals/conversations.py) writes: an
edit by hand, or a rule changed without regenerating, fails here."""

from __future__ import annotations

from evals import conversations


def test_the_conversation_dataset_is_what_its_generator_writes() -> None:
    assert conversations.main(["--check"]) == 0


def test_there_are_150_conversations_of_two_to_five_turns_in_every_fixture_home() -> None:
    convs = conversations.conversations()
    assert len(convs) >= 150
    assert all(2 <= len(c["turns"]) <= 5 for c in convs), [
        c["id"] for c in convs if not 2 <= len(c["turns"]) <= 5
    ]
    assert {c["household"] for c in convs} == {h.key for h in conversations.HOMES}
