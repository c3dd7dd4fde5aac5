"""Settings from the environment: every variable, its default, and a clear error for a bad value."""

from __future__ import annotations

import logging

import pytest

from asgi_chat.ops.settings import Settings, SettingsError, from_env


def test_defaults_without_environment() -> None:
    assert from_env({}) == Settings()


def test_every_field_has_a_variable() -> None:
    environ = {
        "ASGI_CHAT_MAX_MESSAGE_BYTES": "10",
        "ASGI_CHAT_RATE_PER_SECOND": "0.5",
        "ASGI_CHAT_RATE_BURST": "3",
        "ASGI_CHAT_MAX_CONNECTIONS": "0",
        "ASGI_CHAT_MAX_CONNECTIONS_PER_ADDRESS": "2",
        "ASGI_CHAT_MAX_ITEM_ID_LENGTH": "5",
        "ASGI_CHAT_MAX_CREDENTIAL_LENGTH": "6",
        "ASGI_CHAT_ALLOWED_ORIGINS": "https://a.example, http://b.example:8080",
        "ASGI_CHAT_TOKENS_FILE": "/etc/tokens",
        "ASGI_CHAT_OUTBOX_MAX_MESSAGES": "7",
        "ASGI_CHAT_OUTBOX_MAX_BYTES": "8",
        "ASGI_CHAT_SEND_TIMEOUT": "1.5",
        "ASGI_CHAT_BROKER_URL": "redis://localhost:6379/0",
        "ASGI_CHAT_TRACE": "yes",
    }
    assert from_env(environ) == Settings(
        max_message_bytes=10,
        rate_per_second=0.5,
        rate_burst=3,
        max_connections=0,
        max_connections_per_address=2,
        max_item_id_length=5,
        max_credential_length=6,
        allowed_origins=("https://a.example", "http://b.example:8080"),
        tokens_file="/etc/tokens",
        outbox_max_messages=7,
        outbox_max_bytes=8,
        send_timeout=1.5,
        broker_url="redis://localhost:6379/0",
        trace=True,
    )


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ASGI_CHAT_MAX_MESSAGE_BYTES", "lots"),
        ("ASGI_CHAT_MAX_MESSAGE_BYTES", "-1"),
        ("ASGI_CHAT_RATE_PER_SECOND", "nan"),
        ("ASGI_CHAT_SEND_TIMEOUT", "inf"),
        ("ASGI_CHAT_TRACE", "maybe"),
    ],
)
def test_a_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"{name}=.*expected"):
        from_env({name: value})


def test_an_unknown_variable_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="asgi_chat"):
        from_env({"ASGI_CHAT_MAX_CONECTIONS": "5", "OTHER": "x"})
    assert "ignoring unknown setting ASGI_CHAT_MAX_CONECTIONS" in caplog.text
    assert "OTHER" not in caplog.text
