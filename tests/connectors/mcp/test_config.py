"""MCP_SERVERS is checked at start like every setting: a mistake stops the process with
one line naming it, and secrets stay hidden."""

from __future__ import annotations

import json

import pytest

from core.settings import ConfigError, Settings, load_settings
from core.tools import Effect


def _load(servers: list[dict[str, object]]) -> Settings:
    return load_settings(
        database_url="postgresql://unused",
        slack_signing_secret="s",
        mcp_servers=json.dumps(servers),
    )


@pytest.mark.parametrize(
    ("servers", "complaint"),
    [
        ([{"name": "orders", "transport": "stdio"}], "stdio needs a command"),
        ([{"name": "crm", "transport": "streamable_http"}], "streamable_http needs a url"),
        (
            [
                {"name": "crm", "transport": "stdio", "command": "a"},
                {"name": "crm", "transport": "stdio", "command": "b"},
            ],
            "MCP server names must be unique: crm",
        ),
        ([{"name": "Bad Name", "transport": "stdio", "command": "a"}], "should match pattern"),
        (
            [{"name": "crm", "transport": "stdio", "command": "a", "effects": {"x": "maybe"}}],
            "read_only",
        ),
    ],
)
def test_a_wrong_server_declaration_stops_the_start(
    servers: list[dict[str, object]], complaint: str
) -> None:
    """Each mistake is refused with a message naming MCP_SERVERS and the problem."""
    with pytest.raises(ConfigError) as refused:
        _load(servers)

    assert "MCP_SERVERS" in str(refused.value)
    assert complaint in str(refused.value)


def test_undeclared_tools_are_external_and_secrets_are_hidden() -> None:
    """A tool nobody declared needs approval; header values never print."""
    settings = _load(
        [
            {
                "name": "crm",
                "transport": "streamable_http",
                "url": "https://mcp.example.com/mcp",
                "headers": {"Authorization": "Bearer very-secret"},
                "effects": {"find_contact": "read_only"},
            }
        ]
    )

    [server] = settings.mcp_servers
    assert server.effect_of("find_contact") is Effect.READ_ONLY
    assert server.effect_of("delete_contact") is Effect.EXTERNAL
    assert "very-secret" not in repr(settings)
