"""``asgi-chat.v1`` at the edge (issue 18): strings that cannot be encoded and numbers no store
can hold are refused as ``bad_request`` by the parser, before anything is assigned to them."""

from __future__ import annotations

import pytest

from asgi_chat.endpoints.protocol import MAX_WHOLE, BadRequest, History, Join, Since, parse_request

SURROGATE = "\\ud800"  # as JSON writes it: json.loads makes it a lone surrogate, which UTF-8 refuses


def refusal(text: str) -> BadRequest:
    with pytest.raises(BadRequest) as caught:
        parse_request(text, 4000)
    return caught.value


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ('{"type":"hello","user":"ada' + SURROGATE + '"}', "user"),
        ('{"type":"say","room":"lobby","text":"' + SURROGATE + '"}', "text"),
        ('{"type":"say","room":"lobby","text":"ok \\udfff low"}', "text"),  # a low surrogate alone too
        ('{"type":"say","room":"lobby","text":"hi","id":"' + SURROGATE + '"}', "id"),
        ('{"type":"join","room":"lobby","since":{"epoch":"' + SURROGATE + '","offset":1}}', "epoch"),
        ('{"type":"join","room":"' + SURROGATE + '"}', "room"),
    ],
)
def test_a_lone_surrogate_in_any_string_is_a_bad_request(text: str, field: str) -> None:
    error = refusal(text)
    assert error.code in {"bad_request", "bad_room"}
    if error.code == "bad_request":
        assert error.message == f"{field} is not valid Unicode: it holds a lone surrogate"


def test_a_surrogate_pair_is_one_astral_character_and_fine() -> None:
    request = parse_request('{"type":"say","room":"lobby","text":"\\ud83d\\ude00"}', 4000)
    assert getattr(request, "text", None) == "\U0001f600"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (f'{{"type":"history","room":"r","before":{MAX_WHOLE},"limit":1}}', History(None, "r", MAX_WHOLE, 1)),
        (
            f'{{"type":"join","room":"r","since":{{"epoch":"e","offset":{MAX_WHOLE}}}}}',
            Join(None, "r", Since("e", MAX_WHOLE)),
        ),
        (f'{{"type":"join","room":"r","history":{MAX_WHOLE}}}', Join(None, "r", None, MAX_WHOLE)),
    ],
)
def test_numbers_up_to_2_53_minus_1_are_taken(text: str, expected: object) -> None:
    assert parse_request(text, 4000) == expected


@pytest.mark.parametrize(
    "text",
    [
        f'{{"type":"history","room":"r","before":{MAX_WHOLE + 1},"limit":1}}',
        '{"type":"history","room":"r","before":18446744073709551616,"limit":1}',  # 2**64: Redis' stream ids end
        f'{{"type":"join","room":"r","since":{{"epoch":"e","offset":{MAX_WHOLE + 1}}}}}',
        f'{{"type":"join","room":"r","history":{2**63}}}',
        '{"type":"join","room":"r","history":' + "9" * 400 + "}",
    ],
)
def test_numbers_beyond_2_53_minus_1_are_a_bad_request(text: str) -> None:
    error = refusal(text)
    assert (error.code, error.message.split(" must")[1]) == ("bad_request", " be a whole number from 0 to 2**53 - 1")
