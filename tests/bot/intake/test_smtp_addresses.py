"""The listener reads MAIL FROM and RCPT TO addresses of the plain form itself, with the
same result as aiosmtpd's parser, which still reads every other form."""

from __future__ import annotations

import asyncio
import functools
import itertools
import random
import string
from collections.abc import Callable

from aiosmtpd.smtp import SMTP

from bot.intake.smtp_server import IntakeSMTP, ListenerOptions, plain_address

OPTIONS = ListenerOptions(
    server_name="test",
    max_message_bytes=1024,
    tls_context=None,
    require_starttls=False,
    authenticator=None,
    auth_required=False,
)
WRITTEN = [
    "<customer@example.com>",
    "<customer@example.com> SIZE=10240",
    "<customer@example.com>  SIZE=10240 BODY=8BITMIME",
    "<customer@example.com>\tSIZE=1",
    "<customer@example.com> \x0c SIZE=1",
    "<customer@example.com>\x0cSIZE=1",
    "<customer@example.com>SIZE=1",
    "<customer@example.com> (a comment) SIZE=1",
    "<customer@example.com>(comment)",
    "<first.last+tag@mail.example.co.uk>",
    "<o'brien!#$%&*/=?^_`{|}~-@example.com>",
    "<=?utf-8?q?abc?=@example.com>",
    "<a@=?utf-8?q?abc?=>",
    "<.leading@example.com>",
    "<trailing.@example.com>",
    "<two..dots@example.com>",
    "<user@[192.0.2.1]>",
    '<"quoted local"@example.com>',
    "<@route.example:user@example.com>",
    "< customer@example.com >",
    " <customer@example.com>",
    "customer@example.com",
    "customer@example.com SIZE=1",
    "<>",
    "<customer@example.com",
    "<customer>",
    "<josé@example.com>",
    "<user@exämple.com>",
    "<" + "l" * 70 + "@example.com>",
    "",
]
ALPHABET = string.ascii_letters[:6] + "@.<> \t()\"=?+-_'[]:;,\\é\x0c"


def both_readings(args: list[str], local_part_limit: int) -> list[tuple[object, object]]:
    """What the listener and aiosmtpd's parser make of each argument (an exception's
    type where one raises: aiosmtpd's does on some malformed ones)."""

    def outcome(read: Callable[[str], object], arg: str) -> object:
        try:
            return read(arg)
        except Exception as exc:
            return type(exc)

    async def read() -> list[tuple[object, object]]:
        server = IntakeSMTP(None, None, OPTIONS)  # type: ignore[arg-type]  # not used here
        server.local_part_limit = local_part_limit
        theirs = functools.partial(SMTP._getaddr, server)
        return [(outcome(server._getaddr, arg), outcome(theirs, arg)) for arg in args]

    return asyncio.run(read())


def test_addresses_read_as_aiosmtpd_reads_them() -> None:
    """Written edge cases and random strings get the same address and parameters (or the
    same refusal) from the listener as from aiosmtpd's parser."""
    rng = random.Random(18)  # noqa: S311 - test inputs, the same on every run
    generated = [
        "".join(rng.choice(ALPHABET) for _ in range(rng.randint(1, 24))) for _ in range(3000)
    ]
    generated += [
        f"<{a}@{b}>{c}" for a, b, c in zip(generated, generated[1:], generated[2:], strict=False)
    ]
    # Near the plain form: atext, dots and "=?" in each part, then what may follow ">".
    parts = ["".join(rng.choice("ab.=?-_") for _ in range(rng.randint(1, 8))) for _ in range(900)]
    after = ["", " ", "  SIZE=1", "\tX", " (c)", "(c)", "X", " \x0c Y"]
    generated += [f"<{a}@{b}>{rng.choice(after)}" for a, b in itertools.pairwise(parts)]
    for limit in (0, 64):
        differing = [
            (arg, ours, theirs)
            for arg, (ours, theirs) in zip(
                WRITTEN + generated, both_readings(WRITTEN + generated, limit), strict=True
            )
            if ours != theirs
        ]
        assert differing == []


def test_the_plain_form_is_read_without_the_parser() -> None:
    """The form nearly all mail uses is read directly, parameters and all."""
    assert plain_address("<customer@example.com> SIZE=10240") == (
        "customer@example.com",
        "SIZE=10240",
    )
    assert plain_address("<customer@example.com> (comment)") is None
    assert plain_address('<"quoted local"@example.com>') is None
