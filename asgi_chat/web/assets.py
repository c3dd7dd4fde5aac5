"""The browser pages and their scripts and styles: files in ``static/``, read once at start-up.

Each file is served with an ``ETag`` (a hash of its bytes) and ``Cache-Control: no-cache``, which
tells browsers to keep the file but ask before each use (RFC 9111 5.2.2.4); a matching
``If-None-Match`` gets ``304 Not Modified`` and no body (RFC 9110 13.1.2).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from http import HTTPStatus
from importlib.resources import files
from importlib.resources.abc import Traversable

from ..asgi.parsing import header_values
from ..asgi.responses import Response

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
}


@dataclass(frozen=True, slots=True)
class Asset:
    body: bytes
    content_type: str
    etag: bytes


class Assets:
    """Every servable file of a directory, loaded into memory once."""

    def __init__(self, directory: Traversable | None = None) -> None:
        directory = directory or files("asgi_chat.web") / "static"
        self._assets: dict[str, Asset] = {}
        for entry in directory.iterdir():
            suffix = "." + entry.name.rpartition(".")[2]
            if entry.is_file() and suffix in CONTENT_TYPES:
                body = entry.read_bytes()
                etag = b'"' + hashlib.sha256(body).hexdigest()[:24].encode() + b'"'
                self._assets[entry.name] = Asset(body, CONTENT_TYPES[suffix], etag)

    def names(self) -> list[str]:
        return sorted(self._assets)

    def response(self, name: str, request_headers: Iterable[tuple[bytes, bytes]]) -> Response | None:
        """The file called ``name`` (a 304 if the client's copy is current), or None if unknown."""
        asset = self._assets.get(name)
        if asset is None:
            return None
        headers = ((b"etag", asset.etag), (b"cache-control", b"no-cache"))
        if _etag_matches(asset.etag, header_values(request_headers, b"if-none-match")):
            return Response(HTTPStatus.NOT_MODIFIED, b"", asset.content_type, headers)
        return Response(HTTPStatus.OK, asset.body, asset.content_type, headers)


def _etag_matches(etag: bytes, if_none_match: list[bytes]) -> bool:
    # RFC 9110 13.1.2: a list of entity tags compared weakly, or "*".
    for value in if_none_match:
        for tag in value.split(b","):
            tag = tag.strip()
            if tag == b"*" or tag.removeprefix(b"W/") == etag:
                return True
    return False
