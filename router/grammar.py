"""A language's lexicon compiled once into the sets, tables and regexes the router runs on."""

from __future__ import annotations

import functools
import re
from decimal import Decimal

from router.lexicon import Consent, Lexicon, en
from router.text import PhraseSet, PhraseTable, alternation, bounded
from router.windows import WindowFinder

LEXICONS: dict[str, Lexicon] = {"en": en.LEXICON}
# Control characters separate words like spaces do. The router marks whole device names and
# windows with tokens that start with one (router/devices.py MARKER, router/message.py
# WINDOW), so no text the person typed can pass for a marker.
_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CLOSING = re.compile(r"\s*[.!]+$")


@functools.cache
def grammar(language: str) -> Grammar:
    """The compiled grammar of `language`; ValueError for a language without a lexicon."""
    if language not in LEXICONS:
        raise ValueError(f"no router lexicon for language {language!r}; have {sorted(LEXICONS)}")
    return Grammar(LEXICONS[language])


class Grammar:
    def __init__(self, lx: Lexicon) -> None:
        self.lexicon = lx
        suffixes = alternation(lx.ordinal_suffixes)
        self._token = re.compile(
            rf"[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}|[0-9]+(?:\.[0-9]+)?(?:{suffixes})?"
            r"|[^\W\d_]+(?:['-][^\W\d_]+)*|[^\w\s]"
        )
        self.marks = frozenset(lx.clause_marks)
        self.question_mark = lx.question_mark
        self.consent = PhraseTable(lx.consent, lx.consent_fillers)
        self.consent_yes = frozenset(lx.consent_yes)
        self.assent_words = frozenset(lx.assent_words)
        self._assent = re.compile(f"(?:{lx.assent_pattern})")
        self.smalltalk = PhraseTable(
            {p: rule for rule, phrases in lx.smalltalk.items() for p in phrases},
            lx.smalltalk_fillers,
        )
        self.prefixes = PhraseTable(dict.fromkeys(lx.request_prefixes, ""))
        self.clause_words = frozenset(lx.clause_words)
        self.question_words = frozenset(lx.question_words)
        self.report_verbs = frozenset(lx.report_verbs)
        self.switch_verbs = lx.switch_verbs
        self.direct_verbs = lx.direct_verbs
        self.setpoint_verbs = frozenset(lx.setpoint_verbs)
        self.terse_particles = lx.terse_particles
        self.current_words = frozenset(lx.current_words)
        self.reserve_words = frozenset(lx.reserve_words)
        self.reserve_verbs = frozenset(lx.reserve_verbs)
        self.charge_words = frozenset(lx.charge_words)
        self.pronouns = frozenset(lx.pronouns)
        self.all_words = frozenset(lx.all_words)
        self.determiners = frozenset(lx.determiners)
        self.target_fillers = frozenset(lx.target_fillers)
        self.state_words = frozenset(lx.state_words)
        self.schedule_words = frozenset(lx.schedule_words)
        self.exclusion_words = frozenset(lx.exclusion_words)
        self.cost = PhraseSet(lx.cost)
        self.energy = PhraseSet(lx.energy)
        self.injection = PhraseSet(lx.injection)
        self.other_household = PhraseSet(lx.other_household)
        self.off_topic = PhraseSet(lx.off_topic)
        self.openers = PhraseTable(dict.fromkeys(lx.follow_openers, ""))
        self.back_references = frozenset(lx.back_references)
        self.compare_words = frozenset(lx.compare_words)
        self.usual_words = frozenset(lx.usual_words)
        self.than_words = frozenset(lx.than_words)
        self.future_words = frozenset(lx.future_words)
        self.later_words = frozenset(lx.later_words)
        self.so_far = PhraseSet(lx.so_far)
        self.unsupported = {kind: PhraseSet(p) for kind, p in lx.unsupported.items()}
        self.kind_words = lx.kind_words
        self.common = frozenset(lx.common_words)
        self.windows = WindowFinder(lx)
        self._numbers = lx.numbers
        value = rf"(?P<x>[0-9]+(?:\.[0-9]+)?|{alternation(lx.numbers)})"
        self.amps = re.compile(bounded(f"{value} (?:{alternation(lx.amp_units)})"))
        self.percent = re.compile(bounded(f"{value} (?:{alternation(lx.percent_units)})"))
        self.number = re.compile(bounded(value))
        self.known = self._known_words(lx) | self.windows.words

    @staticmethod
    def _known_words(lx: Lexicon) -> frozenset[str]:
        """Every word the lexicon uses: never taken for a misspelt device name."""
        phrases = [
            *lx.consent,
            *lx.consent_fillers,
            *lx.consent_yes,
            *lx.assent_words,
            *lx.follow_openers,
            *lx.back_references,
            *lx.compare_words,
            *lx.usual_words,
            *lx.than_words,
            *lx.future_words,
            *lx.later_words,
            *lx.so_far,
            *(p for phrases in lx.unsupported.values() for p in phrases),
            *lx.clause_words,
            *lx.request_prefixes,
            *lx.question_words,
            *lx.report_verbs,
            *lx.switch_verbs,
            *(p for particles in lx.switch_verbs.values() for p in particles),
            *lx.direct_verbs,
            *lx.setpoint_verbs,
            *lx.amp_units,
            *lx.percent_units,
            *lx.current_words,
            *lx.reserve_words,
            *lx.reserve_verbs,
            *lx.charge_words,
            *lx.pronouns,
            *lx.all_words,
            *lx.determiners,
            *lx.target_fillers,
            *lx.state_words,
            *lx.schedule_words,
            *lx.exclusion_words,
            *lx.cost,
            *lx.energy,
            *lx.injection,
            *lx.other_household,
            *lx.off_topic,
            *(p for phrases in lx.smalltalk.values() for p in phrases),
            *lx.smalltalk_fillers,
            *lx.common_words,
            *lx.numbers,
            *lx.months,
            *lx.weekdays,
        ]
        return frozenset(word for phrase in phrases for word in phrase.split()) - {"*"}

    def tokenise(self, text: str) -> list[str]:
        """Lower-case words, numbers, dates and single punctuation marks; a trailing 's is
        dropped ("the heater's usage" reads "the heater usage"). No token holds a control
        character."""
        text = _CONTROLS.sub(" ", text).replace("\u2019", "'")
        tokens = self._token.findall(text.casefold())
        return [t[:-2] if t.endswith("'s") else t for t in tokens]

    def singular(self, word: str) -> tuple[str, bool]:
        """The word's singular, and whether it was a plural. Lexicon words stay as they are."""
        if word in self.known or not word.isalpha():
            return word, False
        for ending, replacement in self.lexicon.plural_endings:
            if word.endswith(ending) and len(word) > len(ending) + 1:
                stem = word[: len(word) - len(ending)] + replacement
                return stem, stem != word
        return word, False

    @staticmethod
    def is_word(token: str) -> bool:
        """A word or number, not a punctuation mark or symbol."""
        return len(token) > 1 or token.isalnum()

    @staticmethod
    def words(tokens: list[str]) -> list[str]:
        return list(filter(Grammar.is_word, tokens))

    def consent_of(self, words: list[str]) -> Consent | None:
        """The consent the words give: all consent phrases (fillers aside) of one polarity."""
        labels = self.consent.cover(self.words(words))
        if not labels or any(label != labels[0] for label in labels):
            return None
        return "yes" if labels[0] == "yes" else "no"

    def strict_yes(self, text: str) -> bool:
        """Whether the whole message is one of the lexicon's unambiguous yeses: lower-cased,
        commas read as spaces, one closing run of "." or "!" dropped, nothing else changed
        (an emoji, a question mark or a typo makes it something else)."""
        plain = " ".join(text.casefold().replace(",", " ").split())
        return _CLOSING.sub("", plain) in self.consent_yes

    def assents(self, tokens: list[str]) -> bool:
        """Whether a token sounds like assent ("ok", "sure", "yesss", "👍")."""
        return any(t in self.assent_words or self._assent.fullmatch(t) for t in tokens)

    def value(self, text: str) -> str:
        """A number as a plain decimal string: "16", "16.5", "sixteen" -> "16"."""
        if text in self._numbers:
            return str(self._numbers[text])
        return format(Decimal(text).normalize(), "f")
