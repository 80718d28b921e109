"""Tools the agent may call, each declaring the effect it has on the world.

The effect decides the path: read-only and internal tools run during the Act step;
external ones (anything a person outside the thread would notice) never run there: they
become pending actions that wait for an approver (see review/).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel, ValidationError


class Effect(enum.StrEnum):
    READ_ONLY = "read_only"
    INTERNAL = "internal"  # posts in the agent's own thread
    EXTERNAL = "external"  # email, other channels, CRM, helpdesk, calendar


@dataclass(frozen=True)
class ActionContext:
    """What an external tool needs to know about the request it acts for."""

    tenant_id: int
    bot_token: str
    requested_by: str
    # The action_token of the Slack event that started the run (None for email and for
    # events without one): what Slack asks of a bot token to search on a person's behalf.
    action_token: str | None = None


@dataclass(frozen=True)
class Watched:
    """A value a card showed that the action depends on; execution reads it again and
    stops if it changed (the deal is no longer in the stage the card said)."""

    what: str  # as people say it: "the deal's stage"
    value: Any  # as the system stores it ("contractsent"), JSON
    shown: str  # as people read it ("Contract sent")


@dataclass(frozen=True)
class Preview:
    """What an external action will change, read from the system just before its card is
    posted: the record it acts on and each change as before -> after."""

    subject: str  # the record, as people know it: "Deal: Acme renewal"
    changes: tuple[str, ...] = ()  # "Stage: Contract sent → Closed won"
    watched: tuple[Watched, ...] = ()
    # The arguments the preview says better (a deal's id and stage id): not repeated raw.
    covers: tuple[str, ...] = ()

    def stored(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "changes": list(self.changes),
            "covers": list(self.covers),
            "watched": [{"what": w.what, "value": w.value, "shown": w.shown} for w in self.watched],
        }


@dataclass(frozen=True)
class Previewer:
    """How a tool reads its effect (`Preview`) for a card; `reads` names what it reads,
    for "could not read the current stage: …". `read` raises the connector's error."""

    reads: str
    read: Callable[[ActionContext, BaseModel], Preview]


@dataclass(frozen=True)
class Tool:
    name: str
    description: str
    effect: Effect
    arguments: type[BaseModel]
    # Runs the call; for external tools this is what an approved action executes.
    run: Callable[[ActionContext, BaseModel, str], dict[str, Any]]
    # One line for people: what will happen ("Post in #sales").
    summarize: Callable[[BaseModel], str]
    # External tools only: whether an earlier attempt with this idempotency key already
    # took effect, so a retried execution never repeats it; None when it did not.
    reconcile: Callable[[ActionContext, BaseModel, str], dict[str, Any] | None] | None = None
    # False for tools a channel proposes itself (an email reply), not the model.
    offered_to_model: bool = True
    # Rules the call must meet before it is even proposed (and again before it runs),
    # e.g. allowed recipient domains: the reason it may not, in plain words, or None.
    check: Callable[[ActionContext, BaseModel], str | None] | None = None
    # The connector a tenant must have connected (`/agent connect NAME`) for the model to
    # be offered this tool; None for tools that need no connector (Slack, email, MCP).
    connector: str | None = None
    # External tools that change a record: its state before -> after, for the card, and
    # the values execution checks again (review/effects.py).
    preview: Previewer | None = None
    # External tools: what the results read earlier in the same run say against the call,
    # in plain words (an invite to someone a free/busy check showed busy then), or None.
    # The agent then does not propose it, and tells the model and the requester why.
    conflicts: Callable[[BaseModel, list[str]], str | None] | None = None

    def parse(self, arguments: dict[str, Any]) -> BaseModel:
        """The call's arguments, validated; raises ToolArgumentsError with a readable reason.

        A null for an argument the tool does not require means "not given" (strict JSON
        schema makes the model write every property; see `core.schemas`)."""
        schema = self.arguments.model_json_schema()
        given = _without_nulls(arguments, schema, schema.get("$defs", {}))
        try:
            return self.arguments.model_validate(given)
        except ValidationError as exc:
            raise ToolArgumentsError(
                f"invalid arguments for {self.name}: {readable(exc)}"
            ) from None

    def describe(self) -> dict[str, Any]:
        """How the model sees the tool in its prompt."""
        return {
            "name": self.name,
            "description": self.description,
            "needs_approval": self.effect is Effect.EXTERNAL,
            "arguments": self.arguments.model_json_schema(),
        }


def readable(exc: ValidationError, most: int = 3) -> str:
    """A validation error in a few words the model (and a log reader) can act on."""
    problems = []
    for error in exc.errors()[:most]:
        where = ".".join(str(part) for part in error["loc"]) or "arguments"
        problems.append(f"{where}: {error['msg']}")
    more = len(exc.errors()) - most
    return "; ".join(problems) + (f" (and {more} more)" if more > 0 else "")


