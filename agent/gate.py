"""The sentence release gate: model text is cut into whole sentences as it streams, and
each is released only once it checks out (agent.verify); these are the gate's parts that
need no database: the splitting, what is never released (a command; the question said back;
an answer that trails off), and which narrator sentence stands in for a sentence whose
numbers are not the server's."""

from __future__ import annotations

import re

from agent.verify import Stated, stated

# Sentences a model must not release: code, JSON, anything that looks like a command.
_COMMAND_LIKE = re.compile(r"```|[{}]|\bSET_(?:POWER|CHARGE_CURRENT|BATTERY_RESERVE)\b")
# A sentence ends at . ! or ? followed by space and then a capital, a digit, a quote or a
# list mark, or by space at the end of what has arrived so far (so it is released without
# waiting for the next one); a line break always ends one.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'(\d*-]|\Z)|\n+")
_WORD = re.compile(r"[a-z]{3,}")
_STOP = frozenset(
    ("the", "and", "you", "your", "for", "with", "from", "that", "this", "was", "were", "are")
)


class SentenceGate:
    """Splits streamed text into whole sentences (each with the space after it); what
    follows the last sentence end waits for more text or the end. `raw` is all the text
    fed."""

    def __init__(self) -> None:
        self._buffer = ""
        self.raw = ""

    def feed(self, delta: str) -> list[str]:
        self._buffer += delta
        self.raw += delta
        out = []
        while (m := _SENTENCE_END.search(self._buffer)) is not None:
            out.append(self._buffer[: m.end()])
            self._buffer = self._buffer[m.end() :]
        return out

    def flush(self) -> list[str]:
        rest, self._buffer = self._buffer, ""
        return [rest] if rest else []


def command_like(sentence: str) -> bool:
    """Code, JSON or a device command, which a model sentence never releases."""
    return _COMMAND_LIKE.search(sentence) is not None


_ANY_WORD = re.compile(r"[a-z']+")
_ECHO_SHARE = 0.75  # of a sentence's words that are the question's: it says the question back
_ENDED = re.compile(r"[.!?…:;)\]\"'»]\s*$")


def echoes(sentence: str, question: str) -> bool:
    """A sentence with no figure that is mostly the question's own words ("How much energy
    did I use today?" back, or "how did I use today?"): it answers nothing."""
    if any(c.isdigit() for c in sentence):
        return False
    words = _ANY_WORD.findall(sentence.lower())
    if len(words) < 3:
        return False
    asked = set(_ANY_WORD.findall(question.lower()))
    return sum(w in asked for w in words) / len(words) >= _ECHO_SHARE


def trails_off(rest: str) -> bool:
    """What follows a model's last sentence end is unfinished ("My total consumption for the
    last 30 days "): the caller drops it unless it states a figure the server computed."""
    body = rest.strip()
    return bool(body) and not _ENDED.search(body)


def trailing(sentence: str) -> str:
    """The whitespace after a sentence (a space when there is none), for its stand-in."""
    return sentence[len(sentence.rstrip()) :] or " "


def _words(text: str) -> set[str]:
    return set(_WORD.findall(text.lower())) - _STOP


def closest(sentence: str, wrong: tuple[Stated, ...], candidates: list[str]) -> str | None:
    """The narrator sentence about the same fact: one stating a figure in a unit the wrong
    figures use, sharing the most words with the sentence."""
    units = {s.unit for s in wrong}
    words = _words(sentence)
    best: tuple[int, str] | None = None
    for candidate in candidates:
        figures = stated(candidate)
        if not figures or not units & {f.unit for f in figures}:
            continue
        score = len(words & _words(candidate))
        if best is None or score > best[0]:
            best = (score, candidate)
    return best[1] if best else None
