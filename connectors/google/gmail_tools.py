"""Gmail tools: search the connected mailbox's threads and read one (both read-only)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from connectors.google import gmail
from connectors.google.client import GoogleSession
from connectors.tool_errors import read_result
from core.tools import Tool, read_only_tool


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
    return read_only_tool(
        "gmail_search_threads",
        (
            "Find email threads in the connected Gmail mailbox; returns each thread's id, "
            "subject, sender, date and a snippet."
        ),
        SearchThreads,
        lambda context, a: {
            "threads": gmail.search_threads(session(context.tenant_id), a.query, a.limit)
        },
        lambda a: f"Search Gmail for {a.query!r}",
        failures=read_result,
    )


def _read_thread(session: GoogleSession) -> Tool:
    return read_only_tool(
        "gmail_read_thread",
        (
            "Read one Gmail thread by its id (when the id is known, read it: no search is "
            "needed), as plain text, oldest message first; attachments are listed by name, "
            "not opened."
        ),
        ReadThread,
        lambda context, a: gmail.read_thread(session(context.tenant_id), a.thread_id),
        lambda a: f"Read Gmail thread {a.thread_id}",
        failures=read_result,
    )
