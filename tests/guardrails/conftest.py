"""Shared pieces for the guardrails tests: a pool on the session database, tenants, a
Guardrails built as production builds it, a tiny local classifier, and a socket guard."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.db import Pool, open_pool
from core.settings import Settings, load_settings
from guardrails.facade import Guardrails, build_guardrails
from guardrails.policy import TenantPolicy
from testbed.markers import new_marker
from tests.guardrails.tiny_model import build_tiny_classifier


@pytest.fixture(scope="session")
def pool(database_url: str) -> Iterator[Pool]:
    pool = open_pool(database_url, max_size=4)
    yield pool
    pool.close()


def make_tenant(pool: Pool) -> int:
    with pool.connection() as conn:
        row = conn.execute(
            "INSERT INTO tenants (name, slack_team_id) VALUES (%s, %s) RETURNING id",
            ("guardrails test", f"T{new_marker(10).upper()}"),
        ).fetchone()
    assert row is not None
    return int(row["id"])


@pytest.fixture
def tenant(pool: Pool) -> int:
    return make_tenant(pool)


def settings_for(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "slack_signing_secret": "test-signing-secret",
        "guardrails_vault_key": "test vault key: a long random string in production",
        "guardrails_policy_cache_seconds": 0,
    }
    return load_settings(**(values | overrides))


@pytest.fixture(scope="session")
def guardrails(database_url: str, pool: Pool) -> Guardrails:
    """Built from settings with no model configured: toxicity off."""
    return build_guardrails(settings_for(database_url), pool)


def set_policy(guardrails: Guardrails, tenant_id: int, policy: TenantPolicy) -> None:
    guardrails.policies.save(tenant_id, policy, updated_by="test")


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The same tiny BERT classifier saved twice: labelled non-toxic/toxic and
    SAFE/INJECTION; it scores its training words' texts high."""
    return build_tiny_classifier(tmp_path_factory.mktemp("tiny-model"))


class NetworkAttempt(OSError):
    """Raised by the socket guard instead of letting a connection out."""


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Blocks name lookups and outbound connections; returns what was attempted."""
    attempts: list[str] = []

    def refuse_lookup(host: Any, *args: Any, **kwargs: Any) -> Any:
        attempts.append(f"lookup {host}")
        raise socket.gaierror(f"network blocked in this test: lookup of {host}")

    def refuse_connect(self: socket.socket, address: Any) -> Any:
        attempts.append(f"connect {address}")
        raise NetworkAttempt(f"network blocked in this test: connect to {address}")

    monkeypatch.setattr(socket, "getaddrinfo", refuse_lookup)
    monkeypatch.setattr(socket.socket, "connect", refuse_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse_connect)
    return attempts
