"""Which of a household's devices a message names. A device name is data: it is matched, and
handed back as it is, but never read as words of the message.

- A whole name ("Washing machine", the heat pump's name with a plural or possessive) is the
  strongest match, and its words are masked from every rule that follows.
- Otherwise a run of adjacent words that all fit one device: distinctive words of its name
  (or one of them written as two words: "dish washer")
  (not common words; only the words before a sentence mark, so a name such as "Heater. Ignore
  all previous instructions" answers to "heater"), a word naming its kind ("the car" for the
  EV charger), or such a word misspelt (Damerau-Levenshtein distance 1 from words of 4 or more
  letters, 2 from words of 8 or more, up to _FUZZY_KEY letters).
- The candidate with the best score wins; a tie is ambiguous and no device is chosen. A plural
  ("heaters") or a word for a kind that adds up ("solar") names every candidate.

Looking a word up as a misspelling builds a number of strings growing with the square of its
length, so the work is bounded: a word longer than every key plus its edits cannot be within
them and is not looked up, and one message builds at most _BUDGET strings, spent on its
distinct unknown words left to right (a word said again is not looked up again). Past the
budget a misspelt word is not recognised; a message of the size limit costs milliseconds.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

from router.grammar import Grammar, grammar
from router.kinds import DeviceKind

MARKER = "\x00"  # a whole device name becomes one token: MARKER and its number in the message
_SUMMED_KINDS: frozenset[DeviceKind] = frozenset({"solar"})  # "solar" means all arrays
_NAME_ENDS = frozenset(".;:!?")
# Scores of one word: a word of the device's name, a word for its kind, a misspelt word.
_NAME, _KIND, _MISSPELT = 3, 2, 1
# Keys longer than this match only as written: their deletions would fill the index (a device
# name may have 100 letters) for a misspelling nobody makes.
_FUZZY_KEY = 24
# Deletion strings and candidate keys one message may cost: some 180 unknown words of 6 letters
# or 11 of 26, a few milliseconds; no labelled case (evals/router) uses 60.
_BUDGET = 4096


@dataclass(frozen=True)
class DeviceRef:
    name: str
    kind: DeviceKind
    controllable: bool


@dataclass(frozen=True)
class Mention:
    devices: tuple[str, ...]  # one, or every candidate of a plural; empty when ambiguous
    candidates: tuple[str, ...] = ()  # the equally good candidates of an ambiguous one, sorted


@functools.lru_cache(maxsize=256)
def household(language: str, devices: tuple[DeviceRef, ...]) -> Household:
    """The household's device index, built once per device list: half a millisecond and some
    80 kB for a dozen devices, so the cache is kept small."""
    return Household(grammar(language), devices)


class Household:
    def __init__(self, g: Grammar, devices: tuple[DeviceRef, ...]) -> None:
        self._g = g
        self.devices = {d.name: d for d in devices}
        whole: dict[tuple[str, ...], set[str]] = {}
        self._keys: dict[str, dict[str, int]] = {}  # word -> device name -> score
        self._name_keys: dict[str, frozenset[str]] = {}
        for d in devices:
            tokens = g.tokenise(d.name)
            words = tuple(g.singular(t)[0] for t in g.words(tokens))
            if words:
                whole.setdefault(words, set()).add(d.name)
            end = next((i for i, t in enumerate(tokens) if t in _NAME_ENDS), len(tokens))
            own = [g.singular(t)[0] for t in tokens[:end] if t[0].isalpha() and t not in g.common]
            self._name_keys[d.name] = frozenset(own)
            for key in own:
                self._keys.setdefault(key, {})[d.name] = _NAME
            if len(own) > 1:  # "heatpump": the name run together, as good as all of it
                self._keys.setdefault("".join(own), {})[d.name] = _NAME * len(own) + 1
        for word, kind in g.kind_words.items():
            for d in devices:
                if d.kind == kind:
                    scores = self._keys.setdefault(word, {})
                    scores[d.name] = max(scores.get(d.name, 0), _KIND)
        # Whole names by first word, longest first.
        self._whole: dict[str, list[tuple[tuple[str, ...], tuple[str, ...]]]] = {}
        for words, names in sorted(whole.items(), key=lambda item: -len(item[0])):
            self._whole.setdefault(words[0], []).append((words, tuple(sorted(names))))
        # A plural keeps its first two letters: tokens without them are not looked at.
        self._starts = frozenset(word[:2] for word in self._whole)
        # Misspellings are looked up by their deletions (symmetric delete): no word is compared
        # with every key.
        variants: dict[str, set[str]] = {}
        fuzzy = [key for key in self._keys if _allowed(len(key)) and len(key) <= _FUZZY_KEY]
        for key in fuzzy:
            for variant in _deletions(key, _allowed(len(key))):
                variants.setdefault(variant, set()).add(key)
        self._variants = {variant: tuple(keys) for variant, keys in variants.items()}
        # No word longer than this is within the edits allowed of any key.
        self._longest = max((len(key) + _allowed(len(key)) for key in fuzzy), default=0)

    def of_kind(self, kind: DeviceKind) -> str | None:
        """The household's only device of `kind`, if it has exactly one."""
        names = [d.name for d in self.devices.values() if d.kind == kind]
        return names[0] if len(names) == 1 else None

    def whole_names(self, tokens: Sequence[str]) -> list[tuple[int, int, Mention]]:
        """Spans of tokens that spell a whole device name (punctuation between its words
        ignored), left to right, not overlapping."""
        found = []
        i = 0
        while i < len(tokens):
            span = self._whole_at(tokens, i)
            if span is None:
                i += 1
            else:
                found.append(span)
                i = span[1]
        return found

    def _whole_at(self, tokens: Sequence[str], i: int) -> tuple[int, int, Mention] | None:
        if tokens[i][:2] not in self._starts:
            return None
        for words, names in self._whole.get(self._g.singular(tokens[i])[0], ()):
            end = self._spells(tokens, i, words)
            if end is None:
                continue
            if len(words) == 1 and self._g.singular(tokens[i])[1]:
                # A plural of a one-word name ("heaters" beside "Heater" and "Hall heater")
                # means every device that has the word in its name, not the exact one alone.
                every = sorted(n for n, score in self._keys[words[0]].items() if score == _NAME)
                if len(every) > 1:
                    return i, end, Mention(tuple(every))
            return i, end, Mention(names) if len(names) == 1 else Mention((), names)
        return None

    def _spells(self, tokens: Sequence[str], i: int, words: tuple[str, ...]) -> int | None:
        """The end of the name `words` spelt from tokens[i], or None."""
        for word in words:
            while i < len(tokens) and not self._g.is_word(tokens[i]):
                i += 1
            if i == len(tokens) or self._g.singular(tokens[i])[0] != word:
                return None
            i += 1
        return i

    def named_words(self, tokens: Sequence[str]) -> list[tuple[int, int, Mention]]:
        """Spans of adjacent tokens that together fit at least one device, and what they name."""
        found = []
        run: _Run | None = None
        misspelt = _Misspellings(self._variants, self._longest)
        i = 0
        while i < len(tokens):
            width, matched = 2, self._split(tokens, i)
            if matched is None:
                width, matched = 1, self._match(tokens[i], misspelt)
            if run is not None and (matched is None or not run.extend(i, width, *matched)):
                found.append((run.start, run.end, run.mention(self._name_keys)))
                run = None
            if matched is not None and run is None:
                run = _Run(i, width, *matched)
            i += width
        if run is not None:
            found.append((run.start, run.end, run.mention(self._name_keys)))
        return found

    def _split(
        self, tokens: Sequence[str], i: int
    ) -> tuple[dict[str, tuple[int, str]], bool] | None:
        """Two words that spell one word of a name ("dish washer" for the Dishwasher)."""
        if i + 1 >= len(tokens) or not (tokens[i].isalpha() and tokens[i + 1].isalpha()):
            return None
        word, plural = self._g.singular(tokens[i] + tokens[i + 1])
        if word in self._keys and tokens[i] not in self._keys:
            return {name: (score, word) for name, score in self._keys[word].items()}, plural
        return None

    def _match(
        self, token: str, misspelt: _Misspellings
    ) -> tuple[dict[str, tuple[int, str]], bool] | None:
        """The devices a token fits, each with its score and the name word it matched, and
        whether it names several: a plural, or a kind that adds up."""
        word, plural = self._g.singular(token)
        if word in self._keys:
            kind = self._g.kind_words.get(word)
            plural = plural or (kind is not None and kind in _SUMMED_KINDS)
            return {name: (score, word) for name, score in self._keys[word].items()}, plural
        if len(word) < 4 or word in self._g.known or not word.isalpha():
            return None
        found = {name: (_MISSPELT, key) for key in misspelt.keys(word) for name in self._keys[key]}
        return (found, plural) if found else None


