"""The conversation dataset is the file its generator (evals/conversations.py) writes: an
edit by hand, or a rule changed without regenerating, fails here."""

from __future__ import annotations

from evals import conversations


def test_the_conversation_dataset_is_what_its_generator_writes() -> None:
    assert conversations.main(["--check"]) == 0
    assert len(conversations.conversations()) >= 145
