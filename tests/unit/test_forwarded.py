"""Did the server apply X-Forwarded-For? The pure test behind the untrusted-proxy warning."""

from __future__ import annotations

import pytest

from asgi_chat.ops.forwarded import untrusted_forwarder


def xff(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"x-forwarded-for", value.encode("latin-1")) for value in values]


@pytest.mark.parametrize(
    ("client", "headers", "untrusted"),
    [
        # uvicorn trusted the proxy and put the forwarded address into the scope: nothing to say.
        (("203.0.113.5", 0), xff("203.0.113.5"), None),
        # A chain: uvicorn takes the right-most address it does not trust.
        (("198.51.100.2", 0), xff("203.0.113.5, 198.51.100.2"), None),
        # Every entry trusted (or "*"): uvicorn takes the left-most.
        (("203.0.113.5", 0), xff("203.0.113.5, 10.0.0.1"), None),
        # The same chain over two header lines, as uvicorn joins them.
        (("198.51.100.2", 0), xff("203.0.113.5", "198.51.100.2"), None),
        # Ports and IPv6, parsed as uvicorn parses them.
        (("203.0.113.5", 4321), xff("203.0.113.5:4321"), None),
        (("2001:db8::5", 0), xff("[2001:db8::5]:443"), None),
        (("2001:db8::5", 0), xff("2001:db8::5"), None),
        # The header is there and the client is still the peer: the server ignored it.
        (("10.0.0.1", 50000), xff("203.0.113.5"), "10.0.0.1"),
        (("127.0.0.7", 41000), xff("127.0.1.5"), "127.0.0.7"),
        (("::ffff:10.0.0.1", 1), xff("[2001:db8::5]:443"), "::ffff:10.0.0.1"),
        # Nothing forwarded: no header, an empty one, only commas.
        (("10.0.0.1", 50000), [], None),
        (("10.0.0.1", 50000), xff(""), None),
        (("10.0.0.1", 50000), xff(" , "), None),
        # No peer address at all (a Unix socket): nothing to trust.
        (None, xff("203.0.113.5"), None),
        # Header names are compared without regard to case (ASGI: "should be lowercased").
        (("10.0.0.1", 50000), [(b"X-Forwarded-For", b"203.0.113.5")], "10.0.0.1"),
        # Other forwarding headers are not this check's business.
        (("10.0.0.1", 50000), [(b"forwarded", b"for=203.0.113.5")], None),
    ],
)
def test_untrusted_forwarder(
    client: tuple[str, int] | None, headers: list[tuple[bytes, bytes]], untrusted: str | None
) -> None:
    assert untrusted_forwarder(client, headers) == untrusted
