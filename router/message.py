"""A message read into tokens, device mentions, windows and clauses: what the rules look at.

Whole device names and windows are each replaced by one marker token before anything else
reads the text, so the words inside them never count as the message's own words.
"""

from __future__ import annotations

from dataclasses import dataclass

from router.devices import MARKER, Household, Mention
from router.grammar import Grammar
from router.windows import WindowRef

WINDOW = "\x01"  # a window becomes one token: WINDOW and its number in the message


@dataclass(frozen=True)
class Clause:
    """Tokens [start, end) between clause marks or words; the request proper starts at `body`,
    after "please", "can you" and the like."""

    start: int
    body: int
    end: int
    question: bool


@dataclass(frozen=True)
class Message:
    tokens: list[str]
    owner: list[int]  # the number of the mention a token belongs to, -1 for none
    mentions: list[Mention]  # in order of mention
    windows: list[WindowRef]  # in order of mention
    clauses: list[Clause]

    def words(self, start: int = 0, end: int | None = None) -> frozenset[str]:
        return frozenset(self.tokens[start:end])

    def text(self, start: int = 0, end: int | None = None) -> str:
        return " ".join(self.tokens[start:end])

    def mentioned(self, start: int, end: int) -> list[int]:
        """Numbers of the mentions in tokens [start, end), in order."""
        return list(dict.fromkeys(n for n in self.owner[start:end] if n >= 0))

    def has_window(self, start: int, end: int) -> bool:
        return any(t.startswith(WINDOW) for t in self.tokens[start:end])


def read(g: Grammar, home: Household, tokens: list[str]) -> Message:
    whole = home.whole_names(tokens)
    marked: list[str] = []
    at = 0
    for n, (start, end, _) in enumerate(whole):
        marked += [*tokens[at:start], f"{MARKER}{n}"]
        at = end
    marked += tokens[at:]

    windows = g.windows.find(marked)
    if windows:
        unmarked, marked, at = marked, [], 0
        for n, (start, end, _) in enumerate(windows):
            marked += [*unmarked[at:start], f"{WINDOW}{n}"]
            at = end
        marked += unmarked[at:]

    spans = [
        *((i, i + 1, whole[int(t[1:])][2]) for i, t in enumerate(marked) if t.startswith(MARKER)),
        *home.named_words(marked),
    ]
    spans.sort(key=lambda span: span[0])
    owner = [-1] * len(marked)
    for n, (start, end, _) in enumerate(spans):
        owner[start:end] = [n] * (end - start)
    return Message(
        tokens=marked,
        owner=owner,
        mentions=[mention for _, _, mention in spans],
        windows=[ref for _, _, ref in windows],
        clauses=_clauses(g, marked, owner),
    )


def _clauses(g: Grammar, tokens: list[str], owner: list[int]) -> list[Clause]:
    """Clauses end at clause marks and words, except a word between two devices ("the
    dishwasher and the dryer")."""
    clauses = []
    start = 0
    for i in range(len(tokens) + 1):
        token = tokens[i] if i < len(tokens) else ""  # "" closes the last clause
        if token and token not in g.marks and token not in g.clause_words:
            continue
        if token in g.clause_words and _between_devices(g, tokens, owner, i):
            continue
        if i > start:
            body = start + g.prefixes.strip(tokens[start:i])
            # "is the heater on", "can you tell me ...": a question word up front.
            asked = token == g.question_mark or any(
                t in g.question_words for t in tokens[start : min(body + 1, i)]
            )
            clauses.append(Clause(start, body, i, asked))
        start = i + 1
    return clauses


def _between_devices(g: Grammar, tokens: list[str], owner: list[int], i: int) -> bool:
    after = i + 1
    while after < len(tokens) and tokens[after] in g.determiners:
        after += 1
    return i > 0 and owner[i - 1] >= 0 and after < len(tokens) and owner[after] >= 0
