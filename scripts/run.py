"""`make run`: the product on this machine, with embedded defaults for what is not configured.

- No DATABASE_URL: an embedded PostgreSQL with pgvector, data kept in .cache/postgres.
- No REDIS_URL: Redis on 127.0.0.1:6379 if one answers, else a redis-server started here.
- No Slack app configured: the local Slack workspace emulator, with a terminal chat in
  which you write to the bot as a sample user.
- No LLM configured: offline mode, labelled as such in every answer.

Then it runs `chatops migrate`, `chatops serve` and `chatops worker`, and stops them all
on Ctrl-C. The browser workspace (`chatops sandbox`) will replace the terminal chat.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import redis
from dotenv import dotenv_values

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache"
SLACK_PORT = 3001
THINKING = ":hourglass_flowing_sand:"


def main() -> int:
    sys.path.insert(0, str(REPO))
    config = {**dotenv_values(REPO / ".env"), **os.environ}
    env: dict[str, str] = {k: v for k, v in config.items() if v is not None}
    keep_alive: list[object] = []
    children: list[subprocess.Popen[bytes]] = []
    try:
        env["DATABASE_URL"] = env.get("DATABASE_URL") or embedded_database(keep_alive)
        env["REDIS_URL"] = env.get("REDIS_URL") or local_redis(children)
        port = int(env.get("PORT") or 3000)
        slack = None
        if not (env.get("SLACK_BOT_TOKEN") or env.get("SLACK_CLIENT_ID")):
            slack = local_slack_workspace(env, port)
            keep_alive.append(slack)
        if not (env.get("OPENAI_BASE_URL") or env.get("OPENAI_API_KEY")):
            print("No LLM configured (OPENAI_BASE_URL / OPENAI_API_KEY): offline mode.")
        env.setdefault("LOG_FORMAT", "console")
        chatops = [sys.executable, "-m", "bot.cli"]
        subprocess.run([*chatops, "migrate"], env=env, check=True, cwd=REPO)
        log_dir = CACHE / "logs"
        log_dir.mkdir(parents=True, exist_ok=True)
        for name, args in (("serve", ["serve", "--port", str(port)]), ("worker", ["worker"])):
            with (log_dir / f"{name}.log").open("ab") as log:
                children.append(
                    subprocess.Popen([*chatops, *args], env=env, cwd=REPO, stdout=log, stderr=log)
                )
        print(f"Listening on http://127.0.0.1:{port}/slack/events; logs in {log_dir}/")
        if slack is not None and sys.stdin.isatty():
            chat(slack)
        else:
            signal.sigwait({signal.SIGINT, signal.SIGTERM})
    except KeyboardInterrupt:
        pass
    finally:
        for child in reversed(children):
            child.terminate()
        for child in children:
            child.wait(timeout=20)
        for thing in keep_alive:
            stop = getattr(thing, "stop", None) or getattr(thing, "cleanup", None)
            if stop:
                stop()
    return 0


def embedded_database(keep_alive: list[object]) -> str:
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    from sandbox.embedded_postgres import start_embedded_postgres

    url, server = start_embedded_postgres(CACHE / "postgres")
    keep_alive.append(server)
    with psycopg.connect(url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = 'chatops'").fetchone()
        if not exists:
            conn.execute("CREATE DATABASE chatops")
    print(f"Embedded PostgreSQL with pgvector, data in {CACHE / 'postgres'}")
    return make_conninfo(**(conninfo_to_dict(url) | {"dbname": "chatops"}))


def local_redis(children: list[subprocess.Popen[bytes]]) -> str:
    url = "redis://127.0.0.1:6379/0"
    if answers(url):
        return url
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("No Redis found: set REDIS_URL, or install redis-server.")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (CACHE / "redis").mkdir(parents=True, exist_ok=True)
    children.append(
        subprocess.Popen(
            [binary, "--port", str(port), "--bind", "127.0.0.1", "--dir", str(CACHE / "redis")],
            stdout=subprocess.DEVNULL,
        )
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not answers(url):
        if time.monotonic() > deadline:
            raise SystemExit("redis-server did not start")
        time.sleep(0.1)
    return url


def answers(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def local_slack_workspace(env: dict[str, str], port: int) -> object:
    from sandbox.slack_emulator import SlackEmulator

    slack = SlackEmulator(port=SLACK_PORT, events_url=f"http://127.0.0.1:{port}/slack/events")
    env["SLACK_API_URL"] = slack.start()
    env["SLACK_BOT_TOKEN"] = slack.bot_token
    env["SLACK_SIGNING_SECRET"] = slack.signing_secret
    print(f"No Slack app configured: local workspace at {env['SLACK_API_URL']}")
    return slack


def chat(slack: object) -> None:
    from sandbox.slack_emulator import SlackEmulator

    assert isinstance(slack, SlackEmulator)
    bot = slack.bot_user_id
    print("Write to the bot as riley in #general (Ctrl-D to quit).")
    while True:
        try:
            text = input("riley> ").strip()
        except EOFError:
            return
        if not text:
            continue
        post = slack.post_as_user("U0REQUESTER", "C0GENERAL", f"<@{bot}> {text}")
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            replies = [
                m
                for m in slack.thread("C0GENERAL", post.message.ts)
                if m.bot_id and not m.text.startswith(THINKING)
            ]
            if replies:
                print(f"bot> {replies[-1].text}")
                break
            time.sleep(0.2)
        else:
            print("bot> (no answer after 2 minutes: see .cache/logs/worker.log)")


if __name__ == "__main__":
    sys.exit(main())
