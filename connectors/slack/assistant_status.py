"""The "is thinking…" status under an assistant thread, kept up while a run works.

Slack clears an assistant thread's status by itself after about two minutes (and when the
app posts), so a long run would look abandoned. A small timer thread sets it again every
`REFRESH_INTERVAL` until the run is done, then clears it. A timer rather than the agent's
step observer, because one step (a slow model call, a tool) can itself outlast the lapse.

Best effort: a status Slack refuses is logged and dropped; it never fails the run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import structlog
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

log = structlog.get_logger(__name__)

WORKING_STATUS = "is thinking…"
# Seconds between refreshes: well inside Slack's ~120 s before it drops a status.
REFRESH_INTERVAL = 60.0


@contextmanager
def status_while_working(
    client: WebClient,
    channel: str,
    thread_ts: str,
    *,
    status: str = WORKING_STATUS,
    refresh_interval: float = REFRESH_INTERVAL,
) -> Iterator[None]:
    """Show ``status`` under the thread for as long as the block runs."""
    done = threading.Event()

    def set_status(text: str) -> bool:
        try:
            client.assistant_threads_setStatus(channel_id=channel, thread_ts=thread_ts, status=text)
        except SlackApiError as exc:
            log.info("assistant.status_failed", error=exc.response.get("error"))
            return False
        return True

    def keep_up() -> None:
        while not done.wait(refresh_interval):
            set_status(status)

    if not set_status(status):
        yield  # not an assistant thread Slack knows, or no assistant:write: carry on
        return
    refresher = threading.Thread(target=keep_up, name="assistant-status", daemon=True)
    refresher.start()
    try:
        yield
    finally:
        done.set()
        refresher.join()
        set_status("")
