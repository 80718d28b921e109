"""Per-client limits, STARTTLS with a configured certificate, and AUTH for relays."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.bot.intake.test_smtp_intake import CUSTOMER, mail
from tests.connectors.email.certs import SelfSigned, make_self_signed
from tests.connectors.email.support import (
    DB,
    RunningListener,
    email_settings,
    make_tenant,
    request_rows,
    start_listener,
)

# The email tests' fixtures (their database, tenants, the listener).
pytest_plugins = ["tests.connectors.email.fixtures"]

RELAY_USER, RELAY_PASSWORD = "relay", "relay-secret-1"


@pytest.fixture
def start(email_database_url: str, redis_url: str, queue_namespace: str) -> Iterator[object]:
    started: list[RunningListener] = []

    def start_with(**overrides: object) -> RunningListener:
        settings = email_settings(
            email_database_url, redis_url, f"{queue_namespace}-email", **overrides
        )
        started.append(start_listener(settings))
        return started[-1]

    yield start_with
    for running in started:
        running.stop()


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> SelfSigned:
    return make_self_signed(Path(tmp_path_factory.mktemp("tls")))


def test_too_many_connections_from_one_client_get_421(start, email_db: DB) -> None:  # type: ignore[no-untyped-def]
    """Above the concurrent-connection limit a client is greeted with 421 and dropped."""
    running = start(smtp_max_connections_per_client=2)
    first = smtplib.SMTP("127.0.0.1", running.port, timeout=10)
    second = smtplib.SMTP("127.0.0.1", running.port, timeout=10)
    try:
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            smtplib.SMTP("127.0.0.1", running.port, timeout=10)
        assert refused.value.smtp_code == 421
    finally:
        first.quit()
        second.quit()
    # Closing them frees the slots.
    with smtplib.SMTP("127.0.0.1", running.port, timeout=10) as again:
        assert again.noop()[0] == 250


def test_connection_rate_is_limited(start) -> None:  # type: ignore[no-untyped-def]
    """More new connections per minute than allowed are refused with 421."""
    running = start(smtp_connections_per_client_per_minute=3)
    for _ in range(3):
        with smtplib.SMTP("127.0.0.1", running.port, timeout=10) as client:
            client.noop()
    with pytest.raises(smtplib.SMTPConnectError) as refused:
        smtplib.SMTP("127.0.0.1", running.port, timeout=10)
    assert refused.value.smtp_code == 421


def test_message_rate_is_limited_with_a_temporary_error(start, email_db: DB) -> None:  # type: ignore[no-untyped-def]
    """Past the per-minute message rate, MAIL FROM gets 450: the sender queues and retries."""
    running = start(smtp_messages_per_client_per_minute=2)
    email_tenant = make_tenant(email_db)
    with smtplib.SMTP("127.0.0.1", running.port, timeout=10) as client:
        for index in range(2):
            client.sendmail(
                CUSTOMER, [email_tenant.inbox], mail(email_tenant.inbox, subject=f"n{index}")
            )
        code, _ = client.mail(CUSTOMER)
    assert code == 450
    assert len(request_rows(email_db, email_tenant.id)) == 2


def test_starttls_is_offered_and_can_be_required(  # type: ignore[no-untyped-def]
    start, certificate: SelfSigned, email_db: DB
) -> None:
    """With a certificate configured, STARTTLS is offered; when required, mail before it is
    refused with 530, and mail after it is stored."""
    running = start(
        smtp_tls_cert_file=str(certificate.cert_file),
        smtp_tls_key_file=str(certificate.key_file),
        smtp_require_starttls=True,
    )
    email_tenant = make_tenant(email_db)
    with smtplib.SMTP("127.0.0.1", running.port, timeout=10) as client:
        client.ehlo()
        assert client.has_extn("starttls")
        assert client.mail(CUSTOMER)[0] == 530
    with smtplib.SMTP("127.0.0.1", running.port, timeout=10) as client:
        client.starttls(context=certificate.client_context())
        client.sendmail(CUSTOMER, [email_tenant.inbox], mail(email_tenant.inbox))
    assert len(request_rows(email_db, email_tenant.id)) == 1


def test_auth_for_relays(start, certificate: SelfSigned, email_db: DB) -> None:  # type: ignore[no-untyped-def]
    """With AUTH required, a relay with the right password (over TLS) may deliver; a wrong
    password gets 535 and an unauthenticated MAIL gets 530."""
    running = start(
        smtp_tls_cert_file=str(certificate.cert_file),
        smtp_tls_key_file=str(certificate.key_file),
        smtp_auth_username=RELAY_USER,
        smtp_auth_password=RELAY_PASSWORD,
        smtp_auth_required=True,
    )
    email_tenant = make_tenant(email_db)
    with smtplib.SMTP("127.0.0.1", running.port, timeout=10) as client:
        client.starttls(context=certificate.client_context())
        client.ehlo()
        assert client.mail(CUSTOMER)[0] == 530
        with pytest.raises(smtplib.SMTPAuthenticationError) as wrong:
            client.login(RELAY_USER, "not-the-password")
        assert wrong.value.smtp_code == 535
    with smtplib.SMTP("127.0.0.1", running.port, timeout=10) as client:
        client.starttls(context=certificate.client_context())
        client.login(RELAY_USER, RELAY_PASSWORD)
        client.sendmail(CUSTOMER, [email_tenant.inbox], mail(email_tenant.inbox))
    assert len(request_rows(email_db, email_tenant.id)) == 1
