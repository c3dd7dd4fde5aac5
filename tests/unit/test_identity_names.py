"""Display names (identity/names.py): a table of real and hostile names, reserved names for
moderators only, and the tag that tells two members of one name apart."""

from __future__ import annotations

import pytest

from asgi_chat.identity.errors import BadName
from asgi_chat.identity.names import MAX_NAME_CHARS, RESERVED, check_name, is_reserved, tag

# (raw name, the name everyone sees)
ACCEPTED = [
    ("Alice", "Alice"),
    ("  Alice  ", "Alice"),  # the ends stripped
    ("Mary  Ann", "Mary Ann"),  # a browser shows two spaces as one: so does the name
    ("\uff21\uff4c\uff49\uff43\uff45", "Alice"),  # full-width letters: NFKC makes them ASCII
    ("Al\u00a0ice", "Al ice"),  # a no-break space: NFKC makes it an ordinary space
    ("Al\u3000ice", "Al ice"),  # the ideographic space, too
    ("\u00c5sa", "\u00c5sa"),  # composed, whatever the input: "A" and a combining ring become one letter
    ("A\u030asa", "\u00c5sa"),
    ("\u0410\u043b\u0438\u0441\u0430", "\u0410\u043b\u0438\u0441\u0430"),  # Cyrillic alone
    ("Dmitri \u0414\u043c\u0438\u0442\u0440\u0438\u0439", "Dmitri \u0414\u043c\u0438\u0442\u0440\u0438\u0439"),
    ("\u674e\u534e", "\u674e\u534e"),  # Chinese
    ("\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35", "\u0e2a\u0e27\u0e31\u0e2a\u0e14\u0e35"),  # Thai, with its marks
    ("\U0001f600", "\U0001f600"),  # an emoji is visible
    ("x" * MAX_NAME_CHARS, "x" * MAX_NAME_CHARS),
    ("Sysadmin", "Sysadmin"),  # contains a reserved word, is not one
]


@pytest.mark.parametrize(("raw", "shown"), ACCEPTED)
def test_a_name_is_normalised_as_everyone_sees_it(raw: str, shown: str) -> None:
    assert check_name(raw) == shown


# (raw name, part of the reason)
REFUSED = [
    ("Alice\u200b", "U+200B (zero width space)"),  # a second, identical-looking Alice
    ("\u202eecilA", "U+202E (right-to-left override)"),  # reads "Alice" backwards
    ("Al\u2066ice", "U+2066"),  # an isolate: bidi again
    ("\ufeffAlice", "U+FEFF"),  # the byte order mark
    ("\u200b\u200c\u200d", "U+200B"),  # only invisible characters
    ("Ali\u2028ce", "U+2028"),  # a line separator
    ("Ali\u2029ce", "U+2029"),  # a paragraph separator
    ("Al\u1680ice", "U+1680"),  # a space that NFKC keeps: only U+0020 is a space in a name
    ("Al\nice", "U+000A"),  # a control character
    ("Al\x00ice", "U+0000"),
    ("\ue000Alice", "U+E000"),  # private use: renders as anything
    ("\u3164", "shows as nothing"),  # the Hangul filler (NFKC: U+1160), a letter that shows as nothing
    ("\u2800", "U+2800"),  # the Braille blank
    ("", "1 to 32 characters"),
    ("    ", "1 to 32 characters"),
    ("x" * (MAX_NAME_CHARS + 1), "1 to 32 characters"),
    ("\u0301\u0301", "a visible character"),  # combining marks and nothing to carry them
    ("x\u0301\u0302\u0303\u0304", "combining marks"),  # "Zalgo": marks stacked over the line
    ("\u0410lice", "mix Latin, Greek and Cyrillic"),  # a Cyrillic A in a Latin name
    ("\u0391lice", "mix Latin, Greek and Cyrillic"),  # a Greek Alpha
]


@pytest.mark.parametrize(("raw", "reason"), REFUSED)
def test_a_hostile_name_is_refused_saying_why(raw: str, reason: str) -> None:
    with pytest.raises(BadName) as refused:
        check_name(raw)
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    "name",
    [
        "admin",
        "Admin",
        "ADMIN",
        "Ad-Min",
        "a d m i n",
        "\uff21\uff24\uff2d\uff29\uff2e",
        "admin!",
        "System",
        "root",
        "moderator",
        "asgi-chat",
        "ASGI Chat",
        "Server",
        "everyone",
    ],
)
def test_a_reserved_name_is_for_moderators_only(name: str) -> None:
    assert is_reserved(name)
    with pytest.raises(BadName, match="reserved for moderators"):
        check_name(name)
    assert check_name(name, moderator=True)


def test_the_reserved_list_is_written_as_it_is_compared() -> None:
    assert all(is_reserved(name) for name in RESERVED)


def test_a_tag_is_short_stable_and_tells_uids_apart() -> None:
    assert tag("alice") == tag("alice")
    assert len(tag("alice")) == 4
    assert set(tag("alice")) <= set("0123456789abcdefghjkmnpqrstvwxyz")
    tags = {tag(f"guest:{n}") for n in range(1000)}
    assert len(tags) > 990  # 20 bits: a thousand uids, hardly a collision


def test_the_tag_is_a_known_value() -> None:
    """Fixed, so that a page, a log or another implementation can rely on it: the first 20 bits of
    SHA-256("alice") (2bd806c9...), in Crockford's base 32."""
    assert tag("alice") == "5fc0"
