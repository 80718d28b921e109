"""SMTP intake benchmark: messages per second `chatops smtp` accepts, durably, beside a
bare aiosmtpd server that throws each message away, on this machine.

    .venv/bin/python bench/smtp_intake.py [--seconds 10] [--connections 8] [--size 10240]

Each target gets the same closed-loop load: N client connections (8 by default), each
sending 10 KB messages back to back (MAIL, RCPT, DATA), in short rounds alternating
between the two targets. Reported per target: messages
accepted per second, and the time from the end of DATA (the final dot written) to the
250 read (p50/p95/p99). For `chatops smtp` the 250 means the message is committed to
Postgres; afterwards the bench checks that every accepted message is stored.

Then, in the same run, the promise behind each 250: a probe sends messages over the same
number of connections and, the moment each 250 arrives, looks the message up in Postgres
from a connection of its own; every one must already be there. Last, as many stored
messages are read as a worker reads each email before answering it (parsed, screened,
threaded), in this process: what that costs per message, which the listener no longer
pays before its 250.

Postgres: BENCH_DATABASE_URL if set, else an embedded server in a temporary directory;
a fresh database either way, dropped at the end. Redis: BENCH_REDIS_URL, else
127.0.0.1:6379 database 14, under a namespace whose keys are deleted at the end. Both
servers run as child processes; the load generator runs in this process. Writes the
table to bench/results/smtp_intake.txt as well. `--smoke`: one short round each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from types import FrameType

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run as a script: import the product from the repository

import psycopg  # noqa: E402
from psycopg.rows import dict_row  # noqa: E402

from bench import cpu  # noqa: E402
from bench.environment import (  # noqa: E402
    DEFAULT_REDIS_URL,
    fresh_database,
    postgres_server,
    redis_namespace,
    temporary_directory,
)
from bench.script import Report, parser  # noqa: E402

START_TIMEOUT = 90.0  # s for a server to accept connections (a busy machine is slow)
WARMUP_MESSAGES = 10  # per connection, sent before each measured round and not counted
ROUNDS = 5  # alternating rounds per target
PROBES = 200  # messages whose row is looked up the moment their 250 arrives; as many
# stored messages are then read as a worker reads them, to show what that costs
AIM_RATIO = 0.50  # of the bare server's rate, with durability
SMOKE = {"seconds": 1.0, "connections": 4, "rounds": 1, "warmup": 2, "probes": 20}
SENDER = "load@bench.example"
# The listener seals raw mail with a key derived from it (no CONNECTOR_CREDENTIALS_KEY).
SIGNING_SECRET = "unused-by-smtp"  # noqa: S105 - a throwaway benchmark secret
INBOX_DOMAIN = "bench-intake.example"
# Generous enough that the limiter never throttles the benchmark's single client IP.
UNTHROTTLED = {
    "SMTP_MAX_CONNECTIONS_PER_CLIENT": "1000",
    "SMTP_CONNECTIONS_PER_CLIENT_PER_MINUTE": "1000000",
    "SMTP_MESSAGES_PER_CLIENT_PER_MINUTE": "100000000",
}


@dataclass
class LoadResult:
    accepted: int = 0
    refused: dict[str, int] = field(default_factory=dict)
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0
    # CPU-seconds during the measured loads (warm-ups included): the server process, our
    # Postgres, and the share of the cores other processes took meanwhile (max of rounds).
    server_cpu: float = 0.0
    postgres_cpu: float = 0.0
    messages: int = 0  # accepted, warm-ups included: what the CPU was spent on
    others: float = 0.0
    wal_bytes: int = 0  # WAL Postgres wrote during the loads (ours: the stores, warm-ups too)

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    def cpu_ms(self, seconds: float) -> float:
        return seconds * 1000 / self.messages if self.messages else 0.0


def parse_args() -> argparse.Namespace:
    made = parser("SMTP intake benchmark")
    made.add_argument("--seconds", type=float, default=10.0, help="length of each load (10)")
    made.add_argument("--connections", type=int, default=8, help="concurrent clients (8)")
    made.add_argument("--size", type=int, default=10 * 1024, help="message bytes (10240)")
    args = made.parse_args()
    args.rounds, args.warmup, args.probes = ROUNDS, WARMUP_MESSAGES, PROBES
    if args.smoke:
        vars(args).update(SMOKE)
    if not (0 < args.seconds <= 120 and 1 <= args.connections <= 64 and 1024 <= args.size <= 10**7):
        made.error("keep to seconds 0-120, connections 1-64 and size 1 KB-10 MB")
    return args


def main() -> int:
    args = parse_args()
    signal.signal(signal.SIGTERM, _interrupt)  # cleanup runs on `kill` as on Ctrl-C
    report = Report("smtp_intake", "SMTP intake benchmark", args.smoke)  # before anything starts
    try:
        with ExitStack() as stack:
            run(stack, args, report)
    except KeyboardInterrupt:
        print("interrupted; everything started was stopped", file=sys.stderr)
        return 130
    return report.finish()


def run(stack: ExitStack, args: argparse.Namespace, report: Report) -> None:
    workdir = stack.enter_context(temporary_directory("chatops-bench-smtp-"))
    server_url = stack.enter_context(postgres_server(workdir))
    database_url = stack.enter_context(fresh_database(server_url))
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    namespace = stack.enter_context(redis_namespace(redis_url, "chatops-bench-smtp"))
    inbox = _bench_tenant(database_url)
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "QUEUE_NAMESPACE": namespace,
        "SLACK_SIGNING_SECRET": SIGNING_SECRET,
        "LOG_LEVEL": "info",
        **UNTHROTTLED,
    }
    ours_port, ours_pid = stack.enter_context(_chatops_smtp(env, workdir / "smtp.log"))
    bare_port, bare_pid = stack.enter_context(_bare_server(workdir / "bare.log"))
    messages = _MessageFactory(inbox, args.size)
    # Our embedded Postgres lives in workdir; Redis is a shared system service.
    postgres, markers = (str(workdir),), (str(workdir), "redis-server")

    ours, bare = LoadResult(), LoadResult()
    # Alternating short rounds: on a shared machine, load from other processes drifts
    # over a run, and back-to-back runs would hand one target the quieter minutes.
    for _ in range(args.rounds):
        for port, pid, result in ((ours_port, ours_pid, ours), (bare_port, bare_pid, bare)):
            wal_before = _wal_position(database_url)
            before = cpu.sample(markers), cpu.process_seconds(pid), cpu.tree_seconds(postgres)
            accepted = result.accepted
            asyncio.run(load(port, inbox, messages, args, args.seconds / args.rounds, result))
            after = cpu.sample(markers), cpu.process_seconds(pid), cpu.tree_seconds(postgres)
            result.wal_bytes += _wal_position(database_url) - wal_before
            result.messages += result.accepted - accepted + args.warmup * args.connections
            result.others = max(result.others, cpu.others_share(before[0], after[0]))
            result.server_cpu += after[1] - before[1]
            result.postgres_cpu += after[2] - before[2]
    stored = _stored(database_url)
    expected = ours.accepted + args.rounds * args.warmup * args.connections
    found, probed = asyncio.run(probe(ours_port, inbox, messages, database_url, args))
    reading = worker_reading(database_url, args.probes)
    report_lines(report, args, ours, bare, stored, expected, found, probed, reading)


# --- load ------------------------------------------------------------------------------


class _MessageFactory:
    """Realistic 10 KB plain-text messages, each with its own Message-ID."""

    def __init__(self, inbox: str, size: int) -> None:
        self.inbox = inbox
        self.size = size
        self.count = 0
        self.last_id = ""

    def next(self) -> bytes:
        self.count += 1
        self.last_id = f"<{uuid.uuid4().hex}@bench.example>"
        headers = (
            f"From: Load Generator <{SENDER}>\r\n"
            f"To: {self.inbox}\r\n"
            f"Subject: Order question {self.count}\r\n"
            f"Message-ID: {self.last_id}\r\n"
            "Date: Mon, 03 Jun 2024 10:00:00 +0000\r\n"
            "MIME-Version: 1.0\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
        ).encode()
        line = b"Hello, I have a question about my order and the invoice that came with it.\r\n"
        body = line * ((self.size - len(headers)) // len(line) + 1)
        return (headers + body)[: self.size - 2] + b"\r\n"


async def load(
    port: int,
    inbox: str,
    messages: _MessageFactory,
    args: argparse.Namespace,
    seconds: float,
    result: LoadResult,
) -> None:
    """One round: warm-up, then `seconds` of closed-loop load, added to `result`."""
    clients = [await _Client.open(port) for _ in range(args.connections)]
    try:
        await asyncio.gather(*(c.send_many(inbox, messages, args.warmup) for c in clients))
        deadline = time.monotonic() + seconds
        started = time.monotonic()
        await asyncio.gather(*(c.send_until(inbox, messages, deadline, result) for c in clients))
        result.seconds += time.monotonic() - started
    finally:
        for client in clients:
            await client.close()


async def probe(
    port: int, inbox: str, messages: _MessageFactory, database_url: str, args: argparse.Namespace
) -> tuple[int, int]:
    """Messages over `connections` connections, each looked up in Postgres the moment its
    250 arrives (from a connection of the probe's own); how many were there, of how many."""
    clients = [await _Client.open(port) for _ in range(args.connections)]
    found = probed = 0

    async def one_client(client: _Client, count: int) -> None:
        nonlocal found, probed
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            for _ in range(count):
                data = messages.next()
                message_id = messages.last_id
                code, _ = await client.transaction(inbox, data)
                if code != "250":
                    continue
                probed += 1
                row = await (
                    await conn.execute(
                        "SELECT 1 FROM inbound_requests WHERE source = 'email'"
                        " AND external_id = %s",
                        (message_id,),
                    )
                ).fetchone()
                found += row is not None

    try:
        share = -(-args.probes // args.connections)
        await asyncio.gather(*(one_client(c, share) for c in clients))
    finally:
        for client in clients:
            await client.close()
    return found, probed


class _Client:
    """A minimal SMTP client on raw streams: little overhead, and exact timing of the
    final dot."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        client = cls(reader, writer)
        await client._reply("220")
        await client._command(b"EHLO bench.example", "250")
        return client

    async def send_many(self, inbox: str, messages: _MessageFactory, count: int) -> None:
        for _ in range(count):
            code, _ = await self.transaction(inbox, messages.next())
            if code != "250":
                raise RuntimeError(f"warm-up message refused with {code}")

    async def send_until(
        self, inbox: str, messages: _MessageFactory, deadline: float, result: LoadResult
    ) -> None:
        while time.monotonic() < deadline:
            code, latency = await self.transaction(inbox, messages.next())
            if code == "250":
                result.accepted += 1
                result.latencies_ms.append(latency * 1000)
            else:
                result.refused[code] = result.refused.get(code, 0) + 1

    async def transaction(self, inbox: str, data: bytes) -> tuple[str, float]:
        await self._command(f"MAIL FROM:<{SENDER}> SIZE={len(data)}".encode(), "250")
        await self._command(f"RCPT TO:<{inbox}>".encode(), "250")
        await self._command(b"DATA", "354")
        self.writer.write(data + b".\r\n")
        await self.writer.drain()
        sent = time.perf_counter()
        code, _ = await self._reply(None)
        return code, time.perf_counter() - sent

    async def _command(self, line: bytes, expect: str) -> None:
        self.writer.write(line + b"\r\n")
        await self.writer.drain()
        await self._reply(expect)

    async def _reply(self, expect: str | None) -> tuple[str, str]:
        while True:
            line = (await self.reader.readline()).decode(errors="replace")
            if not line:
                raise ConnectionError("server closed the connection")
            if line[3:4] != "-":
                break
        code = line[:3]
        if expect is not None and code != expect:
            raise RuntimeError(f"expected {expect}, got {line.strip()}")
        return code, line

    async def close(self) -> None:
        try:
            self.writer.write(b"QUIT\r\n")
            await self.writer.drain()
        except ConnectionError:
            pass
        self.writer.close()


# --- servers ---------------------------------------------------------------------------


def _bench_tenant(database_url: str) -> str:
    from connectors.email.inboxes import add_inbox

    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("INSERT INTO tenants (name) VALUES ('bench') RETURNING id").fetchone()
        assert row is not None
        inbox = f"help@{INBOX_DOMAIN}"
        add_inbox(conn, row[0], inbox)  # type: ignore[arg-type]  # tuple rows suffice here
    return inbox


@contextmanager
def _chatops_smtp(env: dict[str, str], log_path: Path) -> Iterator[tuple[int, int]]:
    """`chatops smtp` in a child process: its port and pid."""
    port = _free_port()
    command = [sys.executable, "-m", "bot.cli", "smtp", "--port", str(port)]
    with _child(command, {**os.environ, **env}, log_path, port) as pid:
        yield port, pid


@contextmanager
def _bare_server(log_path: Path) -> Iterator[tuple[int, int]]:
    """The discarding aiosmtpd server in a child process: its port and pid."""
    port = _free_port()
    command = [sys.executable, "-m", "bench.bare_smtp", "--port", str(port)]
    with _child(command, dict(os.environ), log_path, port) as pid:
        yield port, pid


@contextmanager
def _child(command: list[str], env: dict[str, str], log_path: Path, port: int) -> Iterator[int]:
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            command, env=env, cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT
        )
    try:
        _wait_for_port(process, port, log_path)
        yield process.pid
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _wait_for_port(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args} exited:\n{log_path.read_text()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{process.args} did not start listening")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wal_position(database_url: str) -> int:
    """Bytes of WAL the server has written since it was made: the difference over a load is
    what the load cost in WAL (the server's other databases' writes too, if it is shared)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        row = conn.execute("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')").fetchone()
    assert row is not None
    return int(row[0])


@dataclass
class Reading:
    """The worker's first step for each email, measured in this process."""

    messages: int = 0
    cpu_seconds: float = 0.0  # this process: opening, parsing, screening
    postgres_seconds: float = 0.0  # Postgres: threading and storing what the message says

    def ms(self, seconds: float) -> float:
        return seconds * 1000 / self.messages if self.messages else 0.0


def worker_reading(database_url: str, count: int) -> Reading:
    """Read `count` stored messages as a worker does before answering them
    (connectors/email/inbound_store.py): the cost the listener no longer pays before
    its 250, paid in the workers instead."""
    from connectors.email.inbound_store import read_arrived
    from connectors.email.parse import ParseLimits
    from connectors.email.raw_mail import RawMailCipher
    from guardrails.at_rest import AtRestMasker

    cipher, masker, reading = RawMailCipher.derive(SIGNING_SECRET), AtRestMasker(), Reading()
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        ids = [
            row["id"]
            for row in conn.execute(
                "SELECT id FROM inbound_requests WHERE payload ? 'arrived' ORDER BY id LIMIT %s",
                (count,),
            )
        ]
        # The backend serving this connection: Postgres's own background work after the
        # load (autovacuum of the rows just stored) is not the reading's.
        backend = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]  # type: ignore[index]
        cpu_before, postgres_before = time.process_time(), cpu.process_seconds(backend)
        for request_id in ids:
            read = read_arrived(
                conn, request_id, cipher=cipher, limits=ParseLimits(), masker=masker
            )
            reading.messages += read is not None
        reading.cpu_seconds = time.process_time() - cpu_before
        reading.postgres_seconds = cpu.process_seconds(backend) - postgres_before
    return reading


def _stored(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT status, count(*) FROM inbound_requests WHERE source = 'email' GROUP BY status"
        ).fetchall()
    return {status: count for status, count in rows}


# --- report ---------------------------------------------------------------------------------


def report_lines(
    report: Report,
    args: argparse.Namespace,
    ours: LoadResult,
    bare: LoadResult,
    stored: dict[str, int],
    expected: int,
    found: int,
    probed: int,
    reading: Reading,
) -> None:
    ratio = ours.rate / bare.rate if bare.rate else 0.0
    total_stored = sum(stored.values())
    warmups = args.rounds * args.warmup * args.connections
    report.add(
        f"aiosmtpd {version('aiosmtpd')}, psycopg {version('psycopg')}",
        f"setup: {args.connections} client connections on 127.0.0.1, closed loop, "
        f"{args.size}-byte plain-text messages, {args.seconds:g} s per target in "
        f"{args.rounds} alternating rounds; "
        "embedded/own Postgres, local Redis; servers in child processes, load generator "
        "in the bench process (all on the same cores)",
        "",
        "Messages accepted (250), and DATA end -> 250 in ms",
        f"{'target':<26}{'accepted':>9}{'msg/s':>9}{'p50':>8}{'p95':>8}{'p99':>8}{'max':>8}"
        f"{'refused':>9}",
        "-" * 85,
        _row("chatops smtp (durable)", ours),
        _row("bare aiosmtpd (discards)", bare),
        f"rate ratio chatops / bare: {ratio:.0%}",
        f"CPU per message: chatops smtp {ours.cpu_ms(ours.server_cpu):.2f} ms + its Postgres"
        f" {ours.cpu_ms(ours.postgres_cpu):.2f} ms; bare aiosmtpd {bare.cpu_ms(bare.server_cpu):.2f}"
        f" ms (the load generator shares the cores too)",
        f"WAL per message stored: {ours.wal_bytes / ours.messages / 1024 if ours.messages else 0:.1f}"
        f" KB (the sealed {args.size // 1024} KB raw bytes and the request, their indexes)",
        f"other processes' share of the cores during the loads: up to"
        f" {max(ours.others, bare.others):.0%}",
        f"stored after the load: {total_stored} rows ({_counts(stored)}) for {expected} accepted"
        f" (incl. {warmups} warm-up)",
        f"probe: {probed} messages, each looked up in Postgres as soon as its 250 arrived",
        f"then read as a worker reads each email before answering it (parsed, screened,"
        f" threaded; not part of the rates above): {reading.ms(reading.cpu_seconds):.2f} ms of"
        f" CPU per message + its Postgres {reading.ms(reading.postgres_seconds):.2f} ms, over"
        f" {reading.messages} messages",
        "",
        "Aims",
    )
    report.aim(
        ratio >= AIM_RATIO,
        f"at least {AIM_RATIO:.0%} of the bare handler's rate, with durability: {ratio:.0%}"
        f" ({ours.rate:.0f} vs {bare.rate:.0f} msg/s)",
    )
    report.check(total_stored == expected, f"every 250 stored: {total_stored} of {expected}")
    report.check(
        probed > 0 and found == probed,
        f"every 250 stored before it was sent: {found} of {probed} found at once",
    )


def _row(name: str, result: LoadResult) -> str:
    values = sorted(result.latencies_ms)
    refused = sum(result.refused.values())
    return (
        f"{name:<26}{result.accepted:>9}{result.rate:>9.1f}{_pct(values, 50):>8.1f}"
        f"{_pct(values, 95):>8.1f}{_pct(values, 99):>8.1f}{(values[-1] if values else 0):>8.1f}"
        f"{refused:>9}"
    )


def _pct(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    index = min(len(values) - 1, max(0, round(q / 100 * len(values) + 0.5) - 1))
    return values[index]


def _counts(stored: dict[str, int]) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(stored.items())) or "none"


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


if __name__ == "__main__":
    sys.exit(main())
