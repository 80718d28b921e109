"""With Postgres unreachable, the listener answers 4xx (the sender retries later) and
stores nothing half-way; once Postgres is back, the retry is stored exactly once."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator

import pytest

from tests.bot.intake.test_smtp_intake import CUSTOMER, mail
from tests.connectors.email.support import (
    DB,
    RunningListener,
    email_settings,
    make_tenant,
    raw_bytes,
    request_rows,
    start_listener,
)
from tests.connectors.email.tcp_proxy import TcpProxy

# The email tests' fixtures (their database, tenants, the listener).
pytest_plugins = ["tests.connectors.email.fixtures"]


@pytest.fixture
def proxied_listener(
    email_database_url: str, redis_url: str, queue_namespace: str
) -> Iterator[tuple[RunningListener, TcpProxy]]:
    proxy = TcpProxy.to_database(email_database_url).start()
    settings = email_settings(
        proxy.url_for(email_database_url),
        redis_url,
        f"{queue_namespace}-email",
        smtp_db_timeout_seconds=2.0,
    )
    running = start_listener(settings)
    try:
        yield running, proxy
    finally:
        running.stop()
        proxy.stop()


def test_postgres_down_during_data_gives_451_and_nothing_stored(
    proxied_listener: tuple[RunningListener, TcpProxy], email_db: DB
) -> None:
    """Postgres goes away after RCPT was accepted: the end of DATA is answered 451, no
    row exists; the sender's retry after Postgres returns is stored once."""
    smtp_listener, proxy = proxied_listener
    email_tenant = make_tenant(email_db)
    raw = mail(email_tenant.inbox, message_id="<while-down@customer.example>")
    with smtplib.SMTP("127.0.0.1", smtp_listener.port, timeout=20) as client:
        client.ehlo()
        client.mail(CUSTOMER)
        assert client.rcpt(email_tenant.inbox)[0] == 250
        proxy.cut()
        code, text = client.data(raw)
    assert 400 <= code < 500, text
    assert request_rows(email_db, email_tenant.id) == []
    assert email_db.execute(
        "SELECT count(*) AS n FROM conversations WHERE tenant_id = %s", (email_tenant.id,)
    ).fetchone() == {"n": 0}

    proxy.restore()
    with smtplib.SMTP("127.0.0.1", smtp_listener.port, timeout=20) as client:
        assert client.sendmail(CUSTOMER, [email_tenant.inbox], raw) == {}
    (row,) = request_rows(email_db, email_tenant.id)
    assert raw_bytes(smtp_listener.settings, row) == raw


def test_postgres_down_at_rcpt_gives_451(
    proxied_listener: tuple[RunningListener, TcpProxy], email_db: DB
) -> None:
    """The recipient cannot be checked: a temporary 451, not a 550 that would bounce."""
    smtp_listener, proxy = proxied_listener
    email_tenant = make_tenant(email_db)
    proxy.cut()
    try:
        with smtplib.SMTP("127.0.0.1", smtp_listener.port, timeout=20) as client:
            client.ehlo()
            client.mail(CUSTOMER)
            code, _ = client.rcpt(email_tenant.inbox)
    finally:
        proxy.restore()
    assert code == 451