def _without_nulls(value: Any, schema: dict[str, Any], defs: dict[str, Any]) -> Any:
    """``value`` without the null properties its schema does not require."""
    ref = schema.get("$ref", "")
    if ref.startswith("#/$defs/"):
        schema = defs.get(ref.removeprefix("#/$defs/"), {})
    if isinstance(value, dict) and isinstance(schema.get("properties"), dict):
        required = set(schema.get("required", []))
        properties = schema["properties"]
        return {
            key: _without_nulls(item, properties.get(key, {}), defs)
            for key, item in value.items()
            if item is not None or key in required
        }
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [_without_nulls(item, schema["items"], defs) for item in value]
    return value


def needing(connector: str, tools: Iterable[Tool]) -> list[Tool]:
    """``tools``, offered only to tenants that connected ``connector``."""
    return [replace(tool, connector=connector) for tool in tools]


class ToolArgumentsError(Exception):
    """The model called a tool with arguments that do not fit its schema."""


class ActionRefused(Exception):
    """The target system refused the action for good; retrying cannot help. The message
    is shown to people."""


A = TypeVar("A", bound=BaseModel)
Read = Callable[[], dict[str, Any]]


def read_only_tool(
    name: str,
    description: str,
    arguments: type[A],
    read: Callable[[ActionContext, A], dict[str, Any]],
    summary: Callable[[A], str],
    *,
    failures: Callable[[str, Read], dict[str, Any]] = lambda _name, call: call(),
) -> Tool:
    """A read-only tool from a typed `read` and `summary`; `failures` turns a service's
    error into words for the model (connectors/tool_errors.read_result)."""

    def run(context: ActionContext, given: BaseModel, key: str) -> dict[str, Any]:
        assert isinstance(given, arguments)
        return failures(name, lambda: read(context, given))

    def summarize(given: BaseModel) -> str:
        assert isinstance(given, arguments)
        return summary(given)

    return Tool(name, description, Effect.READ_ONLY, arguments, run, summarize)


T = TypeVar("T")


class Failures(Protocol):
    """How a service's error in `call` reaches the agent (connectors/tool_errors.write_result:
    refused for good, or raised again to be retried)."""

    def __call__(self, tool: str, call: Callable[[], T], /) -> T: ...


def _unguarded(tool: str, call: Callable[[], T], /) -> T:
    return call()


def external_tool(
    name: str,
    description: str,
    arguments: type[A],
    write: Callable[[ActionContext, A, str], dict[str, Any]],
    find: Callable[[ActionContext, A, str], dict[str, Any] | None],
    summary: Callable[[A], str],
    *,
    preview: tuple[str, Callable[[ActionContext, A], Preview]] | None = None,
    conflicts: Callable[[A, list[str]], str | None] | None = None,
    failures: Failures = _unguarded,
) -> Tool:
    """An external tool from a typed `write` (what an approved action does with its
    idempotency key), `find` (whether an earlier attempt with that key took effect: its
    `reconcile`) and `summary`; `preview` is what it reads for the card and how;
    `conflicts` what earlier results of the run say against it (Tool.conflicts). `failures`
    guards `write` and `find` alike."""

    def run(context: ActionContext, given: BaseModel, key: str) -> dict[str, Any]:
        assert isinstance(given, arguments)
        return failures(name, lambda: write(context, given, key))

    def reconcile(context: ActionContext, given: BaseModel, key: str) -> dict[str, Any] | None:
        assert isinstance(given, arguments)
        return failures(name, lambda: find(context, given, key))

    def summarize(given: BaseModel) -> str:
        assert isinstance(given, arguments)
        return summary(given)

    previewer = None
    if preview is not None:
        reads, read = preview

        def read_preview(context: ActionContext, given: BaseModel) -> Preview:
            assert isinstance(given, arguments)
            return read(context, given)

        previewer = Previewer(reads, read_preview)
    conflicting = None
    if conflicts is not None:
        judge = conflicts

        def conflicting(given: BaseModel, outputs: list[str]) -> str | None:
            assert isinstance(given, arguments)
            return judge(given, outputs)

    return Tool(
        name,
        description,
        Effect.EXTERNAL,
        arguments,
        run,
        summarize,
        reconcile=reconcile,
        preview=previewer,
        conflicts=conflicting,
    )


@dataclass(frozen=True)
class ToolRegistry:
    tools: dict[str, Tool]

    @classmethod
    def of(cls, *tools: Tool) -> ToolRegistry:
        return cls({tool.name: tool for tool in tools})

    def get(self, name: str) -> Tool | None:
        return self.tools.get(name)

    def offered(self) -> list[Tool]:
        """The tools the model may call (not those a channel proposes itself)."""
        return [tool for tool in self.tools.values() if tool.offered_to_model]

    def describe(self) -> list[dict[str, Any]]:
        return [tool.describe() for tool in self.offered()]
