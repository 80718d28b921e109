"""A local SMTP server that keeps every message it accepts: the sandbox's outbox.

Point the product's SMTP relay settings at it and every email the agent sends lands
here instead of in someone's inbox, kept in memory (and, if asked, as .eml files). It
speaks real SMTP (aiosmtpd), with optional STARTTLS and AUTH, and it can be told to
hold its answer at RCPT or after DATA, or to answer the next DATA with an error, to
reproduce the moments a sending worker can die or be refused.

    python -m sandbox.mail_sink --port 2526 --maildir .cache/outbox
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import ssl
import threading
import time
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

START_TIMEOUT = 10.0  # seconds
HOLD_STAGES = ("rcpt", "data")


@dataclass(frozen=True)
class SinkMessage:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    tls: bool
    authenticated_as: str | None
    received_at: float

    def parsed(self) -> EmailMessage:
        message = BytesParser(policy=policy.default).parsebytes(self.data)
        assert isinstance(message, EmailMessage)
        return message


class _Handler:
    def __init__(self, sink: MailSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        await self.sink._wait_if_held("rcpt")
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        fault = self.sink._take_fault()
        if fault is not None:
            return fault
        # Kept before answering, as a real server queues a message before its 250.
        self.sink._keep(
            SinkMessage(
                mail_from=envelope.mail_from or "",
                rcpt_tos=tuple(envelope.rcpt_tos),
                data=bytes(envelope.original_content or b""),
                tls=session.ssl is not None,
                authenticated_as=_login(session),
                received_at=time.time(),
            )
        )
        await self.sink._wait_if_held("data")
        return "250 2.0.0 OK: kept by the sandbox mail sink"


def _login(session: Session) -> str | None:
    data = session.auth_data
    if isinstance(data, bytes):
        return data.decode(errors="replace")
    return str(data) if data else None


class MailSink:
    """An aiosmtpd server on its own event loop in a daemon thread."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        tls_context: ssl.SSLContext | None = None,
        require_starttls: bool = False,
        credentials: tuple[str, str] | None = None,
        maildir: Path | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self._tls_context = tls_context
        self._require_starttls = require_starttls
        self._credentials = credentials
        self._maildir = maildir
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._server: asyncio.Server | None = None
        self._lock = threading.Condition()
        self._messages: list[SinkMessage] = []
        self._faults: list[str] = []
        self._held: dict[str, asyncio.Event] = {}
        self._waiting: dict[str, int] = dict.fromkeys(HOLD_STAGES, 0)

    # --- life cycle ---------------------------------------------------------------------

    def start(self) -> MailSink:
        if self._maildir is not None:
            self._maildir.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(self._listen(), self._loop)
        self.port = future.result(START_TIMEOUT)
        return self

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            server = self._server
            self._server = None

            async def close() -> None:
                server.close()
                await server.wait_closed()

            asyncio.run_coroutine_threadsafe(close(), self._loop).result(START_TIMEOUT)
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(START_TIMEOUT)
        self._loop.close()

    def __enter__(self) -> MailSink:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    async def _listen(self) -> int:
        self._server = await self._loop.create_server(self._protocol, self.host, self.port)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def _protocol(self) -> SMTP:
        return SMTP(
            _Handler(self),
            hostname="sandbox-mail-sink",
            enable_SMTPUTF8=True,
            tls_context=self._tls_context,
            require_starttls=self._require_starttls,
            auth_required=self._credentials is not None,
            authenticator=self._authenticate if self._credentials else None,
            loop=self._loop,
        )

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        assert self._credentials is not None
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        user, password = (c.encode() for c in self._credentials)
        ok = hmac.compare_digest(data.login, user) & hmac.compare_digest(data.password, password)
        return AuthResult(success=bool(ok), handled=False, auth_data=data.login)

    # --- what arrived ---------------------------------------------------------------------

    def messages(self) -> list[SinkMessage]:
        with self._lock:
            return list(self._messages)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[SinkMessage]:
        """Block until at least `count` messages arrived; return them all."""
        with self._lock:
            if not self._lock.wait_for(lambda: len(self._messages) >= count, timeout):
                raise TimeoutError(f"{len(self._messages)} of {count} messages arrived")
            return list(self._messages)

    def clear(self) -> None:
        with self._lock:
            self._messages.clear()

    def restore(self, messages: list[SinkMessage]) -> None:
        """Start from messages kept earlier (the sandbox's outbox across restarts)."""
        with self._lock:
            self._messages[:0] = messages
            self._lock.notify_all()

    def _keep(self, message: SinkMessage) -> None:
        with self._lock:
            self._messages.append(message)
            index = len(self._messages)
            self._lock.notify_all()
        if self._maildir is not None:
            name = f"{int(message.received_at * 1000)}.{index}.eml"
            (self._maildir / name).write_bytes(message.data)

    # --- faults -----------------------------------------------------------------------------

    def answer_next_data(self, reply: str) -> None:
        """Answer the next DATA with `reply` (e.g. '451 4.3.0 try later') and keep nothing."""
        with self._lock:
            self._faults.append(reply)

    def _take_fault(self) -> str | None:
        with self._lock:
            return self._faults.pop(0) if self._faults else None

    def hold(self, stage: str) -> None:
        """Sessions reaching `stage` ('rcpt' or 'data') wait for `release` before answers.

        At 'data' the message is already kept: this is the window in which a sender that
        dies has delivered without knowing it.
        """
        if stage not in HOLD_STAGES:
            raise ValueError(f"stage must be one of {HOLD_STAGES}")

        def arm() -> None:
            self._held.setdefault(stage, asyncio.Event())

        self._loop.call_soon_threadsafe(arm)

    def release(self) -> None:
        def fire() -> None:
            for event in self._held.values():
                event.set()
            self._held.clear()

        if self._loop.is_running():
            self._loop.call_soon_threadsafe(fire)

    def wait_until_held(self, stage: str, timeout: float = 10.0) -> None:
        """Block until a session is waiting at `stage`."""
        with self._lock:
            if not self._lock.wait_for(lambda: self._waiting[stage] > 0, timeout):
                raise TimeoutError(f"no session reached {stage}")

    async def _wait_if_held(self, stage: str) -> None:
        event = self._held.get(stage)
        if event is None:
            return
        with self._lock:
            self._waiting[stage] += 1
            self._lock.notify_all()
        try:
            await event.wait()
        finally:
            with self._lock:
                self._waiting[stage] -= 1


def main() -> None:
    parser = argparse.ArgumentParser(description="sandbox SMTP sink: keeps what it is sent")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=2526)
    parser.add_argument("--maildir", type=Path, help="also write each message here as .eml")
    args = parser.parse_args()
    sink = MailSink(host=args.host, port=args.port, maildir=args.maildir).start()
    print(f"mail sink listening on {sink.host}:{sink.port}", flush=True)
    seen = 0
    try:
        while True:
            messages = sink.wait_for(seen + 1, timeout=3600)
            for message in messages[seen:]:
                parsed = message.parsed()
                print(f"{message.mail_from} -> {', '.join(message.rcpt_tos)}: {parsed['subject']}")
            seen = len(messages)
    except (KeyboardInterrupt, TimeoutError):
        pass
    finally:
        sink.stop()


if __name__ == "__main__":
    main()
