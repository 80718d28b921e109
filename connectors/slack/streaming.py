"""The bot's reply in a thread, shown while it is being written and then made final.

An answer is shown early by streaming it (Slack's chat.startStream / appendStream /
stopStream); where Slack refuses to stream (an older workspace, a conversation type it
does not stream to), the "working on it" message is edited with chat.update instead.
Either way the final text replaces whatever was shown, so what people end up reading is
always the checked answer; if that differs from what they saw appear, a note says so.

Showing early is best effort: a Slack error while previewing stops the preview, never
the answer. Only the final write's errors reach the caller.

A stream cannot carry Slack metadata until it stops, so the message is findable another
way: ``before_stream`` is told just before chat.startStream (the caller records that
intent), ``on_moved`` once the stream's ts is known. A worker killed in between leaves
the intent, and the retried run looks for the stream in the thread (bot/agent/
live_reply.py) and finishes that message instead of starting a second answer. Stopped
and final messages carry ``metadata``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog
from slack_sdk.errors import SlackApiError
from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject

from connectors.slack.threads import MAX_TEXT, SlackThread

log = structlog.get_logger(__name__)

# Seconds between two writes of a preview: keeps a long answer within Slack's rate limits
# for appendStream and chat.update while still looking live.
FLUSH_INTERVAL = 0.4
PREVIEW_SUFFIX = " …"  # marks a chat.update preview as still being written
REPLACED_NOTE = (
    "_:information_source: I replaced the draft that appeared while I was writing: "
    "it did not pass my checks._"
)

Mode = Literal["waiting", "stream", "update", "off"]


@dataclass
class ReplyWriter:
    """One run's reply: ``placeholder_ts`` is the "working on it" message already posted.

    ``recipient_user_id`` / ``recipient_team_id`` say whom a stream is for (Slack requires
    them outside DMs). ``before_stream`` is told just before a stream is started and
    ``on_stream_refused`` when Slack refused it (nothing was created); ``on_moved`` is told
    the ts of the streamed message once it exists, so a retried job edits that message
    rather than the deleted placeholder. ``mode="update"`` never streams: previews edit
    the placeholder (a retried run finishing a message it had streamed into).
    """

    thread: SlackThread
    placeholder_ts: str
    recipient_user_id: str | None = None
    recipient_team_id: str | None = None
    before_stream: Callable[[], None] = lambda: None
    on_moved: Callable[[str], None] = lambda _ts: None
    on_stream_refused: Callable[[], None] = lambda: None
    # Slack message metadata for the reply, set when a stream stops and on the final write.
    metadata: dict[str, Any] | None = None
    # What people may see of a draft (guardrails applied), or None to stop showing it.
    screen: Callable[[str], str | None] = lambda text: text
    flush_interval: float = FLUSH_INTERVAL
    clock: Callable[[], float] = time.monotonic
    mode: Mode = "waiting"
    shown: str = ""  # the preview text people can see so far
    _stream_ts: str | None = field(default=None, repr=False)
    _last_flush: float = field(default=float("-inf"), repr=False)
    _raw_shown: int = field(default=0, repr=False)  # length of the draft text shown

    @property
    def ts(self) -> str:
        """The message that holds the reply: the stream's, or the placeholder."""
        return self._stream_ts or self.placeholder_ts

    def show(self, text: str) -> None:
        """Show ``text`` (the whole draft so far) if what people would see of it continues
        what is already shown.

        Text that does not continue it (the model started over, a rewritten draft, a
        screen that would now hold it back) stops the preview: nothing can be taken back
        from a stream, and the final write replaces it anyway.
        """
        if self.mode == "off":
            return
        # Only whole words are shown, so a placeholder such as <PERSON_1> or a link is never
        # cut in half on its way through `screen`.
        cut = max(text.rfind(" "), text.rfind("\n"))
        ready = text[: cut + 1] if cut >= 0 else ""
        if len(ready) <= self._raw_shown or self.clock() - self._last_flush < self.flush_interval:
            return
        visible = self.screen(ready)
        if visible is None or not visible.startswith(self.shown):
            self.stop_preview("the draft no longer continues what was shown")
            return
        if len(visible) <= len(self.shown) or len(visible) > MAX_TEXT:
            return
        try:
            self._write_preview(visible)
        except SlackApiError as exc:
            self.stop_preview(str(exc.response.get("error")))
            return
        self.shown, self._raw_shown = visible, len(ready)
        self._last_flush = self.clock()

    def finish(self, text: str, *, blocks: list[dict[str, Any]] | None = None) -> str:
        """Write the final reply (with ``blocks``, e.g. buttons); returns its message ts."""
        replaced = bool(self.shown) and not text.startswith(self.shown.rstrip())
        if replaced:
            text = f"{text}\n\n{REPLACED_NOTE}"
            if blocks is not None:
                # Clients show the blocks, not the text: the note must be a block too.
                blocks = _with_note(blocks)
        if self._stream_ts is not None and self.mode == "stream":
            # The stream ends with the rest of the answer, so the message is whole the
            # moment it stops, even if the update below were to fail.
            rest = "" if replaced else text[len(self.shown) :]
            try:
                self.thread.client.chat_stopStream(
                    channel=self.thread.channel,
                    ts=self._stream_ts,
                    markdown_text=rest or None,
                    metadata=self.metadata,
                )
            except SlackApiError as exc:
                # Already ended (Slack stops streams after a few minutes): the update below
                # still makes the message final.
                log.info("reply.stream_stop_failed", error=exc.response.get("error"))
        self.mode = "off"
        # The update makes the message exactly what a non-streamed reply is (Slack mrkdwn
        # text and blocks), whatever was streamed into it as markdown.
        self.thread.update(self.ts, text, blocks=blocks, metadata=self.metadata)
        return self.ts

    def _write_preview(self, ready: str) -> None:
        client, channel = self.thread.client, self.thread.channel
        if self.mode == "waiting":
            self.mode = "stream" if self._start_stream(ready) else "update"
            if self.mode == "stream":
                return
        if self.mode == "stream":
            assert self._stream_ts is not None
            client.chat_appendStream(
                channel=channel, ts=self._stream_ts, markdown_text=ready[len(self.shown) :]
            )
        else:
            self.thread.update(self.placeholder_ts, ready.rstrip() + PREVIEW_SUFFIX)

    def _start_stream(self, ready: str) -> bool:
        self.before_stream()
        try:
            response = self.thread.client.chat_startStream(
                channel=self.thread.channel,
                thread_ts=self.thread.thread_ts,
                markdown_text=ready,
                recipient_user_id=self.recipient_user_id,
                recipient_team_id=self.recipient_team_id,
            )
        except SlackApiError as exc:
            # e.g. unknown_method on an older Slack, or a conversation it does not stream to.
            log.info("reply.streaming_unavailable", error=exc.response.get("error"))
            self.on_stream_refused()
            return False
        self._stream_ts = str(response["ts"])
        self.on_moved(self._stream_ts)
        try:
            # The streamed message is the reply now; a second "working on it" would linger.
            self.thread.client.chat_delete(channel=self.thread.channel, ts=self.placeholder_ts)
        except SlackApiError as exc:
            log.info("reply.placeholder_delete_failed", error=exc.response.get("error"))
        return True

    def stop_preview(self, why: str) -> None:
        """Show nothing more until the final write."""
        log.info("reply.preview_stopped", reason=why)
        if self.mode == "stream":
            # Left open, the stream would show Slack's "typing" until it times out.
            try:
                assert self._stream_ts is not None
                self.thread.client.chat_stopStream(
                    channel=self.thread.channel, ts=self._stream_ts, metadata=self.metadata
                )
            except SlackApiError:
                pass  # finish() updates the message either way
        self.mode = "off"


def _with_note(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`blocks` with the replacement note after the answer's text, before any buttons."""
    note = ContextBlock(elements=[MarkdownTextObject(text=REPLACED_NOTE)]).to_dict()
    at = next((i for i, block in enumerate(blocks) if block.get("type") == "actions"), len(blocks))
    return [*blocks[:at], note, *blocks[at:]]
