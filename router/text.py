"""Phrase lookups over tokenised text: tokens joined by single spaces, so a phrase is found as
a run of whole tokens and never inside a word."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any


def alternation(phrases: Iterable[str]) -> str:
    """A regex matching any of the literal phrases, the longest it can. Written as a trie
    ("t(?:en|wo)"): sre tries the alternatives of a group one by one, so a flat list of a
    hundred words costs a hundred comparisons where the trie costs a few."""
    trie: dict[str, Any] = {}
    for phrase in phrases:
        node = trie
        for char in phrase:
            node = node.setdefault(char, {})
        node[""] = {}
    return _branches(trie)


def _branches(node: dict[str, Any]) -> str:
    children = [re.escape(char) + _branches(child) for char, child in sorted(node.items()) if char]
    if not children:
        return ""
    group = children[0] if len(children) == 1 else f"(?:{'|'.join(children)})"
    if "" not in node:
        return group
    return f"(?:{group})?" if len(children) == 1 else f"{group}?"


def bounded(pattern: str) -> str:
    """`pattern` matched only as whole tokens."""
    return rf"(?<!\S)(?:{pattern})(?!\S)"


class PhraseSet:
    """Whether a text holds any of the phrases: one-token phrases by set lookup, longer ones
    by one precompiled regex, run only when a first word of one of them is there."""

    def __init__(self, phrases: Iterable[str]) -> None:
        phrases = tuple(phrases)
        self.words = frozenset(p for p in phrases if " " not in p)
        longer = [p for p in phrases if " " in p]
        self._firsts = frozenset(p.split()[0] for p in longer)
        self._regex = re.compile(bounded(alternation(longer)))

    def found(self, words: frozenset[str], text: str) -> bool:
        if not self.words.isdisjoint(words):
            return True
        return not self._firsts.isdisjoint(words) and self._regex.search(text) is not None


class PhraseTable:
    """Labelled phrases matched token by token from a position, longest first. A phrase that
    ends with "*" ("thanks for *") takes every word after it."""

    def __init__(self, phrases: Mapping[str, str], fillers: Iterable[str] = ()) -> None:
        split = {tuple(p.split()): label for p, label in phrases.items()}
        self._open = {words[:-1]: label for words, label in split.items() if words[-1] == "*"}
        self._phrases = {words: label for words, label in split.items() if words[-1] != "*"}
        self._longest = max((len(words) for words in split), default=0)
        self._first = frozenset(words[0] for words in split)
        self._fillers = frozenset(fillers)

    def at(self, words: Sequence[str], i: int) -> tuple[int, str] | None:
        """The longest phrase starting at words[i]: how many words it takes, and its label."""
        if i == len(words) or words[i] not in self._first:
            return None
        for n in range(min(self._longest, len(words) - i), 0, -1):
            label = self._open.get(tuple(words[i : i + n]))
            if label is not None:
                return len(words) - i, label
            label = self._phrases.get(tuple(words[i : i + n]))
            if label is not None:
                return n, label
        return None

    def cover(self, words: Sequence[str]) -> list[str] | None:
        """Labels of the phrases that make up `words` with fillers between them, in order;
        None when some word is neither."""
        labels: list[str] = []
        i = 0
        while i < len(words):
            found = self.at(words, i)
            if found is not None:
                labels.append(found[1])
                i += found[0]
            elif words[i] in self._fillers:
                i += 1
            else:
                return None
        return labels

    def strip(self, words: Sequence[str]) -> int:
        """How many leading words are phrases of the table, one after another."""
        i = 0
        while (found := self.at(words, i)) is not None:
            i += found[0]
        return i
