"""How an admin declares an MCP server (`MCP_SERVERS`, a JSON list in core/settings.py).

Secrets a server needs (an HTTP bearer token, an API key in a stdio server's environment)
are SecretStr: they reach the transport and nowhere else, never a log line.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import NoDecode

from core.tools import Effect

# Tool names become `<server>__<tool>`; the server part must stay within the model
# providers' function-name charset ([a-zA-Z0-9_-]) and leave room for the tool's name.
SERVER_NAME = r"^[a-z0-9][a-z0-9-]{0,23}$"


class McpServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=SERVER_NAME)
    transport: Literal["stdio", "streamable_http"]
    # stdio: the server is a child process of each worker. It inherits only the MCP SDK's
    # short list of harmless variables (PATH, HOME...) plus `env`, never our settings.
    command: str | None = None
    args: list[str] = Field(default_factory=list)
    env: dict[str, SecretStr] = Field(default_factory=dict)
    cwd: str | None = None
    # streamable_http: the server's MCP endpoint, e.g. https://mcp.example.com/mcp.
    url: str | None = None
    headers: dict[str, SecretStr] = Field(default_factory=dict)
    # The effect of each tool, by the server's tool name. A tool nobody declared is
    # external: we cannot know what a third-party tool does, and a tool that acts on the
    # world must never act without a person's approval, so the safe guess is "it might".
    effects: dict[str, Effect] = Field(default_factory=dict)
    default_effect: Effect = Effect.EXTERNAL

    @model_validator(mode="after")
    def _transport_has_its_fields(self) -> McpServerConfig:
        if self.transport == "stdio" and not self.command:
            raise ValueError(f"MCP server {self.name!r}: stdio needs a command")
        if self.transport == "streamable_http" and not self.url:
            raise ValueError(f"MCP server {self.name!r}: streamable_http needs a url")
        return self

    def effect_of(self, tool_name: str) -> Effect:
        return self.effects.get(tool_name, self.default_effect)


def _unique_names(servers: list[McpServerConfig]) -> list[McpServerConfig]:
    names = [server.name for server in servers]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        # Two servers under one name would offer tools under the same prefix.
        raise ValueError(f"MCP server names must be unique: {', '.join(repeated)}")
    return servers


# The settings field's type: a JSON list (parsed by Settings), names unique.
McpServers = Annotated[list[McpServerConfig], NoDecode, AfterValidator(_unique_names)]
