"""Settings from the environment: every variable, its default, and a clear error for a bad value."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from asgi_chat.ops import settings as settings_module
from asgi_chat.ops.settings import Settings, SettingsError, from_env


@pytest.fixture
def fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Forget which unknown names this process has warned about (it warns once per name)."""
    monkeypatch.setattr(settings_module, "_warned", set())


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
        "ASGI_CHAT_STATE_URL": "redis://localhost:6379/0",
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
        state_url="redis://localhost:6379/0",
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
        ("ASGI_CHAT_STATE_URL", "ftp://redis"),  # neither memory:// nor redis://
        ("ASGI_CHAT_STATE_URL", "redis"),
    ],
)
def test_a_bad_value_names_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=f"{name}=.*expected"):
        from_env({name: value})


@pytest.mark.usefixtures("fresh_warnings")
def test_an_unknown_variable_is_warned_about(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="asgi_chat"):
        from_env({"ASGI_CHAT_MAX_CONECTIONS": "5", "OTHER": "x"})
    assert "ignoring unknown setting ASGI_CHAT_MAX_CONECTIONS" in caplog.text
    assert "OTHER" not in caplog.text


# Each numeric setting and the unit its message must name: written out, not read from the fields'
# own descriptions, so a description with the wrong unit fails here.
UNITS = {
    "ASGI_CHAT_MAX_MESSAGE_BYTES": ("a whole number", "bytes"),
    "ASGI_CHAT_RATE_PER_SECOND": ("a number", "messages per second"),
    "ASGI_CHAT_RATE_BURST": ("a whole number", "messages"),
    "ASGI_CHAT_MAX_CONNECTIONS": ("a whole number", "connections"),
    "ASGI_CHAT_MAX_CONNECTIONS_PER_ADDRESS": ("a whole number", "connections"),
    "ASGI_CHAT_MAX_ITEM_ID_LENGTH": ("a whole number", "characters"),
    "ASGI_CHAT_MAX_CREDENTIAL_LENGTH": ("a whole number", "characters"),
    "ASGI_CHAT_OUTBOX_MAX_MESSAGES": ("a whole number", "messages"),
    "ASGI_CHAT_OUTBOX_MAX_BYTES": ("a whole number", "bytes"),
    "ASGI_CHAT_SEND_TIMEOUT": ("a number", "seconds"),
    "ASGI_CHAT_MAX_TEXT_CHARS": ("a whole number", "characters"),
    "ASGI_CHAT_DEDUP_SECONDS": ("a number", "seconds"),
    "ASGI_CHAT_ROOMS_PER_CONNECTION": ("a whole number", "rooms"),
    "ASGI_CHAT_MAX_ROOMS": ("a whole number", "rooms"),
    "ASGI_CHAT_ROOM_IDLE_SECONDS": ("a number", "seconds"),
    "ASGI_CHAT_REPLAY_MAX": ("a whole number", "messages"),
    "ASGI_CHAT_HISTORY_MESSAGES": ("a whole number", "messages"),
    "ASGI_CHAT_HISTORY_MAX_BYTES": ("a whole number", "bytes"),
    "ASGI_CHAT_PRESENCE_TIMEOUT": ("a number", "seconds"),
    "ASGI_CHAT_DEDUP_MAX": ("a whole number", "say ids"),
    "ASGI_CHAT_PRESENCE_INTERVAL": ("a number", "seconds"),
    "ASGI_CHAT_OUTPUT_BYTES_PER_SECOND": ("a whole number", "bytes per second"),
    "ASGI_CHAT_ADDRESS_OUTPUT_BYTES_PER_SECOND": ("a whole number", "bytes per second"),
    "ASGI_CHAT_JWT_LEEWAY": ("a number", "seconds"),
    "ASGI_CHAT_TOKEN_GRACE": ("a number", "seconds"),
    "ASGI_CHAT_API_MAX_BODY_BYTES": ("a whole number", "bytes"),
    "ASGI_CHAT_API_RATE_PER_SECOND": ("a number", "requests per second"),
}


def test_the_unit_table_covers_every_numeric_setting() -> None:
    numeric = {
        "ASGI_CHAT_" + spec.name.upper()
        for spec in dataclasses.fields(Settings)
        if type(spec.default) in (int, float)  # not bool: a flag has no unit
    }
    assert set(UNITS) == numeric


@pytest.mark.parametrize("name", UNITS)
def test_a_numeric_setting_that_is_not_a_number_names_its_unit(name: str) -> None:
    kind, unit = UNITS[name]
    with pytest.raises(SettingsError) as caught:
        from_env({name: "abc"})
    assert str(caught.value) == f"{name}='abc': expected {kind} of {unit} >= 0 (0 turns the limit off)"


@pytest.mark.usefixtures("fresh_warnings")
def test_an_unknown_name_is_warned_about_once_per_process(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="asgi_chat"):
        for _ in range(3):
            assert from_env({"ASGI_CHAT_SEND_TIMOUT": "1", "ASGI_CHAT_SEND_TIMEOUT": "2"}).send_timeout == 2
    warned = [record.getMessage() for record in caplog.records if record.name == "asgi_chat"]
    assert warned == ["ignoring unknown setting ASGI_CHAT_SEND_TIMOUT"]


def test_every_setting_says_what_it_does_for_the_generated_docs() -> None:
    """docs/configuration.md is generated from this metadata: a field without it would be a blank row."""
    for spec in dataclasses.fields(Settings):
        assert {"parse", "expects", "help", "group"} <= set(spec.metadata), spec.name
        assert spec.metadata["help"].strip(), spec.name
        assert spec.metadata["group"].strip(), spec.name


# --- a renamed setting -------------------------------------------------------------------------

OLD, NEW = "ASGI_CHAT_BROKER_URL", "ASGI_CHAT_STATE_URL"


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "asgi_chat"]


@pytest.mark.usefixtures("fresh_warnings")
def test_the_old_name_still_works_and_is_warned_about_once(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="asgi_chat"):
        for _ in range(3):  # a process may read its settings more than once (the CLI, then the app)
            assert from_env({OLD: "redis://redis:6379/1"}).state_url == "redis://redis:6379/1"
    assert warnings(caplog) == [f"{OLD} is deprecated: it is read as {NEW}, its new name; set that instead"]


@pytest.mark.usefixtures("fresh_warnings")
def test_the_new_name_wins_over_the_old_one(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="asgi_chat"):
        settings = from_env({OLD: "redis://old:6379/0", NEW: "redis://new:6379/0"})
    assert settings.state_url == "redis://new:6379/0"
    assert warnings(caplog) == [f"ignoring {OLD}, the old name of {NEW}, which is set too"]


@pytest.mark.usefixtures("fresh_warnings")
def test_a_bad_value_under_the_old_name_names_the_old_name() -> None:
    with pytest.raises(SettingsError, match=rf"^{OLD}='ftp://x': expected memory:// or redis://"):
        from_env({OLD: "ftp://x"})
