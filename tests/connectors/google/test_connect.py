"""`/agent connect google_calendar|gmail`: the setup steps, and the words that become a
credential google-auth can refresh with."""

from __future__ import annotations

import json

import pytest

from connectors.catalog import CONNECTORS, connect_usage

CLIENT_ID = "123456789012-abc.apps.googleusercontent.com"


@pytest.mark.parametrize(
    ("name", "scope"),
    [
        ("google_calendar", "https://www.googleapis.com/auth/calendar.events"),
        ("gmail", "https://www.googleapis.com/auth/gmail.readonly"),
    ],
)
def test_the_instructions_name_the_scopes_and_the_command(name: str, scope: str) -> None:
    """An admin is told which scopes to grant and what to run."""
    setup = CONNECTORS[name]

    assert scope in setup.instructions
    assert f"/agent connect {name} CLIENT_ID CLIENT_SECRET REFRESH_TOKEN" in setup.instructions
    assert f"`{name}`" in connect_usage()


def test_three_words_become_an_authorized_user_credential() -> None:
    """Client id, secret and refresh token are kept together, as google-auth reads them."""
    credential = CONNECTORS["google_calendar"].credential(
        [CLIENT_ID, "GOCSPX-secret-value", "1//0gRefreshTokenValue"]
    )

    assert credential is not None and credential.account is None
    assert json.loads(credential.token) == {
        "client_id": CLIENT_ID,
        "client_secret": "GOCSPX-secret-value",
        "refresh_token": "1//0gRefreshTokenValue",
    }
    assert "GOCSPX" not in repr(credential)


@pytest.mark.parametrize(
    "words",
    [
        ["1//0gRefreshTokenValue"],  # a bare token
        ["not-a-client-id", "GOCSPX-secret-value", "1//0gRefreshTokenValue"],
        [CLIENT_ID, "short", "1//0gRefreshTokenValue"],
        [CLIENT_ID, "GOCSPX-secret-value", "1//0gRefreshTokenValue", "extra"],
    ],
)
def test_words_that_are_not_a_google_credential_are_refused(words: list[str]) -> None:
    """Anything but CLIENT_ID CLIENT_SECRET REFRESH_TOKEN is not stored."""
    assert CONNECTORS["gmail"].credential(words) is None
