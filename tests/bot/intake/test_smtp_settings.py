"""The email settings: documented, and refused at start when they cannot work together."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.intake.smtp_server import listener_options
from core.errors import StartupError
from core.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[3]
EMAIL_PREFIXES = ("smtp_", "email_", "gmail_")


def test_every_email_setting_is_documented() -> None:
    """Each SMTP_*, EMAIL_* and GMAIL_* setting appears in .env.example."""
    documented = {
        line.split("=", 1)[0].strip().lower()
        for line in (REPO / ".env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    }
    ours = {name for name in Settings.model_fields if name.startswith(EMAIL_PREFIXES)}
    assert ours and ours <= documented, sorted(ours - documented)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"smtp_tls_cert_file": "/nonexistent/cert.pem"}, "both SMTP_TLS_CERT_FILE"),
        ({"smtp_require_starttls": True}, "SMTP_REQUIRE_STARTTLS"),
        ({"smtp_auth_required": True}, "SMTP_AUTH_REQUIRED"),
        ({"smtp_auth_username": "relay", "smtp_auth_password": "pw"}, "after STARTTLS only"),
        (
            {"smtp_tls_cert_file": "/nonexistent/c.pem", "smtp_tls_key_file": "/nonexistent/k.pem"},
            "cannot load the SMTP TLS certificate",
        ),
    ],
)
def test_inconsistent_tls_and_auth_settings_stop_the_start(
    overrides: dict[str, object], message: str
) -> None:
    """Half a TLS setup, AUTH without TLS or a missing certificate is a one-line start-up
    error naming the setting, not a listener that silently offers less."""
    settings = load_settings(database_url="unused", slack_signing_secret="unused", **overrides)
    with pytest.raises(StartupError, match=message):
        listener_options(settings)
