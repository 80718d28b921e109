"""Gmail tools: search the connected mailbox's threads and read one (both read-only)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from bot.agent.tools import ActionContext, Effect, Tool
from connectors.google import gmail
from connectors.google.client import GoogleSession
from connectors.tool_errors import read_result


class SearchThreads(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(
        min_length=1,
        max_length=300,
        description=(
            "Gmail search, as in Gmail's search box: words, from:, to:, subject:, "
            "after:2025/01/31, in:sent..."
        ),
    )
    limit: int = Field(default=10, ge=1, le=25, description="At most this many threads")


class ReadThread(BaseModel):
    model_config = ConfigDict(extra="forbid")

    thread_id: str = Field(
        pattern=r"^[0-9a-f]{6,32}$", description="A thread_id from gmail_search_threads"
    )


def gmail_tools(session: GoogleSession) -> list[Tool]:
    return [_search_threads(session), _read_thread(session)]


def _search_threads(session: GoogleSession) -> Tool:
    def run(context: ActionContext, arguments: BaseModel, key: str) -> dict[str, Any]:
        assert isinstance(arguments, SearchThreads)
        return read_result(
            "gmail_search_threads",
            lambda: {
                "threads": gmail.search_threads(
                    session(context.tenant_id), arguments.query, arguments.limit
                )
            },
        )

    def summarize(arguments: BaseModel) -> str:
        assert isinstance(arguments, SearchThreads)
        return f"Search Gmail for {arguments.query!r}"

    return Tool(
        name="gmail_search_threads",
        description=(
            "Find email threads in the connected Gmail mailbox; returns each thread's id, "
            "subject, sender, date and a snippet."
        ),
        effect=Effect.READ_ONLY,
        arguments=SearchThreads,
        run=run,
        summarize=summarize,
    )


def _read_thread(session: GoogleSession) -> Tool:
    def run(context: ActionContext, arguments: BaseModel, key: str) -> dict[str, Any]:
        assert isinstance(arguments, ReadThread)
        return read_result(
            "gmail_read_thread",
            lambda: gmail.read_thread(session(context.tenant_id), arguments.thread_id),
        )

    def summarize(arguments: BaseModel) -> str:
        assert isinstance(arguments, ReadThread)
        return f"Read Gmail thread {arguments.thread_id}"

    return Tool(
        name="gmail_read_thread",
        description=(
            "Read one Gmail thread as plain text, oldest message first; attachments are "
            "listed by name, not opened."
        ),
        effect=Effect.READ_ONLY,
        arguments=ReadThread,
        run=run,
        summarize=summarize,
    )
