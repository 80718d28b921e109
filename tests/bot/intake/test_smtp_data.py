"""The listener reads DATA in the pieces it arrives in, and answers and keeps what
aiosmtpd's line-by-line reading would: compared over real sockets, message by message."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field

from aiosmtpd.smtp import SMTP, Envelope, Session

from bot.intake.smtp_data import ChunkedData

SIZE_LIMIT = 4096  # bytes of DATA each server takes
LINE_LIMIT = 1001  # aiosmtpd's line length limit, line end included


@dataclass
class Keeper:
    """A handler that keeps each message's bytes and accepts it."""

    kept: list[bytes] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        assert isinstance(envelope.original_content, bytes)
        self.kept.append(envelope.original_content)
        return "250 kept"


@dataclass(frozen=True)
class Outcome:
    data_reply: str  # the answer to the message
    kept: bytes | None  # what the handler got, None if it was not called
    next_reply: str  # the answer to a NOOP sent with the message's last piece


async def _send(protocol: type[SMTP], message: bytes, pieces: list[int]) -> Outcome:
    """`message` (its end included) in pieces of the given sizes, then a NOOP in the same
    write as the last piece, to a server of `protocol` on a real socket."""
    keeper = Keeper()
    server = await asyncio.get_running_loop().create_server(
        lambda: protocol(keeper, data_size_limit=SIZE_LIMIT, hostname="test"), "127.0.0.1", 0
    )
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def reply() -> str:
        while True:
            line = (await asyncio.wait_for(reader.readline(), 10)).decode()
            if line[3:4] != "-":
                return line.strip()

    try:
        await reply()
        for command in (
            b"EHLO client.example",
            b"MAIL FROM:<a@b.example>",
            b"RCPT TO:<c@d.example>",
        ):
            writer.write(command + b"\r\n")
            assert (await reply()).startswith("250")
        writer.write(b"DATA\r\n")
        assert (await reply()).startswith("354")
        at = 0
        for size in pieces:
            chunk = message[at : at + size]
            at += size
            if at >= len(message):
                chunk += message[at:] + b"NOOP\r\n"
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.002)  # the server reads this piece on its own
            if at >= len(message):
                break
        data_reply, next_reply = await reply(), await reply()
    finally:
        writer.close()
        server.close()
        await server.wait_closed()
    return Outcome(data_reply, keeper.kept[0] if keeper.kept else None, next_reply)


def _messages(rng: random.Random) -> list[bytes]:
    """Messages that touch every rule (a lone dot ends one, so none holds it before its
    end): dots to unstuff, the end split across pieces,
    lines at and over the line limit, sizes at and over the size limit, both at once."""
    lines = [
        b"Hello",
        b"",
        b"..",
        b".leading dot",
        b"...three",
        b"a\rb",
        b"a\nb",
        b"x" * 997,
        b"x" * 999,
        b"x" * 1000,
        b"x" * 1001,
        b"x" * 1002,
        b"x" * 2500,
        b".\r",
    ]
    written = [
        b".\r\n",
        b"Subject: hi\r\n\r\nbody\r\n.\r\n",
        b"..\r\n.\r\n",
        b"x" * 999 + b"\r\n.\r\n",
        b"x" * 1000 + b"\r\n.\r\n",
        (b"y" * 80 + b"\r\n") * 60 + b".\r\n",  # over the size limit
        (b"y" * 80 + b"\r\n") * 49 + b"z" * 1500 + b"\r\n.\r\n",  # too long, then too much
        b"z" * 1500 + b"\r\n" + (b"y" * 80 + b"\r\n") * 60 + b".\r\n",
    ]
    generated = []
    for _ in range(150):
        count = rng.choice([1, 2, 5, 20, 60])
        body = b"".join(rng.choice(lines) + b"\r\n" for _ in range(count))
        generated.append(body + b".\r\n")
    return written + generated


def _pieces(rng: random.Random, size: int) -> list[int]:
    cuts = sorted(rng.sample(range(1, size), min(size - 1, rng.randint(0, 6))))
    return [b - a for a, b in zip([0, *cuts], [*cuts, size], strict=True)]


def test_data_is_answered_and_kept_as_aiosmtpd_does() -> None:
    """Each message, whole and cut into the same random pieces, gets the same answer (250, 500 for
    a line too long, 552 for too much data) and the same kept bytes from the listener's
    DATA as from aiosmtpd's; and a command sent right after the end is answered by both."""
    rng = random.Random(18)  # noqa: S311 - test inputs, the same on every run

    async def compare() -> list[tuple[bytes, list[int], Outcome, Outcome]]:
        differing = []
        for message in _messages(rng):
            for pieces in ([len(message)], _pieces(rng, len(message))):
                ours = await _send(ChunkedData, message, pieces)
                theirs = await _send(SMTP, message, pieces)
                if ours != theirs:
                    differing.append((message[:60], pieces, ours, theirs))
        return differing

    assert asyncio.run(compare()) == []


def test_refusals_and_unstuffing_are_what_a_sender_sees() -> None:
    """A sender gets 552 for a message over the size limit and 500 for a line over the
    line limit, both after the whole message; a line's leading dot is taken off."""

    async def outcomes() -> list[Outcome]:
        return [
            await _send(ChunkedData, message, [len(message)])
            for message in (
                (b"y" * 80 + b"\r\n") * 60 + b".\r\n",
                b"z" * 1500 + b"\r\n.\r\n",
                b"..dotted\r\n.\r\n",
            )
        ]

    too_much, too_long, dotted = asyncio.run(outcomes())
    assert too_much.data_reply.startswith("552") and too_much.kept is None
    assert too_long.data_reply.startswith("500") and too_long.kept is None
    assert dotted.data_reply == "250 kept" and dotted.kept == b".dotted\r\n"
    assert {o.next_reply[:3] for o in (too_much, too_long, dotted)} == {"250"}
