"""The room policy (identity/policy.py) and room patterns (claims.py): good and bad policy files,
each bad one a one-line start-up error naming the file, and who may join and say where."""

from __future__ import annotations

from pathlib import Path

import pytest

from asgi_chat.identity.claims import Identity, matches, room_pattern
from asgi_chat.identity.errors import ConfigError
from asgi_chat.identity.policy import RoomPolicy, RoomRule, load, parse
from asgi_chat.ops.settings import Settings

POLICY = """\
# Rooms are public unless a pattern here says otherwise.
[rooms."staff-*"]
private = true

[rooms.announcements]
read_only = true

[rooms."vip-?"]
private = true
read_only = true
"""


@pytest.mark.parametrize(
    ("pattern", "room", "expected"),
    [
        ("lobby", "lobby", True),
        ("lobby", "lobby2", False),  # the whole name, not a prefix
        ("staff-*", "staff-", True),  # * includes nothing
        ("staff-*", "staff-red", True),
        ("staff-*", "staffroom", False),
        ("*", "anything", True),
        ("vip-?", "vip-1", True),
        ("vip-?", "vip-12", False),
        ("a_b", "a_b", True),
        ("a-*-z", "a-middle-z", True),
    ],
)
def test_a_pattern_matches_whole_room_names(pattern: str, room: str, expected: bool) -> None:
    assert matches(room_pattern(pattern), room) is expected


@pytest.mark.parametrize("text", ["", "Staff", "staff/*", "a.b", "[abc]", "x" * 65, "room name"])
def test_what_is_not_a_room_pattern(text: str) -> None:
    with pytest.raises(ValueError, match="is not a room pattern"):
        room_pattern(text)


def test_a_policy_file_is_read_into_rules(tmp_path: Path) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(POLICY)
    assert load(str(path)) == RoomPolicy(
        (
            RoomRule("staff-*", private=True),
            RoomRule("announcements", read_only=True),
            RoomRule("vip-?", private=True, read_only=True),
        )
    )
    assert RoomPolicy.from_settings(Settings(room_policy=str(path))) == load(str(path))


def test_no_policy_file_means_every_room_is_public() -> None:
    policy = RoomPolicy.from_settings(Settings())
    assert policy == RoomPolicy() == parse("")
    assert not policy.private("staff-red")
    assert not policy.read_only("announcements")


# (what the file holds, part of the one-line message)
BAD = [
    ("[rooms.lobby\n", "Expected ']'"),  # not TOML
    ("[room.lobby]\nprivate = true\n", "unknown key 'room'"),
    ('[rooms."staff-*"]\nprivat = true\n', "[rooms.\"staff-*\"]: unknown key 'privat'"),
    ("[rooms.lobby]\nprivate = 1\n", "private must be true or false"),
    ('[rooms."Staff/*"]\nprivate = true\n', "is not a room pattern"),
    ("rooms = 3\n", "rooms must be tables"),
    ("[rooms]\nlobby = true\n", "must be a table of private and read_only"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_a_bad_policy_file_is_one_line_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as refused:
        load(str(path))
    assert str(refused.value).startswith(f"ASGI_CHAT_ROOM_POLICY={str(path)!r}: ")
    assert message in str(refused.value)
    assert "\n" not in str(refused.value)


def test_a_missing_or_unreadable_policy_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"nowhere.toml': cannot read it \(No such file or directory\)"):
        load(str(tmp_path / "nowhere.toml"))
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        load(str(binary))
    with pytest.raises(ConfigError, match="cannot read it"):
        RoomPolicy.from_settings(Settings(room_policy=str(tmp_path)))  # a directory


# --- who may join, who may say -------------------------------------------------------------------


def user(*rooms: str, moderator: bool = False) -> Identity:
    return Identity("u1", "Ann", guest=False, moderator=moderator, rooms=rooms, expires_ms=None)


GUEST = Identity("guest:AAAAAAAAAAAAAAAA", "Bob", guest=True, moderator=False, rooms=(), expires_ms=None)
# A guest with what a guest never has: the policy refuses it all the same.
FORGED_GUEST = Identity("guest:AAAAAAAAAAAAAAAA", "Bob", guest=True, moderator=True, rooms=("*",), expires_ms=None)

JOIN = [
    (user(), "lobby", True),  # public
    (GUEST, "lobby", True),
    (user(), "staff-red", False),  # private, and no rooms claim
    (user("staff-*"), "staff-red", True),
    (user("staff-red"), "staff-red", True),
    (user("staff-red"), "staff-blue", False),
    (user("*"), "vip-1", True),
    (user(moderator=True), "staff-red", False),  # a moderator is no key to a private room: rooms is
    (GUEST, "staff-red", False),
    (FORGED_GUEST, "staff-red", False),
    (user(), "announcements", True),  # read-only: anyone may join and read
]


@pytest.mark.parametrize(("who", "room", "allowed"), JOIN)
def test_may_join(who: Identity, room: str, allowed: bool) -> None:
    decision = parse(POLICY).may_join(who, room)
    assert bool(decision) is allowed
    assert ("private" in decision.reason) is not allowed


SAY = [
    (user(), "lobby", True),
    (GUEST, "lobby", True),
    (user(), "announcements", False),
    (user(moderator=True), "announcements", True),
    (GUEST, "announcements", False),
    (FORGED_GUEST, "announcements", False),  # never a moderator
    (user("vip-*"), "vip-1", False),  # private and read-only: joined, and still only moderators say
    (user("vip-*", moderator=True), "vip-1", True),
]


@pytest.mark.parametrize(("who", "room", "allowed"), SAY)
def test_may_say(who: Identity, room: str, allowed: bool) -> None:
    decision = parse(POLICY).may_say(who, room)
    assert bool(decision) is allowed
    assert ("read-only" in decision.reason) is not allowed


def test_every_matching_pattern_counts() -> None:
    """The stricter wins, whatever the order: a room under two patterns takes both flags."""
    policy = parse('[rooms."team-*"]\nread_only = true\n[rooms."*-secret"]\nprivate = true\n')
    assert policy.private("team-secret")
    assert policy.read_only("team-secret")
    assert policy.read_only("team-open")
    assert not policy.private("team-open")
