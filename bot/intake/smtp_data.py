"""The listener's DATA command: the message read in the pieces it arrives in, not by line.

aiosmtpd reads DATA one line per await (a `readuntil`, a debug log, two joins): for a
10 KB message of 80-character lines, 130 rounds through the stream code, about a fifth
of the listener's CPU per message. `read_data` takes what has arrived at once and splits
it with bytes methods, to the same result: the same end (a line holding one dot), the same
dot-unstuffing (a line's first dot removed), and the same refusals, each given only after
the whole message has been read, and in aiosmtpd's order when a message breaks both: a
line longer than the line limit (500) and more bytes than the size limit (552). A test
sends many messages, in many pieces, to both and compares what each answered and kept.
"""

from __future__ import annotations

import asyncio
import enum

import structlog
from aiosmtpd.smtp import MISSING, SMTP, syntax

log = structlog.get_logger(__name__)

END = b"\r\n.\r\n"  # the end of DATA: a line holding one dot
LONE_DOT = b".\r\n"  # the same line at the very start of a piece
# Bytes taken from the stream at once: all that has arrived (a StreamReader never holds
# more than a few times its limit before it stops reading from the socket).
EVERYTHING = 1 << 40
LINE_TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"
TOO_MUCH_DATA = "552 Error: Too much mail data"


class DataState(enum.Enum):
    NOMINAL = "nominal"
    TOO_LONG = "too long"  # a line over the line limit
    TOO_MUCH = "too much"  # more bytes than the size limit


class _Reading:
    """What has been read of one message so far."""

    def __init__(self, size_limit: int | None, line_limit: int) -> None:
        self.size_limit = size_limit
        self.line_limit = line_limit
        self.state = DataState.NOMINAL
        self.size = 0  # bytes of the message's lines so far, line ends included
        self.kept: list[bytes] = []  # whole lines, unstuffed, while the state is nominal

    def lines(self, block: bytes) -> None:
        """Whole lines (`block` starts a line and ends with CRLF), in order."""
        if self.state is not DataState.NOMINAL:
            self.size += len(block)
            return
        longest = max(map(len, block.split(b"\r\n"))) + 2
        over_size = self.size_limit and self.size + len(block) > self.size_limit
        if over_size or longest > self.line_limit:
            self._line_by_line(block)
            return
        self.size += len(block)
        if block.startswith(b"."):
            block = block[1:]
        self.kept.append(block.replace(b"\r\n.", b"\r\n"))

    def overlong(self) -> None:
        """A line longer than any whole line could be, still without its end: aiosmtpd's
        stream gives up on it before counting it."""
        if self.state is DataState.NOMINAL:
            self.state = DataState.TOO_LONG
            self.kept.clear()

    def _line_by_line(self, block: bytes) -> None:
        # aiosmtpd's checks, in its order: a line the stream cannot hold, the size limit
        # (with the line counted), then the line's own length.
        for line in block.split(b"\r\n")[:-1]:
            if len(line) > self.line_limit:
                self.overlong()
            self.size += len(line) + 2
            if self.state is DataState.NOMINAL:
                if self.size_limit and self.size > self.size_limit:
                    self.state = DataState.TOO_MUCH
                elif len(line) + 2 > self.line_limit:
                    self.state = DataState.TOO_LONG
                else:
                    self.kept.append((line[1:] if line.startswith(b".") else line) + b"\r\n")
                    continue
                self.kept.clear()


async def read_data(
    reader: asyncio.StreamReader, *, size_limit: int | None, line_limit: int
) -> tuple[DataState, bytes] | None:
    """The message up to the line holding one dot: its state and, if nominal, its bytes
    (unstuffed, line ends kept). None if the connection ended first. Bytes that came
    after the dot (a client's next command) are left in `reader`."""
    reading = _Reading(size_limit, line_limit)
    carry = b""  # the start of a line whose end has not arrived
    at_line_start = True  # whether `carry` starts a line (not the tail of an overlong one)
    while True:
        piece = await reader.read(EVERYTHING)
        if not piece:
            return None
        data = carry + piece if carry else piece
        if at_line_start and data.startswith(LONE_DOT):
            end, rest = 0, data[len(LONE_DOT) :]
        else:
            found = data.find(END)
            end, rest = (found + 2, data[found + len(END) :]) if found >= 0 else (-1, b"")
        if end >= 0:
            if end:
                whole = data[:end]
                if at_line_start:
                    reading.lines(whole)
                else:
                    _after_overlong(reading, whole)
            if rest and not reader.at_eof():
                reader.feed_data(rest)  # nothing else is buffered: read took it all
            return reading.state, b"".join(reading.kept)
        last = data.rfind(b"\r\n")
        if last >= 0:
            whole, carry = data[: last + 2], data[last + 2 :]
            if at_line_start:
                reading.lines(whole)
            else:
                _after_overlong(reading, whole)
            at_line_start = True
        else:
            carry = data
        if len(carry) > line_limit + 1:
            # No whole line can be this long: refused, and not kept. Its last byte may be
            # the CR of its end, so it stays.
            reading.overlong()
            reading.size += len(carry) - 1
            carry, at_line_start = carry[-1:], False


def _after_overlong(reading: _Reading, block: bytes) -> None:
    """`block` ends the overlong line and may hold more whole lines."""
    first_end = block.find(b"\r\n") + 2
    reading.size += first_end
    if first_end < len(block):
        reading.lines(block[first_end:])


class ChunkedData(SMTP):
    """aiosmtpd's protocol with DATA read by `read_data`; everything else as it was. For
    servers that keep the bytes (aiosmtpd's `decode_data` left off, as the listener does)."""

    @syntax("DATA")
    async def smtp_DATA(self, arg: str) -> None:
        if await self.check_helo_needed():
            return
        if await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            read = await read_data(
                self._reader, size_limit=self.data_size_limit, line_limit=self.line_length_limit
            )
        except asyncio.CancelledError:
            log.info("smtp.connection_lost_during_data")
            self._writer.close()
            raise
        if read is None:
            self._writer.close()
            return
        state, content = read
        if state is not DataState.NOMINAL:
            await self.push(LINE_TOO_LONG if state is DataState.TOO_LONG else TOO_MUCH_DATA)
            self._set_post_data_state()  # type: ignore[no-untyped-call]  # unannotated in aiosmtpd
            return
        # The listener never asks aiosmtpd for text (decode_data): the bytes, as it keeps them.
        self.envelope.original_content = self.envelope.content = content
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()  # type: ignore[no-untyped-call]  # unannotated in aiosmtpd
        await self.push("250 OK" if status is MISSING else status)