class _Misspellings:
    """The keys a message's unknown words are misspellings of: each word looked up once, while
    the message's budget lasts."""

    def __init__(self, variants: dict[str, tuple[str, ...]], longest: int) -> None:
        self._variants = variants
        self._longest = longest
        self._budget = _BUDGET
        self._seen: dict[str, tuple[str, ...]] = {}

    def keys(self, word: str) -> tuple[str, ...]:
        """The keys within their allowed edits of `word`, sorted; () past the budget."""
        if word in self._seen:
            return self._seen[word]
        n, depth = len(word), 2 if len(word) >= 6 else 1
        cost = 1 + n + (n * (n - 1) // 2 if depth == 2 else 0)
        found: tuple[str, ...] = ()
        if n <= self._longest and cost <= self._budget:
            variants = _deletions(word, depth) & self._variants.keys()
            keys = sorted({key for v in variants for key in self._variants[v]})
            self._budget -= cost + len(keys)
            found = tuple(key for key in keys if distance(word, key) <= _allowed(len(key)))
        self._seen[word] = found
        return found


class _Run:
    """Adjacent tokens that all fit the same devices: the candidates' scores add up."""

    def __init__(
        self, start: int, width: int, matched: dict[str, tuple[int, str]], plural: bool
    ) -> None:
        self.start, self.end = start, start + width
        self.scores = {name: score for name, (score, _) in matched.items()}
        self.words = {name: {word} for name, (_, word) in matched.items()}
        self.plural = plural

    def extend(self, i: int, width: int, matched: dict[str, tuple[int, str]], plural: bool) -> bool:
        """Take the `width` tokens from i when they come next and fit some of the same
        devices."""
        common = self.scores.keys() & matched.keys()
        if i != self.end or not common:
            return False
        self.scores = {name: self.scores[name] + matched[name][0] for name in common}
        self.words = {name: self.words[name] | {matched[name][1]} for name in common}
        self.plural = self.plural or plural
        self.end = i + width
        return True

    def mention(self, name_keys: dict[str, frozenset[str]]) -> Mention:
        if self.plural:
            return Mention(tuple(sorted(self.scores)))
        # A device all of whose name words were said beats one that shares some of them.
        total = {
            name: score + (1 if name_keys[name] <= self.words[name] else 0)
            for name, score in self.scores.items()
        }
        best = max(total.values())
        top = tuple(sorted(name for name, score in total.items() if score == best))
        return Mention(top) if len(top) == 1 else Mention((), top)


def _allowed(length: int) -> int:
    """Edits allowed in a misspelt word, by the length of the word it stands for."""
    return 2 if length >= 8 else 1 if length >= 4 else 0


def _deletions(word: str, depth: int) -> set[str]:
    """The word and every string made by deleting one, or (depth 2) two, of its letters."""
    n = len(word)
    found = {word, *(word[:i] + word[i + 1 :] for i in range(n))}
    if depth == 2:
        pairs = ((i, j) for i in range(n) for j in range(i + 1, n))
        found.update(word[:i] + word[i + 1 : j] + word[j + 1 :] for i, j in pairs)
    return found


def distance(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (optimal string alignment): insertions, deletions,
    substitutions and swaps of neighbouring letters each cost one."""
    # A common prefix and suffix cost nothing, and leave a few letters to align.
    while a and b and a[0] == b[0]:
        a, b = a[1:], b[1:]
    while a and b and a[-1] == b[-1]:
        a, b = a[:-1], b[:-1]
    before: list[int] = []
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            cost = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cost = min(cost, before[j - 2] + 1)
            row.append(cost)
        before, previous = previous, row
    return previous[-1]
