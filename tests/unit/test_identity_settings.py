"""The identity settings (ops/settings.py's group "identity"): read from the environment, the
key set URL and token URL checked, and the two secrets never printed: not in the settings' repr,
not in the error a bad one raises."""

from __future__ import annotations

import dataclasses

import pytest

from asgi_chat.ops.settings import IDENTITY, Settings, SettingsError, from_env

SECRET = "s3cret-s3cret-s3cret-s3cret-s3cret-42"


def test_the_identity_settings_and_their_defaults() -> None:
    settings = Settings()
    assert (settings.guests, settings.jwt_leeway, settings.token_grace, settings.jwt_algorithms) == (True, 30, 25, ())
    environ = {
        "ASGI_CHAT_JWT_SECRET": SECRET,
        "ASGI_CHAT_JWT_PUBLIC_KEY_FILE": "/etc/chat/key.pem",
        "ASGI_CHAT_JWKS_URL": "https://auth.example/.well-known/jwks.json",
        "ASGI_CHAT_JWT_ALGORITHMS": "HS256, RS256",
        "ASGI_CHAT_JWT_AUDIENCE": "chat",
        "ASGI_CHAT_JWT_ISSUER": "https://auth.example",
        "ASGI_CHAT_JWT_LEEWAY": "5",
        "ASGI_CHAT_GUESTS": "off",
        "ASGI_CHAT_SECRET": SECRET + "!",
        "ASGI_CHAT_TOKEN_GRACE": "10",
        "ASGI_CHAT_TOKEN_URL": "/token",
        "ASGI_CHAT_ROOM_POLICY": "/etc/chat/rooms.toml",
    }
    assert from_env(environ) == Settings(
        jwt_secret=SECRET,
        jwt_public_key_file="/etc/chat/key.pem",
        jwks_url="https://auth.example/.well-known/jwks.json",
        jwt_algorithms=("HS256", "RS256"),
        jwt_audience="chat",
        jwt_issuer="https://auth.example",
        jwt_leeway=5.0,
        guests=False,
        secret=SECRET + "!",
        token_grace=10.0,
        token_url="/token",
        room_policy="/etc/chat/rooms.toml",
    )


def test_the_identity_settings_form_one_group_of_the_docs() -> None:
    grouped = [spec.name for spec in dataclasses.fields(Settings) if spec.metadata["group"] == IDENTITY]
    assert grouped == [
        "jwt_secret",
        "jwt_public_key_file",
        "jwks_url",
        "jwt_algorithms",
        "jwt_audience",
        "jwt_issuer",
        "jwt_leeway",
        "guests",
        "secret",
        "token_grace",
        "token_url",
        "room_policy",
    ]


def test_secrets_are_not_in_the_settings_repr() -> None:
    text = repr(Settings(jwt_secret=SECRET, secret=SECRET + "!"))
    assert SECRET not in text
    assert "jwt_secret" not in text
    assert "secret=" not in text
    assert "jwt_leeway=30.0" in text  # the rest is shown as before


@pytest.mark.parametrize("name", ["ASGI_CHAT_JWT_SECRET", "ASGI_CHAT_SECRET"])
def test_a_secret_too_short_is_refused_without_showing_it(name: str) -> None:
    with pytest.raises(SettingsError) as refused:
        from_env({name: "hunter2"})
    assert str(refused.value) == f"{name}=***: expected a secret of at least 32 bytes"


@pytest.mark.parametrize(
    ("url", "accepted"),
    [
        ("https://auth.example/jwks.json", True),
        ("http://127.0.0.1:8080/jwks.json", True),  # this machine: a test's server, a sidecar
        ("http://localhost/jwks.json", True),
        ("http://[::1]:9000/jwks.json", True),
        ("http://auth.example/jwks.json", False),  # keys over plain HTTP could be swapped on the way
        ("file:///etc/jwks.json", False),
        ("https://", False),
        ("auth.example/jwks.json", False),
    ],
)
def test_the_key_set_url_is_https_or_this_machine(url: str, accepted: bool) -> None:
    if accepted:
        assert from_env({"ASGI_CHAT_JWKS_URL": url}).jwks_url == url
    else:
        with pytest.raises(SettingsError, match=r"ASGI_CHAT_JWKS_URL=.*expected an https:// URL"):
            from_env({"ASGI_CHAT_JWKS_URL": url})


@pytest.mark.parametrize(("value", "expected"), [("/token", "/token"), ("https://a.example/t", "https://a.example/t")])
def test_the_token_url_is_a_path_or_a_url(value: str, expected: str) -> None:
    assert from_env({"ASGI_CHAT_TOKEN_URL": value}).token_url == expected


def test_a_token_url_that_is_neither_is_refused() -> None:
    with pytest.raises(SettingsError, match="ASGI_CHAT_TOKEN_URL='token': expected a path"):
        from_env({"ASGI_CHAT_TOKEN_URL": "token"})
