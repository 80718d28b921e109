"""The product's processes, started as an operator would: `chatops serve` and `chatops worker`."""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass
from pathlib import Path

from sandbox.openai_emulator import OpenAIEmulator
from sandbox.slack_emulator import SlackEmulator
from testbed.processes import ChatopsProcess

# What a worker logs once its personal-data detector has loaded (bot/queue/worker.py).
WORKER_WARM = "worker.warm"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def product_env(
    *,
    database_url: str,
    redis_url: str,
    namespace: str,
    slack: SlackEmulator,
    llm_primary: OpenAIEmulator | None,
    llm_fallback: OpenAIEmulator | None,
) -> dict[str, str]:
    env = {
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "QUEUE_NAMESPACE": namespace,
        "SLACK_API_URL": slack.api_url,
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": slack.signing_secret,
        "OPENAI_BASE_URL": "",
        "OPENAI_API_KEY": "",
        "LLM_FALLBACK_PROVIDERS": "",
        # Short timeouts so the failure paths finish in seconds, not minutes.
        "LLM_TIMEOUT_SECONDS": "2",
        "LLM_MAX_RETRIES": "1",
        "LLM_CIRCUIT_FAILURES": "1000",
        "WORKER_HEARTBEAT_TIMEOUT_SECONDS": "3",
        "QUEUE_MAINTENANCE_PER_MILLION": "1000000",
        "WORKER_THREADS": "2",
        "LOG_LEVEL": "info",
        # Tests change a tenant's guardrail policy and expect the next request to see it.
        "GUARDRAILS_POLICY_CACHE_SECONDS": "0",
        # The worker's own /metrics (the listener's is on its HTTP port).
        "WORKER_METRICS_PORT": str(free_port()),
    }
    if llm_primary is not None:
        env |= {
            "OPENAI_BASE_URL": llm_primary.base_url,
            "OPENAI_API_KEY": "test-key",
            "LLM_MODEL": "gpt-4o-mini",
            # The scripts of these tests answer JSON-schema Plan turns; native tool calls
            # are tested with workers of their own (tests/bot/agent/test_native_tools.py).
            "LLM_TOOL_CALLING": "json",
        }
    if llm_fallback is not None:
        env["LLM_FALLBACK_PROVIDERS"] = json.dumps(
            [
                {
                    "name": "fallback",
                    "base_url": llm_fallback.base_url,
                    "api_key": "k",
                    "model": "fallback-model",
                }
            ]
        )
    return env


@dataclass
class Stack:
    slack: SlackEmulator
    serve: ChatopsProcess
    worker: ChatopsProcess
    events_url: str
    env: dict[str, str]
    log_dir: Path

    @property
    def listener_metrics_url(self) -> str:
        return self.events_url.replace("/slack/events", "/metrics")

    @property
    def worker_metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.env['WORKER_METRICS_PORT']}/metrics"

    def start_worker(self) -> ChatopsProcess:
        # Taking jobs ("worker.started") comes before the personal-data detector has loaded
        # in the background, and jobs wait for it; tests time their waits from when the
        # worker answers, so they start once it has ("worker.warm").
        self.worker.start(ready_line=WORKER_WARM)
        return self.worker

    def stop(self) -> None:
        self.worker.stop()
        self.serve.stop()


def start_stack(slack: SlackEmulator, env: dict[str, str], log_dir: Path) -> Stack:
    port = free_port()
    serve = ChatopsProcess(["serve", "--port", str(port)], env, log_dir / "serve.log")
    serve.start(ready_url=f"http://127.0.0.1:{port}/healthz")
    events_url = f"http://127.0.0.1:{port}/slack/events"
    slack.events_url = events_url
    worker = ChatopsProcess(["worker"], env, log_dir / "worker.log")
    stack = Stack(slack, serve, worker, events_url, env, log_dir)
    try:
        stack.start_worker()
    except Exception:
        serve.stop()
        raise
    return stack
