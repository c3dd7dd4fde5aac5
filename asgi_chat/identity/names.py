"""Display names: what a person may be called in a room, and a short tag that tells two apart.

A name is shown to everyone, so the rules are about what others *see*:

- NFKC (Unicode's compatibility normalisation): full-width ``"\\uff21lice"`` becomes ``Alice`` and
  the compatibility spaces (no-break, ideographic, thin) become the ordinary space, so text that
  looks the same is the same text; then the ends are stripped and each run of spaces becomes
  one (a browser shows ``"Al  ice"`` as ``"Al ice"``);
- 1 to :data:`MAX_NAME_CHARS` characters, at least one of them visible (a letter, digit,
  punctuation mark or symbol);
- no control, format, private-use or unassigned character (categories ``C*``: the zero-width
  space, the bidirectional overrides that make a name read backwards, U+FEFF), no line or
  paragraph separator (``Zl``, ``Zp``), no space but U+0020 (``Zs``), none of the letters that
  render as nothing (:data:`INVISIBLE`), and at most :data:`MAX_MARKS` combining marks in a row;
- one word may not mix Latin, Greek and Cyrillic letters: ``"\\u0410lice"`` with a Cyrillic A is
  the classic impostor (UTS #39 calls such a string "mixed-script");
- :data:`RESERVED` names (``admin``, ``system``...) only for moderators.

What no rule can prevent (a Cyrillic name that looks like a Latin one, two people who really
are both called Alice) is what :func:`tag` is for: the page shows it beside a name that more
than one member has.
"""

from __future__ import annotations

import hashlib
import unicodedata
from typing import Final

from .errors import BadName

MAX_NAME_CHARS: Final = 32
MAX_MARKS: Final = 3  # combining marks on one character: Thai and Devanagari need 2, "Zalgo" text dozens

# Letters and symbols that render as blank space: Hangul fillers, the Braille blank, Khmer
# inherent vowels. They are only ever used to make a name that looks empty or like another.
INVISIBLE: Final = frozenset("\u115f\u1160\u17b4\u17b5\u2800\u3164\uffa0")

# Names that would pass for the chat itself or its staff, compared by :func:`reserved_key` (so
# "Ad-Min", a full-width "ADMIN" and "a d m i n" are "admin" too).
RESERVED: Final = frozenset(
    {
        "admin",
        "administrator",
        "asgichat",
        "everyone",
        "mod",
        "moderator",
        "operator",
        "root",
        "server",
        "staff",
        "support",
        "system",
    }
)

# The alphabets whose letters look alike: Cyrillic a, e, o, p, c, y, x and Greek A, B, E, O pass for Latin ones.
_LOOKALIKE_SCRIPTS: Final = ("LATIN", "GREEK", "CYRILLIC")

# Crockford's base 32: digits and letters without I, L, O and U, so a tag reads aloud unambiguously.
_TAG_ALPHABET: Final = "0123456789abcdefghjkmnpqrstvwxyz"
TAG_CHARS: Final = 4


def check_name(raw: str, *, moderator: bool = False) -> str:
    """The name as everyone will see it, or :class:`BadName` saying which rule it breaks."""
    name = unicodedata.normalize("NFKC", raw).strip()
    name = " ".join(word for word in name.split(" ") if word)  # one space between words
    if not 1 <= len(name) <= MAX_NAME_CHARS:
        raise BadName(f"a name is 1 to {MAX_NAME_CHARS} characters")
    _check_characters(name)
    if not any(unicodedata.category(char)[0] in "LNPS" for char in name):
        raise BadName("a name needs a visible character")
    for word in name.split(" "):
        if len(_scripts(word)) > 1:
            raise BadName("a word of a name may not mix Latin, Greek and Cyrillic letters")
    if not moderator and is_reserved(name):
        raise BadName(f"{name!r} is reserved for moderators")
    return name


def _check_characters(name: str) -> None:
    marks = 0
    for char in name:
        category = unicodedata.category(char)
        if category[0] == "C" or category in ("Zl", "Zp") or (category == "Zs" and char != " "):
            raise BadName(f"a name may not contain U+{ord(char):04X} ({_describe(char)})")
        if char in INVISIBLE:
            raise BadName(f"a name may not contain U+{ord(char):04X}, which shows as nothing")
        marks = marks + 1 if category[0] == "M" else 0
        if marks > MAX_MARKS:
            raise BadName(f"a name may not stack more than {MAX_MARKS} combining marks")


def _describe(char: str) -> str:
    return unicodedata.name(char, "an invisible or control character").lower()


def _scripts(word: str) -> set[str]:
    """Which of the look-alike alphabets the letters of ``word`` come from (by their Unicode names)."""
    found = set()
    for char in word:
        if char.isalpha():
            script = unicodedata.name(char, "").split(" ")[0]
            if script in _LOOKALIKE_SCRIPTS:
                found.add(script)
    return found


def reserved_key(name: str) -> str:
    """What a name is compared by against :data:`RESERVED`: NFKC, case-folded, letters and digits only."""
    folded = unicodedata.normalize("NFKC", name).casefold()
    return "".join(char for char in folded if char.isalnum())


def is_reserved(name: str) -> bool:
    return reserved_key(name) in RESERVED


def tag(uid: str) -> str:
    """A short tag for a uid, the same everywhere: four characters of base 32 (20 bits) of its
    SHA-256, e.g. ``"k3v9"``. It tells two members of one name apart at a glance; it is not a
    secret and not proof of anything (someone making guest after guest could find a uid with a
    given tag in about a million tries). The server sends it: a page on plain http has no
    ``crypto.subtle`` to compute a SHA-256 with."""
    value = int.from_bytes(hashlib.sha256(uid.encode()).digest()[:4], "big") >> (32 - 5 * TAG_CHARS)
    return "".join(_TAG_ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(TAG_CHARS)))
