"""Device names: what a name may be, and when two names look alike.

A name is NFKC-normalised (full-width letters, compatibility forms and odd spaces become
their plain forms), its runs of spaces become one, and it is refused when it holds what a
reader cannot see or that reorders what they see (control, format, private-use, surrogate
and unassigned code points, line and paragraph separators, the other default-ignorable
code points), a backtick (answers are shown as Markdown, and the consent text quotes the
command in a fenced block), or a word mixing Latin with Cyrillic or Greek letters ("Heater"
with a Cyrillic H: no one writes such a word but to deceive).

Two names look alike when their skeletons are equal: the casefolded name with the common
Cyrillic and Greek look-alikes of Latin letters and the digits 0 and 1 taken for the letters
they resemble ("ECO pump" in Cyrillic capitals and in Latin ones, "Fridge 1" and "Fridge
l"). The table is the common cases of Unicode's confusables, not all of it (no dependency
for the rest): mixed words are refused outright, so a skeleton only has to catch whole
words in a look-alike script.
"""

from __future__ import annotations

import re
import unicodedata

MAX_LENGTH = 100

# Categories a name may not hold: control, format (zero-width, bidi overrides and isolates),
# private use, surrogates, unassigned, line and paragraph separators.
_REFUSED = frozenset(("Cc", "Cf", "Co", "Cs", "Cn", "Zl", "Zp"))
# Default-ignorable code points in other categories: they render as nothing.
_INVISIBLE = frozenset(
    (
        *(0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x2800, 0x3164, 0xFFA0),
        *range(0x180B, 0x1810),  # Mongolian variation selectors
        *range(0xFE00, 0xFE10),  # variation selectors
        *range(0xE0100, 0xE01F0),  # variation selectors supplement
    )
)
_SPACES = re.compile(r" {2,}")
_LOOKALIKE_SCRIPTS = ("LATIN", "CYRILLIC", "GREEK")
# What reads as a Latin letter (capitals as capitals: the table applies before casefolding)
# or as a hyphen, by code point: Cyrillic, Greek, the digits 0 and 1, capital I and the
# bar (as l), dashes. Code points, because the characters themselves are what this table is about.
_LOOKALIKES: dict[str, tuple[int, ...]] = {
    "A": (0x0410, 0x0391),
    "a": (0x0430, 0x03B1),
    "B": (0x0412, 0x0392),
    "C": (0x0421,),
    "c": (0x0441, 0x03F2),
    "d": (0x0501,),
    "E": (0x0415, 0x0395),
    "e": (0x0435,),
    "H": (0x041D, 0x0397),
    "h": (0x04BB,),
    "i": (0x0456, 0x03B9),
    "J": (0x0408,),
    "j": (0x0458,),
    "K": (0x041A, 0x039A),
    "k": (0x043A, 0x03BA),
    "l": (0x0049, 0x0406, 0x04C0, 0x0399, 0x04CF, 0x0031, 0x007C),  # capital I reads as l
    "M": (0x041C, 0x039C),
    "N": (0x039D,),
    "O": (0x041E, 0x039F),
    "o": (0x043E, 0x03BF, 0x0030),
    "P": (0x0420, 0x03A1),
    "p": (0x0440, 0x03C1),
    "Q": (0x051A,),
    "q": (0x051B,),
    "S": (0x0405,),
    "s": (0x0455,),
    "T": (0x0422, 0x03A4),
    "u": (0x03C5,),
    "v": (0x03BD,),
    "W": (0x051C,),
    "w": (0x051D,),
    "X": (0x0425, 0x03A7),
    "x": (0x0445, 0x03C7),
    "Y": (0x0423, 0x03A5),
    "y": (0x0443,),
    "Z": (0x0396,),
    "-": (0x2010, 0x2011, 0x2012, 0x2013, 0x2014, 0x2212),
}
_PROTOTYPES = {code: latin for latin, codes in _LOOKALIKES.items() for code in codes}


class InvalidName(ValueError):
    """A name refused by the rule; `reason` is a sentence for the person who chose it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def device_name(raw: str) -> str:
    """The name as stored: NFKC, trimmed, single spaces (after NFKC every space a name may
    hold is U+0020). Raises InvalidName."""
    normal = unicodedata.normalize("NFKC", raw)
    for ch in normal:
        if _hidden(ch):
            raise InvalidName(
                f"a device name cannot hold invisible or control characters (U+{ord(ch):04X})"
            )
        if unicodedata.category(ch) == "Zs" and ch != " ":
            raise InvalidName(f"a device name cannot hold the space U+{ord(ch):04X}")
    name = _SPACES.sub(" ", normal).strip()
    if not name:
        raise InvalidName("a device name cannot be empty")
    if len(name) > MAX_LENGTH:
        raise InvalidName(f"a device name has at most {MAX_LENGTH} characters")
    if "`" in name:
        raise InvalidName("a device name cannot hold backticks (`)")
    for word in _words(name):
        scripts = {s for ch in word if (s := _script(ch)) is not None}
        if len(scripts) > 1:
            mixed = " and ".join(sorted(s.title() for s in scripts))
            raise InvalidName(f"the word '{word}' mixes {mixed} letters")
    return name


def skeleton(name: str) -> str:
    """What the name looks like: equal skeletons read the same. Also for names stored
    before the rule, so what is invisible is dropped rather than refused."""
    seen = "".join(ch for ch in unicodedata.normalize("NFKC", name) if not _hidden(ch))
    plain = seen.translate(_PROTOTYPES).casefold().replace("rn", "m")
    return _SPACES.sub(" ", plain).strip()


def _hidden(ch: str) -> bool:
    return unicodedata.category(ch) in _REFUSED or ord(ch) in _INVISIBLE


def _words(name: str) -> list[str]:
    """Runs of letters and the marks on them."""
    words, word = [], ""
    for ch in name:
        if ch.isalpha() or unicodedata.category(ch).startswith("M"):
            word += ch
        elif word:
            words.append(word)
            word = ""
    return [*words, word] if word else words


def _script(ch: str) -> str | None:
    """LATIN, CYRILLIC or GREEK for a letter of those scripts, else None."""
    if not ch.isalpha():
        return None
    first = unicodedata.name(ch, "").split(" ", 1)[0]
    return first if first in _LOOKALIKE_SCRIPTS else None
